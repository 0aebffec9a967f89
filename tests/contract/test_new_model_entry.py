"""Adding a model is one catalog entry: a hypothetical MiniMax release goes from the catalog to both engine roles'
launch specs with no edit anywhere else.

A copy of the collection gets one new entry in roles/preflight/vars/models.yml (the only file that differs from
the checkout, checked below). One ansible-playbook run on localhost then loads that catalog as the preflight role
does, plans the model with the real serving_plan module, and runs each engine role's own launch-spec step
(tasks/command.yml). The roles render the new model's weights directory, name, parsers and flags, and the new
entry's own floor refuses an older engine release.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from contract_layouts import H200

pytestmark = pytest.mark.contract

NEW_MODEL = "MiniMax-M3-Hypothetical"
# What a new release's entry looks like: the M2 architecture, its own repository, a higher SGLang floor, and one
# flag of its own. Nothing in the roles knows any of it.
NEW_ENTRY = {
    "inherits": "MiniMax-M2",
    "hf_repo": "MiniMaxAI/MiniMax-M3-Hypothetical",
    "revision": "0123456789abcdef0123456789abcdef01234567",
    "engines": {
        "sglang": {
            "floor": "0.5.23",
            "below": None,
            "recommended": "0.5.23",
            "default": "0.5.23",
            "flags": ["--trust-remote-code", "--enable-multimodal"],
            "tool_call_parser": "minimax-m2",
            "reasoning_parsers": {"append_think": "minimax-append-think", "separate": "minimax"},
            "chat_template": None,
        },
        "vllm": {
            "floor": "0.33.0",
            "below": None,
            "recommended": "0.33.0",
            "default": "0.33.0",
            "image": "vllm/vllm-openai",
            "flags": ["--trust-remote-code"],
            "tool_call_parser": "minimax_m2",
            "reasoning_parsers": {"append_think": "minimax_m2_append_think", "separate": "minimax_m2"},
            "chat_template": None,
        },
    },
}
IGNORED = shutil.ignore_patterns(".git", ".venv", ".cache", "__pycache__", "*.egg-info", "tests", "molecule", "bench")


def _play(engine: str, version: str, out: Path) -> dict:
    role = {"vllm": "vllm_docker", "sglang": "sglang_venv"}[engine]
    gpu_facts = {"gpus": [dict(H200, index=i) for i in range(8)], "driver_version": "580.95.05", "source": "nvidia_smi"}
    return {
        "name": f"{NEW_MODEL} on {engine} {version}",
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [
            {
                "name": "Load the model catalog as the preflight role does",
                "ansible.builtin.include_vars": {"file": "{{ collection }}/roles/preflight/vars/models.yml"},
            },
            {
                "name": "Plan and render",
                "block": [
                    {
                        "name": "Compute the serving plan",
                        "fleetserve.minimax.serving_plan": {
                            "catalog": {
                                "models": "{{ __preflight_catalog }}",
                                "engine_hosts": "{{ __preflight_engine_hosts }}",
                            },
                            "model": NEW_MODEL,
                            "gpu_facts": gpu_facts,
                            "python_version": "3.11.2",
                            "glibc_version": "2.36",
                            "wishes": {"engine": engine, "engine_version": version},
                        },
                        "register": "planned",
                    },
                    {
                        "name": "Run the engine role's launch-spec step",
                        "ansible.builtin.include_role": {
                            "name": f"fleetserve.minimax.{role}",
                            "tasks_from": "command",
                            "public": True,
                        },
                        # keyed: a keyless engine on 0.0.0.0 is refused (docs/security.md)
                        "vars": {"preflight_plan": "{{ planned.plan }}", "fleetserve_api_key": "fs-new-model-key"},
                    },
                    {
                        "name": "Keep the launch spec",
                        "ansible.builtin.copy": {
                            "content": "{{ {'spec': __%s_launch.spec} | to_json }}" % role,
                            "dest": str(out),
                            "mode": "0644",
                        },
                    },
                ],
                "rescue": [
                    {
                        "name": "Keep the refusal",
                        "ansible.builtin.copy": {
                            "content": "{{ {'error': ansible_failed_result.msg} | to_json }}",
                            "dest": str(out),
                            "mode": "0644",
                        },
                    }
                ],
            },
        ],
    }


@pytest.fixture(scope="module")
def rendered(collection_root, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("new-model")
    copy = tmp / "ansible_collections" / "fleetserve" / "minimax"
    shutil.copytree(collection_root, copy, ignore=IGNORED, symlinks=True)
    catalog_file = copy / "roles" / "preflight" / "vars" / "models.yml"
    catalog = yaml.safe_load(catalog_file.read_text())
    catalog["__preflight_catalog"][NEW_MODEL] = NEW_ENTRY
    catalog_file.write_text(yaml.safe_dump(catalog, sort_keys=False))
    cases = {
        "sglang": ("sglang", "0.5.23"),
        "vllm": ("vllm", "0.33.0"),
        "sglang-below-new-floor": ("sglang", "0.5.4.post1"),
    }
    plays = [_play(engine, version, tmp / f"{case}.json") for case, (engine, version) in cases.items()]
    playbook = tmp / "new-model.yml"
    playbook.write_text(yaml.safe_dump(plays, sort_keys=False))
    local = Path(sys.executable).parent / "ansible-playbook"
    proc = subprocess.run(
        [
            str(local) if local.exists() else "ansible-playbook",
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            json.dumps({"collection": str(copy)}),
            str(playbook),
        ],
        env={
            **os.environ,
            "ANSIBLE_COLLECTIONS_PATH": str(tmp),
            "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_LOCAL_TEMP": str(tmp / "local"),
        },
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return {"copy": copy, **{case: json.loads((tmp / f"{case}.json").read_text()) for case in cases}}


def test_only_the_catalog_differs(collection_root, rendered):
    """The copy the roles ran from is the checkout plus one catalog entry: no role, plugin or playbook edited."""
    copy = rendered["copy"]
    differing = []
    for path in sorted(copy.rglob("*")):
        if path.is_file() and not path.is_symlink():
            original = collection_root / path.relative_to(copy)
            if not original.is_file() or original.read_bytes() != path.read_bytes():
                differing.append(str(path.relative_to(copy)))
    assert differing == ["roles/preflight/vars/models.yml"]


# The entry pins a commit: its weights get their own directory beside any other revision's (_plan.model_dir).
NEW_MODEL_DIR = f"/srv/models/{NEW_MODEL}--{NEW_ENTRY['revision']}"


def test_sglang_role_runs_the_new_model(rendered):
    spec = rendered["sglang"]["spec"]
    argv = spec["argv"]
    assert argv[:4] == ["--model-path", NEW_MODEL_DIR, "--served-model-name", NEW_ENTRY["hf_repo"]]
    assert "--enable-multimodal" in argv and argv[argv.index("--tool-call-parser") + 1] == "minimax-m2"
    assert spec["exec"][:3] == ["/opt/fleetserve/sglang/venv-0.5.23/bin/python", "-m", "sglang.launch_server"]
    release = spec["release"]
    assert (release["model"], release["revision"], release["version"]) == (NEW_MODEL, NEW_ENTRY["revision"], "0.5.23")


def test_vllm_role_runs_the_new_model(rendered):
    spec = rendered["vllm"]["spec"]
    argv = spec["argv"]
    assert argv[2:6] == ["--model", NEW_MODEL_DIR, "--served-model-name", NEW_ENTRY["hf_repo"]]
    assert argv[argv.index("--tool-call-parser") + 1] == "minimax_m2" and "--enable-multimodal" not in argv
    assert spec["release"]["image"]["ref"] == "vllm/vllm-openai:v0.33.0"


def test_the_new_entrys_floor_refuses_older_engines(rendered):
    assert rendered["sglang-below-new-floor"] == {
        "error": f"sglang 0.5.4.post1 is below the floor 0.5.23 for {NEW_MODEL}; set preflight_engine_version to "
        "0.5.23 (or any release >= 0.5.23)"
    }
