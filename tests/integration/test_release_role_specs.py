"""The release role's argument specs are enforced where playbooks include it, before anything is read or changed.

A local play includes each entry point with a bad input: ansible-core's validation (meta/argument_specs.yml)
refuses a wrong type or choice, fleetserve.minimax.check_bounds a number out of its stated range (a poll interval of 0)
and the renamed rollout_state_dir, and a host without previous.json cannot be rolled back. Check mode, on a records directory under tmp_path.
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration

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
