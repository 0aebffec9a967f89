"""gpu_facts: the module end to end, over the replay stub and over fake nvidia-smi binaries that fail like the real one."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.fleetserve.minimax.plugins.modules import gpu_facts

pytestmark = pytest.mark.unit


def run_module(capsys, **args):
    with patch_module_args(args), pytest.raises(SystemExit) as exc:
        gpu_facts.main()
    out = json.loads(capsys.readouterr().out)
    out["rc"] = exc.value.code
    return out


@pytest.fixture()
def proc_dir(tmp_path):
    """Like /proc/driver/nvidia-nvswitch on the real H100 host: the driver is loaded, devices/ is empty."""
    root = tmp_path / "nvidia-nvswitch"
    (root / "devices").mkdir(parents=True)
    return root


def fake_binary(tmp_path, text, rc):
    path = tmp_path / "nvidia-smi"
    path.write_text(f"#!/bin/sh\ncat <<'EOT'\n{text}\nEOT\nexit {rc}\n")
    path.chmod(0o755)
    return str(path)


@pytest.mark.parametrize("host,count", [("h200-x1", 1), ("h200-x2", 2), ("h100-x1", 1), ("h200-x2-b", 2), ("h200-x4", 4)])
def test_recorded_hosts(capsys, monkeypatch, fixtures_dir, proc_dir, host, count):
    monkeypatch.setenv("FLEETSERVE_FAKE_GPU_DIR", str(fixtures_dir / "nvidia-smi" / host))
    out = run_module(
        capsys,
        nvidia_smi=str(fixtures_dir / "bin" / "nvidia-smi"),
        nvswitch_proc_dir=str(proc_dir),
        _ansible_check_mode=True,
    )
    assert (out["rc"], out["changed"], out["gpu_count"], out["nvswitch_present"]) == (0, False, count, False)


@pytest.mark.parametrize("host", ["h100-x1", "h200-x2-b", "h200-x4"])
def test_replay_matches_what_the_real_host_printed(capsys, monkeypatch, fixtures_dir, proc_dir, host):
    """The replayed recording gives the facts the module printed on the real host (gpu_facts-output.txt)."""
    recorded = (fixtures_dir / "nvidia-smi" / host / "gpu_facts-output.txt").read_text()
    real = json.loads(recorded[recorded.index("{") : recorded.rindex("}") + 1])
    monkeypatch.setenv("FLEETSERVE_FAKE_GPU_DIR", str(fixtures_dir / "nvidia-smi" / host))
    out = run_module(capsys, nvidia_smi=str(fixtures_dir / "bin" / "nvidia-smi"), nvswitch_proc_dir=str(proc_dir))
    assert {k: out[k] for k in real} == real


def test_nvswitch_devices_are_counted(capsys, monkeypatch, fixtures_dir, proc_dir):
    for bus in ("0000:05:00.0", "0000:06:00.0", "0000:07:00.0", "0000:08:00.0"):
        (proc_dir / "devices" / bus).mkdir()
    monkeypatch.setenv("FLEETSERVE_FAKE_GPU_DIR", str(fixtures_dir / "nvidia-smi" / "h200-x2"))
    out = run_module(capsys, nvidia_smi=str(fixtures_dir / "bin" / "nvidia-smi"), nvswitch_proc_dir=str(proc_dir))
    assert (out["nvswitch_present"], out["nvswitch_count"], out["fabric_manager_state"]) == (True, 4, "Completed")


def test_missing_nvidia_smi_when_the_driver_is_required(capsys, tmp_path):
    out = run_module(capsys, nvidia_smi="nvidia-smi-not-here", nvswitch_proc_dir=str(tmp_path), source="nvidia_smi")
    assert (out["rc"], out["reason"]) == (1, "nvidia_smi_missing")
    assert out["msg"] == (
        "nvidia-smi-not-here was not found on PATH; install the NVIDIA driver "
        "(role fleetserve.minimax.nvidia_driver) or set preflight_nvidia_smi to its absolute path"
    )


@pytest.fixture(scope="module")
def gpu_table(collection_root):
    import yaml

    return yaml.safe_load((collection_root / "roles" / "preflight" / "vars" / "gpus.yml").read_text())["__preflight_pci_gpus"]


def test_without_nvidia_smi_the_gpus_come_from_pci(capsys, tmp_path, fixtures_dir, gpu_table):
    """A host as it arrives: no driver, the recorded PCI tree of the 1x H200 host."""
    out = run_module(
        capsys,
        nvidia_smi="nvidia-smi-not-here",
        nvswitch_proc_dir=str(tmp_path),
        pci_devices_dir=str(fixtures_dir / "pci" / "h200-x1" / "devices"),
        pci_gpus=gpu_table,
        _ansible_check_mode=True,
    )
    assert (out["rc"], out["changed"], out["source"], out["gpu_count"], out["driver_version"]) == (0, False, "pci", 1, None)
    assert (out["gpus"][0]["name"], out["gpus"][0]["pci_bus_id"]) == ("NVIDIA H200", "00000000:00:06.0")


def test_nvidia_smi_is_read_when_present_and_says_so(capsys, monkeypatch, fixtures_dir, proc_dir, gpu_table):
    monkeypatch.setenv("FLEETSERVE_FAKE_GPU_DIR", str(fixtures_dir / "nvidia-smi" / "h200-x1"))
    out = run_module(
        capsys,
        nvidia_smi=str(fixtures_dir / "bin" / "nvidia-smi"),
        nvswitch_proc_dir=str(proc_dir),
        pci_devices_dir=str(fixtures_dir / "pci" / "h200-x1" / "devices"),
        pci_gpus=gpu_table,
    )
    assert (out["source"], out["driver_version"]) == ("nvidia-smi", "580.159.04")


def test_a_host_with_no_nvidia_gpu_on_pci(capsys, tmp_path, gpu_table):
    (tmp_path / "0000:00:03.0").mkdir()
    for name, value in (("vendor", "0x1af4"), ("device", "0x1041"), ("class", "0x020000")):
        (tmp_path / "0000:00:03.0" / name).write_text(value + "\n")
    out = run_module(capsys, nvidia_smi="nvidia-smi-not-here", pci_devices_dir=str(tmp_path), pci_gpus=gpu_table)
    assert (out["rc"], out["reason"]) == (1, "no_gpus")


def test_driver_not_loaded_through_the_stub(capsys, monkeypatch, fixtures_dir, tmp_path):
    monkeypatch.setenv("FLEETSERVE_FAKE_GPU_DIR", str(tmp_path / "absent"))
    out = run_module(capsys, nvidia_smi=str(fixtures_dir / "bin" / "nvidia-smi"), nvswitch_proc_dir=str(tmp_path))
    assert (out["rc"], out["reason"]) == (1, "driver_not_loaded")
    assert out["msg"].startswith(
        "nvidia-smi cannot reach the NVIDIA kernel driver (NVIDIA-SMI has failed because it "
        "couldn't communicate with the NVIDIA driver."
    )


@pytest.mark.parametrize(
    "text,rc,reason",
    [
        (
            "Failed to initialize NVML: Driver/library version mismatch\nNVML library version: 580.95",
            18,
            "driver_library_mismatch",
        ),
        ("No devices were found", 6, "no_gpus"),
    ],
)
def test_real_failure_messages(capsys, tmp_path, text, rc, reason):
    out = run_module(capsys, nvidia_smi=fake_binary(tmp_path, text, rc), nvswitch_proc_dir=str(tmp_path))
    assert (out["rc"], out["reason"]) == (1, reason)


def test_truncated_output_fails_cleanly(capsys, tmp_path, fixtures_dir):
    xml = (fixtures_dir / "nvidia-smi" / "h200-x1" / "nvidia-smi-q.xml").read_text()
    out = run_module(capsys, nvidia_smi=fake_binary(tmp_path, xml[:3000], 0), nvswitch_proc_dir=str(tmp_path))
    assert (out["rc"], out["reason"]) == (1, "parse_error")
