"""plugins/module_utils/_monitoring.py: targets, port checks and the rule file's shape (promtool runs them in
tests/integration/test_monitoring_generated.py)."""

from __future__ import annotations

import pytest

from ansible_collections.fleetserve.minimax.plugins.module_utils import _monitoring

pytestmark = pytest.mark.unit

GROUPS = {"all": ["a", "b", "r"], "gpu_hosts": ["a", "b"], "m25": ["a"], "m25_multi": ["b"], "routers": ["r"]}


def host(name, **kw):
    return {"name": name, "address": f"{name}.lan", "router": False, "record": {}, "gpu_exporter": True, **kw}


def rec(port=30000, node_rank=0):
    return {
        "engine": "sglang",
        "version": "0.5.23",
        "model": "MiniMax-M2.5",
        "port": port,
        "plan": {"node_rank": node_rank},
    }


def test_smallest_group_is_the_most_specific():
    assert _monitoring.smallest_group("a", GROUPS) == "m25"
    assert _monitoring.smallest_group("zz", GROUPS) == "ungrouped"


def test_only_node_zero_of_an_engine_is_scraped_and_every_gpu_host_is():
    fleet = [
        host("a", record=rec()),
        host("b", record=rec(node_rank=1)),
        host("r", router=True, gpu_exporter=False, router_worker_group="gpu_hosts"),
    ]
    t = _monitoring.targets(fleet, GROUPS)
    assert [g["targets"] for g in t["engines"]] == [["a.lan:30000"]]
    assert t["engines"][0]["labels"]["router"] == "r" and t["engines"][0]["labels"]["worker"] == "http://a.lan:30000"
    assert [g["targets"] for g in t["gpus"]] == [["a.lan:9400"], ["b.lan:9400"]]
    assert [g["targets"] for g in t["routers"]] == [["r.lan:29000"]]


def test_a_router_lists_only_hosts_of_its_worker_group():
    fleet = [host("a", record=rec()), host("r", router=True, gpu_exporter=False, router_worker_group="m25_multi")]
    assert _monitoring.targets(fleet, GROUPS)["engines"][0]["labels"]["router"] == ""


@pytest.mark.parametrize(
    "h, words",
    [
        (host("a", record=rec(9400)), ["dcgm_exporter_port 9400", "preflight_port"]),
        (host("a", preflight_port=9400), ["dcgm_exporter_port 9400", "preflight_port"]),
        (
            host("r", router=True, gpu_exporter=False, router_port=29000),
            ["router_prometheus_port 29000", "router_port"],
        ),
    ],
)
def test_a_port_used_twice_is_refused_naming_both_variables(h, words):
    with pytest.raises(_monitoring.MonitoringError) as err:
        _monitoring.targets([h], GROUPS)
    for word in words:
        assert word in str(err.value)
    assert "to a free port" in str(err.value)


def test_every_alert_is_labelled_and_described():
    rules = _monitoring.rules({"out_of_router_for": "45m"})
    alerts = [r for g in rules["groups"] for r in g["rules"] if "alert" in r]
    assert {a["labels"]["severity"] for a in alerts} <= {"warning", "critical"}
    assert all(a["annotations"]["summary"] and a["annotations"]["description"] for a in alerts)
    out = next(a for a in alerts if a["alert"] == "FleetserveHostOutOfRouters")
    assert out["for"] == "45m"
    # The real engines' and exporters' metric names.
    text = str(rules)
    for name in (
        "sglang:num_running_reqs",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
        "smg_worker_health",
    ):
        assert name in text
    for name in ("DCGM_FI_DEV_XID_ERRORS", "DCGM_FI_DEV_GPU_TEMP"):
        assert name in text


SGLANG_METRICS = """# HELP sglang:num_running_reqs The number of running requests.
# TYPE sglang:num_running_reqs gauge
sglang:num_running_reqs{model_name="m",dp_rank="0"} 3.0
sglang:num_running_reqs{model_name="m",dp_rank="1"} 2.0
sglang:num_queue_reqs{model_name="m",dp_rank="0"} 1.0
sglang:num_queue_reqs{model_name="m",dp_rank="1"} 0.0
sglang:token_usage{model_name="m",dp_rank="0"} 0.25
sglang:token_usage{model_name="m",dp_rank="1"} 0.5
sglang:num_running_reqs_other 9
"""


def test_engine_load_sums_requests_and_takes_the_fullest_kv_cache():
    assert _monitoring.engine_load("sglang", SGLANG_METRICS) == {"running": 5, "waiting": 1, "kv_usage": 0.5}


def test_engine_load_of_the_real_vllm_metrics(fixtures_dir):
    import json

    # The gauge lines a real vLLM 0.26.0 served (tests/fixtures/real-vllm-0.26.0, answers.metrics_selected).
    recordings = json.loads((fixtures_dir / "real-vllm-0.26.0" / "recordings.json").read_text())
    text = "\n".join(recordings["answers"]["metrics_selected"]) + "\n"
    assert _monitoring.engine_load("vllm", text) == {"running": 0, "waiting": 0, "kv_usage": 0.0}
    assert _monitoring.engine_load("vllm", text.replace("} 0.0", "} 2.0", 1)) == {
        "running": 2,
        "waiting": 0,
        "kv_usage": 0.0,
    }
    # The load names the collection reads are among the names that vLLM serves.
    names = set(recordings["answers"]["metrics_names"])
    assert set(_monitoring.LOAD_GAUGES["vllm"].values()) <= names


def test_engine_load_without_gauges_is_none():
    assert _monitoring.engine_load("sglang", "") is None
    assert _monitoring.engine_load("sglang", "# nothing\nother 1\n") is None
    assert _monitoring.engine_load("sglang", "sglang:num_running_reqs 2\n") == {
        "running": 2,
        "waiting": None,
        "kv_usage": None,
    }


def test_the_rules_read_vllm_metrics_a_real_vllm_serves(fixtures_dir):
    import json
    import re

    names = set(
        json.loads((fixtures_dir / "real-vllm-0.26.0" / "recordings.json").read_text())["answers"]["metrics_names"]
    )
    used = set(re.findall(r"vllm:[a-z_]+", str(_monitoring.rules())))
    assert used and {re.sub(r"_bucket$", "", name) for name in used} <= names
