#!/usr/bin/env python3
"""Benchmark: weights to N lab hosts, every host from the origin (naive) versus the weights role's fan-out.

The origin is olah (offline, local git mirror) behind a bandwidth-capped TCP proxy that counts the bytes
it serves, so the origin, not this machine's cores, is the bottleneck, and origin traffic is measured.
Lab hosts are systemd containers (fleetserve/lab-systemd:bookworm) named fs-weights-N on the network
fs-weights-net. Each timed run is `ansible-playbook playbooks/weights.yml` on the first N hosts, with the
model directory wiped, after the role ran once on every host for config.json only (packages, the
downloader venv from a local wheelhouse, the peer server files: not timed).

usage: bench/weights_fanout.py [--hosts 1,4,8] [--payload-mb 200] [--rate-mb 6] [--shards 32] [--keep]
prints {"payload_bytes": B, "results": [{"mode": "naive|fanout", "hosts": N, "seconds": t, "origin_bytes": b}]}
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from fleetserve.lab import SYSTEMD_RUN_ARGS  # noqa: E402  (the same test-host flags as the lab)

ROOT = Path(__file__).resolve().parents[1]
IMAGE = os.environ.get("FLEETSERVE_LAB_IMAGE", "fleetserve/lab-systemd:bookworm")
NET = "fs-weights-net"
PREFIX = "fs-weights-"
OLAH_PORT, PROXY_PORT = 18240, 18241
REPO = "bench-org/bench-m2"
PIP_PACKAGES = ["huggingface_hub==2.4.0", "hf-xet==1.8.0"]
MODEL_DIR = "/srv/models/bench-m2"


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def sh(*cmd, check=True, **kw):
    return subprocess.run(cmd, check=check, capture_output=True, text=True, **kw)


class ThrottledProxy:
    """TCP proxy whose server-to-client direction shares one token bucket (the origin's uplink)."""

    def __init__(self, listen_host, listen_port, target_port, rate):
        self.listen, self.target_port, self.rate = (listen_host, listen_port), target_port, rate
        self.sent = 0
        self._allowance, self._last = 0.0, time.monotonic()
        self.loop = asyncio.new_event_loop()
        self._lock = asyncio.Lock()

    async def _take(self, n):
        async with self._lock:
            while True:
                now = time.monotonic()
                self._allowance = min(self.rate * 0.25, self._allowance + (now - self._last) * self.rate)
                self._last = now
                if self._allowance >= n:
                    self._allowance -= n
                    return
                await asyncio.sleep((n - self._allowance) / self.rate)

    async def _pipe(self, reader, writer, throttled):
        try:
            while True:
                data = await reader.read(64 * 1024)
                if not data:
                    break
                if throttled:
                    await self._take(len(data))
                    self.sent += len(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _handle(self, client_r, client_w):
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(self._pipe(client_r, up_w, False), self._pipe(up_r, client_w, True))

    def start(self):
        ready = threading.Event()

        def run():
            asyncio.set_event_loop(self.loop)
            server = self.loop.run_until_complete(asyncio.start_server(self._handle, *self.listen))
            self.server = server
            ready.set()
            self.loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)

    def stop(self):
        """Close the listening socket and end the loop's thread (connections still open are dropped)."""

        async def close():
            self.server.close()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


def load_maker():
    spec = importlib.util.spec_from_file_location("make_tiny_repos", ROOT / "scripts/testenv/make_tiny_repos.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def network_gateway():
    if sh("docker", "network", "inspect", NET, check=False).returncode != 0:
        sh("docker", "network", "create", NET)
    return sh("docker", "network", "inspect", NET, "-f", "{{(index .IPAM.Config 0).Gateway}}").stdout.strip()


def start_hosts(n):
    for i in range(1, n + 1):
        name = "%s%d" % (PREFIX, i)
        if sh("docker", "inspect", name, check=False).returncode == 0:
            continue
        sh(
            "docker",
            "run",
            "-d",
            "--name",
            name,
            "--hostname",
            name,
            "--network",
            NET,
            *SYSTEMD_RUN_ARGS,
            "-v",
            "%s:/srv/wheels:ro" % wheelhouse(),
            IMAGE,
        )
    for i in range(1, n + 1):
        deadline = time.time() + 60
        while (
            "running"
            not in sh("docker", "exec", "%s%d" % (PREFIX, i), "systemctl", "is-system-running", check=False).stdout
            and "degraded"
            not in sh("docker", "exec", "%s%d" % (PREFIX, i), "systemctl", "is-system-running", check=False).stdout
        ):
            if time.time() > deadline:
                raise RuntimeError("lab host %s%d did not boot" % (PREFIX, i))
            time.sleep(0.5)


def wheelhouse():
    d = Path(os.environ.get("FLEETSERVE_CACHE", Path.home() / ".cache" / "fleetserve")) / "wheels-weights"
    if not (d / ".ready").exists():
        d.mkdir(parents=True, exist_ok=True)
        # The lab hosts run Debian 12's CPython 3.11, like the test venv: its pip picks matching wheels.
        sh(
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--dest",
            str(d),
            "--only-binary=:all:",
            "--python-version",
            "3.11",
            "--platform",
            "manylinux2014_x86_64",
            "--platform",
            "manylinux_2_28_x86_64",
            *PIP_PACKAGES,
        )
        (d / ".ready").touch()
    return d


def write_inventory(path, n):
    lines = ["[lab]"] + ["%s%d" % (PREFIX, i) for i in range(1, n + 1)]
    lines += ["[lab:vars]", "ansible_connection=community.docker.docker", "ansible_python_interpreter=/usr/bin/python3"]
    path.write_text("\n".join(lines) + "\n")


def ansible_env():
    env = dict(os.environ)
    cpath = ROOT / ".cache" / "collections"
    link = cpath / "ansible_collections" / "fleetserve" / "minimax"
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink():
        link.symlink_to(ROOT)
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(cpath),
        ANSIBLE_PIPELINING="True",
        ANSIBLE_FORKS="10",
        ANSIBLE_HOST_KEY_CHECKING="False",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks",
        PATH=os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", ""),
    )
    return env


LOG_DIR = None


def playbook(inv, extra, limit=None, play=None):
    cmd = ["ansible-playbook", "-i", str(inv), str(play or ROOT / "playbooks" / "weights.yml"), "-e", json.dumps(extra)]
    if limit:
        cmd += ["--limit", limit]
    t = time.monotonic()
    proc = subprocess.run(cmd, env=ansible_env(), capture_output=True, text=True)
    took = time.monotonic() - t
    if LOG_DIR:
        name = "%s-%s-%s.log" % (extra.get("weights_distribution", "prepare"), (limit or "all").count(",") + 1, int(t))
        (LOG_DIR / name).write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise RuntimeError("ansible-playbook failed:\n" + proc.stdout[-4000:] + proc.stderr[-2000:])
    return took


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", default="1,4,8")
    ap.add_argument("--payload-mb", type=float, default=200)
    ap.add_argument("--rate-mb", type=float, default=6, help="origin bandwidth cap, MiB/s")
    ap.add_argument("--modes", default="naive,fanout")
    # The streamed copy moves a shard once it has landed at the seed. huggingface-hub downloads
    # weights_max_workers (8) files at once, so shards land in waves: MiniMax-M2.x's 130 shards make about
    # 16 waves. With 8 shards every shard lands in the last second, the one shape no real checkpoint has;
    # 32 keeps 4 waves at a size the bench can move.
    ap.add_argument("--shards", type=int, default=32)
    ap.add_argument("--keep", action="store_true", help="leave the lab hosts running")
    ap.add_argument("--log-dir", type=Path, help="keep each ansible-playbook output here")
    a = ap.parse_args()
    global LOG_DIR
    LOG_DIR = a.log_dir
    if LOG_DIR:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
    sizes = [int(x) for x in a.hosts.split(",")]
    olah_venv = sh("bash", str(ROOT / "scripts/testenv/olah.sh")).stdout.strip().splitlines()[-1]
    work = Path(tempfile.mkdtemp(prefix="fs-weights-bench-"))
    maker = load_maker()
    shards = a.shards
    log("building a %.0f MB repo in %d shards" % (a.payload_mb, shards))
    maker.publish(work / "mirrors", work / "repos", REPO, shards=shards, shard_mb=a.payload_mb / shards)
    gateway = network_gateway()
    (work / "olah.toml").write_text(
        maker.olah_config(work / "mirrors", work / "repos", OLAH_PORT).replace(
            "127.0.0.1:%d" % OLAH_PORT, "%s:%d" % (gateway, PROXY_PORT)
        )
    )
    olah = subprocess.Popen(
        [os.path.join(olah_venv, "bin", "olah-cli"), "-c", str(work / "olah.toml")],
        cwd=work,
        stdout=open(work / "olah.log", "w"),
        stderr=subprocess.STDOUT,
    )
    proxy = ThrottledProxy(gateway, PROXY_PORT, OLAH_PORT, a.rate_mb * 1024 * 1024)
    results = []
    try:
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen("http://127.0.0.1:%d/api/models/%s/revision/main" % (OLAH_PORT, REPO), timeout=2)
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.3)
        proxy.start()
        log("starting %d lab hosts" % max(sizes))
        start_hosts(max(sizes))
        inv = work / "inventory.ini"
        write_inventory(inv, max(sizes))
        base = {
            "weights_repo_id": REPO,
            "weights_dir": MODEL_DIR,
            "weights_endpoint": "http://%s:%d" % (gateway, PROXY_PORT),
            "weights_pip_extra_args": "--no-index --find-links /srv/wheels",
        }
        log("preparing the lab hosts (the role once per mode on config.json only; not timed)")
        for mode in a.modes.split(","):
            distribution = "each" if mode == "naive" else "fanout"
            playbook(inv, dict(base, weights_distribution=distribution, weights_allow_patterns=["config.json"]))
        payload = None
        load_before = round(os.getloadavg()[0], 2)
        for mode in a.modes.split(","):
            for n in sizes:
                for i in range(1, max(sizes) + 1):
                    sh("docker", "exec", "%s%d" % (PREFIX, i), "rm", "-rf", "/srv/models")
                proxy.sent = 0
                extra = dict(base, weights_distribution="each" if mode == "naive" else "fanout")
                limit = ",".join("%s%d" % (PREFIX, i) for i in range(1, n + 1))
                seconds = playbook(inv, extra, limit=limit)
                if payload is None:
                    out = sh(
                        "docker",
                        "exec",
                        PREFIX + "1",
                        "python3",
                        "-c",
                        "import json;m=json.load(open('%s/.fleetserve-weights.json'));"
                        "print(sum(f['size'] for f in m['files'].values()))" % MODEL_DIR,
                    )
                    payload = int(out.stdout.strip())
                results.append({"mode": mode, "hosts": n, "seconds": round(seconds, 2), "origin_bytes": proxy.sent})
                log(json.dumps(results[-1]))
        print(
            json.dumps(
                {
                    "payload_bytes": payload,
                    "origin_rate_bytes_per_s": int(a.rate_mb * 1024 * 1024),
                    "load_average_1m_before_after": [load_before, round(os.getloadavg()[0], 2)],
                    "results": results,
                }
            )
        )
    finally:
        olah.terminate()
        olah.wait(10)
        if not a.keep:
            for i in range(1, max(sizes) + 1):
                sh("docker", "rm", "-f", "%s%d" % (PREFIX, i), check=False)
            sh("docker", "network", "rm", NET, check=False)
        subprocess.run(["rm", "-rf", str(work)], check=False)


if __name__ == "__main__":
    main()
