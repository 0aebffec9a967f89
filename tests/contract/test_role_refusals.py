"""Bad input: each engine role refuses it with a message that names the fix, before any host change.

The checks run through the roles' own tasks (command.yml: pure; preflight.yml: read-only probes),
all cases in one ansible-playbook run.
"""

from __future__ import annotations

import copy
import shutil
import subprocess

import contract_layouts as layouts
import pytest
from ansible_collections.fleetserve.minimax.plugins.module_utils import _catalog
from contract_render import run_roles

pytestmark = pytest.mark.contract


LAB_IMAGE = "fleetserve/lab-systemd:bookworm"
# Source-checkout refs for the 0.9.2 image: release tags (also on a patched commit) pass; the rest is refused.
SOURCE_REFS = {
    "v0.9.2": None,
    "0.9.2": None,
    "v0.9.2-fleet.1": None,
    "v0.9.2+patched": None,
    "releases/v0.9.2": "not a release tag",
    "a3f1c0de9b8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c": "not a release tag",
    "v0.9.2rc1": "is vLLM 0.9.2rc1, but the image runs vLLM 0.9.2",
    "v0.10.1.1": "is vLLM 0.10.1.1, but the image runs vLLM 0.9.2",
}


def _source_case(ref):
    return "vllm-source-ref-" + ref.replace("/", "_")


def _swap(argv, old, new):
    return [new if a == old else a for a in argv]


@pytest.fixture(scope="module")
def refusals(collection_root, tmp_path_factory):
    catalog = _catalog.load_catalog(collection_root / _catalog.CATALOG_RELPATH)
    m1 = layouts.plans(catalog, "m1-vllm-0.9.2-tp8")[0]
    m2v = layouts.plans(catalog, "m2.1-vllm-0.33.0-tp8-ep")[0]
    m2s = layouts.plans(catalog, "m2.1-sglang-0.5.23-tp8-ep8")[0]
    two_node = layouts.plans(catalog, "m2.5-sglang-0.5.23-2node-tp16-ep16")[1]
    tmp = tmp_path_factory.mktemp("refusals")
    (tmp / "weights").mkdir()

    def with_plan(plan, **changes):
        return dict(copy.deepcopy(plan), **changes)

    docker = shutil.which("docker")
    cases = {
        "vllm-extra-parser": {
            "engine": "vllm",
            "vars": {"preflight_plan": m2v, "vllm_docker_extra_args": ["--tool-call-parser", "minimax-m2"]},
        },
        "vllm-extra-tp": {
            "engine": "vllm",
            "vars": {"preflight_plan": m1, "vllm_docker_extra_args": ["--tensor-parallel-size=4"]},
        },
        "vllm-use-v1-on-0.33": {
            "engine": "vllm",
            "vars": {"preflight_plan": m2v, "vllm_docker_extra_env": {"VLLM_USE_V1": "0"}},
        },
        "vllm-removed-version": {
            "engine": "vllm",
            "tasks_from": "preflight",
            "vars": {"preflight_plan": m1, "vllm_docker_version": "0.9.3", "vllm_docker_port": 8001},
        },
        "vllm-not-a-plan": {"engine": "vllm", "vars": {"preflight_plan": m2s}},
        "vllm-inline-key": {
            "engine": "vllm",
            "tasks_from": "preflight",
            "vars": {"preflight_plan": m1, "vllm_docker_api_key": "sk-inline"},
        },
        "vllm-image-missing-pull-never": {
            "engine": "vllm",
            "tasks_from": "preflight",
            "vars": {
                "preflight_plan": with_plan(m1, model_dir=str(tmp / "weights")),
                "vllm_docker_docker_bin": docker,
                "vllm_docker_image_repository": "fleetserve/fs-engine-absent",
                "vllm_docker_image_tag": "test",
                "vllm_docker_pull": "never",
            },
        },
        "vllm-source-branch": {
            "engine": "vllm",
            "vars": {"preflight_plan": m1, "vllm_docker_source_checkout": True, "vllm_docker_source_ref": "main"},
        },
        "vllm-source-other-release": {
            "engine": "vllm",
            "vars": {"preflight_plan": m1, "vllm_docker_source_checkout": True, "vllm_docker_source_ref": "v0.9.3"},
        },
        "vllm-source-image-without-parts": {
            "engine": "vllm",
            "tasks_from": "preflight",
            "vars": {
                "preflight_plan": with_plan(m1, model_dir=str(tmp / "weights")),
                "vllm_docker_docker_bin": docker,
                "vllm_docker_image_repository": LAB_IMAGE.split(":")[0],
                "vllm_docker_image_tag": LAB_IMAGE.split(":")[1],
                "vllm_docker_pull": "never",
                "vllm_docker_source_checkout": True,
            },
        },
        **{
            _source_case(ref): {
                "engine": "vllm",
                "vars": {"preflight_plan": m1, "vllm_docker_source_checkout": True, "vllm_docker_source_ref": ref},
            }
            for ref in SOURCE_REFS
        },
        "sglang-extra-ep": {
            "engine": "sglang",
            "vars": {"preflight_plan": m2s, "sglang_venv_extra_args": ["--dp-size", "8"]},
        },
        "sglang-extra-nnodes": {
            "engine": "sglang",
            "vars": {"preflight_plan": two_node, "sglang_venv_extra_args": ["--nnodes", "1"]},
        },
        "sglang-inline-key": {
            "engine": "sglang",
            "tasks_from": "preflight",
            "vars": {"preflight_plan": m2s, "sglang_venv_api_key": "sk-inline"},
        },  # No key on 0.0.0.0: refused unless the one opt-out variable says so; loopback needs neither.
        "vllm-open-on-public": {"engine": "vllm", "vars": {"preflight_plan": m1, "fleetserve_api_key": ""}},
        "sglang-open-on-public": {"engine": "sglang", "vars": {"preflight_plan": m2s, "fleetserve_api_key": ""}},
        **{
            f"{engine}-open-{how}": {
                "engine": engine,
                "vars": {"preflight_plan": with_plan(plan, **extra), "fleetserve_api_key": "", **opt},
            }
            for engine, plan in (("vllm", m1), ("sglang", m2s))
            for how, extra, opt in (
                ("opted-out", {}, {"fleetserve_allow_unauthenticated": True}),
                ("loopback", {"host": "127.0.0.1"}, {}),
            )
        },
    }
    assert docker, "the docker CLI is needed for the pull=never case (scripts/lab/start-dockerd.sh installs it)"
    assert subprocess.run(
        [docker, "image", "inspect", "fleetserve/fs-engine-absent:test"], capture_output=True
    ).returncode
    # A real image with python3 but no vllm package: the lab's systemd host image (scripts/test builds it).
    assert not subprocess.run(
        [docker, "image", "inspect", LAB_IMAGE], capture_output=True
    ).returncode, f"{LAB_IMAGE} is needed for the image-without-parts case: scripts/lab/build-image.sh builds it"
    return run_roles(tmp, cases)


EXPECTED = {
    "vllm-extra-parser": "vllm_docker_extra_args sets --tool-call-parser, which the serving plan decides (the plan has "
    "--tool-call-parser minimax_m2): remove it from vllm_docker_extra_args; the model's catalog entry "
    "(roles/preflight/vars/models.yml) decides it.",
    "vllm-extra-tp": "vllm_docker_extra_args sets --tensor-parallel-size, which the serving plan decides (the plan has "
    "--tensor-parallel-size 8): remove it from vllm_docker_extra_args; set preflight_tensor_parallel_size instead.",
    "vllm-use-v1-on-0.33": "vllm_docker_extra_env sets VLLM_USE_V1, which the serving plan decides (only where the "
    "model needs vLLM's V0 engine; the plan for vLLM 0.33.0 does not set it): remove it from vllm_docker_extra_env.",
    "vllm-removed-version": "vllm_docker_port, vllm_docker_version: removed; the serving plan decides them. Set "
    "preflight_port, preflight_engine_version instead, then re-run.",
    "vllm-not-a-plan": "vllm_docker needs a serving plan for the vLLM engine (fact preflight_plan with model, engine: "
    "vllm, engine_version, model_dir as an absolute path, port, engine_args); got engine 'sglang', model_dir "
    "'/srv/models/MiniMax-M2.1'. Run the preflight role first (playbooks/site.yml does) or set vllm_docker_plan.",
    "vllm-inline-key": "vllm_docker_api_key is not supported: a key in a role variable ends up in inventories and "
    "logs. Put it in fleetserve_api_key (encrypted with ansible-vault) or set vllm_docker_api_key_file to a 0600 "
    "file on the host.",
    "vllm-image-missing-pull-never": "Image fleetserve/fs-engine-absent:test is not on localhost and vllm_docker_pull "
    "is 'never': load it first (docker save | docker load), set vllm_docker_pull to 'missing', or fix "
    "vllm_docker_image_repository, vllm_docker_image_tag or vllm_docker_image_digest.",
    "vllm-source-branch": "vllm_docker_source_ref 'main' is not a release tag (or vllm_docker_source_dir "
    "'/opt/fleetserve/vllm-src/main' is not absolute): pin a tag such as v0.9.2, or tag your patched commit (e.g. "
    "v0.9.2-patched.1), so the checkout's version is known before anything is cloned; branches move and bare commits "
    "carry no version.",
    "vllm-source-other-release": "The source checkout v0.9.3 is vLLM 0.9.3, but the image runs vLLM 0.9.2: its "
    "compiled parts only fit the Python code of their own release. Pin vllm_docker_source_ref to a tag of 0.9.2, or "
    "change the plan's engine version (preflight_engine_version).",
    "vllm-source-image-without-parts": "Image fleetserve/lab-systemd:bookworm has no compiled vLLM parts to copy "
    "(its python3 has no vllm package): source-checkout mode needs the vllm/vllm-openai image of the checkout's "
    "release, or set vllm_docker_source_checkout to false.",
    "sglang-extra-ep": "sglang_venv_extra_args sets --dp-size, which the serving plan decides (the plan has no "
    "--dp-size): remove it from sglang_venv_extra_args; set preflight_data_parallel_size instead.",
    "sglang-extra-nnodes": "sglang_venv_extra_args sets --nnodes, which the serving plan decides (the plan has "
    "--nnodes 2): remove it from sglang_venv_extra_args; set preflight_nnodes instead.",
    **{
        f"{engine}-open-on-public": f"The {name} engine would listen on 0.0.0.0 without an API key: anyone who reaches "
        f"the port could use the GPUs. Either set an API key (fleetserve_api_key, vaulted, or {role}_api_key_file), or, "
        "on a network you trust, set fleetserve_allow_unauthenticated: true in the inventory to serve without one (an "
        "engine bound to 127.0.0.1 needs neither)."
        for engine, name, role in (("vllm", "vLLM", "vllm_docker"), ("sglang", "SGLang", "sglang_venv"))
    },
    "sglang-inline-key": "sglang_venv_api_key is not supported: a key in a role variable ends up in inventories and "
    "logs. Put it in fleetserve_api_key (encrypted with ansible-vault) or set sglang_venv_api_key_file to a 0600 "
    "file on the host.",
}


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_role_refuses_with_the_fix(refusals, case):
    assert refusals[case] == {"error": EXPECTED[case]}


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_keyless_only_on_loopback_or_when_the_inventory_says_so(refusals, engine):
    """Through the roles: the keyless cases the refusal above does not cover run (an argv, no error)."""
    for how in ("opted-out", "loopback"):
        assert refusals[f"{engine}-open-{how}"].get("argv"), refusals[f"{engine}-open-{how}"]


@pytest.mark.parametrize("ref", sorted(SOURCE_REFS))
def test_source_checkout_ref(refusals, ref):
    """The checkout's version comes from the tag name alone, so a wrong ref stops the play before the clone."""
    result = refusals[_source_case(ref)]
    if SOURCE_REFS[ref] is None:
        assert result["argv"][:2] == ["-m", "vllm.entrypoints.openai.api_server"], result
    else:
        assert SOURCE_REFS[ref] in result["error"]


# Rules the engine roles restated in YAML until the launch spec: each is now stated once, in the planner (from the
# catalog), and refuses the wish at preflight, before any host change. Same GPU facts as tests/contract/contract_layouts.
STATED_ONCE = {
    "below-vllm-floor": (
        "MiniMax-M2.1",
        {"engine": "vllm", "engine_version": "0.11.0"},
        "vllm 0.11.0 is below the floor 0.11.1 for MiniMax-M2.1; set preflight_engine_version to 0.33.0 (or any "
        "release >= 0.11.1)",
    ),
    "below-sglang-floor": (
        "MiniMax-M2.1",
        {"engine": "sglang", "engine_version": "0.5.4"},
        "sglang 0.5.4 is below the floor 0.5.4.post1 for MiniMax-M2.1; set preflight_engine_version to 0.5.23 (or any "
        "release >= 0.5.4.post1)",
    ),
    "m1-on-sglang": (
        "MiniMax-M1-40k",
        {"engine": "sglang"},
        "MiniMax-M1-40k does not run on sglang; set preflight_engine to one of: vllm",
    ),
    "m2-pure-tp8-fp8": (
        "MiniMax-M2.1",
        {"engine": "vllm", "expert_parallel_size": 1},
        "pure tensor parallel 8 is not supported for the MiniMax-M2.1 FP8 checkpoint: intermediate_size 1536 / 8 = 192 "
        "is not a multiple of the FP8 block 128; set preflight_expert_parallel_size to 8 (TP+EP) or "
        "preflight_tensor_parallel_size to 4",
    ),
}


@pytest.mark.parametrize("case", sorted(STATED_ONCE))
def test_rules_are_stated_once_in_the_planner(collection_root, case):
    from ansible_collections.fleetserve.minimax.plugins.module_utils import _plan

    catalog = _catalog.load_catalog(collection_root / _catalog.CATALOG_RELPATH)
    model, wishes, message = STATED_ONCE[case]
    facts = {"gpus": [dict(layouts.H200, index=i) for i in range(8)], "driver_version": "580.95.05"}
    with pytest.raises(ValueError) as refused:
        _plan.build_plan(catalog, model, facts, layouts.HOST, wishes)
    assert str(refused.value) == message


def test_engine_roles_restate_no_catalog_rule(collection_root):
    """No version floor, parser spelling, FP8 block size or argv regex is left in the engine roles."""
    import re

    for role in ("vllm_docker", "sglang_venv"):
        text = "\n".join(p.read_text() for p in (collection_root / "roles" / role).rglob("*.yml"))
        for needle in ("minimax_m2", "minimax-m2", "0.11.1", "0.5.4.post1", "1536", "regex_search", "floors"):
            assert needle not in text, (role, needle)
        assert not re.search(r"version\(['\"]0\.", text), role
