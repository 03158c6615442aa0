#!/usr/bin/env bash
# Applies the SQL migrations to the Azure database, then lets the app's identity in.
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
resource_group="${1:-${AZURE_RESOURCE_GROUP:-}}"
deployment="${2:-${DEPLOYMENT_NAME:-main}}"

output() {
    if [[ -z "$resource_group" ]]; then
        echo "usage: $0 <resource-group> [deployment-name]" >&2
        exit 2
    fi
    az deployment group show --resource-group "$resource_group" --name "$deployment" \
        --query "properties.outputs.$1.value" --output tsv
}

server="${POSTGRES_SERVER_FQDN:-$(output POSTGRES_SERVER_FQDN)}"
database="${POSTGRES_DATABASE:-$(output POSTGRES_DATABASE)}"
admin="${PGUSER:-$(az ad signed-in-user show --query userPrincipalName --output tsv)}"
python="${PYTHON:-$root/.venv/bin/python}"
[[ -x "$python" ]] || python=python3

# A user principal name carries an "@", which a connection URI must percent-encode.
user="$("$python" -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$admin")"

echo "Migrating $database on $server as $admin"
(
    cd "$root"
    DB_AUTH=password \
    DATABASE_URL="postgresql://$user@$server:5432/$database?sslmode=require" \
    PGPASSWORD="$(az account get-access-token --resource-type oss-rdbms --query accessToken --output tsv)" \
        "$python" -m tools.migrate
)

POSTGRES_SERVER_FQDN="$server" POSTGRES_DATABASE="$database" PGUSER="$admin" \
    "$here/grant-db-access.sh" "$resource_group" "$deployment"
