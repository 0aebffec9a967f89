"""fleetserve.minimax.preload: the workers Ansible forks find the plugins already loaded by the main process."""

from __future__ import annotations

import json
import textwrap

import pytest

pytestmark = pytest.mark.unit

# A legacy (non-collection) filter: resolving it loads none of the collection's filter files, so what it sees in
# sys.modules is what the worker inherited from the main process.
PROBE = textwrap.dedent("""
    import sys

    def preloaded(_):
        return {
            "collection_filters": "ansible_collections.fleetserve.minimax.plugins.filter.serving_plan" in sys.modules,
        }

    class FilterModule:
        def filters(self):
            return {"preloaded": preloaded}
    """)

PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Probe what the worker inherited
      ansible.builtin.debug:
        msg: "PROBE {{ 0 | preloaded | to_json }}"
      when: ('x' | preloaded) is mapping
"""


def _probe(run_playbook, collection_root, tmp_path, callbacks: str | None) -> dict:
    (tmp_path / "filter_plugins").mkdir(exist_ok=True)
    (tmp_path / "filter_plugins" / "probe.py").write_text(PROBE)
    env = {
        "ANSIBLE_CONFIG": str(collection_root / "ansible.cfg"),
        "ANSIBLE_FILTER_PLUGINS": str(tmp_path / "filter_plugins"),
    }
    if callbacks is not None:
        env["ANSIBLE_CALLBACKS_ENABLED"] = callbacks
    proc = run_playbook(PLAY, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = next(line for line in proc.stdout.splitlines() if '"msg": "PROBE ' in line)
    return json.loads(json.loads("{" + line.strip() + "}")["msg"].removeprefix("PROBE "))


def test_the_collection_config_preloads_filters_and_connection_before_the_workers_fork(
    run_playbook, collection_root, tmp_path
):
    assert _probe(run_playbook, collection_root, tmp_path, None) == {
        "collection_filters": True,
    }


def test_without_the_callback_each_worker_loads_them_itself(run_playbook, collection_root, tmp_path):
    assert _probe(run_playbook, collection_root, tmp_path, "ansible.posix.profile_tasks") == {
        "collection_filters": False,
    }
