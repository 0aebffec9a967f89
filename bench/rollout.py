#!/usr/bin/env python3
"""Benchmark: idempotent re-runs of site.yml on N lab hosts, and a routed rolling update under load.

Runs on its own lab (FLEETSERVE_LAB=fs-rbench: containers fs-rbench-lab-*, network fs-rbench-lab-net,
olah on the network's gateway), removed at the end unless --keep.
1. rerun: for each N (ascending), `fleetserve lab up --hosts N`, converge site.yml on the lab workers
   (not timed), then time a second `fleetserve deploy`: "changed" is the sum over hosts (must be 0).
2. rolling_update: the largest lab (--rollout-hosts) with a router in front, converged by site.yml, then a
   load generator (4 threads, streaming and non-streaming chat completions through the router with the API
   key) running during `fleetserve rollout --canary 1 --batch 25%` of one --kind:
   - engine_version: SGLang hosts, --engine-version 0.5.4.post1 (the lab's other pin);
   - model_revision: SGLang hosts, -e preflight_revision=<the lab hub's second revision>; skipped with a
     message (and exit 0) when the lab has none (lab.MODEL_REVISION_2, published by `lab up`);
   - vllm_image: vLLM hosts (`lab up --vllm N`), -e vllm_docker_image_tag=<the rebuilt stand-in image>: the
     same engine under another image ID, so nothing but the image changes.
   R requests, F failed. The two windows per host are measured from outside, on the controller's clock, by
   a watcher polling every 0.2 s during the rollout (RotationWatch):
   - out_of_rotation_s: from the first poll where the router no longer lists the host as a healthy, ready
     worker (it left the router: DELETE /workers, status draining or gone) to the first poll where it does
     again (rejoined) - what clients lose;
   - engine_restart_s: from the first poll where the engine's own /health (on the host, not through the
     router) stops answering 200 (the engine stopping: both engines fail /health from SIGTERM on) to the
     first poll where it answers 200 again (the new engine healthy) - the part no rollout can avoid.
   Their ratio (target <= 1.15) is what the drained window costs beyond the restart itself: the drain wait,
   installs done while drained, verification and the router's re-admission. Each is the mean over the
   updated hosts; the per-host values are reported too. Resolution: the poll interval, so expect +-0.2 s.
   --engine-startup-s S: every stand-in engine of the bench's lab "loads" for S seconds on each start (the
   simulator's FLEETSERVE_SIM_STARTUP_S, through FLEETSERVE_LAB_ENGINE_STARTUP_S, which the lab inventory
   reads: inventories/lab/group_vars/all/engine.yml; the engines' start timeouts grow by as much), so the
   ratio can also be measured against a restart as long as a real engine's (real vLLM 0.26.0 took 88.6 s
   from launch to ready on an H200: docs/results.md, "real_engine"). Default: the stand-in's own 2 s.

usage: bench/rollout.py [--hosts 1,4,8] [--kind engine_version|model_revision|vllm_image] [--rollout-hosts N]
                        [--engine-startup-s S] [--rolling-only] [--rerun-only] [--keep]
prints {"rerun": [{"hosts": N, "seconds": t, "changed": c, ...}], "rolling_update": {"kind", "hosts",
"requests": R, "failed": F, "out_of_rotation_s_per_host", "engine_restart_s_per_host", "ratio", ...}}
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
import threading
import time
import urllib.error
import urllib.request
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


KINDS = ("engine_version", "model_revision", "vllm_image")


def _ip(host: str) -> str:
    fmt = '{{(index .NetworkSettings.Networks "' + lab.network_name() + '").IPAddress}}'
    return subprocess.run(
        ["docker", "inspect", "-f", fmt, host], capture_output=True, text=True, check=True
    ).stdout.strip()


def _second_revision() -> str | None:
    """The lab hub's second revision of the lab model, if this lab has one (helper data in fleetserve.lab)."""
    revision = getattr(lab, "MODEL_REVISION_2", None)
    hub = (lab.status().get("hub") or {}).get("url")
    if not revision or not hub:
        return None
    try:
        with urllib.request.urlopen(f"{hub}/api/models/{lab.MODEL_REPO}/revision/{revision}", timeout=10) as answer:
            return revision if answer.status == 200 else None
    except OSError:
        return None


def _rollout_args(kind: str) -> list[str] | None:
    if kind == "engine_version":
        return ["--engine-version", "0.5.4.post1"]
    if kind == "vllm_image":
        return ["-e", f"vllm_docker_image_tag={lab.vllm_images()['rebuilt'].rsplit(':', 1)[1]}"]
    revision = _second_revision()
    return ["-e", f"preflight_revision={revision}"] if revision else None


class RotationWatch(threading.Thread):
    """Polls, every `interval` s on the controller's clock, the router's worker list (a host is in rotation
    while listed healthy and not draining) and each engine's /health on the host itself (200 = up). Records
    the out-of-rotation and engine-down intervals per host (see the module docstring)."""

    def __init__(self, router_url: str, key: str, hosts: dict[str, str], interval: float = 0.2):
        super().__init__(daemon=True)
        self.router_url, self.key, self.hosts, self.interval = router_url, key, hosts, interval
        self.stop = threading.Event()
        self.out: dict[str, list[list[float]]] = {h: [] for h in hosts}
        self.down: dict[str, list[list[float]]] = {h: [] for h in hosts}

    def _get(self, url: str, key: str | None = None):
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
        try:
            with urllib.request.urlopen(request, timeout=2) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as err:
            return err.code, b""
        except OSError:
            return None, b""

    def _in_rotation(self) -> set[str] | None:
        status, body = self._get(f"{self.router_url}/workers", self.key)
        if status != 200:
            return None  # the router did not answer: no evidence either way
        urls = [
            w["url"]
            for w in json.loads(body)["workers"]
            if w.get("is_healthy") and w.get("status", "ready") not in ("draining", "pending")
        ]
        return {h for h in self.hosts if any(f"://{h}:" in u for u in urls)}

    @staticmethod
    def _mark(spans: list[list[float]], bad: bool, now: float) -> None:
        if bad and (not spans or spans[-1][1] is not None):
            spans.append([now, None])
        elif not bad and spans and spans[-1][1] is None:
            spans[-1][1] = now

    def run(self) -> None:
        while not self.stop.is_set():
            now = time.time()
            routed = self._in_rotation()
            for host, address in self.hosts.items():
                if routed is not None:
                    self._mark(self.out[host], host not in routed, now)
                self._mark(self.down[host], self._get(f"http://{address}:8000/health")[0] != 200, now)
            self.stop.wait(max(0.0, self.interval - (time.time() - now)))

    def windows(self) -> dict[str, dict]:
        """Per host: total seconds out of rotation and engine down (open spans end now), and the span count."""
        now = time.time()
        total = lambda spans: round(sum((end or now) - start for start, end in spans), 2)  # noqa: E731
        return {
            h: {
                "out_of_rotation_s": total(self.out[h]),
                "engine_restart_s": total(self.down[h]),
                "out_spans": len(self.out[h]),
                "down_spans": len(self.down[h]),
            }
            for h in self.hosts
        }


def rolling_update(kind: str, n: int) -> dict:
    """A converged lab of n workers (vLLM hosts for kind vllm_image) and a router; the rollout of `kind`
    under load, measured by RotationWatch."""
    vllm = n if kind == "vllm_image" else 0
    log(f"lab up --hosts {n} --vllm {vllm} --routers 1")
    lab.up(n, routers=1, vllm=vllm)
    code, result = fleetserve_json("deploy")
    if code != 0:
        raise SystemExit(f"site.yml failed: {json.dumps(result['hosts'])[:2000]}")
    args = _rollout_args(kind)
    if args is None:
        log(f"rolling_update {kind}: skipped, the lab hub has no second revision of {lab.MODEL_REPO}")
        return {"kind": kind, "skipped": f"the lab hub has no second revision of {lab.MODEL_REPO}"}
    router = lab.existing_hosts("router")[0]
    url = f"http://{_ip(router)}:30000"
    workers = {h: _ip(h) for h in lab.existing_hosts("worker")}
    watch = RotationWatch(url, lab.api_key(), workers)
    watch.start()
    started = time.monotonic()
    with Load(url, lab.api_key(), MODEL, threads=4) as load:
        code, result = fleetserve_json("rollout", *args, "--canary", "1", "--batch", "25%")
        time.sleep(2)
    watch.stop.set()
    watch.join(5)
    summary = load.summary()
    outcomes = result.get("rollout", {})
    actions = sorted({o["action"] for o in outcomes.values()})
    log(f"rollout: exit {code} in {round(time.monotonic() - started, 1)}s, actions {actions}, load {summary}")
    per_host = watch.windows()
    updated = [h for h, o in outcomes.items() if o["action"] == "updated" and h in per_host]
    mean = lambda key: (
        round(sum(per_host[h][key] for h in updated) / len(updated), 2) if updated else None
    )  # noqa: E731
    out_s, restart_s = mean("out_of_rotation_s"), mean("engine_restart_s")
    return {
        "kind": kind,
        "hosts": n,
        "requests": summary["requests"],
        "failed": summary["failed"],
        "out_of_rotation_s_per_host": out_s,
        "engine_restart_s_per_host": restart_s,
        "ratio": round(out_s / restart_s, 2) if out_s and restart_s else None,
        "per_host": per_host,
        "rollout_exit": code,
        "rollout_s": round(time.monotonic() - started, 1),
        "actions": actions,
        "engine_startup_s": float(os.environ.get("FLEETSERVE_LAB_ENGINE_STARTUP_S", "2")),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", default="1,4,8", help="comma-separated lab sizes, ascending (default 1,4,8)")
    ap.add_argument("--keep", action="store_true", help="leave the lab up afterwards")
    ap.add_argument("--rerun-only", action="store_true", help="measure the re-runs only, no rolling update")
    ap.add_argument("--rolling-only", action="store_true", help="measure the rolling update only, no re-runs")
    ap.add_argument("--kind", choices=KINDS, default="engine_version", help="what the rolling update changes")
    ap.add_argument(
        "--rollout-hosts", type=int, help="workers of the rolling update's lab (default: the largest of --hosts)"
    )
    ap.add_argument(
        "--engine-startup-s",
        type=float,
        help="seconds every stand-in engine loads on each start (default: the stand-in's own, 2)",
    )
    args = ap.parse_args()
    if args.engine_startup_s is not None:
        if not 0 <= args.engine_startup_s <= 3600:
            ap.error("--engine-startup-s: between 0 and 3600 seconds")
        # Read by the lab inventory on the controller (ansible-playbook inherits this environment).
        os.environ["FLEETSERVE_LAB_ENGINE_STARTUP_S"] = str(args.engine_startup_s)
    counts = sorted(int(n) for n in args.hosts.split(","))
    result: dict = {}
    try:
        if not args.rolling_only:
            result["rerun"] = rerun(counts, routers=1)
        if not args.rerun_only:
            result["rolling_update"] = rolling_update(args.kind, args.rollout_hosts or counts[-1])
    finally:
        if not args.keep:
            lab.down()
        print(json.dumps(result))


if __name__ == "__main__":
    main()
