"""A vLLM rollback returns to the recorded image even when the failed rollout named its image with -e.

`fleetserve rollout -e vllm_docker_image_tag=<new>` passes the new tag as an extra var, which outranks the
include_role vars the release role used to pin the recorded image on a rollback: the rollback then ran the
failing image again (found by tests/integration/test_lab_vllm_fleet.py). The release role now pins through
__vllm_docker_pinned_image. Localhost, no Docker: the real planner's plan for the lab model on a recorded
H200, and the vllm_docker role's launch spec (a pure step) with and without the pin, under the extra var.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PLAY = f"""
- name: The image a vLLM release runs, with and without the rollback's pin
  hosts: localhost
  gather_facts: true
  tasks:
    - name: Load the model catalog
      ansible.builtin.include_vars:
        file: {ROOT}/roles/preflight/vars/models.yml
    - name: Read GPU facts from a recorded H200
      fleetserve.minimax.gpu_facts:
        nvidia_smi: {ROOT}/tests/fixtures/bin/nvidia-smi
        source: nvidia_smi
        nvswitch_proc_dir: {ROOT}/tests/fixtures/nvidia-smi/h200-x1
      environment:
        FLEETSERVE_FAKE_GPU_DIR: {ROOT}/tests/fixtures/nvidia-smi/h200-x1
      register: gpu
    - name: Plan the lab model on vLLM
      fleetserve.minimax.serving_plan:
        catalog:
          models: "{{{{ __preflight_catalog }}}}"
          engine_hosts: "{{{{ __preflight_engine_hosts }}}}"
        model: fleetserve-lab-tiny-m2
        gpu_facts: "{{{{ gpu }}}}"
        python_version: "{{{{ ansible_facts['python_version'] }}}}"
        wishes: {{engine: vllm, models_dir: /srv/models}}
      register: planned
    - name: The rollback's launch spec, pinned to the recorded image
      ansible.builtin.include_role:
        name: fleetserve.minimax.vllm_docker
        tasks_from: command
      vars:
        vllm_docker_plan: "{{{{ planned.plan }}}}"
        __vllm_docker_pinned_image: {{repository: fleetserve/lab-vllm-sim, tag: old, digest: ""}}
    - name: Keep it
      ansible.builtin.set_fact:
        pinned_ref: "{{{{ __vllm_docker_launch.spec.image.ref }}}}"
    - name: The rollout's launch spec, from the inventory and extra vars
      ansible.builtin.include_role:
        name: fleetserve.minimax.vllm_docker
        tasks_from: command
      vars:
        vllm_docker_plan: "{{{{ planned.plan }}}}"
    - name: Show both
      ansible.builtin.debug:
        msg: "REFS {{{{ {{'pinned': pinned_ref, 'rollout': __vllm_docker_launch.spec.image.ref}} | to_json }}}}"
"""


def test_the_rollback_pin_outranks_the_failed_rollouts_extra_var(run_playbook):
    done = run_playbook(
        PLAY,
        "-e",
        "vllm_docker_image_repository=fleetserve/lab-vllm-sim",
        "-e",
        "vllm_docker_image_tag=new",
        "-e",
        "fleetserve_allow_unauthenticated=true",  # only the image ref matters here, not the key
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    line = next(ln for ln in done.stdout.splitlines() if "REFS " in ln)
    refs = json.loads(line.split("REFS ", 1)[1].rstrip('"').replace('\\"', '"'))
    assert refs == {"pinned": "fleetserve/lab-vllm-sim:old", "rollout": "fleetserve/lab-vllm-sim:new"}
