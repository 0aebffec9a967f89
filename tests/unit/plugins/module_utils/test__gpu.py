"""_gpu: parse REAL nvidia-smi recordings (tests/fixtures/nvidia-smi/<host>/) and their broken variants."""

from __future__ import annotations

import pytest

from ansible_collections.fleetserve.minimax.plugins.module_utils import _gpu

pytestmark = pytest.mark.unit

HOSTS = {
    # host: (gpu count, name, memory MiB, links, fabric state)
    "h200-x1": (1, "NVIDIA H200", 143771, {}, None),
    "h200-x2": (2, "NVIDIA H200", 143771, {"0-1": 18}, "Completed"),
    "h100-x1": (1, "NVIDIA H100 80GB HBM3", 81559, {}, None),
    "h200-x2-b": (2, "NVIDIA H200", 143771, {"0-1": 18}, "Completed"),
    "h200-x4": (4, "NVIDIA H200", 143771, {p: 18 for p in ("0-1", "0-2", "0-3", "1-2", "1-3", "2-3")}, "Completed"),
}


def recorded(fixtures_dir, host, name):
    return (fixtures_dir / "nvidia-smi" / host / name).read_text()


def facts_of(fixtures_dir, host, nvswitches=0):
    return _gpu.merge_facts(
        _gpu.parse_query_xml(recorded(fixtures_dir, host, "nvidia-smi-q.xml")),
        _gpu.parse_query_csv(recorded(fixtures_dir, host, "query-gpu.csv")),
        _gpu.parse_topo(recorded(fixtures_dir, host, "topo.txt")),
        nvswitches,
    )


@pytest.mark.parametrize("host", sorted(HOSTS))
def test_real_recordings_parse(fixtures_dir, host):
    count, name, mib, links, fabric = HOSTS[host]
    facts = facts_of(fixtures_dir, host)
    assert facts["gpu_count"] == count and facts["driver_version"] == "580.159.04" and facts["cuda_version"] == "13.0"
    assert [g["index"] for g in facts["gpus"]] == list(range(count))
    for gpu in facts["gpus"]:
        assert (gpu["name"], gpu["memory_total_mib"], gpu["compute_capability"]) == (name, mib, "9.0")
        assert gpu["persistence_mode"] is True and gpu["mig_mode"] is False
        assert gpu["uuid"].startswith("GPU-") and gpu["architecture"] == "Hopper"
    assert facts["nvlink_counts"] == links
    assert facts["fabric_manager_state"] == fabric
    assert facts["nvswitch_present"] is False


def test_two_gpu_host_details(fixtures_dir):
    facts = facts_of(fixtures_dir, "h200-x2")
    assert facts["links"] == {"0-1": "NV18"}
    assert [g["pci_bus_id"] for g in facts["gpus"]] == ["00000000:00:06.0", "00000000:00:07.0"]
    assert [g["fabric_status"] for g in facts["gpus"]] == ["Success", "Success"]


def test_nvswitch_count_is_reported(fixtures_dir):
    facts = facts_of(fixtures_dir, "h200-x2", nvswitches=4)
    assert (facts["nvswitch_present"], facts["nvswitch_count"]) == (True, 4)


def test_truncated_xml_is_a_parse_error(fixtures_dir):
    text = recorded(fixtures_dir, "h200-x2", "nvidia-smi-q.xml")
    with pytest.raises(_gpu.GpuFactsError) as err:
        _gpu.parse_query_xml(text[: len(text) // 2])
    assert err.value.reason == "parse_error"
    assert str(err.value).startswith("nvidia-smi -q -x printed XML that does not parse (")
    assert str(err.value).endswith("the output is truncated or the driver is broken: run 'nvidia-smi -q -x' by hand")


def test_xml_missing_a_gpu_that_it_counts_is_refused(fixtures_dir):
    text = recorded(fixtures_dir, "h200-x2", "nvidia-smi-q.xml")
    second = text.index('<gpu id="00000000:00:07.0">')
    cut = text[:second] + "</nvidia_smi_log>\n"  # well-formed, but attached_gpus still says 2
    with pytest.raises(
        _gpu.GpuFactsError, match=r"^nvidia-smi -q -x reports 2 attached GPUs but describes 1; the output is truncated"
    ):
        _gpu.parse_query_xml(cut)


def test_zero_gpus_in_xml(fixtures_dir):
    text = recorded(fixtures_dir, "h200-x1", "nvidia-smi-q.xml")
    empty = text[: text.index("<gpu ")].replace("<attached_gpus>1</attached_gpus>", "<attached_gpus>0</attached_gpus>")
    with pytest.raises(_gpu.GpuFactsError) as err:
        _gpu.parse_query_xml(empty + "</nvidia_smi_log>\n")
    assert err.value.reason == "no_gpus"


@pytest.mark.parametrize(
    "text,message",
    [
        ("", "nvidia-smi -q -x printed nothing; run it by hand to see why"),
        ("<foo/>", "nvidia-smi -q -x printed <foo>, not <nvidia_smi_log>"),
        (
            "<nvidia_smi_log><gpu id='x'><product_name>X</product_name></gpu></nvidia_smi_log>",
            "GPU 0 has no fb_memory_usage/total in nvidia-smi -q -x",
        ),
    ],
)
def test_malformed_xml(text, message):
    with pytest.raises(_gpu.GpuFactsError) as err:
        _gpu.parse_query_xml(text)
    assert (str(err.value), err.value.reason) == (message, "parse_error")


@pytest.mark.parametrize(
    "output,reason,start",
    [
        # The real line nvidia-smi prints when the kernel module is not loaded (also what the replay stub prints).
        (
            "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest "
            "NVIDIA driver is installed and running.\n",
            "driver_not_loaded",
            "nvidia-smi cannot reach the NVIDIA kernel driver (NVIDIA-SMI has failed because",
        ),
        (
            "Failed to initialize NVML: Driver/library version mismatch\nNVML library version: 580.95\n",
            "driver_library_mismatch",
            "the loaded NVIDIA kernel module and the NVML library differ (Failed to initialize NVML: Driver/library version mismatch)",
        ),
        ("No devices were found\n", "no_gpus", "nvidia-smi sees no GPU on this host"),
        ("Segmentation fault\n", "nvidia_smi_failed", "nvidia-smi failed with rc=9: Segmentation fault"),
    ],
)
def test_classify_failure(output, reason, start):
    err = _gpu.classify_failure(9, output)
    assert err.reason == reason
    assert str(err).startswith(start)


def test_driver_not_loaded_names_the_fix():
    err = _gpu.classify_failure(9, "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.")
    assert str(err).endswith(
        "load it with 'modprobe nvidia' or reboot after the driver install "
        "(role fleetserve.minimax.nvidia_driver), then re-run"
    )


def test_mismatch_names_the_fix():
    err = _gpu.classify_failure(18, "Failed to initialize NVML: Driver/library version mismatch")
    assert str(err).endswith("reboot the host (or reload the nvidia modules), then re-run")


@pytest.mark.parametrize(
    "line,message",
    [
        (
            "0, NVIDIA H200, GPU-x, 143771",
            "nvidia-smi --query-gpu printed 4 columns, expected 10: '0, NVIDIA H200, GPU-x, 143771'",
        ),
        (
            "0, NVIDIA H200, GPU-x, 143771, 0, [N/A], 580.159.04, Enabled, 00000000:00:06.0, 700.00",
            "nvidia-smi reports compute capability '[N/A]' for GPU 0; a driver >= 510 is needed for the compute_cap field: upgrade the driver",
        ),
    ],
)
def test_malformed_csv(line, message):
    with pytest.raises(_gpu.GpuFactsError) as err:
        _gpu.parse_query_csv(line)
    assert str(err.value) == message


def test_gpu_missing_from_csv_is_refused(fixtures_dir):
    xml = _gpu.parse_query_xml(recorded(fixtures_dir, "h200-x2", "nvidia-smi-q.xml"))
    first_only = _gpu.parse_query_csv(recorded(fixtures_dir, "h200-x2", "query-gpu.csv").splitlines()[0])
    with pytest.raises(
        _gpu.GpuFactsError,
        match=r"^GPU 1 \(GPU-1596077d-bca2-62c9-3538-f7340de1563d\) is in nvidia-smi -q -x but not in --query-gpu",
    ):
        _gpu.merge_facts(xml, first_only, {"links": {}, "nvlink_counts": {}}, 0)


def test_topo_without_matrix_is_refused():
    with pytest.raises(_gpu.GpuFactsError, match=r"^nvidia-smi topo -m printed no GPU matrix header"):
        _gpu.parse_topo("Legend:\n  X = Self\n")


def test_topo_pcie_pairs_count_zero_links():
    text = "\tGPU0\tGPU1\tGPU2\tCPU Affinity\nGPU0\t X \tNV12\tSYS\t0-31\nGPU1\tNV12\t X \tPIX\t0-31\nGPU2\tSYS\tPIX\t X \t0-31\n"
    topo = _gpu.parse_topo(text)
    assert topo["links"] == {"0-1": "NV12", "0-2": "SYS", "1-2": "PIX"}
    assert topo["nvlink_counts"] == {"0-1": 12, "0-2": 0, "1-2": 0}
