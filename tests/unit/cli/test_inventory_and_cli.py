"""Bad input to the CLI: one clear message, exit code 2, and nothing started."""

import pytest

from fleetserve import cli, inventory, lab, paths, runner
from fleetserve.errors import UserError

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def _no_runs(monkeypatch, tmp_path):
    """Any attempt to start a playbook in these tests is a failure: bad input must stop before it."""

    def refuse(*_args, **_kwargs):
        raise AssertionError("a playbook was started despite bad input")

    monkeypatch.setattr(runner, "run_playbook", refuse)
    monkeypatch.setenv("FLEETSERVE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("FLEETSERVE_LAB", "unit-test-no-such-lab")


def test_missing_inventory_is_refused(capsys):
    assert cli.main(["deploy", "-i", "missing.yml"]) == 2
    err = capsys.readouterr().err
    assert "fleetserve: error: inventory missing.yml not found" in err
    assert "pass -i with an existing inventory file" in err


def test_no_inventory_and_no_lab_says_how_to_start_the_lab(capsys):
    assert cli.main(["deploy"]) == 2
    err = capsys.readouterr().err
    assert "no inventory given and the local lab is not up" in err
    assert "run `fleetserve lab up` first" in err


def test_inventory_with_a_syntax_error_is_refused(tmp_path, capsys):
    bad = tmp_path / "hosts.yml"
    bad.write_text("all:\n  hosts:\n    gpu-1: {ansible_host: 10.0.0.1\n")  # unclosed flow mapping
    assert cli.main(["deploy", "-i", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"inventory {bad} could not be parsed" in err
    assert "ansible-inventory -i FILE --graph" in err


def test_limit_that_matches_nothing_is_refused(tmp_path):
    good = tmp_path / "hosts.yml"
    good.write_text("all:\n  hosts:\n    gpu-1: {}\n    gpu-2: {}\n")
    assert inventory.hosts(good) == ["gpu-1", "gpu-2"]
    with pytest.raises(UserError, match="--limit gpu-9 matches no host"):
        inventory.hosts(good, "gpu-9")


def test_lab_without_docker_says_how_to_get_it(monkeypatch, tmp_path, capsys):
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    docker = fake_bin / "docker"
    docker.write_text("#!/bin/sh\necho 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock.' >&2\nexit 1\n")
    docker.chmod(0o755)
    monkeypatch.setenv("PATH", str(fake_bin))
    assert cli.main(["lab", "up", "--hosts", "1"]) == 2
    err = capsys.readouterr().err
    assert "the Docker engine is not reachable (Cannot connect to the Docker daemon" in err
    assert "scripts/lab/start-dockerd.sh" in err
    assert not paths.lab_inventory().exists()


def test_lab_needs_at_least_one_host():
    with pytest.raises(UserError, match="--hosts must be at least 1, got 0"):
        lab.up(0)
