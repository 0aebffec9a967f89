"""playbooks/router.yml plans only what the router needs, and nothing without a router (issue 21, item 6).

Real ansible-playbook runs of the real playbook on localhost-like hosts (local connection), read through the
JSON callback: which task ran on which host.
- No router in the inventory (group `routers` missing or empty): neither play matches a host; no task runs,
  no host is read.
- A router and engine hosts without a plan: the engine hosts get only the preflight role's `endpoint` step
  (port and node rank from the inventory, set_fact only: no fact gathering, no GPU read, no plan), and the
  router lists each at that port. A host whose plan an earlier play published (as in site.yml) is not planned
  again: the router lists it at its plan's port.
The router host is this machine, so that run is `--tags router` (the router stage alone: uv is not
installed here) and the router role is stopped by its own read-only check of the worker URLs (each engine
host's router_worker_address holds a "/"), whose message shows the URLs the router built; router_uv_bin
points nowhere, so a role that got past that check would stop at the next one, before changing anything.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ENGINES = ["fs-rscope-e1", "fs-rscope-e2"]


def _inventory(tmp_path: Path, routers: str) -> Path:
    hosts = "".join(
        f"    {name}: {{preflight_port: {8100 + i}, router_worker_address: {name}/x}}\n"
        for i, name in enumerate(ENGINES)
    )
    path = tmp_path / "hosts.yml"
    path.write_text(
        "all:\n"
        "  vars:\n"
        "    ansible_connection: local\n"
        f"    ansible_python_interpreter: {sys.executable}\n"
        "    ansible_become: false\n"
        "  hosts:\n" + hosts + routers
    )
    return path


def _run(
    ansible_env, tmp_path: Path, playbook: Path, inventory: Path, *args: str
) -> tuple[subprocess.CompletedProcess, dict]:
    env = dict(ansible_env, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(inventory), str(playbook), *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    start = proc.stdout.find("{")
    assert start >= 0, proc.stdout + proc.stderr
    return proc, json.loads(proc.stdout[start:])


def _ran(report: dict) -> dict[str, list[str]]:
    """Per host, the names of the tasks that ran there (not skipped)."""
    ran: dict[str, list[str]] = {}
    for play in report["plays"]:
        for task in play["tasks"]:
            for host, result in task["hosts"].items():
                if not result.get("skipped"):
                    ran.setdefault(host, []).append(task["task"]["name"])
    return ran


@pytest.mark.parametrize(
    "routers",
    ["", "  children:\n    routers:\n      hosts: {}\n"],
    ids=["no-routers-group", "empty-routers-group"],
)
def test_without_a_router_the_router_playbook_touches_no_host(ansible_env, collection_root, tmp_path, routers):
    proc, report = _run(
        ansible_env, tmp_path, collection_root / "playbooks" / "router.yml", _inventory(tmp_path, routers)
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert [play["play"]["name"] for play in report["plays"]] == [
        "Router | Publish where each engine host serves",
        "Router | Install uv and run the gateway",
    ]
    assert all(play["tasks"] == [] for play in report["plays"]), report["plays"]
    assert report["stats"] == {}


def test_with_a_router_engine_hosts_get_only_their_endpoint(ansible_env, collection_root, tmp_path):
    routers = (
        "  children:\n    routers:\n      hosts:\n"
        "        fs-rscope-router: {router_worker_group: all, router_uv_bin: /nonexistent/uv}\n"
    )
    # As in site.yml, an earlier play of the run published a plan for the second host (and only for it).
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        "- name: A plan from an earlier play\n"
        f"  hosts: {ENGINES[1]}\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        "    - name: Publish a plan\n"
        "      ansible.builtin.set_fact:\n"
        "        preflight_plan: {port: 8300, node_rank: 0, engine: sglang}\n"
        "      tags: [always]\n"
        f"- name: Router\n  ansible.builtin.import_playbook: {collection_root / 'playbooks' / 'router.yml'}\n"
    )
    proc, report = _run(ansible_env, tmp_path, playbook, _inventory(tmp_path, routers), "--tags", "router")
    ran = _ran(report)
    endpoint_step = [
        "Router | Derive the engine port and node rank from the inventory",
        "fleetserve.minimax.preflight : Preflight | Publish where this host serves",
    ]
    assert ran[ENGINES[0]] == endpoint_step, ran
    assert ran[ENGINES[1]] == ["Publish a plan"], "a host planned earlier in the run is not planned again"
    failed = [
        (host, result.get("msg", ""))
        for play in report["plays"]
        for task in play["tasks"]
        for host, result in task["hosts"].items()
        if result.get("failed")
    ]
    assert failed == [
        (
            "fs-rscope-router",
            "Worker URLs must look like http://HOST:PORT; got http://fs-rscope-e1/x:8100, http://fs-rscope-e2/x:8300. "
            "Fix router_worker_urls or the hosts' router_worker_address.",
        )
    ], proc.stdout[-3000:]
    assert proc.returncode == 2
