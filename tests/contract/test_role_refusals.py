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
        plan = copy.deepcopy(plan)
        plan.update(changes)
        return plan

    pure_tp8 = with_plan(
        m2v, expert_parallel_size=1, engine_args=[a for a in m2v["engine_args"] if a != "--enable-expert-parallel"]
    )
    docker = shutil.which("docker")
    cases = {
        "vllm-below-floor": {"engine": "vllm", "vars": {"preflight_plan": with_plan(m2v, engine_version="0.11.0")}},
        "vllm-sglang-parser": {
            "engine": "vllm",
            "vars": {
                "preflight_plan": with_plan(m2v, engine_args=_swap(m2v["engine_args"], "minimax_m2", "minimax-m2"))
            },
        },
        "vllm-tp-not-planned": {
            "engine": "vllm",
            "vars": {"preflight_plan": m1, "vllm_docker_engine_args": _swap(m1["engine_args"], "8", "4")},
        },
        "vllm-pure-tp8-m2": {"engine": "vllm", "vars": {"preflight_plan": pure_tp8}},
        "vllm-use-v1-on-0.33": {
            "engine": "vllm",
            "vars": {"preflight_plan": m2v, "vllm_docker_extra_env": {"VLLM_USE_V1": "0"}},
        },
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
        "sglang-below-floor": {"engine": "sglang", "vars": {"preflight_plan": with_plan(m2s, engine_version="0.5.4")}},
        "sglang-vllm-parser": {
            "engine": "sglang",
            "vars": {
                "preflight_plan": with_plan(
                    m2s, engine_args=_swap(m2s["engine_args"], "minimax-append-think", "minimax_m2_append_think")
                )
            },
        },
        "sglang-m1": {"engine": "sglang", "vars": {"preflight_plan": with_plan(m2s, model="MiniMax-M1-40k")}},
        "sglang-ep-not-planned": {
            "engine": "sglang",
            "vars": {
                "preflight_plan": m2s,
                "sglang_venv_engine_args": _swap(m2s["engine_args"], "--ep-size", "--dp-size"),
            },
        },
        "sglang-two-nodes-no-addr": {
            "engine": "sglang",
            "vars": {"preflight_plan": with_plan(two_node, dist_init_addr=None)},
        },
        "sglang-inline-key": {
            "engine": "sglang",
            "tasks_from": "preflight",
            "vars": {"preflight_plan": m2s, "sglang_venv_api_key": "sk-inline"},
        },
    }
    assert docker, "the docker CLI is needed for the pull=never case (scripts/lab/start-dockerd.sh installs it)"
    assert subprocess.run(
        [docker, "image", "inspect", "fleetserve/fs-engine-absent:test"], capture_output=True
    ).returncode
    # A real image with python3 but no vllm package: the lab's systemd host image (scripts/test builds it).
    assert not subprocess.run([docker, "image", "inspect", LAB_IMAGE], capture_output=True).returncode, (
        f"{LAB_IMAGE} is needed for the image-without-parts case: scripts/lab/build-image.sh builds it"
    )
    return run_roles(tmp, cases)


EXPECTED = {
    "vllm-below-floor": "MiniMax-M2.1 needs vLLM >= 0.11.1, but vllm_docker_version is 0.11.0. "
    "Raise the engine version (preflight wishes or vllm_docker_version).",
    "vllm-sglang-parser": "minimax-m2 is an SGLang parser name; vLLM spells minimax_m2. Fix the engine flags.",
    "vllm-tp-not-planned": "The engine flags ask for tensor 4, data 1, pipeline 1, expert parallel False, but the plan "
    "sized the host for tensor 8, data 1, pipeline 1, expert 1. Change the preflight wishes, not the engine flags.",
    "vllm-pure-tp8-m2": "MiniMax-M2.1 with --tensor-parallel-size 8 and no expert parallel splits each 1536-wide FP8 "
    'expert into 192 columns, not a multiple of the 128-wide quantisation block (vLLM recipes: "pure TP8 is not '
    'supported"). Use expert parallel (plan expert_parallel_size) or tensor parallel 4.',
    "vllm-use-v1-on-0.33": "VLLM_USE_V1 is set, but vLLM 0.33.0 has no V0 engine (0.11.0 asserts VLLM_USE_V1 at "
    "start-up, later releases ignore it). Remove it from the engine environment.",
    "vllm-inline-key": "vllm_docker_api_key is not supported: a key in a role variable ends up in inventories and "
    "logs. Put it in fleetserve_api_key (encrypted with ansible-vault) or set vllm_docker_api_key_file to a 0600 "
    "file on the host.",
    "vllm-image-missing-pull-never": "Image fleetserve/fs-engine-absent:test is not on localhost and vllm_docker_pull "
    "is 'never': load it first (docker save | docker load) or set vllm_docker_pull to 'missing'.",
    "vllm-source-branch": "vllm_docker_source_ref 'main' is not a release tag (or vllm_docker_source_dir "
    "'/opt/fleetserve/vllm-src/main' is not absolute): pin a tag such as v0.9.2, or tag your patched commit (e.g. "
    "v0.9.2-patched.1), so the checkout's version is known before anything is cloned; branches move and bare commits "
    "carry no version.",
    "vllm-source-other-release": "The source checkout v0.9.3 is vLLM 0.9.3, but the image runs vLLM 0.9.2: its "
    "compiled parts only fit the Python code of their own release. Pin vllm_docker_source_ref to a tag of 0.9.2, or "
    "change vllm_docker_version.",
    "vllm-source-image-without-parts": "Image fleetserve/lab-systemd:bookworm has no compiled vLLM parts to copy "
    "(its python3 has no vllm package): source-checkout mode needs the vllm/vllm-openai image of the checkout's "
    "release, or set vllm_docker_source_checkout to false.",
    "sglang-below-floor": "MiniMax-M2.1 needs SGLang >= 0.5.4.post1, but sglang_venv_version is 0.5.4. "
    "Raise the engine version (preflight wishes or sglang_venv_version).",
    "sglang-vllm-parser": "minimax_m2_append_think is a vLLM parser name; SGLang spells minimax-append-think. "
    "Fix the engine flags.",
    "sglang-m1": "MiniMax-M1-40k does not run on SGLang (no SGLang release supports the MiniMax-M1 family). "
    "Serve it with the vllm_docker role (engine: vllm in the preflight wishes).",
    "sglang-ep-not-planned": "The engine flags ask for tp 8, ep 1, dp 8, but the plan sized the host for tp 8, ep 8, "
    "dp 1 (and ep must divide tp). Change the preflight wishes, not the engine flags.",
    "sglang-two-nodes-no-addr": "The plan spans 2 nodes but has dist_init_addr '' and node_rank 1: every node needs "
    "the same HOST:PORT of node 0 and its own rank below nnodes. Re-run preflight on all nodes together.",
    "sglang-inline-key": "sglang_venv_api_key is not supported: a key in a role variable ends up in inventories and "
    "logs. Put it in fleetserve_api_key (encrypted with ansible-vault) or set sglang_venv_api_key_file to a 0600 "
    "file on the host.",
}


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_role_refuses_with_the_fix(refusals, case):
    assert refusals[case] == {"error": EXPECTED[case]}


@pytest.mark.parametrize("ref", sorted(SOURCE_REFS))
def test_source_checkout_ref(refusals, ref):
    """The checkout's version comes from the tag name alone, so a wrong ref stops the play before the clone."""
    result = refusals[_source_case(ref)]
    if SOURCE_REFS[ref] is None:
        assert result["argv"][:2] == ["-m", "vllm.entrypoints.openai.api_server"], result
    else:
        assert SOURCE_REFS[ref] in result["error"]
