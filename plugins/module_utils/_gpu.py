# -*- coding: utf-8 -*-
# Copyright: fleetserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parse what nvidia-smi prints into GPU facts. Pure functions; no subprocess here.

Failures raise GpuFactsError (a ValueError) with a stable ``reason`` for callers to branch on and a
message that names the fix.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

# The exact columns tests/fixtures/bin/nvidia-smi replays; the order is the CSV order.
QUERY_FIELDS = (
    "index",
    "name",
    "uuid",
    "memory.total",
    "memory.used",
    "compute_cap",
    "driver_version",
    "persistence_mode",
    "pci.bus_id",
    "power.limit",
)
QUERY_ARGS = ["--query-gpu=" + ",".join(QUERY_FIELDS), "--format=csv,noheader,nounits"]

MSG_DRIVER_NOT_LOADED = "couldn't communicate with the NVIDIA driver"
MSG_MISMATCH = "Driver/library version mismatch"
MSG_NO_DEVICES = "No devices were found"


class GpuFactsError(ValueError):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def classify_failure(rc: int, output: str) -> GpuFactsError:
    """Turn a failed nvidia-smi run into the error a person can act on."""
    text = (output or "").strip()
    first = text.splitlines()[0] if text else f"(no output, rc={rc})"
    if MSG_DRIVER_NOT_LOADED in text:
        return GpuFactsError(
            "driver_not_loaded",
            f"nvidia-smi cannot reach the NVIDIA kernel driver ({first}); load it with 'modprobe nvidia' "
            "or reboot after the driver install (role fleetserve.minimax.nvidia_driver), then re-run",
        )
    if MSG_MISMATCH in text:
        return GpuFactsError(
            "driver_library_mismatch",
            f"the loaded NVIDIA kernel module and the NVML library differ ({first}); this follows a driver "
            "upgrade without a reboot: reboot the host (or reload the nvidia modules), then re-run",
        )
    if MSG_NO_DEVICES in text:
        return no_gpus_error()
    return GpuFactsError("nvidia_smi_failed", f"nvidia-smi failed with rc={rc}: {first}")


def no_gpus_error() -> GpuFactsError:
    return GpuFactsError(
        "no_gpus",
        "nvidia-smi sees no GPU on this host; check that the GPUs are visible (lspci | grep -i nvidia), "
        "not bound to vfio-pci or hidden by CUDA_VISIBLE_DEVICES, and target a GPU host",
    )


def _text(node, path: str, default=None):
    found = node.find(path)
    if found is None or found.text is None:
        return default
    value = found.text.strip()
    return default if value in ("", "N/A") else value


def _mib(value) -> int | None:
    match = re.match(r"^(\d+)\s*MiB$", value or "")
    return int(match.group(1)) if match else None


def parse_query_xml(text: str) -> dict:
    """`nvidia-smi -q -x` -> host facts and one dict per GPU (no compute capability: the XML lacks it)."""
    if not (text or "").strip():
        raise GpuFactsError("parse_error", "nvidia-smi -q -x printed nothing; run it by hand to see why")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as err:
        raise GpuFactsError(
            "parse_error",
            f"nvidia-smi -q -x printed XML that does not parse ({err}); the output is truncated "
            "or the driver is broken: run 'nvidia-smi -q -x' by hand",
        ) from None
    if root.tag != "nvidia_smi_log":
        raise GpuFactsError("parse_error", f"nvidia-smi -q -x printed <{root.tag}>, not <nvidia_smi_log>")
    gpus = []
    for index, node in enumerate(root.findall("gpu")):
        total = _mib(_text(node, "fb_memory_usage/total"))
        if total is None:
            raise GpuFactsError("parse_error", f"GPU {index} has no fb_memory_usage/total in nvidia-smi -q -x")
        gpus.append(
            {
                "index": index,
                "name": _text(node, "product_name"),
                "uuid": _text(node, "uuid"),
                "architecture": _text(node, "product_architecture"),
                "pci_bus_id": _text(node, "pci/pci_bus_id") or node.get("id"),
                "memory_total_mib": total,
                "memory_used_mib": _mib(_text(node, "fb_memory_usage/used")),
                "persistence_mode": _text(node, "persistence_mode") == "Enabled",
                "mig_mode": _text(node, "mig_mode/current_mig") == "Enabled",
                "fabric_state": _text(node, "fabric/state"),
                "fabric_status": _text(node, "fabric/status"),
                "compute_capability": None,
                "processes": [
                    {"pid": _text(p, "pid"), "name": _text(p, "process_name"), "used_memory": _text(p, "used_memory")}
                    for p in node.findall("processes/process_info")
                ],
            }
        )
    attached = _text(root, "attached_gpus")
    if attached is not None and attached.isdigit() and int(attached) != len(gpus):
        raise GpuFactsError(
            "parse_error",
            f"nvidia-smi -q -x reports {attached} attached GPUs but describes {len(gpus)}; "
            "the output is truncated: run 'nvidia-smi -q -x' by hand",
        )
    if not gpus:
        raise no_gpus_error()
    return {"driver_version": _text(root, "driver_version"), "cuda_version": _text(root, "cuda_version"), "gpus": gpus}


# The one rule for "the NVSwitch fabric is ready to serve": every GPU's fabric state Completed with status
# Success (Fabric Manager has trained it). Preflight and the Fabric Manager role both decide by it.
FABRIC_READY = ("Completed", "Success")


def fabric_not_ready(gpus: list) -> list:
    """`GPU i: state/status` for each GPU whose fabric is not ready (N/A where nvidia-smi reports none)."""
    return [
        f"GPU {g['index']}: {g['fabric_state'] or 'N/A'}/{g['fabric_status'] or 'N/A'}"
        for g in gpus
        if (g["fabric_state"], g["fabric_status"]) != FABRIC_READY
    ]


def parse_query_csv(text: str) -> dict:
    """`--query-gpu=...` CSV -> {uuid: compute capability string}."""
    caps = {}
    for line in (text or "").splitlines():
        if not line.strip():
            continue
        cols = [c.strip() for c in line.split(",")]
        if len(cols) != len(QUERY_FIELDS):
            raise GpuFactsError(
                "parse_error",
                f"nvidia-smi --query-gpu printed {len(cols)} columns, expected {len(QUERY_FIELDS)}: {line.strip()!r}",
            )
        row = dict(zip(QUERY_FIELDS, cols))
        if not re.match(r"^\d+\.\d+$", row["compute_cap"]):
            raise GpuFactsError(
                "parse_error",
                f"nvidia-smi reports compute capability {row['compute_cap']!r} for GPU {row['index']}; "
                "a driver >= 510 is needed for the compute_cap field: upgrade the driver",
            )
        caps[row["uuid"]] = row["compute_cap"]
    return caps


def parse_topo(text: str) -> dict:
    """`nvidia-smi topo -m` -> {"links": {"0-1": "NV18"}, "nvlink_counts": {"0-1": 18}} for GPU pairs."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in (text or "").splitlines()]
    header = next((line.split() for line in lines if line.strip().startswith("GPU0")), None)
    if header is None:
        raise GpuFactsError("parse_error", "nvidia-smi topo -m printed no GPU matrix header; run it by hand")
    columns = [h for h in header if re.match(r"^GPU\d+$", h)]
    links, counts = {}, {}
    for line in lines:
        cells = line.split()
        if not cells or not re.match(r"^GPU\d+$", cells[0]) or cells == header:
            continue
        row = int(cells[0][3:])
        for col, cell in zip(columns, cells[1 : 1 + len(columns)]):
            peer = int(col[3:])
            if peer <= row:
                continue
            key = f"{row}-{peer}"
            links[key] = cell
            match = re.match(r"^NV(\d+)$", cell)
            counts[key] = int(match.group(1)) if match else 0
    return {"links": links, "nvlink_counts": counts}


def merge_facts(xml_facts: dict, caps: dict, topo: dict, nvswitch_count: int) -> dict:
    """One result: per-GPU facts with compute capability, host-level links, NVSwitch and fabric state."""
    gpus = []
    for gpu in xml_facts["gpus"]:
        cap = caps.get(gpu["uuid"])
        if cap is None:
            raise GpuFactsError(
                "parse_error",
                f"GPU {gpu['index']} ({gpu['uuid']}) is in nvidia-smi -q -x but not in --query-gpu; "
                "GPUs changed between the two calls: re-run",
            )
        gpus.append({k: v for k, v in dict(gpu, compute_capability=cap).items() if k != "processes"})
    states = sorted({g["fabric_state"] for g in gpus if g["fabric_state"]})
    return {
        "driver_version": xml_facts["driver_version"],
        "cuda_version": xml_facts["cuda_version"],
        "gpu_count": len(gpus),
        "gpus": gpus,
        "links": topo["links"],
        "nvlink_counts": topo["nvlink_counts"],
        "nvswitch_present": nvswitch_count > 0,
        "nvswitch_count": nvswitch_count,
        "fabric_manager_state": states[0] if len(states) == 1 else ("mixed" if states else None),
        "fabric_not_ready": fabric_not_ready(gpus) if nvswitch_count or states else [],
    }


# --- Before any driver: the GPUs as PCI shows them ------------------------------------------------
# A bare host has no nvidia-smi, but the kernel lists every PCI function under /sys/bus/pci/devices
# with its vendor, device and class IDs. The device ID names the SKU; a table in the catalog data
# (roles/preflight/vars/gpus.yml) maps it to what nvidia-smi would report, so the serving plan can be
# made before the driver is installed and confirmed once it is.
NVIDIA_VENDOR = 0x10DE
# PCI base class 03 (display): subclass 00 VGA-compatible, 02 3D controller (every datacenter GPU).
GPU_CLASSES = (0x0300, 0x0302)
# Base class 06 subclass 80 ("other bridge"): how NVSwitches enumerate.
NVSWITCH_CLASS = 0x0680


def _hex(value: str) -> int:
    return int(str(value).strip(), 16)


def pci_bus_id(address: str) -> str:
    """sysfs `0000:00:06.0` -> nvidia-smi's `00000000:00:06.0` (8-digit domain, upper case)."""
    domain, rest = address.split(":", 1)
    return f"{int(domain, 16):08X}:{rest.upper()}"


def parse_pci(functions: list, table: dict) -> dict:
    """PCI functions [{address, vendor, device, class}] (hex strings, as sysfs has them) -> facts shaped like
    merge_facts' result, each GPU described by its entry in ``table`` ({"0x2335": {name, memory_total_mib,
    compute_capability, architecture}}). No driver yet: driver_version is None and nothing is known of
    MIG, persistence or links; the plan made from these facts is confirmed once nvidia-smi works."""
    known = {f"0x{_hex(k):04x}": v for k, v in (table or {}).items()}
    gpus, nvswitches = [], 0
    for function in sorted(functions, key=lambda f: f["address"]):
        if _hex(function["vendor"]) != NVIDIA_VENDOR:
            continue
        klass = _hex(function["class"]) >> 8
        if klass == NVSWITCH_CLASS:
            nvswitches += 1
            continue
        if klass not in GPU_CLASSES:
            continue  # the GPU's audio function, USB controllers of older boards
        device = f"0x{_hex(function['device']):04x}"
        entry = known.get(device)
        if entry is None:
            raise GpuFactsError(
                "unknown_pci_device",
                f"the NVIDIA GPU at {function['address']} has PCI device ID {device}, which the GPU table does not "
                f"know; add it to preflight_pci_gpus_extra as {{'{device}': {{name: <nvidia-smi's product name>, "
                "memory_total_mib: <MiB>, compute_capability: '<major.minor>', architecture: <name>}} (figures from "
                "NVIDIA's datasheet or nvidia-smi on a host of that SKU), or install the driver first "
                "(nvidia_driver_mode: install) so that preflight reads the GPUs with nvidia-smi",
            )
        gpus.append(
            {
                "index": len(gpus),
                "name": entry["name"],
                "uuid": None,
                "architecture": entry.get("architecture"),
                "pci_bus_id": pci_bus_id(function["address"]),
                "pci_device_id": device,
                "memory_total_mib": int(entry["memory_total_mib"]),
                "memory_used_mib": None,
                "persistence_mode": False,
                "mig_mode": False,
                "fabric_state": None,
                "fabric_status": None,
                "compute_capability": str(entry["compute_capability"]),
            }
        )
    if not gpus:
        raise GpuFactsError(
            "no_gpus",
            "neither nvidia-smi nor PCI shows an NVIDIA GPU on this host (no function of vendor 0x10de with a "
            "display or 3D controller class under /sys/bus/pci/devices); target a GPU host, or check that the "
            "GPUs are passed through to this machine",
        )
    return {
        "driver_version": None,
        "cuda_version": None,
        "gpu_count": len(gpus),
        "gpus": gpus,
        "links": {},
        "nvlink_counts": {},
        "nvswitch_present": nvswitches > 0,
        "nvswitch_count": nvswitches,
        "fabric_manager_state": None,
        "fabric_not_ready": [],  # unknown before the driver: checked again when the plan is confirmed
    }
