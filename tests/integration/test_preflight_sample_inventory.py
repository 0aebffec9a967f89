"""inventories/sample: every GPU group plans what its comments promise, from real nvidia-smi recordings.

The inventory is loaded with Ansible's own inventory and variable managers (group_vars precedence
included), each host's wishes are built as roles/preflight/vars/main.yml builds them, and the plan
comes from the planner the role calls. The multi-node group's `nodes` argument is built from the
inventory group as the role builds it (the role's own plumbing is covered by test_preflight_multinode).
"""

from __future__ import annotations

import re

import pytest
import yaml
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.vars.manager import VariableManager

from ansible_collections.fleetserve.minimax.plugins.module_utils import _catalog, _gpu, _plan

pytestmark = pytest.mark.integration

HOST = {"python_version": "3.11.2", "glibc_version": "2.36"}  # Debian 12 + python3.11, as the catalog needs
WISHES = {  # wish key -> role variable (roles/preflight/vars/main.yml)
    "engine": "preflight_engine",
    "engine_version": "preflight_engine_version",
    "tensor_parallel_size": "preflight_tensor_parallel_size",
    "expert_parallel_size": "preflight_expert_parallel_size",
    "data_parallel_size": "preflight_data_parallel_size",
    "max_context": "preflight_max_context",
    "mem_fraction": "preflight_mem_fraction",
    "reasoning_style": "preflight_reasoning_style",
    "served_model_name": "preflight_served_model_name",
    "port": "preflight_port",
    "bind_address": "preflight_bind_address",
    "models_dir": "fleetserve_models_dir",
}
# group -> (recording, GPUs per host, (name, MiB) override or None). No H800 or H20 host was recorded:
# those use the H100 recording with the name and memory nvidia-smi reports on those parts.
GPUS = {
    "m1_h800": ("h100-x1", 8, ("NVIDIA H800", 81559)),
    "m1_h20": ("h100-x1", 8, ("NVIDIA H20", 97871)),
    "m25_4x96": ("h100-x1", 4, ("NVIDIA H20", 97871)),
    "m25_8x144": ("h200-x2", 8, None),
    "m25_2x8xh100": ("h100-x1", 8, None),
}
# group -> (model, engine, version, TP, EP, max_context, nnodes); the figures the hosts.yml comments promise.
EXPECTED = {
    "m1_h800": ("MiniMax-M1-80k", "vllm", "0.9.2", 8, 1, 2_000_000, 1),
    "m1_h20": ("MiniMax-M1-80k", "vllm", "0.9.2", 8, 1, 5_000_000, 1),
    "m25_4x96": ("MiniMax-M2.5", "sglang", "0.5.23", 4, 1, 196608, 1),
    "m25_8x144": ("MiniMax-M2.5", "sglang", "0.5.23", 8, 8, 196608, 1),
    "m25_2x8xh100": ("MiniMax-M2.5", "sglang", "0.5.23", 16, 16, 196608, 2),
}


@pytest.fixture(scope="module")
def sample(collection_root):
    loader = DataLoader()
    inventory = InventoryManager(loader=loader, sources=[str(collection_root / "inventories" / "sample")])
    return inventory, VariableManager(loader=loader, inventory=inventory)


@pytest.fixture(scope="module")
def catalog(collection_root):
    return _catalog.load_catalog(collection_root / _catalog.CATALOG_RELPATH)


@pytest.fixture(scope="module")
def defaults(collection_root):
    return yaml.safe_load((collection_root / "roles" / "preflight" / "defaults" / "main.yml").read_text())


def recorded_facts(fixtures_dir, group):
    recording, count, override = GPUS[group]
    base = fixtures_dir / "nvidia-smi" / recording
    facts = _gpu.merge_facts(
        _gpu.parse_query_xml((base / "nvidia-smi-q.xml").read_text()),
        _gpu.parse_query_csv((base / "query-gpu.csv").read_text()),
        _gpu.parse_topo((base / "topo.txt").read_text()),
        0,
    )
    gpu = dict(facts["gpus"][0])
    if override:
        gpu.update(name=override[0], memory_total_mib=override[1])
    return dict(facts, gpus=[dict(gpu, index=i) for i in range(count)])


def host_vars(sample, defaults, name):
    inventory, variables = sample
    return {**defaults, **variables.get_vars(host=inventory.get_host(name), include_hostvars=False)}


def node_spec(sample, defaults, hvars, facts):
    """What roles/preflight builds as __preflight_nodes (vars/main.yml, tasks/plan.yml)."""
    group = hvars["preflight_node_group"]
    if not group and int(hvars["preflight_nnodes"]) == 1:
        return None
    hosts = [h.name for h in sample[0].groups[group].get_hosts()]
    gpu = facts["gpus"][0]
    summary = {"count": len(facts["gpus"]), "name": gpu["name"], "memory_total_mib": gpu["memory_total_mib"]}
    members = []
    for peer in hosts:
        peer_vars = host_vars(sample, defaults, peer)
        address = peer_vars["preflight_node_address"] or peer_vars.get("ansible_host", peer)
        members.append({"address": address, "gpus": summary})
    return {
        "nnodes": hvars["preflight_nnodes"],
        "group": group,
        "me": hvars["inventory_hostname"],
        "dist_init_port": hvars["preflight_dist_init_port"],
        "hosts": hosts,
        "members": members,
    }


def plans_of(sample, defaults, catalog, fixtures_dir, group):
    facts = recorded_facts(fixtures_dir, group)
    out = {}
    for host in sample[0].groups[group].get_hosts():
        hvars = host_vars(sample, defaults, host.name)
        wishes = {key: hvars.get(var) for key, var in WISHES.items()}
        out[host.name] = _plan.build_plan(
            catalog, hvars["preflight_model"], facts, HOST, wishes, node_spec(sample, defaults, hvars, facts)
        )
    return out


def test_every_gpu_group_is_covered(sample):
    inventory = sample[0]
    leaves = {g.name for g in inventory.groups["gpu_hosts"].get_descendants() if not g.child_groups}
    assert leaves == set(EXPECTED)
    assert [h.name for h in inventory.groups["routers"].get_hosts()] == ["router-01.example.internal"]
    assert not set(inventory.groups["routers"].get_hosts()) & set(inventory.groups["gpu_hosts"].get_hosts())


@pytest.mark.parametrize("group", sorted(EXPECTED))
def test_group_plan(sample, defaults, catalog, fixtures_dir, group):
    model, engine, version, tp, ep, context, nnodes = EXPECTED[group]
    plans = plans_of(sample, defaults, catalog, fixtures_dir, group)
    assert plans
    for plan in plans.values():
        assert (plan["model"], plan["engine"], plan["engine_version"]) == (model, engine, version)
        assert (plan["tensor_parallel_size"], plan["expert_parallel_size"]) == (tp, ep)
        assert (plan["max_context"], plan["nnodes"], plan["port"]) == (context, nnodes, 8000)
        assert plan["model_dir"] == f"/srv/models/{model}"
        assert plan["kv_capacity_tokens"] >= context


def test_multi_node_group_ranks_follow_the_inventory(sample, defaults, catalog, fixtures_dir):
    plans = plans_of(sample, defaults, catalog, fixtures_dir, "m25_2x8xh100")
    ranks = {host: (p["node_rank"], p["dist_init_addr"]) for host, p in plans.items()}
    assert ranks == {
        "h100-01.gpu.example.internal": (0, "10.20.0.11:20000"),
        "h100-02.gpu.example.internal": (1, "10.20.0.11:20000"),
    }


def test_guide_capacities(sample, defaults, catalog, fixtures_dir):
    """The KV figures the hosts.yml comments quote (the guides': ~400k on 4x96 GB, ~3M on 8x144 GB)."""
    kv = {
        g: next(iter(plans_of(sample, defaults, catalog, fixtures_dir, g).values()))["kv_capacity_tokens"]
        for g in EXPECTED
    }
    assert 350_000 <= kv["m25_4x96"] <= 500_000
    assert 2_700_000 <= kv["m25_8x144"] <= 3_300_000
    assert 1_600_000 <= kv["m25_2x8xh100"] <= 2_000_000


def known_variables(collection_root) -> set:
    names = set()
    for defaults_file in (collection_root / "roles").glob("*/defaults/main.yml"):
        names |= set(yaml.safe_load(defaults_file.read_text()) or {})
    return names


def test_every_sample_knob_is_a_real_variable_and_commented(collection_root):
    """A misspelt or retired variable in the sample would be silently ignored by Ansible: refuse it here."""
    known = known_variables(collection_root)
    collection_wide = re.compile(r"^(fleetserve_|ansible_|vault_)")
    for path in sorted((collection_root / "inventories" / "sample" / "group_vars").rglob("*.yml")):
        text = path.read_text()
        assert text.startswith("---\n#"), f"{path}: start with a comment that says what the file sets"
        data = yaml.safe_load(text) or {}
        for name in data:
            if path.parent.name == "routers" and name.startswith("router_"):
                continue  # the router role's own variables (roles/router)
            assert name in known or collection_wide.match(name), f"{path}: {name} is no role variable"
            line = text.splitlines().index(next(x for x in text.splitlines() if x.startswith(f"{name}:")))
            above = text.splitlines()[line - 1] if line else ""
            assert above.startswith("#") or above.split(":")[0] in data, f"{path}: document {name} with a comment"
