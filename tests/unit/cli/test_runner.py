"""The runner's reduction of ansible-runner events to per-host results, and secret scrubbing."""

import pytest

from fleetserve import runner

pytestmark = pytest.mark.unit


def _event(name, host=None, created="2026-11-22T05:00:00.000000", **data):
    event_data = dict(data)
    if host:
        event_data["host"] = host
    return {"event": name, "created": created, "event_data": event_data}


def test_scrub_removes_secret_looking_variables_and_keeps_paths():
    env = {
        "HF_TOKEN": "hf_x",
        "OPENAI_API_KEY": "sk",
        "VLLM_APIKEY": "k",
        "MY_PASSWORD": "p",
        "AWS_SECRET_ACCESS_KEY": "s",
        "ANSIBLE_VAULT_PASSWORD_FILE": "/home/me/.vault",
        "ANSIBLE_VAULT_IDENTITY_LIST": "prod@/home/me/.vault-prod",
        "SSH_AUTH_SOCK": "/run/agent",
        "VAULT_ADDR": "https://vault.example:8200",
        "VAULT_TOKEN": "hvs.x",
        "PATH": "/usr/bin",
    }
    paths_and_settings = ("ANSIBLE_VAULT_PASSWORD_FILE", "ANSIBLE_VAULT_IDENTITY_LIST", "SSH_AUTH_SOCK", "VAULT_ADDR", "PATH")
    kept = {k: v for k, v in env.items() if k in paths_and_settings}
    removed = runner.scrub_secret_environment(env)
    assert sorted(removed) == [
        "AWS_SECRET_ACCESS_KEY", "HF_TOKEN", "MY_PASSWORD", "OPENAI_API_KEY", "VAULT_TOKEN", "VLLM_APIKEY"
    ]
    assert env == kept


def test_one_definition_of_a_secret_name_for_the_environment_and_for_extra_vars():
    """The CLI refuses -e keys by the same rule the runner scrubs the environment with."""
    from fleetserve.commands import rollout

    for name in ("hf_token", "vault_api_key", "db_password", "my_secret", "openai_apikey", "aws_credentials"):
        assert runner.looks_secret(name), name
        with pytest.raises(rollout.UserError):
            rollout.parse_extra_vars([f"{name}=x"])
    assert not runner.looks_secret("sglang_venv_version")
    assert rollout.parse_extra_vars(["sglang_venv_version=0.5.23"]) == {"sglang_venv_version": "0.5.23"}


def test_collector_summarises_failures_time_and_stats():
    forwarded = []
    collector = runner._Collector(forwarded.append)
    events = [
        _event("playbook_on_task_start", task="UV | Install"),
        _event("runner_on_ok", "h1", created="2026-11-22T05:00:00", task="UV | Install", res={"changed": True}),
        _event("runner_on_failed", "h2", created="2026-11-22T05:00:01", task="UV | Install", res={"msg": "boom"}),
        _event("runner_on_failed", "h1", created="2026-11-22T05:00:07", task="Probe", ignore_errors=True, res={"msg": "x"}),
        _event("runner_on_unreachable", "h3", created="2026-11-22T05:00:02", task="Gathering Facts", res={"msg": "ssh: no route"}),
        _event("verbose"),
    ]
    for event in events:
        assert collector(event) is True  # ansible-runner drops events from its artifacts otherwise
    collector.apply_stats({"ok": {"h1": 2}, "changed": {"h1": 1}, "failures": {"h2": 1}, "dark": {"h3": 1}})
    hosts = collector.hosts
    assert hosts["h1"].status == "changed" and hosts["h1"].seconds == 7.0 and hosts["h1"].failures == []
    assert hosts["h2"].status == "failed" and hosts["h2"].failures == [{"task": "UV | Install", "msg": "boom"}]
    assert hosts["h3"].status == "unreachable" and hosts["h3"].failures[0]["msg"] == "ssh: no route"
    assert len(forwarded) == len(events)
    assert [e["event"] for e in collector.events] == [e["event"] for e in events[:-1]]


def test_a_failed_fact_gathering_says_why():
    collector = runner._Collector(None)
    res = {
        "failed": True,
        "msg": "The following modules failed to execute: ansible.legacy.setup.\n",
        "failed_modules": {
            "ansible.legacy.setup": {
                "failed": True,
                "msg": "MODULE FAILURE\nSee stdout/stderr for the exact error",
                "module_stderr": "Error response from daemon: container 3f2a is not running\n",
                "rc": 1,
            }
        },
    }
    collector(_event("runner_on_failed", "h1", task="Gathering Facts", res=res))
    assert collector.hosts["h1"].failures == [
        {
            "task": "Gathering Facts",
            "msg": "The following modules failed to execute: ansible.legacy.setup "
            "(MODULE FAILURE (Error response from daemon: container 3f2a is not running))",
        }
    ]


def test_a_module_that_died_says_why():
    collector = runner._Collector(None)
    res = {
        "failed": True,
        "msg": "MODULE FAILURE\nSee stdout/stderr for the exact error",
        "module_stderr": "Error response from daemon: container 3f2a is not running\n",
        "rc": 1,
    }
    collector(_event("runner_on_failed", "h1", task="Preflight | Read GPU facts", res=res))
    # ansible-core 2.19's wording for a module that printed nothing at all
    gone = dict(res, msg="Module result deserialization failed: No start of json char found")
    collector(_event("runner_on_failed", "h2", task="Preflight | Read GPU facts", res=gone))
    # the host killed while the module ran: nothing on stderr, the shell's 128+9
    killed = dict(gone, module_stderr="", rc="137")
    collector(_event("runner_on_failed", "h3", task="Preflight | Read GPU facts", res=killed))
    # the same during fact gathering, where the reason is one level down
    gathering = {
        "msg": "The following modules failed to execute: ansible.legacy.setup.",
        "failed_modules": {"ansible.legacy.setup": killed},
    }
    collector(_event("runner_on_failed", "h4", task="Gathering Facts", res=gathering))
    assert collector.hosts["h4"].failures[0]["msg"] == (
        "The following modules failed to execute: ansible.legacy.setup (Module result deserialization failed: "
        "No start of json char found (exit status 137: killed by signal 9))"
    )
    assert [collector.hosts[h].failures[0]["msg"] for h in ("h1", "h2", "h3")] == [
        "MODULE FAILURE (Error response from daemon: container 3f2a is not running)",
        "Module result deserialization failed: No start of json char found "
        "(Error response from daemon: container 3f2a is not running)",
        "Module result deserialization failed: No start of json char found (exit status 137: killed by signal 9)",
    ]


def _result(hosts, rc=0, status="successful", events=()):
    return runner.RunResult("site.yml", status, rc, hosts, list(events), "/tmp/a", 1.0)


def test_run_result_fails_when_any_host_failed_or_unreachable():
    ok = runner.HostResult("a", ok=3)
    assert _result({"a": ok}).succeeded
    assert not _result({"a": ok, "b": runner.HostResult("b", failed=1)}).succeeded
    assert not _result({"a": ok, "b": runner.HostResult("b", unreachable=1)}).succeeded
    assert not _result({"a": ok}, rc=2, status="failed").succeeded


def test_host_facts_and_task_results_pick_the_last_value_per_host():
    events = [
        _event("runner_on_ok", "h1", res={"ansible_facts": {"preflight_plan": {"tp": 4}}}, task_action="ansible.builtin.set_fact"),
        _event("runner_on_ok", "h1", res={"ansible_facts": {"preflight_plan": {"tp": 8}}}, task_action="ansible.builtin.set_fact"),
        _event("runner_on_failed", "h2", res={"msg": "no"}, task_action="fleetserve.minimax.openai_endpoint_info"),
    ]
    result = _result({}, events=events)
    assert result.host_facts("preflight_plan") == {"h1": {"tp": 8}}
    assert result.task_results("openai_endpoint_info") == {"h2": {"msg": "no"}}
    assert result.task_results("fleetserve.minimax.openai_endpoint_info") == {"h2": {"msg": "no"}}
