"""playbooks/monitoring.yml on a small fleet (local connections), its output checked by Debian's promtool.

The fleet: an SGLang host and a vLLM host with release records, a host without one (nothing deployed yet),
a router and a monitoring host. The playbook writes file_sd targets, rules, prometheus.yml and the Grafana
dashboard; promtool checks the config and the rules and runs tests/integration/monitoring/alerts_test.yml,
in which every alert must have a firing and a silent case. Bad input (a port used twice on a host, no
monitoring host) is refused before anything is written. promtool comes from scripts/testenv/prometheus.sh.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ALERT_TESTS = ROOT / "tests" / "integration" / "monitoring" / "alerts_test.yml"


@pytest.fixture(scope="module")
def prometheus_bin():
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "testenv" / "prometheus.sh")], capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, f"scripts/testenv/prometheus.sh failed:\n{proc.stderr[-3000:]}"
    return Path(proc.stdout.strip().splitlines()[-1])


def record(engine, version, model, port, node_rank=0):
    return {
        "schema": 1,
        "engine": engine,
        "version": version,
        "model": model,
        "port": port,
        "service": engine,
        "plan": {"engine": engine, "engine_version": version, "model": model, "port": port, "node_rank": node_rank},
    }


def fleet(tmp_path, promtool, out, **host_vars):
    """Write the release records and an inventory; returns its path. host_vars: extra vars per host."""
    records = {
        "sg-1": record("sglang", "0.5.23", "MiniMax-M2.5", 30000),
        "vl-1": record("vllm", "0.33.0", "MiniMax-M1-80k", 8000),
    }
    hosts = {}
    for i, name in enumerate(["sg-1", "vl-1", "new-1"]):
        rel = tmp_path / "releases" / name
        rel.mkdir(parents=True, exist_ok=True)
        if name in records:
            (rel / "current.json").write_text(json.dumps(records[name]))
        hosts[name] = {"ansible_host": f"10.0.0.{i + 1}", "fleetserve_release_dir": str(rel)}
    hosts["vl-1"]["preflight_port"] = 8000
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inventory = {
        "all": {
            "vars": local,
            "children": {
                "sglang_hosts": {"hosts": {"sg-1": hosts["sg-1"], "new-1": hosts["new-1"]}},
                "vllm_hosts": {"hosts": {"vl-1": hosts["vl-1"]}},
                "routers": {"hosts": {"router-1": {"ansible_host": "10.0.0.9"}}},
                "monitoring": {
                    "hosts": {"prom-1": {"monitoring_config_dir": str(out), "monitoring_promtool": str(promtool)}}
                },
            },
        }
    }
    for name, extra in host_vars.items():
        for group in inventory["all"]["children"].values():
            if name in group["hosts"]:
                group["hosts"][name] = {**(group["hosts"][name] or {}), **extra}
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(inventory))
    return path


@pytest.fixture(scope="module")
def generated(prometheus_bin, tmp_path_factory, ansible_env_module):
    tmp = tmp_path_factory.mktemp("monitoring")
    out = tmp / "etc"
    inventory = fleet(tmp, prometheus_bin / "promtool", out)
    cmd = [
        str(Path(sys.executable).with_name("ansible-playbook")),
        "-i",
        str(inventory),
        str(ROOT / "playbooks" / "monitoring.yml"),
    ]
    first = subprocess.run(cmd, env=ansible_env_module, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
    second = subprocess.run(cmd, env=ansible_env_module, capture_output=True, text=True, timeout=600)
    return {"out": out, "first": first, "second": second, "inventory": inventory, "cmd": cmd, "tmp": tmp}


@pytest.fixture(scope="module")
def ansible_env_module(tmp_path_factory):
    """tests/conftest.py's ansible_env, for the module's one playbook run (conftest already exported the collection)."""
    import os

    tmp = tmp_path_factory.mktemp("ansible")
    return dict(
        os.environ,
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_LOCAL_TEMP=str(tmp / "local"),
        ANSIBLE_REMOTE_TEMP=str(tmp / "remote"),
        ANSIBLE_RETRY_FILES_ENABLED="0",
    )


def test_targets_carry_the_fleet_labels(generated):
    sd = generated["out"] / "file_sd"
    engines = json.loads((sd / "engines.json").read_text())
    routers = json.loads((sd / "routers.json").read_text())
    gpus = json.loads((sd / "gpus.json").read_text())
    assert engines == [
        {
            "targets": ["10.0.0.1:30000"],
            "labels": {
                "host": "sg-1",
                "group": "sglang_hosts",
                "model": "MiniMax-M2.5",
                "engine": "sglang",
                "version": "0.5.23",
                "router": "router-1",
                "worker": "http://10.0.0.1:30000",
            },
        },
        {
            "targets": ["10.0.0.2:8000"],
            "labels": {
                "host": "vl-1",
                "group": "vllm_hosts",
                "model": "MiniMax-M1-80k",
                "engine": "vllm",
                "version": "0.33.0",
                "router": "router-1",
                "worker": "http://10.0.0.2:8000",
            },
        },
    ]
    assert routers == [
        {
            "targets": ["10.0.0.9:29000"],
            "labels": {
                "host": "router-1",
                "group": "routers",
                "model": "",
                "engine": "",
                "version": "",
                "router": "router-1",
            },
        }
    ]
    # Every engine host has a GPU exporter target, deployed or not; the router none.
    assert [g["targets"] for g in gpus] == [["10.0.0.3:9400"], ["10.0.0.1:9400"], ["10.0.0.2:9400"]]


def test_the_second_run_changes_nothing(generated):
    assert re.search(r"prom-1\s*:\s*ok=\d+\s+changed=0\s", generated["second"].stdout), generated["second"].stdout[
        -2000:
    ]


def test_promtool_accepts_the_config_and_the_rules(generated, prometheus_bin):
    out = generated["out"]
    for args in (
        ["check", "config", str(out / "prometheus.yml")],
        ["check", "rules", str(out / "rules" / "fleetserve.rules.yml")],
    ):
        proc = subprocess.run([str(prometheus_bin / "promtool"), *args], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    config = yaml.safe_load((out / "prometheus.yml").read_text())
    assert config["rule_files"] == [str(out / "rules" / "fleetserve.rules.yml")]
    assert [job["file_sd_configs"][0]["files"] for job in config["scrape_configs"]] == [
        [str(out / "file_sd" / f"{kind}.json")] for kind in ("engines", "routers", "gpus")
    ]


def alerts_of(rules_file: Path) -> list:
    groups = yaml.safe_load(rules_file.read_text())["groups"]
    return [rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule]


def test_every_alert_has_a_firing_and_a_silent_case(generated):
    alerts = alerts_of(generated["out"] / "rules" / "fleetserve.rules.yml")
    assert len(alerts) >= 10
    cases = [case for test in yaml.safe_load(ALERT_TESTS.read_text())["tests"] for case in test["alert_rule_test"]]
    firing = {c["alertname"] for c in cases if c.get("exp_alerts")}
    silent = {c["alertname"] for c in cases if not c.get("exp_alerts")}
    assert sorted(set(alerts) - firing) == [], "alerts without a case that makes them fire"
    assert sorted(set(alerts) - silent) == [], "alerts without a case where they stay silent"
    assert sorted((firing | silent) - set(alerts)) == [], "cases for alerts the rules do not have"


def test_promtool_runs_the_alert_cases(generated, prometheus_bin, tmp_path):
    rules = generated["out"] / "rules" / "fleetserve.rules.yml"
    tests = tmp_path / "alerts_test.yml"
    tests.write_text(ALERT_TESTS.read_text().replace("rule_files: [RULES]", f"rule_files: [{rules}]"))
    proc = subprocess.run(
        [str(prometheus_bin / "promtool"), "test", "rules", str(tests)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-6000:]
    assert "SUCCESS" in proc.stdout + proc.stderr


def test_the_dashboard_reads_only_metrics_that_exist(generated):
    dashboard = json.loads((generated["out"] / "grafana" / "fleetserve-fleet.json").read_text())
    rules = yaml.safe_load((generated["out"] / "rules" / "fleetserve.rules.yml").read_text())
    recorded = {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    names = {n for e in exprs for n in re.findall(r"([A-Za-z_:][A-Za-z0-9_:]*)\{", e)}
    # Recording rules, or DCGM exporter fields (the exporter's default counters).
    assert names - recorded <= {"DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_GPU_TEMP"}
    titles = " ".join(p["title"] for p in dashboard["panels"])
    for figure in ("Running", "Waiting", "first token", "tokens/s", "KV", "GPU utilisation", "GPU memory"):
        assert figure in titles


def test_a_port_used_twice_on_a_host_is_refused_before_anything_is_written(
    prometheus_bin, tmp_path, ansible_env_module
):
    out = tmp_path / "etc"
    inventory = fleet(tmp_path, prometheus_bin / "promtool", out, **{"sg-1": {"dcgm_exporter_port": 30000}})
    cmd = [
        str(Path(sys.executable).with_name("ansible-playbook")),
        "-i",
        str(inventory),
        str(ROOT / "playbooks" / "monitoring.yml"),
    ]
    proc = subprocess.run(cmd, env=ansible_env_module, capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0
    assert "sg-1: dcgm_exporter_port 30000 (the GPU exporter) is also its preflight_port" in proc.stdout, proc.stdout[
        -3000:
    ]
    assert "set dcgm_exporter_port or preflight_port to a free port" in proc.stdout
    assert not out.exists()


def test_a_fleet_without_a_monitoring_host_is_refused(prometheus_bin, tmp_path, ansible_env_module):
    inventory = fleet(tmp_path, prometheus_bin / "promtool", tmp_path / "etc")
    data = yaml.safe_load(inventory.read_text())
    del data["all"]["children"]["monitoring"]
    inventory.write_text(yaml.safe_dump(data))
    cmd = [
        str(Path(sys.executable).with_name("ansible-playbook")),
        "-i",
        str(inventory),
        str(ROOT / "playbooks" / "monitoring.yml"),
    ]
    proc = subprocess.run(cmd, env=ansible_env_module, capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0
    assert "The inventory has no host in group 'monitoring'" in proc.stdout, proc.stdout[-3000:]
