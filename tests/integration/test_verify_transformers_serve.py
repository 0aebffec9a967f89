"""openai_endpoint_info against a REAL OpenAI-compatible server: `transformers serve` on CPU with tiny
models made locally (a Llama and the real MiniMax-M2 architecture), built by
scripts/testenv/transformers_serve.sh. A missing peer fails these tests; it never skips them.

Random weights cannot produce MiniMax think tags, so the shape check runs as ``expect_reasoning:
none`` here (the MiniMax shapes are proven against tests/integration/peers/fake_openai.py).
Gotchas of this server the verifier must absorb: responses name the model "<id>@main", and streams
end without ``data: [DONE]``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

LLAMA = "local-org/tiny-llama"
MINIMAX = "local-org/tiny-minimax-m2"
LLAMA_PORT, MINIMAX_PORT = 18101, 18102
MODULE = "ansible_collections.fleetserve.minimax.plugins.modules.openai_endpoint_info"


@pytest.fixture(scope="session")
def ts_venv(collection_root) -> Path:
    script = collection_root / "scripts" / "testenv" / "transformers_serve.sh"
    proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=1200, check=False)
    assert proc.returncode == 0, "transformers_serve.sh failed:\n" + proc.stderr
    venv = Path(proc.stdout.strip().splitlines()[-1])
    assert (venv / "bin" / "transformers").exists()
    return venv


class Served:
    def __init__(self, venv: Path, model: str, port: int, log: Path):
        self.url = "http://127.0.0.1:%d" % port
        env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(venv / "hf-home"), TRANSFORMERS_VERBOSITY="error")
        self.log = log
        self.proc = subprocess.Popen(
            [
                str(venv / "bin" / "transformers"),
                "serve",
                model,
                "--device",
                "cpu",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def wait_healthy(served: Served, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert served.proc.poll() is None, "transformers serve exited:\n" + served.log.read_text()[-3000:]
        try:
            with urllib.request.urlopen(served.url + "/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError("transformers serve did not become healthy:\n" + served.log.read_text()[-3000:])


@pytest.fixture(scope="session")
def llama_server(ts_venv, tmp_path_factory):
    served = Served(ts_venv, LLAMA, LLAMA_PORT, tmp_path_factory.mktemp("ts") / "llama.log")
    try:
        wait_healthy(served)
        yield served
    finally:
        served.stop()


@pytest.fixture()
def run_module(tmp_path, collection_root):
    def _run(**args):
        path = tmp_path / "args.json"
        path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
        proc = subprocess.run(
            [sys.executable, "-m", MODULE, str(path)],
            capture_output=True,
            text=True,
            timeout=300,
            env={"PYTHONPATH": str(collection_root / ".cache" / "collections"), "PATH": "/usr/bin:/bin"},
        )
        assert proc.stdout.strip(), proc.stderr
        return json.loads(proc.stdout)

    return _run


def test_real_server_serves_tiny_llama_with_stream(llama_server, run_module):
    result = run_module(base_url=llama_server.url, served_model_name=LLAMA, max_tokens=16, stream=True, timeout=60)
    assert not result.get("failed"), result
    assert list(result["stages"]) == ["tcp", "health", "models", "chat", "shape", "stream"]
    assert LLAMA in result["models"] and MINIMAX in result["models"]  # the HF cache listing
    assert result["reply"]["finish_reason"] in ("length", "stop")
    stream = result["stream"]
    assert stream["done_marker"] is False  # transformers serve closes without [DONE]
    assert stream["tokens_counted_from"] == "usage" and 1 <= stream["tokens"] <= 16
    assert 0 < stream["ttft_s"] < 30


def test_real_server_wrong_model_name(llama_server, run_module):
    result = run_module(base_url=llama_server.url, served_model_name="MiniMax-M2.5", timeout=30)
    assert result["failed"] is True
    assert (result["reason"], result["stage"]) == ("model_not_listed", "models")
    assert LLAMA in result["msg"]


def test_real_server_has_no_minimax_shape(llama_server, run_module):
    # A plain model cannot pass the append-think check: proves the shape stage reads real replies.
    result = run_module(
        base_url=llama_server.url, served_model_name=LLAMA, max_tokens=8, expect_reasoning="append_think", timeout=30
    )
    assert result["failed"] is True
    assert (result["reason"], result["stage"]) == ("shape_mismatch", "shape")
    assert "chat" in result["stages"]


def test_real_server_rejects_a_key_it_does_not_enforce(llama_server, run_module):
    # transformers serve has no --api-key: a configured key must be reported as not enforced.
    result = run_module(base_url=llama_server.url, served_model_name=LLAMA, api_key="sk-fs-verify-real", timeout=30)
    assert (result["reason"], result["stage"], result["status"]) == ("auth_not_enforced", "auth", 200)
    assert "sk-fs-verify-real" not in json.dumps(result)


def test_waits_through_a_real_cold_start_of_tiny_minimax_m2(ts_venv, tmp_path, collection_root):
    """The module starts first; the real MiniMax-M2 architecture server comes up under its deadline."""
    served = None
    args = tmp_path / "wait.json"
    args.write_text(
        json.dumps(
            {
                "ANSIBLE_MODULE_ARGS": {
                    "base_url": "http://127.0.0.1:%d" % MINIMAX_PORT,
                    "served_model_name": MINIMAX,
                    "max_tokens": 8,
                    "stream": True,
                    "timeout": 120,
                }
            }
        )
    )
    waiter = subprocess.Popen(
        [sys.executable, "-m", MODULE, str(args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"PYTHONPATH": str(collection_root / ".cache" / "collections"), "PATH": "/usr/bin:/bin"},
    )
    try:
        time.sleep(1.0)  # the module is polling a closed port now
        served = Served(ts_venv, MINIMAX, MINIMAX_PORT, tmp_path / "minimax.log")
        out, err = waiter.communicate(timeout=150)
        result = json.loads(out)
        assert not result.get("failed"), (result, served.log.read_text()[-2000:])
        assert result["stages"]["tcp"]["attempts"] > 3
        assert result["stages"]["tcp"]["elapsed_s"] > 1.0
        assert MINIMAX in result["models"]
        assert result["stream"]["tokens"] >= 1
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()
        if served is not None:
            served.stop()
