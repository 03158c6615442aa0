# shellcheck shell=bash disable=SC2034  # sourced: the scripts beside it use what it sets
# Sourced by the scripts beside it: the database coordinates of a deployment.
#
# Each value comes from the environment when set (azd exports the deployment outputs), else from
# the outputs of the deployment named by the script's arguments: <resource-group> [deployment-name].
# PGUSER overrides the administrator name (use the group's display name when the PostgreSQL
# Entra administrator is a group).

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

# TLS for the operator's connections: the server's certificate and host name are verified
# (sslmode=verify-full) against the system's trusted roots. Azure Database for PostgreSQL presents
# a certificate that chains to DigiCert Global Root G2 or Microsoft RSA Root Certificate Authority
# 2017, both in the usual system stores (Microsoft Learn, Azure Database for PostgreSQL, "Connect
# clients to a database with TLS security"). The token that is the password is a bearer credential, so
# sslmode=require, which encrypts without checking who answers, is not enough.
PGSSLMODE="${PGSSLMODE:-verify-full}"

# A PEM file of the system's trusted roots, for clients that take only a file (asyncpg, and libpq
# before 16): SSL_CERT_FILE, OpenSSL's default, or the usual bundle of Debian/Ubuntu, RHEL/Fedora
# and macOS/Alpine.
system_roots_file() {
    local candidate
    for candidate in "${SSL_CERT_FILE:-}" \
        "$("${python:-python3}" -c 'import ssl; print(ssl.get_default_verify_paths().cafile or "")' 2>/dev/null)" \
        /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt /etc/ssl/cert.pem; do
        if [[ -n "$candidate" && -r "$candidate" ]]; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

# PGSSLROOTCERT for psql: `system` (the system's roots) where psql is 16 or newer, the first
# release whose libpq takes that value (PostgreSQL documentation, libpq "Connection Parameters",
# sslrootcert); an older libpq would read `system` as a file name, so it gets the system's bundle
# file instead.
psql_roots() {
    if [[ -n "${PGSSLROOTCERT:-}" || ( "$PGSSLMODE" != verify-full && "$PGSSLMODE" != verify-ca ) ]]; then
        return 0
    fi
    local major
    major="$(psql --version | sed -E 's/^[^0-9]*([0-9]+).*/\1/')"
    if (( major >= 16 )); then
        PGSSLROOTCERT=system
    elif ! PGSSLROOTCERT="$(system_roots_file)"; then
        echo "psql $major cannot use the system's roots (sslrootcert=system needs psql 16 or newer), and no" \
             "bundle of them was found: install psql 16 or newer, or set PGSSLROOTCERT to a PEM file holding" \
             "DigiCert Global Root G2 and Microsoft RSA Root Certificate Authority 2017." >&2
        exit 1
    fi
    export PGSSLROOTCERT
}
