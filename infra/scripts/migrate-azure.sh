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
# a direct session, not on a transaction-pooled one. (PGPORT changes the port for a local test
# server only; leave it unset against Azure.)
#
# TLS is verify-full against the system's roots (deployment-outputs.sh); asyncpg takes the roots
# only as a file (it reads PGSSLROOTCERT as a path), so the migrator is given the system's bundle.
#
# At the end, whether set-up succeeded or not, it removes the firewall rule that let this machine
# in (AllowClientIpForMigrations, the clientIpAddress parameter of modules/postgres.bicep): the
# rule exists for set-up only. A later deployment with CLIENT_IP_ADDRESS set creates it again.
#
# Usage:  infra/scripts/migrate-azure.sh <resource-group> [deployment-name]
# Also the azd postprovision hook (azd exports the deployment outputs as variables).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"
[[ -x "$python" ]] || python="$root/.venv/Scripts/python.exe"  # a Windows virtual environment
[[ -x "$python" ]] || python=python3
rule=AllowClientIpForMigrations

remove_client_rule() {
    local status=$?
    local server_name="${POSTGRES_SERVER_NAME:-${server%%.*}}"
    local parent=(--namespace Microsoft.DBforPostgreSQL --parent "flexibleServers/$server_name"
                  --resource-type firewallRules --name "$rule" --api-version 2025-08-01)
    if [[ -z "${resource_group:-}" || -z "$server_name" ]]; then
        echo "warning: the resource group or server is unknown, so the firewall rule $rule was not removed" >&2
    else
        # `az resource` rather than `az postgres flexible-server firewall-rule`, whose --name changes
        # meaning in Azure CLI 2.86 (from the server to the rule). Deleting a rule that does not
        # exist succeeds (the REST API answers 204), so a deployment without one is fine.
        echo "Removing the firewall rule $rule of $server_name: this machine's access was for set-up only"
        if ! az resource delete --resource-group "$resource_group" "${parent[@]}" --output none; then
            echo "warning: the firewall rule $rule is still there; remove it with:" \
                 "az resource delete --resource-group $resource_group ${parent[*]}" >&2
        fi
    fi
    exit "$status"
}
server=""
trap remove_client_rule EXIT
# An interrupted run removes the rule too (bash runs the EXIT trap after `exit`).
trap 'exit 130' INT
trap 'exit 143' TERM

# shellcheck source=deployment-outputs.sh
source "$here/deployment-outputs.sh"

# A user principal name carries an "@", which a connection URI must percent-encode.
user="$("$python" -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$admin")"

roots="${PGSSLROOTCERT:-}"
if [[ "$roots" == system ]]; then
    roots=""
fi
if [[ -z "$roots" && ( "$PGSSLMODE" == verify-full || "$PGSSLMODE" == verify-ca ) ]] && ! roots="$(system_roots_file)"; then
    echo "No bundle of the system's trusted roots was found for the migrator: set PGSSLROOTCERT to a PEM file" \
         "holding DigiCert Global Root G2 and Microsoft RSA Root Certificate Authority 2017." >&2
    exit 1
fi

echo "Migrating $database on $server as $admin"
# The token (the password) lasts about an hour, far longer than the wait.
(
    cd "$root"
    DB_AUTH=password \
    DATABASE_URL="postgresql://$user@$server:${PGPORT:-5432}/$database?sslmode=$PGSSLMODE" \
    PGSSLROOTCERT="$roots" \
    PGPASSWORD="$(az account get-access-token --resource-type oss-rdbms --query accessToken --output tsv)" \
        "$python" -m tools.migrate --wait "${MIGRATE_WAIT_SECONDS:-300}"
)

POSTGRES_SERVER_FQDN="$server" POSTGRES_DATABASE="$database" PGUSER="$admin" PGSSLMODE="$PGSSLMODE" \
    "$here/grant-db-access.sh" "$resource_group" "$deployment"
