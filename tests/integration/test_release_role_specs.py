"""The release role's argument specs are enforced where playbooks include it, before anything is read or changed.

A local play includes each entry point with a bad input: ansible-core's validation (meta/argument_specs.yml)
refuses a wrong type or choice, fleetserve.minimax.check_bounds a number out of its stated range (a poll interval of 0)
and the renamed rollout_state_dir, and a host without previous.json cannot be rolled back. Check mode, on a records directory under tmp_path.
Stage, then switch: a release that cannot be staged fails the host before any drain task; the staging's venv
pruning (sglang_venv tasks/prune.yml) never removes the running or the staged release.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

PLAY = """
- name: Include one entry point of the release role
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Run the entry point
      ansible.builtin.include_role:
        name: fleetserve.minimax.release
        tasks_from: {entry}
"""


@pytest.fixture()
def include(run_playbook, tmp_path):
    def _run(entry, **extra):
        env = {"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.json"}
        variables = {"fleetserve_release_dir": str(tmp_path / "releases"), **extra}
        done = run_playbook(PLAY.format(entry=entry), "-e", json.dumps(variables), env=env, check=True)
        report = json.loads(done.stdout[done.stdout.index("{") :])
        for play in report["plays"]:
            for task in play["tasks"]:
                result = task["hosts"].get("localhost", {})
                if result.get("failed"):
                    return task["task"]["name"], str(result.get("msg", ""))
        return None, done.returncode

    return _run


def test_a_wrong_type_is_refused_by_the_argument_spec(include):
    task, msg = include("main", preflight_plan={"engine": "sglang"}, rollout_drain_poll_s="often")
    assert task.startswith("fleetserve.minimax.release : Validating arguments against arg spec 'main'"), task
    assert "rollout_drain_poll_s" in msg, msg


def test_a_wrong_choice_is_refused_by_the_argument_spec(include):
    task, msg = include("rollback", router_worker_scheme="ftp")
    assert "arg spec 'rollback'" in task, task
    assert "router_worker_scheme" in msg and "auto, http, https" in msg, msg


def test_the_plan_is_required_for_a_rollout(include):
    task, msg = include("main")
    assert "arg spec 'main'" in task and "preflight_plan" in msg, (task, msg)


def test_a_number_out_of_its_range_is_refused_by_the_role(include):
    task, msg = include("main", preflight_plan={"engine": "sglang"}, rollout_drain_poll_s=0)
    assert (
        task == "fleetserve.minimax.release : Release | Check every number against the range its argument spec states"
    )
    assert msg.endswith("rollout_drain_poll_s is 0, out of range: set it to a whole number from 1 to 3600"), msg


def test_a_host_without_previous_json_is_not_rolled_back(include, tmp_path):
    task, msg = include("rollback")
    assert task == "fleetserve.minimax.release : Release | Check there is a release to return to", task
    assert f"has no previous release with a plan in {tmp_path}/releases/previous.json" in msg, msg


def test_the_renamed_records_directory_variable_is_refused(include):
    task, msg = include("rollback", rollout_state_dir="/srv/releases")
    assert task == "fleetserve.minimax.release : Release | Check that the records' directory has its current name", task
    assert msg.startswith("rollout_state_dir was renamed: set fleetserve_release_dir to that directory instead"), msg


def _report(done) -> list[tuple[str, dict]]:
    """(task name, localhost's result) of every task the play ran, in order."""
    report = json.loads(done.stdout[done.stdout.index("{") :])
    return [
        (task["task"]["name"], task["hosts"]["localhost"])
        for play in report["plays"]
        for task in play["tasks"]
        if "localhost" in task["hosts"]
    ]


def test_a_release_that_cannot_be_staged_fails_the_host_before_the_drain(run_playbook, tmp_path):
    """Stage, then switch: the engine role's stage entry point runs before anything of the drain; a plan the
    launch spec refuses fails the host there, undrained (rollout_result failed, saying it kept serving), and
    previous.json is not written."""
    env = {"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.json"}
    plan = {"engine": "sglang", "engine_version": "0.5.23", "model": "MiniMax-M2.5", "port": 8000}
    variables = {"fleetserve_release_dir": str(tmp_path / "releases"), "preflight_plan": plan}
    done = run_playbook(PLAY.format(entry="main"), "-e", json.dumps(variables), env=env, check=True)
    assert done.returncode == 0, done.stdout[-2000:]
    ran = _report(done)
    names = [name for name, result in ran if not result.get("skipped")]
    staged = names.index("fleetserve.minimax.sglang_venv : SGLang | Render the launch spec from the serving plan")
    assert (
        names.index("fleetserve.minimax.release : Release | Stage the new release beside the running one") < staged
    ), names
    assert dict(ran)["fleetserve.minimax.sglang_venv : SGLang | Render the launch spec from the serving plan"]["failed"]
    drained = [n for n in names if "Leave every router" in n or "no request in flight" in n or "previous.json" in n]
    assert drained == [], drained
    result = [r["ansible_facts"]["rollout_result"] for _, r in ran if "rollout_result" in r.get("ansible_facts", {})]
    assert len(result) == 1 and result[0]["action"] == "failed", result
    msg = result[0]["msg"]
    assert msg.startswith(
        "localhost: rollout to sglang 0.5.23 could not be staged, at 'SGLang | Render the launch spec from the serving plan':"
    ), msg
    assert msg.endswith("The host was NOT drained and keeps serving the release it ran; nothing was switched."), msg
    assert not (tmp_path / "releases" / "previous.json").exists()


PRUNE = """
- name: Prune release venvs as the stage step of sglang_venv does
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Run the role's prune step
      ansible.builtin.include_tasks: {tasks}
"""


@pytest.mark.parametrize(
    ("keep", "linked", "kept"),
    [
        (2, "venv-run", {"venv-new", "venv-run"}),  # a rollout: the staged and the running release
        (3, "venv-run", {"venv-new", "venv-run", "venv-c"}),  # and the newest other
        (1, "venv-run", {"venv-new", "venv-run"}),  # the running one goes on the next run, never while it runs
        (2, "venv-new", {"venv-new", "venv-c"}),  # a re-run: the current one and the newest other
    ],
)
def test_staging_prunes_old_venvs_but_never_the_running_or_the_staged_one(run_playbook, tmp_path, keep, linked, kept):
    root = tmp_path / "sglang"
    for age, name in enumerate(["venv-c", "venv-b", "venv-a", "venv-run"]):  # newest first, the running one oldest
        (root / name).mkdir(parents=True)
        os.utime(root / name, (1_000_000 - age * 1000, 1_000_000 - age * 1000))
    (root / "venv-new").mkdir()
    (root / "venv").symlink_to(root / linked)
    spec = {"venv": {"root": str(root), "dir": str(root / "venv-new"), "current_link": str(root / "venv")}}
    variables = {"__sglang_venv_spec": spec, "sglang_venv_keep_releases": keep}
    done = run_playbook(
        PRUNE.format(tasks=REPO / "roles" / "sglang_venv" / "tasks" / "prune.yml"), "-e", json.dumps(variables)
    )
    assert done.returncode == 0, done.stdout[-2000:]
    assert {p.name for p in root.glob("venv-*")} == kept
