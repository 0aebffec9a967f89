"""Fixtures shared by the modules' tests."""

import http.server
import json
import os
import subprocess
import sys
import threading

import pytest


@pytest.fixture()
def health_server():
    """A real local HTTP server answering GET /health with 200 (anything else 404); yields its base URL."""

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture()
def ansible_module(collection_root, tmp_path):
    """Run a module file of the collection as Ansible runs it (args file, its own interpreter).

    call(module, check_mode=False, diff=False, bin_dir=None, raw=False, **args) -> the result, or (stdout, result)
    with raw=True; bin_dir goes first on PATH (stand-in executables: systemctl, journalctl, docker).
    """

    def _run(module, check_mode=False, diff=False, bin_dir=None, raw=False, **args):
        args_file = tmp_path / "ansible-module-args.json"
        args = {"_ansible_check_mode": check_mode, "_ansible_diff": diff, **args}
        args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
        env = {**os.environ, "PYTHONPATH": str(collection_root / ".cache" / "collections")}
        if bin_dir is not None:
            env["PATH"] = f"{bin_dir}:{os.environ['PATH']}"
        proc = subprocess.run(
            [sys.executable, str(collection_root / module), str(args_file)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=60,
        )
        result = json.loads(proc.stdout)
        return (proc.stdout, result) if raw else result

    return _run
