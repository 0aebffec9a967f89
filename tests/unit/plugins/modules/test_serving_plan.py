"""serving_plan: the thin module over _plan: check mode, the disk check on a real directory, failures."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.fleetserve.minimax.plugins.module_utils import _catalog
from ansible_collections.fleetserve.minimax.plugins.modules import serving_plan

pytestmark = pytest.mark.unit

FACTS = {
    "driver_version": "580.159.04",
    "gpus": [
        {"index": i, "name": "NVIDIA H200", "memory_total_mib": 143771, "compute_capability": "9.0", "mig_mode": False}
        for i in range(2)
    ],
}


@pytest.fixture(scope="module")
def catalog(collection_root):
    return _catalog.load_catalog(collection_root / _catalog.CATALOG_RELPATH)


def run_module(capsys, **args):
    with patch_module_args(args), pytest.raises(SystemExit) as exc:
        serving_plan.main()
    out = json.loads(capsys.readouterr().out)
    out["rc"] = exc.value.code
    return out


def test_plan_in_check_mode(capsys, catalog):
    out = run_module(
        capsys,
        catalog=catalog,
        model="MiniMax-M2.5",
        gpu_facts=FACTS,
        python_version="3.11.2",
        _ansible_check_mode=True,
    )
    assert (out["rc"], out["changed"]) == (0, False)
    assert (out["plan"]["tensor_parallel_size"], out["plan"]["engine"]) == (2, "sglang")


def test_glibc_is_read_from_the_host_when_not_given(capsys, catalog):
    out = run_module(capsys, catalog=catalog, model="MiniMax-M2.5", gpu_facts=FACTS, python_version="3.11.2")
    assert out["rc"] == 0  # this machine's glibc (2.36) passes sglang 0.5.23's >= 2.34
    assert serving_plan.host_glibc() is not None


def test_disk_check_accepts_weights_already_present(capsys, catalog, tmp_path):
    model_dir = tmp_path / "MiniMax-M2.5"
    model_dir.mkdir()
    with open(model_dir / "model-00001-of-00130.safetensors", "wb") as handle:
        handle.truncate(254 * 10**9)  # sparse: counts as present without using the disk
    out = run_module(
        capsys,
        catalog=catalog,
        model="MiniMax-M2.5",
        gpu_facts=FACTS,
        python_version="3.11.2",
        wishes={"models_dir": str(tmp_path)},
        disk={"copies": 1, "margin": 0.1},
    )
    assert (out["rc"], out["plan"]["disk_needed_bytes"]) == (0, 0)


def test_disk_check_refuses_and_creates_nothing(capsys, catalog, tmp_path):
    out = run_module(
        capsys,
        catalog=catalog,
        model="MiniMax-M2.5",
        gpu_facts=FACTS,
        python_version="3.11.2",
        wishes={"models_dir": str(tmp_path / "models")},
        disk={"copies": 2, "margin": 0.1},
    )
    assert out["rc"] == 1
    assert out["msg"].startswith(
        f"{tmp_path}/models/MiniMax-M2.5 needs 506.0 GB more free disk for the weights plus 10% "
        "margin (twice the weights: Git LFS keeps a second copy under .git/lfs), its filesystem has "
    )
    assert list(tmp_path.iterdir()) == []


def test_refusal_is_a_clean_failure(capsys, catalog):
    out = run_module(capsys, catalog=catalog, model="MiniMax-M2.5", gpu_facts=FACTS, python_version="3.10.12")
    assert (out["rc"], out["changed"]) == (1, False)
    assert out["msg"].startswith("sglang 0.5.23 needs Python >= 3.11, the host has 3.10.12;")


def two_nodes(address):
    member = {"address": address, "gpus": {"count": 2, "name": "NVIDIA H200", "memory_total_mib": 143771}}
    return {
        "nnodes": 2,
        "group": "pair",
        "me": "b",
        "hosts": ["a", "b"],
        "members": [member, dict(member, address="127.0.0.2")],
    }


def test_multi_node_plan_uses_the_default_dist_init_port(capsys, catalog):
    out = run_module(
        capsys,
        catalog=catalog,
        model="MiniMax-M2.5",
        gpu_facts=FACTS,
        python_version="3.11.2",
        nodes=two_nodes("127.0.0.1"),
    )
    assert out["rc"] == 0, out.get("msg")
    assert (out["plan"]["nnodes"], out["plan"]["node_rank"], out["plan"]["dist_init_addr"]) == (2, 1, "127.0.0.1:20000")


def test_multi_node_plan_refuses_an_unresolvable_node_zero(capsys, catalog):
    """Resolved by the module on the node itself: '.invalid' never resolves (RFC 6761)."""
    out = run_module(
        capsys,
        catalog=catalog,
        model="MiniMax-M2.5",
        gpu_facts=FACTS,
        python_version="3.11.2",
        nodes=two_nodes("head.fleetserve.invalid"),
    )
    assert (out["rc"], out["changed"]) == (1, False)
    assert out["msg"].startswith(
        "node 0's address 'head.fleetserve.invalid' (group 'pair') does not resolve on this host ("
    )
