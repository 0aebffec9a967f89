#!/usr/bin/env bash
# Build the image of the lab's vLLM hosts (`fleetserve lab up --vllm N`): the lab's systemd image plus
# Debian's docker.io, so each vLLM host runs its own nested dockerd (as the Molecule scenario vllm_docker
# does) and site.yml's docker_engine role finds Docker installed instead of downloading it on every
# `lab up`. No registry: FROM the locally built lab image. Idempotent (skipped when the tag exists).
# usage: build-vllm-host-image.sh [BASE_TAG] [TAG]   -> prints the tag last
set -euo pipefail
BASE=${1:-${FLEETSERVE_LAB_IMAGE:-fleetserve/lab-systemd:bookworm}}
TAG=${2:-fleetserve/lab-systemd-docker:bookworm}
if docker image inspect "$TAG" >/dev/null 2>&1; then echo "$TAG"; exit 0; fi
docker image inspect "$BASE" >/dev/null 2>&1 \
  || { echo "build-vllm-host-image: base image $BASE missing; run scripts/lab/build-image.sh" >&2; exit 1; }
# The apt lists are removed again and dated at the epoch, as in the base image, so roles refresh them.
docker build -q -t "$TAG" - >/dev/null <<DOCKERFILE
FROM $BASE
RUN apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker.io \
 && apt-get clean && rm -rf /var/lib/apt/lists/* && touch -d @0 /var/lib/apt/lists
DOCKERFILE
echo "$TAG"
