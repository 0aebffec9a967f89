"""The verify role through real ansible-playbook runs against localhost and controlled fake endpoints:
inputs from preflight_plan, the key from fleetserve_api_key (never printed, even at -vvv), failures
reported with their reason, worker nodes labelled, check mode, and requests from the controller."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))
from fake_openai import Behaviour, FakeOpenAI  # noqa: E402

pytestmark = pytest.mark.integration

SECRET = "sk-fs-verify-role-secret"

PLAY = """
- name: Verify role test
  hosts: {hosts}
  gather_facts: false
  vars:
    fleetserve_api_key: {key}
    preflight_plan: {plan}
{extra}
  roles:
    - role: fleetserve.minimax.verify
  post_tasks:
    - name: Test | Show the report
      ansible.builtin.debug:
        msg: "REPORT={{{{ verify_report | to_json }}}}"
"""


def plan(port, **over):
    base = {
        "served_model_name": "fake-org/model",
        "port": port,
        "engine": "sglang",
        "reasoning_style": "append_think",
        "tool_call_parser": "minimax-m2",
        "nnodes": 1,
        "node_rank": 0,
        "start_timeout_s": 20,
        "host": "0.0.0.0",
    }
    base.update(over)
    return base


def playbook(p, key=SECRET, extra="", hosts="localhost"):
    extra_lines = "\n".join("    " + line for line in extra.strip().splitlines()) if extra else ""
    return PLAY.format(hosts=hosts, key=json.dumps(key), plan=json.dumps(p), extra=extra_lines)


def report(stdout):
    found = re.findall(r'"msg": "REPORT=(.*)"\n', stdout)
    assert found, stdout[-3000:]
    return json.loads(found[-1].encode().decode("unicode_escape"))


def test_plan_driven_success_hides_the_key(run_playbook):
    behaviour = Behaviour(api_key=SECRET, health="warmup", healthy_after=0.5, chat="append_think")
    with FakeOpenAI(behaviour) as server:
        proc = run_playbook(playbook(plan(server.port)), "-vvv")
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        assert SECRET not in proc.stdout + proc.stderr
        rep = report(proc.stdout)
        assert rep["status"] == "ok" and rep["reason"] is None
        assert rep["base_url"] == "http://127.0.0.1:%d" % server.port
        assert set(rep["stages"]) == {"tcp", "health", "models", "auth", "chat", "shape", "tool_call", "stream"}
        assert rep["stream"]["done_marker"] is True
        assert any(r["auth"] == "Bearer " + SECRET for r in server.requests)
        assert re.search(r"localhost\s+: ok=\d+\s+changed=0\s+unreachable=0\s+failed=0", proc.stdout)


def test_failure_names_reason_but_not_the_key(run_playbook):
    with FakeOpenAI(Behaviour(api_key="sk-other", chat="append_think")) as server:
        proc = run_playbook(playbook(plan(server.port)), "-vvv")
        assert proc.returncode == 2
        assert SECRET not in proc.stdout + proc.stderr
        assert "Verify | Fail when the endpoint did not serve" in proc.stdout
        assert "reason=auth_rejected url=http://127.0.0.1:%d/v1/models" % server.port in proc.stdout
        assert "set fleetserve_api_key (module option api_key) to the key the engine was started with" in proc.stdout


def test_plan_without_tool_parser_skips_tool_call_and_separate_shape(run_playbook):
    with FakeOpenAI(Behaviour(chat="separate", tools="missing")) as server:
        p = plan(server.port, engine="vllm", reasoning_style="separate", tool_call_parser=None)
        proc = run_playbook(playbook(p, key=""))
        assert proc.returncode == 0, proc.stdout[-4000:]
        rep = report(proc.stdout)
        assert "tool_call" not in rep["stages"] and "auth" not in rep["stages"]
        assert rep["reply"]["reasoning_content"]


def test_worker_node_is_labelled_not_checked(run_playbook):
    with FakeOpenAI(Behaviour(health="dummy")) as server:
        proc = run_playbook(playbook(plan(server.port, nnodes=2, node_rank=1)))
        assert proc.returncode == 0, proc.stdout[-4000:]
        rep = report(proc.stdout)
        assert rep["status"] == "skipped" and rep["reason"] == "worker_node"
        assert "node_rank 1 of 2 runs no API server" in rep["msg"]
        assert server.requests == []


def test_missing_plan_fails_before_any_request(run_playbook):
    text = playbook({}, extra="verify_port: 18199").replace("    preflight_plan: {}\n", "")
    proc = run_playbook(text)
    assert proc.returncode == 2
    assert (
        "verify does not know the endpoint's served model name (verify_served_model_name), engine (verify_engine), "
        "deadline (verify_timeout): run the preflight role first (it publishes preflight_plan), or set those variables."
    ) in proc.stdout


def test_argument_spec_rejects_a_bad_shape(run_playbook):
    proc = run_playbook(playbook(plan(18199), extra="verify_expect_reasoning: think"))
    assert proc.returncode == 2
    assert (
        "reasoning shape 'think': the port must be 1-65535, the deadline above 0, the engine one of "
        "vllm/sglang/generic and the shape one of none/append_think/separate; fix verify_* or the preflight plan."
    ) in proc.stdout


def test_check_mode_verifies_read_only(run_playbook):
    with FakeOpenAI(Behaviour(chat="append_think")) as server:
        proc = run_playbook(playbook(plan(server.port), key=""), check=True)
        assert proc.returncode == 0, proc.stdout[-4000:]
        assert report(proc.stdout)["status"] == "ok"
        assert re.search(r"changed=0", proc.stdout)


def test_from_the_controller_to_ansible_host(run_playbook, tmp_path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        "all:\n  hosts:\n    gpu-node-0:\n      ansible_connection: local\n      ansible_host: 127.0.0.1\n"
        "      ansible_python_interpreter: %s\n" % sys.executable
    )
    with FakeOpenAI(Behaviour(chat="append_think")) as server:
        p = plan(server.port, host="10.9.9.9")  # a bind address the host path would use; controller ignores it
        proc = run_playbook(
            playbook(p, key="", extra="verify_from: controller", hosts="gpu-node-0"), inventory=str(inventory)
        )
        assert proc.returncode == 0, proc.stdout[-4000:]
        rep = report(proc.stdout)
        assert rep["base_url"] == "http://127.0.0.1:%d" % server.port
        assert "-> localhost" in proc.stdout or "gpu-node-0 -> localhost" in proc.stdout


@pytest.mark.parametrize("bind, expected", [("0.0.0.0", "127.0.0.1"), ("10.9.9.9", "10.9.9.9")])
def test_host_mode_follows_a_specific_bind_address(run_playbook, bind, expected):
    p = plan(18199, host=bind, start_timeout_s=0.3)
    proc = run_playbook(playbook(p, key=""))
    rep = report(proc.stdout) if "REPORT=" in proc.stdout else None
    assert "http://%s:18199" % expected in proc.stdout, proc.stdout[-3000:]
    assert rep is None  # the play stopped at the failure


def test_defaults_and_argument_specs_agree(collection_root):
    import yaml

    role = collection_root / "roles" / "verify"
    defaults = yaml.safe_load((role / "defaults" / "main.yml").read_text())
    specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    assert set(defaults) == set(specs)
    for name, value in defaults.items():
        assert specs[name].get("default") == value, name


def test_skip_checks_reach_the_module_for_a_model_that_cannot_pass_them(run_playbook):
    """verify_skip_checks: a random-weight model (plain text, no </think>, no tool call) passes with the
    shape and tool_call stages reported skipped; without it the same endpoint fails at shape."""
    behaviour = Behaviour(api_key=SECRET, chat="plain")
    with FakeOpenAI(behaviour) as server:
        proc = run_playbook(playbook(plan(server.port), extra="verify_skip_checks: [shape, tool_call]"))
        assert proc.returncode == 0, proc.stdout[-4000:]
        rep = report(proc.stdout)
        assert rep["status"] == "ok"
        assert rep["stages"]["shape"].get("skipped") is True and rep["stages"]["tool_call"].get("skipped") is True
        proc = run_playbook(playbook(plan(server.port)))
        assert proc.returncode == 2
        assert "reason=shape_mismatch" in proc.stdout
