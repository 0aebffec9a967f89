"""A model-revision rollout on the local lab: the new weights on every host before the first drain, the old
ones kept, a rollback that needs no hub, and the two bad inputs refused before any host is drained.

Real peers only: Docker lab hosts, olah serving the tiny lab model at main and at its second revision
(`lab.MODEL_REVISION_2`, a branch with other weights), the engine simulator installed as sglang by uv; no
router (test_lab_e2e.py runs rollouts under load through one; the serial steps are the same). One
module-scoped lab (FLEETSERVE_LAB=fs-model: 2 workers); the tests run in file order and each starts from the
state the previous one left:
1. `deploy` serves main from <models>/fleetserve-lab-tiny-m2;
2. a rollout to a revision the hub does not have is refused naming preflight_revision: no host drained;
3. a rollout whose new weights do not fit beside the old ones is refused naming the fix: no host drained, no
   byte fetched;
4. the rollout to lab-v2: the new weights reach every host (fetched once, fanned out) before the first host is
   drained, each host serves them from their own directory, main's stay (weights_keep_previous 1); a re-run
   changes nothing;
5. with the hub stopped, `rollback` returns every host to main: no download, both weights still there.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request

import pytest
from labs import cli_json, ip_of, running_lab

from fleetserve import lab

pytestmark = pytest.mark.integration

LAB = "fs-model"
WORKERS = [f"{LAB}-lab-1", f"{LAB}-lab-2"]
MODEL = "local-org/tiny-minimax-m2"
OLD_DIR = "/srv/models/fleetserve-lab-tiny-m2"
NEW_DIR = f"{OLD_DIR}--{lab.MODEL_REVISION_2}"
RELEASES = "/var/lib/fleetserve/releases"
ORDER = ["--canary", "1", "--batch", "1"]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    with running_lab(LAB, tmp_path_factory.mktemp("state"), "--hosts", str(len(WORKERS))):
        yield {"key": lab.api_key()}


def _on(host: str, script: str) -> str:
    """Run python3 on a lab host; its stdout."""
    proc = subprocess.run(
        ["docker", "exec", host, "python3", "-c", script], capture_output=True, text=True, check=False, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def _state(host: str) -> dict:
    """What a drain or a fetch would change: the release records, the engine's start time, the weights dirs."""
    return json.loads(
        _on(
            host,
            "import json, os, subprocess\n"
            f"R, M = {RELEASES!r}, '/srv/models'\n"
            "def rec(n):\n"
            "    p = os.path.join(R, n)\n"
            "    return json.load(open(p)).get('model_dir') if os.path.exists(p) else None\n"
            "def marker(d):\n"
            "    p = os.path.join(M, d, '.fleetserve-weights.json')\n"
            "    return os.stat(p).st_mtime if os.path.exists(p) else None\n"
            "since = subprocess.run(['systemctl', 'show', '-P', 'ActiveEnterTimestampMonotonic', 'sglang'],\n"
            "                       capture_output=True, text=True).stdout.strip()\n"
            "prev = os.path.join(R, 'previous.json')\n"
            "print(json.dumps({'current': rec('current.json'), 'previous': rec('previous.json'),\n"
            "    'previous_written': os.stat(prev).st_mtime if os.path.exists(prev) else None,\n"
            "    'engine_since': since, 'weights': {d: marker(d) for d in sorted(os.listdir(M))}}))",
        )
    )


def _states() -> dict:
    return {w: _state(w) for w in WORKERS}


def _serves(fleet) -> None:
    for host in WORKERS:
        request = urllib.request.Request(
            f"http://{ip_of(host)}:8000/v1/chat/completions",
            data=json.dumps(
                {"model": MODEL, "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]}
            ).encode(),
            headers={"Authorization": f"Bearer {fleet['key']}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.load(response)["choices"][0]["message"]["role"] == "assistant", host


def test_deploy_serves_main_from_its_own_directory(fleet, capsys):
    code, result = cli_json(capsys, "deploy")
    assert code == 0, result
    for worker, state in _states().items():
        assert state["current"] == OLD_DIR, (worker, state)
        assert list(state["weights"]) == ["fleetserve-lab-tiny-m2"], (worker, state)


def test_a_revision_the_hub_does_not_have_is_refused_before_any_drain(fleet, capsys):
    before = _states()
    code, result = cli_json(capsys, "rollout", "-e", "preflight_revision=no-such-revision", *ORDER)
    assert code != 0
    messages = json.dumps(result)  # every failure of every host (the first one of the seed is hidden by no_log)
    assert (
        f"revision 'no-such-revision' does not exist in {MODEL}: set preflight_revision (or weights_revision, "
        "which overrides it for the weights role alone) to a branch, tag or commit of that repository" in messages
    ), result["rollout"]
    assert "Rollout refused before any host was drained" in messages, result["rollout"]
    assert {o["action"] for o in result["rollout"].values()} == {"failed"}, result["rollout"]
    assert _states() == before, "a host was drained, restarted or given weights"


@pytest.fixture
def full_disks():
    """Every worker's models disk (lab.MODELS_DISK_ARGS) filled but for 512 KiB, under the new weights' need."""
    script = "fallocate -l $(( $(df --output=avail -B1 /srv/models | tail -1) - 524288 )) /srv/models/.lab-filler"
    for worker in WORKERS:
        subprocess.run(["docker", "exec", worker, "sh", "-c", script], check=True)
    yield
    for worker in WORKERS:
        subprocess.run(["docker", "exec", worker, "rm", "-f", "/srv/models/.lab-filler"], check=True)


def test_new_weights_that_do_not_fit_beside_the_old_are_refused_before_any_drain(fleet, capsys, full_disks):
    before = _states()
    code, result = cli_json(capsys, "rollout", "-e", f"preflight_revision={lab.MODEL_REVISION_2}", *ORDER)
    assert code != 0
    assert {o["action"] for o in result["rollout"].values()} == {"failed"}, result["rollout"]
    for worker in WORKERS:
        failures = json.dumps(next(h for h in result["hosts"] if h["host"] == worker))
        assert f"{NEW_DIR} needs " in failures and "more free disk for the weights plus" in failures, failures
        assert "free space, mount a larger disk, or set fleetserve_models_dir" in failures, failures
    assert _states() == before, "a host was drained, restarted or given weights"


def test_revision_rollout_stages_the_weights_on_every_host_before_the_first_drain(fleet, capsys):
    code, result = cli_json(capsys, "rollout", "-e", f"preflight_revision={lab.MODEL_REVISION_2}", *ORDER)
    assert code == 0, result["rollout"]
    assert {h: o["action"] for h, o in result["rollout"].items()} == {w: "updated" for w in WORKERS}
    _serves(fleet)
    after = _states()
    name = NEW_DIR.rsplit("/", 1)[1]
    # Every host's copy was published before the first host recorded previous.json, right before its drain.
    first_drain = min(s["previous_written"] for s in after.values())
    assert max(s["weights"][name] for s in after.values()) < first_drain, after
    for worker, state in after.items():
        assert (state["current"], state["previous"]) == (NEW_DIR, OLD_DIR), (worker, state)
        assert sorted(state["weights"]) == ["fleetserve-lab-tiny-m2", name], "main's weights stay (keep_previous 1)"
    # The engine loads the new directory.
    unit = subprocess.run(
        ["docker", "exec", WORKERS[0], "systemctl", "cat", "sglang"], capture_output=True, text=True, check=False
    )
    assert NEW_DIR in unit.stdout

    code, again = cli_json(capsys, "rollout", "-e", f"preflight_revision={lab.MODEL_REVISION_2}", *ORDER)
    assert code == 0, again["rollout"]
    assert {h: o["action"] for h, o in again["rollout"].items()} == {w: "unchanged" for w in WORKERS}
    assert {h["host"]: h["changed"] for h in again["hosts"] if h["host"] in WORKERS} == {w: 0 for w in WORKERS}
    assert _states() == after


def test_rollback_to_main_needs_no_hub(fleet, capsys):
    hub = lab.status()["hub"]["url"]
    lab._stop_origin()  # pylint: disable=protected-access
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{hub}/api/models/{MODEL}/revision/main", timeout=3)
    code, result = cli_json(capsys, "rollback", "--limit", ",".join(WORKERS))
    assert code == 0, result
    assert {h: o["action"] for h, o in result["rollout"].items()} == {w: "rolled_back" for w in WORKERS}
    _serves(fleet)
    name = NEW_DIR.rsplit("/", 1)[1]
    for worker, state in _states().items():
        assert (state["current"], state["previous"]) == (OLD_DIR, NEW_DIR), (worker, state)
        assert sorted(state["weights"]) == ["fleetserve-lab-tiny-m2", name], "a rollback keeps both"
