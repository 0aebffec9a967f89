"""router_worker run as Ansible runs it, against a real local HTTP server that keeps a gateway's worker list."""

import http.server
import json
import threading

import pytest

pytestmark = pytest.mark.unit

MODULE = "plugins/modules/router_worker.py"
KEY = "sk-fleetserve-test-4711"
WORKER = "http://10.0.0.5:8000"


@pytest.fixture()
def gateway():
    """GET/POST/PATCH/DELETE /workers with the bearer key; a deleted worker drains for one read, an added one is
    unhealthy for one read. Yields (base URL, state)."""
    state = {"workers": [], "calls": [], "next_id": 1}

    class Gateway(http.server.BaseHTTPRequestHandler):
        def _answer(self, code, body=None):
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(code)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _authorized(self):
            state["calls"].append((self.command, self.path))
            if self.headers.get("Authorization") != f"Bearer {KEY}":
                self._answer(401, {"error": "unauthorized"})
                return False
            return True

        def do_GET(self):  # noqa: N802 (http.server's name)
            if self._authorized():
                listing = [dict(w) for w in state["workers"]]
                for worker in state["workers"]:
                    worker["is_healthy"] = True
                state["workers"] = [w for w in state["workers"] if w["status"] != "draining"]
                self._answer(200, {"workers": listing, "total": len(listing)})

        def do_POST(self):  # noqa: N802
            if self._authorized():
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                state["posted"] = body
                state["workers"].append(
                    {"id": str(state["next_id"]), "url": body["url"], "status": "ready", "is_healthy": False}
                )
                state["next_id"] += 1
                self._answer(202, {"status": "accepted"})

        def do_PATCH(self):  # noqa: N802
            if self._authorized():
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                for worker in state["workers"]:
                    if self.path == f"/workers/{worker['id']}":
                        worker["health"] = body["health"]
                self._answer(202, {"status": "accepted"})

        def do_DELETE(self):  # noqa: N802
            if self._authorized():
                for worker in state["workers"]:
                    if self.path == f"/workers/{worker['id']}":
                        worker["status"] = "draining"
                self._answer(202, {"status": "accepted"})

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Gateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", state
    server.shutdown()


def args(url, action, **extra):
    return dict(api_url=url, api_key=KEY, worker_url=WORKER, action=action, interval=0.1, timeout=5, **extra)


def test_join_then_leave_through_the_worker_api(ansible_module, gateway):
    url, state = gateway
    joined = ansible_module(MODULE, **args(url, "join"))
    assert joined.get("failed") is not True, joined
    assert joined["changed"] is True and joined["entries"][0]["is_healthy"] is True
    assert state["posted"] == {"url": WORKER, "api_key": KEY}
    assert KEY not in json.dumps(joined)  # the key option is no_log

    posts = state["calls"].count(("POST", "/workers"))
    again = ansible_module(MODULE, **args(url, "join"))
    assert again["changed"] is False and state["calls"].count(("POST", "/workers")) == posts == 1

    left = ansible_module(MODULE, **args(url, "leave"))
    assert left["changed"] is True and left["entries"] == [] and state["workers"] == []
    assert ("DELETE", "/workers/1") in state["calls"]


def test_check_mode_sends_only_reads(ansible_module, gateway):
    url, state = gateway
    result = ansible_module(MODULE, check_mode=True, **args(url, "join"))
    assert result["changed"] is True and state["workers"] == []
    assert {method for method, _path in state["calls"]} == {"GET"}


def test_a_wrong_key_fails_with_the_status_and_not_the_key(ansible_module, gateway):
    url, _state = gateway
    result = ansible_module(MODULE, **{**args(url, "leave"), "api_key": "sk-wrong-key-0000"})
    assert result["failed"] is True
    assert result["msg"] == f"{url}: GET /workers answered 401, not a worker list"
    assert "sk-wrong-key-0000" not in json.dumps(result)


def test_an_unreachable_router_fails_naming_it(ansible_module):
    result = ansible_module(MODULE, **args("http://127.0.0.1:9", "leave"))
    assert result["failed"] is True and "the router's API cannot be reached" in result["msg"]


def test_an_interval_out_of_range_is_refused_before_any_call(ansible_module, gateway):
    url, state = gateway
    result = ansible_module(MODULE, **{**args(url, "leave"), "interval": 0})
    assert result["failed"] is True and "interval" in result["msg"] and state["calls"] == []


def test_a_settle_time_goes_with_the_join_and_on_the_entry_before_the_leave(ansible_module, gateway):
    url, state = gateway
    joined = ansible_module(MODULE, **args(url, "join", drain_settle=0))
    assert joined["changed"] is True
    assert state["posted"] == {"url": WORKER, "api_key": KEY, "health": {"drain_settle_secs": 0}}
    state["workers"][0].pop("health", None)  # as a worker of the gateway's --worker-urls list has none
    left = ansible_module(MODULE, **args(url, "leave", drain_settle=0))
    assert left["changed"] is True and state["workers"] == []
    writes = [call for call in state["calls"] if call[0] != "GET"]
    assert writes[-2:] == [("PATCH", "/workers/1"), ("DELETE", "/workers/1")]


def test_a_settle_time_out_of_range_is_refused_before_any_call(ansible_module, gateway):
    url, state = gateway
    result = ansible_module(MODULE, **args(url, "leave", drain_settle=-1))
    assert result["failed"] is True and "drain_settle" in result["msg"] and state["calls"] == []
