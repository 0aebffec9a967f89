"""Docker engine + NVIDIA container toolkit after converge, idempotence, check mode and side_effect."""

import json

import pytest


@pytest.fixture(scope="module")
def info(host):
    return json.loads(host.check_output("docker info --format '{{json .}}'"))


def test_daemon_json_is_merged_not_overwritten(host):
    config = json.loads(host.file("/etc/docker/daemon.json").content_string)
    assert config == {
        "labels": ["fleet=prereq-test"],  # the operator's, from before the roles ran
        "log-opts": {"labels": "team", "max-size": "100m", "max-file": "5"},  # operator's log-opt kept
        "log-driver": "json-file",
        "live-restore": True,
        "runtimes": {"nvidia": {"path": "nvidia-container-runtime", "args": []}},
        "debug": False,  # side_effect turned it on (reload) and off again
    }
    assert host.file("/etc/docker/daemon.json").mode == 0o644


def test_dockerd_runs_with_it(host, info):
    service = host.service("docker")
    assert service.is_running
    assert service.is_enabled
    assert info["LiveRestoreEnabled"] is True
    assert info["LoggingDriver"] == "json-file"
    assert "nvidia" in info["Runtimes"]
    assert "fleet=prereq-test" in info["Labels"]
    assert info["Driver"] == "overlay2"


def test_packages_pinned_and_held(host):
    assert host.package("docker.io").is_installed
    # 1.18.1 is in the repository too: only the exact pin gives 1.18.0.
    assert host.package("nvidia-container-toolkit").version == "1.18.0-1"
    assert host.package("nvidia-container-toolkit-base").version == "1.18.0-1"
    held = set(host.check_output("apt-mark showhold").split())
    assert held == {"docker.io", "nvidia-container-toolkit", "nvidia-container-toolkit-base"}


def test_cdi_spec_lists_both_gpus(host):
    spec = host.file("/etc/cdi/nvidia.yaml")
    assert spec.mode == 0o644
    lines = spec.content_string.splitlines()
    assert lines[:2] == ["cdiVersion: 0.5.0", "kind: nvidia.com/gpu"]
    assert [line for line in lines if line.startswith("- name:")] == ['- name: "0"', '- name: "1"', "- name: all"]


def test_dev_char_symlink_rule(host):
    rule = host.file("/etc/udev/rules.d/71-nvidia-dev-char.rules").content_string.splitlines()[-1]
    assert (
        rule
        == 'ACTION=="add", DEVPATH=="/bus/pci/drivers/nvidia", RUN+="/usr/bin/nvidia-ctk system create-dev-char-symlinks --create-all"'
    )
