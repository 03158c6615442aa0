#!/usr/bin/env bash
# Applies the SQL migrations to the Azure database, then lets the app's identity in (and
# re-applies its grants, which must follow every migration run).
#
# On a first deployment the server's firewall rules and Entra administrator take minutes to
# apply after the deployment reports success, so the migrator keeps trying to connect for up to
# five minutes (MIGRATE_WAIT_SECONDS), saying so after each attempt.
#
# Signs in as the PostgreSQL Microsoft Entra administrator with a token from `az`, through port
# 5432 even when PgBouncer is on: migrations hold an advisory lock and run DDL, which belong on
# a direct session, not on a transaction-pooled one.
#
# Usage:  infra/scripts/migrate-azure.sh <resource-group> [deployment-name]
# Also the azd postprovision hook (azd exports the deployment outputs as variables).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=deployment-outputs.sh
source "$here/deployment-outputs.sh"
python="${PYTHON:-$root/.venv/bin/python}"
[[ -x "$python" ]] || python=python3

# A user principal name carries an "@", which a connection URI must percent-encode.
user="$("$python" -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$admin")"

echo "Migrating $database on $server as $admin"
# The token (the password) lasts about an hour, far longer than the wait.
(
    cd "$root"
    DB_AUTH=password \
    DATABASE_URL="postgresql://$user@$server:5432/$database?sslmode=require" \
    PGPASSWORD="$(az account get-access-token --resource-type oss-rdbms --query accessToken --output tsv)" \
        "$python" -m tools.migrate --wait "${MIGRATE_WAIT_SECONDS:-300}"
)

POSTGRES_SERVER_FQDN="$server" POSTGRES_DATABASE="$database" PGUSER="$admin" \
    "$here/grant-db-access.sh" "$resource_group" "$deployment"
