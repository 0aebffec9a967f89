"""Every variable a failure message tells the user to set is a documented variable (issue 21, item 5).

A message that says "set weights_models_dir" when no such variable exists sends the user nowhere. The scan
reads the failure messages of the collection:
- roles/*/tasks, playbooks/: `msg` of fail and `fail_msg`/`msg` of assert, with the
  literal text inside Jinja expressions ({{ 'a' if x else 'b' }}) read as text of its own;
- plugins/module_utils, plugins/modules, plugins/filter: every string literal (f-strings with their
  placeholders, "a" + "b" and "..." % args folded), outside DOCUMENTATION/EXAMPLES/RETURN;
and picks out the names a message tells the user to act on: after a verb (set, raise, lower, point, ...),
with the names listed after it ("set router_port / router_prometheus_port", "leave A and B unset"), and
any "NAME to VALUE" ("or preflight_nnodes to 1"). A name counts when it looks like a role variable: it
starts with a role's name and "_" (preflight_..., weights_...), or with fleetserve_ (the fleet-wide
variables). Each must be a key of some roles/*/defaults/main.yml or meta/argument_specs.yml, or, for
fleetserve_*, of the sample inventory's group_vars (where the fleet-wide variables are documented).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "tasks").is_dir())
PREFIXES = tuple(f"{role}_" for role in ROLES) + ("fleetserve_",)

_NAME = r"`?([a-z][a-z0-9]*(?:_[a-z0-9]+)+)`?"
_VERBS = (
    "set|unset|raise|lower|increase|decrease|reduce|point|change|leave|extend|pin|use|give|put|adjust|"
    "override|enable|disable|turn|shorten|lengthen|widen|narrow|define|add|fix|need|needs|provide|choose|take"
)
_FILLER = (
    r"(?:(?:the|its|this|that|each|every|a|an|it|them|in|into|out|of|hosts'|host's|group's|role's|router's)\s+){0,3}"
)
_LIST_SEP = r"\s*(?:/|,|\band/or\b|\band\b|\bor\b)\s*"
_DIRECTIVE = re.compile(rf"\b(?:{_VERBS})\s+{_FILLER}{_NAME}((?:{_LIST_SEP}{_FILLER}{_NAME})*)", re.IGNORECASE)
_LISTED = re.compile(_NAME)
_TO_VALUE = re.compile(rf"{_NAME}\s+to\s+(?=[-\w\"'(\[{{/.]|$)")
_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)
_QUOTED = re.compile(r"'([^']*)'|\"([^\"]*)\"")
_FAIL_MODULES = {"fail": ("msg",), "assert": ("fail_msg", "msg")}
_DOC_ASSIGNMENTS = {"DOCUMENTATION", "EXAMPLES", "RETURN"}


def names_in_message(text: str) -> set[str]:
    """The role-like variable names a message tells the user to set, raise, point at ... (see module doc)."""
    found: set[str] = set()
    for match in _DIRECTIVE.finditer(text):
        found.add(match.group(1))
        found.update(_LISTED.findall(match.group(2)))
    found.update(match.group(1) for match in _TO_VALUE.finditer(text))
    return {name for name in found if name.startswith(PREFIXES)}


def _jinja_texts(message: str) -> list[str]:
    """The message with each Jinja expression blanked, then the literal strings inside the expressions."""
    texts = [_JINJA.sub(" X ", message)]
    for expression in _JINJA.findall(message):
        texts.extend(a or b for a, b in _QUOTED.findall(expression))
    return texts


def _yaml_messages(data) -> list[str]:
    """fail msg / assert fail_msg anywhere in a task list, play or block (walked recursively)."""
    found: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            module = str(key).rsplit(".", 1)[-1]
            if module in _FAIL_MODULES and isinstance(value, dict):
                found.extend(str(value[k]) for k in _FAIL_MODULES[module] if k in value)
                # A task that picks one of several messages keeps them in task vars named *_msg.
                task_vars = data.get("vars") if isinstance(data.get("vars"), dict) else {}
                found.extend(str(v) for k, v in task_vars.items() if str(k).endswith("_msg"))
            found.extend(_yaml_messages(value))
    elif isinstance(data, list):
        for item in data:
            found.extend(_yaml_messages(item))
    return found


def yaml_messages(text: str) -> list[str]:
    return [t for message in _yaml_messages(yaml.safe_load(text)) for t in _jinja_texts(message)]


def _string_of(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else " X " for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _string_of(node.left), _string_of(node.right)
        if left is not None or right is not None:
            return (left if left is not None else " X ") + (right if right is not None else " X ")
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        return _string_of(node.left)
    return None


def python_messages(source: str) -> list[str]:
    """Every string literal of a module outside its DOCUMENTATION/EXAMPLES/RETURN (sub-expressions too)."""
    tree = ast.parse(source)
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id in _DOC_ASSIGNMENTS for t in node.targets
        ):
            skip.update(id(n) for n in ast.walk(node.value))
    return [text for node in ast.walk(tree) if id(node) not in skip and (text := _string_of(node)) is not None]


def message_sources(root: Path = ROOT) -> dict[str, list[str]]:
    """Path (relative to root) to the messages read from it."""
    sources: dict[str, list[str]] = {}
    yaml_files = [*root.glob("roles/*/tasks/**/*.yml"), *root.glob("playbooks/**/*.yml")]
    for path in sorted(yaml_files):
        sources[str(path.relative_to(root))] = yaml_messages(path.read_text())
    for folder in ("plugins/module_utils", "plugins/modules", "plugins/filter"):
        for path in sorted((root / folder).glob("*.py")):
            sources[str(path.relative_to(root))] = python_messages(path.read_text())
    return sources


def documented_variables(root: Path = ROOT) -> set[str]:
    names: set[str] = set()
    for path in root.glob("roles/*/defaults/main.yml"):
        names.update((yaml.safe_load(path.read_text()) or {}).keys())
    for path in root.glob("roles/*/meta/argument_specs.yml"):
        for entry in ((yaml.safe_load(path.read_text()) or {}).get("argument_specs") or {}).values():
            names.update((entry or {}).get("options") or {})
    for path in root.glob("inventories/sample/group_vars/**/*.yml"):
        data = yaml.safe_load(path.read_text())
        if isinstance(data, dict):
            names.update(name for name in data if name.startswith("fleetserve_"))
    return names


def told_to_set(root: Path = ROOT) -> dict[str, set[str]]:
    """Variable name to the files whose messages tell the user to act on it."""
    told: dict[str, set[str]] = {}
    for path, messages in message_sources(root).items():
        for message in messages:
            for name in names_in_message(message):
                told.setdefault(name, set()).add(path)
    return told


def test_every_variable_a_message_names_is_documented():
    documented = documented_variables()
    wrong = {name: sorted(paths) for name, paths in told_to_set().items() if name not in documented}
    assert wrong == {}, "messages tell the user to set variables no role documents"


def test_the_scan_reads_the_real_messages():
    """Not vacuous: names known to be in real messages of each kind of file are found where they are."""
    told = told_to_set()
    expected = {
        "preflight_mem_fraction": "plugins/module_utils/_plan.py",  # f-string, "raise preflight_mem_fraction"
        "preflight_nnodes": "plugins/module_utils/_plan_nodes.py",  # "or preflight_nnodes to 1"
        "router_prometheus_port": "roles/router/tasks/preflight.yml",  # "set router_port / router_prometheus_port"
        "router_worker_urls": "roles/router/tasks/preflight.yml",  # assert fail_msg with Jinja around it
        "preflight_port": "roles/preflight/tasks/port.yml",  # "set preflight_port to a free port"
        "weights_fanout_timeout": "plugins/module_utils/_weights_fanout.py",
    }
    missing = {name: path for name, path in expected.items() if path not in told.get(name, set())}
    assert missing == {}
    assert len(told) >= 30, sorted(told)
    assert {"router_port", "preflight_nnodes", "weights_dir"} <= documented_variables()


@pytest.mark.parametrize(
    ("message", "names"),
    [
        ("free space there or point weights_models_dir at a larger filesystem", {"weights_models_dir"}),
        ("set router_port / router_prometheus_port to free ports", {"router_port", "router_prometheus_port"}),
        (
            "leave preflight_tensor_parallel_size and preflight_data_parallel_size unset",
            {
                "preflight_tensor_parallel_size",
                "preflight_data_parallel_size",
            },
        ),
        (
            "set preflight_node_group to the group, or preflight_nnodes to 1",
            {"preflight_node_group", "preflight_nnodes"},
        ),
        ("raise the preflight_mem_fraction", {"preflight_mem_fraction"}),
        ("set `fleetserve_models_dir` to a larger disk", {"fleetserve_models_dir"}),
        # Facts and module options mentioned without a directive, and names that are no role variable.
        ("host has no preflight_plan.port, so the router cannot list it", set()),
        ("set nvidia_smi to the binary's path", set()),
        ("point ansible_python_interpreter at it", set()),
    ],
)
def test_the_scanner_picks_the_names_a_message_tells_to_set(message, names):
    assert names_in_message(message) == names


def test_a_planted_bad_name_is_caught(tmp_path):
    """A tree with one bad name in each kind of source: the scan finds all three, and no good name."""
    role = tmp_path / "roles" / "weights"
    (role / "tasks").mkdir(parents=True)
    (role / "defaults").mkdir()
    (role / "defaults" / "main.yml").write_text("weights_dir: ''\nweights_revision: main\n")
    (role / "tasks" / "main.yml").write_text(
        "- name: Check\n"
        "  ansible.builtin.assert:\n"
        "    that: false\n"
        "    fail_msg: >-\n"
        "      {{ inventory_hostname }} is short of disk: set weights_dir to a larger filesystem\n"
        "      {{ 'or lower weights_no_such_reserve' if weights_dir | length > 0 else '' }}\n"
        "- name: Block\n"
        "  block:\n"
        "    - name: Refuse\n"
        "      ansible.builtin.fail:\n"
        "        msg: pin weights_revision, or set weights_made_up to true\n"
    )
    utils = tmp_path / "plugins" / "module_utils"
    utils.mkdir(parents=True)
    (utils / "_x.py").write_text(
        'DOCUMENTATION = "set weights_only_in_docs"\n'
        "def f(path):\n"
        '    raise ValueError(f"no room on {path}; " + "free space or point weights_models_dir at a larger disk")\n'
    )
    (tmp_path / "playbooks").mkdir()
    told = told_to_set(tmp_path)
    wrong = {name for name in told if name not in documented_variables(tmp_path)}
    assert wrong == {"weights_no_such_reserve", "weights_made_up", "weights_models_dir"}
    assert told["weights_models_dir"] == {"plugins/module_utils/_x.py"}
    assert {"weights_dir", "weights_revision"} <= set(told)
