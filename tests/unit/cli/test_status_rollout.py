"""status, rollout and rollback: option mapping, refusals before anything runs, and the status table."""

import json
import stat

import pytest
import yaml

from fleetserve import cli, lab, paths, runner
from fleetserve.commands import rollout, status
from fleetserve.errors import UserError

pytestmark = pytest.mark.unit


@pytest.fixture
def inventory_file(tmp_path):
    path = tmp_path / "hosts.yml"
    path.write_text(
        "all:\n  children:\n    workers:\n      hosts:\n        gpu-1: {}\n        gpu-2: {}\n"
        "    routers:\n      hosts:\n        rt-1: {}\n"
    )
    return path


@pytest.fixture
def runs(monkeypatch, tmp_path):
    """Record playbook runs instead of starting them; each succeeds on every host."""
    calls = []
    monkeypatch.setenv("FLEETSERVE_STATE_DIR", str(tmp_path / "state"))

    def fake(playbook, **kwargs):
        calls.append({"playbook": playbook, **kwargs})
        hosts = {h: runner.HostResult(h, ok=3) for h in ("gpu-1", "gpu-2")}
        return runner.RunResult(playbook, "successful", 0, hosts, [], str(tmp_path / "artifacts"), 1.0)

    monkeypatch.setattr(runner, "run_playbook", fake)
    return calls


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        ([], {}),
        (["sglang_venv_version=0.5.4.post1"], {"sglang_venv_version": "0.5.4.post1"}),
        (["rollout_canary=2", "flag=true", "ratio=0.5"], {"rollout_canary": 2, "flag": True, "ratio": 0.5}),
        (["empty="], {"empty": ""}),
        (["x=[1, 2]"], {"x": [1, 2]}),
        (
            ['faults={"0.5.23": {"FLEETSERVE_SIM_FAILURE": "crash"}}'],
            {"faults": {"0.5.23": {"FLEETSERVE_SIM_FAILURE": "crash"}}},
        ),
        (["url=http://a:1/b?c=d"], {"url": "http://a:1/b?c=d"}),
    ],
)
def test_extra_vars_are_yaml_scalars(items, expected):
    assert rollout.parse_extra_vars(items) == expected


@pytest.mark.parametrize("item", ["noequals", "=value", "bad-name=1", "1abc=2"])
def test_malformed_extra_vars_are_refused(item):
    with pytest.raises(UserError) as err:
        rollout.parse_extra_vars([item])
    assert err.value.message == f"-e {item!r} is not KEY=VALUE with a variable name as KEY"
    assert err.value.hint == "pass -e name=value, e.g. -e sglang_venv_version=0.5.4.post1"


@pytest.mark.parametrize(
    "key",
    [
        "fleetserve_api_key",
        "fleetserve_hf_token",
        "router_apikey",
        "db_password",
        "my_secret",
        "ansible_vault_password_file",
        "aws_credentials",
    ],
)
def test_secret_looking_extra_vars_are_refused(key, inventory_file, runs, capsys):
    assert cli.main(["rollout", "-i", str(inventory_file), "-e", f"{key}=s3cr3t-value"]) == 2
    err = capsys.readouterr().err
    assert f"-e {key}=... looks like a secret ({key}) and would be stored in the run's artifacts" in err
    assert "put secrets in the inventory's vault" in err
    assert "s3cr3t-value" not in err
    assert runs == [], "a playbook was started despite a secret on the command line"


def test_secrets_nested_in_a_mapping_are_refused():
    with pytest.raises(UserError) as err:
        rollout.parse_extra_vars(['sglang_venv_extra_env={"HF_TOKEN": "hf_x"}'])
    assert err.value.message == (
        "-e sglang_venv_extra_env=... looks like a secret (HF_TOKEN) and would be stored in the run's artifacts"
    )


def test_rollout_maps_options_onto_the_playbook_variables(inventory_file, runs, capsys):
    code = cli.main(
        [
            "rollout",
            "-i",
            str(inventory_file),
            "--engine-version",
            "0.5.4.post1",
            "--canary",
            "1",
            "--batch",
            "50%",
            "--max-fail",
            "0",
            "-e",
            "rollout_verify_timeout=60",
            "--json",
        ]
    )
    assert code == 0
    (call,) = runs
    assert call["playbook"] == "rollout.yml"
    assert call["extravars"] == {
        "preflight_engine_version": "0.5.4.post1",
        "rollout_canary": 1,
        "rollout_batch": "50%",
        "rollout_max_fail_percentage": 0,
        "rollout_verify_timeout": 60,
    }
    assert call["limit"] is None and call["action"] == "rollout"
    out = json.loads(capsys.readouterr().out)
    assert out["succeeded"] is True and out["extravars"]["rollout_batch"] == "50%"


def test_rollout_defaults_leave_the_playbook_defaults_alone(inventory_file, runs, capsys):
    assert cli.main(["rollout", "-i", str(inventory_file)]) == 0
    assert runs[0]["extravars"] == {}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--canary", "0"], "argument --canary: must be a whole number >= 1, got '0'"),
        (["--batch", "0%"], "argument --batch: must be above 0%, got '0%'"),
        (["--batch", "many"], "argument --batch: must be a whole number >= 1, got 'many'"),
        (["--max-fail", "101"], "argument --max-fail: must be a percentage from 0 to 100, got '101'"),
    ],
)
def test_bad_rollout_options_stop_before_a_run(argv, message, inventory_file, runs, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["rollout", "-i", str(inventory_file), *argv])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
    assert runs == []


def test_rollback_requires_limit(inventory_file, runs, capsys):
    assert cli.main(["rollback", "-i", str(inventory_file)]) == 2
    err = capsys.readouterr().err
    assert "rollback needs --limit: it acts only on the hosts you name" in err
    assert "pass --limit HOST[,HOST...]" in err
    assert runs == []


def test_rollback_runs_on_the_named_hosts_only(inventory_file, runs):
    assert cli.main(["rollback", "-i", str(inventory_file), "--limit", "gpu-2"]) == 0
    assert runs[0]["playbook"] == "rollback.yml" and runs[0]["limit"] == "gpu-2"


@pytest.mark.parametrize("argv", [[], ["--limit", "gpu-2", "--all"]])
def test_teardown_needs_exactly_one_host_list(inventory_file, runs, capsys, argv):
    assert cli.main(["teardown", "-i", str(inventory_file), *argv]) == 2
    assert "--limit" in capsys.readouterr().err
    assert runs == []


def test_teardown_maps_its_options_onto_the_playbook(inventory_file, runs):
    assert cli.main(["teardown", "-i", str(inventory_file), "--limit", "gpu-2", "--remove-weights", "--check"]) == 0
    run = runs[0]
    assert (run["playbook"], run["limit"], run["check"]) == ("teardown.yml", "gpu-2", True)
    assert run["extravars"] == {"teardown_all": False, "teardown_remove_weights": True, "teardown_remove_image": False}
    assert cli.main(["teardown", "-i", str(inventory_file), "--all"]) == 0
    assert runs[1]["limit"] is None and runs[1]["extravars"]["teardown_all"] is True


def _result_with_status(facts: dict, failed: dict | None = None) -> runner.RunResult:
    events = [
        {"event": "runner_on_ok", "event_data": {"host": h, "res": {"ansible_facts": {"fleetserve_status": f}}}}
        for h, f in facts.items()
    ]
    hosts = {h: runner.HostResult(h, ok=1) for h in facts}
    for host, msg in (failed or {}).items():
        hosts[host] = runner.HostResult(host, unreachable=1, failures=[{"task": "Gathering Facts", "msg": msg}])
    return runner.RunResult(
        "status.yml", "failed" if failed else "successful", 2 if failed else 0, hosts, events, "/tmp/artifacts", 2.0
    )


WORKER = {
    "role": "worker",
    "engine": "sglang",
    "version": "0.5.23",
    "unit": "running",
    "health": 200,
    "models": ["m"],
    "port": 8000,
}


def test_status_joins_router_membership_by_address_or_name():
    result = _result_with_status(
        {
            "w1": {**WORKER, "address": "10.0.0.1", "load": {"running": 3, "waiting": 1, "kv_usage": 0.42}},
            "w2": {**WORKER, "address": "10.0.0.2", "load": {"running": 0, "waiting": 0, "kv_usage": 0.0}},
            # no metrics (engine down): no load
            "w3": {**WORKER, "address": "10.0.0.3", "unit": "failed", "health": -1, "load": None},
            "r1": {
                "role": "router",
                "unit": "running",
                "health": 200,
                "workers": ["http://10.0.0.1:8000", "http://w2:8000"],
            },
        }
    )
    reports = status.host_reports(result)
    assert {h: reports[h]["routers"] for h in ("w1", "w2", "w3")} == {"w1": ["r1"], "w2": ["r1"], "w3": []}
    assert status.rows(reports) == [
        ["r1", "router", "-", "-", "running", "200", "-", "2 worker(s)", "-", "-", "-"],
        ["w1", "worker", "sglang", "0.5.23", "running", "200", "m", "r1", "3", "1", "42%"],
        ["w2", "worker", "sglang", "0.5.23", "running", "200", "m", "r1", "0", "0", "0%"],
        ["w3", "worker", "sglang", "0.5.23", "failed", "-1", "m", "-", "-", "-", "-"],
    ]


def test_status_port_must_match_too():
    reports = status.host_reports(
        _result_with_status(
            {
                "w1": {**WORKER, "address": "10.0.0.1"},
                "r1": {"role": "router", "workers": ["http://10.0.0.1:9000"]},
            }
        )
    )
    assert reports["w1"]["routers"] == []


def test_status_keeps_unreachable_hosts_with_their_reason():
    reports = status.host_reports(
        _result_with_status(
            {"w1": {**WORKER, "address": "10.0.0.1"}}, failed={"w2": "Failed to create temporary directory"}
        )
    )
    assert reports["w2"] == {"role": None, "state": "unreachable", "msg": "Failed to create temporary directory"}
    assert status.rows(reports)[1] == ["w2", "-", "-", "-", "-", "-", "-", "unreachable", "-", "-", "-"]


def test_lab_inventory_groups_workers_and_routers_and_is_private(monkeypatch, tmp_path):
    monkeypatch.setenv("FLEETSERVE_LAB", "unit-test-inventory")
    monkeypatch.setenv("FLEETSERVE_STATE_DIR", str(tmp_path / "state"))
    path = lab.write_inventory(
        ["x-lab-1", "x-lab-2"], ["x-lab-router-1"], hub_url="http://172.30.0.1:18300", api_key="fs-lab-k"
    )
    try:
        assert path == paths.lab_inventory()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        data = yaml.safe_load(path.read_text())["all"]
        assert data["vars"] == {
            "fleetserve_lab_hub_url": "http://172.30.0.1:18300",
            "fleetserve_lab_wheels_dir": "/opt/fleetserve-lab/wheels",
            "fleetserve_api_key": "fs-lab-k",
        }
        groups = data["children"]["lab"]["children"]
        assert list(groups["lab_workers"]["hosts"]) == ["x-lab-1", "x-lab-2"]
        assert list(groups["routers"]["hosts"]) == ["x-lab-router-1"]
    finally:
        path.unlink()


def test_lab_refuses_more_than_one_router():
    with pytest.raises(UserError, match="--routers must be 0 or 1, got 2"):
        lab.up(1, routers=2)


def test_rollout_outcomes_name_unreachable_and_untouched_hosts():
    updated = {"host": "w1", "action": "updated", "msg": "w1: rollout to sglang 0.5.23 done"}
    events = [
        {"event": "runner_on_ok", "event_data": {"host": "w1", "res": {"ansible_facts": {"rollout_result": updated}}}}
    ]
    hosts = {
        "w1": runner.HostResult("w1", ok=9, changed=3),
        "w2": runner.HostResult("w2", unreachable=1, failures=[{"task": "Gathering Facts", "msg": "container gone"}]),
        # ran the weights play (before any batch) but no batch reached it
        "w4": runner.HostResult("w4", ok=5),
    }
    result = runner.RunResult("rollout.yml", "failed", 2, hosts, events, "/tmp/a", 3.0)
    untouched = {"action": "untouched", "msg": "not reached: the rollout stopped before"}
    assert rollout.host_outcomes(result, ["w1", "w2", "w3", "w4"]) == {
        "w1": updated,
        "w2": {"host": "w2", "action": "unreachable", "msg": "container gone"},
        "w3": {"host": "w3", **untouched},
        "w4": {"host": "w4", **untouched},
    }
