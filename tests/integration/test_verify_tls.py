"""verify against a real TLS server (issue 22 item 5): the CA bundle option of openai_endpoint_info
(``ca_path``) and of the verify role (``verify_ca_path``).

The test makes its own certificate authorities and a server certificate for 127.0.0.1 with the
``cryptography`` package, and serves the fake OpenAI endpoint over TLS with Python's ssl module. The CA
that signed it is trusted; another CA, or the system store, is refused at once (no wait until the
deadline) with reason ``tls_untrusted`` and a message that names the bundle and the fix.
"""

from __future__ import annotations

import json
import ssl
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))
import certmaker  # noqa: E402
from fake_openai import Behaviour, FakeOpenAI  # noqa: E402
from test_verify_failure_modes import base, run_module  # noqa: E402,F401 (fixture)
from test_verify_role import plan, playbook, report  # noqa: E402

pytestmark = pytest.mark.integration

SECRET = "sk-fs-verify-integration"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """The engine's CA (ca.pem), an unrelated CA (other-ca.pem), and a server context for 127.0.0.1."""
    tmp = tmp_path_factory.mktemp("pki")
    ca = certmaker.make_ca("fleetserve test CA")
    key, cert = certmaker.server_cert(ca, addresses=["127.0.0.1"])
    certmaker.write_cert(tmp / "ca.pem", ca[1])
    certmaker.write_cert(tmp / "other-ca.pem", certmaker.make_ca("some other CA")[1])
    certmaker.write_cert(tmp / "server.pem", cert)
    certmaker.write_key(tmp / "server.key", key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp / "server.pem", tmp / "server.key")
    # Signed by the right CA, but for another address than the one verify connects to.
    elsewhere_key, elsewhere = certmaker.server_cert(ca, addresses=["127.0.0.2"])
    certmaker.write_cert(tmp / "elsewhere.pem", elsewhere)
    certmaker.write_key(tmp / "elsewhere.key", elsewhere_key)
    misnamed = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    misnamed.load_cert_chain(tmp / "elsewhere.pem", tmp / "elsewhere.key")
    return {
        "dir": tmp,
        "ca": str(tmp / "ca.pem"),
        "other": str(tmp / "other-ca.pem"),
        "context": context,
        "misnamed": misnamed,
    }


@pytest.fixture()
def tls_server(pki):
    with FakeOpenAI(Behaviour(api_key=SECRET, chat="append_think"), tls=pki["context"]) as server:
        yield server


def test_the_ca_that_signed_the_engine_is_trusted(run_module, tls_server, pki):
    result, _wall = run_module(**base(tls_server, api_key=SECRET, ca_path=pki["ca"], expect_reasoning="append_think"))
    assert tls_server.url.startswith("https://")
    assert not result.get("failed"), result
    assert {"health", "models", "auth", "chat"} <= set(result["stages"])
    assert tls_server.requests, "no request reached the TLS server"


@pytest.mark.parametrize("bundle", ["other", None], ids=["another-ca", "system-store"])
def test_a_certificate_the_bundle_did_not_sign_is_refused_at_once(run_module, tls_server, pki, bundle):
    extra = {"ca_path": pki[bundle]} if bundle else {}
    result, wall = run_module(**base(tls_server, api_key=SECRET, **extra))
    assert result.get("failed"), result
    assert result["reason"] == "tls_untrusted" and result["stage"] == "health", result
    trusted_by = ("the CA bundle %s" % pki[bundle]) if bundle else "the system CA store"
    assert f"the TLS certificate of {tls_server.url}/health is not trusted by {trusted_by}" in result["msg"], result
    assert "certificate verify failed" in result["msg"] or "unable to get local issuer" in result["msg"], result
    assert "give the CA bundle that signed the engine's certificate in ca_path (verify_ca_path" in result["msg"]
    assert wall < 10, "a certificate that cannot be trusted must not wait for the 20 s deadline (%.1f s)" % wall
    assert not any(r["path"].startswith("/v1") for r in tls_server.requests), "a request went past the handshake"


def test_a_certificate_for_another_address_is_refused(run_module, pki):
    with FakeOpenAI(Behaviour(api_key=SECRET), tls=pki["misnamed"]) as server:
        result, wall = run_module(**base(server, api_key=SECRET, ca_path=pki["ca"]))
    assert result.get("failed") and result["reason"] == "tls_untrusted", result
    assert f"is not trusted by the CA bundle {pki['ca']}" in result["msg"], result
    assert "mismatch" in result["msg"] and "make the certificate name the address in base_url" in result["msg"], result
    assert wall < 10


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"ca_path": "/nonexistent/ca.pem"}, "ca_path /nonexistent/ca.pem cannot be read"),
        ({"validate_certs": False, "ca_path": "CA"}, "ca_path is set but validate_certs is false"),
    ],
)
def test_a_bad_bundle_is_refused_before_any_request(run_module, tls_server, pki, extra, message):
    if extra.get("ca_path") == "CA":
        extra = dict(extra, ca_path=pki["ca"])
    result, _wall = run_module(**base(tls_server, **extra))
    assert result.get("failed") and result["reason"] == "invalid_option", result
    assert result["msg"].startswith(message), result
    assert not tls_server.requests


def test_a_bundle_for_a_plain_http_endpoint_is_refused(run_module, pki):
    with FakeOpenAI(Behaviour()) as server:
        result, _wall = run_module(**base(server, ca_path=pki["ca"]))
    assert result.get("failed") and result["reason"] == "invalid_option", result
    assert result["msg"].startswith(f"ca_path is set but base_url {server.url} is not https"), result


def test_a_file_without_a_certificate_is_refused(run_module, tls_server, pki):
    (pki["dir"] / "empty.pem").write_text("not a certificate\n")
    result, _wall = run_module(**base(tls_server, ca_path=str(pki["dir"] / "empty.pem")))
    assert result.get("failed") and result["reason"] == "invalid_option", result
    assert "holds no PEM certificate" in result["msg"], result


@pytest.mark.parametrize("bundle, ok", [("ca", True), ("other", False)], ids=["right-ca", "wrong-ca"])
def test_the_verify_role_takes_the_bundle(run_playbook, tls_server, pki, bundle, ok):
    extra = "verify_scheme: https\nverify_ca_path: %s\n" % json.dumps(pki[bundle])
    proc = run_playbook(playbook(plan(tls_server.port), key=SECRET, extra=extra))
    assert (proc.returncode == 0) is ok, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert SECRET not in proc.stdout + proc.stderr
    if ok:
        rep = report(proc.stdout)
        assert rep["status"] == "ok" and rep["base_url"] == tls_server.url, rep
    else:
        assert "reason=tls_untrusted" in proc.stdout, proc.stdout[-4000:]
        assert f"is not trusted by the CA bundle {pki['other']}" in proc.stdout, proc.stdout[-4000:]
