"""Run the engine roles' own tasks (command.yml: the launch spec; preflight.yml: read-only probes) in one play each."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROLE = {"vllm": "vllm_docker", "sglang": "sglang_venv"}
TEST_API_KEY = "fs-contract-key-3f9a"


def _ansible_env(tmp: Path) -> dict:
    env = dict(os.environ)
    env.update(
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        ANSIBLE_LOCAL_TEMP=str(tmp / "local"),
        ANSIBLE_REMOTE_TEMP=str(tmp / "remote"),
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
    )
    return env


def run_roles(tmp: Path, cases: dict) -> dict:
    """Run each engine role's tasks/command.yml (or tasks_from) for every case, one play per case, in ONE
    ansible-playbook.

    cases: {id: {"engine": ..., "vars": {...}}}. Returns {id: {"argv": [...]} or {"error": msg}}.
    """
    out_dir = tmp / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    plays = []
    for case_id, case in cases.items():
        role = ROLE[case["engine"]]
        plays.append(
            {
                "name": case_id,
                "hosts": "localhost",
                "gather_facts": False,
                # Keyed unless the case says otherwise: a keyless engine on 0.0.0.0 is refused (_secrets.check_exposure).
                "vars": {"fleetserve_api_key": TEST_API_KEY, **case["vars"]},
                "tasks": [
                    {
                        "name": "Render through the role",
                        "block": [
                            {
                                "name": "Include the command checks",
                                "ansible.builtin.include_role": {
                                    "name": f"fleetserve.minimax.{role}",
                                    "tasks_from": case.get("tasks_from", "command"),
                                    "public": True,
                                },
                            },
                            {
                                "name": "Record the argv",
                                "ansible.builtin.copy": {
                                    "content": "{{ {'argv': __%s_launch.spec.argv | default(None)} | to_json }}" % role,
                                    "dest": str(out_dir / f"{case_id}.json"),
                                    "mode": "0644",
                                },
                            },
                        ],
                        "rescue": [
                            {
                                "name": "Record the refusal",
                                "ansible.builtin.copy": {
                                    "content": "{{ {'error': ansible_failed_result.msg} | to_json }}",
                                    "dest": str(out_dir / f"{case_id}.json"),
                                    "mode": "0644",
                                },
                            }
                        ],
                    }
                ],
            }
        )
    playbook = tmp / "render.yml"
    playbook.write_text(yaml.safe_dump(plays, sort_keys=False))
    local = Path(sys.executable).parent / "ansible-playbook"
    proc = subprocess.run(
        [str(local) if local.exists() else "ansible-playbook", "-i", "localhost,", "-c", "local", str(playbook)],
        env=_ansible_env(tmp),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"ansible-playbook failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}"
    return {case_id: json.loads((out_dir / f"{case_id}.json").read_text()) for case_id in cases}
