#!/usr/bin/env bash
# Build a flat apt repository of stand-in .deb packages with NVIDIA's package names and versions
# (list: tests/fixtures/apt-repo/packages.txt), for tests only: hosts use it as
#   deb [trusted=yes] file:/srv/fake-nvidia-apt ./
# The stand-ins hold no kernel modules and run no maintainer scripts. A few ship small stand-in
# tools so roles can run their real commands: nvidia-ctk, nvidia-container-runtime,
# nv-fabricmanager with its systemd unit, and nvidia-smi (the replay stub, tests/fixtures/bin); DCGM's
# nv-hostengine and dcgm-exporter with their systemd units (tests/fixtures/dcgm-exporter).
# usage: fake_nvidia_apt_repo.sh [OUTDIR]   (default: $FLEETSERVE_CACHE/fake-nvidia-apt)
# Idempotent: rebuilt only when this script or the package list changes. Prints the repo path last.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
LIST="$HERE/../../tests/fixtures/apt-repo/packages.txt"
OUT=${1:-${FLEETSERVE_CACHE:-$HOME/.cache/fleetserve}/fake-nvidia-apt}
DCGM_FIXTURES="$HERE/../../tests/fixtures/dcgm-exporter"
STAMP=$(cat "$0" "$LIST" "$HERE/../../tests/fixtures/bin/nvidia-smi" "$DCGM_FIXTURES"/* | sha256sum | cut -c1-16)
if [ -f "$OUT/.stamp" ] && [ "$(cat "$OUT/.stamp")" = "$STAMP" ]; then echo "$OUT"; exit 0; fi
rm -rf "$OUT"; mkdir -p "$OUT"
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT

payload() {  # payload NAME VERSION ROOT: files a stand-in ships
  local name=$1 version=$2 root=$3 upstream=${2%-*}
  upstream=${upstream#*:}
  mkdir -p "$root/usr/share/doc/$name"
  echo "fleetserve test stand-in for $name $version; not NVIDIA software" > "$root/usr/share/doc/$name/STANDIN"
  case $name in
    nvidia-container-toolkit-base)
      mkdir -p "$root/usr/bin"
      cat > "$root/usr/bin/nvidia-ctk" <<CTK
#!/bin/sh
# stand-in nvidia-ctk $upstream: only the subcommands the roles use
case "\$1 \$2" in
  "cdi generate")
    out=/dev/stdout
    for a in "\$@"; do case \$a in --output=*) out=\${a#--output=} ;; esac; done
    n=\$(nvidia-smi --query-gpu=index --format=csv,noheader | wc -l) || exit 1
    { echo "cdiVersion: 0.5.0"; echo "kind: nvidia.com/gpu"; echo "devices:"
      i=0; while [ \$i -lt \$n ]; do echo "- name: \"\$i\""; echo "  containerEdits:"; echo "    deviceNodes:"; echo "    - path: /dev/nvidia\$i"; i=\$((i+1)); done
      echo "- name: all"; echo "containerEdits:"; echo "  deviceNodes:"; echo "  - path: /dev/nvidiactl"; } > "\$out"
    echo "level=info msg=\"Generated CDI spec with version 0.5.0\"" >&2 ;;
  "system create-dev-char-symlinks")
    [ -e /dev/nvidiactl ] && echo "level=info msg=\"Creating link /dev/char/195:255 => /dev/nvidiactl\"" >&2 ; exit 0 ;;
  "--version "*) echo "NVIDIA Container Toolkit CLI version $upstream" ;;
  *) echo "stand-in nvidia-ctk: unsupported: \$*" >&2; exit 2 ;;
esac
CTK
      printf '#!/bin/sh\nexec runc "$@"\n' > "$root/usr/bin/nvidia-container-runtime"
      chmod 0755 "$root/usr/bin/nvidia-ctk" "$root/usr/bin/nvidia-container-runtime" ;;
    nvidia-kernel-dkms|nvidia-kernel-open-dkms|nvidia-dkms-*)
      # No module is built; the version a loaded module would report in /sys/module/nvidia/version, for
      # test hosts that point nvidia_driver_sysfs_version_path here (the lab's bare hosts): as after a reboot.
      mkdir -p "$root/usr/share/fleetserve-standin"
      echo "$upstream" > "$root/usr/share/fleetserve-standin/nvidia-module-version" ;;
    nvidia-smi|nvidia-utils-*)
      # The driver's nvidia-smi: the replay stub, so installing the stand-in driver on a test host that
      # had none (a bare host) makes nvidia-smi answer with the host's recording from then on.
      mkdir -p "$root/usr/bin"
      cp "$HERE/../../tests/fixtures/bin/nvidia-smi" "$root/usr/bin/nvidia-smi"
      chmod 0755 "$root/usr/bin/nvidia-smi" ;;
    nvidia-fabricmanager-*)
      mkdir -p "$root/usr/bin" "$root/lib/systemd/system"
      printf '#!/bin/sh\n# stand-in Fabric Manager %s\nexec sleep infinity\n' "$upstream" > "$root/usr/bin/nv-fabricmanager"
      chmod 0755 "$root/usr/bin/nv-fabricmanager"
      printf '[Unit]\nDescription=stand-in NVIDIA fabric manager service\n\n[Service]\nExecStart=/usr/bin/nv-fabricmanager\n\n[Install]\nWantedBy=multi-user.target\n' \
        > "$root/lib/systemd/system/nvidia-fabricmanager.service" ;;
    datacenter-gpu-manager-4-core)
      # DCGM's host engine and its unit (as NVIDIA's package ships them), listening on 5555.
      mkdir -p "$root/usr/bin" "$root/lib/systemd/system"
      sed "s/@VERSION@/$upstream/" "$DCGM_FIXTURES/nv-hostengine" > "$root/usr/bin/nv-hostengine"
      chmod 0755 "$root/usr/bin/nv-hostengine"
      printf '[Unit]\nDescription=stand-in NVIDIA DCGM service\n\n[Service]\nExecStart=/usr/bin/nv-hostengine -n --service-account nvidia-dcgm\nRestart=on-abort\n\n[Install]\nWantedBy=multi-user.target\n' \
        > "$root/lib/systemd/system/nvidia-dcgm.service" ;;
    datacenter-gpu-manager-exporter)
      # The exporter serving the recorded metrics, NVIDIA's unit (default counters on :9400, log file), and
      # default counters: every family of the recording.
      mkdir -p "$root/usr/bin" "$root/lib/systemd/system" "$root/etc/dcgm-exporter" "$root/usr/share/fleetserve-standin"
      sed "s/@RELEASE@/$upstream/" "$DCGM_FIXTURES/dcgm-exporter" > "$root/usr/bin/dcgm-exporter"
      chmod 0755 "$root/usr/bin/dcgm-exporter"
      cp "$DCGM_FIXTURES/metrics-h200-x4.txt" "$root/usr/share/fleetserve-standin/dcgm-exporter-metrics.txt"
      paste -d, <(sed -n 's/^# TYPE \([^ ]*\) \(.*\)/\1, \2/p' "$DCGM_FIXTURES/metrics-h200-x4.txt") \
        <(sed -n 's/^# HELP [^ ]* \(.*\)/ \1/p' "$DCGM_FIXTURES/metrics-h200-x4.txt") > "$root/etc/dcgm-exporter/default-counters.csv"
      printf '[Unit]\nDescription=stand-in NVIDIA DCGM-exporter service\nWants=nvidia-dcgm.service\nAfter=nvidia-dcgm.service\n\n[Service]\nUser=root\nPrivateTmp=false\nStandardOutput=append:/var/dcgm-exporter.log\nStandardError=append:/var/dcgm-exporter.log\nExecStart=/usr/bin/dcgm-exporter -f /etc/dcgm-exporter/default-counters.csv\nRestart=on-abort\n\n[Install]\nWantedBy=multi-user.target\n' \
        > "$root/lib/systemd/system/nvidia-dcgm-exporter.service" ;;
  esac
}

grep -v -e '^#' -e '^$' "$LIST" | while IFS='|' read -r name version depends; do
  root="$WORK/$name-$version"; mkdir -p "$root/DEBIAN"
  payload "$name" "$version" "$root"
  {
    echo "Package: $name"; echo "Version: $version"; echo "Architecture: all"
    echo "Maintainer: fleetserve tests <tests@fleetserve.invalid>"
    [ -n "$depends" ] && echo "Depends: $depends"
    echo "Description: fleetserve test stand-in for NVIDIA's $name"
  } > "$root/DEBIAN/control"
  # Debian file names leave out the epoch (DCGM's versions carry one: 1:4.6.0-1).
  dpkg-deb --root-owner-group -Zgzip --build "$root" "$OUT/${name}_${version#*:}_all.deb" >/dev/null
done

# Flat repository index, written here so the build needs only dpkg-deb (no dpkg-dev / apt-utils).
for deb in "$OUT"/*.deb; do
  dpkg-deb -f "$deb"
  echo "Filename: ./$(basename "$deb")"
  echo "Size: $(stat -c %s "$deb")"
  echo "MD5sum: $(md5sum < "$deb" | cut -d' ' -f1)"
  echo "SHA256: $(sha256sum < "$deb" | cut -d' ' -f1)"
  echo
done > "$OUT/Packages"
gzip -9nk "$OUT/Packages"
echo "$STAMP" > "$OUT/.stamp"
echo "$OUT"
