"""Hostile but valid keys through every place that stores or sends one, read back by the real consumer.

Each key is written by the role's own task (tests/contract/secret_render.py), then:
  router  its systemd EnvironmentFile, loaded by real systemd (the lab's systemd image) into a service's
          environment, which is where the router's launcher (roles/router/files/launch.py) takes the key from;
  vLLM    its key file, mounted read-only into the engine image as the launch spec mounts it and exported by the
          launch spec's wrapper with the image's own /bin/sh: the engine process's environment;
  verify  openai_endpoint_info (what roles/verify runs) against a server that accepts exactly that key.
(SGLang's YAML read by SGLang's own merger, and vLLM's own reader: tests/contract/test_secret_files.py.)
Uses Docker: run it under `flock /tmp/fleetserve-docker.lock`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contract"))
sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))
from fake_openai import Behaviour, FakeOpenAI  # noqa: E402
from secret_render import HOSTILE_KEYS, write_through_roles  # noqa: E402

from ansible_collections.fleetserve.minimax.plugins.module_utils import _launch  # noqa: E402

pytestmark = pytest.mark.integration

LAB_IMAGE = "fleetserve/lab-systemd:bookworm"
SIM_IMAGE = "fleetserve/fs-engine-vllm-sim:test"
CONTAINER = "fs-secret-bytes"
MODULE = "ansible_collections.fleetserve.minimax.plugins.modules.openai_endpoint_info"
ROOT = Path(__file__).resolve().parents[2]


def _docker(*args, check=True, timeout=120):
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    assert not check or proc.returncode == 0, f"docker {' '.join(args[:3])}: {proc.stderr[-2000:]}"
    return proc


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("secret-bytes")
    files = write_through_roles(tmp, HOSTILE_KEYS)
    tmp.chmod(0o755)  # the containers read the files through a bind mount
    return tmp, files


@pytest.fixture(scope="module")
def systemd_host(written):
    """A real systemd (the lab's host image) with the written files mounted read-only at /keys."""
    assert shutil.which("docker"), "the docker CLI is needed"
    assert _docker("image", "inspect", LAB_IMAGE, check=False).returncode == 0, "scripts/lab/build-image.sh builds it"
    _docker("rm", "--force", CONTAINER, check=False)
    _docker(
        "run", "--detach", "--name", CONTAINER, "--cap-add", "SYS_ADMIN",
        "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
        "--cgroupns", "host", "--volume", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--tmpfs", "/run", "--tmpfs", "/run/lock",
        "--volume", f"{written[0]}:/keys:ro", LAB_IMAGE, "/lib/systemd/systemd",
    )  # fmt: skip
    try:
        for _ in range(60):
            state = _docker("exec", CONTAINER, "systemctl", "is-system-running", check=False).stdout.strip()
            if state in ("running", "degraded"):
                break
            time.sleep(1)
        else:
            pytest.fail(f"systemd in {CONTAINER} did not come up (state {state!r})")
        yield CONTAINER
    finally:
        _docker("rm", "--force", CONTAINER, check=False)


def test_router_environment_file_through_real_systemd(written, systemd_host):
    _, files = written
    router = sorted((k, p) for k, p in files.items() if k[0] == "router")
    # One transient service per file, all in one exec: systemd loads the EnvironmentFile as for the router's unit.
    script = "".join(
        f"systemd-run --quiet --wait --pipe -p EnvironmentFile=/keys/{path.name} /usr/bin/python3 -c "
        "'import json, os; print(json.dumps(os.environ[\"FLEETSERVE_ROUTER_API_KEY\"]))'\n"
        for _, path in router
    )
    proc = _docker("exec", systemd_host, "sh", "-ec", script, timeout=300)
    got = [json.loads(line) for line in proc.stdout.splitlines()]
    assert got == [HOSTILE_KEYS[index] for (_, _, index), _ in router]


def test_vllm_key_file_through_the_engine_image(written):
    """The launch spec's own mount and wrapper, in the engine image (what the unit's docker run does)."""
    _, files = written
    assert _docker("image", "inspect", SIM_IMAGE, check=False).returncode == 0, "scripts/testenv/engine_sim_image.sh"
    probe = "import json, os; print(json.dumps(os.environ['VLLM_API_KEY']))"
    for index, key in enumerate(HOSTILE_KEYS):
        path = files[("vllm", "vault", index)]
        proc = _docker(
            "run", "--rm", "--entrypoint", _launch.VLLM_KEY_WRAPPER[0],
            "--volume", f"{path}:{_launch.VLLM_KEY_MOUNT}:ro", SIM_IMAGE,
            *_launch.VLLM_KEY_WRAPPER[1:], _launch.VLLM_KEY_WRAPPER_NAME, "python3", "-c", probe,
        )  # fmt: skip
        assert json.loads(proc.stdout.strip().splitlines()[-1]) == key, index


@pytest.mark.parametrize("index", range(len(HOSTILE_KEYS)))
def test_verify_sends_exactly_the_key(tmp_path, index):
    key = HOSTILE_KEYS[index]
    with FakeOpenAI(Behaviour(api_key=key, chat="append_think")) as server:
        args = {"base_url": server.url, "served_model_name": "fake-org/model", "api_key": key, "timeout": 20}
        path = tmp_path / "args.json"
        path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
        proc = subprocess.run(
            [sys.executable, "-m", MODULE, str(path)],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
            env={"PYTHONPATH": str(ROOT / ".cache" / "collections"), "PATH": "/usr/bin:/bin"},
        )
        result = json.loads(proc.stdout)
        assert not result.get("failed"), result.get("msg")
        sent = {r["auth"] for r in server.requests if r["auth"]}
        assert sent == {"Bearer " + key}


def test_verify_refuses_a_key_that_cannot_be_sent(tmp_path):
    args = {"base_url": "http://127.0.0.1:9", "served_model_name": "m", "api_key": "sk-SECRET\r\nX-Evil: 1"}
    path = tmp_path / "args.json"
    path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    proc = subprocess.run(
        [sys.executable, "-m", MODULE, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(ROOT / ".cache" / "collections"), "PATH": "/usr/bin:/bin"},
    )
    result = json.loads(proc.stdout)
    assert result["failed"] and "api_key (fleetserve_api_key) holds a carriage return" in result["msg"]
    assert "SECRET" not in proc.stdout
