#!/usr/bin/env bash
# Build a venv with a REAL OpenAI-compatible server (`transformers serve`, CPU) and two tiny models.
# usage: transformers_serve.sh
# Idempotent: reused once its `.complete` marker exists (first build about 1-2 min, 1.2 GB).
# Prints the venv path last. Serve with:
#   HF_HUB_OFFLINE=1 HF_HOME=<venv>/hf-home <venv>/bin/transformers serve local-org/tiny-llama \
#     --device cpu --host 127.0.0.1 --port PORT
# Models in the HF cache: local-org/tiny-llama, local-org/tiny-minimax-m2 (real MiniMaxM2 architecture).
#
# Why an HF cache and not a plain directory: `transformers serve` lists only cached models on
# /v1/models (a plain path gives `{"data": []}`), and the verifier checks that listing.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
MAKER="$HERE/../../tests/integration/peers/make_tiny_models.py"
CACHE=${FLEETSERVE_CACHE:-$HOME/.cache/fleetserve}
VENV="$CACHE/transformers-serve"
PY=${FLEETSERVE_TS_PYTHON:-python3.11}
TORCH_PIN="torch==2.13.0"  # the CPU wheel; pip's find-links on the test machines hold it
TRANSFORMERS_PIN="transformers[serving]==5.23.0"

mkdir -p "$CACHE"
# scripts/test starts this in the background while the pytest fixture may call it too: the second
# caller waits for the first build instead of deleting it half-way.
exec 9>"$CACHE/transformers-serve.lock"
flock 9
# Steps joined with && because `set -e` does not apply inside a command whose status is tested.
build() {
  local pip=("$VENV/bin/pip" install -q --disable-pip-version-check)
  "$PY" -m venv "$VENV" &&
    "${pip[@]}" "$TORCH_PIN" &&
    # torch named again so the resolver cannot swap in a CUDA build.
    "${pip[@]}" "$TRANSFORMERS_PIN" "$TORCH_PIN" &&
    HF_HUB_OFFLINE=1 "$VENV/bin/python" "$MAKER" "$VENV/hf-home" &&
    "$VENV/bin/python" -c "import transformers; assert transformers.__version__ == '5.23.0', transformers.__version__"
}
if [ ! -f "$VENV/.complete" ]; then
  rm -rf "$VENV"
  if ! build >"$CACHE/transformers-serve.log" 2>&1; then
    echo "transformers_serve: build failed; see $CACHE/transformers-serve.log" >&2
    exit 1
  fi
  touch "$VENV/.complete"
fi
echo "$VENV"
