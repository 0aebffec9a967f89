"""vLLM hosts on the local lab behind the SGLang Model Gateway: deploy, an image rollout under load, and a
crashing image rolled back.

Real peers only: two vLLM lab hosts (`fleetserve lab up --vllm 2`: each runs its own dockerd holding the
stand-in vLLM images, scripts/lab/vllm-images.sh), olah serving the tiny lab model, and the real gateway on
a router host. One module-scoped lab (FLEETSERVE_LAB=fs-vllm); the tests run in file order, each from the
state the previous one left:
1. `deploy` runs all of site.yml on the vLLM hosts (Docker, the container toolkit, weights, vllm_docker,
   verify) and the router: the gateway registers both as runtime "vllm" workers and serves through them;
2. `rollout -e vllm_docker_image_tag=<rebuilt tag>` (the same engine, another image ID: a plan that did not
   change, only the image) while a load generator sends streaming and non-streaming chat completions
   through the router: every host moves to the new image, no request fails;
3. a rollout to an image whose engine exits at start: the canary is rolled back to the image it ran and
   rejoins the routers, the rollout stops, the other host is untouched, no request fails.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request

import pytest
from labs import cli_json, ip_of, running_lab
from loadgen import Load

from fleetserve import lab

pytestmark = pytest.mark.integration

LAB = "fs-vllm"
WORKERS = [f"{LAB}-lab-1", f"{LAB}-lab-2"]
ROUTER = f"{LAB}-lab-router-1"
MODEL = "local-org/tiny-minimax-m2"
ORDER = ["--canary", "1", "--batch", "1"]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    state = tmp_path_factory.mktemp("state")
    with running_lab(LAB, state, "--hosts", str(len(WORKERS)), "--vllm", str(len(WORKERS)), "--routers", "1"):
        yield {"url": f"http://{ip_of(ROUTER)}:30000", "key": lab.api_key(), "images": lab.vllm_images()}


def _on(host: str, *argv: str) -> str:
    proc = subprocess.run(["docker", "exec", host, *argv], capture_output=True, text=True, check=False)
    return proc.stdout.strip() or f"error: {proc.stderr.strip()[-300:]}"


def _running_images(fleet) -> dict[str, str]:
    """Per host: the image the running vLLM container was started from, by tag (its ID must match the tag's
    ID in the host's dockerd, so a retag cannot pass for a rollout)."""
    by_id = {}
    found = {}
    for host in WORKERS:
        for ref in fleet["images"].values():
            by_id[(host, _on(host, "docker", "image", "inspect", "-f", "{{.Id}}", ref))] = ref
        state = _on(host, "docker", "inspect", "-f", "{{.State.Running}} {{.Image}}", "vllm")
        running, _, image_id = state.partition(" ")
        found[host] = by_id.get((host, image_id), state) if running == "true" else f"not running: {state}"
    return found


def _workers(fleet) -> list[dict]:
    request = urllib.request.Request(f"{fleet['url']}/workers", headers={"Authorization": f"Bearer {fleet['key']}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["workers"]


def _routed_healthy(fleet) -> list[str]:
    urls = [w["url"] for w in _workers(fleet) if w["is_healthy"]]
    return sorted(h for h in WORKERS if any(f"://{h}:" in url for url in urls))


def _load(fleet) -> Load:
    return Load(fleet["url"], fleet["key"], MODEL, threads=4)


def test_deploy_serves_vllm_hosts_behind_the_router(fleet, capsys):
    assert lab.status()["vllm"] == WORKERS
    code, result = cli_json(capsys, "deploy")
    assert code == 0, result
    assert {h["host"]: h["status"] for h in result["hosts"]} == {h: "changed" for h in [*WORKERS, ROUTER]}
    assert _running_images(fleet) == {h: fleet["images"]["current"] for h in WORKERS}
    # The gateway told the engines apart by their answers (/v1/models, /version): vLLM workers.
    workers = {w["url"]: w for w in _workers(fleet)}
    assert sorted(workers) == [f"http://{h}:8000" for h in WORKERS]
    assert {(w["runtime_type"], w["is_healthy"], w["model_id"]) for w in workers.values()} == {("vllm", True, MODEL)}
    load = _load(fleet)
    assert [load.one(stream) for stream in (False, True, False, True)] == [None] * 4
    for host in WORKERS:  # the key reached the container through its 0600 env file, never argv
        assert "vllm.entrypoints.openai.api_server" in _on(host, "ps", "-eo", "args")
        assert fleet["key"] not in _on(host, "ps", "-eo", "args")


def test_image_rollout_under_load_moves_every_host_without_a_failed_request(fleet, capsys):
    tag = fleet["images"]["rebuilt"].rsplit(":", 1)[1]
    with _load(fleet) as load:
        code, result = cli_json(capsys, "rollout", "-e", f"vllm_docker_image_tag={tag}", *ORDER)
    summary = load.summary()
    assert code == 0, result["rollout"]
    assert {h: o["action"] for h, o in result["rollout"].items()} == {w: "updated" for w in WORKERS}
    assert summary["failed"] == 0, summary
    assert summary["requests"] >= 30 and summary["streamed"] >= 10, summary
    assert _running_images(fleet) == {h: fleet["images"]["rebuilt"] for h in WORKERS}
    for host in WORKERS:
        record = json.loads(_on(host, "cat", "/var/lib/fleetserve/releases/current.json"))
        assert record["image"]["ref"] == fleet["images"]["rebuilt"], record["image"]
    assert _routed_healthy(fleet) == WORKERS
    # The same image again: nothing to do, no host drained.
    code, again = cli_json(capsys, "rollout", "-e", f"vllm_docker_image_tag={tag}", *ORDER)
    assert code == 0 and {h: o["action"] for h, o in again["rollout"].items()} == {w: "unchanged" for w in WORKERS}


def test_crashing_image_is_rolled_back_and_stops_the_rollout(fleet, capsys):
    tag = fleet["images"]["crashing"].rsplit(":", 1)[1]
    with _load(fleet) as load:
        code, result = cli_json(capsys, "rollout", "-e", f"vllm_docker_image_tag={tag}", *ORDER)
    summary = load.summary()
    assert code == 1
    outcomes = result["rollout"]
    canary = outcomes[WORKERS[0]]
    assert canary["action"] == "rolled_back", canary
    assert "RuntimeError: simulated crash during start-up" in canary["msg"] or "exited" in canary["msg"], canary
    assert canary["msg"].endswith("(verified, back in the routers); the rollout stops here."), canary
    assert outcomes[WORKERS[1]]["action"] == "untouched", outcomes[WORKERS[1]]
    assert summary["failed"] == 0, summary
    assert _running_images(fleet) == {h: fleet["images"]["rebuilt"] for h in WORKERS}
    assert _routed_healthy(fleet) == WORKERS
