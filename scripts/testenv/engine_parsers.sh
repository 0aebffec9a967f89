#!/usr/bin/env bash
# Build the venvs that hold the REAL engines' argument parsers, one per pinned engine version, on CPU.
# usage: engine_parsers.sh [ENGINE-VERSION ...]   (default: every version the roles pin)
#   e.g. engine_parsers.sh vllm-0.9.2 sglang-0.5.23
# Idempotent and lazy: a venv is reused while its `.complete` marker matches the recipe. At most two build at once
# (they are download-bound, about 2.3 GB and 50-65 s each). Prints the directory holding the venvs last;
# tests/contract reads <dir>/<engine>-<version>/bin/python.
#
# Recipe (why each step): the engine is installed --no-deps on top of a CPU torch and a short list of
# pure-Python imports, because the engines' own requirements pull CUDA torch, triton and flashinfer
# (several GB) that parsing argv never touches.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REQ=$(cd "$HERE/../../tests/contract/requirements" && pwd)
CACHE=${FLEETSERVE_CACHE:-$HOME/.cache/fleetserve}/engine-parsers
PY=${FLEETSERVE_PARSER_PYTHON:-python3.11}
ALL=(vllm-0.9.2 vllm-0.33.0 sglang-0.5.23 sglang-0.5.4.post1)
WANT=("$@"); [ ${#WANT[@]} -gt 0 ] || WANT=("${ALL[@]}")
mkdir -p "$CACHE"

# Fingerprint of everything that shapes a venv: a changed requirement file or recipe rebuilds it.
stamp() { cat "$REQ"/*.txt "$0" | sha256sum | cut -c1-16; }

build() {
  local name=$1 dir="$CACHE/$1" engine=${1%%-*} version=${1#*-}
  [ "$(cat "$dir/.complete" 2>/dev/null)" = "$(stamp)" ] && return 0
  rm -rf "$dir"
  "$PY" -m venv "$dir"
  local pip=("$dir/bin/pip" install -q --disable-pip-version-check)
  "${pip[@]}" -c "$REQ/torch-pin.txt" torch
  "${pip[@]}" -r "$REQ/$name.txt" -c "$REQ/torch-pin.txt"
  case $name in
    vllm-0.33.0) "${pip[@]}" --no-deps -r "$REQ/vllm-0.33.0-nodeps.txt" "vllm==$version" ;;
    sglang-0.5.4.post1)
      "${pip[@]}" --no-deps -r "$REQ/sglang-0.5.4.post1-nodeps.txt" "sglang==$version"
      # torchvision from PyPI is a CUDA build: its op registrations fail to load on CPU torch, and
      # sglang 0.5.4.post1 imports torchvision on the server_args path. Parsing needs none of its ops.
      local site; site=$("$dir/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
      echo "# disabled by engine_parsers.sh: CUDA-only ops, not needed to parse argv" >"$site/torchvision/_meta_registrations.py"
      ;;
    sglang-0.5.23)
      "${pip[@]}" --no-deps "sglang==$version"
      # sglang.srt.utils.common imports triton at module level but only uses it inside GPU kernels;
      # a stub saves the 1 GB triton wheel.
      local site; site=$("$dir/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
      mkdir -p "$site/triton"
      printf '%s\n' '"""Stub written by engine_parsers.sh: enough to import sglang.srt.server_args on CPU."""' \
        '__version__ = "0.0.0-stub"' '' '' 'def jit(fn=None, **kw):' '    return fn if fn is not None else (lambda f: f)' \
        >"$site/triton/__init__.py"
      ;;
    *) "${pip[@]}" --no-deps "$engine==$version" ;;
  esac
  "$dir/bin/python" -c "import importlib.metadata as m; v=m.version('$engine'); assert v == '$version', v"
  stamp >"$dir/.complete"
}

pids=(); names=()
for name in "${WANT[@]}"; do
  [ -f "$REQ/$name.txt" ] || { echo "engine_parsers: no requirement file $REQ/$name.txt (known: ${ALL[*]})" >&2; exit 2; }
  build "$name" >"$CACHE/$name.log" 2>&1 &
  pids+=($!); names+=("$name")
  if [ ${#pids[@]} -ge 2 ]; then
    wait "${pids[0]}" || { echo "engine_parsers: building ${names[0]} failed; see $CACHE/${names[0]}.log" >&2; exit 1; }
    pids=("${pids[@]:1}"); names=("${names[@]:1}")
  fi
done
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || { echo "engine_parsers: building ${names[$i]} failed; see $CACHE/${names[$i]}.log" >&2; exit 1; }
done
echo "$CACHE"
