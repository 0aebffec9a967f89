"""Router TLS (issue 22 item 5): the gateway command line the router role renders with the opt-in
fleetserve_tls_* variables, read by the REAL parser of the pinned gateway (smg, the function roles/router's
launch.py calls): the client-side certificate and key, the CA bundle for the workers, https worker URLs.
Without the variables nothing of it appears.
"""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

pytestmark = pytest.mark.contract

PLAY = """
- name: Render the router's command line
  hosts: routers
  gather_facts: false
  vars_files: [{defaults}, {internal}]
  tasks:
    - name: Test | Keep the gateway's argv
      ansible.builtin.copy:
        content: "{{{{ __router_argv | to_json }}}}"
        dest: {out}
        mode: "0644"
"""

PARSE = """
import json, sys
from smg.launch_router import parse_router_args
args = parse_router_args(json.loads(sys.argv[1]))
print(json.dumps({k: getattr(args, k) for k in
    ("server_cert_path", "server_key_path", "ca_cert_paths", "client_cert_path", "worker_urls")}))
"""


def _render(run_playbook, collection_root, tmp_path, tls_vars):
    inventory = {
        "all": {
            "children": {
                "routers": {"hosts": {"localhost": {"ansible_connection": "local", **tls_vars}}},
                "engines": {
                    "hosts": {
                        "gpu1": {"ansible_host": "10.0.0.5", "preflight_plan": {"port": 8000, "node_rank": 0}},
                    }
                },
            }
        }
    }
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    out = tmp_path / "argv.json"
    play = PLAY.format(
        defaults=json.dumps(str(collection_root / "roles/router/defaults/main.yml")),
        internal=json.dumps(str(collection_root / "roles/router/vars/main.yml")),
        out=json.dumps(str(out)),
    )
    proc = run_playbook(play, inventory=str(tmp_path / "inventory.yml"))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return json.loads(out.read_text())


def _parse(python, argv):
    proc = subprocess.run([python, "-c", PARSE, json.dumps(argv)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"smg rejects the router role's command line {argv}:\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout)


def test_tls_on_the_gateway_parses_as_client_tls_and_trusted_workers(
    run_playbook, collection_root, tmp_path, gateway_python
):
    tls_vars = {
        "fleetserve_tls_cert_file": "/controller/pki/engine.pem",
        "fleetserve_tls_key_file": "/controller/pki/engine.key",
        "fleetserve_tls_ca_file": "/controller/pki/ca.pem",
    }
    argv = _render(run_playbook, collection_root, tmp_path, tls_vars)
    assert "/controller/pki" not in " ".join(argv)  # the gateway reads the host copies only
    parsed = _parse(gateway_python, argv)
    tls = "/etc/fleetserve/router/tls"
    assert parsed == {
        "server_cert_path": f"{tls}/cert.pem",
        "server_key_path": f"{tls}/key.pem",
        "ca_cert_paths": [f"{tls}/ca.pem"],
        "client_cert_path": None,
        "worker_urls": ["https://10.0.0.5:8000"],
    }


def test_without_tls_the_gateway_speaks_plain_http(run_playbook, collection_root, tmp_path, gateway_python):
    argv = _render(run_playbook, collection_root, tmp_path, {})
    parsed = _parse(gateway_python, argv)
    assert (parsed["server_cert_path"], parsed["ca_cert_paths"]) == (None, [])
    assert parsed["worker_urls"] == ["http://10.0.0.5:8000"]
