"""``python -m fleetserve_engine_sim {vllm|sglang} ARGV...``: run the simulator directly."""

import sys

from fleetserve_engine_sim.server import main

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ("vllm", "sglang"):
        sys.exit("usage: python -m fleetserve_engine_sim {vllm|sglang} ENGINE-ARGV...")
    sys.exit(main(sys.argv[1], sys.argv[2:]))
