"""Every test module names its layer: exactly one of the layer markers, as a module-level pytestmark.

`pytest -m unit` (and `scripts/test --only unit`) selects by marker, so a module without one would
silently drop out of every single-layer run. Helpers (conftest.py, peers, renderers) are not test
modules and carry none.
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("unit", "contract", "integration")
TEST_FILES = sorted(
    p for p in (ROOT / "tests").rglob("test_*.py") if not {"output", "__pycache__"} & set(p.relative_to(ROOT).parts)
)


def _layer_marks(node: ast.AST) -> list[str]:
    """Layer names in pytest.mark.<layer> references under node (bare, or in a list/tuple)."""
    return [
        n.attr
        for n in ast.walk(node)
        if isinstance(n, ast.Attribute)
        and n.attr in LAYERS
        and isinstance(n.value, ast.Attribute)
        and n.value.attr == "mark"
        and isinstance(n.value.value, ast.Name)
        and n.value.value.id == "pytest"
    ]


def test_layers_are_registered():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    registered = {re.match(r"\s*(\w+)", m).group(1) for m in config["markers"]}
    assert set(LAYERS) <= registered


def test_the_walk_finds_every_layer():
    assert len(TEST_FILES) > 40
    assert {p.relative_to(ROOT).parts[1] for p in TEST_FILES} >= {"unit", "contract", "integration", "engine_sim"}


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_module_has_exactly_one_layer_marker(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    module_marks = [
        mark
        for node in tree.body
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets)
        for mark in _layer_marks(node.value)
    ]
    everywhere = set(_layer_marks(tree))
    rel = path.relative_to(ROOT)
    assert len(module_marks) == 1, (
        f"{rel}: needs exactly one module-level layer marker, e.g. `pytestmark = pytest.mark.unit` "
        f"(one of {', '.join(LAYERS)}); found {module_marks or 'none'}"
    )
    assert everywhere == set(module_marks), f"{rel}: a test is marked with another layer too: {sorted(everywhere)}"
