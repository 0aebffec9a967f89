#!/usr/bin/env bash
# Debian's `prometheus` package (the real Prometheus server and promtool) for the tests that check what
# roles/monitoring generates: promtool check config / check rules / test rules, and the lab's Prometheus.
# The package is downloaded and unpacked (apt-get download + dpkg-deb -x), not installed: no root, no
# prometheus service started on the test machine, and the same binaries Debian ships.
# Idempotent: reused while its `.complete` marker names the same package version. Prints the directory
# holding `prometheus` and `promtool` last.
set -euo pipefail
CACHE=${FLEETSERVE_CACHE:-$HOME/.cache/fleetserve}/prometheus
mkdir -p "$CACHE"
exec 9>"$CACHE.lock"
flock 9
version=$(apt-cache policy prometheus 2>/dev/null | awk '/Candidate:/ {print $2}')
if [ -z "$version" ] || [ "$version" = "(none)" ]; then
  apt-get update -qq >&2
  version=$(apt-cache policy prometheus | awk '/Candidate:/ {print $2}')
fi
if [ "$(cat "$CACHE/.complete" 2>/dev/null)" != "$version" ]; then
  rm -rf "$CACHE/root" "$CACHE"/*.deb
  (cd "$CACHE" && apt-get download -q "prometheus=$version" >&2)
  dpkg-deb -x "$CACHE"/prometheus_*.deb "$CACHE/root"
  "$CACHE/root/usr/bin/promtool" --version >&2
  echo "$version" >"$CACHE/.complete"
fi
echo "$CACHE/root/usr/bin"
