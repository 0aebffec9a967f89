"""Routed rolling updates on the lab under load, end to end, with fault injection.

One module-scoped lab (FLEETSERVE_LAB=fs-e2e): 3 workers running the engine simulator as sglang, the
real SGLang Model Gateway on a router host in front, deployed by site.yml + router.yml. A load
generator sends streaming and non-streaming chat completions through the router, with the API key,
while `fleetserve rollout` runs. The tests run in file order and each starts from the state the
previous one left (the versions are noted per test):
1. a rollout 0.5.23 -> 0.5.4.post1 under load: every worker moves, no request fails;
2. a rollout back to 0.5.23 whose new release crashes (lab fault injection): the canary is rolled
   back, the rollout stops, the other workers are untouched, no request fails;
3. a worker killed (docker kill) during a rollout: the rollout reports it unreachable, the others
   finish, the router keeps serving; the only failed requests are the ones the kill cut off.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.request

import pytest
from loadgen import Load

from fleetserve import cli, lab, paths, runner

# Not in the default suite yet: the module has not yet passed end to end in one run (its tests passed
# piecewise while the router and rollout plays were being fixed, and a full run costs ~15 min of the
# suite's budget). Run it with `scripts/test --only pytest -- tests/integration/test_rollout_lab.py
# --runxfail`. bench/rollout.py measured the same rolling update under load: 6940 requests, 0 failed.
pytestmark = [
    pytest.mark.integration,
    pytest.mark.xfail(run=False, reason="opt-in until it passes end to end: run with --runxfail"),
]

WORKERS = ["fs-e2e-lab-1", "fs-e2e-lab-2", "fs-e2e-lab-3"]
ROUTER = "fs-e2e-lab-router-1"
MODEL = "local-org/tiny-minimax-m2"
OLD, NEW = "0.5.23", "0.5.4.post1"
# The canary first, then the other two together: two rounds instead of three.
ORDER = ["--canary", "1", "--batch", "2"]


def _ip(host: str) -> str:
    fmt = '{{(index .NetworkSettings.Networks "' + lab.network_name() + '").IPAddress}}'
    return subprocess.run(
        ["docker", "inspect", "-f", fmt, host], capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    if (
        shutil.which("docker") is None
        or subprocess.run(["docker", "version"], capture_output=True, check=False).returncode
    ):
        pytest.fail("the rollout lab test needs a Docker engine: run scripts/lab/start-dockerd.sh")
    mp = pytest.MonkeyPatch()
    mp.setenv("FLEETSERVE_LAB", "fs-e2e")
    mp.setenv("FLEETSERVE_STATE_DIR", str(tmp_path_factory.mktemp("state")))
    try:
        assert cli.main(["lab", "up", "--hosts", "3", "--routers", "1"]) == 0
        assert cli.main(["deploy", "--limit", "lab_workers"]) == 0, "site.yml failed on the lab workers"
        routed = runner.run_playbook("router.yml", inventory=paths.lab_inventory(), action="router")
        assert routed.succeeded, [h.failures for h in routed.hosts.values()]
        yield {"url": f"http://{_ip(ROUTER)}:30000", "key": lab.api_key()}
    finally:
        cli.main(["lab", "down"])
        mp.undo()


def _versions() -> dict[str, str]:
    """The sglang version each worker's current venv holds (what the unit runs)."""
    found = {}
    for worker in WORKERS:
        proc = subprocess.run(
            [
                "docker",
                "exec",
                worker,
                "/opt/fleetserve/sglang/venv/bin/python",
                "-c",
                "import importlib.metadata as m; print(m.version('sglang'))",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        found[worker] = proc.stdout.strip() or f"error: {proc.stderr.strip()[-200:]}"
    return found


def _routed(fleet) -> list[str]:
    """The workers the gateway routes to, by host name (its worker URLs are http://<host>:<port>)."""
    request = urllib.request.Request(f"{fleet['url']}/workers", headers={"Authorization": f"Bearer {fleet['key']}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        urls = [w["url"] for w in json.load(response)["workers"]]
    return sorted(w for w in WORKERS if any(f"://{w}:" in url for url in urls))


def _cli_json(capsys, *argv) -> tuple[int, dict]:
    code = cli.main([*argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


def _status(capsys, expect_code: int = 0) -> dict:
    code, result = _cli_json(capsys, "status")
    assert code == expect_code, result
    return result["status"]


def _load(fleet) -> Load:
    return Load(fleet["url"], fleet["key"], MODEL, threads=4)


def test_router_serves_through_every_worker(fleet, capsys):
    status = _status(capsys)
    assert (status[ROUTER]["role"], status[ROUTER]["unit"], status[ROUTER]["health"]) == ("router", "running", 200)
    for worker in WORKERS:
        assert (status[worker]["version"], status[worker]["health"], status[worker]["routers"]) == (OLD, 200, [ROUTER])
    load = _load(fleet)
    assert [load.one(stream) for stream in (False, True, False, True)] == [None] * 4
    assert Load(fleet["url"], "not-the-key", MODEL).one(False) == "HTTP 401", "the router must require the API key"


def test_rollout_under_load_moves_every_worker_without_a_failed_request(fleet, capsys):
    with _load(fleet) as load:
        code, result = _cli_json(capsys, "rollout", "--engine-version", NEW, *ORDER)
    summary = load.summary()
    assert code == 0, result["rollout"]
    assert {h: o["action"] for h, o in result["rollout"].items()} == {w: "updated" for w in WORKERS}
    assert summary["failed"] == 0, summary
    assert summary["requests"] >= 50 and summary["streamed"] >= 20, summary
    assert _versions() == {w: NEW for w in WORKERS}
    assert _routed(fleet) == WORKERS


def test_release_failing_verification_is_rolled_back_and_stops_the_rollout(fleet, capsys):
    fault = json.dumps({OLD: {"FLEETSERVE_SIM_FAILURE": "crash", "FLEETSERVE_SIM_STARTUP_S": "1"}})
    with _load(fleet) as load:
        code, result = _cli_json(
            capsys, "rollout", "--engine-version", OLD, *ORDER, "-e", f"fleetserve_lab_faults={fault}"
        )
    summary = load.summary()
    assert code == 1
    outcomes = result["rollout"]
    canary = outcomes[WORKERS[0]]
    assert canary["action"] == "rolled_back", canary
    assert canary["msg"].startswith(f"{WORKERS[0]}: rollout to sglang {OLD} failed at ")
    assert canary["msg"].endswith(
        f"Rolled back to sglang {NEW} (verified, back in the routers); the rollout stops here."
    )
    assert {w: outcomes[w]["action"] for w in WORKERS[1:]} == {w: "untouched" for w in WORKERS[1:]}
    assert summary["failed"] == 0, summary
    assert _versions() == {w: NEW for w in WORKERS}
    assert _routed(fleet) == WORKERS


def test_host_dying_mid_rollout_is_reported_and_the_rest_keep_serving(fleet, capsys):
    survivor, victim = WORKERS[1], WORKERS[2]
    holder: dict = {}

    def run_rollout():
        # survivor is the canary; victim, in the next batch, dies while the canary is being updated.
        holder["code"] = cli.main(["rollout", "--engine-version", OLD, "--limit", f"{survivor},{victim}", "--json"])

    with _load(fleet) as load:
        rollout = threading.Thread(target=run_rollout)
        rollout.start()
        time.sleep(5)
        killed_at = time.time()
        subprocess.run(["docker", "kill", victim], capture_output=True, check=True)
        rollout.join(600)
        ended_at = time.time()
    assert not rollout.is_alive(), "the rollout did not finish within 10 minutes"
    result = json.loads(capsys.readouterr().out)
    assert holder["code"] == 1
    outcomes = result["rollout"]
    assert outcomes[victim]["action"] == "unreachable", outcomes[victim]
    assert outcomes[survivor]["action"] == "updated", outcomes[survivor]

    # What the gateway does (measured): requests it already sent to the killed worker fail, until its
    # health checks (every 2 s, out after 2 failures) take the worker out of rotation; nothing after.
    window = 15.0
    failures = load.failures
    late = [f for f in failures if f.started > killed_at + window]
    assert late == [], f"requests failed more than {window}s after the kill: {late[:3]}"
    served_after = [o for o in load.outcomes if o.started > killed_at + window and not o.error]
    assert ended_at - killed_at > window and len(served_after) >= 20
    print(f"host kill: {len(failures)} of {len(load.outcomes)} requests failed, all within {window}s of the kill")

    status = _status(capsys, expect_code=1)  # the dead host is reported, and makes status exit 1
    assert status[victim]["role"] is None and status[victim]["state"] == "unreachable"
    assert {w: status[w]["version"] for w in WORKERS[:2]} == {WORKERS[0]: NEW, survivor: OLD}
    assert {w: status[w]["routers"] for w in WORKERS[:2]} == {w: [ROUTER] for w in WORKERS[:2]}
