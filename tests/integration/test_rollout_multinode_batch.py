"""playbooks/rollout.yml refuses to split the nodes of one multi-node engine across batches (release role, entry point
batch).

Two local 'hosts' in group `pair` form one 2-node engine. The refusal comes from the inventory alone, before
the preflight role or any read of the host, so the runs are in check mode and touch nothing.
"""

from __future__ import annotations

import json
import sys

import pytest

pytestmark = pytest.mark.integration


@pytest.fixture()
def rollout(run_playbook, collection_root, tmp_path):
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(
        "[pair]\n"
        + "".join(
            f"{h} ansible_connection=local ansible_python_interpreter={sys.executable}\n" for h in ("node-a", "node-b")
        )
        + "[pair:vars]\npreflight_nnodes=2\npreflight_node_group=pair\n"
        # Past the batch check, the preflight role stops at its first probe: proof the check let it through.
        + "preflight_nvidia_smi=/nonexistent/nvidia-smi\npreflight_pci_devices_dir=/nonexistent/pci\n"
    )

    def _run(*args):
        env = {"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.json"}
        done = run_playbook(
            collection_root / "playbooks" / "rollout.yml", *args, inventory=str(inventory), env=env, check=True
        )
        report = json.loads(done.stdout[done.stdout.index("{") :])
        failures = {}
        for play in report["plays"]:
            for task in play["tasks"]:
                for host, result in task["hosts"].items():
                    if result.get("failed"):
                        failures[host] = (task["task"]["name"], result.get("msg", ""))
        return done.returncode, failures

    return _run


def test_a_canary_of_one_node_is_refused_before_anything_runs(rollout):
    rc, failures = rollout("-e", "rollout_canary=1")
    assert rc == 2
    assert set(failures) == {"node-a"}, "the second batch must never start"
    task, msg = failures["node-a"]
    assert (
        task == "fleetserve.minimax.release : Release | Check that every node of a multi-node engine is in this batch"
    )
    assert msg == (
        "node-a is one of the 2 nodes of the engine of group 'pair', but node-b is not in this batch (node-a): "
        "every node of a job restarts together. List the group's hosts next to each other and make rollout_canary "
        "and rollout_batch multiples of 2 (e.g. -e rollout_canary=2 -e rollout_batch=2), and do not --limit to "
        "part of the group."
    )


def test_a_limit_to_part_of_the_group_is_refused(rollout):
    rc, failures = rollout("-e", "rollout_canary=2", "--limit", "node-b")
    assert rc == 2
    assert failures["node-b"][1].startswith("node-b is one of the 2 nodes of the engine of group 'pair', but node-a is")


def test_both_nodes_in_one_batch_pass_the_check(rollout):
    rc, failures = rollout("-e", "rollout_canary=2")
    assert rc == 2
    assert set(failures) == {"node-a", "node-b"}
    for task, msg in failures.values():
        assert task == "fleetserve.minimax.preflight : Preflight | Read GPU facts", (task, msg)
        assert msg.startswith("neither nvidia-smi nor PCI shows an NVIDIA GPU on this host"), msg
