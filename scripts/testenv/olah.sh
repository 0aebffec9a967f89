#!/usr/bin/env bash
# Create (once) a venv holding olah, a real HF-hub-compatible server, for the weights tests.
# olah pulls its own huggingface_hub/fastapi pins, so it lives apart from the test venv.
# usage: scripts/testenv/olah.sh   -> prints the venv path on the last line of stdout
set -euo pipefail
OLAH_VERSION="0.5.4"
cache="${FLEETSERVE_CACHE:-$HOME/.cache/fleetserve}"
venv="$cache/olah-$OLAH_VERSION"
# The stamp is written last, so an interrupted install is redone instead of trusted.
if [[ ! -f "$venv/.fleetserve-ready" ]]; then
  rm -rf "$venv"
  mkdir -p "$cache"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "olah==$OLAH_VERSION" >&2
  "$venv/bin/olah-cli" --help >/dev/null
  touch "$venv/.fleetserve-ready"
fi
echo "$venv"
