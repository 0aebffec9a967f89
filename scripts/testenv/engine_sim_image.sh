#!/usr/bin/env bash
# Build the local image that stands in for vllm/vllm-openai in tests: engine-sim behind the same
# entrypoints (`vllm serve`, `python3 -m vllm.entrypoints.openai.api_server`). No registry involved:
# FROM the lab's own systemd image (Debian 12, python3). Idempotent (Docker's layer cache).
# The image's vllm package carries a dist-info and stand-in compiled parts for source-checkout mode.
# usage: engine_sim_image.sh [VLLM_VERSION] [TAG]   -> prints the image tag last
# The image's default ENTRYPOINT is `vllm serve` like recent vLLM images, so a role that relies on the
# default instead of setting --entrypoint explicitly is caught by the tests.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SIM=$(cd "$HERE/../../tests/engine_sim" && pwd)
VERSION=${1:-0.9.2}
TAG=${2:-fleetserve/fs-engine-vllm-sim:test}
BASE=${FLEETSERVE_LAB_IMAGE:-fleetserve/lab-systemd:bookworm}
docker image inspect "$BASE" >/dev/null 2>&1 || { echo "engine_sim_image: base image $BASE missing; run scripts/lab/build-image.sh" >&2; exit 1; }
CTX=$(mktemp -d /tmp/fs-engine-ctx.XXXXXX); trap 'rm -rf "$CTX"' EXIT
mkdir -p "$CTX/site"
cp -r "$SIM/fleetserve_engine_sim" "$SIM/standins/vllm" "$CTX/site/"
find "$CTX/site" -name __pycache__ -prune -exec rm -rf {} +
# Installed like a wheel (dist-info, so importlib.metadata reports VERSION), with stand-ins for the compiled
# parts of a v0.9.2 wheel (engine-facts 2) that source-checkout mode copies out: named like the real ones,
# text inside (nothing loads them; the checkout stand-in only checks they arrived).
mkdir -p "$CTX/site/vllm-$VERSION.dist-info" "$CTX/site/vllm/vllm_flash_attn"
printf 'Metadata-Version: 2.1\nName: vllm\nVersion: %s\n' "$VERSION" >"$CTX/site/vllm-$VERSION.dist-info/METADATA"
for part in _C _moe_C _flashmla_C cumem_allocator vllm_flash_attn/_vllm_fa2_C vllm_flash_attn/_vllm_fa3_C; do
  echo "engine-sim stand-in for vllm/$part.abi3.so of vLLM $VERSION" >"$CTX/site/vllm/$part.abi3.so"
done
echo '"""Stand-in for the flash-attention package vLLM wheels ship (compiled parts beside it)."""' \
  >"$CTX/site/vllm/vllm_flash_attn/__init__.py"
echo 'def flash_attn_varlen_func(*args, **kwargs):  # stand-in' >"$CTX/site/vllm/vllm_flash_attn/flash_attn_interface.py"
cat >"$CTX/Dockerfile" <<DOCKERFILE
FROM $BASE
COPY site/ /usr/local/lib/python3.11/dist-packages/
RUN printf '#!/usr/bin/python3\nfrom vllm.entrypoints.cli.main import main\nmain()\n' >/usr/local/bin/vllm \\
 && chmod 0755 /usr/local/bin/vllm && ln -sf /usr/bin/python3 /usr/local/bin/python3
ENV FLEETSERVE_SIM_VERSION=$VERSION
LABEL org.opencontainers.image.version=$VERSION org.opencontainers.image.title=fleetserve-engine-sim-vllm
WORKDIR /vllm-workspace
ENTRYPOINT ["vllm", "serve"]
CMD []
DOCKERFILE
docker build -q -t "$TAG" "$CTX" >/dev/null
echo "$TAG"
