"""_dcgm: NVIDIA's DCGM / DCGM Exporter pairing, DCGM's packages per CUDA major, the mode and port rules."""

import pytest
import yaml

from ansible_collections.fleetserve.minimax.plugins.module_utils import _dcgm
from ansible_collections.fleetserve.minimax.plugins.module_utils import _nvidia_driver as nv

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def pairs(collection_root):
    return yaml.safe_load((collection_root / "roles" / "dcgm_exporter" / "vars" / "main.yml").read_text())[
        "__dcgm_exporter_pairs"
    ]


@pytest.fixture(scope="module")
def defaults(collection_root):
    return yaml.safe_load((collection_root / "roles" / "dcgm_exporter" / "defaults" / "main.yml").read_text())


def test_the_default_release_is_a_known_pair(pairs, defaults):
    pair = _dcgm.pairing(defaults["dcgm_exporter_version"], pairs)
    assert pair == {"dcgm": "4.6.0", "exporter": "4.8.3", "release": "4.6.0-4.8.3"}
    assert pairs[pair["exporter"]] == pair["dcgm"]


def test_a_release_tag_names_both_halves():
    # A tag the table doesn't know is NVIDIA's own statement of the pair: accepted as written.
    assert _dcgm.pairing("4.2.3-4.1.1", {}) == {"dcgm": "4.2.3", "exporter": "4.1.1", "release": "4.2.3-4.1.1"}


def test_a_bare_exporter_version_takes_its_pair_from_the_table(pairs):
    assert _dcgm.pairing("4.8.4", pairs)["release"] == "4.6.1-4.8.4"
    assert _dcgm.pairing(" 4.8.3 ", pairs)["dcgm"] == "4.6.0"


def test_an_exporter_version_without_a_paired_dcgm_is_refused_naming_the_fix():
    with pytest.raises(ValueError) as err:
        _dcgm.pairing("4.8.9", {"4.8.3": "4.6.0"})
    assert str(err.value) == (
        "dcgm_exporter_version 4.8.9 is a DCGM Exporter version without a paired DCGM version, and the exporter "
        "must run with the DCGM it was released with. Set dcgm_exporter_version to NVIDIA's release tag "
        "<dcgm version>-<exporter version> (DCGM Exporter release notes; known here: 4.6.0-4.8.3)."
    )


def test_a_tag_that_contradicts_nvidias_pair_is_refused(pairs):
    with pytest.raises(ValueError) as err:
        _dcgm.pairing("4.5.2-4.8.3", pairs)
    assert str(err.value) == (
        "dcgm_exporter_version 4.5.2-4.8.3 pairs DCGM Exporter 4.8.3 with DCGM 4.5.2, but NVIDIA released exporter "
        "4.8.3 with DCGM 4.6.0. Set dcgm_exporter_version: 4.6.0-4.8.3."
    )


def test_dcgm_3_is_refused(pairs):
    with pytest.raises(ValueError, match=r"^dcgm_exporter_version 3\.3\.9-3\.6\.1 needs DCGM 3\.3\.9, but the"):
        _dcgm.pairing("3.3.9-3.6.1", pairs)


@pytest.mark.parametrize("value", ["", None, "latest", "4.8", "4.6.0-4.8.3-ubuntu22.04", "v4.8.3"])
def test_anything_else_is_refused(value, pairs):
    with pytest.raises(
        ValueError, match=r"is not a DCGM Exporter release: set dcgm_exporter_version to .*e\.g\. 4\.6\.1-4\.8\.4\.$"
    ):
        _dcgm.pairing(value, pairs)


def test_cuda_major_of_the_recorded_driver(fixtures_dir):
    summary = nv.parse_smi_xml((fixtures_dir / "nvidia-smi" / "h200-x1" / "nvidia-smi-q.xml").read_text())
    assert _dcgm.cuda_major(summary["cuda_version"]) == "13"
    assert _dcgm.dcgm_packages("13") == ["datacenter-gpu-manager-4-core", "datacenter-gpu-manager-4-cuda13"]


@pytest.mark.parametrize("value", [None, "", "N/A"])
def test_no_cuda_version_names_the_fix(value):
    with pytest.raises(ValueError, match=r"run the nvidia_driver role first .* dcgm_exporter_cuda_major\.$"):
        _dcgm.cuda_major(value)
    with pytest.raises(ValueError, match="dcgm_exporter_cuda_major"):
        _dcgm.dcgm_packages("cuda13")


def test_mode():
    assert _dcgm.decide_mode("auto", True) == "container"
    assert _dcgm.decide_mode("auto", False) == "package"
    assert _dcgm.decide_mode("package", True) == "package"
    assert _dcgm.decide_mode("container", False) == "container"
    with pytest.raises(ValueError, match="set dcgm_exporter_mode"):
        _dcgm.decide_mode("docker", True)


def test_port_collisions():
    _dcgm.check_port(9400, {"the engine (preflight_port)": 8000, "x": None})
    with pytest.raises(ValueError) as err:
        _dcgm.check_port(8000, {"the engine (preflight_port)": 8000, "the router (router_port)": "8000"})
    assert str(err.value) == (
        "dcgm_exporter_port 8000 is also the port of the engine (preflight_port), the router (router_port) on this "
        "host: set dcgm_exporter_port to a free port (NVIDIA's default is 9400)."
    )


def test_every_counter_is_a_dcgm_field_with_a_prometheus_type(defaults):
    counters = defaults["dcgm_exporter_counters"]
    fields = [c["field"] for c in counters]
    assert len(fields) == len(set(fields))
    assert all(
        f.startswith("DCGM_FI_") and c["type"] in ("gauge", "counter") and c["help"] for f, c in zip(fields, counters)
    )
    # The metrics that matter (issue 19): utilisation, memory, temperature, power, XID, ECC, NVLink errors.
    for field in (
        "DCGM_FI_DEV_GPU_UTIL",
        "DCGM_FI_DEV_FB_USED",
        "DCGM_FI_DEV_GPU_TEMP",
        "DCGM_FI_DEV_POWER_USAGE",
        "DCGM_FI_DEV_XID_ERRORS",
        "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
        "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL",
    ):
        assert field in fields
    assert set(defaults["dcgm_exporter_verify_metrics"]) <= set(fields)


def test_the_host_read_splits_into_its_parts():
    text = (
        "noise\n--- smi_rc\n0\n--- held\ndatacenter-gpu-manager-exporter\ndatacenter-gpu-manager-4-core\n--- docker\n"
    )
    assert _dcgm.sections(text) == {
        "smi_rc": "0",
        "held": "datacenter-gpu-manager-exporter\ndatacenter-gpu-manager-4-core",
        "docker": "",
    }
    assert _dcgm.sections("") == {}
