"""Role preflight on a two-node SGLang group: ansible-playbook with two local 'hosts', each replaying a recording.

The hosts are real inventory hosts (local connection), so node ranks, node 0's address and the peers'
GPU facts come through the role's own hostvars plumbing, not through a hand-built `nodes` argument.
"""

from __future__ import annotations

import json
import socket
import sys

import pytest

pytestmark = pytest.mark.integration

PLAY = """
- name: Preflight under test
  hosts: all
  gather_facts: false
  roles:
    - role: fleetserve.minimax.preflight
"""

HOSTS = ("node-a", "node-b")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture()
def group(run_playbook, tmp_path, fixtures_dir):
    """Run the role on group `pair` (node-a, node-b). Returns (rc, {host: {task: result}})."""
    models = tmp_path / "models"
    (models / "MiniMax-M2.5").mkdir(parents=True)
    with open(models / "MiniMax-M2.5" / "model-00001-of-00130.safetensors", "wb") as handle:
        handle.truncate(254 * 10**9)  # sparse: the weights count as present, the disk check passes
    ports = {"engine": free_port(), "dist": free_port()}

    def _run(recordings=("h200-x2", "h200-x2"), host_vars=None, limit=None, **group_vars):
        lines = ["[pair]"]
        for host, recording in zip(HOSTS, recordings):
            wrapper = tmp_path / f"nvidia-smi-{host}"
            wrapper.write_text(
                f"#!/bin/sh\nFLEETSERVE_FAKE_GPU_DIR={fixtures_dir / 'nvidia-smi' / recording} "
                f"exec {fixtures_dir / 'bin' / 'nvidia-smi'} \"$@\"\n"
            )
            wrapper.chmod(0o755)
            extra = " ".join(f"{k}={v}" for k, v in (host_vars or {}).get(host, {}).items())
            lines.append(
                f"{host} ansible_connection=local ansible_host=127.0.0.1 ansible_python_interpreter={sys.executable} "
                f"preflight_nvidia_smi={wrapper} {extra}"
            )
        inventory = tmp_path / "hosts.ini"
        inventory.write_text("\n".join(lines) + "\n")
        variables = {
            "preflight_nnodes": 2,
            "preflight_node_group": "pair",
            "preflight_port": ports["engine"],
            "preflight_dist_init_port": ports["dist"],
            "preflight_nvswitch_proc_dir": str(tmp_path / "no-nvswitch"),
            "fleetserve_models_dir": str(models),
            **group_vars,
        }
        env = {"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.json"}
        args = ["-e", json.dumps(variables)] + (["--limit", limit] if limit else [])
        done = run_playbook(PLAY, *args, inventory=str(inventory), env=env)
        report = json.loads(done.stdout[done.stdout.index("{") :])
        results = {}
        for task in report["plays"][0]["tasks"]:
            for host, result in task["hosts"].items():
                results.setdefault(host, {})[task["task"]["name"].split(" : ")[-1]] = result
        assert all(s["changed"] == 0 for s in report["stats"].values()), report["stats"]
        return done.returncode, results

    _run.ports = ports
    return _run


def plan_of(results, host):
    return results[host]["Preflight | Publish the plan for the later roles"]["ansible_facts"]["preflight_plan"]


def refusal(results, host):
    failed = [r["msg"] for r in results[host].values() if r.get("failed")]
    assert len(failed) == 1, failed
    return failed[0]


def test_two_nodes_get_ranks_and_node_zeros_address(group):
    rc, results = group()
    assert rc == 0, {h: [r.get("msg") for r in t.values() if r.get("failed")] for h, t in results.items()}
    dist = f"127.0.0.1:{group.ports['dist']}"
    for rank, host in enumerate(HOSTS):
        plan = plan_of(results, host)
        assert (plan["nnodes"], plan["node_rank"], plan["dist_init_addr"], plan["node_group"]) == (
            2,
            rank,
            dist,
            "pair",
        )
        # One replica over all 4 GPUs of the two 2 x H200 nodes; TP4 needs no expert parallel for M2.5.
        assert (plan["tensor_parallel_size"], plan["expert_parallel_size"], plan["gpu_count"]) == (4, 1, 2)
        assert plan["port"] == group.ports["engine"]
        args = " ".join(plan["engine_args"])
        assert f"--tp-size 4 --nnodes 2 --node-rank {rank} --dist-init-addr {dist} --context-length" in args
    # Node 0 probes the distributed-init port (free here, so the refusal does not fire); node 1 does not probe it.
    probe = "Preflight | Probe whether the distributed-init port is taken on node 0"
    assert not results["node-a"][probe].get("skipped") and results["node-a"][probe]["port"] == group.ports["dist"]
    assert results["node-b"][probe].get("skipped")
    refusal = "Preflight | Assert the engine port, and the distributed-init port on node 0, are free"
    assert results["node-a"][refusal].get("skipped") and results["node-b"][refusal].get("skipped")


def test_node_address_overrides_ansible_host(group):
    rc, results = group(host_vars={"node-a": {"preflight_node_address": "localhost"}})
    assert rc == 0
    assert plan_of(results, "node-b")["dist_init_addr"] == f"localhost:{group.ports['dist']}"


def test_group_size_must_match_nnodes(group):
    rc, results = group(preflight_nnodes=3)
    assert rc == 2
    for host in HOSTS:
        assert refusal(results, host) == (
            "preflight_node_group 'pair' has 2 hosts (node-a, node-b) but preflight_nnodes is 3; list exactly 3 hosts "
            "in the group or set preflight_nnodes to 2"
        )


def test_nodes_with_different_gpus(group):
    rc, results = group(recordings=("h200-x2", "h100-x1"))
    assert rc == 2
    assert refusal(results, "node-a") == (
        "the nodes of group 'pair' differ: node-a has 2x NVIDIA H200 (143771 MiB), node-b has 1x NVIDIA H100 80GB "
        "HBM3 (81559 MiB); one engine needs the same GPU model and count on every node: put identical hosts in the group"
    )


def test_vllm_is_single_node_only(group):
    rc, results = group(preflight_engine="vllm")
    assert rc == 2
    assert refusal(results, "node-b") == (
        "a 2-node engine needs SGLang: the vllm_docker role runs one vLLM container per host (no Ray cluster, no "
        "multi-node vLLM); set preflight_engine to sglang, or preflight_nnodes to 1 and serve each host on its own "
        "behind the router"
    )


def test_node_zero_unresolvable(group):
    rc, results = group(host_vars={"node-a": {"preflight_node_address": "node-a.fleetserve.invalid"}})
    assert rc == 2
    for host in HOSTS:
        message = refusal(results, host)
        assert message.startswith(
            "node 0's address 'node-a.fleetserve.invalid' (group 'pair') does not resolve on this host ("
        ), message
        assert message.endswith(
            "); set preflight_node_address for node 0 to an IP address every node reaches, or fix DNS or /etc/hosts"
        )


def test_part_of_the_group_in_the_run(group):
    rc, results = group(limit="node-b")
    assert rc == 2
    assert refusal(results, "node-b") == (
        "node node-a (node_rank 0 of group 'pair') has no GPU facts in this run; run preflight on every host of the "
        "group together (a --limit must include the whole group) and fix the hosts that failed earlier"
    )


def test_dist_init_port_taken_on_node_zero(group):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", group.ports["dist"]))
        sock.listen()
        rc, results = group()
    assert rc == 2
    assert refusal(results, "node-a") == (
        f"port {group.ports['dist']} on node-a (node 0 of group 'pair') is used by another program, and SGLang's "
        "distributed initialisation listens there; stop that program or set preflight_dist_init_port to a free port"
    )
    assert plan_of(results, "node-b")["node_rank"] == 1  # the worker's own checks pass


def test_rerun_on_a_serving_group_passes(group):
    """Our running engine holds both ports on node 0: the engine port answers /health, so both are taken as ours."""
    import http.server
    import threading

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", group.ports["engine"]), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", group.ports["dist"]))
            sock.listen()
            rc, results = group()
    finally:
        server.shutdown()
        server.server_close()
    assert rc == 0, {h: [r.get("msg") for r in t.values() if r.get("failed")] for h, t in results.items()}
    assert plan_of(results, "node-a")["node_rank"] == 0
