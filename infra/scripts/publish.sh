#!/usr/bin/env bash
# Publishes the app with Core Tools (`func azure functionapp publish`), trying again while Azure
# refuses with 403.
#
# A first publish to a new deployment can be refused with 403 Forbidden while its role
# assignments are still being applied: "it can take up to 10 minutes for changes to take effect"
# (Microsoft Learn, "Troubleshoot Azure RBAC", role assignment changes are not being detected).
# So a 403 is tried again, PUBLISH_ATTEMPTS times in all (default 6), PUBLISH_RETRY_SECONDS apart
# (default 120), saying why; any other failure stops at once.
#
# Usage:  infra/scripts/publish.sh [function-app-name]   (default: AZURE_FUNCTION_NAME)
# Needs: Azure Functions Core Tools 4 (func) and `az login`.
set -euo pipefail

app="${1:-${AZURE_FUNCTION_NAME:-}}"
if [[ -z "$app" ]]; then
    echo "usage: $0 <function-app-name> (or set AZURE_FUNCTION_NAME)" >&2
    exit 2
fi
attempts="${PUBLISH_ATTEMPTS:-6}"
pause="${PUBLISH_RETRY_SECONDS:-120}"
output="$(mktemp)"
trap 'rm -f "$output"' EXIT

for (( attempt = 1; ; attempt++ )); do
    if func azure functionapp publish "$app" --python 2>&1 | tee "$output"; then
        exit 0
    fi
    if ! grep -Eqi '(^|[^0-9])403([^0-9]|$)|forbidden' "$output"; then
        echo "Publishing $app failed (see above)." >&2
        exit 1
    fi
    if (( attempt >= attempts )); then
        echo "Publishing $app was still refused with 403 after $attempts attempts: check that your account" \
             "may deploy to it (Website Contributor or Contributor on the app)." >&2
        exit 1
    fi
    echo "Publishing $app was refused with 403. Right after a deployment that is usually its role" \
         "assignments, which take up to 10 minutes to apply; trying again in ${pause}s" \
         "(attempt $(( attempt + 1 )) of $attempts)." >&2
    sleep "$pause"
done
