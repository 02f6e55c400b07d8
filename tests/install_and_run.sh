#!/usr/bin/env bash
# Install everything the test suite needs, then run it.
#  - Debian packages: chromium + chromium-driver (the viewer's real-browser test) and
#    gdal-bin (ogrinfo checks the exports), installed only when missing.
#  - Python: this package in editable mode with its [test] extra.
# Usage: bash tests/install_and_run.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
command -v ogrinfo >/dev/null 2>&1 || need+=(gdal-bin)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

python -m pip install -q --disable-pip-version-check -e ".[test]"
exec python -m pytest "$@"
