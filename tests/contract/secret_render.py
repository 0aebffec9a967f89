"""Write secrets through the roles' own tasks: each task that stores a key, run by Ansible as the role has it.

The task (its `content` expression and its `vars`) is read from the role's task file, so a change to the role is
what the tests see; only `dest` points into the test's directory. Every key goes through both of its sources: the
vaulted variable (fleetserve_api_key) and a key file on the host (<role>_api_key_file, read by slurp).
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import yaml
from contract_render import _ansible_env

ROOT = Path(__file__).resolve().parents[2]

# Hostile but valid: each breaks a naive writer of at least one of the formats (env-file, systemd, YAML, shell).
HOSTILE_KEYS = [
    'a"b',
    "$HOME",
    "${PATH}x",
    "back\\slash",
    "tail\\",
    "100%",
    "%n%%",
    "with space",
    "'single'",
    "#hash",
    "`id`",
    "=eq=;semi",
    "true",
    "~",
    "- a: b",
]

# (role, task file, task name, variable holding the key file path, registered slurp result, extra vars)
WRITERS = {
    "vllm": ("vllm_docker", "configure.yml", "VLLM | Write the API key file", "__vllm_docker_key_blob", {}),
    "sglang": ("sglang_venv", "configure.yml", "SGLang | Write the secret config file", "__sglang_venv_key_blob", {}),
    "router": (
        "router",
        "configure.yml",
        "Router | Write the environment file with the API key",
        "__router_key_blob",
        {"__router_use_key": True},
    ),
}


# The names the roles give these files end the same way (SGLang refuses a --config file not named *.yaml).
SUFFIX = {"vllm": "", "sglang": ".yaml", "router": ".env"}


def role_task(role: str, task_file: str, name: str) -> dict:
    tasks = yaml.safe_load((ROOT / "roles" / role / "tasks" / task_file).read_text())
    found = [t for t in tasks if t.get("name") == name]
    assert len(found) == 1, f"roles/{role}/tasks/{task_file} has no task named {name!r}"
    return found[0]


def write_through_roles(tmp: Path, keys: list) -> dict:
    """{(writer, source, index): path of a file holding what the role's task writes for keys[index]}.

    The task's own `content` (and `vars`) are templated by Ansible, in a set_fact loop (controller-side, one task
    per writer and source instead of one copy per key); the bytes then go to the files unchanged."""
    tasks, results = [], tmp / "written.json"
    for writer, (role, task_file, name, blob, extra) in WRITERS.items():
        task = role_task(role, task_file, name)
        module = "ansible.builtin.copy"
        assert module in task and task[module]["mode"] == "0600", f"{name}: expected a 0600 {module}"
        for source in ("vault", "file"):
            if source == "vault":
                variables = {"fleetserve_api_key": "{{ item.key }}", f"{role}_api_key_file": ""}
            else:  # what slurp returns for a key file written by hand, with its trailing newline
                variables = {
                    "fleetserve_api_key": "",
                    f"{role}_api_key_file": "/etc/key",
                    blob: {"content": "{{ item.b64 }}"},
                }
            tasks.append(
                {
                    "name": f"{name} ({source})",
                    "ansible.builtin.set_fact": {"written": task[module]["content"]},
                    "vars": {**variables, **extra, **(task.get("vars") or {})},
                    "loop": [{"key": k, "b64": base64.b64encode((k + "\n").encode()).decode()} for k in keys],
                    "register": f"out_{writer}_{source}",
                }
            )
    names = [f"out_{w}_{s}" for w in WRITERS for s in ("vault", "file")]
    collect = "{{ {%s} | to_json }}" % ", ".join(
        f"'{n}': {n}.results | map(attribute='ansible_facts.written') | list" for n in names
    )
    tasks.append(
        {"name": "Collect", "ansible.builtin.copy": {"content": collect, "dest": str(results), "mode": "0600"}}
    )
    playbook = tmp / "write-secrets.yml"
    playbook.write_text(
        yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}], sort_keys=False)
    )
    local = Path(sys.executable).parent / "ansible-playbook"
    proc = subprocess.run(
        [str(local) if local.exists() else "ansible-playbook", "-i", "localhost,", "-c", "local", str(playbook)],
        capture_output=True,
        text=True,
        timeout=600,
        env=_ansible_env(tmp),
    )
    assert proc.returncode == 0, f"ansible-playbook failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}"
    contents = json.loads(results.read_text())
    out = {}
    for writer in WRITERS:
        for source in ("vault", "file"):
            texts = contents[f"out_{writer}_{source}"]
            assert len(texts) == len(keys)
            for index, text in enumerate(texts):
                dest = tmp / f"{writer}-{source}-{index}{SUFFIX[writer]}"
                dest.write_bytes(text.encode())
                dest.chmod(0o600)
                out[(writer, source, index)] = dest
    return out
