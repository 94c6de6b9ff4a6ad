#!/usr/bin/env bash
# Everything the tests need on a fresh Debian/Ubuntu machine: Debian's Chromium for the
# browser tests (Playwright drives it; it never downloads a browser of its own), then the
# Python packages.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
python -m pip install -q -r requirements-dev.txt
