#!/usr/bin/env bash
# Lets the Function App's managed identity sign in to the registry database.
#
# Bicep cannot do this part: a PostgreSQL role for an Entra principal is made from inside the
# server, by a Microsoft Entra administrator, with pgaadauth_create_principal. (A Bicep
# deploymentScript could run it, but it needs a storage account with shared keys, which this
# deployment keeps off everywhere.) The script is idempotent: run it after every deployment and
# again after migrations that add tables.
#
# Usage:  infra/scripts/grant-db-access.sh <resource-group> [deployment-name]
#
# Needs: az (signed in as the PostgreSQL Entra administrator, or a member of that group), psql,
# and a firewall rule for this machine (the clientIpAddress parameter).
# Reads APP_IDENTITY_NAME like the database coordinates (see deployment-outputs.sh).
set -euo pipefail

# shellcheck source=deployment-outputs.sh
source "$(dirname "${BASH_SOURCE[0]}")/deployment-outputs.sh"
identity="${APP_IDENTITY_NAME:-$(output APP_IDENTITY_NAME)}"

# An Entra access token for Azure Database for PostgreSQL is the password; it lasts about an hour.
PGPASSWORD="$(az account get-access-token --resource-type oss-rdbms --query accessToken --output tsv)"
export PGPASSWORD PGHOST="$server" PGUSER="$admin" PGSSLMODE=require

echo "Creating role \"$identity\" on $server (if missing) as $admin"
psql --no-psqlrc --quiet --set ON_ERROR_STOP=1 --set identity="$identity" --dbname postgres <<'SQL'
-- Roles are server-wide; pgaadauth_create_principal fails if the role exists, hence the guard.
SELECT format('SELECT * FROM pgaadauth_create_principal(%L, false, false)', :'identity')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'identity')
\gexec
SQL

echo "Granting data access in database \"$database\""
psql --no-psqlrc --quiet --set ON_ERROR_STOP=1 --set identity="$identity" --set database="$database" \
    --dbname "$database" <<'SQL'
GRANT CONNECT ON DATABASE :"database" TO :"identity";
GRANT USAGE ON SCHEMA public TO :"identity";
-- The app reads and writes rows; the schema belongs to whoever runs the migrations.
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO :"identity";
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO :"identity";
-- Tables that this administrator creates later (the next migrations) get the same grants.
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"identity";
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO :"identity";
SQL

echo "Done: the app signs in as \"$identity\"."
