"""Role preflight end to end: ansible-playbook against localhost with the replay nvidia-smi stub.

Every bad input must fail with its exact message BEFORE anything on the host changes: each case checks the
message, that the run changed nothing (recap and the models directory), and the plan fact on success.
"""

from __future__ import annotations

import json
import socket
import sys

import pytest

pytestmark = pytest.mark.integration

PLAY = """
- name: Preflight under test
  hosts: all
  gather_facts: false  # the role gathers the minimal subset it needs: faster, and proves it does
  roles:
    - role: fleetserve.minimax.preflight
"""


@pytest.fixture()
def port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture()
def preflight(run_playbook, tmp_path, fixtures_dir, port):
    """Run the role; returns (rc, {task name: result}, models_dir). Extra vars as keyword arguments."""
    inventory = tmp_path / "inventory.ini"
    inventory.write_text(f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")
    models = tmp_path / "models"
    proc = tmp_path / "nvidia-nvswitch"
    (proc / "devices").mkdir(parents=True)

    def _run(gpu_dir="h200-x2", check=False, **extra):
        variables = {
            "preflight_nvidia_smi": str(fixtures_dir / "bin" / "nvidia-smi"),
            "preflight_port": port,
            "preflight_nvswitch_proc_dir": str(proc),
            "fleetserve_models_dir": str(models),
            **extra,
        }
        gpu_path = gpu_dir if "/" in str(gpu_dir) else fixtures_dir / "nvidia-smi" / gpu_dir
        env = {
            "FLEETSERVE_FAKE_GPU_DIR": str(gpu_path),
            "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
            "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.json",
        }
        done = run_playbook(PLAY, "-e", json.dumps(variables), inventory=str(inventory), env=env, check=check)
        report = json.loads(done.stdout[done.stdout.index("{") :])
        tasks = {t["task"]["name"].split(" : ")[-1]: t["hosts"]["localhost"] for t in report["plays"][0]["tasks"]}
        stats = report["stats"]["localhost"]
        assert stats["changed"] == 0, stats
        assert not models.exists(), "preflight created the models directory"
        return done.returncode, tasks, models

    _run.proc = proc
    return _run


def failure(tasks):
    failed = [r for r in tasks.values() if r.get("failed")]
    assert len(failed) == 1, failed
    return failed[0]["msg"]


def sparse_weights(models, model="MiniMax-M2.5", size=254 * 10**9):
    """Weights 'already downloaded' (a sparse file), as on a host that serves: the disk check must pass."""
    target = models / model
    target.mkdir(parents=True)
    with open(target / "model-00001-of-00130.safetensors", "wb") as handle:
        handle.truncate(size)


def test_plan_on_two_h200s(preflight, port, tmp_path):
    models = tmp_path / "served"
    sparse_weights(models)
    rc, tasks, _models = preflight(preflight_max_context=65536, fleetserve_models_dir=str(models))
    assert rc == 0, [r.get("msg") for r in tasks.values() if r.get("failed")]
    plan = tasks["Preflight | Publish the plan for the later roles"]["ansible_facts"]["preflight_plan"]
    assert (plan["model"], plan["engine"], plan["engine_version"]) == ("MiniMax-M2.5", "sglang", "0.5.23")
    assert (plan["tensor_parallel_size"], plan["expert_parallel_size"], plan["max_context"], plan["port"]) == (
        2,
        1,
        65536,
        port,
    )
    assert plan["engine_args"][:6] == [
        "--model-path",
        f"{models}/MiniMax-M2.5",
        "--served-model-name",
        "MiniMaxAI/MiniMax-M2.5",
        "--tp-size",
        "2",
    ]


def test_check_mode_passes_with_weights_present(preflight, tmp_path):
    models = tmp_path / "served"
    sparse_weights(models)
    rc, tasks, _ = preflight(check=True, fleetserve_models_dir=str(models))
    assert rc == 0, [r.get("msg") for r in tasks.values() if r.get("failed")]
    assert (
        tasks["Preflight | Publish the plan for the later roles"]["ansible_facts"]["preflight_plan"][
            "disk_needed_bytes"
        ]
        == 0
    )


def test_port_held_by_an_engine_passes(preflight, tmp_path, port):
    """A re-run on a host that already serves: whatever answers /health with 200 is taken as our engine."""
    import http.server
    import threading

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", port), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        models = tmp_path / "served"
        sparse_weights(models)
        rc, tasks, _ = preflight(fleetserve_models_dir=str(models))
    finally:
        server.shutdown()
        server.server_close()
    assert rc == 0, [r.get("msg") for r in tasks.values() if r.get("failed")]


def fabric_not_started(tmp_path, fixtures_dir):
    variant = tmp_path / "h200-x2-fabric-not-started"
    variant.mkdir()
    for src in (fixtures_dir / "nvidia-smi" / "h200-x2").iterdir():
        text = src.read_text()
        if src.name == "nvidia-smi-q.xml":
            text = text.replace("<state>Completed</state>", "<state>Not Started</state>")
        (variant / src.name).write_text(text)
    return str(variant)


BAD = [
    (
        "Python too old",
        {"preflight_min_python": "3.99"},
        f"the host's Python {sys.version.split()[0]} is older than 3.99; install python3 >= 3.99 (Ubuntu 22.04+, Debian 12 ship it) "
        "and point ansible_python_interpreter at it",
    ),
    (
        "unknown model",
        {"preflight_model": "MiniMax-M9"},
        "model 'MiniMax-M9' is not in the catalog; set preflight_model to one of: MiniMax-M1-40k, MiniMax-M1-80k, "
        "MiniMax-M2, MiniMax-M2.1, MiniMax-M2.5, fleetserve-lab-tiny-m2",
    ),
    (
        "tensor parallel not a number",
        {"preflight_tensor_parallel_size": "two"},
        "Validation of arguments failed:\nargument 'preflight_tensor_parallel_size' is of type str and we were unable to convert "
        "to int: \"'two'\" cannot be converted to an int",
    ),
    (
        "no nvidia-smi and no NVIDIA GPU on PCI",
        {"preflight_nvidia_smi": "/nonexistent/nvidia-smi", "preflight_pci_devices_dir": "/nonexistent/pci"},
        "neither nvidia-smi nor PCI shows an NVIDIA GPU on this host (no function of vendor 0x10de with a display or "
        "3D controller class under /sys/bus/pci/devices); target a GPU host, or check that the GPUs are passed "
        "through to this machine",
    ),
    (
        "M1 on SGLang",
        {"preflight_model": "MiniMax-M1-80k", "preflight_engine": "sglang"},
        "MiniMax-M1-80k does not run on sglang; set preflight_engine to one of: vllm",
    ),
    (
        "engine below the floor",
        {"preflight_engine": "vllm", "preflight_engine_version": "0.11.0"},
        "vllm 0.11.0 is below the floor 0.11.1 for MiniMax-M2.5; set preflight_engine_version to 0.33.0 (or any release >= 0.11.1)",
    ),
    (
        "engine kind unknown",
        {"preflight_engine": "tgi"},
        "MiniMax-M2.5 does not run on tgi; set preflight_engine to one of: sglang, vllm",
    ),
    (
        "TP over the GPUs",
        {"preflight_tensor_parallel_size": 4},
        "tensor_parallel_size 4 x data_parallel_size 1 does not divide the 2 GPUs of this host; choose sizes whose product "
        "divides the GPU count",
    ),
    (
        "context over the model maximum",
        {"preflight_max_context": 1000000},
        "preflight_max_context 1000000 exceeds MiniMax-M2.5's maximum of 196608 tokens per sequence; lower preflight_max_context "
        "to <= 196608",
    ),
    (
        "M1 weights on two GPUs",
        {"preflight_model": "MiniMax-M1-40k"},
        "MiniMax-M1-40k does not fit: 238.7 GB of weights per GPU at tensor_parallel_size 2 plus 10.9 GB of runtime reserve "
        "exceed the 135.7 GB budget (0.9 x 150.8 GB) of each NVIDIA H200; use at least 4 such GPUs (tensor_parallel_size 4) "
        "or larger GPUs",
    ),
    (
        "memory fraction",
        {"preflight_mem_fraction": 1.5},
        "fleetserve.minimax.preflight (entry point main): preflight_mem_fraction is 1.5, out of range: set it to a "
        "number from 0.05 to 1",
    ),
    (
        # Inside the argument spec's range, but the whole GPU leaves nothing for the CUDA context: the planner's rule.
        "memory fraction of the whole GPU",
        {"preflight_mem_fraction": 1.0},
        "preflight_mem_fraction 1.0 must be between 0 and 1 (exclusive); the sglang default is 0.85",
    ),
    (
        "reasoning style",
        {"preflight_reasoning_style": "hidden"},
        "MiniMax-M2.5 on sglang has no 'hidden' reasoning parser; set preflight_reasoning_style to one of: append_think, separate",
    ),
]


@pytest.mark.parametrize("extra,message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input(preflight, extra, message):
    rc, tasks, _ = preflight(**extra)
    assert rc == 2
    assert failure(tasks) == message


def test_unsupported_os(preflight):
    rc, tasks, _ = preflight(preflight_supported_os={"Ubuntu": ["22.04", "24.04"]})
    facts = tasks["Preflight | Gather the facts the checks read"]["ansible_facts"]
    assert rc == 2
    assert failure(tasks) == (
        f"{facts['ansible_distribution']} {facts['ansible_distribution_version']} is not supported; use one of "
        "Ubuntu 22.04/24.04, or extend preflight_supported_os if you have tested it"
    )


def test_driver_not_loaded(preflight, tmp_path):
    rc, tasks, _ = preflight(gpu_dir=str(tmp_path / "no-driver"))
    assert rc == 2
    assert failure(tasks).startswith(
        "nvidia-smi cannot reach the NVIDIA kernel driver (NVIDIA-SMI has failed because it "
        "couldn't communicate with the NVIDIA driver."
    )


def test_nvswitch_without_trained_fabric(preflight, tmp_path, fixtures_dir):
    for bus in ("0000:05:00.0", "0000:06:00.0"):
        (preflight.proc / "devices" / bus).mkdir()
    rc, tasks, _ = preflight(gpu_dir=fabric_not_started(tmp_path, fixtures_dir))
    assert rc == 2
    assert failure(tasks) == (
        "this host has 2 NVSwitches but the GPU fabric is not ready (GPU 0: Not Started/Success, "
        "GPU 1: Not Started/Success); start nvidia-fabricmanager "
        "(role fleetserve.minimax.nvidia_fabricmanager) with the same version as the driver (580.159.04)"
    )


def test_not_enough_disk(preflight, tmp_path):
    rc, tasks, _ = preflight(preflight_weights_via_git_lfs=True)
    assert rc == 2
    assert failure(tasks).startswith(
        f"{tmp_path}/models/MiniMax-M2.5 needs 506.0 GB more free disk for the weights plus 10% "
        "margin (twice the weights: Git LFS keeps a second copy under .git/lfs), its filesystem has "
    )


def test_port_taken_by_another_program(preflight, tmp_path, port):
    models = tmp_path / "served"
    sparse_weights(models)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        rc, tasks, _ = preflight(fleetserve_models_dir=str(models))
    assert rc == 2
    assert failure(tasks) == (
        f"port {port} on localhost is used by another program (it does not answer /health like an "
        "engine); stop that program or set preflight_port to a free port"
    )
