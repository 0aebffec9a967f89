"""The argv real vLLM 0.26.0 ran with on the lent H200 is the one the vllm_docker role renders.

scripts/real_engine/vllm_on_device.py mirrors the role's __vllm_docker_argv in Python (the GPU machine
has no Ansible); here the role itself (tasks/command.yml, through ansible-playbook on localhost)
renders the plan for the recorded GPU facts, and must give the recorded argv after the interpreter.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "real-vllm-0.26.0"
sys.path.insert(0, str(ROOT / "tests" / "contract"))
sys.path.insert(0, str(ROOT / "scripts" / "real_engine"))

from contract_render import run_roles  # noqa: E402

import vllm_on_device  # noqa: E402


def test_role_renders_the_recorded_argv(tmp_path):
    rec = json.loads((FIXTURES / "recordings.json").read_text(encoding="utf-8"))
    facts = vllm_on_device.gpu_facts(
        (FIXTURES / "nvidia-smi-q.xml").read_text(), rec["nvidia_smi_query_gpu"], rec["nvidia_smi_topo"]
    )
    plan = vllm_on_device.plan_and_argv(facts, rec["argv"][0], "/root/models")["plan"]
    out = run_roles(tmp_path, {"real": {"engine": "vllm", "vars": {"preflight_plan": plan, "fleetserve_api_key": "k"}}})
    assert out["real"] == {"argv": rec["argv"][1:]}
