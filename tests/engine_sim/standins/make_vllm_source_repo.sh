#!/usr/bin/env bash
# Make a bare git repository shaped like vLLM's for source-checkout tests: the Python-only tree of
# vllm_checkout/ (next to this script) committed twice, tagged v0.9.2 and v0.9.3 (annotated, like vLLM's
# release tags), with vLLM's ignore rules for the compiled parts. Recreated from scratch on every call.
# usage: make_vllm_source_repo.sh DEST.git [TREE]
set -euo pipefail
DEST=$1
TREE=${2:-$(cd "$(dirname "$0")" && pwd)/vllm_checkout}
WORK=$(mktemp -d /tmp/fs-vllm-src.XXXXXX); trap 'rm -rf "$WORK"' EXIT
cp -r "$TREE/." "$WORK/"
cd "$WORK"
find . -name __pycache__ -prune -exec rm -rf {} +
printf '*.so\nvllm/vllm_flash_attn/*\n!vllm/vllm_flash_attn/.gitkeep\n__pycache__/\n' >.gitignore
mkdir -p vllm/vllm_flash_attn && : >vllm/vllm_flash_attn/.gitkeep
export GIT_AUTHOR_NAME=fleetserve GIT_AUTHOR_EMAIL=tests@fleetserve.invalid \
  GIT_COMMITTER_NAME=fleetserve GIT_COMMITTER_EMAIL=tests@fleetserve.invalid \
  GIT_AUTHOR_DATE=2026-01-01T00:00:00Z GIT_COMMITTER_DATE=2026-01-01T00:00:00Z
git init -q -b main
for version in 0.9.2 0.9.3; do
  printf '__version__ = "%s"\n' "$version" >vllm/version.py
  git add -A && git commit -q -m "vLLM $version (stand-in)" && git tag -a "v$version" -m "v$version"
done
rm -rf "$DEST" && git clone -q --bare "$WORK" "$DEST"
