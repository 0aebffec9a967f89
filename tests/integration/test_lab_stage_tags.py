"""Each stage of site.yml runs alone on a deployed lab, without the user adding `preflight` (issue 21, item 4).

One module-scoped lab (FLEETSERVE_LAB=fs-tags: 1 worker + 1 router, its own containers, network, hub and
inventory). The tests run in file order:
1. `fleetserve deploy` (all of site.yml) serves a verified endpoint behind the router, and plans each engine
   host once: neither verify.yml's nor router.yml's own preflight step plans again;
2. `fleetserve deploy --tags STAGE` for STAGE in weights, engine, verify, router: the preflight play (tagged
   `always`) publishes the plan first, the stage's own tasks run, no other stage's, and nothing changes.
"""

from __future__ import annotations

import json

import pytest
from labs import running_lab

from fleetserve import cli, lab

pytestmark = pytest.mark.integration

LAB = "fs-tags"
WORKER = f"{LAB}-lab-1"
ROUTER = f"{LAB}-lab-router-1"
PLAN = "Preflight | Compute the serving plan"
ENDPOINT = "Preflight | Publish where this host serves"
# A task of each stage, the host it runs on, and the task-name prefixes of the other stages.
STAGES = {
    "weights": (WORKER, "Weights | "),
    "engine": (WORKER, "SGLang | "),
    "verify": (WORKER, "Verify | Send the staged requests to the endpoint"),
    "router": (ROUTER, "Router | Check the worker URLs are well formed"),
}
OTHERS = ("Weights | ", "SGLang | ", "Verify | ", "Router | Check", "UV | ", "Git LFS | ", "NVIDIA driver | ")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    with running_lab(LAB, tmp_path_factory.mktemp("state"), "--hosts", "1", "--routers", "1"):
        yield lab.existing_hosts()


def _deploy(capsys, *argv: str) -> tuple[int, dict, list[str]]:
    """`fleetserve deploy --json`: the exit code, the summary and the progress lines (one per task result)."""
    code = cli.main(["deploy", *argv, "--json"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err.splitlines()


def _lines(progress: list[str], host: str, task: str) -> list[str]:
    return [line for line in progress if f" {host} " in line and task in line]


def test_deploy_plans_each_engine_host_once(fleet, capsys):
    assert fleet == [WORKER, ROUTER]
    code, summary, progress = _deploy(capsys)
    assert code == 0, "\n".join(progress[-60:])
    assert {h["host"]: h["failed"] for h in summary["hosts"]} == {WORKER: 0, ROUTER: 0}
    assert len(_lines(progress, WORKER, PLAN)) == 1, "site.yml plans once; verify.yml and router.yml reuse the plan"
    assert _lines(progress, WORKER, ENDPOINT) == [], "router.yml derives no endpoint where a plan exists"
    assert _lines(progress, ROUTER, "Router | Enable and start the service")


@pytest.mark.parametrize("stage", list(STAGES))
def test_one_stage_runs_alone(fleet, capsys, stage):
    code, summary, progress = _deploy(capsys, "--tags", stage)
    assert code == 0, "\n".join(progress[-60:])
    hosts = {h["host"]: h for h in summary["hosts"]}
    assert WORKER in hosts
    assert {h: (r["failed"], r["unreachable"], r["changed"]) for h, r in hosts.items()} == dict.fromkeys(
        hosts, (0, 0, 0)
    ), "\n".join(progress[-60:])
    assert len(_lines(progress, WORKER, PLAN)) == 1, f"--tags {stage} plans first, without --tags preflight"
    host, task = STAGES[stage]
    assert _lines(progress, host, task), f"--tags {stage} runs {task!r}"
    own = task if stage != "router" else "Router | Check"
    strangers = [line for line in progress if any(o in line for o in OTHERS if not own.startswith(o))]
    assert strangers == [], f"--tags {stage} runs no other stage"
