"""Verify the router role: the real gateway in front of two engine-sim workers, keyed, key never exposed."""

import json

testinfra_hosts = ["fs-router-gw"]

KEY = "fs-router-test-key-7f3a91"
BASE = "http://127.0.0.1:30000"
CHAT = {"model": "local-org/tiny-minimax-m2", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 64}


def curl(host, path, key=None, data=None):
    auth = f"-H 'Authorization: Bearer {KEY}'" if key else ""
    body = f"-H 'Content-Type: application/json' -d '{json.dumps(data)}'" if data else ""
    out = host.check_output(f"curl -sS -o /tmp/fs-body -w '%{{http_code}}' {auth} {body} {BASE}{path}")
    return int(out), host.file("/tmp/fs-body").content_string


def test_service_active_enabled_as_its_own_user(host):
    svc = host.service("smg")
    assert svc.is_running and svc.is_enabled
    assert host.check_output("systemctl show -p User --value smg") == "smg"


def test_pinned_gateway_installed(host):
    out = host.check_output(
        "/opt/fleetserve/router/venv/bin/python -c \"import importlib.metadata as m; print(m.version('smg'))\""
    )
    assert out.strip() == "1.13.0"


def test_both_workers_listed_and_healthy(host):
    status, body = curl(host, "/workers", key=True)
    assert status == 200
    workers = {w["url"]: w for w in json.loads(body)["workers"]}
    assert set(workers) == {"http://fs-router-w1:8000", "http://fs-router-w2:8000"}
    assert all(w["is_healthy"] for w in workers.values())


def test_chat_through_the_router_with_the_key(host):
    status, body = curl(host, "/v1/chat/completions", key=True, data=CHAT)
    assert status == 200, body
    reply = json.loads(body)
    assert reply["model"] == "local-org/tiny-minimax-m2"
    assert "Hello from engine-sim" in reply["choices"][0]["message"]["content"]


def test_requests_spread_over_both_workers(host):
    for _ in range(4):
        assert curl(host, "/v1/chat/completions", key=True, data=CHAT)[0] == 200
    # round_robin: both workers served some, by the gateway's own per-worker request counters.
    metrics = host.check_output("curl -sS http://127.0.0.1:29000/metrics")
    served = {}
    for line in metrics.splitlines():
        if line.startswith("smg_worker_requests") and "fs-router-w" in line:
            worker = "w1" if "fs-router-w1" in line else "w2"
            served[worker] = served.get(worker, 0) + float(line.rsplit(" ", 1)[1])
    assert served.get("w1", 0) > 0 and served.get("w2", 0) > 0, served


def test_refused_without_the_key(host):
    status, body = curl(host, "/v1/chat/completions", data=CHAT)
    assert status == 401
    assert "Missing API key" in body
    assert curl(host, "/workers")[0] == 401  # the worker API is gated by the same key


def test_key_not_in_unit_argv_or_ps(host):
    assert KEY not in host.check_output("systemctl cat smg")
    assert KEY not in host.check_output("ps -eo args")
    exec_start = host.check_output("systemctl show -p ExecStart --value smg")
    assert "/opt/fleetserve/router/launch.py" in exec_start and "--worker-urls" in exec_start
    pid = host.check_output("systemctl show -p MainPID --value smg")
    cmdline = host.check_output(f"tr '\\0' ' ' < /proc/{pid}/cmdline")
    assert cmdline.startswith("smg::router") and KEY not in cmdline  # the gateway retitles itself


def test_key_file_is_root_only(host):
    env = host.file("/etc/fleetserve/router/smg.env")
    assert (env.user, env.group, env.mode) == ("root", "root", 0o600)
    assert KEY in env.content_string
