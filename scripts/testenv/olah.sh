#!/usr/bin/env bash
# Create (once) the lab's own venv (requirements/lab.txt): olah, a real HF-hub-compatible server, and
# what scripts/testenv/make_tiny_repos.py needs to write the repos it serves. Used by `fleetserve lab up`
# (the README's main command, from the controller venv, which has neither) and by the weights tests.
# usage: scripts/testenv/olah.sh   -> prints the venv path on the last line of stdout
set -euo pipefail
reqs="$(cd "$(dirname "$0")/../.." && pwd)/requirements/lab.txt"
cache="${FLEETSERVE_CACHE:-$HOME/.cache/fleetserve}"
# Keyed by the requirements: a changed pin builds a new venv instead of trusting an old one.
venv="$cache/lab-venv-$(sha256sum "$reqs" | cut -c1-12)"
# The stamp is written last, so an interrupted install is redone instead of trusted.
if [[ ! -f "$venv/.fleetserve-ready" ]]; then
  rm -rf "$venv"
  mkdir -p "$cache"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$reqs" >&2
  "$venv/bin/olah-cli" --help >/dev/null
  "$venv/bin/python" -c "import numpy, safetensors.numpy" >&2
  touch "$venv/.fleetserve-ready"
fi
echo "$venv"
