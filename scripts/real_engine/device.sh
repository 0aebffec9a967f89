#!/usr/bin/env bash
# Device side of the real-vLLM run (docs/engines.md "A real vLLM on a lent GPU").
#
#   device.sh stage   copy the wheel chunks carried in this call (.cache/real_engine/chunks/) to $STAGE
#   device.sh run     stage, check every chunk against chunks.sha256, unpack the site directories,
#                     then scripts/real_engine/vllm_on_device.py run, writing the recordings to $OUT
#
# The lent machine keeps files outside the repository only while it stays warm, so the calls follow
# each other closely; each carries one chunk (the working tree travels with it anyway).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
STAGE=${STAGE:-/root/stage}
RT=${RT:-/root/rt}
OUT=${OUT:-/tmp/real-engine-out}
mode=${1:-stage}
shift || true
mkdir -p "$STAGE" "$OUT"

for f in "$root"/.cache/real_engine/chunks/site.tgz.* "$root"/.cache/real_engine/chunks.sha256; do
    [ -f "$f" ] && cp "$f" "$STAGE/"
done
echo "staged: $(cd "$STAGE" && ls | tr '\n' ' ')"
[ "$mode" = stage ] && exit 0

cd "$STAGE" || exit 1
sed 's#chunks/##' chunks.sha256 | sha256sum -c --quiet - || { echo "a chunk is missing or damaged"; exit 3; }
if [ ! -f "$RT/.unpacked" ]; then
    mkdir -p "$RT" && cat site.tgz.* | tar -xzf - -C "$RT" && touch "$RT/.unpacked" || exit 4
fi
# Corrections made after the chunks were cut (fix.tgz replaces whole packages in site/).
if [ -f "$root/.cache/real_engine/fix.tgz" ]; then
    for pkg in $(tar -tzf "$root/.cache/real_engine/fix.tgz" | awk -F/ 'NF>2 && $3=="" {print $2}' | sort -u); do
        rm -rf "$RT/site/${pkg%%-[0-9]*}" "$RT/site/${pkg%%-[0-9]*}"-*.dist-info
    done
    tar -xzf "$root/.cache/real_engine/fix.tgz" -C "$RT" || exit 5
fi
python=${PYTHON:-python3}
sites=(--site "$RT/site")
# torchvision: the machine's own if it has one (built for its torch), else the carried 0.26.0.
"$python" -c "import torchvision" 2>/dev/null || sites+=(--site "$RT/site_tv")
export PATH="$RT/site/bin:$PATH"
# Our verifier imports ansible.module_utils.urls: the carried ansible-core, for this process only.
export PYTHONPATH="$RT/site_extra:$RT/site"
cd "$root" || exit 1
FLEETSERVE_COLLECTIONS=/tmp/fs-collections "$python" scripts/real_engine/vllm_on_device.py run --out "$OUT" "${sites[@]}" \
    --log /root/vllm.log "$@"
rc=$?
gzip -9 -f "$OUT/vllm-full.log" 2>/dev/null
exit $rc
