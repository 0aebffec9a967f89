"""Every number at its bounds (issue 22 item 4).

Data-driven from the specs themselves: every ``int`` and ``float`` option of every role entry point
(roles/*/meta/argument_specs.yml) and of every module (its DOCUMENTATION with doc fragments, as ansible-doc
shows it) must state its range as one sentence ``Range LOW to HIGH.``, so a new numeric option without a
range fails here. Then, through the real entry points and modules, each option gets its lowest invalid
value, its highest invalid value, a non-number and a boolean:

- a role is included with the value in one local play, in check mode, with ``ansible_python_interpreter``
  set to /bin/false so that no module could run on the host even if a check let the value through; the
  play proves the refusal came from ansible-core's argument validation or fleetserve.minimax.check_bounds
  (the first two tasks of every entry point), i.e. before any change, and that the recap counts no change;
- a module is run with the value as Ansible runs it (a Python process reading its arguments file); it must
  fail without ``changed``, naming the option.

An out-of-range value (and a boolean, which ansible-core's type check lets through as 0 or 1) must be
refused with a message naming the option and the valid range. A string that is no number is refused naming
its range by a module and by the playbooks (their first play, playbooks/inputs.yml, checks every role's
numbers as the inventory gives them); a role included directly refuses it through ansible-core's own type
check, which names the option and its type. One ansible-doc run, and one ansible-playbook run with the
module runs beside it, cover everything but the inputs play, which has its own run.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from ansible_collections.fleetserve.minimax.plugins.module_utils import _bounds

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted(p.stem for p in (ROOT / "plugins" / "modules").glob("*.py") if not p.stem.startswith("_"))
CHECK_TASK = "Check every number against the range its argument spec states"
ARGSPEC_TASK = "Validating arguments against arg spec"
# Values for the required options of a module that the checks above never reach (nothing is contacted).
MODULE_REQUIRED = {
    "url": "http://127.0.0.1:9/health",
    "base_url": "http://127.0.0.1:9",
    "repo_id": "org/model",
    "service": "fleetserve-none.service",
    "model": "MiniMax-M2.5",
    "python_version": "3.11.0",
}


def _role_entry_points():
    for spec_file in sorted(ROOT.glob("roles/*/meta/argument_specs.yml")):
        role = spec_file.parents[1].name
        for entry, spec in (yaml.safe_load(spec_file.read_text())["argument_specs"] or {}).items():
            yield role, entry, spec.get("options") or {}


def _module_docs():
    names = ["fleetserve.minimax." + m for m in MODULES]
    done = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-doc")), "-j", "-t", "module", *names],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return {name.rsplit(".", 1)[1]: data["doc"] for name, data in json.loads(done.stdout).items()}


ROLE_OPTIONS = [
    (role, entry, name, kind, bounds)
    for role, entry, options in _role_entry_points()
    for name, (kind, bounds) in _bounds.spec_ranges(options).items()
]


@pytest.fixture(scope="module")
def module_docs():
    return _module_docs()


def _invalid(kind, bounds, module=False):
    """(label, value, names the range): lowest and highest invalid, a non-number, a boolean.

    A module checks its numbers on the arguments as given, before ansible-core's type check, so its non-number
    names the range too; a role's non-number meets ansible-core's argument validation first (which names the
    type), unless the playbooks' inputs play saw it (test_the_playbooks_refuse_every_non_number_naming_its_range).
    """
    low, high = bounds
    if kind == "int":
        below, above = low - 1, high + 1
    else:
        below, above = math.nextafter(float(low), -math.inf), math.nextafter(float(high), math.inf)
    return [("below", below, True), ("above", above, True), ("text", "many", module), ("bool", True, True)]


def _dummy(spec):
    if spec.get("choices"):
        return spec["choices"][0]
    return {"dict": {}, "list": [], "bool": False, "int": 1, "float": 1.0}.get(spec.get("type", "str"), "x")


# ---------------------------------------------------------------------------------------------------------
# The specs state a range for every number
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role, entry, name, kind, bounds", ROLE_OPTIONS, ids=str)
def test_every_role_number_states_its_range(role, entry, name, kind, bounds):
    assert bounds is not None, (
        f"roles/{role}/meta/argument_specs.yml entry point {entry}: {kind} option {name} states no range; "
        "add the sentence 'Range LOW to HIGH.' to its description (docs/DEVELOPING.md, Numbers and their ranges)"
    )
    low, high = bounds
    if kind == "int":
        assert isinstance(low, int) and isinstance(high, int), f"{name}: an int option needs whole-number ends"


def test_an_option_in_several_entry_points_states_one_range():
    seen = {}
    for role, entry, name, kind, bounds in ROLE_OPTIONS:
        seen.setdefault(name, {})[f"{role}:{entry}"] = (kind, bounds)
    for name, where in seen.items():
        assert len(set(where.values())) == 1, f"{name} states different ranges: {where}"


def test_the_spec_walk_finds_numbers_at_all():
    # Guards the walk itself: a broken walk would make every test above pass vacuously.
    assert len(ROLE_OPTIONS) >= 50
    assert ("preflight", "main", "preflight_port", "int", (1, 65535)) in ROLE_OPTIONS


def test_every_module_number_states_its_range_and_the_module_checks_the_same(module_docs):
    import importlib

    found = 0
    for module, doc in module_docs.items():
        stated = _bounds.spec_ranges(_suboptions_as_options(doc.get("options")))
        missing = [name for name, (_kind, bounds) in stated.items() if bounds is None]
        assert not missing, f"plugins/modules/{module}.py: {missing} state no range ('Range LOW to HIGH.')"
        code = importlib.import_module(f"ansible_collections.fleetserve.minimax.plugins.modules.{module}")
        assert (
            _bounds.ranges_of(getattr(code, "BOUNDS", {})) == stated
        ), f"plugins/modules/{module}.py: BOUNDS differs from the ranges its DOCUMENTATION states"
        found += len(stated)
    assert found >= 15


def _suboptions_as_options(options):
    """Module docs nest under ``suboptions``; the walk of _bounds reads ``options`` (the role spelling)."""
    converted = {}
    for name, spec in (options or {}).items():
        spec = dict(spec)
        if "suboptions" in spec:
            spec["options"] = _suboptions_as_options(spec.pop("suboptions"))
        converted[name] = spec
    return converted


# ---------------------------------------------------------------------------------------------------------
# The real entry points and modules refuse every invalid number before any change
# ---------------------------------------------------------------------------------------------------------


def _cases(where, options, module=False):
    """The invalid values of one entry point or module, batched: one case per kind of invalid value with every
    numeric option at once (each check reports every value it refuses), but a module's non-number one option at a
    time (AnsibleModule reports only the first wrong type)."""
    ranges = _bounds.spec_ranges(options)
    batches = {}
    for name, (kind, bounds) in ranges.items():
        for label, value, names_range in _invalid(kind, bounds or (0, 0), module):
            key = (label, name) if label == "text" and module else (label,)
            batches.setdefault(key, []).append(
                dict(
                    where=where, name=name, kind=kind, bounds=bounds, label=label, value=value, names_range=names_range
                )
            )
    return list(batches.values())


def _values(case):
    values = {}
    for option in case:
        head, rest = (option["name"].split(".", 1) + [""])[:2]
        if rest:
            values.setdefault(head, {})[rest] = option["value"]
        else:
            values[head] = option["value"]
    return values


def _play(module_docs):
    role_cases, role_tasks = [], []
    for role, entry, options in _role_entry_points():
        required = {n: _dummy(s) for n, s in options.items() if s.get("required")}
        for case in _cases(f"{role}:{entry}", options):
            number = len(role_cases)
            role_cases.append(case)
            role_tasks.append(
                {
                    "name": f"case {number}",
                    "block": [
                        {
                            "name": f"role case {number}",
                            "ansible.builtin.include_role": {"name": f"fleetserve.minimax.{role}", "tasks_from": entry},
                            "vars": {**required, **_values(case)},
                        }
                    ],
                    "rescue": [
                        {
                            "name": f"refused {number}",
                            "ansible.builtin.debug": {
                                "msg": {
                                    "task": "{{ ansible_failed_task.name }}",
                                    "msg": "{{ ansible_failed_result.msg }}",
                                }
                            },
                        }
                    ],
                }
            )
    module_cases = []
    for module, doc in module_docs.items():
        options = _suboptions_as_options(doc.get("options"))
        required = {n: MODULE_REQUIRED.get(n, _dummy(s)) for n, s in options.items() if s.get("required")}
        for case in _cases(module, options, module=True):
            module_cases.append((module, {**required, **_values(case)}, case))
    plays = [
        # Facts some argument specs' defaults read, gathered once with a working interpreter.
        {"name": "Facts", "hosts": "localhost", "gather_facts": True, "tasks": []},
        {
            "name": "Roles",
            "hosts": "localhost",
            "gather_facts": False,
            "check_mode": True,
            "vars": {"ansible_python_interpreter": "/bin/false"},
            "tasks": role_tasks,
        },
    ]
    return plays, role_cases, module_cases


def _run_module(tmp, number, item):
    """One module run as Ansible runs it (``python -m MODULE ARGS_FILE``); its JSON answer from stdout."""
    module, args, _case = item
    work = tmp / f"module-{number}"
    work.mkdir()
    (work / "args.json").write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    done = subprocess.run(
        [sys.executable, "-m", f"ansible_collections.fleetserve.minimax.plugins.modules.{module}", "args.json"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=work,
        check=False,
        env={"PYTHONPATH": str(ROOT / ".cache" / "collections"), "PATH": "/usr/bin:/bin", "HOME": str(work)},
    )
    try:
        return json.loads(done.stdout)
    except ValueError:
        return {"no_json": done.stdout[-1000:] + done.stderr[-1000:]}


@pytest.fixture(scope="module")
def refused(module_docs, tmp_path_factory):
    plays, role_cases, module_cases = _play(module_docs)
    tmp = tmp_path_factory.mktemp("bounds")
    (tmp / "play.yml").write_text(json.dumps(plays))
    (tmp / "hosts.ini").write_text(f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")
    env = {
        **os.environ,
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.json",
        "ANSIBLE_LOCAL_TEMP": str(tmp / "local"),
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_GATHER_SUBSET": "min",
    }
    # The playbook and the module runs go side by side.
    with subprocess.Popen(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(tmp / "hosts.ini"), str(tmp / "play.yml")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as playbook:
        with ThreadPoolExecutor(max_workers=4) as pool:
            answers = list(pool.map(lambda item: _run_module(tmp, *item), enumerate(module_cases)))
        stdout, stderr = playbook.communicate(timeout=300)
    report = json.loads(stdout[stdout.index("{") :])
    results = {}
    for play in report["plays"]:
        for task in play["tasks"]:
            results[task["task"]["name"]] = task["hosts"].get("localhost", {})
    modules = [(case, answer) for (_module, _args, case), answer in zip(module_cases, answers)]
    return role_cases, modules, results, report["stats"]["localhost"], stderr


def _assert_names(option, msg):
    text = f"{option['where']} {option['name']}={option['value']!r} ({option['label']})"
    assert option["name"].rsplit(".", 1)[-1] in msg, f"{text}: the message does not name the option: {msg}"
    if option["names_range"]:
        described = "%s is %r, " % (option["name"], option["value"])
        assert described in msg, f"{text}: the message does not name the value: {msg}"
        assert _bounds.describe(option["kind"], option["bounds"]) in msg, f"{text}: the message names no range: {msg}"
    else:
        assert option["kind"] in msg, f"{text}: the message does not name the type: {msg}"


def test_every_role_refuses_every_invalid_number_before_any_change(refused):
    role_cases, _module_cases, results, stats, stderr = refused
    assert len(role_cases) >= 50, "too few role cases: the walk is broken"
    assert stats["changed"] == 0, stats
    wrong = []
    for number, case in enumerate(role_cases):
        first = case[0]
        where = f"{first['where']} {[o['name'] for o in case]} ({first['label']})"
        answer = results.get(f"refused {number}")
        if answer is None:
            wrong.append(f"{where} was not refused")
            continue
        task, msg = answer["msg"]["task"], answer["msg"]["msg"]
        role = first["where"].split(":")[0]
        by_check = task.endswith(CHECK_TASK) and msg.startswith(f"fleetserve.minimax.{role} (entry point")
        if not (task.startswith(ARGSPEC_TASK) if first["label"] == "text" else by_check):
            wrong.append(f"{where} refused late, by {task!r}: {msg}")
            continue
        for option in case:
            _assert_names(option, msg)
    assert not wrong, "\n".join(wrong) + "\n" + stderr[-2000:]


def test_every_module_refuses_every_invalid_number_before_any_change(refused):
    _role_cases, module_cases, _results, _stats, _stderr = refused
    assert len(module_cases) >= 20, "too few module cases: the walk is broken"
    for case, answer in module_cases:
        where = f"{case[0]['where']} {[o['name'] for o in case]} ({case[0]['label']})"
        assert answer.get("failed") and not answer.get("changed"), f"{where}: {answer}"
        for option in case:
            _assert_names(option, answer["msg"])


@pytest.mark.parametrize(
    "kind, bounds, value, ok",
    [
        ("int", (1, 65535), 1, True),
        ("int", (1, 65535), 65535, True),
        ("int", (1, 65535), "8000", True),
        ("int", (1, 65535), 8000.0, True),
        ("int", (1, 65535), 8000.5, False),
        ("float", (0.05, 1.0), 0.05, True),
        ("float", (0.05, 1.0), "1.0", True),
        ("float", (0.05, 1.0), float("nan"), False),
        ("float", (0.0, 10.0), float("inf"), False),
        ("float", (0.0, 10.0), None, True),
        ("int", (1, 64), [1, 2, 65], False),
    ],
)
def test_the_check_itself(kind, bounds, value, ok):
    assert (not _bounds.problems({"x": value}, {"x": (kind, bounds)})) is ok


def test_a_description_states_one_range():
    assert _bounds.range_in("Engine port. Range 1 to 65535.") == (1, 65535)
    assert _bounds.range_in(["Fraction.", "Range 0.05 to 1.0."]) == (0.05, 1.0)
    assert _bounds.range_in("Seconds (Range is up to you).") is None
    with pytest.raises(ValueError, match="states 2 ranges"):
        _bounds.range_in("Range 1 to 2. Range 3 to 4.")
    with pytest.raises(ValueError, match="a low above its high"):
        _bounds.range_in("Range 9 to 2.")


# ---------------------------------------------------------------------------------------------------------
# The playbooks' first play: every role's numbers as the inventory gives them, a non-number included
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("label", ["text", "above"])
def test_the_playbooks_refuse_every_non_number_naming_its_range(label, tmp_path):
    """site.yml as a user runs it, every role's numeric option set (extra vars) to a string that is no number,
    or above its range: its first task refuses them all in one message naming each range; nothing else ran."""
    ranges = {}
    for _role, _entry, name, kind, bounds in ROLE_OPTIONS:
        ranges.setdefault(name, (kind, bounds))
    case = []
    for name, (kind, bounds) in ranges.items():
        value = {label: value for label, value, _names in _invalid(kind, bounds)}[label]
        case.append(
            dict(where="inputs", name=name, kind=kind, bounds=bounds, label=label, value=value, names_range=True)
        )
    (tmp_path / "extra.json").write_text(json.dumps(_values(case)))
    (tmp_path / "hosts.ini").write_text(
        f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n"
    )
    env = {
        **os.environ,
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.json",
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "local"),
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
    }
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("ansible-playbook")),
            "--check",
            "-i",
            str(tmp_path / "hosts.ini"),
            "-e",
            f"@{tmp_path / 'extra.json'}",
            str(ROOT / "playbooks" / "site.yml"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert done.returncode != 0, done.stdout[-2000:]
    report = json.loads(done.stdout[done.stdout.index("{") :])
    ran = [task["task"]["name"] for play in report["plays"] for task in play["tasks"]]
    assert ran == ["Inputs | Refuse a number out of its range or no number at all, naming the range"], ran
    answer = report["plays"][0]["tasks"][0]["hosts"]["localhost"]
    assert answer["failed"] and not answer.get("changed"), answer
    assert len(case) >= 50, "too few options: the walk is broken"
    for option in case:
        _assert_names(option, answer["msg"])
