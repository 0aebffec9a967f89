"""Pure helpers for the NVIDIA driver, Fabric Manager and their packages.

Everything here takes text the host produced (sysfs, ``nvidia-smi -q -x``, ``apt-cache madison``,
``mokutil --sb-state``) and returns plain data, or raises ValueError with a message that names the fix.
The roles call these through the ``fleetserve.minimax.nvidia_*`` filters.
"""

from __future__ import annotations

import re

from ansible_collections.fleetserve.minimax.plugins.module_utils import _gpu

_VERSION = re.compile(r"^\d+\.\d+(\.\d+)?$")
CONTROL_NODE_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
# GPU generations whose NVSwitch fabric is NVLink 5: Fabric Manager needs NVLSM and ib_umad there.
NVLINK5_ARCHITECTURES = frozenset({"Blackwell"})


def parse_sysfs_version(text: str | None) -> str | None:
    """Version of the loaded kernel module from /sys/module/nvidia/version; None when not loaded."""
    if text is None or not text.strip():
        return None
    version = text.strip()
    if not _VERSION.match(version):
        raise ValueError(
            f"unexpected content in the nvidia module version file: {version!r} (expected e.g. 580.159.04)."
        )
    return version


def upstream_version(debian_version: str) -> str:
    """580.159.04 from 580.159.04-0ubuntu1 or 1:580.159.04-1 (epoch and Debian revision dropped)."""
    version = debian_version.split(":", 1)[-1]
    return version.rsplit("-", 1)[0] if "-" in version else version


def branch(version: str) -> str:
    """Driver branch (the package name suffix): 580 for 580.159.04."""
    if not _VERSION.match(str(version)):
        raise ValueError(f"driver version {version!r} is not of the form 580.159.04: set an exact upstream version.")
    return str(version).split(".", 1)[0]


def parse_madison(text: str) -> list:
    """[{package, version, source}] from ``apt-cache madison`` output, in apt's order (newest first)."""
    rows = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) >= 3 and parts[0] and parts[1]:
            rows.append({"package": parts[0], "version": parts[1], "source": parts[2]})
    return rows


def resolve_pin(madison_text: str, package: str, version: str, fix: str) -> str:
    """The full Debian version of ``package`` whose upstream version is exactly ``version``.

    ``version`` may also be a full Debian version (580.159.04-0ubuntu1). ``fix`` ends the error message:
    what the operator should change (it differs between the driver and Fabric Manager).
    """
    available = [r["version"] for r in parse_madison(madison_text) if r["package"] == package]
    for candidate in available:
        if candidate == version or upstream_version(candidate) == version:
            return candidate
    shown = ", ".join(dict.fromkeys(available)) or "none"
    raise ValueError(f"{package} {version} is not in this host's apt repositories (available: {shown}). {fix}")


def resolve_pins(madison_text: str, packages: list, version: str, fix: str) -> list:
    """``["pkg=full-version", ...]`` for apt, every package pinned to the same upstream version."""
    return [f"{p}={resolve_pin(madison_text, p, version, fix)}" for p in packages]


def driver_packages(family: str, driver_branch: str, kernel_module: str) -> list:
    """Package names for a driver install, by naming family.

    ``ubuntu``: Ubuntu's archive and NVIDIA's CUDA repo for Ubuntu (nvidia-driver-580[-open], per branch).
    ``debian``: NVIDIA's CUDA repo for Debian 12 (unversioned names, the branch is in the version).
    """
    if kernel_module not in ("open", "proprietary"):
        raise ValueError(f"nvidia_driver_kernel_module must be 'open' or 'proprietary', got {kernel_module!r}.")
    open_suffix = "-open" if kernel_module == "open" else ""
    if family == "ubuntu":
        return [
            f"nvidia-driver-{driver_branch}{open_suffix}",
            f"nvidia-dkms-{driver_branch}{open_suffix}",
            f"nvidia-utils-{driver_branch}",
        ]
    if family == "debian":
        dkms = "nvidia-kernel-open-dkms" if kernel_module == "open" else "nvidia-kernel-dkms"
        return ["nvidia-driver", dkms, "nvidia-smi"]
    raise ValueError(f"no NVIDIA package naming for {family!r}: supported are Ubuntu 22.04/24.04 and Debian 12.")


def reboot_decision(loaded: str | None, installed: str | None) -> dict:
    """Reboot only when the loaded module differs from the installed driver; never because a task 'changed'."""
    if installed is None or loaded == installed:
        return {
            "required": False,
            "reason": f"loaded nvidia module {loaded or 'none'} matches the installed driver {installed or 'none'}",
        }
    if loaded is None:
        return {"required": True, "reason": f"driver {installed} is installed but no nvidia kernel module is loaded"}
    return {
        "required": True,
        "reason": f"the loaded nvidia kernel module is {loaded} but driver {installed} is installed",
    }


def is_control_node(inventory_hostname: str, connection: str | None) -> bool:
    return connection == "local" or inventory_hostname in CONTROL_NODE_NAMES


def parse_smi_xml(text: str) -> dict:
    """The parts of ``nvidia-smi -q -x`` the prerequisite roles decide on, read by the one nvidia-smi parser
    (_gpu.parse_query_xml): driver and CUDA versions, and per GPU its name, architecture, persistence mode,
    memory used, processes and fabric state (None where nvidia-smi reports none)."""
    try:
        return _gpu.parse_query_xml(text)
    except _gpu.GpuFactsError as err:
        raise ValueError(str(err)) from None


def check_not_serving(summary: dict, max_memory_used_mib: int) -> None:
    """Refuse to replace a driver under work that is running on the GPUs."""
    busy = [
        f"GPU {g['index']} ({g['name']}): {len(g['processes'])} process(es), {g['memory_used_mib']} MiB used"
        for g in summary["gpus"]
        if g["processes"] or (g["memory_used_mib"] or 0) > max_memory_used_mib
    ]
    if busy:
        raise ValueError(
            "install mode would replace the NVIDIA driver under running work: " + "; ".join(busy) + ". "
            "Drain the host first (stop the engines: systemctl stop the vLLM/SGLang units), "
            "or keep the installed driver with nvidia_driver_mode: verify."
        )


def check_secure_boot(sb_state_output: str, modules_signed: bool) -> None:
    """DKMS builds unsigned modules; with Secure Boot on the kernel refuses them and GPUs vanish after reboot."""
    if "SecureBoot enabled" in sb_state_output and not modules_signed:
        raise ValueError(
            "Secure Boot is enabled and the NVIDIA kernel modules built by DKMS would be unsigned, so the kernel "
            "would refuse to load them. Enroll a Machine Owner Key that DKMS signs with (mokutil --import) and set "
            "nvidia_driver_secure_boot_signed: true, or disable Secure Boot in the firmware."
        )


def check_running_version(running: str, pinned: str) -> None:
    if pinned and running != pinned:
        raise ValueError(
            f"driver {running} is running but nvidia_driver_version pins {pinned}. "
            f"Set nvidia_driver_version: {running} to accept it, or set nvidia_driver_mode: install "
            "(drain the host first) to move to the pin."
        )


def fabric_plan(nvswitch_devices: int, summary: dict | None) -> dict:
    """Whether this host needs Fabric Manager, and whether it is an NVLink 5 fabric (NVLSM + ib_umad).

    Fabric Manager drives the NVSwitches this OS can see. A GPU fabric state without visible switches means
    the switches are driven from outside: the recorded 2x and 4x H200 VMs (tests/fixtures/nvidia-smi/h200-x2-b,
    h200-x4) report fabric Completed with an empty /proc/driver/nvidia-nvswitch/devices, their hypervisor
    running Fabric Manager. Installing it there would only fail to start; `external` marks that case so the
    role can still refuse a fabric that is not ready.
    """
    gpus = (summary or {}).get("gpus", [])
    fabric_in_smi = any(g["fabric_state"] is not None for g in gpus)
    required = nvswitch_devices > 0
    nvlink5 = required and any(g["architecture"] in NVLINK5_ARCHITECTURES for g in gpus)
    external = not required and fabric_in_smi
    if required:
        reason = f"{nvswitch_devices} NVSwitch device(s) found"
    elif external:
        reason = "nvidia-smi reports a GPU fabric but this OS sees no NVSwitch: the fabric is managed outside it"
    else:
        reason = "no NVSwitch devices and no fabric state: a PCIe or NVLink-bridge host"
    return {"required": required, "nvlink5": nvlink5, "external": external, "reason": reason}


def fabric_not_ready(summary: dict) -> list:
    """GPUs whose fabric is not ready (_gpu.FABRIC_READY); an empty list means ready to serve."""
    return _gpu.fabric_not_ready(summary["gpus"])
