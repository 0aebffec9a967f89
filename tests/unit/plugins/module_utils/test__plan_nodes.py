"""_plan_nodes and build_plan over several hosts: ranks, node 0's address, TP/EP over all nodes, exact refusals."""

from __future__ import annotations

import socket

import pytest

from ansible_collections.fleetserve.minimax.plugins.module_utils import _catalog, _plan, _plan_nodes

pytestmark = pytest.mark.unit

H100 = {"name": "NVIDIA H100 80GB HBM3", "memory_total_mib": 81559, "compute_capability": "9.0", "mig_mode": False}
HOST = {"python_version": "3.11.2", "glibc_version": "2.36"}
FACTS = {"driver_version": "580.159.04", "gpus": [dict(H100, index=i) for i in range(8)]}
EIGHT_H100 = {"count": 8, "name": H100["name"], "memory_total_mib": 81559}


@pytest.fixture(scope="module")
def catalog(collection_root):
    return _catalog.load_catalog(collection_root / _catalog.CATALOG_RELPATH)


def nodes(me="h100-02", hosts=("h100-01", "h100-02"), members=None, **overrides):
    if members is None:
        members = [{"address": f"10.0.0.{i + 1}", "gpus": EIGHT_H100} for i in range(len(hosts))]
    spec = {"nnodes": 2, "group": "m25_2x8xh100", "me": me, "dist_init_port": 20000}
    spec["hosts"] = None if hosts is None else list(hosts)
    return dict(spec, members=members, **overrides)


def plan(catalog, node_spec, model="MiniMax-M2.5", facts=None, **wishes):
    return _plan.build_plan(catalog, model, FACTS if facts is None else facts, HOST, wishes, node_spec)


def refusal(catalog, node_spec, **kwargs):
    with pytest.raises(ValueError) as err:
        plan(catalog, node_spec, **kwargs)
    return str(err.value)


# --- the layout ------------------------------------------------------------------------------------


@pytest.mark.parametrize("me,rank", [("h100-01", 0), ("h100-02", 1)])
def test_m25_on_two_h100_nodes_is_tp16_ep16(catalog, me, rank):
    p = plan(catalog, nodes(me=me))
    assert (p["nnodes"], p["node_rank"], p["dist_init_addr"], p["node_group"]) == (
        2,
        rank,
        "10.0.0.1:20000",
        "m25_2x8xh100",
    )
    # 1536 / 16 = 96 is not a multiple of the 128-wide FP8 block: EP over all 16 GPUs, as SGLang runs it.
    assert (p["tensor_parallel_size"], p["expert_parallel_size"], p["data_parallel_size"]) == (16, 16, 1)
    assert p["gpu_count"] == 8  # per node; the engine spans gpu_count x nnodes
    assert p["engine_args"][4:14] == [
        "--tp-size",
        "16",
        "--ep-size",
        "16",
        "--nnodes",
        "2",
        "--node-rank",
        str(rank),
        "--dist-init-addr",
        "10.0.0.1:20000",
    ]
    assert p["port"] == 8000


def test_memory_is_sized_per_gpu_over_all_nodes(catalog):
    mem = plan(catalog, nodes())["memory"]
    assert mem["weights_bytes"] == 230_000_000_000 // 16
    assert mem["kv_bytes_per_token"] == 253952 // 8  # 8 KV heads over 16 GPUs: one (replicated) head each
    assert mem["reserve_bytes"] == _plan.CUDA_CONTEXT_BYTES + _plan.COMM_BUFFER_BYTES


def test_every_node_renders_the_same_command_but_its_rank(catalog):
    zero, one = (plan(catalog, nodes(me=h))["engine_args"] for h in ("h100-01", "h100-02"))
    at = zero.index("--node-rank") + 1
    assert (zero[at], one[at]) == ("0", "1")
    assert zero[:at] + zero[at + 1 :] == one[:at] + one[at + 1 :]


def test_single_node_group_is_a_single_node_plan(catalog):
    p = plan(catalog, nodes(me="h100-01", hosts=("h100-01",), nnodes=1))
    assert (p["nnodes"], p["node_rank"], p["dist_init_addr"], p["node_group"]) == (1, 0, None, "m25_2x8xh100")
    assert "--nnodes" not in p["engine_args"]


@pytest.mark.parametrize("spec", [None, {}, {"nnodes": 1, "group": None}])
def test_no_group_is_single_node(catalog, spec):
    p = plan(catalog, spec)
    assert (p["nnodes"], p["node_rank"], p["dist_init_addr"], p["tensor_parallel_size"]) == (1, 0, None, 8)


def test_explicit_full_tp_is_accepted(catalog):
    assert plan(catalog, nodes(), tensor_parallel_size=16, expert_parallel_size=16)["tensor_parallel_size"] == 16


# --- refusals --------------------------------------------------------------------------------------

H200_LINE = "h100-02 has 8x NVIDIA H200 (143771 MiB)"

REFUSALS = [
    (
        "nnodes zero",
        nodes(nnodes=0),
        {},
        "preflight_nnodes 0 must be >= 1; set it to the number of hosts the engine spans",
    ),
    (
        "no group",
        nodes(group=None),
        {},
        "preflight_nnodes is 2 but preflight_node_group is not set; set preflight_node_group to the inventory group "
        "whose hosts form this engine (node 0 first)",
    ),
    (
        "group not in the inventory",
        nodes(hosts=None, members=[]),
        {},
        "preflight_node_group 'm25_2x8xh100' is not a group of this inventory; add the group, or set "
        "preflight_node_group to the group whose hosts form this engine",
    ),
    (
        "group larger than nnodes",
        nodes(hosts=("h100-01", "h100-02", "h100-03")),
        {},
        "preflight_node_group 'm25_2x8xh100' has 3 hosts (h100-01, h100-02, h100-03) but preflight_nnodes is 2; "
        "list exactly 2 hosts in the group or set preflight_nnodes to 3",
    ),
    (
        "host outside the group",
        nodes(me="h100-09"),
        {},
        "h100-09 is not in preflight_node_group 'm25_2x8xh100' (h100-01, h100-02); set preflight_nnodes and "
        "preflight_node_group only on the group's hosts (group_vars/<group>/)",
    ),
    (
        "vLLM",
        nodes(),
        {"engine": "vllm"},
        "a 2-node engine needs SGLang: the vllm_docker role runs one vLLM container per host (no Ray cluster, no "
        "multi-node vLLM); set preflight_engine to sglang, or preflight_nnodes to 1 and serve each host on its own "
        "behind the router",
    ),
    (
        "peer without facts",
        nodes(members=[None, {"address": "10.0.0.2", "gpus": EIGHT_H100}]),
        {},
        "node h100-01 (node_rank 0 of group 'm25_2x8xh100') has no GPU facts in this run; run preflight on every "
        "host of the group together (a --limit must include the whole group) and fix the hosts that failed earlier",
    ),
    (
        "different GPU model",
        nodes(
            members=[
                {"address": "10.0.0.1", "gpus": EIGHT_H100},
                {"address": "10.0.0.2", "gpus": {"count": 8, "name": "NVIDIA H200", "memory_total_mib": 143771}},
            ]
        ),
        {},
        f"the nodes of group 'm25_2x8xh100' differ: h100-01 has 8x NVIDIA H100 80GB HBM3 (81559 MiB), {H200_LINE}; "
        "one engine needs the same GPU model and count on every node: put identical hosts in the group",
    ),
    (
        "different GPU count",
        nodes(
            members=[{"address": "10.0.0.1", "gpus": EIGHT_H100}, {"address": "x", "gpus": dict(EIGHT_H100, count=4)}]
        ),
        {},
        "the nodes of group 'm25_2x8xh100' differ: h100-01 has 8x NVIDIA H100 80GB HBM3 (81559 MiB), h100-02 has "
        "4x NVIDIA H100 80GB HBM3 (81559 MiB); one engine needs the same GPU model and count on every node: put "
        "identical hosts in the group",
    ),
    (
        "node 0 without address",
        nodes(members=[{"address": "", "gpus": EIGHT_H100}, {"address": "10.0.0.2", "gpus": EIGHT_H100}]),
        {},
        "node 0 (h100-01) of group 'm25_2x8xh100' has no address; set preflight_node_address (or ansible_host) for "
        "it to an address the other nodes reach",
    ),
    (
        "node 0 on IPv6",
        nodes(members=[{"address": "fd00::1", "gpus": EIGHT_H100}, {"address": "fd00::2", "gpus": EIGHT_H100}]),
        {},
        "node 0 (h100-01) has the IPv6 address fd00::1; --dist-init-addr takes HOST:PORT, so set "
        "preflight_node_address for it to an IPv4 address or a host name",
    ),
    (
        "dist init port is the engine port",
        nodes(dist_init_port=8000),
        {},
        "preflight_dist_init_port 8000 must be a free TCP port other than the engine port 8000; choose another "
        "preflight_dist_init_port",
    ),
    (
        "dist init port out of range",
        nodes(dist_init_port=70000),
        {},
        "preflight_dist_init_port 70000 must be a free TCP port other than the engine port 8000; choose another "
        "preflight_dist_init_port",
    ),
    (
        "TP over one node only",
        nodes(),
        {"tensor_parallel_size": 8},
        "a 2-node engine is one tensor-parallel replica over all 16 GPUs (2 nodes x 8); got tensor_parallel_size 8 "
        "x data_parallel_size 1: leave preflight_tensor_parallel_size and preflight_data_parallel_size unset, or "
        "serve the hosts as separate single-node engines behind the router",
    ),
    (
        "data parallel across nodes",
        nodes(),
        {"data_parallel_size": 2},
        "a 2-node engine is one tensor-parallel replica over all 16 GPUs (2 nodes x 8); got tensor_parallel_size 8 "
        "x data_parallel_size 2: leave preflight_tensor_parallel_size and preflight_data_parallel_size unset, or "
        "serve the hosts as separate single-node engines behind the router",
    ),
]


@pytest.mark.parametrize("spec,wishes,message", [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_refusals(catalog, spec, wishes, message):
    assert refusal(catalog, spec, **wishes) == message


def test_m1_cannot_span_nodes(catalog):
    """M1 runs only on vLLM, so a multi-node M1 group is refused by the engine check, naming the way out."""
    assert refusal(catalog, nodes(), model="MiniMax-M1-80k").startswith("a 2-node engine needs SGLang: ")


# --- node 0's address resolves on the node -------------------------------------------------------


def test_resolution_is_checked_only_on_multi_node_plans(catalog):
    calls = []
    _plan_nodes.check_head_resolves(plan(catalog, None), calls.append)
    _plan_nodes.check_head_resolves(plan(catalog, nodes()), calls.append)
    assert calls == ["10.0.0.1"]


def test_unresolvable_node_zero(catalog):
    def resolve(name):
        raise socket.gaierror(-2, "Name or service not known")

    with pytest.raises(ValueError) as err:
        _plan_nodes.check_head_resolves(plan(catalog, nodes()), resolve)
    assert str(err.value) == (
        "node 0's address '10.0.0.1' (group 'm25_2x8xh100') does not resolve on this host ([Errno -2] Name or "
        "service not known); set preflight_node_address for node 0 to an IP address every node reaches, or fix "
        "DNS or /etc/hosts"
    )
