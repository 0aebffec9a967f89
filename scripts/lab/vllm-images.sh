#!/usr/bin/env bash
# Build the lab's stand-ins for vllm/vllm-openai (engine-sim behind vLLM's entrypoints,
# scripts/testenv/engine_sim_image.sh) under the lab's repository, one tag per release a lab rollout can
# move to:
#   <repo>:v<VERSION>        the release site.yml deploys (the catalog's default vLLM version)
#   <repo>:v<VERSION>-r2     the same engine rebuilt: another image ID and digest (an image rollout)
#   <repo>:v<VERSION>-crash  an image whose engine exits during start-up (a rollout that must roll back)
# `fleetserve lab up --vllm N` loads them into each vLLM host's nested dockerd, the lab's stand-in for a
# registry mirror (vllm_docker_pull: never). Idempotent (Docker's layer cache).
# usage: vllm-images.sh VERSION [REPO]   -> prints the tags, one a line
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
VERSION=$1
REPO=${2:-fleetserve/lab-vllm-sim}
BASE="$REPO:v$VERSION"
bash "$HERE/../testenv/engine_sim_image.sh" "$VERSION" "$BASE" >/dev/null
docker build -q -t "$BASE-r2" - >/dev/null <<DOCKERFILE
FROM $BASE
LABEL io.fleetserve.lab.build=r2
DOCKERFILE
docker build -q -t "$BASE-crash" - >/dev/null <<DOCKERFILE
FROM $BASE
LABEL io.fleetserve.lab.build=crash
ENV FLEETSERVE_SIM_FAILURE=crash
DOCKERFILE
printf '%s\n' "$BASE" "$BASE-r2" "$BASE-crash"
