#!/usr/bin/env bash
# Build the systemd test-host image from scratch: debootstrap + docker import. No registry needed.
# usage: build-image.sh [--force] [TAG]
# The image is what the lab hosts and every Molecule scenario boot: Debian 12 with systemd, Python,
# and the host's extra CA certificates (HTTPS egress here goes through a TLS-intercepting proxy).
set -euo pipefail
FORCE=0; [ "${1:-}" = "--force" ] && { FORCE=1; shift; }
TAG=${1:-${FLEETSERVE_LAB_IMAGE:-fleetserve/lab-systemd:bookworm}}
if [ "$FORCE" = 0 ] && docker image inspect "$TAG" >/dev/null 2>&1; then
  echo "image $TAG present"; exit 0
fi
PKGS=systemd,systemd-sysv,dbus,python3,python3-apt,python3-venv,python3-packaging,sudo,ca-certificates,iproute2,curl,gnupg,procps
command -v debootstrap >/dev/null || {
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >/dev/null
}
ROOT=$(mktemp -d /tmp/fleetserve-rootfs.XXXXXX)
trap 'rm -rf "$ROOT"' EXIT
# The same Debian mirror this machine's apt uses, never a hard-coded one.
MIRROR=${DEBIAN_MIRROR:-$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
[ -n "$MIRROR" ] || MIRROR=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list)
debootstrap --variant=minbase --include="$PKGS" bookworm "$ROOT" "$MIRROR" >/tmp/fleetserve-debootstrap.log 2>&1 \
  || { tail -30 /tmp/fleetserve-debootstrap.log >&2; exit 1; }
cp /etc/apt/sources.list.d/debian.sources "$ROOT/etc/apt/sources.list.d/" 2>/dev/null \
  || cp /etc/apt/sources.list "$ROOT/etc/apt/sources.list"
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$ROOT/usr/local/share/ca-certificates/"
  chroot "$ROOT" update-ca-certificates >/dev/null
fi
chroot "$ROOT" apt-get clean
rm -rf "$ROOT"/var/lib/apt/lists/*
# A real host has apt lists; ours has none. An old mtime makes roles' `cache_valid_time` refresh them
# instead of skipping the update and failing to find packages.
touch -d @0 "$ROOT/var/lib/apt/lists"
: > "$ROOT/etc/machine-id"
for u in getty.target systemd-udevd.service systemd-udev-trigger.service systemd-remount-fs.service \
         sys-kernel-debug.mount sys-kernel-tracing.mount dev-hugepages.mount systemd-firstboot.service; do
  ln -sf /dev/null "$ROOT/etc/systemd/system/$u"
done
tar -C "$ROOT" -c . | docker import --change 'ENV container=docker' --change 'CMD ["/lib/systemd/systemd"]' - "$TAG" >/dev/null
echo "built $TAG"
