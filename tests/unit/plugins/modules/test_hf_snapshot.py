"""hf_snapshot without a network: the hub client is replaced by a fake that serves files from a dict."""

from __future__ import annotations

import hashlib
import json
import os

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.fleetserve.minimax.plugins.module_utils import _weights as w
from ansible_collections.fleetserve.minimax.plugins.module_utils import _weights_sources as sources
from ansible_collections.fleetserve.minimax.plugins.modules import hf_snapshot

pytestmark = pytest.mark.unit

COMMIT = "c" * 40
REAL_HUB = hf_snapshot.Hub
FILES = {"config.json": b'{"model_type": "minimax_m2"}', "model-00001-of-00001.safetensors": b"\0" * 64}


class FakeHub:
    """Serves FILES at COMMIT; ``corrupt`` names files served with a flipped last byte."""

    downloads: list = []
    corrupt: set = set()

    def __init__(self, module, endpoint, token):
        self.endpoint, self.token = endpoint, token

    def resolve(self, revision):
        return COMMIT, [
            {"path": k, "size": len(v), "sha256": hashlib.sha256(v).hexdigest(), "git_sha1": None}
            for k, v in FILES.items()
        ]

    def download(self, commit, staging, params):
        fetched = []
        for rel, data in FILES.items():
            path = os.path.join(staging, rel)
            if not os.path.exists(path):
                if rel in FakeHub.corrupt:
                    data = data[:-1] + bytes([data[-1] ^ 0xFF])
                with open(path, "wb") as fh:
                    fh.write(data)
                fetched.append(rel)
        FakeHub.downloads.append(fetched)


@pytest.fixture(autouse=True)
def fake_hub(monkeypatch):
    FakeHub.downloads, FakeHub.corrupt = [], set()
    monkeypatch.setattr(hf_snapshot, "Hub", FakeHub)


def run_module(capsys, check_mode=False, **args):
    args.setdefault("repo_id", "org/model")
    if check_mode:
        args["_ansible_check_mode"] = True
    with patch_module_args(args), pytest.raises(SystemExit) as exc:
        hf_snapshot.main()
    out = json.loads(capsys.readouterr().out)
    out["rc"] = exc.value.code
    return out


def test_check_mode_reports_the_download_and_writes_nothing(tmp_path, capsys):
    out = run_module(capsys, check_mode=True, dest=str(tmp_path / "m" / "model"))
    assert (out["rc"], out["changed"], out["download_bytes"], out["revision"]) == (0, True, 92, COMMIT)
    assert not (tmp_path / "m").exists()
    assert FakeHub.downloads == []


def test_download_publishes_atomically_then_is_idempotent(tmp_path, capsys):
    dest = tmp_path / "model"
    out = run_module(capsys, dest=str(dest))
    assert (out["rc"], out["changed"], out["files"], out["bytes"]) == (0, True, 2, 92)
    assert sorted(os.listdir(tmp_path)) == ["model"]
    marker = json.loads((dest / w.MARKER).read_text())
    assert marker["complete"] is True and marker["revision"] == COMMIT and set(marker["files"]) == set(FILES)

    again = run_module(capsys, dest=str(dest))
    assert (again["changed"], again["download_bytes"]) == (False, 0)
    assert FakeHub.downloads == [sorted(FILES)]


def test_bad_file_in_the_published_copy_is_fetched_again_reusing_the_rest(tmp_path, capsys):
    dest = tmp_path / "model"
    run_module(capsys, dest=str(dest))
    (dest / "config.json").write_bytes(b"x" * len(FILES["config.json"]))
    out = run_module(capsys, dest=str(dest))
    assert (out["changed"], out["refetched"]) == (True, ["config.json"])
    assert FakeHub.downloads[1:] == [[], ["config.json"]]  # shard hard-linked, not fetched
    assert (dest / "config.json").read_bytes() == FILES["config.json"]


def test_a_mirror_serving_bad_bytes_never_gets_published(tmp_path, capsys):
    FakeHub.corrupt = {"model-00001-of-00001.safetensors"}
    out = run_module(capsys, dest=str(tmp_path / "model"))
    assert out["rc"] == 1
    assert out["msg"].startswith(
        "the download of org/model@%s still fails verification after a second fetch: " % COMMIT
    )
    assert out["msg"].endswith("check the mirror's copy")
    assert not (tmp_path / "model").exists()


def test_disk_check_runs_before_anything_is_written(tmp_path, capsys):
    out = run_module(capsys, dest=str(tmp_path / "m" / "model"), disk_reserve_bytes=2**62)
    assert out["rc"] == 1 and out["msg"].startswith("not enough disk space on %s: the download needs 92 B" % tmp_path)
    assert not (tmp_path / "m").exists()


def test_token_and_token_file_are_exclusive(tmp_path, capsys):
    out = run_module(capsys, dest=str(tmp_path), token="hf_x", token_file="/nope")
    assert out["rc"] == 1 and out["msg"] == "parameters are mutually exclusive: token|token_file"


@pytest.mark.parametrize(
    "args, name",
    [
        ({"token": "hf_SECRETVALUE\nX"}, "the HF token (fleetserve_hf_token or weights_hf_token_file) holds a newline"),
        ({"token_file": "FILE"}, "the HF token (fleetserve_hf_token or weights_hf_token_file) holds a NUL byte"),
        ({"peer_password": "SECRETVALUE\r"}, "the rsync password (peer_password) holds a carriage return"),
    ],
)
def test_a_secret_that_could_break_a_file_is_refused_before_anything(tmp_path, capsys, args, name):
    """One rule for every secret (_secrets.check_secret): refused before any download, never echoed."""
    if args.get("token_file"):
        token = tmp_path / "token"
        token.write_text("hf_SECRETVALUE\x00\n")
        token.chmod(0o600)
        args = {"token_file": str(token)}
    if "peer_password" in args:
        args = dict(args, peer_url="rsync://127.0.0.1:9/m/x/", manifest={})
    out = run_module(capsys, dest=str(tmp_path / "m" / "model"), **args)
    assert out["rc"] == 1 and out["msg"].startswith(name), out["msg"]
    assert "SECRETVALUE" not in json.dumps(out)
    assert not (tmp_path / "m").exists()


def test_bad_repo_id_fails_with_the_fix(tmp_path, capsys):
    out = run_module(capsys, dest=str(tmp_path), repo_id="MiniMax-M2.5")
    assert (
        out["msg"]
        == "repo_id 'MiniMax-M2.5' is not a hub repository id: set it to '<org>/<name>', e.g. 'MiniMaxAI/MiniMax-M2.5'"
    )


class _Response:
    def __init__(self, status):
        self.status_code = status


def _exc(name, status=None):
    exc = type(name, (Exception,), {})("boom")
    exc.response = _Response(status) if status else None
    return exc


@pytest.fixture()
def real_hub(monkeypatch):
    sleeps = []
    monkeypatch.setattr(sources.time, "sleep", sleeps.append)
    hub = REAL_HUB.__new__(REAL_HUB)
    hub.endpoint, hub.repo_id, hub.retries, hub.delay = "http://h", "org/model", 3, 0.5
    return hub, sleeps


def test_retries_429_with_backoff_then_succeeds(real_hub):
    hub, sleeps = real_hub
    answers = [_exc("HfHubHTTPError", 429), _exc("HfHubHTTPError", 503), "ok"]

    def call():
        a = answers.pop(0)
        if isinstance(a, Exception):
            raise a
        return a

    assert hub.call("main", call) == "ok"
    assert sleeps == [0.5, 1.0]


def test_gives_up_after_the_retries_and_says_so(real_hub):
    hub, sleeps = real_hub

    def call():
        raise _exc("ConnectError")

    with pytest.raises(w.HubError) as exc:
        hub.call("main", call)
    assert str(exc.value) == (
        "cannot reach http://h (ConnectError: boom): check weights_endpoint (HF_ENDPOINT), the network and any proxy "
        "(gave up after 4 attempts)"
    )
    assert sleeps == [0.5, 1.0, 2.0]


def test_auth_failures_are_not_retried(real_hub):
    hub, sleeps = real_hub

    def call():
        raise _exc("GatedRepoError", 403)

    with pytest.raises(w.HubError, match=r"^access to org/model@main on http://h was refused \(HTTP 403\)"):
        hub.call("main", call)
    assert sleeps == []


class _Api:
    def __init__(self, error, exists):
        self.error, self.exists = error, exists

    def model_info(self, repo_id, revision=None):
        raise self.error

    def repo_exists(self, repo_id):
        return self.exists


@pytest.mark.parametrize(
    "error, message",
    [
        (_exc("RepositoryNotFoundError", 401), "revision 'v9' does not exist in org/model: set preflight_revision"),
        (_exc("GatedRepoError", 401), "access to org/model@v9 on http://h was refused (HTTP 401)"),
    ],
)
def test_unknown_revision_is_told_apart_from_a_gated_repo(real_hub, error, message):
    hub, _sleeps = real_hub
    hub.api = _Api(error, exists=True)
    with pytest.raises(w.HubError) as exc:
        hub.resolve("v9")
    assert str(exc.value).startswith(message)
