"""_catalog: the one catalog file, its arithmetic, and the version rules the plan relies on."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.fleetserve.minimax.plugins.module_utils import _catalog

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def catalog(collection_root):
    return _catalog.load_catalog(collection_root / _catalog.CATALOG_RELPATH)


def test_the_five_models_are_there(catalog):
    """The five MiniMax models, plus the tiny lab model the local lab and CI deploy."""
    assert sorted(catalog["models"]) == [
        "MiniMax-M1-40k",
        "MiniMax-M1-80k",
        "MiniMax-M2",
        "MiniMax-M2.1",
        "MiniMax-M2.5",
        "fleetserve-lab-tiny-m2",
    ]


@pytest.mark.parametrize(
    "model,engine,default",
    [
        ("MiniMax-M1-40k", "vllm", "0.9.2"),
        ("MiniMax-M1-80k", "vllm", "0.9.2"),
        ("MiniMax-M2", "sglang", "0.5.23"),
        ("MiniMax-M2.1", "sglang", "0.5.23"),
        ("MiniMax-M2.5", "sglang", "0.5.23"),
        ("MiniMax-M2", "vllm", "0.33.0"),
        ("MiniMax-M2.1", "vllm", "0.33.0"),
        ("MiniMax-M2.5", "vllm", "0.33.0"),
    ],
)
def test_default_engine_pins(catalog, model, engine, default):
    assert _catalog.model_entry(catalog, model)["engines"][engine]["default"] == default


@pytest.mark.parametrize(
    "model,engine,floor",
    [
        ("MiniMax-M1-80k", "vllm", "0.9.2"),
        ("MiniMax-M2.5", "vllm", "0.11.1"),
        ("MiniMax-M2.5", "sglang", "0.5.4.post1"),
    ],
)
def test_version_floors(catalog, model, engine, floor):
    assert _catalog.model_entry(catalog, model)["engines"][engine]["floor"] == floor


def test_default_engines(catalog):
    assert {m: _catalog.model_entry(catalog, m)["default_engine"] for m in catalog["models"]} == {
        "MiniMax-M1-40k": "vllm",
        "MiniMax-M1-80k": "vllm",
        "MiniMax-M2": "sglang",
        "MiniMax-M2.1": "sglang",
        "MiniMax-M2.5": "sglang",
        "fleetserve-lab-tiny-m2": "sglang",
    }


def test_parser_spelling_per_engine(catalog):
    """SGLang keys are hyphenated, vLLM's underscored; each side rejects the other spelling (engine-facts 5)."""
    for name in catalog["models"]:
        for engine, spec in _catalog.model_entry(catalog, name)["engines"].items():
            names = [spec["tool_call_parser"], *spec["reasoning_parsers"].values()]
            wrong = "_" if engine == "sglang" else "-"
            assert not [n for n in names if wrong in n], (name, engine, names)


def test_inherited_entries_differ_only_in_repo(catalog):
    m2, m25 = _catalog.model_entry(catalog, "MiniMax-M2"), _catalog.model_entry(catalog, "MiniMax-M2.5")
    assert {k for k in m2 if m2[k] != m25[k]} == {"hf_repo"}
    assert m25["hf_repo"] == "MiniMaxAI/MiniMax-M2.5"
    assert _catalog.model_entry(catalog, "MiniMax-M1-80k")["hf_repo"] == "MiniMaxAI/MiniMax-M1-80k"


def test_guide_figures_follow_from_the_config(catalog):
    m2 = _catalog.model_entry(catalog, "MiniMax-M2.5")
    assert m2["kv_bytes_per_token"] * 1_000_000 / 2**30 == pytest.approx(236.5, abs=0.1)  # guide: "240 GB per 1M"
    m1 = _catalog.model_entry(catalog, "MiniMax-M1-40k")
    assert m1["kv_bytes_per_token"] == 40960
    assert m1["linear_state_bytes_per_seq"] == 70 * 64 * 128 * 128 * 4


@pytest.mark.parametrize(
    "text,parsed",
    [
        ("0.9.2", ((0, 9, 2, 0), 0)),
        ("0.5.4.post1", ((0, 5, 4, 0), 1)),
        ("v0.10.1.1", ((0, 10, 1, 1), 0)),
        ("580.159.04", ((580, 159, 4, 0), 0)),
        ("3.11", ((3, 11, 0, 0), 0)),
    ],
)
def test_parse_version(text, parsed):
    assert _catalog.parse_version(text) == parsed


@pytest.mark.parametrize(
    "version,floor,ok",
    [
        ("0.5.4.post1", "0.5.4", True),
        ("0.5.4", "0.5.4.post1", False),
        ("0.11.0", "0.11.1", False),
        ("0.10.1.1", "0.10.1", True),
        ("0.33.0", "0.9.2", True),
    ],
)
def test_version_at_least(version, floor, ok):
    assert _catalog.version_at_least(version, floor) is ok


def test_bad_version_names_the_fix():
    with pytest.raises(_catalog.CatalogError) as err:
        _catalog.parse_version("latest")
    assert (
        str(err.value)
        == "version 'latest' is not a release number like 0.9.2 or 0.5.4.post1; write the engine's exact release"
    )


def test_host_requirement_rows(catalog):
    rows = catalog["engine_hosts"]
    assert _catalog.host_requirements(rows, "sglang", "0.5.23") == {
        "from": "0.5.22",
        "python": "3.11",
        "glibc": "2.34",
        "driver": "580",
    }
    assert _catalog.host_requirements(rows, "sglang", "0.5.4.post1")["python"] == "3.10"
    assert _catalog.host_requirements(rows, "sglang", "0.5.4") is None


def test_broken_kv_figure_is_caught(catalog):
    broken = copy.deepcopy(catalog)
    broken["models"]["MiniMax-M2"]["kv_bytes_per_token"] = 240000
    with pytest.raises(_catalog.CatalogError) as err:
        _catalog.check_catalog(broken)
    assert str(err.value) == (
        "catalog entry MiniMax-M2: kv_bytes_per_token 240000 disagrees with layers x KV heads x "
        "head_dim x 2 x 2 B = 253952; fix one of them"
    )


def test_missing_key_is_caught(catalog):
    broken = copy.deepcopy(catalog)
    del broken["models"]["MiniMax-M1-40k"]["weights_bytes"]
    with pytest.raises(_catalog.CatalogError, match=r"^catalog entry MiniMax-M1-40k: 'weights_bytes' must be a int"):
        _catalog.check_catalog(broken)


def test_inherits_must_point_at_a_complete_entry(catalog):
    broken = copy.deepcopy(catalog)
    broken["models"]["MiniMax-M2.5"]["inherits"] = "MiniMax-M2.1"
    with pytest.raises(_catalog.CatalogError) as err:
        _catalog.check_catalog(broken)
    assert str(err.value) == (
        "catalog entry MiniMax-M2.5 inherits 'MiniMax-M2.1', which is not a catalog entry without "
        "'inherits' of its own; point it at a complete entry"
    )


def test_a_new_model_is_just_an_entry(catalog):
    grown = copy.deepcopy(catalog)
    grown["models"]["MiniMax-M2.7"] = {"inherits": "MiniMax-M2", "hf_repo": "MiniMaxAI/MiniMax-M2.7"}
    _catalog.check_catalog(grown)
    assert _catalog.model_entry(grown, "MiniMax-M2.7")["engines"]["sglang"]["tool_call_parser"] == "minimax-m2"
