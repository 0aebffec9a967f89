#!/usr/bin/env bash
# Download the SGLang Model Gateway wheel (smg, pinned like roles/router) and its dependencies for the lab
# hosts (Debian 12: CPython 3.11, x86_64 manylinux) into a cache directory, so Molecule installs the gateway
# offline (router_find_links + router_no_index) exactly as a mirror-fed fleet would.
# usage: router_wheels.sh [VERSION]   (default: the role's pin). Idempotent; prints the wheel directory last.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
VERSION=${1:-$(sed -n 's/^router_version: "\(.*\)"$/\1/p' "$HERE/../../roles/router/defaults/main.yml")}
DIR=${FLEETSERVE_CACHE:-$HOME/.cache/fleetserve}/router-wheels/smg-$VERSION
if [ ! -f "$DIR/.complete" ]; then
  rm -rf "$DIR"; mkdir -p "$DIR"
  python3 -m pip download -q --disable-pip-version-check --only-binary=:all: \
    --python-version 3.11 --implementation cp --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux_2_28_x86_64 --platform any -d "$DIR" "smg==$VERSION" >&2
  touch "$DIR/.complete"
fi
echo "$DIR"
