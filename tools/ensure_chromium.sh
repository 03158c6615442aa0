#!/usr/bin/env bash
# Installs Debian's Chromium for tests/test_docs_browser.py when it is missing. Needs root and
# apt-get; anywhere else it says why it cannot and exits 1, and the test is skipped.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "chromium is not installed, and installing it needs root and apt-get (apt-get install chromium)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium >/dev/null
command -v chromium >/dev/null
