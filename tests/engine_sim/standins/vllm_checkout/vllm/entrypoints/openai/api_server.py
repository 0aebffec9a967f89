"""`python3 -m vllm.entrypoints.openai.api_server` run from a vLLM source checkout (test stand-in).

Like a real checkout it needs the image's compiled parts beside its Python code: without them it fails the
way guide A describes (No module named 'vllm._C'). With them it logs where it runs from (the molecule
verify asserts that line), then serves engine-sim.
"""

import os
import sys

import vllm
from fleetserve_engine_sim.server import main

PACKAGE_DIR = os.path.dirname(os.path.abspath(vllm.__file__))
COMPILED = ("_C.abi3.so", os.path.join("vllm_flash_attn", "_vllm_fa2_C.abi3.so"))

if __name__ == "__main__":
    missing = [part for part in COMPILED if not os.path.isfile(os.path.join(PACKAGE_DIR, part))]
    if missing:
        sys.exit(f"ModuleNotFoundError: No module named 'vllm._C' ({', '.join(missing)} not in {PACKAGE_DIR})")
    print(f"vllm {vllm.__version__} (source checkout) from {PACKAGE_DIR}", file=sys.stderr, flush=True)
    os.environ["FLEETSERVE_SIM_VERSION"] = vllm.__version__  # the image's ENV names the image's release
    sys.exit(main("vllm", sys.argv[1:]))
