#!/usr/bin/env bash
# Build the local image that stands in for vllm/vllm-openai in tests: engine-sim behind the same
# entrypoints (`vllm serve`, `python3 -m vllm.entrypoints.openai.api_server`). No registry involved:
# FROM the lab's own systemd image (Debian 12, python3). Idempotent (Docker's layer cache).
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
