#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine. Idempotent.
# Where a service manager runs Docker we only ask it; where none does (our CI machines: PID 1 is not
# systemd), install Debian's docker.io and start dockerd ourselves.
set -euo pipefail
if docker version >/dev/null 2>&1; then exit 0; fi
if ! command -v dockerd >/dev/null 2>&1; then
  [ "$(id -u)" -eq 0 ] || { echo "start-dockerd: dockerd is missing; run as root to install docker.io" >&2; exit 1; }
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker.io >/dev/null
fi
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
  systemctl start docker.service
else
  # cgroup v1 hybrid host without systemd: dockerd picks the cgroupfs driver by itself.
  nohup dockerd >/var/log/fleetserve-dockerd.log 2>&1 &
fi
for _ in $(seq 1 120); do docker version >/dev/null 2>&1 && exit 0; sleep 0.5; done
echo "start-dockerd: dockerd did not answer within 60 s; see /var/log/fleetserve-dockerd.log" >&2
exit 1
