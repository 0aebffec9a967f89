"""Every command line the engine roles render, parsed by the REAL engine of exactly the pinned version.

The argv comes from _launch.launch_spec (fed the planner's plan), the function whose result the engine roles
write into the unit, so a flag the real engine rejects fails here. Negative contract: the other engine's
parser names are rejected by the real parsers.
"""

from __future__ import annotations

import pytest
import yaml

from ansible_collections.fleetserve.minimax.plugins.module_utils import _catalog, _launch

import contract_layouts as layouts
from contract_render import TEST_API_KEY

pytestmark = pytest.mark.contract

VLLM_LAUNCHER = ["-m", "vllm.entrypoints.openai.api_server"]


@pytest.fixture(scope="module")
def catalog(collection_root):
    return _catalog.load_catalog(collection_root / _catalog.CATALOG_RELPATH)


@pytest.fixture(scope="module")
def rendered(catalog, tmp_path_factory):
    """{case id: (engine, version, the engine's argv)}: the planner's plan through _launch.launch_spec, the one
    function whose result the engine roles write into the unit (tests/contract/test_role_refusals.py runs it
    through the roles too)."""
    tmp = tmp_path_factory.mktemp("render")
    secret = tmp / "secrets.yaml"  # what the role writes: {'api-key': key} | to_nice_yaml
    secret.write_text(yaml.safe_dump({"api-key": TEST_API_KEY}))
    # vLLM checks that a path-like --chat-template exists. The M1 template lives in the image
    # (/vllm-workspace/examples, engine-facts open item 3), not on this machine: stand a file in for it.
    template = tmp / "tool_chat_template_minimax_m1.jinja"
    template.write_text("{% for m in messages %}{{ m['content'] }}{% endfor %}\n")
    result = {}
    for layout_id, spec in layouts.LAYOUTS.items():
        engine, version = spec[1], spec[2]
        for plan in layouts.plans(catalog, layout_id):
            case_id = f"{layout_id}-rank{plan['node_rank']}"
            variants = {case_id: {"api_key": True}}
            if engine == "vllm" and plan["node_rank"] == 0:
                variants[case_id + "-serve"] = {"launcher": "serve", "api_key": True}
            for variant_id, settings in variants.items():
                argv = _launch.launch_spec(engine, plan, settings)["argv"]
                if engine == "vllm":
                    launcher = ["serve"] if variant_id.endswith("-serve") else VLLM_LAUNCHER
                    assert argv[: len(launcher)] == launcher, variant_id
                    argv = argv[len(launcher) :]
                    if "--chat-template" in argv:
                        at = argv.index("--chat-template") + 1
                        assert argv[at].startswith("/vllm-workspace/examples/"), variant_id
                        argv = argv[:at] + [str(template)] + argv[at + 1 :]
                else:
                    at = argv.index("--config")
                    argv = argv[: at + 1] + [str(secret)] + argv[at + 2 :]
                result[variant_id] = (engine, version, argv)
    return result


def _by_version(rendered):
    groups = {}
    for case_id, (engine, version, argv) in rendered.items():
        groups.setdefault((engine, version), {})[case_id] = argv
    return groups


def test_every_pinned_version_is_covered(catalog):
    """The versions under test are exactly the catalog's defaults plus the allowed SGLang 0.5.4.post1."""
    entries = [_catalog.model_entry(catalog, name) for name in catalog["models"] if name.startswith("MiniMax-")]
    pinned = {(e, s["default"]) for m in entries for e, s in m["engines"].items()}
    tested = {(spec[1], spec[2]) for spec in layouts.LAYOUTS.values()}
    assert pinned <= tested
    assert tested == {("vllm", "0.9.2"), ("vllm", "0.33.0"), ("sglang", "0.5.23"), ("sglang", "0.5.4.post1")}


def test_launch_spec_adds_only_the_launcher_and_secret_file(rendered):
    for case_id, (engine, _, argv) in rendered.items():
        assert argv[-4:-2] == ["--host", "0.0.0.0"] or argv[-6:-4] == ["--host", "0.0.0.0"], case_id
        assert "--api-key" not in argv, case_id
        assert TEST_API_KEY not in argv, case_id
        assert ("--model" if engine == "vllm" else "--model-path") in argv, case_id


def test_multi_node_flags(rendered):
    for rank in (0, 1):
        _, _, argv = rendered[f"m2.5-sglang-0.5.23-2node-tp16-ep16-rank{rank}"]
        text = " ".join(argv)
        assert f"--nnodes 2 --node-rank {rank} --dist-init-addr {layouts.DIST_INIT_ADDR}" in text
        assert argv.count("--nnodes") == 1  # the planner renders them; the role must not add a second set
        assert "--tp-size 16" in text and "--ep-size 16" in text


VERSIONS = [("vllm", "0.9.2"), ("vllm", "0.33.0"), ("sglang", "0.5.23"), ("sglang", "0.5.4.post1")]


def foreign_parsers(catalog):
    """{flag: {parser name: the other engine's spelling of the same parser}}, from the catalog alone.

    Keyed by flag: SGLang's reasoning parser `minimax` is also the name of M1's vLLM tool parser."""
    out = {"--tool-call-parser": {}, "--reasoning-parser": {}}
    entries = [_catalog.model_entry(catalog, name) for name in catalog["models"]]
    for entry in entries:
        vllm, sglang = entry["engines"].get("vllm"), entry["engines"].get("sglang")
        if not (vllm and sglang):
            continue
        pairs = [("--tool-call-parser", vllm["tool_call_parser"], sglang["tool_call_parser"])]
        pairs += [
            ("--reasoning-parser", p, sglang["reasoning_parsers"][k]) for k, p in vllm["reasoning_parsers"].items()
        ]
        for flag, a, b in pairs:
            out[flag].setdefault(a, b)
            out[flag].setdefault(b, a)
    # A model on one engine only (M1 on vLLM): its tool parser against the other engine's M2 tool parser.
    tool = {e: s["tool_call_parser"] for e, s in _catalog.model_entry(catalog, "MiniMax-M2")["engines"].items()}
    for entry in entries:
        for engine, spec in entry["engines"].items():
            out["--tool-call-parser"].setdefault(
                spec["tool_call_parser"], tool["sglang" if engine == "vllm" else "vllm"]
            )
    return out


def _swap_parsers(argv, foreign):
    out = list(argv)
    for flag in ("--tool-call-parser", "--reasoning-parser"):
        if flag in out:
            i = out.index(flag) + 1
            out[i] = foreign[flag][out[i]]
    return out


def test_foreign_parsers_come_from_the_catalog(catalog):
    foreign = foreign_parsers(catalog)
    assert foreign["--tool-call-parser"] == {
        "minimax_m2": "minimax-m2",
        "minimax-m2": "minimax_m2",
        "minimax": "minimax-m2",
    }
    assert foreign["--reasoning-parser"]["minimax-append-think"] == "minimax_m2_append_think"
    assert foreign["--reasoning-parser"]["minimax"] == "minimax_m2"


@pytest.fixture(scope="module")
def parsed(rendered, check_cli, catalog):
    """One process per parser venv (vLLM imports take 7-40 s) checks every case meant for it:
    ok:<id> the rendered argv, swap:<id> the same with the other engine's parser names,
    m1:<id> (vLLM 0.33.0 only) the M1 command lines of 0.9.2."""
    groups = _by_version(rendered)
    foreign = foreign_parsers(catalog)
    out = {}
    for engine, version in VERSIONS:
        cases = {f"ok:{k}": v for k, v in groups[(engine, version)].items()}
        cases.update({f"swap:{k}": _swap_parsers(v, foreign) for k, v in groups[(engine, version)].items()})
        if (engine, version) == ("vllm", "0.33.0"):
            cases.update({f"m1:{k}": v for k, v in groups[("vllm", "0.9.2")].items() if k.startswith("m1-")})
        out[(engine, version)] = check_cli(engine, version, cases)
    return out


def _results(parsed, engine, version, prefix):
    return {k[len(prefix) :]: r for k, r in parsed[(engine, version)][1].items() if k.startswith(prefix)}


@pytest.mark.parametrize("engine,version", VERSIONS)
def test_real_parser_accepts_rendered_commands(parsed, engine, version):
    assert parsed[(engine, version)][0] == version  # the venv holds exactly the pinned release
    results = _results(parsed, engine, version, "ok:")
    assert results
    rejected = {k: r["error"] for k, r in results.items() if not r["ok"]}
    assert not rejected, f"{engine} {version} rejects the roles' command lines: {rejected}"
    if engine == "sglang":  # the key arrives through --config, read by SGLang's own merger
        assert {r["api_key"] for r in results.values()} == {TEST_API_KEY}
    if version == "0.5.23":  # full ServerArgs post-init checks ran (0.5.4.post1 needs a GPU for them)
        assert not [r["note"] for r in results.values() if r["note"]]


@pytest.mark.parametrize("engine,version", VERSIONS)
def test_real_parser_rejects_the_other_engines_parser_names(parsed, engine, version):
    results = _results(parsed, engine, version, "swap:")
    accepted = [k for k, r in results.items() if r["ok"]]
    assert not accepted, f"{engine} {version} accepted foreign parser names in {accepted}"
    for result in results.values():
        assert "parser" in result["error"], result["error"]


def test_vllm_0_33_has_no_m1_tool_parser(parsed):
    """Why M1 stays on vLLM 0.9.2: the `minimax` tool parser is gone in >= 0.24.0 (catalog `below`)."""
    results = _results(parsed, "vllm", "0.33.0", "m1:")
    assert len(results) == 6
    for result in results.values():
        assert not result["ok"]
        assert "unknown --tool-call-parser 'minimax'" in result["error"]
