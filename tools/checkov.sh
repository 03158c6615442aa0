#!/usr/bin/env bash
# Runs checkov over infra/ from its own virtual environment.
#
# checkov pins many libraries (boto3, networkx, pydantic, ...) that would fight the app's
# own requirements, so it lives in .venv-checkov beside .venv and is created on first use.
# Usage: tools/checkov.sh [--install-only] [extra checkov arguments]
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${CHECKOV_VENV:-$root/.venv-checkov}"
python="${PYTHON:-python3}"
spec='checkov>=3.2,<4'

if [[ ! -x "$venv/bin/checkov" ]]; then
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$spec"
fi

if [[ "${1:-}" == "--install-only" ]]; then
    exit 0
fi

cd "$root"
# --skip-download: no call to the vendor platform; the checks ship inside the package.
exec "$venv/bin/checkov" --directory infra --framework bicep --skip-download --quiet --compact "$@"
