"""A real Prometheus (Debian's package) scraping a deployed lab through what playbooks/monitoring.yml wrote.

One module-scoped lab (FLEETSERVE_LAB=fs-mon: 1 worker + 1 router, its own containers, network, hub and
inventory). The tests run in file order:
1. `fleetserve deploy`, then `fleetserve status` shows the worker's load from the engine's /metrics; the deploy
   also ran the dcgm_exporter role on the worker (inventories/lab/group_vars/lab_workers/dcgm.yml): DCGM and
   the exporter from the lab's stand-in NVIDIA packages, held at the role's pair, their services running;
2. playbooks/monitoring.yml, with the lab inventory plus a monitoring host (this machine, short intervals),
   writes the targets, rules and prometheus.yml; Prometheus runs in a container on the lab network (the
   targets are the lab's container names): every target (engine, router, the GPU exporter the role
   installed) is `up`, and the exporter's DCGM series reach Prometheus;
3. the engine is stopped: FleetserveEngineDown goes pending.
Run under the docker lock: flock /tmp/fleetserve-docker.lock pytest tests/integration/test_lab_monitoring.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from labs import running_lab

from fleetserve import cli, lab, paths

pytestmark = pytest.mark.integration

LAB = "fs-mon"
WORKER = f"{LAB}-lab-1"
ROUTER = f"{LAB}-lab-router-1"
PROMETHEUS = f"{LAB}-prometheus"
ROOT = Path(__file__).resolve().parents[2]


def docker(*args, check=True):
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120)
    assert not check or proc.returncode == 0, f"docker {' '.join(args[:3])}: {proc.stderr[-1500:]}"
    return proc


@pytest.fixture(scope="module")
def prometheus_bin():
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "testenv" / "prometheus.sh")], capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, f"scripts/testenv/prometheus.sh failed:\n{proc.stderr[-3000:]}"
    return Path(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    with running_lab(LAB, tmp_path_factory.mktemp("state"), "--hosts", "1", "--routers", "1"):
        try:
            yield lab.existing_hosts()
        finally:
            docker("rm", "-f", PROMETHEUS, check=False)


def test_deploy_and_status_shows_the_load(fleet, capsys):
    assert fleet == [WORKER, ROUTER]
    assert cli.main(["deploy"]) == 0
    capsys.readouterr()
    assert cli.main(["status", "--json"]) == 0
    reports = json.loads(capsys.readouterr().out)["status"]
    # The engine simulator's gauges, read from /metrics (SGLang's --enable-metrics comes from the plan).
    assert reports[WORKER]["load"] == {"running": 0, "waiting": 0, "kv_usage": 0.0}
    assert "load" not in reports[ROUTER]


def test_deploy_installed_the_gpu_exporter_through_its_role(fleet):
    # The role's pinned pair (dcgm_exporter_version 4.6.0-4.8.3; the replayed H200 reports CUDA 13), held.
    held = docker("exec", WORKER, "dpkg-query", "-W", "-f", "${Package} ${Version} ${Status}\\n").stdout
    packages = {line.split()[0]: line.split()[1:] for line in held.splitlines() if "datacenter-gpu-manager" in line}
    assert {name: fields[0] for name, fields in packages.items()} == {
        "datacenter-gpu-manager-4-core": "1:4.6.0-1",
        "datacenter-gpu-manager-4-cuda13": "1:4.6.0-1",
        "datacenter-gpu-manager-exporter": "4.8.3-1",
    }
    assert all(fields[1] == "hold" for fields in packages.values()), held
    for unit in ("nvidia-dcgm.service", "nvidia-dcgm-exporter.service"):
        assert docker("exec", WORKER, "systemctl", "is-active", unit, check=False).stdout.strip() == "active", unit
    # The router runs no exporter.
    assert docker("exec", ROUTER, "systemctl", "cat", "nvidia-dcgm-exporter.service", check=False).returncode != 0


@pytest.fixture(scope="module")
def prometheus(fleet, prometheus_bin, tmp_path_factory):
    """The monitoring playbook's files and Prometheus on the lab network (the GPU exporter is the deploy's).
    Returns the URL of its API on this machine."""
    tmp = tmp_path_factory.mktemp("monitoring")
    config_dir = tmp / "etc"
    extra = tmp / "monitoring.yml"
    extra.write_text(
        yaml.safe_dump(
            {
                "monitoring": {
                    "hosts": {
                        "prom-local": {
                            "ansible_connection": "local",
                            "ansible_python_interpreter": sys.executable,
                            "monitoring_config_dir": str(config_dir),
                            "monitoring_promtool": str(prometheus_bin / "promtool"),
                            # The lab's settings: fast scrapes and short `for:` so the test sees alerts in seconds.
                            "monitoring_scrape_interval": "2s",
                            "monitoring_evaluation_interval": "2s",
                            "monitoring_engine_down_for": "5m",
                        }
                    }
                }
            }
        )
    )
    cmd = [
        str(Path(sys.executable).with_name("ansible-playbook")),
        "-i",
        str(paths.lab_inventory()),
        "-i",
        str(extra),
        str(ROOT / "playbooks" / "monitoring.yml"),
    ]
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]

    docker("rm", "-f", PROMETHEUS, check=False)
    docker(
        "run", "-d", "--name", PROMETHEUS, "--network", lab.network_name(), "--label", f"{lab.LABEL}={lab.lab_name()}",
        "-v", f"{prometheus_bin}:/opt/prometheus:ro", "-v", f"{config_dir}:{config_dir}:ro", "-p", "127.0.0.1::9090",
        "--entrypoint", "/opt/prometheus/prometheus", lab.IMAGE,
        f"--config.file={config_dir}/prometheus.yml", "--storage.tsdb.path=/tmp/tsdb", "--web.listen-address=:9090",
    )  # fmt: skip
    port = docker("port", PROMETHEUS, "9090/tcp").stdout.strip().splitlines()[0].rsplit(":", 1)[1]
    return f"http://127.0.0.1:{port}"


def api(base: str, path: str) -> dict:
    with urllib.request.urlopen(f"{base}{path}", timeout=5) as response:
        return json.loads(response.read())["data"]


def wait_for(what: str, probe, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = probe()
            if last:
                return last
        except OSError as exc:  # Prometheus still starting
            last = exc
        time.sleep(1)
    pytest.fail(f"{what} within {timeout:.0f}s; last: {last}")


def test_every_target_of_the_lab_is_up(prometheus):
    def all_up():
        targets = api(prometheus, "/api/v1/targets")["activeTargets"]
        health = {(t["labels"]["job"], t["labels"]["host"]): t["health"] for t in targets}
        return health if set(health.values()) == {"up"} and len(health) == 3 else None

    health = wait_for("every target up", all_up)
    assert set(health) == {
        ("fleetserve-engines", WORKER),
        ("fleetserve-routers", ROUTER),
        ("fleetserve-gpus", WORKER),
    }
    labels = next(
        t["labels"]
        for t in api(prometheus, "/api/v1/targets")["activeTargets"]
        if t["labels"]["job"] == "fleetserve-engines"
    )
    assert (labels["engine"], labels["model"], labels["router"]) == ("sglang", "fleetserve-lab-tiny-m2", ROUTER)
    assert labels["worker"] == f"http://{WORKER}:{labels['instance'].rsplit(':', 1)[1]}"
    # The recording rules see the engine's gauges, and the router counts the worker healthy.
    wait_for(
        "fleetserve:running_requests recorded",
        lambda: api(prometheus, "/api/v1/query?query=fleetserve:running_requests")["result"],
    )
    healthy = wait_for(
        "smg_worker_health of the worker",
        lambda: api(prometheus, "/api/v1/query?query=smg_worker_health")["result"],
    )
    assert [(s["metric"]["worker"], s["value"][1]) for s in healthy] == [(labels["worker"], "1")]
    # The GPU target is the exporter the role installed: the worker's one replayed H200, with the counters
    # the role wrote (dcgm_exporter_counters), labelled with the lab host.
    gpus = wait_for(
        "DCGM_FI_DEV_FB_USED of the worker's GPU",
        lambda: api(prometheus, "/api/v1/query?query=DCGM_FI_DEV_FB_USED")["result"],
    )
    assert [(s["metric"]["job"], s["metric"]["host"], s["metric"]["gpu"]) for s in gpus] == [
        ("fleetserve-gpus", WORKER, "0")
    ]
    assert gpus[0]["metric"]["hostname"] == WORKER


def test_a_stopped_engine_makes_its_alert_go_pending(prometheus):
    record = json.loads(docker("exec", WORKER, "cat", "/var/lib/fleetserve/releases/current.json").stdout)
    docker("exec", WORKER, "systemctl", "stop", record["service"])

    def pending():
        alerts = api(prometheus, "/api/v1/alerts")["alerts"]
        return [a for a in alerts if a["labels"]["alertname"] == "FleetserveEngineDown" and a["state"] == "pending"]

    alerts = wait_for("FleetserveEngineDown pending", pending, timeout=45)
    assert alerts[0]["labels"]["host"] == WORKER
    docker("exec", WORKER, "systemctl", "start", record["service"])
