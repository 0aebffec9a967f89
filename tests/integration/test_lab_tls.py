"""TLS end to end in the lab (issue 22 item 5), with certificates the test makes.

One module-scoped lab (FLEETSERVE_LAB=fs-tls: 1 worker + 1 router). The inventory gains only the three
fleet-wide variables fleetserve_tls_cert_file/key_file/ca_file; `fleetserve deploy` (site.yml) then runs
the engine (the simulator, which reads --ssl-certfile/--ssl-keyfile as SGLang does) over TLS, verifies it
over https with the CA bundle, and starts the real gateway serving TLS with an https worker it trusts
through --ca-cert-paths. A client trusting another CA is refused by the gateway's certificate.
"""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml
import certmaker
from labs import running_lab

from fleetserve import cli, lab, paths

pytestmark = pytest.mark.integration

LAB = "fs-tls"
WORKER = f"{LAB}-lab-1"
ROUTER = f"{LAB}-lab-router-1"

CLIENT = """
import json, ssl, sys, urllib.request
url, ca, key = sys.argv[1:4]
request = urllib.request.Request(url, headers={"Authorization": "Bearer " + key})
try:
    with urllib.request.urlopen(request, context=ssl.create_default_context(cafile=ca), timeout=10) as resp:
        print(json.dumps({"status": resp.status, "body": json.loads(resp.read())}))
except Exception as exc:
    print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
"""


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    pki = tmp_path_factory.mktemp("pki")
    with running_lab(LAB, tmp_path_factory.mktemp("state"), "--hosts", "1", "--routers", "1"):
        ca = certmaker.make_ca("fleetserve lab TLS CA")
        # Every name the engine and the gateway are reached at, and loopback for the checks on the host.
        key, cert = certmaker.server_cert(ca, addresses=["127.0.0.1"], names=[WORKER, ROUTER])
        certmaker.write_cert(pki / "ca.pem", ca[1])
        certmaker.write_cert(pki / "other-ca.pem", certmaker.make_ca("an unrelated CA")[1])
        certmaker.write_cert(pki / "cert.pem", cert)
        certmaker.write_key(pki / "key.pem", key)
        inventory = paths.lab_inventory()
        data = yaml.safe_load(inventory.read_text())
        data["all"]["vars"].update(
            fleetserve_tls_cert_file=str(pki / "cert.pem"),
            fleetserve_tls_key_file=str(pki / "key.pem"),
            fleetserve_tls_ca_file=str(pki / "ca.pem"),
        )
        inventory.write_text(yaml.safe_dump(data, sort_keys=False))
        yield {"hosts": lab.existing_hosts(), "api_key": data["all"]["vars"]["fleetserve_api_key"], "pki": pki}


def _client(host, url, ca, key):
    """An https request from inside a lab host, trusting the bundle `ca` (a path on that host)."""
    proc = subprocess.run(
        ["docker", "exec", host, "python3", "-c", CLIENT, url, ca, key], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def test_deploy_serves_tls_from_engine_to_gateway(fleet, capsys):
    assert fleet["hosts"] == [WORKER, ROUTER]
    code = cli.main(["deploy", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err[-6000:]
    hosts = {h["host"]: h["failed"] for h in json.loads(captured.out)["hosts"]}
    assert hosts == {WORKER: 0, ROUTER: 0}, captured.err[-6000:]
    assert "PRIVATE KEY" not in captured.out + captured.err
    # The engine: its record says https; a client trusting the copied CA bundle is answered over TLS.
    record = json.loads(
        subprocess.run(
            ["docker", "exec", WORKER, "cat", "/var/lib/fleetserve/releases/current.json"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert record["scheme"] == "https" and record["tls_ca_file"] == "/etc/fleetserve/sglang/tls/ca.pem", record
    engine = _client(WORKER, f"https://127.0.0.1:{record['port']}/v1/models", record["tls_ca_file"], fleet["api_key"])
    assert engine.get("status") == 200, engine
    # The gateway: TLS for its clients, the worker listed as https and healthy (it trusted the CA bundle).
    ca = "/etc/fleetserve/router/tls/ca.pem"
    workers = _client(ROUTER, "https://127.0.0.1:30000/workers", ca, fleet["api_key"])
    assert workers.get("status") == 200, workers
    listed = [(w["url"], w.get("is_healthy")) for w in workers["body"]["workers"]]
    assert listed == [(f"https://{WORKER}:{record['port']}", True)], listed
    models = _client(ROUTER, "https://127.0.0.1:30000/v1/models", ca, fleet["api_key"])
    assert models.get("status") == 200, models


def test_a_client_trusting_another_ca_is_refused(fleet):
    subprocess.run(
        ["docker", "cp", str(fleet["pki"] / "other-ca.pem"), f"{ROUTER}:/tmp/other-ca.pem"], check=True, timeout=60
    )
    result = _client(ROUTER, "https://127.0.0.1:30000/v1/models", "/tmp/other-ca.pem", fleet["api_key"])
    assert "CERTIFICATE_VERIFY_FAILED" in result.get("error", ""), result
