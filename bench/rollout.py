#!/usr/bin/env python3
"""Benchmark: idempotent re-runs of site.yml on N lab hosts, and a routed rolling update under load.

Runs on its own lab (FLEETSERVE_LAB=fs-rbench: containers fs-rbench-lab-*, network fs-rbench-lab-net,
olah on the network's gateway), removed at the end unless --keep.
1. rerun: for each N (ascending), `fleetserve lab up --hosts N`, converge site.yml on the lab workers
   (not timed), then time a second `fleetserve deploy`: "changed" is the sum over hosts (must be 0).
2. rolling_update: a router in front of the largest lab (router.yml), a load generator (4 threads,
   streaming and non-streaming chat completions through the router with the API key) running during
   `fleetserve rollout --engine-version 0.5.4.post1 --canary 1 --batch 25%`; R requests, F failed.

usage: bench/rollout.py [--hosts 1,4,8] [--keep] [--rerun-only]
prints {"rerun": [{"hosts": N, "seconds": t, "changed": c, ...}], "rolling_update": {"requests": R, "failed": F, ...}}
(each rerun row also has host_tasks, cpu_seconds, controller_cpu_s_per_host, cores and load_1m_after: see deploy()).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests" / "integration"))
os.environ["FLEETSERVE_LAB"] = "fs-rbench"
os.environ.setdefault("FLEETSERVE_STATE_DIR", tempfile.mkdtemp(prefix="fs-rbench-state-"))

from fleetserve import cli, lab, paths, runner  # noqa: E402
from loadgen import Load  # noqa: E402

MODEL = "local-org/tiny-minimax-m2"


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def fleetserve_json(*argv: str) -> tuple[int, dict]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main([*argv, "--json"])
    return code, json.loads(out.getvalue())


def busy_cpu_seconds() -> float:
    """CPU time this machine (controller and lab containers alike, and anything else running) has spent busy."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def controller_cpu_seconds() -> float:
    """CPU time of the controller alone: this process and every process it waited for (ansible-playbook, its
    forked workers, the `docker exec` clients of the lab's connection), not the lab hosts' own processes."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def deploy(n: int) -> dict:
    started, cpu, controller = time.monotonic(), busy_cpu_seconds(), controller_cpu_seconds()
    code, result = fleetserve_json("deploy", "--limit", "lab_workers")
    controller = controller_cpu_seconds() - controller
    seconds = round(time.monotonic() - started, 1)
    if code != 0:
        raise SystemExit(f"deploy on {n} host(s) failed: {json.dumps(result['hosts'])[:2000]}")
    return {
        "seconds": seconds,
        "changed": sum(h["changed"] for h in result["hosts"]),
        # Task results summed over hosts (ok includes changed), and the busy CPU time of the whole machine
        # during the run: with every host and the controller on the same cores, cpu_seconds / cores is a
        # floor under the wall time that no playbook change below the task count can go beneath.
        "host_tasks": sum(h["ok"] + h["skipped"] for h in result["hosts"]),
        "cpu_seconds": round(busy_cpu_seconds() - cpu, 1),
        "controller_cpu_s_per_host": round(controller / n, 2),
    }


def rerun(counts: list[int], routers: int) -> list[dict]:
    rows = []
    for n in counts:
        log(f"lab up --hosts {n}")
        lab.up(n, routers=routers if n == counts[-1] else 0)
        log(f"  converge: {deploy(n)}")
        row = deploy(n)
        log(f"  re-run:   {row}")
        rows.append({"hosts": n, **row, "cores": os.cpu_count(), "load_1m_after": round(os.getloadavg()[0], 2)})
    return rows


def rolling_update() -> dict:
    routed = runner.run_playbook("router.yml", inventory=paths.lab_inventory(), action="router")
    if not routed.succeeded:
        raise SystemExit(f"router.yml failed: {[h.failures for h in routed.hosts.values()]}")
    router = lab.existing_hosts("router")[0]
    fmt = '{{(index .NetworkSettings.Networks "' + lab.network_name() + '").IPAddress}}'
    ip = subprocess.run(["docker", "inspect", "-f", fmt, router], capture_output=True, text=True, check=True)
    url = f"http://{ip.stdout.strip()}:30000"
    started = time.monotonic()
    with Load(url, lab.api_key(), MODEL, threads=4) as load:
        code, result = fleetserve_json("rollout", "--engine-version", "0.5.4.post1", "--canary", "1", "--batch", "25%")
        time.sleep(2)
    summary = load.summary()
    actions = sorted({o["action"] for o in result.get("rollout", {}).values()})
    log(f"rollout: exit {code} in {round(time.monotonic() - started, 1)}s, actions {actions}, load {summary}")
    return {"requests": summary["requests"], "failed": summary["failed"], "rollout_exit": code, "actions": actions}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", default="1,4,8", help="comma-separated lab sizes, ascending (default 1,4,8)")
    ap.add_argument("--keep", action="store_true", help="leave the lab up afterwards")
    ap.add_argument("--rerun-only", action="store_true", help="measure the re-runs only, no rolling update")
    args = ap.parse_args()
    counts = sorted(int(n) for n in args.hosts.split(","))
    result: dict = {}
    try:
        result["rerun"] = rerun(counts, routers=1)
        if not args.rerun_only:
            result["rolling_update"] = rolling_update()
    finally:
        if not args.keep:
            lab.down()
        print(json.dumps(result))


if __name__ == "__main__":
    main()
