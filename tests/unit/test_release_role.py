"""The release role's inputs are documented once, and the rollout and rollback playbooks stay thin (issue 17).

- Every variable of roles/release/defaults/main.yml is an option of each entry point whose task files read it
  (following include_tasks), with the same default.
- No task of the role, and no line of playbooks/rollout.yml or rollback.yml, reads one of those inputs with
  `| default(...)`: its default lives in defaults/main.yml only. The records' directory is
  `fleetserve_release_dir` through the filter `release_dir`; its default is stated only in
  plugins/module_utils/_launch.py; the old `rollout_state_dir` is only refused (tasks/inputs.yml).
- The variables the role's tasks still read with `| default(...)` belong to other roles (router, preflight):
  each is documented in the argument spec of every entry point that reads it.
- The playbooks include only entry points that meta/argument_specs.yml declares; the play keywords they read
  (`| default(...)`, the only ones left there) are documented in those entry points too.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "release"
PLAYBOOKS = {"rollout.yml": ROOT / "playbooks" / "rollout.yml", "rollback.yml": ROOT / "playbooks" / "rollback.yml"}
RELEASE_DIR_DEFAULT = "/var/lib/fleetserve/releases"

# `name | default(`: a bare variable (not an attribute, item or registered result's field) with a fallback.
_DEFAULTED = re.compile(r"(?<![\w.\]'\"])([A-Za-z_][A-Za-z0-9_]*)\s*\|\s*default\(")
_INCLUDES = ("include_tasks", "import_tasks")


def _code(path: Path) -> str:
    """The file without its comments (whole-line or trailing), so that only what Ansible reads is scanned."""
    return "\n".join(re.sub(r"(^|\s)#.*$", "", line) for line in path.read_text().splitlines())


def _specs() -> dict:
    return yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]


def _defaults() -> dict:
    return yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())


def _walk(node):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def reachable(entry: str) -> list[Path]:
    """tasks/<entry>.yml and every task file of the role it includes, transitively, and vars/main.yml when
    they use one of its variables."""
    seen: list[Path] = []
    todo = [ROLE / "tasks" / f"{entry}.yml"]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.append(path)
        for node in _walk(yaml.safe_load(path.read_text())):
            for key, value in node.items():
                if str(key).rsplit(".", 1)[-1] in _INCLUDES:  # a file of this role's tasks/
                    name = value if isinstance(value, str) else value["file"]
                    todo.append(ROLE / "tasks" / name)
    role_vars = ROLE / "vars" / "main.yml"
    if reads(seen, yaml.safe_load(role_vars.read_text())):
        seen.append(role_vars)
    return seen


def defaulted(paths) -> dict[str, set[str]]:
    """Variable name to the files reading it with `| default(...)`; role-private (`__`) and Ansible's own
    (`ansible_`) names left out."""
    found: dict[str, set[str]] = {}
    for path in paths:
        for name in _DEFAULTED.findall(_code(path)):
            if not name.startswith(("__", "ansible_")):
                found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


def reads(paths, names) -> set[str]:
    text = "\n".join(_code(p) for p in paths)
    return {n for n in names if re.search(rf"(?<![\w.]){re.escape(n)}\b", text)}


def included_entry_points(playbook: Path) -> list[str]:
    """tasks_from (main when absent) of each include_role/import_role of fleetserve.minimax.release."""
    entries = []
    for node in _walk(yaml.safe_load(playbook.read_text())):
        for key, value in node.items():
            if str(key).rsplit(".", 1)[-1] in ("include_role", "import_role") and isinstance(value, dict):
                if value.get("name") == "fleetserve.minimax.release":
                    entries.append(value.get("tasks_from", "main"))
    return entries


def test_the_role_has_inputs_and_entry_points():
    """Not vacuous: the scans see the inputs, the entry points and what they read."""
    assert {"fleetserve_release_dir", "rollout_drain_timeout_s", "rollout_drain_poll_s", "rollout_drain_grace_s",
            "rollout_rollback"} <= set(_defaults())
    assert {"main", "batch", "rollback", "teardown"} <= set(_specs())
    assert ROLE / "tasks" / "drain.yml" in reachable("main") and ROLE / "tasks" / "drain.yml" in reachable("rollback")
    assert "router_worker_scheme" in defaulted(reachable("main"))
    assert "preflight_nnodes" in defaulted(reachable("batch"))
    teardown_only = {"teardown_remove_weights", "teardown_remove_image"}
    assert reads(reachable("main"), _defaults()) == set(_defaults()) - teardown_only
    assert reads(reachable("teardown"), _defaults()) >= teardown_only


def test_defaults_match_the_argument_specs():
    defaults, specs = _defaults(), _specs()
    documented = {name for spec in specs.values() for name in spec.get("options", {})}
    assert set(defaults) <= documented, "an input in defaults/main.yml that no entry point documents"
    for entry, spec in specs.items():
        options = spec.get("options", {})
        assert (ROLE / "tasks" / f"{entry}.yml").is_file(), f"entry point {entry} has no tasks/{entry}.yml"
        missing = reads(reachable(entry), defaults) - set(options)
        assert not missing, f"entry point {entry} reads {sorted(missing)} without documenting them"
        for name in set(options) & set(defaults):
            assert options[name].get("default") == defaults[name], f"{entry}: {name} defaults differ"


def test_no_input_of_the_role_has_a_fallback_in_its_tasks():
    for entry, spec in _specs().items():
        found = defaulted(reachable(entry))
        own = set(found) & set(_defaults())
        assert not own, f"read with | default(...) although defaults/main.yml sets them: {sorted(own)}"
        undocumented = set(found) - set(spec.get("options", {}))
        assert not undocumented, f"entry point {entry} reads {sorted(undocumented)} undocumented"


@pytest.mark.parametrize("playbook", sorted(PLAYBOOKS))
def test_the_playbooks_include_documented_entry_points_and_read_only_play_keywords(playbook):
    path = PLAYBOOKS[playbook]
    entries = included_entry_points(path)
    assert entries, f"{playbook} no longer runs the release role"
    specs = _specs()
    assert set(entries) <= set(specs)
    documented = {name for entry in entries for name in specs[entry].get("options", {})}
    keywords = set(defaulted([path]))
    assert keywords == {
        "rollout.yml": {"rollout_hosts", "rollout_canary", "rollout_batch", "rollout_max_fail_percentage"},
        "rollback.yml": {"rollback_hosts", "rollback_batch"},
    }[playbook]
    assert keywords <= documented
    assert "include_tasks" not in _code(path), "the steps belong to the release role"


def test_the_records_directory_is_named_once():
    assert not (ROOT / "playbooks" / "tasks").exists()
    scanned = [*PLAYBOOKS.values(), ROOT / "playbooks" / "status.yml", *sorted(ROLE.glob("tasks/*.yml")),
               ROLE / "vars" / "main.yml", ROLE / "defaults" / "main.yml"]
    for path in scanned:
        code = _code(path)
        assert RELEASE_DIR_DEFAULT not in code, f"{path.relative_to(ROOT)} states the default records directory"
        if path.name != "inputs.yml":  # which refuses it, naming fleetserve_release_dir
            assert "rollout_state_dir" not in code, f"{path.relative_to(ROOT)} reads the removed rollout_state_dir"
    assert "fleetserve.minimax.release_dir" in _code(ROLE / "vars" / "main.yml")


# Stage, then switch (issue 18): what each engine role's entry points reach, and where the rollout calls them.
ENGINE_ROLES = {"sglang_venv": "SGLang", "vllm_docker": "VLLM"}
# Task files that touch what the running engine uses (link, unit, configuration, service) or download.
# configure.yml renders to staged paths beside the live ones: part of the stage step (issue 18).
TOUCHES_RUNNING = {"activate.yml", "source.yml"}
DOWNLOADS = {"install.yml", "venv.yml"}


def role_reachable(role: str, entry: str) -> set[str]:
    """The task files of roles/<role> that tasks/<entry>.yml includes or imports, transitively."""
    tasks = ROOT / "roles" / role / "tasks"
    seen: set[str] = set()
    todo = [f"{entry}.yml"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for node in _walk(yaml.safe_load((tasks / name).read_text())):
            for key, value in node.items():
                if str(key).rsplit(".", 1)[-1] in _INCLUDES:
                    todo.append(value if isinstance(value, str) else value["file"])
    return seen


@pytest.mark.parametrize("role", sorted(ENGINE_ROLES))
def test_engine_roles_stage_beside_the_running_release_and_switch_without_downloading(role):
    specs = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    assert {"main", "stage", "switch"} <= set(specs)
    assert specs["stage"]["options"] == specs["main"]["options"] == specs["switch"]["options"]
    stage, switch, main = (role_reachable(role, e) for e in ("stage", "switch", "main"))
    assert {"install.yml", "preflight.yml", "configure.yml"} <= stage
    assert not stage & TOUCHES_RUNNING, f"stage reaches {sorted(stage & TOUCHES_RUNNING)}"
    assert "activate.yml" in switch and not switch & (DOWNLOADS | {"configure.yml"}), sorted(switch)
    # The switch installs the staged files, restarts, waits and records in one host call.
    activate = yaml.safe_load((ROOT / "roles" / role / "tasks" / "activate.yml").read_text())
    assert [t for t in activate if "fleetserve.minimax.engine_switch" in t], "activate.yml: no engine_switch task"
    assert stage | switch <= main | {"stage.yml", "switch.yml", "command.yml"}, "main stages and switches"
    assert {"install.yml", "activate.yml"} <= main


def _includes(path: Path) -> list[str]:
    """The role task files and engine-role entry points a release task file includes, in order."""
    found = []
    for task in yaml.safe_load(path.read_text()):
        for node in _walk(task):
            for key, value in node.items():
                short = str(key).rsplit(".", 1)[-1]
                if short in _INCLUDES:
                    found.append(value)
                elif short == "include_role" and isinstance(value, dict):
                    found.append(f"{value['name'].rsplit('.', 1)[-1]}:{value.get('tasks_from', 'main')}")
    return found


def test_the_rollout_stages_before_it_drains_and_switches_inside_the_window():
    steps = _includes(ROLE / "tasks" / "switch.yml")
    assert steps.index("stage.yml") < steps.index("drain.yml") < steps.index("engine.yml") < steps.index("join.yml")
    assert steps.count("stage.yml") == 1
    staged = _includes(ROLE / "tasks" / "stage.yml")
    assert sorted(set(staged)) == ["sglang_venv:stage", "vllm_docker:stage"], staged
    switched = _includes(ROLE / "tasks" / "engine.yml")
    assert {"sglang_venv:switch", "vllm_docker:switch"} <= set(switched) and not {s for s in switched if ":stage" in s}
    assert {"sglang_venv:main", "vllm_docker:main"}.isdisjoint(switched)
    # The recovery of a failed switch stages the previous release again (a no-op when it is still there).
    recover = _includes(ROLE / "tasks" / "recover.yml")
    assert recover.index("drain.yml") < recover.index("stage.yml") < recover.index("engine.yml")
