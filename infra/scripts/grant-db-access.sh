#!/usr/bin/env bash
# Lets the Function App's managed identity sign in to the registry database, with exactly the
# rights of sql/app_grants.sql.
#
# Bicep cannot do this part: a PostgreSQL role for an Entra principal is made from inside the
# server, by a Microsoft Entra administrator, with pgaadauth_create_principal_with_oid. (A
# Bicep deploymentScript could run it, but it needs a storage account with shared keys, which
# this deployment keeps off everywhere.) The role is created by the identity's object id, not
# by its display name: a name need not be unique in the tenant and may not have replicated to
# Entra ID's read replicas minutes after the identity was created; the object id is exact at once.
# (Microsoft Learn, "Manage Microsoft Entra roles in Azure Database for PostgreSQL".)
#
# Idempotent. Run it after every migration run: the grants cover the tables that exist when it
# runs (migrate-azure.sh runs both, in that order).
#
# Usage:  infra/scripts/grant-db-access.sh <resource-group> [deployment-name]
#
# Needs: az (signed in as the PostgreSQL Entra administrator, or a member of that group), psql
# (16 or newer verifies against the system's roots as it is; an older one is given the system's
# bundle file, or PGSSLROOTCERT names one), and a firewall rule for this machine (the
# clientIpAddress parameter; migrate-azure.sh removes it when it is done).
# Reads APP_IDENTITY_NAME and APP_IDENTITY_PRINCIPAL_ID like the database coordinates (see
# deployment-outputs.sh).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=deployment-outputs.sh
source "$here/deployment-outputs.sh"
identity="${APP_IDENTITY_NAME:-$(output APP_IDENTITY_NAME)}"
principal_id="${APP_IDENTITY_PRINCIPAL_ID:-$(output APP_IDENTITY_PRINCIPAL_ID)}"

# An Entra access token for Azure Database for PostgreSQL is the password; it lasts about an hour.
PGPASSWORD="$(az account get-access-token --resource-type oss-rdbms --query accessToken --output tsv)"
# verify-full against the system's roots (deployment-outputs.sh says why and how).
psql_roots
export PGPASSWORD PGHOST="$server" PGUSER="$admin" PGSSLMODE

echo "Creating role \"$identity\" for object id $principal_id on $server (if missing) as $admin"
psql --no-psqlrc --quiet --set ON_ERROR_STOP=1 --set identity="$identity" --set principal_id="$principal_id" \
    --dbname postgres <<'SQL'
-- Roles are server-wide; the function fails if the role exists, hence the guard. 'service' is
-- the object type of a managed identity (a service principal); not an admin, no MFA claim.
SELECT format('SELECT * FROM pgaadauth_create_principal_with_oid(%L, %L, %L, false, false)',
              :'identity', :'principal_id', 'service')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'identity')
\gexec
SQL

echo "Granting \"$identity\" the app's rights in database \"$database\" (sql/app_grants.sql)"
# The same file, applied the same way, as the test suite does for the role its dev hosts use.
psql --no-psqlrc --quiet --set ON_ERROR_STOP=1 --set app_role="$identity" --set grants="$root/sql/app_grants.sql" \
    --dbname "$database" <<'SQL'
SET registry.app_role = :'app_role';
\i :grants
SQL

echo "Done: the app signs in as \"$identity\"."
