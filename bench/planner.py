#!/usr/bin/env python3
"""Does the serving plan reproduce the MiniMax guides' published figures?

One JSON object per published case, through the same functions the preflight role runs:

* capacity (M2.5 SGLang guide): total KV tokens on 4x96 GB and 8x144 GB, on the guide's own basis
  (220 GB of weights, 240 GB per 1M tokens, --mem-fraction-static 0.85, GPU sizes as written).
  Target: computed / published within 0.9..1.1.
* max_context (M1 vLLM guide): the plan must accept 2M tokens on 8xH800 and 5M on 8xH20 at vLLM's
  default --gpu-memory-utilization 0.9, with the real catalog entry and the GPUs' memory as
  nvidia-smi reports it (H800: 81559 MiB, as our H100 80GB recording; H20: 97871 MiB).
  Target: accepted, computed (the KV capacity) / published >= 1.0.
* must_refuse: 5M tokens on 8xH800. Target: not accepted.
* real_engine: the KV cache real vLLM 0.26.0 reported on a lent H200 for the tiny
  random-weight MiniMax-M2 checkpoint (tests/fixtures/real-vllm-0.26.0, made by scripts/real_engine/),
  next to what the plan predicts from that machine's recorded nvidia-smi. Target: ratio
  (predicted / engine) within 0.95..1.05. No GPU needed: it reads the kept recording.

usage: bench/planner.py     prints the JSON list on stdout
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / ".cache" / "collections"))
_LINK = ROOT / ".cache" / "collections" / "ansible_collections" / "fleetserve" / "minimax"
if not _LINK.exists():
    _LINK.parent.mkdir(parents=True, exist_ok=True)
    _LINK.symlink_to(ROOT)

from ansible_collections.fleetserve.minimax.plugins.module_utils import _catalog, _plan  # noqa: E402

HOST = {"python_version": "3.12.3", "glibc_version": "2.39"}  # Ubuntu 24.04, as on our real H100 host
GPUS = {"H800": ("NVIDIA H800", 81559), "H20": ("NVIDIA H20", 97871)}


def facts(kind: str, count: int) -> dict:
    name, mib = GPUS[kind]
    gpus = [
        {"index": i, "name": name, "memory_total_mib": mib, "compute_capability": "9.0", "mig_mode": False}
        for i in range(count)
    ]
    return {"driver_version": "580.159.04", "gpus": gpus}


def capacity_case(catalog: dict, count: int, gpu_gb: int, published: int) -> dict:
    entry = dict(
        _catalog.model_entry(catalog, "MiniMax-M2.5"), gpu_weights_bytes=220 * 10**9, kv_bytes_per_token=240_000
    )
    spec = entry["engines"]["sglang"]
    tp = count
    ep = 1 if (entry["intermediate_size"] // tp) % entry["fp8_block_n"] == 0 else tp  # as the plan defaults
    mem = _plan.memory(entry, "sglang", spec["default"], spec, gpu_gb * 10**9, 0.85, tp, ep, None)
    computed = mem["kv_capacity_tokens"]
    return {
        "case": f"M2.5 SGLang {count}x{gpu_gb}GB total KV (guide basis)",
        "kind": "capacity",
        "published_tokens": published,
        "computed_tokens": computed,
        "ratio": round(computed / published, 3),
        "accepted": True,
    }


def context_case(catalog: dict, kind: str, context: int, case_kind: str) -> dict:
    try:
        plan = _plan.build_plan(catalog, "MiniMax-M1-80k", facts(kind, 8), HOST, {"max_context": context})
        computed, accepted = plan["kv_capacity_tokens"], True
    except _plan.PlanError:
        probe = _plan.build_plan(catalog, "MiniMax-M1-80k", facts(kind, 8), HOST, {"max_context": _plan.MIN_CONTEXT})
        computed, accepted = probe["kv_capacity_tokens"], False
    return {
        "case": f"M1 vLLM 8x{kind} {context // 10**6}M context",
        "kind": case_kind,
        "published_tokens": context,
        "computed_tokens": computed,
        "ratio": round(computed / context, 3),
        "accepted": accepted,
    }


def real_engine_case() -> dict:
    """The plan for the recorded device run's GPU facts, against the KV tokens vLLM logged there."""
    sys.path.insert(0, str(ROOT / "scripts" / "real_engine"))
    import vllm_on_device  # the run's own catalog entry and argv rendering

    rec = json.loads((ROOT / "tests" / "fixtures" / "real-vllm-0.26.0" / "recordings.json").read_text())
    facts = vllm_on_device.gpu_facts(
        (ROOT / "tests" / "fixtures" / "real-vllm-0.26.0" / "nvidia-smi-q.xml").read_text(),
        rec["nvidia_smi_query_gpu"],
        rec["nvidia_smi_topo"],
    )
    launch = vllm_on_device.plan_and_argv(facts, rec["argv"][0], "/root/models")
    predicted, engine = launch["plan"]["kv_capacity_tokens"], rec["log_figures"]["kv_cache_tokens"]
    return {
        "case": f"{vllm_on_device.MODEL} on 1x{facts['gpus'][0]['name']}, recorded engine KV cache",
        "kind": "real_engine",
        "engine": f"vllm {vllm_on_device.ENGINE_VERSION}",
        "gpu": facts["gpus"][0]["name"],
        "predicted_kv_tokens": predicted,
        "engine_kv_tokens": engine,
        "ratio": round(predicted / engine, 3),
        "same_argv": launch["argv"][1:] == rec["argv"][1:],
        "time_to_ready_s": rec["time_to_ready_s"],
    }


def main() -> int:
    catalog = _catalog.load_catalog(ROOT / _catalog.CATALOG_RELPATH)
    cases = [
        capacity_case(catalog, 4, 96, 400_000),
        capacity_case(catalog, 8, 144, 3_000_000),
        context_case(catalog, "H800", 2_000_000, "max_context"),
        context_case(catalog, "H20", 5_000_000, "max_context"),
        context_case(catalog, "H800", 5_000_000, "must_refuse"),
    ]
    cases.append(real_engine_case())
    print(json.dumps(cases, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
