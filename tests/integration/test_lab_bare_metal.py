"""A GPU host as it arrives, to a verified endpoint in one run of site.yml (issue: first contact).

One bare lab worker (`fleetserve lab up --bare`, FLEETSERVE_LAB=fs-bare): no driver and no nvidia-smi;
its /sys/bus/pci/devices is the one recorded on a real 1x H200 host (tests/fixtures/pci/h200-x1), and
the lab's apt repository holds the stand-in NVIDIA driver packages, whose nvidia-smi replays the same
host's recording once installed. The tests run in file order, each from the state the previous left:
1. check mode of preflight + driver on the bare host plans from PCI, reports the install, installs nothing;
2. `fleetserve deploy` (all of site.yml): preflight plans from PCI, nvidia_driver (mode auto) installs the
   pinned driver, the plan is confirmed through nvidia-smi, and the endpoint answers a chat request;
3. a re-run and `--check` change nothing;
4. the driver removed again and the GPU table made wrong for this SKU: the plan made from PCI differs from
   the one through nvidia-smi, and the host stops at the confirmation, naming the difference, with the
   engine's unit untouched.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from labs import running_lab

from fleetserve import cli, lab, paths

pytestmark = pytest.mark.integration

LAB = "fs-bare"
HOST = f"{LAB}-lab-1"
MODEL = "local-org/tiny-minimax-m2"
UNIT = "/etc/systemd/system/sglang.service"


def _sh(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", "exec", HOST, *argv], capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def bare(tmp_path_factory):
    with running_lab(LAB, tmp_path_factory.mktemp("state"), "--hosts", "1", "--bare"):
        yield {"key": lab.api_key()}


def _deploy(capsys, *argv: str) -> tuple[int, str]:
    """`fleetserve deploy` with one line per task result (no terminal): the lines and the summary."""
    code = cli.main(["deploy", *argv])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _site(ansible_env, collection_root, *args: str) -> subprocess.CompletedProcess:
    """ansible-playbook site.yml on the lab, as a user runs it."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "site.yml", "-i", str(paths.lab_inventory()), *args],
        cwd=collection_root,
        env=dict(ansible_env, FLEETSERVE_LAB=LAB),
        capture_output=True,
        text=True,
        check=False,
    )


def _purge_driver() -> None:
    """Back to a host without a driver: the stand-in packages purged, nvidia-smi gone."""
    # dpkg, not apt: a package that is not installed is skipped with a warning, and holds do not apply.
    removed = _sh("dpkg", "--purge", "nvidia-driver", "nvidia-kernel-open-dkms", "nvidia-smi")
    assert removed.returncode == 0, removed.stderr
    assert _sh("sh", "-c", "command -v nvidia-smi").returncode != 0


def _changed(output: str) -> list[str]:
    return [line for line in output.splitlines() if f" {HOST} " in line and " changed " in line]


def test_the_host_arrives_without_a_driver(bare):
    assert _sh("sh", "-c", "command -v nvidia-smi").returncode != 0
    assert _sh("cat", "/sys/bus/pci/devices/0000:00:06.0/device").stdout.strip() == "0x2335"


def test_check_mode_plans_from_pci_and_installs_nothing(bare, capsys):
    code, output = _deploy(capsys, "--check", "--tags", "preflight,nvidia_driver")
    assert code == 0, output[-3000:]
    assert "Preflight | Compute the serving plan" in output
    assert _sh("sh", "-c", "command -v nvidia-smi").returncode != 0
    assert "nvidia-driver" not in _sh("dpkg-query", "-W", "-f", "${Package}\n").stdout


def test_site_yml_takes_the_bare_host_to_a_verified_endpoint_in_one_run(bare, capsys):
    code, output = _deploy(capsys)
    assert code == 0, output[-4000:]
    lines = output.splitlines()
    installed = next(
        i for i, line in enumerate(lines) if "changed" in line and "Install the pinned driver packages" in line
    )
    confirmed = next(i for i, line in enumerate(lines) if "Confirm the plan with the driver's view of the GPUs" in line)
    engine = next(i for i, line in enumerate(lines) if "SGLang | Install the staged release, restart and wait for /health" in line)
    assert installed < confirmed < engine, "the driver goes in, then the plan is confirmed, then the engine starts"
    held = _sh("dpkg-query", "-W", "-f", "${Package} ${Version} ${Status}\n", "nvidia-driver", "nvidia-smi").stdout
    assert held.splitlines() == [
        "nvidia-driver 580.159.04-1 hold ok installed",
        "nvidia-smi 580.159.04-1 hold ok installed",
    ]
    ip = subprocess.run(
        ["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", HOST],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    request = urllib.request.Request(
        f"http://{ip}:8000/v1/chat/completions",
        data=json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}).encode(),
        headers={"Authorization": f"Bearer {bare['key']}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert json.load(response)["choices"][0]["message"]["content"]


def test_a_rerun_and_check_mode_change_nothing(bare, capsys):
    for argv in ([], ["--check"]):
        code, output = _deploy(capsys, *argv)
        assert code == 0, output[-3000:]
        assert _changed(output) == [], argv


def test_a_plan_the_driver_contradicts_stops_the_host_before_the_engine(bare, ansible_env, collection_root, tmp_path):
    _purge_driver()
    unit_before = _sh("stat", "-c", "%Y %s", UNIT).stdout
    assert unit_before, f"{UNIT} is where the engine's unit is"
    wrong = tmp_path / "wrong-table.yml"
    # A table entry that takes this H200 for an H200 NVL: the plan from PCI names the wrong GPU.
    wrong.write_text(
        "preflight_pci_gpus_extra:\n  '0x2335': {name: NVIDIA H200 NVL, memory_total_mib: 143771, "
        "compute_capability: '9.0', architecture: Hopper}\n"
    )
    proc = _site(ansible_env, collection_root, "-e", f"@{wrong}")
    assert proc.returncode == 2, proc.stdout[-3000:]
    assert (
        "with the driver installed, nvidia-smi shows GPUs that change the plan made from PCI before it: "
        "gpu_name 'NVIDIA H200 NVL' -> 'NVIDIA H200'"
    ) in proc.stdout
    assert "Engine | Serve SGLang from a venv" not in proc.stdout
    assert _sh("stat", "-c", "%Y %s", UNIT).stdout == unit_before


BAD = {
    "unknown NVIDIA device": (
        {"0000:00:06.0": ("0x10de", "0x2bee", "0x030200")},
        "the NVIDIA GPU at 0000:00:06.0 has PCI device ID 0x2bee, which the GPU table does not know; "
        "add it to preflight_pci_gpus_extra as {'0x2bee': {name: ",
    ),
    "no NVIDIA GPU on PCI": (
        {"0000:00:03.0": ("0x1af4", "0x1041", "0x020000")},
        "neither nvidia-smi nor PCI shows an NVIDIA GPU on this host",
    ),
    "a pin the repository lacks": (None, "nvidia-driver 580.95.05 is not in this host's apt repositories (available: "),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_on_a_bare_host_is_refused_before_anything_changes(bare, ansible_env, collection_root, case):
    """On the host without a driver again: each refusal names the fix, and the run added no NVIDIA package,
    apt source or modprobe file."""
    _purge_driver()
    functions, message = BAD[case]
    if functions:
        tree = f"/tmp/pci-{case.replace(' ', '-')}"
        for address, (vendor, device, klass) in functions.items():
            script = (
                f"mkdir -p {tree}/{address} && echo {vendor} > {tree}/{address}/vendor && "
                f"echo {device} > {tree}/{address}/device && echo {klass} > {tree}/{address}/class"
            )
            assert _sh("sh", "-c", script).returncode == 0
        args = ["-e", f"preflight_pci_devices_dir={tree}"]
    else:
        args = ["-e", "nvidia_driver_version=580.95.05"]
    before = _sh("sh", "-c", "ls /etc/modprobe.d /etc/apt/sources.list.d; dpkg-query -W -f '${Package}\\n'").stdout
    proc = _site(ansible_env, collection_root, *args)
    assert proc.returncode == 2, proc.stdout[-3000:]
    assert message in proc.stdout, proc.stdout[-3000:]
    assert "nvidia-smi" not in _sh("dpkg-query", "-W", "-f", "${Package}\n").stdout
    assert (
        _sh("sh", "-c", "ls /etc/modprobe.d /etc/apt/sources.list.d; dpkg-query -W -f '${Package}\\n'").stdout == before
    )
