"""The `vllm` console script for tests: only `vllm serve ...` is simulated."""

import os
import sys

import vllm
from fleetserve_engine_sim.server import main as sim_main


def main():
    if sys.argv[1:2] != ["serve"]:
        sys.exit("vllm (engine-sim stand-in): only `vllm serve` is simulated")
    os.environ.setdefault("FLEETSERVE_SIM_VERSION", vllm.__version__)
    sys.exit(sim_main("vllm", sys.argv[1:]))
