"""Engine TLS end to end on localhost (issue 22 item 5), with certificates the test makes.

The SGLang launch spec is rendered by the real action (fleetserve.minimax.launch_spec) with the opt-in
fleetserve_tls_cert_file/key_file/ca_file; the engine simulator runs exactly the argv it renders (it reads
--ssl-certfile/--ssl-keyfile as the engines' uvicorn does) from the copies at the spec's paths (copied there by
the role's own tasks/tls.yml); the verify role, given nothing but the fleet-wide TLS variables and the release
record, checks it over https trusting the CA bundle. A bundle of another CA is refused with tls_untrusted.
"""

from __future__ import annotations

import grp
import http.client
import json
import os
import pwd
import socket
import ssl
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from test_verify_role import report  # noqa: E402
import certmaker  # noqa: E402

pytestmark = pytest.mark.integration

SIM = Path(__file__).resolve().parents[1] / "engine_sim"
SECRET = "sk-fs-tls-engine"

RENDER = """
- name: Render the SGLang launch spec with TLS
  hosts: localhost
  gather_facts: false
  vars:
    fleetserve_tls_cert_file: {cert}
    fleetserve_tls_key_file: {key}
    fleetserve_tls_ca_file: {ca}
  tasks:
    - name: Test | Render the launch spec as the sglang_venv role does
      fleetserve.minimax.launch_spec:
        engine: sglang
        plan: {plan}
        settings:
          config_dir: {config_dir}
          tls:
            cert_file: "{{{{ fleetserve_tls_cert_file }}}}"
            key_file: "{{{{ fleetserve_tls_key_file }}}}"
            ca_file: "{{{{ fleetserve_tls_ca_file }}}}"
      register: __sglang_venv_launch
    - name: Test | Keep the spec
      ansible.builtin.copy:
        content: "{{{{ __sglang_venv_launch.spec | to_json }}}}"
        dest: {out}
        mode: "0644"
    - name: Test | Copy the certificate, key and CA bundle as the role does
      ansible.builtin.include_role:
        name: fleetserve.minimax.sglang_venv
        tasks_from: tls.yml
      vars:
        sglang_venv_user: {user}
        sglang_venv_group: {group}
    - name: Test | Stop here, before the role's handlers would restart a unit this machine does not have
      ansible.builtin.meta: end_play
"""

VERIFY = """
- name: Verify the TLS engine
  hosts: localhost
  gather_facts: false
  vars:
    fleetserve_api_key: {secret}
    fleetserve_tls_cert_file: {cert}
    fleetserve_tls_key_file: {key}
    fleetserve_tls_ca_file: {ca}
    fleetserve_release: {release}
    preflight_plan: {plan}
    verify_from: {verify_from}
    verify_address: 127.0.0.1
  roles:
    - role: fleetserve.minimax.verify
  post_tasks:
    - name: Test | Show the report
      ansible.builtin.debug:
        msg: "REPORT={{{{ verify_report | to_json }}}}"
"""


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """On the controller: the CA bundle, the engine's certificate (for 127.0.0.1) and key, another CA."""
    tmp = tmp_path_factory.mktemp("controller-pki")
    ca = certmaker.make_ca("fleetserve TLS test CA")
    key, cert = certmaker.server_cert(ca, addresses=["127.0.0.1"])
    certmaker.write_cert(tmp / "ca.pem", ca[1])
    certmaker.write_cert(tmp / "other-ca.pem", certmaker.make_ca("an unrelated CA")[1])
    certmaker.write_cert(tmp / "engine.pem", cert)
    certmaker.write_key(tmp / "engine.key", key)
    return {name: str(tmp / name) for name in ("ca.pem", "other-ca.pem", "engine.pem", "engine.key")}


@pytest.fixture()
def engine(pki, tmp_path, run_playbook):
    """The simulator serving the rendered argv over TLS: (spec, plan)."""
    tmp = tmp_path / "tls-engine"
    tmp.mkdir()
    models = tmp / "models"
    models.mkdir()
    port = _free_port()
    plan = {
        "model": "fleetserve-lab-tiny-m2",
        "engine": "sglang",
        "engine_version": "0.5.23",
        "model_dir": str(models),
        "port": port,
        "host": "127.0.0.1",
        "served_model_name": "fleetserve/tiny-m2",
        "reasoning_style": "append_think",
        "tool_call_parser": "minimax-m2",
        "nnodes": 1,
        "node_rank": 0,
        "start_timeout_s": 30,
        "engine_args": [
            "--model-path", str(models), "--served-model-name", "fleetserve/tiny-m2",
            "--tool-call-parser", "minimax-m2", "--reasoning-parser", "minimax-append-think",
            "--api-key", SECRET, "--host", "127.0.0.1", "--port", str(port),
        ],  # fmt: skip
    }
    out = tmp / "spec.json"
    play = RENDER.format(
        cert=json.dumps(pki["engine.pem"]),
        key=json.dumps(pki["engine.key"]),
        ca=json.dumps(pki["ca.pem"]),
        plan=json.dumps(plan),
        config_dir=json.dumps(str(tmp / "etc")),
        out=json.dumps(str(out)),
        user=json.dumps(pwd.getpwuid(os.getuid()).pw_name),
        group=json.dumps(grp.getgrgid(os.getgid()).gr_name),
    )
    proc = run_playbook(play, "-v")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    spec = json.loads(out.read_text())
    tls = spec["tls"]
    assert tls["dir"] == str(tmp / "etc" / "tls") and spec["probe_url"] == f"https://127.0.0.1:{port}/health"
    assert spec["release"]["scheme"] == "https" and spec["release"]["tls_ca_file"] == tls["ca_file"]
    # What the role's tasks/tls.yml wrote: the operator's files at the spec's paths, the key 0600.
    assert stat.S_IMODE(os.stat(tls["dir"]).st_mode) == 0o750
    for src, dest, mode in (
        ("engine.pem", "cert_file", 0o644),
        ("engine.key", "key_file", 0o600),
        ("ca.pem", "ca_file", 0o644),
    ):
        assert Path(tls[dest]).read_bytes() == Path(pki[src]).read_bytes(), dest
        assert stat.S_IMODE(os.stat(tls[dest]).st_mode) == mode, dest
    assert "PRIVATE KEY" not in proc.stdout + proc.stderr
    sim = subprocess.Popen(
        [sys.executable, "-m", "fleetserve_engine_sim", "sglang", *spec["argv"], "--sim-startup-s", "0.2"],
        env={**os.environ, "PYTHONPATH": str(SIM)},
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and sim.poll() is None:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    assert sim.poll() is None, sim.stderr.read()
    yield spec, plan
    sim.terminate()
    sim.wait(10)


def _verify(run_playbook, pki, spec, plan, ca, verify_from):
    play = VERIFY.format(
        secret=json.dumps(SECRET),
        cert=json.dumps(pki["engine.pem"]),
        key=json.dumps(pki["engine.key"]),
        ca=json.dumps(pki[ca]),
        release=json.dumps(spec["release"]),
        plan=json.dumps(plan),
        verify_from=verify_from,
    )
    return run_playbook(play)


def test_the_engine_serves_tls_with_the_operators_certificate(pki, engine):
    """The rendered flags switched the engine to TLS: a client trusting the CA is answered, plain HTTP is not."""
    spec, plan = engine
    context = ssl.create_default_context(cafile=pki["ca.pem"])
    try:
        with urllib.request.urlopen(spec["probe_url"], context=context, timeout=5) as resp:
            status = resp.status
    except urllib.error.HTTPError as err:  # SGLang answers 503 while it warms up: the handshake passed
        status = err.code
    assert status in (200, 503)
    with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):
        urllib.request.urlopen(f"http://127.0.0.1:{plan['port']}/health", timeout=5)


@pytest.mark.parametrize("verify_from", ["host", "controller"])
def test_verify_reaches_the_tls_engine_through_the_fleet_wide_settings(run_playbook, pki, engine, verify_from):
    spec, plan = engine
    proc = _verify(run_playbook, pki, spec, plan, "ca.pem", verify_from)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    rep = report(proc.stdout)
    assert rep["status"] == "ok" and rep["base_url"] == f"https://127.0.0.1:{plan['port']}", rep
    assert SECRET not in proc.stdout + proc.stderr


def test_a_ca_bundle_that_did_not_sign_the_engine_is_refused(run_playbook, pki, engine):
    spec, plan = engine
    proc = _verify(run_playbook, pki, spec, plan, "other-ca.pem", "controller")
    assert proc.returncode != 0
    assert "reason=tls_untrusted" in proc.stdout, proc.stdout[-4000:]
    assert f"is not trusted by the CA bundle {pki['other-ca.pem']}" in proc.stdout, proc.stdout[-4000:]
