# Copyright: fleetserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a monitoring system needs to know about the fleet, from the inventory and the release records.

Pure functions behind the filter fleetserve.minimax.monitoring (roles/monitoring):

- ``targets``: Prometheus file-based service discovery groups (engines, routers, GPU exporters), each target
  labelled by host, group, model, engine, version and router; refuses a port used twice on one host;
- ``prometheus_config``: the scrape configs reading those files, and the rule file;
- ``rules``: recording rules (one name per figure whichever engine serves) and the fleet's alerts;
- ``dashboard``: a Grafana dashboard over the recording rules and the DCGM exporter's metrics.

Metric names are the real ones: SGLang's ``sglang:*`` (served on the engine port with --enable-metrics, which
every plan carries), vLLM's ``vllm:*`` (always on the engine port), the SGLang Model Gateway's ``smg_*`` (its
own --prometheus-port) and NVIDIA DCGM Exporter's ``DCGM_FI_*``. None of these endpoints asks for the API key.
"""

from __future__ import annotations

from ansible_collections.fleetserve.minimax.plugins.module_utils import _plan

JOBS = {"engines": "fleetserve-engines", "routers": "fleetserve-routers", "gpus": "fleetserve-gpus"}
ROUTER_PORT = 30000  # roles/router defaults: router_port
ROUTER_PROMETHEUS_PORT = 29000  # roles/router defaults: router_prometheus_port
DCGM_EXPORTER_PORT = 9400  # the DCGM exporter role's default (dcgm_exporter_port)

DEFAULTS = {
    "config_dir": "/etc/prometheus/fleetserve",
    "scrape_interval": "15s",
    "evaluation_interval": "15s",
    "engine_down_for": "2m",
    "engine_restarts": 2,
    "engine_restart_window": "30m",
    "router_no_worker_for": "1m",
    "out_of_router_for": "30m",
    "kv_usage_ratio": 0.95,
    "kv_usage_for": "10m",
    "waiting_requests": 0,
    "waiting_for": "5m",
    "gpu_temp_celsius": 85,
    "gpu_temp_for": "5m",
    "xid_window": "15m",
    "gpu_missing_lookback": "1d",
    "gpu_missing_for": "5m",
}


class MonitoringError(ValueError):
    """The fleet cannot be monitored as configured; the message names the fix."""


def settings_with_defaults(settings: dict | None) -> dict:
    merged = dict(DEFAULTS)
    merged.update({k: v for k, v in (settings or {}).items() if v is not None})
    return merged


def smallest_group(name: str, groups: dict) -> str:
    """The most specific inventory group of a host: the one with the fewest hosts (ties by name), never `all`."""
    mine = [
        (len(hosts), group) for group, hosts in groups.items() if group not in ("all", "ungrouped") and name in hosts
    ]
    return min(mine)[1] if mine else "ungrouped"


def _port_owners(host: dict) -> list:
    """(port, the variable that sets it, what listens there) for everything a host serves."""
    owners = []
    if host.get("engine_port"):
        owners.append((int(host["engine_port"]), "preflight_port", "the engine (and its /metrics)"))
    if host.get("router"):
        owners.append((int(host.get("router_port") or ROUTER_PORT), "router_port", "the router"))
        owners.append(
            (
                int(host.get("router_prometheus_port") or ROUTER_PROMETHEUS_PORT),
                "router_prometheus_port",
                "the router's metrics",
            )
        )
    if host.get("gpu_exporter"):
        owners.append(
            (int(host.get("dcgm_exporter_port") or DCGM_EXPORTER_PORT), "dcgm_exporter_port", "the GPU exporter")
        )
    return owners


def check_ports(fleet: list) -> None:
    """Refuse a host where two services (engine, router, router metrics, GPU exporter) would share a port."""
    problems = []
    for host in fleet:
        seen = {}
        for port, variable, what in _port_owners(host):
            if port in seen:
                other_variable, other_what = seen[port]
                problems.append(
                    f"{host['name']}: {variable} {port} ({what}) is also its {other_variable} ({other_what}); "
                    f"set {variable} or {other_variable} to a free port"
                )
            else:
                seen[port] = (variable, what)
    if problems:
        raise MonitoringError("Metrics ports collide, nothing was written: " + "; ".join(problems) + ".")


def engine_port(host: dict) -> int | None:
    """The port the host's engine serves on: its release record's, else the plan's (preflight_port or the default)."""
    record = host.get("record") or {}
    if record.get("port"):
        return int(record["port"])
    if host.get("router"):
        return None
    return _plan.plan_port(host.get("preflight_port"))


def _worker_url(host: dict, port: int) -> str:
    # The router role's rule: router_worker_address, else ansible_host, else the inventory name.
    return f"{host.get('scheme') or 'http'}://{host['address']}:{port}"


def targets(fleet: list, groups: dict) -> dict:
    """{engines, routers, gpus}: file_sd target groups for the fleet.

    ``fleet`` has one dict per host: name, address (as the router reaches it), router (bool), record (the release
    record, {} without one), preflight_port, router_port, router_prometheus_port, router_worker_group,
    gpu_exporter (bool), dcgm_exporter_port. ``groups`` is the inventory's group -> hosts mapping."""
    fleet = [dict(h, engine_port=engine_port(h)) for h in fleet]
    check_ports(fleet)
    routers = [h for h in fleet if h.get("router")]
    out = {"engines": [], "routers": [], "gpus": []}
    for host in sorted(fleet, key=lambda h: h["name"]):
        record = host.get("record") or {}
        plan = record.get("plan") or {}
        serving = [
            r["name"]
            for r in routers
            if host["name"] in groups.get(r.get("router_worker_group") or "all", []) and not host.get("router")
        ]
        labels = {
            "host": host["name"],
            "group": smallest_group(host["name"], groups),
            "model": str(record.get("model") or ""),
            "engine": str(record.get("engine") or ""),
            "version": str(record.get("version") or ""),
            "router": ",".join(serving),
        }
        if host.get("router"):
            port = int(host.get("router_prometheus_port") or ROUTER_PROMETHEUS_PORT)
            out["routers"].append(
                {"targets": [f"{host['address']}:{port}"], "labels": dict(labels, router=host["name"])}
            )
            continue
        # Node 1.. of a multi-node engine serve no API (and no /metrics): only node 0 is an engine target.
        if record and int(plan.get("node_rank") or 0) == 0:
            out["engines"].append(
                {
                    "targets": [f"{host['address']}:{host['engine_port']}"],
                    # worker: the URL the routers list this engine under (smg_worker_health{worker=...}).
                    "labels": dict(labels, worker=_worker_url(host, host["engine_port"])),
                }
            )
        if host.get("gpu_exporter"):
            port = int(host.get("dcgm_exporter_port") or DCGM_EXPORTER_PORT)
            out["gpus"].append({"targets": [f"{host['address']}:{port}"], "labels": labels})
    return out


def prometheus_config(settings: dict | None = None) -> dict:
    """A complete prometheus.yml: the fleet's jobs read their targets from file_sd/<job>.json."""
    s = settings_with_defaults(settings)
    base = s["config_dir"].rstrip("/")
    jobs = []
    for kind, job in JOBS.items():
        jobs.append(
            {
                "job_name": job,
                "scrape_interval": s["scrape_interval"],
                "metrics_path": "/metrics",
                "file_sd_configs": [{"files": [f"{base}/file_sd/{kind}.json"], "refresh_interval": "1m"}],
            }
        )
    return {
        "global": {"scrape_interval": s["scrape_interval"], "evaluation_interval": s["evaluation_interval"]},
        "rule_files": [f"{base}/rules/fleetserve.rules.yml"],
        "scrape_configs": jobs,
    }


# One name per figure, whichever engine serves it; the dashboard and the alerts read these.
BY = "host, group, model, engine, version, router"
RECORDS = {
    "fleetserve:running_requests": f"max by ({BY}) (sglang:num_running_reqs) or max by ({BY}) (vllm:num_requests_running)",
    "fleetserve:waiting_requests": f"max by ({BY}) (sglang:num_queue_reqs) or max by ({BY}) (vllm:num_requests_waiting)",
    "fleetserve:kv_usage_ratio": f"max by ({BY}) (sglang:token_usage) or max by ({BY}) (vllm:kv_cache_usage_perc)",
    "fleetserve:generation_tokens:rate1m": (
        f"sum by ({BY}) (rate(sglang:generation_tokens_total[1m])) or sum by ({BY}) (rate(vllm:generation_tokens_total[1m]))"
    ),
    "fleetserve:ttft_seconds:p95_5m": (
        f"histogram_quantile(0.95, sum by ({BY}, le) (rate(sglang:time_to_first_token_seconds_bucket[5m])))"
        f" or histogram_quantile(0.95, sum by ({BY}, le) (rate(vllm:time_to_first_token_seconds_bucket[5m])))"
    ),
}


def _alert(name: str, expr: str, for_: str, severity: str, summary: str, description: str) -> dict:
    alert = {"alert": name, "expr": expr}
    if for_:
        alert["for"] = for_
    alert["labels"] = {"severity": severity}
    alert["annotations"] = {"summary": summary, "description": description}
    return alert


def rules(settings: dict | None = None) -> dict:
    """The rule file: recording rules, then the alerts (thresholds and durations from ``settings``)."""
    s = settings_with_defaults(settings)
    eng, rtr, gpu = JOBS["engines"], JOBS["routers"], JOBS["gpus"]
    alerts = [
        _alert(
            "FleetserveEngineDown",
            f'up{{job="{eng}"}} == 0',
            s["engine_down_for"],
            "critical",
            "Engine on {{ $labels.host }} is down",
            "{{ $labels.engine }} {{ $labels.version }} serving {{ $labels.model }} on {{ $labels.host }} has not "
            "answered /metrics for " + s["engine_down_for"] + ".",
        ),
        _alert(
            "FleetserveEngineRestarting",
            f'changes(up{{job="{eng}"}}[{s["engine_restart_window"]}]) >= {2 * int(s["engine_restarts"])}',
            "",
            "warning",
            "Engine on {{ $labels.host }} keeps restarting",
            "The engine on {{ $labels.host }} went down and came back at least "
            + str(s["engine_restarts"])
            + " times in "
            + s["engine_restart_window"]
            + " (journalctl -u of its unit, or docker logs, says why).",
        ),
        _alert(
            "FleetserveRouterDown",
            f'up{{job="{rtr}"}} == 0',
            s["engine_down_for"],
            "critical",
            "Router {{ $labels.host }} is down",
            "The gateway on {{ $labels.host }} has not answered on its Prometheus port for "
            + s["engine_down_for"]
            + ".",
        ),
        _alert(
            "FleetserveRouterNoHealthyWorker",
            f'max by (host) (smg_worker_health{{job="{rtr}"}}) < 1 or (max by (host) (up{{job="{rtr}"}}) == 1 '
            f'unless on (host) max by (host) (smg_worker_health{{job="{rtr}"}}))',
            s["router_no_worker_for"],
            "critical",
            "Router {{ $labels.host }} has no healthy worker",
            "Every request to {{ $labels.host }} fails: none of its workers passes the gateway's health check.",
        ),
        _alert(
            "FleetserveHostOutOfRouters",
            f'up{{job="{eng}", router!=""}} unless on (worker) max by (worker) (smg_worker_health{{job="{rtr}"}} == 1)',
            s["out_of_router_for"],
            "warning",
            "{{ $labels.host }} has been out of its routers for " + s["out_of_router_for"],
            "No router ({{ $labels.router }}) counts {{ $labels.worker }} as a healthy worker, longer than a rollout "
            "takes a host out: finish or roll back the rollout (fleetserve rollback), or check the engine.",
        ),
        _alert(
            "FleetserveKvCacheHigh",
            f'fleetserve:kv_usage_ratio > {s["kv_usage_ratio"]}',
            s["kv_usage_for"],
            "warning",
            "KV cache of {{ $labels.host }} is {{ $value | humanizePercentage }} full",
            "The engine on {{ $labels.host }} is close to retracting or queueing requests: add hosts or shorten contexts.",
        ),
        _alert(
            "FleetserveRequestsQueueing",
            f'fleetserve:waiting_requests > {s["waiting_requests"]}',
            s["waiting_for"],
            "warning",
            "Requests queue on {{ $labels.host }}",
            "{{ $value }} requests wait on {{ $labels.host }}: the engine is saturated.",
        ),
        _alert(
            "FleetserveGpuExporterDown",
            f'up{{job="{gpu}"}} == 0',
            s["engine_down_for"],
            "warning",
            "GPU exporter on {{ $labels.host }} is down",
            "No GPU metrics (temperature, XID errors, memory) come from {{ $labels.host }}.",
        ),
        _alert(
            "FleetserveGpuXidError",
            f'changes(DCGM_FI_DEV_XID_ERRORS{{job="{gpu}"}}[{s["xid_window"]}]) > 0',
            "",
            "critical",
            "GPU {{ $labels.gpu }} on {{ $labels.host }} reported an XID error",
            "DCGM_FI_DEV_XID_ERRORS of {{ $labels.host }} GPU {{ $labels.gpu }} changed within "
            + s["xid_window"]
            + ": "
            "`dmesg | grep -i xid` on the host names the error (NVIDIA's XID catalogue says what it means).",
        ),
        _alert(
            "FleetserveGpuHot",
            f'DCGM_FI_DEV_GPU_TEMP{{job="{gpu}"}} > {s["gpu_temp_celsius"]}',
            s["gpu_temp_for"],
            "warning",
            "GPU {{ $labels.gpu }} on {{ $labels.host }} is at {{ $value }} C",
            "Above " + str(s["gpu_temp_celsius"]) + " C for " + s["gpu_temp_for"] + ": check the host's cooling.",
        ),
        _alert(
            "FleetserveGpuMissing",
            f'count by (host) (DCGM_FI_DEV_GPU_TEMP{{job="{gpu}"}}) < max_over_time((count by (host) '
            f'(DCGM_FI_DEV_GPU_TEMP{{job="{gpu}"}}))[{s["gpu_missing_lookback"]}:1m])',
            s["gpu_missing_for"],
            "critical",
            "{{ $labels.host }} lost a GPU",
            "{{ $labels.host }} reports fewer GPUs than it had in the last " + s["gpu_missing_lookback"] + " "
            "(fallen off the bus): the engine cannot run its plan; drain the host and check nvidia-smi.",
        ),
    ]
    return {
        "groups": [
            {
                "name": "fleetserve-records",
                "rules": [{"record": name, "expr": expr} for name, expr in RECORDS.items()],
            },
            {"name": "fleetserve-alerts", "rules": alerts},
        ]
    }


def _panel(pid: int, title: str, exprs: list, unit: str, x: int, y: int) -> dict:
    return {
        "id": pid,
        "type": "timeseries",
        "title": title,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [
            {"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend} for i, (expr, legend) in enumerate(exprs)
        ],
    }


HOST = 'host=~"$host"'
PANELS = [
    ("Running requests", [(f"fleetserve:running_requests{{{HOST}}}", "{{host}}")], "short"),
    ("Waiting requests", [(f"fleetserve:waiting_requests{{{HOST}}}", "{{host}}")], "short"),
    ("Time to first token (p95)", [(f"fleetserve:ttft_seconds:p95_5m{{{HOST}}}", "{{host}}")], "s"),
    ("Generated tokens/s", [(f"fleetserve:generation_tokens:rate1m{{{HOST}}}", "{{host}}")], "short"),
    ("KV cache usage", [(f"fleetserve:kv_usage_ratio{{{HOST}}}", "{{host}}")], "percentunit"),
    ("GPU utilisation", [(f"avg by (host) (DCGM_FI_DEV_GPU_UTIL{{{HOST}}})", "{{host}}")], "percent"),
    ("GPU memory used", [(f"sum by (host) (DCGM_FI_DEV_FB_USED{{{HOST}}}) * 1024 * 1024", "{{host}}")], "bytes"),
    ("GPU temperature (hottest)", [(f"max by (host) (DCGM_FI_DEV_GPU_TEMP{{{HOST}}})", "{{host}}")], "celsius"),
]


def dashboard() -> dict:
    """The fleet's Grafana dashboard: per host load (requests, TTFT, tokens/s, KV) and GPUs (utilisation, memory)."""
    panels = [
        _panel(i + 1, title, exprs, unit, (i % 2) * 12, (i // 2) * 8) for i, (title, exprs, unit) in enumerate(PANELS)
    ]
    return {
        "uid": "fleetserve-fleet",
        "title": "fleetserve: fleet",
        "tags": ["fleetserve"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"},
                {
                    "name": "host",
                    "type": "query",
                    "label": "host",
                    "datasource": {"type": "prometheus", "uid": "${datasource}"},
                    "query": {"query": f'label_values(up{{job=~"{"|".join(JOBS.values())}"}}, host)', "refId": "hosts"},
                    "includeAll": True,
                    "multi": True,
                    "current": {"text": "All", "value": "$__all"},
                    "refresh": 2,
                },
            ]
        },
        "panels": panels,
    }


# The engine's load as `fleetserve status` shows it: the gauges of each engine's /metrics, summed over the
# engine's label sets (SGLang reports one per data-parallel rank), KV usage the fullest of them.
LOAD_GAUGES = {
    "sglang": {
        "running": "sglang:num_running_reqs",
        "waiting": "sglang:num_queue_reqs",
        "kv_usage": "sglang:token_usage",
    },
    "vllm": {
        "running": "vllm:num_requests_running",
        "waiting": "vllm:num_requests_waiting",
        "kv_usage": "vllm:kv_cache_usage_perc",
    },
}


def engine_load(engine: str, text: str) -> dict | None:
    """{running, waiting, kv_usage} from a /metrics text (None for a figure the text lacks); None without gauges."""
    names = LOAD_GAUGES.get(engine)
    if not names or not text:
        return None
    values: dict = {key: [] for key in names}
    by_name = {name: key for key, name in names.items()}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in by_name:
            try:
                values[by_name[name]].append(float(line.rsplit(" ", 1)[-1]))
            except ValueError:
                continue
    if not any(values.values()):
        return None
    return {
        "running": int(sum(values["running"])) if values["running"] else None,
        "waiting": int(sum(values["waiting"])) if values["waiting"] else None,
        "kv_usage": max(values["kv_usage"]) if values["kv_usage"] else None,
    }
