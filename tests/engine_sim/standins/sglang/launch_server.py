"""`python -m sglang.launch_server ARGS` for tests: the engine simulator with SGLang's behaviour."""

import os
import sys

from fleetserve_engine_sim.server import main

import sglang

if __name__ == "__main__":
    os.environ.setdefault("FLEETSERVE_SIM_VERSION", sglang.__version__)
    sys.exit(main("sglang", sys.argv[1:]))
