"""docker_daemon_config run as Ansible runs it (args file, real file system): check mode, diff, idempotence."""

import json
import stat

import pytest

pytestmark = pytest.mark.unit

MODULE = "plugins/modules/docker_daemon_config.py"


@pytest.fixture()
def run_module(ansible_module):
    def _run(**args):
        return ansible_module(MODULE, **args)

    return _run


def test_merge_check_mode_then_real_then_idempotent(run_module, tmp_path):
    path = tmp_path / "docker" / "daemon.json"
    path.parent.mkdir()
    path.write_text('{"data-root": "/data/docker", "runtimes": {"crun": {"path": "/usr/bin/crun"}}}')
    before = path.read_text()
    wanted = {"runtimes": {"nvidia": {"path": "nvidia-container-runtime", "args": []}}, "live-restore": True}

    checked = run_module(check_mode=True, diff=True, path=str(path), config=wanted)
    assert checked["changed"] is True
    assert checked["changed_keys"] == ["live-restore", "runtimes"]
    assert checked["reload_sufficient"] is True
    assert json.loads(checked["diff"]["after"])["runtimes"]["crun"] == {"path": "/usr/bin/crun"}
    assert checked["diff"]["before"] == before
    assert path.read_text() == before, "check mode must not write"

    applied = run_module(path=str(path), config=wanted)
    assert applied["changed"] is True
    assert json.loads(path.read_text()) == {
        "data-root": "/data/docker",
        "live-restore": True,
        "runtimes": {"crun": {"path": "/usr/bin/crun"}, "nvidia": {"path": "nvidia-container-runtime", "args": []}},
    }
    assert stat.S_IMODE(path.stat().st_mode) == 0o644

    again = run_module(path=str(path), config=wanted)
    assert again["changed"] is False
    assert again["changed_keys"] == []


def test_invalid_json_fails_and_leaves_file_alone(run_module, tmp_path):
    path = tmp_path / "daemon.json"
    path.write_text('{"live-restore": true,,}')
    result = run_module(path=str(path), config={"live-restore": True})
    assert result["failed"] is True
    assert result["msg"] == (
        f"{path} is not valid JSON (line 1, column 23: Expecting property name enclosed in double quotes); "
        "dockerd refuses to start with it. Fix the file by hand (or move it away) and rerun."
    )
    assert path.read_text() == '{"live-restore": true,,}'


def test_creates_missing_file_and_directory(run_module, tmp_path):
    path = tmp_path / "etc-docker" / "daemon.json"
    result = run_module(path=str(path), config={"log-opts": {"max-size": "100m"}})
    assert result["changed"] is True
    assert result["reload_sufficient"] is False
    assert path.read_text() == '{\n  "log-opts": {\n    "max-size": "100m"\n  }\n}\n'


def test_mode_drift_alone_is_a_change(run_module, tmp_path):
    path = tmp_path / "daemon.json"
    path.write_text('{"live-restore": true}')
    path.chmod(0o600)
    result = run_module(path=str(path), config={"live-restore": True})
    assert result["changed"] is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
