#!/usr/bin/env bash
# Build the carried site directories for the lent GPU machine and cut them into chunks.
#
#   scripts/real_engine/prepare_wheels.sh      (needs PyPI; about 1.2 GB of downloads, 2 minutes here)
#
# Output under .cache/real_engine/ (ignored by git): chunks/site.tgz.NN (58 MiB each, so that one chunk
# plus the working tree fits one device call's 64 MiB), chunks.sha256. The wheels are the pins in
# requirements-device.txt, installed with --no-deps for Python 3.12 manylinux x86_64; torchvision 0.26.0
# goes to site_tv (used only when the machine's python has none), ansible-core to site_extra (for our
# verifier's ansible.module_utils.urls, not for the engine).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache="$root/.cache/real_engine"
mkdir -p "$cache/wheels" "$cache/wheels_extra"
cd "$cache"

platforms=()
for v in 39 38 37 36 35 34 33 32 31 30 29 28 27 26 25 24 17 5; do platforms+=(--platform "manylinux_2_${v}_x86_64"); done
platforms+=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform linux_x86_64)
target=(--only-binary=:all: --python-version 3.12 "${platforms[@]}")

python3 -m pip download --no-deps "${target[@]}" -d wheels -r "$here/requirements-device.txt" torchvision==0.26.0
ansible_core=$("$root/.venv/bin/python" -c 'import ansible; print(ansible.__version__)' 2>/dev/null || echo 2.19.14)
python3 -m pip download --no-deps -d wheels_extra "ansible-core==$ansible_core"

wheels_for() {  # the wheel file of each pinned name (the directory may hold other versions too)
    sed -e 's/#.*//' -e '/^$/d' "$here/requirements-device.txt" | while IFS='=' read -r name _ version; do
        norm=$(echo "$name" | tr 'A-Z-' 'a-z_')
        ls wheels/ | grep -i -E "^${norm}-${version}-" | head -1 | sed 's#^#wheels/#'
    done
}

rm -rf site site_tv site_extra chunks
mapfile -t files < <(wheels_for)
python3 -m pip install --no-deps --no-compile "${target[@]}" --target site "${files[@]}"
python3 -m pip install --no-deps --no-compile "${target[@]}" --target site_tv wheels/torchvision-0.26.0*.whl
python3 -m pip install --no-deps --no-compile --target site_extra wheels_extra/ansible_core-*.whl
rm -rf site_extra/bin site_extra/ansible_test

# Not needed to serve a text model here (docs/engines.md "A real vLLM on a lent GPU").
rm -f site/vllm/vllm_flash_attn/_vllm_fa2_C.abi3.so site/vllm/vllm-rs
rm -rf site/vllm/third_party/deep_gemm site/vllm/third_party/fmha_sm100 site/pycountry/locales site/mistral_common/data

mkdir chunks
tar -cf - site site_tv site_extra | gzip -5 | split -b 58m -d -a 2 - chunks/site.tgz.
sha256sum chunks/site.tgz.* > chunks.sha256
du -sh site site_tv site_extra
ls -l chunks
