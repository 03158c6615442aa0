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
