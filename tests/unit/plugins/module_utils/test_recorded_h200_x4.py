"""The real 4x H200 host (tests/fixtures/nvidia-smi/h200-x4): every plan and refusal the preflight play printed
there comes out of the same recording here, field for field.

Why: docs/preflight.md, "Real hardware"; what ran there: docs/results.md, "Preflight on real GPU hosts".
The plays ran with ``-v``, so each output file holds the plan the play published (``"plan": {...}``) or
the refusal (``fatal: ... "msg": ...``).
"""

from __future__ import annotations

import json

import pytest

from ansible_collections.fleetserve.minimax.plugins.module_utils import _catalog, _gpu, _plan

pytestmark = pytest.mark.unit

HOST_DIR = "h200-x4"
# The host's own Python and glibc (host.txt: Ubuntu 24.04.3).
HOST = {"python_version": "3.12.3", "glibc_version": "2.39"}
BASE = {"models_dir": "/tmp/models", "port": 8000}


@pytest.fixture(scope="module")
def catalog(collection_root):
    return _catalog.load_catalog(collection_root / _catalog.CATALOG_RELPATH)


@pytest.fixture(scope="module")
def host_dir(fixtures_dir):
    return fixtures_dir / "nvidia-smi" / HOST_DIR


@pytest.fixture(scope="module")
def facts(host_dir):
    return _gpu.merge_facts(
        _gpu.parse_query_xml((host_dir / "nvidia-smi-q.xml").read_text()),
        _gpu.parse_query_csv((host_dir / "query-gpu.csv").read_text()),
        _gpu.parse_topo((host_dir / "topo.txt").read_text()),
        0,
    )


def printed_plan(host_dir, run):
    text = (host_dir / f"preflight-{run}-output.txt").read_text()
    line = next(x for x in text.splitlines() if x.startswith("ok: [localhost]") and '"plan": {' in x)
    return json.loads(line[line.index("{") :])["plan"]


def printed_refusal(host_dir, run):
    text = (host_dir / f"preflight-{run}-output.txt").read_text()
    line = next(x for x in text.splitlines() if x.startswith("fatal: [localhost]"))
    return json.loads(line[line.index("{") :])["msg"]


def test_the_recording_is_a_four_gpu_nvlink_host_with_a_hidden_switch(facts):
    """All six pairs at NV18 with fabric Completed, yet no NVSwitch device in the VM: the switch is the host's."""
    assert facts["gpu_count"] == 4
    assert {g["name"] for g in facts["gpus"]} == {"NVIDIA H200"}
    assert {g["memory_total_mib"] for g in facts["gpus"]} == {143771}
    assert facts["nvlink_counts"] == {"0-1": 18, "0-2": 18, "0-3": 18, "1-2": 18, "1-3": 18, "2-3": 18}
    assert facts["fabric_manager_state"] == "Completed"
    assert facts["nvswitch_present"] is False


@pytest.mark.parametrize(
    "run, model, wishes, layout",
    [
        ("m25-sglang-tp4", "MiniMax-M2.5", {}, ("sglang", "0.5.23", 4, 1, 1_095_763)),
        ("m25-sglang-tp4-ep4", "MiniMax-M2.5", {"expert_parallel_size": 4}, ("sglang", "0.5.23", 4, 4, 1_095_763)),
        ("m25-vllm-tp4", "MiniMax-M2.5", {"engine": "vllm"}, ("vllm", "0.33.0", 4, 1, 1_206_187)),
        ("m1-80k-vllm-tp4", "MiniMax-M1-80k", {}, ("vllm", "0.9.2", 4, 1, 1_014_479)),
    ],
)
def test_plans_match_what_the_real_host_printed(catalog, facts, host_dir, run, model, wishes, layout):
    real = printed_plan(host_dir, run)
    here = _plan.build_plan(catalog, model, facts, HOST, {**BASE, **wishes})
    # The play ran with the weights in place (sparse files), so it needed no more disk; the pure plan does not look.
    assert real.pop("disk_needed_bytes") == 0
    here.pop("disk_needed_bytes", None)
    # Recorded before --host/--port closed the plan's argv.
    assert here["engine_args"][-4:] == ["--host", real["host"], "--port", str(real["port"])]
    here["engine_args"] = here["engine_args"][:-4]
    if here["engine"] == "sglang":  # recorded before SGLang's /metrics was on in every plan
        assert here["engine_args"][-1] == "--enable-metrics"
        here["engine_args"] = here["engine_args"][:-1]
    # Every field the host printed is pinned; fields added to the plan since are checked by test__plan.py.
    assert {key: here.get(key) for key in real} == real
    engine, version, tp, ep, kv_tokens = layout
    assert (real["engine"], real["engine_version"], real["tensor_parallel_size"]) == (engine, version, tp)
    assert (real["expert_parallel_size"], real["kv_capacity_tokens"]) == (ep, kv_tokens)


def test_check_mode_printed_the_same_plans(host_dir):
    assert printed_plan(host_dir, "m25-sglang-tp4-check") == printed_plan(host_dir, "m25-sglang-tp4")
    assert printed_plan(host_dir, "m1-80k-vllm-tp4-check") == printed_plan(host_dir, "m1-80k-vllm-tp4")


@pytest.mark.parametrize(
    "run, model, wishes",
    [
        ("m25-sglang-tp8-refused", "MiniMax-M2.5", {"tensor_parallel_size": 8}),
        ("m1-80k-5m-refused", "MiniMax-M1-80k", {"max_context": 5_000_000}),
    ],
)
def test_refusals_match_what_the_real_host_printed(catalog, facts, host_dir, run, model, wishes):
    with pytest.raises(ValueError) as err:
        _plan.build_plan(catalog, model, facts, HOST, {**BASE, **wishes})
    assert str(err.value) == printed_refusal(host_dir, run)
