"""The deployments whose command lines the contract covers: model x engine x pinned version x layout.

Each plan comes from the preflight planner itself (plugins/module_utils/_plan.py): `build_plan` on an
8 x H200 host, then, for layouts that host does not produce on its own (TP2, DP8+EP), the sizes are
changed and the flags re-rendered with the planner's own `engine_args`. Multi-node layouts are planned
whole by `build_plan`, once per node of a group of 8 x H200 hosts, exactly as the preflight role calls
it. _launch.launch_spec then adds the roles' part (launcher, extra flags, --config), as the roles run it.
"""

from __future__ import annotations

import copy

from ansible_collections.fleetserve.minimax.plugins.module_utils import _catalog, _plan

H200 = {"name": "NVIDIA H200", "memory_total_mib": 143771, "compute_capability": "9.0", "mig_mode": False}
HOST = {"python_version": "3.11.2", "glibc_version": "2.36"}

# id: (model, engine, version, tp, ep, dp, nnodes[, reasoning style])
LAYOUTS = {
    "m1-vllm-0.9.2-tp8": ("MiniMax-M1-40k", "vllm", "0.9.2", 8, 1, 1, 1),
    "m1-vllm-0.9.2-tp4": ("MiniMax-M1-80k", "vllm", "0.9.2", 4, 1, 1, 1),
    "m1-vllm-0.9.2-tp2": ("MiniMax-M1-40k", "vllm", "0.9.2", 2, 1, 1, 1),
    "m2-vllm-0.33.0-tp4": ("MiniMax-M2", "vllm", "0.33.0", 4, 1, 1, 1),
    "m2.1-vllm-0.33.0-tp8-ep": ("MiniMax-M2.1", "vllm", "0.33.0", 8, 8, 1, 1),
    "m2.5-vllm-0.33.0-dp8-ep": ("MiniMax-M2.5", "vllm", "0.33.0", 1, 8, 8, 1),
    "m2.5-sglang-0.5.23-tp4": ("MiniMax-M2.5", "sglang", "0.5.23", 4, 1, 1, 1),
    "m2.1-sglang-0.5.23-tp8-ep8": ("MiniMax-M2.1", "sglang", "0.5.23", 8, 8, 1, 1),
    "m2.5-sglang-0.5.23-2node-tp16-ep16": ("MiniMax-M2.5", "sglang", "0.5.23", 16, 16, 1, 2),
    "m2-sglang-0.5.4.post1-tp4": ("MiniMax-M2", "sglang", "0.5.4.post1", 4, 1, 1, 1),
    "m2.5-sglang-0.5.4.post1-tp8-ep8": ("MiniMax-M2.5", "sglang", "0.5.4.post1", 8, 8, 1, 1),
    "m2.5-sglang-0.5.4.post1-2node-tp16-ep16": ("MiniMax-M2.5", "sglang", "0.5.4.post1", 16, 16, 1, 2),
    "m2.5-vllm-0.33.0-tp4-separate": ("MiniMax-M2.5", "vllm", "0.33.0", 4, 1, 1, 1, "separate"),
    "m2.5-sglang-0.5.23-tp4-separate": ("MiniMax-M2.5", "sglang", "0.5.23", 4, 1, 1, 1, "separate"),
}

DIST_INIT_ADDR = "10.0.0.1:20000"
NODE_GROUP = "contract_nodes"


def node_group(nnodes: int, rank: int, gpus: int) -> dict:
    """The `nodes` argument the preflight role passes on the host of `rank` in a group of `nnodes` H200 hosts."""
    hosts = [f"node-{i}" for i in range(nnodes)]
    summary = {"count": gpus, "name": H200["name"], "memory_total_mib": H200["memory_total_mib"]}
    host, port = DIST_INIT_ADDR.rsplit(":", 1)
    members = [{"address": host if i == 0 else f"10.0.0.{i + 1}", "gpus": summary} for i in range(nnodes)]
    return {
        "nnodes": nnodes,
        "group": NODE_GROUP,
        "me": hosts[rank],
        "dist_init_port": int(port),
        "hosts": hosts,
        "members": members,
    }


def node_plans(catalog: dict, model: str, facts: dict, wishes: dict, nnodes: int, tp: int, ep: int) -> list:
    """One plan per node, straight from build_plan; the layout must be what the planner chose by itself."""
    out = []
    for rank in range(nnodes):
        plan = _plan.build_plan(catalog, model, facts, HOST, wishes, node_group(nnodes, rank, len(facts["gpus"])))
        assert (plan["tensor_parallel_size"], plan["expert_parallel_size"], plan["node_rank"]) == (tp, ep, rank)
        plan.pop("memory", None)
        out.append(plan)
    return out


def plans(catalog: dict, layout_id: str) -> list:
    """The plan(s) of one layout: one per node (node_rank 0..nnodes-1)."""
    model, engine, version, tp, ep, dp, nnodes, *style = LAYOUTS[layout_id]
    wishes = {"engine": engine, "engine_version": version, "served_model_name": model}
    if style:
        wishes["reasoning_style"] = style[0]
    host_gpus = min(tp * dp // nnodes, 8)
    facts = {"driver_version": "580.159.04", "gpus": [dict(H200, index=i) for i in range(max(host_gpus, 8))]}
    if nnodes > 1:
        return node_plans(catalog, model, facts, wishes, nnodes, tp, ep)
    base = _plan.build_plan(catalog, model, facts, HOST, dict(wishes, tensor_parallel_size=8))
    entry = _catalog.model_entry(catalog, model)
    spec = _catalog.engine_spec(model, entry, engine)
    plan = copy.deepcopy(base)
    plan.update(tensor_parallel_size=tp, expert_parallel_size=ep, data_parallel_size=dp, gpu_count=host_gpus)
    plan.pop("memory", None)
    plan["engine_args"] = _plan.engine_args(model, entry, engine, spec, plan)
    return [plan]
