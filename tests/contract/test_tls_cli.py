"""Engine TLS (issue 22 item 5): the flags the launch spec adds with fleetserve_tls_cert_file/key_file, fed to
the REAL parser of every pinned engine release.

Where _launch.TLS_SINCE says a release has TLS flags, its parser accepts the rendered command line and binds
the certificate and key to its ssl_certfile/ssl_keyfile; where it says a release has none (SGLang 0.5.4.post1),
the launch spec refuses TLS naming the fix, and the real parser proves the refusal right by rejecting the flags.
"""

from __future__ import annotations

import pytest

from ansible_collections.fleetserve.minimax.plugins.module_utils import _catalog, _launch

import contract_layouts as layouts

pytestmark = pytest.mark.contract

VERSIONS = [("vllm", "0.9.2"), ("vllm", "0.33.0"), ("sglang", "0.5.23"), ("sglang", "0.5.4.post1")]
TLS = {"cert_file": "/controller/pki/engine.pem", "key_file": "/controller/pki/engine.key", "ca_file": ""}


@pytest.fixture(scope="module")
def catalog(collection_root):
    return _catalog.load_catalog(collection_root / _catalog.CATALOG_RELPATH)


def _first_plan(catalog, engine, version):
    """Node 0 of the first layout of this release (the flags do not depend on the layout)."""
    for layout_id, spec in layouts.LAYOUTS.items():
        if (spec[1], spec[2]) == (engine, version):
            return layout_id, layouts.plans(catalog, layout_id)[0]
    raise AssertionError(f"no contract layout for {engine} {version}")


def _on_this_machine(argv, tls, tmp_path):
    """The host paths of the launch spec replaced by real files (a parser may open them)."""
    local = {tls["cert_file"]: tmp_path / "cert.pem", tls["key_file"]: tmp_path / "key.pem"}
    for path in local.values():
        path.write_text("-----BEGIN PLACEHOLDER-----\n")
    return [str(local.get(a, a)) for a in argv], [str(local[tls["cert_file"]]), str(local[tls["key_file"]])]


@pytest.mark.parametrize("engine,version", VERSIONS)
def test_tls_flags_against_the_real_parser(catalog, check_cli, tmp_path, engine, version):
    layout_id, plan = _first_plan(catalog, engine, version)
    supported = _catalog.version_at_least(version, _launch.TLS_SINCE[engine])
    if supported:
        spec = _launch.launch_spec(engine, plan, {"tls": TLS, "allow_unauthenticated": True})
        argv, files = _on_this_machine(spec["argv"], spec["tls"], tmp_path)
    else:
        with pytest.raises(_launch.LaunchError) as err:
            _launch.launch_spec(engine, plan, {"tls": TLS, "allow_unauthenticated": True})
        assert "set preflight_engine_version to" in str(err.value) and "fleetserve_tls_cert_file" in str(err.value)
        # What the spec would have rendered: the plain command line plus the flags of the releases that have them.
        plain = _launch.launch_spec(engine, plan, {"allow_unauthenticated": True})["argv"]
        tls = {"cert_file": "/etc/fleetserve/x/tls/cert.pem", "key_file": "/etc/fleetserve/x/tls/key.pem"}
        argv, files = _on_this_machine(
            plain + ["--ssl-certfile", tls["cert_file"], "--ssl-keyfile", tls["key_file"]], tls, tmp_path
        )
    if engine == "vllm":
        argv = argv[argv.index("vllm.entrypoints.openai.api_server") + 1 :]
        if "--chat-template" in argv:  # path-like templates must exist; the M1 one lives in the image
            template = tmp_path / "template.jinja"
            template.write_text("{{ messages }}\n")
            argv[argv.index("--chat-template") + 1] = str(template)
    found, results = check_cli(engine, version, {layout_id: argv})
    assert found == version
    result = results[layout_id]
    if supported:
        assert result["ok"], f"{engine} {version} rejects the TLS flags: {result['error']}"
        assert result["tls"] == files
    else:
        assert not result["ok"], f"{engine} {version} accepts --ssl-certfile: raise _launch.TLS_SINCE's claim"
        assert "ssl" in result["error"], result["error"]
