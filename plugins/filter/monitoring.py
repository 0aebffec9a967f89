# Copyright: fleetserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters over plugins/module_utils/_monitoring.py for roles/monitoring."""

from __future__ import annotations

DOCUMENTATION = r"""
name: monitoring
short_description: Prometheus targets, rules and a Grafana dashboard for the fleet
description:
  - C(monitoring_targets) takes the fleet (one dict per host, name, address, router, record, preflight_port,
    router_port, router_prometheus_port, router_worker_group, gpu_exporter, dcgm_exporter_port) and the inventory's
    C(groups), and returns the file-based service discovery groups C({engines, routers, gpus}), labelled by host,
    group, model, engine, version and router; it fails naming the variable to change when two services of one
    host share a port.
  - C(monitoring_prometheus_config) takes the settings (config_dir, scrape_interval, evaluation_interval) and
    returns a prometheus.yml reading those files and the rule file.
  - C(monitoring_rules) takes the settings (alert thresholds and durations) and returns the rule file.
  - C(monitoring_dashboard) returns the fleet's Grafana dashboard.
  - C(engine_load) takes the text of an engine's /metrics and the engine (C(sglang) or C(vllm)) and returns
    C({running, waiting, kv_usage}) (requests running and waiting, KV cache usage 0 to 1), or none without
    those gauges.
version_added: 0.3.0
author: fleetserve maintainers (@fleetserve)
"""

# Plugins import after their documentation strings.
from ansible.errors import AnsibleFilterError  # noqa: E402

from ansible_collections.fleetserve.minimax.plugins.module_utils import _monitoring  # noqa: E402


def monitoring_targets(fleet, groups):
    try:
        return _monitoring.targets(list(fleet or []), dict(groups or {}))
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from None


def monitoring_prometheus_config(settings=None):
    return _monitoring.prometheus_config(dict(settings or {}))


def monitoring_rules(settings=None):
    return _monitoring.rules(dict(settings or {}))


def monitoring_dashboard(settings=None):
    return _monitoring.dashboard()


def engine_load(text, engine):
    return _monitoring.engine_load(str(engine or ""), str(text or ""))


class FilterModule:
    def filters(self):
        return {
            "monitoring_targets": monitoring_targets,
            "monitoring_prometheus_config": monitoring_prometheus_config,
            "monitoring_rules": monitoring_rules,
            "monitoring_dashboard": monitoring_dashboard,
            "engine_load": engine_load,
        }
