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
    """Run a module of the collection as Ansible does (args file, own interpreter): call(path, **args) -> result."""

    def _run(module, check_mode=False, **args):
        if check_mode:
            args["_ansible_check_mode"] = True
        args_file = tmp_path / "args.json"
        args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
        env = {**os.environ, "PYTHONPATH": str(collection_root / ".cache" / "collections")}
        proc = subprocess.run(
            [sys.executable, str(collection_root / module), str(args_file)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=60,
        )
        return json.loads(proc.stdout)

    return _run
