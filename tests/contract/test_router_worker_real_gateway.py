"""The router's leave and join (module_utils/_router_worker, as fleetserve.minimax.router_worker runs it) against
the REAL pinned gateway (smg from the wheels the lab installs) and the engine simulator.

What the rollout relies on: with the worker's own settle time (router_worker_drain_settle_s, default 0) the gateway
drops a left worker at once, where its own --drain-settle-secs keeps the entry listed, draining, for 5 s; and a
request the gateway had already sent to the worker still finishes after the entry is gone (the settle time is a
fixed wait, not a drain: the rollout's drain waits for the engine's in-flight gauge).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from ansible_collections.fleetserve.minimax.plugins.module_utils._router_worker import move

pytestmark = pytest.mark.contract

SIM = Path(__file__).resolve().parents[1] / "engine_sim"
SERVED = "local-org/tiny-minimax-m2"
LATENCY_S = 3.0  # each chat completion of the simulator takes this long: a request in flight during the leave


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _call(base, method, path, body=None, timeout=10.0):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        base + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, text = response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, None
    try:
        return status, json.loads(text)
    except ValueError:  # the gateway's /health answers plain text
        return status, None


def _wait_up(base, seconds, what, proc):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"{what} exited with {proc.returncode}"
        try:
            if _call(base, "GET", "/health", timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{what} did not answer /health within {seconds} s")


@pytest.fixture(scope="module")
def fleet(gateway_python, tmp_path_factory):
    """(gateway base URL, worker URL): one simulated SGLang worker and the real gateway, no worker registered."""
    logs = tmp_path_factory.mktemp("gateway")
    worker_port, gateway_port, metrics_port = _free_port(), _free_port(), _free_port()
    env = dict(os.environ, PYTHONPATH=str(SIM), FLEETSERVE_SIM_STARTUP_S="0.2", FLEETSERVE_SIM_LATENCY_S=str(LATENCY_S))
    argv = ["--model-path", str(logs), "--served-model-name", SERVED, "--host", "127.0.0.1", "--port", str(worker_port)]
    argv.append("--enable-metrics")  # the in-flight gauge the rollout's drain reads
    sim = subprocess.Popen([sys.executable, "-m", "fleetserve_engine_sim", "sglang", *argv], env=env)
    smg = str(Path(gateway_python).parent / "smg")
    gateway_argv = ["launch", "--host", "127.0.0.1", "--port", str(gateway_port)]
    gateway_argv += ["--prometheus-host", "127.0.0.1", "--prometheus-port", str(metrics_port)]
    with open(logs / "smg.log", "w") as log:
        gateway = subprocess.Popen([smg, *gateway_argv], stdout=log, stderr=subprocess.STDOUT)
    base, worker = f"http://127.0.0.1:{gateway_port}", f"http://127.0.0.1:{worker_port}"
    try:
        _wait_up(worker, 30, "the engine simulator", sim)
        _wait_up(base, 120, "the gateway", gateway)
        yield base, worker
    finally:
        for proc in (gateway, sim):
            proc.terminate()
            proc.wait(20)


def _wait_in_flight(worker, seconds=20):
    """Until the engine's own gauge (the one the rollout's drain reads) counts a running request."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        request = urllib.request.Request(worker + "/metrics")
        with urllib.request.urlopen(request, timeout=5) as response:
            for line in response.read().decode().splitlines():
                if line.startswith("sglang:num_running_reqs") and float(line.split()[-1]) >= 1:
                    return
        time.sleep(0.05)
    raise AssertionError(f"no request reached {worker} within {seconds} s")


def _move(base, worker, action, **kwargs):
    return move(lambda m, p, b: _call(base, m, p, b), worker, action, timeout_s=90, poll_s=0.1, **kwargs)


def test_a_leave_sets_the_workers_settle_time_so_it_goes_at_once_and_its_request_still_finishes(fleet):
    base, worker = fleet
    _move(base, worker, "leave", until="gone", drain_settle_s=0)  # whatever an earlier test left
    joined = _move(base, worker, "join")  # as a worker of the gateway's --worker-urls: the gateway's settle time
    assert joined["changed"] is True and joined["entries"][0]["is_healthy"] is True

    answer = {}

    def chat():
        body = {"model": SERVED, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
        answer["status"], answer["body"] = _call(base, "POST", "/v1/chat/completions", body, timeout=30)

    in_flight = threading.Thread(target=chat)
    in_flight.start()
    _wait_in_flight(worker)  # the gateway sent it on; the worker answers LATENCY_S after it came in
    left = _move(base, worker, "leave", until="gone", drain_settle_s=0)
    in_flight.join(30)
    assert left["changed"] is True and left["entries"] == []
    assert left["waited_s"] < 2.5, left  # no settle time: gone with the DELETE, not after the gateway's 5 s
    assert answer["status"] == 200 and answer["body"]["choices"][0]["finish_reason"] == "stop", answer


def test_a_join_registers_the_worker_with_its_own_settle_time(fleet):
    base, worker = fleet
    _move(base, worker, "leave", until="gone", drain_settle_s=0)  # whatever an earlier test left
    assert _move(base, worker, "join", drain_settle_s=0)["entries"][0]["is_healthy"] is True
    left = _move(base, worker, "leave", until="gone")  # no PATCH: the setting came with the POST
    assert left["changed"] is True and left["entries"] == [] and left["waited_s"] < 2.5, left


def test_without_it_the_gateway_keeps_a_left_worker_draining_for_its_own_settle_time(fleet):
    """The control: the gateway's --drain-settle-secs (5 s in smg 1.13.0) is what the setting replaces."""
    base, worker = fleet
    _move(base, worker, "leave", until="gone", drain_settle_s=0)  # whatever an earlier test left
    assert _move(base, worker, "join")["entries"][0]["is_healthy"] is True
    left = _move(base, worker, "leave", until="gone")
    assert left["changed"] is True and left["waited_s"] >= 4.0, left
