"""`fleetserve plan -i <the sample inventory>`: the real CLI, the real preflight play, every GPU host of the sample.

The sample directory is copied as it is, plus one inventory file that makes its hosts local (each
replaying a GPU recording through its own nvidia-smi wrapper), so group_vars precedence, the multi-node
group's hostvars plumbing and the CLI table all run for real. The recordings have 1 or 2 GPUs; a host of
8 is the recording's GPU element repeated with fresh UUIDs and bus ids (H800 and H20, never recorded,
take the H100 recording with the name and memory nvidia-smi reports on those parts).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import socket
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader

pytestmark = pytest.mark.integration

# group -> (recording, GPUs per host, (name, MiB) or None)
GPUS = {
    "m1_h800": ("h100-x1", 8, ("NVIDIA H800", 81559)),
    "m1_h20": ("h100-x1", 8, ("NVIDIA H20", 97871)),
    "m25_4x96": ("h100-x1", 4, ("NVIDIA H20", 97871)),
    "m25_8x144": ("h200-x2", 8, None),
    "m25_2x8xh100": ("h100-x1", 8, None),
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def gpu_variant(source: Path, target: Path, count: int, override) -> Path:
    """A recording of `count` GPUs like the first one of `source` (XML and --query-gpu CSV kept consistent)."""
    target.mkdir(parents=True)
    root = ET.fromstring((source / "nvidia-smi-q.xml").read_text())
    template = root.findall("gpu")[0]
    for gpu in root.findall("gpu"):
        root.remove(gpu)
    row = (source / "query-gpu.csv").read_text().splitlines()[0].split(", ")
    rows = []
    for index in range(count):
        gpu = copy.deepcopy(template)
        uuid, bus = f"GPU-5a3e0000-0000-4000-8000-{index:012d}", f"00000000:{0x18 + index:02X}:00.0"
        gpu.set("id", bus)
        gpu.find("uuid").text = uuid
        gpu.find("pci/pci_bus_id").text = bus
        if override:
            gpu.find("product_name").text = override[0]
            gpu.find("fb_memory_usage/total").text = f"{override[1]} MiB"
        root.append(gpu)
        name, mib = override or (row[1], row[3])
        rows.append(", ".join([str(index), name, uuid, str(mib), *row[4:8], bus, *row[9:]]))
    root.find("attached_gpus").text = str(count)
    (target / "nvidia-smi-q.xml").write_text(ET.tostring(root, encoding="unicode"))
    (target / "query-gpu.csv").write_text("\n".join(rows) + "\n")
    for name in ("topo.txt", "nvlink.txt"):
        shutil.copy(source / name, target / name)
    return target


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory, collection_root):
    fixtures = collection_root / "tests" / "fixtures"
    tmp = tmp_path_factory.mktemp("sample")
    inventory = tmp / "inventory"
    shutil.copytree(collection_root / "inventories" / "sample", inventory)
    models = tmp / "models"
    for model, size in (("MiniMax-M1-80k", 1004 * 10**9), ("MiniMax-M2.5", 254 * 10**9)):
        (models / model).mkdir(parents=True)
        with open(models / model / "model-00001.safetensors", "wb") as handle:
            handle.truncate(size)  # sparse: weights + 10% margin count as present, the disk check passes
    dist_port = free_port()
    sample = InventoryManager(loader=DataLoader(), sources=[str(inventory)])
    local_hosts = {}
    for group, (recording, count, override) in GPUS.items():
        gpu_dir = gpu_variant(fixtures / "nvidia-smi" / recording, tmp / "gpus" / group, count, override)
        wrapper = tmp / f"nvidia-smi-{group}"
        wrapper.write_text(
            f"#!/bin/sh\nFLEETSERVE_FAKE_GPU_DIR={gpu_dir} exec {fixtures / 'bin' / 'nvidia-smi'} \"$@\"\n"
        )
        wrapper.chmod(0o755)
        for host in sample.groups[group].get_hosts():
            local_hosts[str(host.name)] = {
                "ansible_connection": "local",
                "ansible_become": False,
                "ansible_python_interpreter": sys.executable,
                "preflight_nvidia_smi": str(wrapper),
                "preflight_nvswitch_proc_dir": str(tmp / "no-nvswitch"),
                "preflight_port": free_port(),
                "preflight_dist_init_port": dist_port,
                "fleetserve_models_dir": str(models),
            }
    for name in ("h100-01.gpu.example.internal", "h100-02.gpu.example.internal"):
        local_hosts[name]["preflight_node_address"] = "127.0.0.1"  # node 0's address must resolve here
    # Loaded after hosts.yml (directory sources load in name order): host vars here win.
    (inventory / "zz-local.yml").write_text(yaml.safe_dump({"all": {"hosts": local_hosts}}))
    env = dict(
        os.environ,
        FLEETSERVE_STATE_DIR=str(tmp / "state"),
        FLEETSERVE_HOME=str(collection_root),
        PYTHONPATH=str(collection_root / "src"),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    runs = {}
    # The table only for the two-node group: the full fleet's play runs once, in --json.
    for mode, limit in (("--json", "gpu_hosts"), ("--table", "m25_2x8xh100")):
        runs[mode] = subprocess.run(
            [sys.executable, "-m", "fleetserve", "plan", "-i", str(inventory), "-l", limit]
            + (["--json"] if mode == "--json" else []),
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    return runs, sorted(local_hosts)


def test_every_sample_host_gets_its_plan(sample_run):
    runs, hosts = sample_run
    done = runs["--json"]
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["refusals"] == {}
    assert sorted(report["plans"]) == hosts and len(hosts) == 10
    layout = {
        h: (p["model"], p["engine"], p["tensor_parallel_size"], p["expert_parallel_size"], p["max_context"])
        for h, p in report["plans"].items()
    }
    assert layout["h800-01.gpu.example.internal"] == ("MiniMax-M1-80k", "vllm", 8, 1, 2_000_000)
    assert layout["h20-01.gpu.example.internal"] == ("MiniMax-M1-80k", "vllm", 8, 1, 5_000_000)
    assert layout["h20x4-01.gpu.example.internal"] == ("MiniMax-M2.5", "sglang", 4, 1, 196608)
    assert layout["h200-04.gpu.example.internal"] == ("MiniMax-M2.5", "sglang", 8, 8, 196608)
    assert {h: p["gpu_count"] for h, p in report["plans"].items() if h.startswith("h200")} == {
        f"h200-0{i}.gpu.example.internal": 8 for i in range(1, 5)
    }
    assert all(h["changed"] == 0 for h in report["hosts"])


def test_the_two_node_group_plans_one_engine(sample_run):
    runs, _ = sample_run
    plans = json.loads(runs["--json"].stdout)["plans"]
    nodes = [plans[f"h100-0{i}.gpu.example.internal"] for i in (1, 2)]
    dist = nodes[0]["dist_init_addr"]
    assert dist.startswith("127.0.0.1:")
    for rank, plan in enumerate(nodes):
        assert (plan["nnodes"], plan["node_rank"], plan["dist_init_addr"], plan["node_group"]) == (
            2,
            rank,
            dist,
            "m25_2x8xh100",
        )
        assert (plan["tensor_parallel_size"], plan["expert_parallel_size"], plan["gpu_count"]) == (16, 16, 8)
        assert f"--nnodes 2 --node-rank {rank} --dist-init-addr {dist}" in " ".join(plan["engine_args"])
    single = [p for h, p in plans.items() if not h.startswith("h100")]
    assert {(p["nnodes"], p["node_rank"], p["dist_init_addr"]) for p in single} == {(1, 0, None)}


def test_table_shows_node_ranks(sample_run):
    runs, _ = sample_run
    done = runs["--table"]
    assert done.returncode == 0, done.stderr[-3000:]
    assert "serving plans (2 of 2 hosts)" in done.stdout
    rows = [line for line in done.stdout.splitlines() if line.startswith("│ h100-0")]
    assert len(rows) == 2
    for rank, row in enumerate(rows):
        cells = [c.strip() for c in row.split("│")[1:-1]]
        assert cells[4:6] == ["16/16/1", f"{rank}/2"], cells


def test_unreachable_hosts_are_not_called_refused():
    """The sample's own hosts do not exist: `fleetserve plan` must say unreachable, not refused (another fix)."""
    import io

    from fleetserve import runner
    from fleetserve.commands import plan

    hosts = {
        "h100-01": runner.HostResult(name="h100-01", unreachable=1),
        "h100-02": runner.HostResult(name="h100-02", failed=1),
    }
    result = runner.RunResult("preflight.yml", "failed", 4, hosts, [], "/tmp/artifacts", 1.0)
    out = io.StringIO()
    plan.print_plans({}, {"h100-01": "Could not resolve hostname", "h100-02": "does not fit"}, result, out)
    text = out.getvalue()
    assert "h100-01: unreachable: Could not resolve hostname" in text
    assert "h100-02: refused: does not fit" in text
