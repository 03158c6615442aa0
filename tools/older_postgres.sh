#!/usr/bin/env bash
# Prints the bin folder of Debian's PostgreSQL server (the `postgresql` package: 15 on Debian 12),
# installing the package first when it is missing, so the tests can run on an older major too:
#
#     bin="$(tools/older_postgres.sh)"
#     [ "$bin" = SKIP ] || PG_BIN="$bin" .venv/bin/pytest -q
#
# Standard output is one line: the bin folder, or SKIP when it cannot be had (no dpkg, not
# root, apt failed). The reason for a SKIP goes to standard error; the exit status is 0 either way.
set -euo pipefail

skip() {
    echo "older_postgres: skipped: $*" >&2
    echo "SKIP"
    exit 0
}

# The major version behind the `postgresql` metapackage is the one it depends on (postgresql-NN).
bin_dir() {
    local depends major
    depends="$(dpkg-query --show --showformat='${Depends}' postgresql 2>/dev/null)" || return 1
    major="$(grep --only-matching --max-count=1 'postgresql-[0-9][0-9]*' <<<"$depends" | head -n 1)"
    major="${major#postgresql-}"
    [ -n "$major" ] && [ -x "/usr/lib/postgresql/$major/bin/initdb" ] || return 1
    echo "/usr/lib/postgresql/$major/bin"
}

command -v dpkg-query >/dev/null 2>&1 || skip "not a Debian system (no dpkg-query)"
if found="$(bin_dir)"; then
    echo "$found"
    exit 0
fi
[ "$(id -u)" -eq 0 ] || skip "Debian's postgresql package is not installed, and installing it needs root"
command -v apt-get >/dev/null 2>&1 || skip "no apt-get to install Debian's postgresql package"

# The package would create and start a cluster of its own on port 5432; the tests make theirs.
mkdir -p /etc/postgresql-common/createcluster.d
echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.d/no-main-cluster.conf
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2 || skip "apt-get update failed"
apt-get install -y -qq --no-install-recommends postgresql >&2 || skip "apt-get install postgresql failed"
found="$(bin_dir)" || skip "the postgresql package is installed, but its initdb was not found"
echo "$found"
