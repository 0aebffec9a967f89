"""`python3 -m vllm.entrypoints.openai.api_server ARGS` for tests: engine-sim with vLLM's behaviour."""

import os
import sys

import vllm
from fleetserve_engine_sim.server import main

if __name__ == "__main__":
    os.environ.setdefault("FLEETSERVE_SIM_VERSION", vllm.__version__)
    sys.exit(main("vllm", sys.argv[1:]))
