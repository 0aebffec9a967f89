"""_nvidia_driver: parsing real host output and every driver / Fabric Manager decision."""

import pytest

from ansible_collections.fleetserve.minimax.plugins.module_utils import _nvidia_driver as nv

pytestmark = pytest.mark.unit

MADISON = """\
nvidia-fabricmanager-580 | 580.172.08-1 | http://repo.example/ubuntu2404/x86_64  Packages
nvidia-fabricmanager-580 | 580.159.04-1 | http://repo.example/ubuntu2404/x86_64  Packages
nvidia-driver-580 | 580.159.04-0ubuntu1 | file:/srv/fake-apt ./ Packages
nvidia-driver-580 | 580.126.09-0ubuntu1 | file:/srv/fake-apt ./ Packages
"""


@pytest.fixture(scope="module")
def smi(fixtures_dir):
    return {
        name: nv.parse_smi_xml((fixtures_dir / "nvidia-smi" / name / "nvidia-smi-q.xml").read_text())
        for name in ("h200-x1", "h200-x2", "h200-x2-b", "h200-x4")
    }


def test_parse_real_h200_x2(smi):
    summary = smi["h200-x2"]
    assert summary["driver_version"] == "580.159.04"
    assert summary["cuda_version"] == "13.0"
    assert [
        (g["index"], g["name"], g["architecture"], g["persistence_mode"], g["memory_used_mib"], g["processes"])
        for g in summary["gpus"]
    ] == [
        (0, "NVIDIA H200", "Hopper", True, 0, []),
        (1, "NVIDIA H200", "Hopper", True, 0, []),
    ]
    assert {(g["fabric_state"], g["fabric_status"]) for g in summary["gpus"]} == {("Completed", "Success")}


def test_parse_real_h200_x1_has_no_fabric(smi):
    assert [(g["fabric_state"], g["fabric_status"]) for g in smi["h200-x1"]["gpus"]] == [(None, None)]


def test_parse_rejects_non_xml():
    with pytest.raises(
        ValueError,
        match=r"^nvidia-smi -q -x printed XML that does not parse \(.*\); the output is truncated or the driver is broken: "
        r"run 'nvidia-smi -q -x' by hand$",
    ):
        nv.parse_smi_xml("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.")


def _busy(summary, processes, used):
    gpu = dict(summary["gpus"][0], processes=processes, memory_used_mib=used)
    return dict(summary, gpus=[gpu] + summary["gpus"][1:])


def test_serving_gpus_block_install(smi):
    nv.check_not_serving(smi["h200-x2"], 1024)
    busy = _busy(smi["h200-x2"], [{"pid": "4242", "name": "python3", "used_memory": "120000 MiB"}], 120512)
    with pytest.raises(ValueError) as err:
        nv.check_not_serving(busy, 1024)
    assert str(err.value) == (
        "install mode would replace the NVIDIA driver under running work: GPU 0 (NVIDIA H200): 1 process(es), 120512 MiB used. "
        "Drain the host first (stop the engines: systemctl stop the vLLM/SGLang units), or keep the installed driver with nvidia_driver_mode: verify."
    )


def test_memory_alone_counts_as_serving(smi):
    # In containers nvidia-smi often lists no processes (other PID namespace), but the memory is still held.
    with pytest.raises(ValueError, match=r"GPU 0 \(NVIDIA H200\): 0 process\(es\), 2048 MiB used\."):
        nv.check_not_serving(_busy(smi["h200-x1"], [], 2048), 1024)


def test_processes_in_xml_are_parsed():
    xml = (
        "<nvidia_smi_log><driver_version>580.159.04</driver_version><gpu id='0'><product_name>NVIDIA H200</product_name>"
        "<fb_memory_usage><total>143771 MiB</total><used>70000 MiB</used></fb_memory_usage><processes><process_info><pid>77</pid>"
        "<process_name>vllm</process_name><used_memory>69000 MiB</used_memory></process_info></processes></gpu></nvidia_smi_log>"
    )
    gpu = nv.parse_smi_xml(xml)["gpus"][0]
    assert gpu["processes"] == [{"pid": "77", "name": "vllm", "used_memory": "69000 MiB"}]
    assert gpu["memory_used_mib"] == 70000
    assert gpu["fabric_state"] is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [("580.159.04\n", "580.159.04"), ("", None), (None, None), ("535.54", "535.54")],
)
def test_sysfs_version(text, expected):
    assert nv.parse_sysfs_version(text) == expected


def test_sysfs_version_garbage():
    with pytest.raises(ValueError) as err:
        nv.parse_sysfs_version("NVRM version: 580")
    assert (
        str(err.value)
        == "unexpected content in the nvidia module version file: 'NVRM version: 580' (expected e.g. 580.159.04)."
    )


@pytest.mark.parametrize(
    ("debian", "upstream"),
    [
        ("580.159.04-0ubuntu1", "580.159.04"),
        ("1:580.159.04-1", "580.159.04"),
        ("580.159.04", "580.159.04"),
        ("580.95.05-0ubuntu0.24.04.2", "580.95.05"),
    ],
)
def test_upstream_version(debian, upstream):
    assert nv.upstream_version(debian) == upstream


def test_branch():
    assert nv.branch("580.159.04") == "580"
    with pytest.raises(ValueError) as err:
        nv.branch("580")
    assert str(err.value) == "driver version '580' is not of the form 580.159.04: set an exact upstream version."


def test_parse_madison_keeps_apt_order():
    rows = nv.parse_madison(MADISON)
    assert rows[0] == {
        "package": "nvidia-fabricmanager-580",
        "version": "580.172.08-1",
        "source": "http://repo.example/ubuntu2404/x86_64  Packages",
    }
    assert len(rows) == 4


@pytest.mark.parametrize(
    ("package", "version", "expected"),
    [
        ("nvidia-fabricmanager-580", "580.159.04", "580.159.04-1"),
        ("nvidia-driver-580", "580.126.09", "580.126.09-0ubuntu1"),
        ("nvidia-driver-580", "580.159.04-0ubuntu1", "580.159.04-0ubuntu1"),
    ],
)
def test_resolve_pin_is_exact(package, version, expected):
    assert nv.resolve_pin(MADISON, package, version, "fix.") == expected


def test_resolve_pin_missing_names_available_and_fix():
    with pytest.raises(ValueError) as err:
        nv.resolve_pin(MADISON, "nvidia-driver-580", "580.159.0", "Set nvidia_driver_version to one of them.")
    assert str(err.value) == (
        "nvidia-driver-580 580.159.0 is not in this host's apt repositories "
        "(available: 580.159.04-0ubuntu1, 580.126.09-0ubuntu1). Set nvidia_driver_version to one of them."
    )
    with pytest.raises(
        ValueError,
        match=r"^nvidia-fabricmanager-570 570.1.2 is not in this host's apt repositories \(available: none\)\. x$",
    ):
        nv.resolve_pin(MADISON, "nvidia-fabricmanager-570", "570.1.2", "x")


@pytest.mark.parametrize(
    ("family", "module", "packages"),
    [
        ("ubuntu", "open", ["nvidia-driver-580-open", "nvidia-dkms-580-open", "nvidia-utils-580"]),
        ("ubuntu", "proprietary", ["nvidia-driver-580", "nvidia-dkms-580", "nvidia-utils-580"]),
        ("debian", "open", ["nvidia-driver", "nvidia-kernel-open-dkms", "nvidia-smi"]),
        ("debian", "proprietary", ["nvidia-driver", "nvidia-kernel-dkms", "nvidia-smi"]),
    ],
)
def test_driver_packages(family, module, packages):
    assert nv.driver_packages(family, "580", module) == packages


def test_driver_packages_errors():
    with pytest.raises(
        ValueError, match=r"^no NVIDIA package naming for 'redhat': supported are Ubuntu 22.04/24.04 and Debian 12\.$"
    ):
        nv.driver_packages("redhat", "580", "open")
    with pytest.raises(
        ValueError, match=r"^nvidia_driver_kernel_module must be 'open' or 'proprietary', got 'nouveau'\.$"
    ):
        nv.driver_packages("ubuntu", "580", "nouveau")


@pytest.mark.parametrize(
    ("loaded", "installed", "required", "reason"),
    [
        ("580.159.04", "580.159.04", False, "loaded nvidia module 580.159.04 matches the installed driver 580.159.04"),
        (
            "580.126.09",
            "580.159.04",
            True,
            "the loaded nvidia kernel module is 580.126.09 but driver 580.159.04 is installed",
        ),
        (None, "580.159.04", True, "driver 580.159.04 is installed but no nvidia kernel module is loaded"),
        (None, None, False, "loaded nvidia module none matches the installed driver none"),
    ],
)
def test_reboot_only_on_module_mismatch(loaded, installed, required, reason):
    assert nv.reboot_decision(loaded, installed) == {"required": required, "reason": reason}


@pytest.mark.parametrize(
    ("host", "connection", "expected"),
    [("localhost", "ssh", True), ("gpu-01", "local", True), ("127.0.0.1", None, True), ("gpu-01", "ssh", False)],
)
def test_control_node(host, connection, expected):
    assert nv.is_control_node(host, connection) is expected


def test_secure_boot():
    nv.check_secure_boot("SecureBoot disabled\n", False)
    nv.check_secure_boot("SecureBoot enabled\n", True)
    nv.check_secure_boot("EFI variables are not supported on this system\n", False)
    with pytest.raises(ValueError) as err:
        nv.check_secure_boot("SecureBoot enabled\n", False)
    assert str(err.value) == (
        "Secure Boot is enabled and the NVIDIA kernel modules built by DKMS would be unsigned, so the kernel would refuse to load them. "
        "Enroll a Machine Owner Key that DKMS signs with (mokutil --import) and set nvidia_driver_secure_boot_signed: true, "
        "or disable Secure Boot in the firmware."
    )


def test_running_version_against_pin():
    nv.check_running_version("580.159.04", "580.159.04")
    nv.check_running_version("580.159.04", "")
    with pytest.raises(ValueError) as err:
        nv.check_running_version("580.126.09", "580.159.04")
    assert str(err.value) == (
        "driver 580.126.09 is running but nvidia_driver_version pins 580.159.04. Set nvidia_driver_version: 580.126.09 "
        "to accept it, or set nvidia_driver_mode: install (drain the host first) to move to the pin."
    )


def test_fabric_plan(smi):
    assert nv.fabric_plan(0, smi["h200-x1"]) == {
        "required": False,
        "nvlink5": False,
        "external": False,
        "reason": "no NVSwitch devices and no fabric state: a PCIe or NVLink-bridge host",
    }
    assert nv.fabric_plan(4, None) == {
        "required": True,
        "nvlink5": False,
        "external": False,
        "reason": "4 NVSwitch device(s) found",
    }
    assert nv.fabric_plan(4, smi["h200-x2"])["required"] is True
    blackwell = {"gpus": [dict(g, architecture="Blackwell", name="NVIDIA B200") for g in smi["h200-x2"]["gpus"]]}
    assert nv.fabric_plan(2, blackwell)["nvlink5"] is True
    assert nv.fabric_plan(0, {"gpus": [dict(smi["h200-x1"]["gpus"][0], architecture="Blackwell")]})["nvlink5"] is False


@pytest.mark.parametrize("host", ["h200-x2-b", "h200-x4"])
def test_fabric_managed_by_the_hypervisor_needs_no_fabric_manager(smi, host):
    """The real 2x/4x H200 VMs: fabric Completed, no NVSwitch visible. Fabric Manager there would fail to start."""
    assert nv.fabric_plan(0, smi[host]) == {
        "required": False,
        "nvlink5": False,
        "external": True,
        "reason": "nvidia-smi reports a GPU fabric but this OS sees no NVSwitch: the fabric is managed outside it",
    }
    assert nv.fabric_not_ready(smi[host]) == []


def test_fabric_not_ready(smi):
    assert nv.fabric_not_ready(smi["h200-x2"]) == []
    starting = {"gpus": [dict(g, fabric_state="In Progress", fabric_status="N/A") for g in smi["h200-x2"]["gpus"]]}
    assert nv.fabric_not_ready(starting) == ["GPU 0: In Progress/N/A", "GPU 1: In Progress/N/A"]
