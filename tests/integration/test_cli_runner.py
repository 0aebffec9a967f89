"""fleetserve's runner against a real ansible-runner and ansible-playbook (localhost, local connection)."""

import json
import sys
import textwrap

import pytest

from fleetserve import cli, runner

pytestmark = pytest.mark.integration


@pytest.fixture()
def state(monkeypatch, tmp_path):
    monkeypatch.setenv("FLEETSERVE_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


@pytest.fixture()
def local_inventory(tmp_path):
    inv = tmp_path / "hosts.yml"
    inv.write_text(textwrap.dedent(f"""\
            all:
              hosts:
                alpha: {{ansible_connection: local, ansible_python_interpreter: {sys.executable}}}
                beta: {{ansible_connection: local, ansible_python_interpreter: {sys.executable}}}
            """))
    return inv


def _playbook(tmp_path, body):
    path = tmp_path / "play.yml"
    path.write_text(textwrap.dedent(body))
    return str(path)


def test_per_host_summary_failures_and_facts(tmp_path, state, local_inventory):
    play = _playbook(
        tmp_path,
        """\
        - name: Probe
          hosts: all
          gather_facts: false
          tasks:
            - name: Record a plan
              ansible.builtin.set_fact:
                preflight_plan: {host: "{{ inventory_hostname }}"}
            - name: Change something on alpha only
              ansible.builtin.command: "true"
              changed_when: inventory_hostname == 'alpha'
            - name: Fail on beta
              ansible.builtin.fail:
                msg: beta has too little GPU memory
              when: inventory_hostname == 'beta'
        """,
    )
    seen = []
    result = runner.run_playbook(play, inventory=local_inventory, sink=seen.append, action="test")
    assert not result.succeeded
    alpha, beta = result.hosts["alpha"], result.hosts["beta"]
    assert (alpha.status, alpha.changed, alpha.failed) == ("changed", 1, 0)
    assert (beta.status, beta.failed) == ("failed", 1)
    assert beta.failures == [{"task": "Fail on beta", "msg": "beta has too little GPU memory"}]
    assert result.host_facts("preflight_plan") == {"alpha": {"host": "alpha"}, "beta": {"host": "beta"}}
    assert any(e["event"] == "playbook_on_stats" for e in seen)
    assert result.artifact_dir.startswith(str(state / "runs" / "artifacts" / "test-"))


def test_secrets_in_the_environment_never_reach_runner_artifacts(tmp_path, state, local_inventory, monkeypatch):
    secret = "hf_SuperSecretTokenValue123"
    monkeypatch.setenv("HF_TOKEN", secret)
    monkeypatch.setenv("FLEETSERVE_API_KEY", secret)
    play = _playbook(
        tmp_path,
        """\
        - name: Probe
          hosts: alpha
          gather_facts: false
          tasks:
            - name: Print the environment the way a careless task would
              ansible.builtin.command: env
              changed_when: false
        """,
    )
    result = runner.run_playbook(play, inventory=local_inventory, action="secrets")
    assert result.succeeded
    leaked = [p for p in (state / "runs").rglob("*") if p.is_file() and secret in p.read_text(errors="ignore")]
    assert leaked == []


def test_role_variable_of_the_wrong_type_fails_before_any_change(tmp_path, state, local_inventory, capsys):
    play = _playbook(
        tmp_path,
        """\
        - name: Tooling with a bad variable
          hosts: alpha
          gather_facts: false
          roles:
            - role: fleetserve.minimax.git_lfs
              vars:
                git_lfs_enable_system_wide: "sometimes"
        """,
    )
    result = runner.run_playbook(play, inventory=local_inventory, action="badvar")
    alpha = result.hosts["alpha"]
    assert alpha.failed == 1 and alpha.changed == 0 and alpha.ok == 0
    # The argument spec check is the role's first task: nothing ran before it.
    assert alpha.failures[0]["task"].startswith("Validating arguments against arg spec")
    assert "git_lfs_enable_system_wide" in alpha.failures[0]["msg"]
    assert "bool" in alpha.failures[0]["msg"]


def test_deploy_json_and_exit_code(tmp_path, state, local_inventory, monkeypatch, capsys):
    """The CLI end to end on a throwaway playbook standing in for site.yml."""
    play = _playbook(
        tmp_path,
        """\
        - name: Probe
          hosts: all
          gather_facts: false
          tasks:
            - name: Fail on beta
              ansible.builtin.fail:
                msg: no GPUs
              when: inventory_hostname == 'beta'
        """,
    )
    real = runner.run_playbook
    monkeypatch.setattr(runner, "run_playbook", lambda _pb, **kw: real(play, **kw))
    code = cli.main(["deploy", "-i", str(local_inventory), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1
    assert [(h["host"], h["status"]) for h in out["hosts"]] == [("alpha", "ok"), ("beta", "failed")]
    assert out["hosts"][1]["failures"][0]["msg"] == "no GPUs"
    code = cli.main(["deploy", "-i", str(local_inventory), "--json", "--limit", "alpha"])
    assert code == 0
    assert [h["host"] for h in json.loads(capsys.readouterr().out)["hosts"]] == ["alpha"]
