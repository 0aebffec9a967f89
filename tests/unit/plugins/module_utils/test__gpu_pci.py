"""_gpu.parse_pci and the catalog's GPU table: a host's GPUs before its driver, from the real PCI recording
of a 1x H200 host, planned exactly as the same host's nvidia-smi recording plans it."""

from __future__ import annotations

import copy

import pytest
import yaml

from ansible_collections.fleetserve.minimax.plugins.module_utils import _catalog, _gpu, _plan
from ansible_collections.fleetserve.minimax.plugins.modules import gpu_facts

pytestmark = pytest.mark.unit

HOST = {"python_version": "3.11.2", "glibc_version": "2.36"}
H200_FUNCTION = {"address": "0000:00:06.0", "vendor": "0x10de", "device": "0x2335", "class": "0x030200"}


@pytest.fixture(scope="module")
def table(collection_root):
    return yaml.safe_load((collection_root / "roles" / "preflight" / "vars" / "gpus.yml").read_text())["__preflight_pci_gpus"]


@pytest.fixture(scope="module")
def catalog(collection_root):
    return _catalog.load_catalog(collection_root / _catalog.CATALOG_RELPATH)


@pytest.fixture(scope="module")
def recorded_pci(fixtures_dir):
    return gpu_facts.read_pci(str(fixtures_dir / "pci" / "h200-x1" / "devices"))


@pytest.fixture(scope="module")
def recorded_smi(fixtures_dir):
    """The same host through nvidia-smi -q -x (its XML has no compute capability: 9.0 is Hopper's)."""
    facts = _gpu.parse_query_xml((fixtures_dir / "pci" / "h200-x1" / "nvidia-smi-q.xml").read_text())
    facts["gpus"] = [dict(g, compute_capability="9.0") for g in facts["gpus"]]
    return dict(facts, source="nvidia-smi")


def test_the_recorded_tree_reads_as_seven_functions_one_of_them_the_h200(recorded_pci):
    assert len(recorded_pci) == 7
    nvidia = [f for f in recorded_pci if f["vendor"] == "0x10de"]
    assert nvidia == [H200_FUNCTION]


def test_recorded_h200_reads_from_pci_as_nvidia_smi_reads_it(recorded_pci, recorded_smi, table):
    facts = _gpu.parse_pci(recorded_pci, table)
    assert (facts["gpu_count"], facts["driver_version"], facts["nvswitch_present"]) == (1, None, False)
    pci, smi = facts["gpus"][0], recorded_smi["gpus"][0]
    for key in ("name", "memory_total_mib", "architecture", "pci_bus_id", "mig_mode", "compute_capability"):
        assert pci[key] == smi[key], key


def test_plan_from_pci_equals_plan_from_nvidia_smi_and_confirms(catalog, recorded_pci, recorded_smi, table):
    facts = dict(_gpu.parse_pci(recorded_pci, table), source="pci")
    before = _plan.build_plan(catalog, "fleetserve-lab-tiny-m2", facts, HOST, {"engine": "sglang"})
    after = _plan.build_plan(catalog, "fleetserve-lab-tiny-m2", recorded_smi, HOST, {"engine": "sglang"})
    assert before == after
    _plan.confirm_plan(before, after)  # no refusal


def test_pci_plan_leaves_the_driver_check_to_the_confirmation(catalog, recorded_pci, table):
    facts = dict(_gpu.parse_pci(recorded_pci, table), source="pci")
    _plan.build_plan(catalog, "fleetserve-lab-tiny-m2", facts, HOST, {"engine": "sglang"})  # no driver yet: plans
    without_source = {k: v for k, v in facts.items() if k != "source"}
    with pytest.raises(ValueError, match="NVIDIA driver version is unknown"):
        _plan.build_plan(catalog, "fleetserve-lab-tiny-m2", without_source, HOST, {"engine": "sglang"})


def test_confirmation_names_every_difference(catalog, recorded_pci, recorded_smi, table):
    wrong = copy.deepcopy(table)
    wrong["0x2335"].update(name="NVIDIA H200 NVL", memory_total_mib=40960)  # a wrong entry: another SKU, 40 GB
    facts = dict(_gpu.parse_pci(recorded_pci, wrong), source="pci")
    before = _plan.build_plan(catalog, "MiniMax-M2.5", dict(facts, gpus=facts["gpus"] * 8), HOST, {})
    smi8 = dict(recorded_smi, gpus=[dict(recorded_smi["gpus"][0], index=i) for i in range(8)])
    after = _plan.build_plan(catalog, "MiniMax-M2.5", smi8, HOST, {})
    with pytest.raises(ValueError) as err:
        _plan.confirm_plan(before, after)
    message = str(err.value)
    assert message.startswith("with the driver installed, nvidia-smi shows GPUs that change the plan made from PCI")
    assert "gpu_name 'NVIDIA H200 NVL' -> 'NVIDIA H200'" in message
    assert "preflight_pci_gpus_extra" in message and "nothing was started on this host" in message


def test_fewer_gpus_after_the_driver_is_a_difference(catalog, recorded_smi):
    two = dict(recorded_smi, gpus=[dict(recorded_smi["gpus"][0], index=i) for i in range(2)])
    before = _plan.build_plan(catalog, "fleetserve-lab-tiny-m2", two, HOST, {"engine": "sglang"})
    after = _plan.build_plan(catalog, "fleetserve-lab-tiny-m2", recorded_smi, HOST, {"engine": "sglang"})
    with pytest.raises(ValueError, match=r"gpu_count 2 -> 1; tensor_parallel_size 2 -> 1"):
        _plan.confirm_plan(before, after)


def test_unknown_device_names_the_id_and_how_to_add_it(table):
    function = dict(H200_FUNCTION, device="0x2beef"[:6])
    with pytest.raises(_gpu.GpuFactsError) as err:
        _gpu.parse_pci([function], table)
    assert err.value.reason == "unknown_pci_device"
    assert str(err.value).startswith(
        "the NVIDIA GPU at 0000:00:06.0 has PCI device ID 0x2bee, which the GPU table does not know; "
        "add it to preflight_pci_gpus_extra as {'0x2bee': {name: "
    )


def test_no_nvidia_gpu_on_the_bus(recorded_pci, table):
    others = [f for f in recorded_pci if f["vendor"] != "0x10de"]
    with pytest.raises(_gpu.GpuFactsError) as err:
        _gpu.parse_pci(others, table)
    assert err.value.reason == "no_gpus"
    assert "neither nvidia-smi nor PCI shows an NVIDIA GPU on this host" in str(err.value)


def test_audio_functions_are_skipped_and_nvswitches_counted(table):
    functions = [
        dict(H200_FUNCTION, address=f"0000:{bus:02x}:00.0") for bus in (0x1B, 0x18)
    ] + [
        {"address": "0000:1b:00.1", "vendor": "0x10de", "device": "0x22a3", "class": "0x040300"},  # HD audio
        {"address": "0000:05:00.0", "vendor": "0x10de", "device": "0x22a3", "class": "0x068000"},  # NVSwitch
        {"address": "0000:06:00.0", "vendor": "0x10de", "device": "0x22a3", "class": "0x068000"},
    ]
    facts = _gpu.parse_pci(functions, table)
    assert [g["pci_bus_id"] for g in facts["gpus"]] == ["00000000:18:00.0", "00000000:1B:00.0"]
    assert [g["index"] for g in facts["gpus"]] == [0, 1]
    assert (facts["nvswitch_present"], facts["nvswitch_count"]) == (True, 2)


def test_table_ids_may_be_written_in_any_case(table):
    facts = _gpu.parse_pci([dict(H200_FUNCTION, device="0x2335")], {"0X2335": table["0x2335"]})
    assert facts["gpus"][0]["name"] == "NVIDIA H200"


def test_the_table_covers_the_datacenter_skus_each_with_a_source(table):
    names = {entry["name"] for entry in table.values()}
    for sku in ("H100", "H200", "H20", "H800", "A100", "L40S", "B200"):
        assert any(sku in name for name in names), sku
    for device, entry in table.items():
        assert set(entry) == {"name", "memory_total_mib", "compute_capability", "architecture", "source"}, device
        assert entry["source"].startswith(f"pci.ids {device[2:]} "), device
        assert entry["name"].startswith("NVIDIA "), device


def test_table_entries_match_every_nvidia_smi_recording(fixtures_dir, table):
    """Where a real host was recorded, its nvidia-smi figures are the table's, by the PCI ID nvidia-smi reports."""
    seen = 0
    for xml in sorted((fixtures_dir / "nvidia-smi").glob("*/nvidia-smi-q.xml")):
        text = xml.read_text()
        device = "0x" + text.split("<pci_device_id>")[1][:4].lower()
        for gpu in _gpu.parse_query_xml(text)["gpus"]:
            assert (table[device]["name"], table[device]["memory_total_mib"]) == (gpu["name"], gpu["memory_total_mib"])
            seen += 1
    assert seen >= 10
