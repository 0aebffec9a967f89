"""inventories/sample as a user copies it: with no vault, a vault with only the HF token or only the API
key, or both, every role's variables and every task expression that reads a secret render.

A secret the vault does not hold must mean "none" to every role (a public repo needs no token; a fleet
without a key is the security policy's business), never a crash like the one `default(omit)` caused:
``object of type '_OmitType' has no len()``.

The inventory is loaded with Ansible's own inventory and variable managers, from a copy with the vault
written by Ansible's VaultLib (as `ansible-vault create` writes it). For each host, each role's defaults
(below the inventory, as Ansible layers them) and vars that read a secret are templated, and so is every task string or condition of that role that names one. Variables that only exist at run time (registered results,
facts, the plan) are undefined here; those errors are allowed, any other templating error fails.
"""

from __future__ import annotations

import multiprocessing
import re
import shutil
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleError, AnsibleUndefinedVariable
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.parsing.vault import VaultLib, VaultSecret
from ansible.plugins.loader import init_plugin_loader
from ansible.template import Templar, trust_as_template
from ansible.vars.manager import VariableManager

pytestmark = pytest.mark.integration

SECRETS = ("fleetserve_hf_token", "fleetserve_api_key")
VAULTS = {
    "no vault": None,
    "token only": {"vault_hf_token": "hf_sampleTokenOnly0123456789"},
    "key only": {"vault_api_key": "sk-sample-key-only"},
    "both": {"vault_hf_token": "hf_sampleBoth0123456789", "vault_api_key": "sk-sample-both"},
}
PASSWORD = b"sample-inventory-test"
COLLECTION_ROOT = Path(__file__).resolve().parents[2]


def _strings(node):
    """Every string in a loaded YAML tree (task arguments, conditions, loop expressions)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


def _task_expressions(role_dir):
    """(file, expression) for each task string or `when` naming a secret, ready to template."""
    found = []
    for path in sorted((role_dir / "tasks").glob("*.yml")) + sorted((role_dir / "handlers").glob("*.yml")):
        for task in yaml.safe_load(path.read_text()) or []:
            for key, value in task.items():
                conditions = value if key in ("when", "failed_when", "changed_when") else None
                if conditions is not None and not isinstance(conditions, bool):
                    for cond in conditions if isinstance(conditions, list) else [conditions]:
                        if isinstance(cond, str) and any(s in cond for s in SECRETS):
                            found.append((path.name, "{{ (%s) | bool }}" % cond))
                    continue
                for text in _strings(value):
                    if "{{" in text and any(s in text for s in SECRETS):
                        found.append((path.name, text))
    return found


def _reading_secrets(variables: dict) -> set:
    """Names whose definition reads a secret. Only direct readers: a variable that reads one of them also
    reads the plan and registered results, which exist only at run time."""
    return {
        name
        for name, value in variables.items()
        if name not in SECRETS and any(re.search(rf"\b{s}\b", text) for text in _strings(value) for s in SECRETS)
    }


def _render(templar, value):
    try:
        templar.template(trust_as_template(value) if isinstance(value, str) else value)
    except AnsibleUndefinedVariable:
        pass  # a registered result, a fact or the plan: only defined at run time
    except AnsibleError as err:
        if "is undefined" in str(err) and "_OmitType" not in str(err):
            return None
        if "resolved to an Omit scalar" in str(err):
            return None  # `default(omit, true)` in a module argument: the argument is left out, as intended
        return str(err).splitlines()[0]
    return None


@pytest.fixture(scope="module", params=list(VAULTS), ids=list(VAULTS))
def copied(request, tmp_path_factory):
    """The sample copied as a user does, with the vault (if any) that this case holds."""
    inv = tmp_path_factory.mktemp("inv") / "gpu_hosts"
    shutil.copytree(COLLECTION_ROOT / "inventories" / "sample", inv)
    content = VAULTS[request.param]
    if content is not None:
        vault = VaultLib([("default", VaultSecret(PASSWORD))])
        (inv / "group_vars" / "all" / "vault.yml").write_bytes(vault.encrypt(yaml.safe_dump(content)))
    return request.param, inv


def _problems(case, inv) -> list:
    """Every rendering problem of every role against the copied inventory ``inv`` with vault ``case``."""
    loader = DataLoader()
    if VAULTS[case] is not None:
        loader.set_vault_secrets([("default", VaultSecret(PASSWORD))])
    inventory = InventoryManager(loader=loader, sources=[str(inv)])
    variables = VariableManager(loader=loader, inventory=inventory)
    init_plugin_loader(
        [str(COLLECTION_ROOT / ".cache" / "collections")]
    )  # the collection's filters (tests/conftest.py)
    roles = sorted(p for p in (COLLECTION_ROOT / "roles").iterdir() if (p / "defaults" / "main.yml").is_file())
    problems = []
    for host in inventory.get_hosts():
        host_vars = variables.get_vars(host=host)
        # The inventory's secrets resolve to strings: the token/key, or '' when the vault lacks it.
        for name in SECRETS:
            templar = Templar(loader=loader, variables=host_vars)
            value = templar.template(host_vars[name])
            want = (VAULTS[case] or {}).get(name.replace("fleetserve_", "vault_"), "")
            if value != want:
                problems.append(f"{host.name}: {name} renders {value!r}, expected {want!r}")
        for role in roles:
            layered = dict(loader.load_from_file(str(role / "defaults" / "main.yml")) or {})
            layered.update(host_vars)  # inventory variables win over role defaults
            role_vars = role / "vars" / "main.yml"
            if role_vars.is_file():
                layered.update(loader.load_from_file(str(role_vars)) or {})
            templar = Templar(loader=loader, variables=layered)
            for name in sorted(_reading_secrets(layered)):
                if name.startswith(f"__{role.name}_") or name.startswith(f"{role.name}_"):
                    error = _render(templar, layered[name])
                    if error:
                        problems.append(f"{host.name}: role {role.name}: variable {name}: {error}")
            for filename, expression in _task_expressions(role):
                error = _render(templar, expression)
                if error:
                    problems.append(f"{host.name}: role {role.name} {filename}: {expression!r}: {error}")
    return problems


def _in_child(queue, case, inv):
    try:
        queue.put(("ok", _problems(case, inv)))
    except BaseException as err:  # noqa: BLE001 - reported to the parent, which fails the test with it
        queue.put(("error", f"{type(err).__name__}: {err}"))


def test_every_role_renders_with_this_vault(copied):
    """Rendered in a forked child: Ansible's plugin loader installs a process-wide collection finder that
    would break later tests importing collection code through sys.path (CI failed on exactly that)."""
    case, inv = copied
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_in_child, args=(queue, case, inv))
    child.start()
    status, result = queue.get(timeout=600)
    child.join(timeout=60)
    assert status == "ok", result
    assert not result, f"vault case {case!r}:\n" + "\n".join(result[:20])


def test_the_scan_sees_the_secret_expressions(collection_root):
    """The test above is only as good as its scan: it must find the places that read each secret."""
    seen = {s: 0 for s in SECRETS}
    for role in (collection_root / "roles").iterdir():
        if (role / "tasks").is_dir():
            for _, expression in _task_expressions(role):
                for secret in SECRETS:
                    seen[secret] += len(re.findall(secret, expression))
    assert seen["fleetserve_api_key"] >= 4 and seen["fleetserve_hf_token"] >= 1, seen
