"""Hostile but valid keys, written by the roles' own tasks, read back by the REAL engines of each pinned release.

SGLang: the YAML --config file the role writes, merged by SGLang's own ConfigArgumentMerger, arrives as api_key.
vLLM: the 0600 key file the role writes, exported by the launch spec's entrypoint wrapper (/bin/sh, as in the
container), arrives as vLLM's own envs.VLLM_API_KEY, the value its API server falls back to without --api-key.
(The router's systemd EnvironmentFile and the container itself: tests/integration/test_secret_bytes.py.)
"""

from __future__ import annotations

import json
import os
import subprocess

import contract_layouts as layouts
import pytest
from ansible_collections.fleetserve.minimax.plugins.module_utils import _catalog, _launch
from secret_render import HOSTILE_KEYS, write_through_roles

pytestmark = pytest.mark.contract

SGLANG = {"0.5.23": "m2.1-sglang-0.5.23-tp8-ep8", "0.5.4.post1": "m2.5-sglang-0.5.4.post1-tp8-ep8"}
VLLM = ("0.9.2", "0.33.0")


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    return write_through_roles(tmp_path_factory.mktemp("secrets"), HOSTILE_KEYS)


@pytest.mark.parametrize("version", sorted(SGLANG))
def test_sglang_reads_back_every_key(collection_root, check_cli, written, version):
    catalog = _catalog.load_catalog(collection_root / _catalog.CATALOG_RELPATH)
    plan = layouts.plans(catalog, SGLANG[version])[0]
    argv = _launch.launch_spec("sglang", plan, {"api_key": True})["argv"]
    at = argv.index("--config") + 1
    cases = {
        f"{source}-{index}": argv[:at] + [str(written[("sglang", source, index)])] + argv[at + 1 :]
        for index in range(len(HOSTILE_KEYS))
        for source in ("vault", "file")
    }
    got_version, results = check_cli("sglang", version, cases)
    assert got_version == version
    for case_id, result in results.items():
        assert result["ok"], (case_id, result["error"])
        assert result["api_key"] == HOSTILE_KEYS[int(case_id.split("-")[1])], case_id


@pytest.mark.parametrize("version", VLLM)
def test_vllm_reads_back_every_key(parser_venvs, written, version, tmp_path):
    venv = parser_venvs / f"vllm-{version}"
    package = next((venv / "lib").glob("python3*/site-packages/vllm"))
    # The API server's own fallback: --api-key or envs.VLLM_API_KEY (0.9.2: api_server.py; 0.33.0: middleware).
    fallbacks = ("args.api_key or envs.VLLM_API_KEY", "args.api_key or [envs.VLLM_API_KEY]")
    readers = [p for p in package.rglob("*.py") if any(f in p.read_text(errors="ignore") for f in fallbacks)]
    assert readers, f"vLLM {version} no longer falls back to VLLM_API_KEY: the key file would not reach it"
    python = str(venv / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if k not in ("VLLM_API_KEY", "PYTHONPATH")}

    def through_wrapper(path, probe):
        # The wrapper exactly as the unit runs it, with the mount point swapped for the written file.
        script = _launch.VLLM_KEY_WRAPPER[2].replace(_launch.VLLM_KEY_MOUNT, str(path))
        proc = subprocess.run(
            ["/bin/sh", "-c", script, _launch.VLLM_KEY_WRAPPER_NAME, python, "-c", probe],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        return json.loads(proc.stdout.strip().splitlines()[-1])

    mine = sorted((k, p) for k, p in written.items() if k[0] == "vllm")
    for (_, source, index), path in mine:  # every key: the environment the engine process starts with
        got = through_wrapper(path, "import json, os; print(json.dumps(os.environ['VLLM_API_KEY']))")
        assert got == HOSTILE_KEYS[index], (source, index)
    # vLLM's own reader: importing vLLM takes seconds, so once, reading the wrapper's key, then every key in turn.
    probe = (
        "import json, os, vllm.envs as e\n"
        "first = e.VLLM_API_KEY; out = []\n"
        "for k in json.loads(os.environ['FS_KEYS']):\n"
        "    os.environ['VLLM_API_KEY'] = k; out.append(e.VLLM_API_KEY)\n"
        "print(json.dumps([first, out]))"
    )
    env.update(FS_KEYS=json.dumps(HOSTILE_KEYS))
    (_, _, index), path = mine[0]
    first, seen = through_wrapper(path, probe)
    assert first == HOSTILE_KEYS[index] and seen == HOSTILE_KEYS


def test_the_wrapper_fails_closed_without_its_key_file(tmp_path):
    """No key file mounted: the wrapper exits non-zero instead of starting an engine without a key."""
    script = _launch.VLLM_KEY_WRAPPER[2].replace(_launch.VLLM_KEY_MOUNT, str(tmp_path / "absent"))
    proc = subprocess.run(["/bin/sh", "-c", script, "x", "true"], capture_output=True, text=True)
    assert proc.returncode != 0
