#!/usr/bin/env python3
"""How late does openai_endpoint_info notice that an endpoint became ready?

Each run starts the module (a real subprocess, as Ansible runs it) against a local fake endpoint that
becomes healthy after a random delay, then measures the time from the endpoint's first healthy
answer to the module exiting with success (so the models and chat stages are included). Runs
alternate between the two ways engines come up:

* sglang: the port is open at once, /health answers 503 until the delay has passed;
* vllm: nothing listens until the delay has passed, then /health answers 200.

usage: bench/readiness.py [--runs N] [--sleep S] [--seed N]
Prints {"runs": N, "detect_latency_s": {"median": x, "max": y}} on stdout (target: max <= 1.0 s);
per-run lines go to stderr.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration" / "peers"))
from fake_openai import Behaviour, FakeOpenAI, free_port  # noqa: E402

MODULE = "ansible_collections.fleetserve.minimax.plugins.modules.openai_endpoint_info"


def one_run(mode: str, delay: float, sleep: float, collections: Path, workdir: Path) -> float:
    port = free_port()
    behaviour = Behaviour(health="warmup" if mode == "sglang" else "ok", healthy_after=delay)
    server = FakeOpenAI(behaviour, port=port)
    args = workdir / "args.json"
    args.write_text(
        json.dumps(
            {
                "ANSIBLE_MODULE_ARGS": {
                    "base_url": server.url,
                    "served_model_name": "fake-org/model",
                    "engine": mode,
                    "timeout": delay + 30,
                    "sleep": sleep,
                    "max_tokens": 16,
                }
            }
        )
    )
    timer = None
    if mode == "sglang":
        server.start()
    else:
        timer = threading.Timer(delay, server.start)
    proc = subprocess.Popen(
        [sys.executable, "-m", MODULE, str(args)],
        stdout=subprocess.PIPE,
        text=True,
        env={"PYTHONPATH": str(collections), "PATH": "/usr/bin:/bin"},
    )
    if timer:
        timer.start()
    try:
        out, _ = proc.communicate(timeout=delay + 60)
        ended = time.monotonic()
    finally:
        if timer:
            timer.join()
        server.stop()
    result = json.loads(out)
    if result.get("failed"):
        raise SystemExit("readiness bench: the module failed: %s" % result.get("msg"))
    return ended - server.first_healthy_at


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--sleep", type=float, default=0.2, help="the module's poll interval (its default: 0.2)")
    parser.add_argument("--seed", type=int, default=4)
    opts = parser.parse_args()
    rng = random.Random(opts.seed)
    latencies = []
    with tempfile.TemporaryDirectory(prefix="fs-verify-bench-") as tmp:
        collections = Path(tmp) / "collections"
        link = collections / "ansible_collections" / "fleetserve" / "minimax"
        link.parent.mkdir(parents=True)
        link.symlink_to(ROOT)
        for i in range(opts.runs):
            mode = ("sglang", "vllm")[i % 2]
            delay = rng.uniform(0.5, 3.0)
            latency = one_run(mode, delay, opts.sleep, collections, Path(tmp))
            latencies.append(latency)
            print(
                "run %2d %-6s ready after %.2f s, detected %.3f s later" % (i + 1, mode, delay, latency),
                file=sys.stderr,
            )
    print(
        json.dumps(
            {
                "runs": len(latencies),
                "detect_latency_s": {"median": round(statistics.median(latencies), 3), "max": round(max(latencies), 3)},
            }
        )
    )


if __name__ == "__main__":
    main()
