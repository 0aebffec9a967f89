"""The README's main job on the local lab, end to end, then routed rolling updates under load with faults.

Real peers only: Docker lab hosts (fleetserve/lab-systemd:bookworm), olah serving the tiny lab model, the
engine simulator installed as sglang by uv from the lab's wheel directory, and the real SGLang Model
Gateway on a router host. One module-scoped lab (FLEETSERVE_LAB=fs-e2e: 2 workers + 1 router); the tests
run in file order and each starts from the state the previous one left:
1. `lab up` brings hosts, hub and a 0600 inventory;
2. `deploy` runs all of site.yml (preflight to a verified endpoint, then the router in front); a re-run
   and `--check` change nothing;
3. `status` reports each worker's engine and router membership, and the router;
4. `rollout` 0.5.23 -> 0.5.4.post1 while a load generator sends streaming and non-streaming chat
   completions through the router with the API key: every worker moves, no request fails; each worker's
   new venv was installed before it left the router, and its drained window installed nothing;
   a rollout to a release the lab's package index lacks fails the canary while staging: it never left the
   router nor restarted, keeps serving, and the rollout stops;
5. a rollout back to 0.5.23 whose new release crashes (lab fault injection): the canary is rolled back,
   the rollout stops, the other worker is untouched, no request fails;
6. a worker killed (docker kill) while a rollout works on it, still in the routers: the rollout reports it,
   the router drops it and keeps serving through the other; the only failed requests are the ones the
   kill cut off;
7. `lab down` removes hosts, hub, network and inventory.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from labs import running_lab
from loadgen import Load

from fleetserve import cli, lab, paths, runner

pytestmark = pytest.mark.integration

LAB = "fs-e2e"
WORKERS = [f"{LAB}-lab-1", f"{LAB}-lab-2"]
ROUTER = f"{LAB}-lab-router-1"
MODEL = "local-org/tiny-minimax-m2"
OLD, NEW = "0.5.23", "0.5.4.post1"
MISSING = "0.5.9"  # a release the catalog allows but the lab's wheel directory does not have
ORDER = ["--canary", "1", "--batch", "1"]
# The gateway checks its workers every 2 s and drops one after 2 failed checks (measured): requests it sent
# to a killed worker before that fail, none after.
WINDOW_S = 15.0


def _ip(host: str) -> str:
    fmt = '{{(index .NetworkSettings.Networks "' + lab.network_name() + '").IPAddress}}'
    return subprocess.run(
        ["docker", "inspect", "-f", fmt, host], capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    with running_lab(LAB, tmp_path_factory.mktemp("state"), "--hosts", str(len(WORKERS)), "--routers", "1"):
        yield {"hosts": lab.existing_hosts(), "url": f"http://{_ip(ROUTER)}:30000", "key": lab.api_key()}


def _cli_json(capsys, *argv) -> tuple[int, dict, str]:
    code = cli.main([*argv, "--json"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


def _status(capsys, expect_code: int = 0) -> dict:
    code, result, _ = _cli_json(capsys, "status")
    assert code == expect_code, result
    return result


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


def _routed(fleet, healthy: bool = False) -> list[str]:
    """The workers on the gateway's list (only those it finds healthy), by host name (its worker URLs are
    http://<host>:<port>)."""
    request = urllib.request.Request(f"{fleet['url']}/workers", headers={"Authorization": f"Bearer {fleet['key']}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        urls = [w["url"] for w in json.load(response)["workers"] if w["is_healthy"] or not healthy]
    return sorted(w for w in WORKERS if any(f"://{w}:" in url for url in urls))


def _task_order(result: dict, host: str) -> list[str]:
    """The names of the tasks that ran (ok or failed) on ``host``, in order, from the run's job events."""
    events = []
    for path in Path(result["artifact_dir"], "job_events").glob("*.json"):
        event = json.loads(path.read_text())
        data = event.get("event_data") or {}
        if event.get("event") in ("runner_on_ok", "runner_on_failed") and data.get("host") == host:
            events.append((event["counter"], data.get("task", "")))
    return [task for _, task in sorted(events)]


_INSTALL = ("SGLang | Create the release venv at the pinned Python", "SGLang | Install the pinned SGLang release")
_LEAVE = ("Router | Remove the worker from the router", "Release | Wait until the engine has no request in flight")


def _started_at(unit_host: str) -> str:
    return _on(unit_host, "systemctl", "show", "-p", "ActiveEnterTimestampMonotonic", "sglang").stdout.strip()


def _load(fleet) -> Load:
    return Load(fleet["url"], fleet["key"], MODEL, threads=4)


def test_lab_up_brings_hosts_hub_and_a_private_inventory(fleet):
    assert fleet["hosts"] == [*WORKERS, ROUTER]
    inventory = paths.lab_inventory()
    assert inventory.name == f"hosts-{LAB}.yml"
    assert oct(inventory.stat().st_mode & 0o777) == "0o600", "the inventory holds the lab's API key"
    text = inventory.read_text()
    assert f"{WORKERS[0]}: null" in text and "lab_workers:" in text and f"{ROUTER}: null" in text
    for host in fleet["hosts"]:
        state = subprocess.run(
            ["docker", "exec", host, "systemctl", "is-system-running"], capture_output=True, text=True, check=False
        )
        assert state.stdout.strip() in ("running", "degraded")
    hub = lab.status()["hub"]
    assert hub["running"] is True
    # The hosts reach the hub at the lab network's gateway, and it serves the catalog's lab model.
    url = f"{hub['url']}/api/models/{lab.MODEL_REPO}/revision/main"
    probe = subprocess.run(
        ["docker", "exec", WORKERS[0], "curl", "-sf", "-m", "5", url], capture_output=True, text=True, check=False
    )
    assert json.loads(probe.stdout)["id"] == lab.MODEL_REPO


def test_deploy_serves_a_verified_endpoint_then_changes_nothing(fleet, capsys):
    code, first, progress = _cli_json(capsys, "deploy")
    assert code == 0, first
    assert {h["host"]: h["status"] for h in first["hosts"]} == {h: "changed" for h in fleet["hosts"]}
    # Live progress: one line per task result and host (stderr is not a terminal here).
    assert WORKERS[1] in progress and "Verify | Send the staged requests to the endpoint" in progress

    for host in WORKERS:
        request = urllib.request.Request(
            f"http://{_ip(host)}:8000/v1/chat/completions",
            data=json.dumps(
                {"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
            ).encode(),
            headers={"Authorization": f"Bearer {fleet['key']}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.load(response)["choices"][0]["message"]["role"] == "assistant"
        # The key reached the engine through its 0600 config, never through argv.
        ps = subprocess.run(["docker", "exec", host, "ps", "-eo", "args"], capture_output=True, text=True, check=False)
        assert "sglang.launch_server" in ps.stdout and fleet["key"] not in ps.stdout

    code, second, _ = _cli_json(capsys, "deploy")
    assert code == 0
    assert {h["host"]: h["changed"] for h in second["hosts"]} == {h: 0 for h in fleet["hosts"]}

    code, check, _ = _cli_json(capsys, "deploy", "--check")
    assert code == 0
    assert {h["host"]: h["changed"] for h in check["hosts"]} == {h: 0 for h in fleet["hosts"]}


def test_status_reports_each_worker_and_the_router_in_front(fleet, capsys):
    result = _status(capsys)
    status = result["status"]
    assert (status[ROUTER]["role"], status[ROUTER]["unit"], status[ROUTER]["health"]) == ("router", "running", 200)
    for host in WORKERS:
        report = status[host]
        assert {k: report[k] for k in ("role", "engine", "version", "unit", "health", "models", "routers")} == {
            "role": "worker",
            "engine": "sglang",
            "version": OLD,
            "unit": "running",
            "health": 200,
            "models": [MODEL],
            "routers": [ROUTER],
        }
    for root, _dirs, files in os.walk(result["artifact_dir"]):
        for name in files:
            with open(os.path.join(root, name), errors="replace") as handle:
                assert fleet["key"] not in handle.read(), f"the API key leaked into {name}"
    load = _load(fleet)
    assert [load.one(stream) for stream in (False, True, False, True)] == [None] * 4
    assert Load(fleet["url"], "not-the-key", MODEL).one(False) == "HTTP 401", "the router must require the API key"


def test_rollout_under_load_moves_every_worker_without_a_failed_request(fleet, capsys):
    with _load(fleet) as load:
        code, result, _ = _cli_json(capsys, "rollout", "--engine-version", NEW, *ORDER)
    summary = load.summary()
    assert code == 0, result["rollout"]
    assert {h: o["action"] for h, o in result["rollout"].items()} == {w: "updated" for w in WORKERS}
    assert summary["failed"] == 0, summary
    assert summary["requests"] >= 50 and summary["streamed"] >= 20, summary
    assert _versions() == {w: NEW for w in WORKERS}
    assert _routed(fleet) == WORKERS
    # Stage, then switch: the new venv was installed while the worker still served; out of rotation (from
    # leaving the router to its report) only the switch ran: restart and health, no install.
    for worker in WORKERS:
        order = _task_order(result, worker)
        installed = order.index("SGLang | Install the pinned SGLang release")
        left = min(order.index(name) for name in _LEAVE if name in order)
        done = order.index("Release | Report the switched host")
        assert installed < left < done, order
        window = order[left:done]
        assert not set(_INSTALL) & set(window), window
        assert "SGLang | Install the staged release, restart and wait for /health" in window, window


def test_release_that_cannot_be_staged_fails_the_canary_undrained(fleet, capsys):
    canary, other = WORKERS
    started = {w: _started_at(w) for w in WORKERS}
    with _load(fleet) as load:
        code, result, _ = _cli_json(capsys, "rollout", "--engine-version", MISSING, *ORDER)
    summary = load.summary()
    assert code == 1
    outcome = result["rollout"][canary]
    assert outcome["action"] == "failed", outcome
    assert outcome["msg"].startswith(
        f"{canary}: rollout to sglang {MISSING} could not be staged, at 'SGLang | Report the failed install': "
        f"Installing sglang=={MISSING} into /opt/fleetserve/sglang/venv-{MISSING} failed (removed again; "
    ), outcome
    assert "preflight_engine_version" in outcome["msg"], outcome
    assert outcome["msg"].endswith(f"The host was NOT drained and keeps serving sglang {NEW}; nothing was switched.")
    assert result["rollout"][other]["action"] == "untouched", result["rollout"][other]
    # The canary never left the router, nor restarted; the half-made venv is gone.
    order = _task_order(result, canary)
    assert not set(_LEAVE) & set(order), order
    assert {w: _started_at(w) for w in WORKERS} == started
    assert _on(canary, "test", "-e", f"/opt/fleetserve/sglang/venv-{MISSING}").returncode == 1
    assert summary["failed"] == 0, summary
    assert _versions() == {w: NEW for w in WORKERS}
    assert _routed(fleet, healthy=True) == WORKERS


def test_release_failing_verification_is_rolled_back_and_stops_the_rollout(fleet, capsys):
    fault = json.dumps({OLD: {"FLEETSERVE_SIM_FAILURE": "crash", "FLEETSERVE_SIM_STARTUP_S": "1"}})
    with _load(fleet) as load:
        code, result, _ = _cli_json(
            capsys, "rollout", "--engine-version", OLD, *ORDER, "-e", f"fleetserve_lab_faults={fault}"
        )
    summary = load.summary()
    assert code == 1
    outcomes = result["rollout"]
    canary = outcomes[WORKERS[0]]
    assert canary["action"] == "rolled_back", canary
    assert canary["msg"].startswith(
        f"{WORKERS[0]}: rollout to sglang {OLD} failed at 'SGLang | Install the staged release, restart and wait for /health': "
        "sglang.service exited (exit status 1) "
    ), canary
    assert "RuntimeError: simulated crash during start-up" in canary["msg"], canary
    assert canary["msg"].endswith(
        f"Rolled back to sglang {NEW} (verified, back in the routers); the rollout stops here."
    ), canary
    assert outcomes[WORKERS[1]]["action"] == "untouched", outcomes[WORKERS[1]]
    assert summary["failed"] == 0, summary
    assert _versions() == {w: NEW for w in WORKERS}
    assert _routed(fleet) == WORKERS


def test_host_dying_mid_rollout_is_reported_and_the_rest_keep_serving(fleet, capsys):
    survivor, victim = WORKERS
    holder: dict = {}

    def run_rollout():
        # Only the victim is rolled out; it dies while still in the routers (its preflight runs), so the
        # gateway, not the drain, has to take it out of rotation. The survivor serves throughout.
        holder["code"] = cli.main(["rollout", "--engine-version", OLD, "--limit", victim, "--json"])

    with _load(fleet) as load:
        rollout = threading.Thread(target=run_rollout)
        rollout.start()
        time.sleep(5)
        killed_at = time.time()
        subprocess.run(["docker", "kill", victim], capture_output=True, check=True)
        rollout.join(600)
        # A dead host fails its rollout within a second: keep the load on long enough to see the gateway
        # take it out of rotation and serve on without it.
        time.sleep(max(0.0, killed_at + WINDOW_S + 10 - time.time()))
        ended_at = time.time()
    assert not rollout.is_alive(), "the rollout did not finish within 10 minutes"
    result = json.loads(capsys.readouterr().out)
    assert holder["code"] == 1
    outcomes = result["rollout"]
    assert set(outcomes) == {victim}, outcomes
    # Over SSH a dead host is unreachable; through the lab's docker connection it is a failed module, whose
    # message says why: the daemon's answer to the next `docker exec`, or the module killed under it (with
    # nothing on its stdout when the kill lands while the module runs, e.g. the weights play's facts).
    victim_outcome = outcomes[victim]
    assert victim_outcome["action"] in ("unreachable", "failed"), victim_outcome
    assert victim_outcome["action"] == "unreachable" or re.search(
        r"[Cc]ontainer \w+ is not running|exit status 137: killed by signal 9|"
        r"Module result deserialization failed: No start of json char found",
        victim_outcome["msg"],
    ), victim_outcome

    # What the gateway does (measured): requests it already sent to the killed worker fail, until its
    # health checks (every 2 s, out after 2 failures) take the worker out of rotation; nothing after.
    window = WINDOW_S
    failures = load.failures
    late = [f for f in failures if f.started > killed_at + window]
    assert late == [], f"requests failed more than {window}s after the kill: {late[:3]}"
    served_after = [o for o in load.outcomes if o.started > killed_at + window and not o.error]
    assert ended_at - killed_at > window and len(served_after) >= 20
    print(
        f"host kill: {len(failures)} of {len(load.outcomes)} requests failed, all within {window}s of the kill",
        file=sys.stderr,
    )

    status = _status(capsys, expect_code=1)["status"]  # the dead host is reported, and makes status exit 1
    assert status[victim]["role"] is None and status[victim]["state"] in ("unreachable", "failed"), status[victim]
    assert (status[survivor]["version"], status[survivor]["routers"]) == (NEW, [ROUTER])
    # The gateway keeps the dead worker on its list, marked unhealthy: it routes to the survivor only.
    assert _routed(fleet) == WORKERS and _routed(fleet, healthy=True) == [survivor]


def _on(host: str, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", "exec", host, *argv], capture_output=True, text=True, check=False)


def test_teardown_takes_a_host_out_of_service_and_keeps_its_weights(fleet, capsys):
    """fleetserve teardown: refused without --limit; --check changes nothing; then the host leaves the gateway and
    its engine is removed (unit, venvs, configuration, records), the weights stay; a second run finds nothing."""
    survivor, victim = WORKERS
    assert cli.main(["teardown"]) == 2
    assert "teardown needs --limit (or --all)" in capsys.readouterr().err
    # The playbook itself refuses too, as `ansible-playbook playbooks/teardown.yml` without --limit would.
    unlimited = runner.run_playbook("teardown.yml", inventory=paths.lab_inventory(), action="teardown")
    assert not unlimited.succeeded
    messages = " ".join(f["msg"] for h in unlimited.hosts.values() for f in h.failures)
    assert "playbooks/teardown.yml acts only on the hosts you name" in messages, messages
    assert _on(survivor, "test", "-e", "/etc/systemd/system/sglang.service").returncode == 0

    record = json.loads(_on(survivor, "cat", "/var/lib/fleetserve/releases/current.json").stdout)
    assert (record["engine"], record["service"], record["venv"]) == (
        "sglang",
        "sglang",
        f"/opt/fleetserve/sglang/venv-{NEW}",
    )

    code, result, _ = _cli_json(capsys, "teardown", "--limit", survivor, "--check")
    assert code == 0 and result["teardown"][survivor]["action"] == "removed", result
    assert _on(survivor, "test", "-e", "/etc/systemd/system/sglang.service").returncode == 0
    assert _routed(fleet) == WORKERS

    code, result, _ = _cli_json(capsys, "teardown", "--limit", survivor)
    assert code == 0 and result["teardown"][survivor]["action"] == "removed", result
    assert _routed(fleet) == [victim]  # left the gateway first; the dead victim stays listed, unhealthy
    for gone in (
        "/etc/systemd/system/sglang.service",
        "/opt/fleetserve/sglang",
        "/etc/fleetserve/sglang",
        "/var/lib/fleetserve/releases/current.json",
        "/var/lib/fleetserve/releases/previous.json",
    ):
        assert _on(survivor, "test", "-e", gone).returncode == 1, gone
    assert _on(survivor, "systemctl", "is-active", "sglang").stdout.strip() in ("inactive", "unknown")
    assert _on(survivor, "test", "-d", record["model_dir"]).returncode == 0  # weights kept unless asked

    code, result, _ = _cli_json(capsys, "teardown", "--limit", survivor)
    assert code == 0 and result["teardown"][survivor]["action"] == "absent", result
    assert result["hosts"][0]["changed"] == 0, result["hosts"]


def test_lab_down_removes_hosts_hub_network_and_inventory(fleet):
    hub = lab.status()["hub"]
    assert cli.main(["lab", "down"]) == 0
    assert lab.existing_hosts() == []
    assert not paths.lab_inventory().exists()
    network = subprocess.run(["docker", "network", "inspect", lab.network_name()], capture_output=True, check=False)
    assert network.returncode != 0
    assert lab.status()["hub"] is None
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{hub['url']}/api/models/{lab.MODEL_REPO}/revision/main", timeout=2)
