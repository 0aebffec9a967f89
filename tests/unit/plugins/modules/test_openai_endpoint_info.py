"""The thin module: argspec, option errors before any I/O, and how results and failures are reported."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.fleetserve.minimax.plugins.module_utils import _openai
from ansible_collections.fleetserve.minimax.plugins.modules import openai_endpoint_info as mod

pytestmark = pytest.mark.unit

SECRET = "sk-fs-verify-unit-secret"


class Exit(Exception):
    pass


def run_module(monkeypatch, args):
    """Run main(); returns (failed, result) as exit_json/fail_json would have printed them."""
    captured = {}

    def exit_json(self, **kw):
        captured.update(kw, failed=False)
        raise Exit

    def fail_json(self, msg, **kw):
        captured.update(kw, msg=msg, failed=True)
        raise Exit

    monkeypatch.setattr(mod.BoundedModule, "exit_json", exit_json)
    monkeypatch.setattr(mod.BoundedModule, "fail_json", fail_json)
    with patch_module_args(args), pytest.raises(Exit):
        mod.main()
    return captured["failed"], captured


class StubClient:
    def __init__(self, base_url, api_key=None, validate_certs=True, ca_path=None):
        self.base_url, self.api_key = base_url, api_key
        self.calls = []

    def url(self, path):
        return self.base_url + path

    def call(self, path, timeout, body=None, auth=True):
        self.calls.append(path)
        if path == "/health":
            return _openai.Answer(200, "{}")
        if path == "/v1/models":
            if auth and self.api_key != SECRET:
                return _openai.Answer(401, '{"error": "Unauthorized"}')
            return _openai.Answer(200 if auth else 401, json.dumps({"data": [{"id": "MiniMax-M2.5"}]}))
        msg = {"role": "assistant", "content": "<think>r</think>The Dodgers."}
        return _openai.Answer(200, json.dumps({"choices": [{"message": msg, "finish_reason": "stop"}]}))


@pytest.fixture()
def stub_io(monkeypatch):
    monkeypatch.setattr(mod, "HttpClient", StubClient)
    monkeypatch.setattr(_openai, "tcp_open", lambda *a: True)


BASE = {"base_url": "http://127.0.0.1:8000", "served_model_name": "MiniMax-M2.5"}


def test_success_is_unchanged_and_reports_stages(monkeypatch, stub_io):
    failed, result = run_module(
        monkeypatch, dict(BASE, api_key=SECRET, engine="sglang", expect_reasoning="append_think")
    )
    assert failed is False
    assert result["changed"] is False
    assert list(result["stages"]) == ["tcp", "health", "models", "auth", "chat", "shape"]
    assert result["models"] == ["MiniMax-M2.5"]
    assert SECRET not in json.dumps(result)


def test_failure_carries_reason_stage_url_status_body(monkeypatch, stub_io):
    failed, result = run_module(monkeypatch, dict(BASE, api_key="sk-wrong"))
    assert failed is True
    assert result["reason"] == "auth_rejected"
    assert result["stage"] == "models"
    assert result["url"] == "http://127.0.0.1:8000/v1/models"
    assert result["status"] == 401
    assert result["body"] == '{"error": "Unauthorized"}'
    assert result["msg"] == (
        "models stage failed: http://127.0.0.1:8000/v1/models rejected the request with HTTP 401; set "
        "fleetserve_api_key (module option api_key) to the key the engine was started with"
    )
    assert list(result["stages"]) == ["tcp", "health"]
    assert isinstance(result["elapsed_s"], float)


def test_bad_option_fails_before_any_request(monkeypatch):
    def no_io(*a, **kw):
        raise AssertionError("no I/O may happen before the options are checked")

    monkeypatch.setattr(mod, "HttpClient", no_io)
    monkeypatch.setattr(_openai, "tcp_open", no_io)
    failed, result = run_module(monkeypatch, dict(BASE, base_url="http://127.0.0.1:8000/v1"))
    assert failed is True
    assert result["reason"] == "invalid_option"
    assert result["msg"] == (
        "base_url 'http://127.0.0.1:8000/v1' ends in /v1; give the server root (e.g. http://127.0.0.1:8000): "
        "the module adds /health and /v1/... itself"
    )


def test_argspec_rejects_unknown_shape(monkeypatch):
    failed, result = run_module(monkeypatch, dict(BASE, expect_reasoning="think"))
    assert failed is True
    assert "expect_reasoning" in result["msg"] and "append_think" in result["msg"]


def test_api_key_is_no_log_and_shared_options_are_documented():
    assert mod.ARGUMENT_SPEC["api_key"]["no_log"] is True
    for name in _openai.ENDPOINT_ARGSPEC:
        assert name in mod.ARGUMENT_SPEC


def test_documentation_matches_argspec():
    import yaml

    from ansible_collections.fleetserve.minimax.plugins.doc_fragments.openai_endpoint import ModuleDocFragment

    documented = dict(yaml.safe_load(mod.DOCUMENTATION)["options"])
    documented.update(yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"])
    assert set(documented) == set(mod.ARGUMENT_SPEC)
    for name, spec in mod.ARGUMENT_SPEC.items():
        doc = documented[name]
        assert doc["type"] == spec["type"], name
        assert doc.get("default") == spec.get("default"), name
        assert doc.get("choices") == spec.get("choices"), name
        assert bool(doc.get("required")) == bool(spec.get("required")), name


def test_argspec_rejects_a_check_that_cannot_be_skipped(monkeypatch):
    failed, result = run_module(monkeypatch, dict(BASE, skip_checks=["auth"]))
    assert failed is True
    assert "skip_checks" in result["msg"] and "tool_call" in result["msg"]


def test_skip_checks_are_reported(monkeypatch, stub_io):
    """A random-weight model: the shape check is left out, and the result says so."""
    failed, result = run_module(
        monkeypatch, dict(BASE, expect_reasoning="separate", skip_checks=["shape"], api_key=SECRET)
    )
    assert failed is False, result
    assert result["skipped"] == ["shape"] and result["stages"]["shape"]["skipped"] is True
    assert mod.ARGUMENT_SPEC["skip_checks"]["choices"] == list(_openai.SKIPPABLE_CHECKS)
