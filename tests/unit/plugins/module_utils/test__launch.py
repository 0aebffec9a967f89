"""The launch spec: what the engine roles write to the host, from a planner plan and the roles' settings."""

from __future__ import annotations

import hashlib
import json

import pytest

from ansible_collections.fleetserve.minimax.plugins.module_utils import _catalog, _launch, _plan

pytestmark = pytest.mark.unit

H200 = {"name": "NVIDIA H200", "memory_total_mib": 143771, "compute_capability": "9.0", "mig_mode": False}
HOST = {"python_version": "3.11.2", "glibc_version": "2.36"}
OPEN = {"allow_unauthenticated": True}  # keyless on 0.0.0.0, as fleetserve_allow_unauthenticated: true


@pytest.fixture(scope="module")
def catalog(collection_root):
    return _catalog.load_catalog(collection_root / _catalog.CATALOG_RELPATH)


def plan(catalog, model, gpus=8, **wishes):
    facts = {"gpus": [dict(H200, index=i) for i in range(gpus)], "driver_version": "580.95.05"}
    return _plan.build_plan(catalog, model, facts, HOST, wishes)


def test_sglang_spec_is_the_plan_plus_the_deployment(catalog):
    p = plan(catalog, "MiniMax-M2.5", port=8123)
    spec = _launch.launch_spec(
        "sglang", p, {"api_key": True, "extra_args": ["--enable-cache-report"], "root": "/opt/x/"}
    )
    assert spec["argv"] == p["engine_args"] + [
        "--enable-cache-report",
        "--config",
        "/etc/fleetserve/sglang/sglang-secrets.yaml",
    ]
    assert spec["exec"] == ["/opt/x/venv-0.5.23/bin/python", "-m", "sglang.launch_server"] + spec["argv"]
    assert spec["env"] == {"HF_HUB_OFFLINE": "1"}
    assert spec["unit"]["path"] == "/etc/systemd/system/sglang.service"
    assert spec["unit"]["start_timeout_s"] == p["start_timeout_s"]
    assert spec["probe_url"] == "http://127.0.0.1:8123/health"
    assert spec["record_path"] == "/var/lib/fleetserve/releases/current.json"
    release = spec["release"]
    assert (release["engine"], release["version"], release["venv"], release["image"]) == (
        "sglang",
        "0.5.23",
        "/opt/x/venv-0.5.23",
        None,
    )
    assert release["plan"] == p and release["plan_digest"] == _launch.plan_digest(p)


def test_vllm_spec_runs_the_plan_in_the_pinned_image(catalog):
    p = plan(catalog, "MiniMax-M1-40k")
    spec = _launch.launch_spec(
        "vllm",
        p,
        {"image_digest": "sha256:" + "a" * 64, "gpus": "all", "ulimits": ["memlock=-1"], "network_host": False, **OPEN},
    )
    image = spec["release"]["image"]
    assert image["ref"] == "vllm/vllm-openai:v0.9.2@sha256:" + "a" * 64
    assert spec["argv"] == ["-m", "vllm.entrypoints.openai.api_server"] + p["engine_args"]
    docker = spec["exec"][: spec["exec"].index(image["ref"])]
    assert docker[:2] == ["/usr/bin/docker", "run"] and "--entrypoint" in docker
    assert ["--publish", "8000:8000"] == docker[docker.index("--publish") : docker.index("--publish") + 2]
    assert "--ulimit=memlock=-1" in docker and ["--gpus", "all"] == docker[docker.index("--gpus") :][:2]
    assert spec["env"] == {"HF_HUB_OFFLINE": "1", "SAFETENSORS_FAST_GPU": "1", "VLLM_USE_V1": "0"}


def test_the_serve_launcher(catalog):
    spec = _launch.launch_spec("vllm", plan(catalog, "MiniMax-M2.5", engine="vllm"), {"launcher": "serve", **OPEN})
    assert spec["argv"][0] == "serve" and spec["exec"][spec["exec"].index("--entrypoint") + 1] == "vllm"


@pytest.mark.parametrize(
    "extra, wish",
    [
        (["--tp-size", "4"], "preflight_tensor_parallel_size"),
        (["--tensor_parallel_size=4"], "preflight_tensor_parallel_size"),
        (["--context-length", "4096"], "preflight_max_context"),
        (["--port", "9000"], "preflight_port"),
        (["--api-key", "k"], "fleetserve_api_key"),
        (["--trust-remote-code"], "catalog entry"),
        (["--pp-size", "2"], "no pipeline parallelism"),
    ],
)
def test_extra_flags_never_re_decide_the_plan(catalog, extra, wish):
    with pytest.raises(_launch.LaunchError, match="which the serving plan decides") as refused:
        _launch.launch_spec("sglang", plan(catalog, "MiniMax-M2.5"), {"extra_args": extra, **OPEN})
    assert wish in str(refused.value)


def test_extra_flags_the_plan_leaves_open_pass(catalog):
    spec = _launch.launch_spec(
        "sglang", plan(catalog, "MiniMax-M2.5"), {"extra_args": ["--enable-cache-report"], **OPEN}
    )
    assert spec["argv"][-1] == "--enable-cache-report"


@pytest.mark.parametrize("key", ["VLLM_USE_V1", "HF_HUB_OFFLINE", "SAFETENSORS_FAST_GPU", "VLLM_API_KEY", "HF_TOKEN"])
def test_extra_env_never_re_decides_the_plan_nor_carries_a_secret(catalog, key):
    with pytest.raises(_launch.LaunchError, match=f"vllm_docker_extra_env sets {key}"):
        _launch.launch_spec("vllm", plan(catalog, "MiniMax-M2.5", engine="vllm"), {"extra_env": {key: "x"}, **OPEN})


def test_a_plan_for_the_other_engine_is_refused(catalog):
    with pytest.raises(_launch.LaunchError, match="sglang_venv needs a serving plan for the SGLang engine"):
        _launch.launch_spec("sglang", plan(catalog, "MiniMax-M1-40k"), {})


@pytest.mark.parametrize(
    "ref, version",
    [("v0.9.2", "0.9.2"), ("0.9.2", "0.9.2"), ("v0.9.2-fleet.1", "0.9.2"), ("v0.9.2rc1", "0.9.2rc1"), ("main", "")],
)
def test_source_version_reads_release_tags_only(ref, version):
    assert _launch.source_version(ref) == version


def test_source_checkout_of_another_release_is_refused(catalog):
    with pytest.raises(_launch.LaunchError, match="The source checkout v0.9.2rc1 is vLLM 0.9.2rc1, but the image runs"):
        _launch.launch_spec(
            "vllm", plan(catalog, "MiniMax-M1-40k"), {"source_checkout": True, "source_ref": "v0.9.2rc1", **OPEN}
        )


def test_absent_needs_no_plan():
    where = _launch.launch_spec("vllm", {}, {"service_name": "vllm-b", "release_dir": "/srv/rel"}, state="absent")
    assert where["unit"]["path"] == "/etc/systemd/system/vllm-b.service" and where["container"] == "vllm-b"
    assert where["record_path"] == "/srv/rel/current.json"


def test_plan_digest_is_the_one_older_records_carry(catalog):
    """Records written before the launch spec hashed `plan | to_json(sort_keys=true) | hash('sha1')`."""
    from ansible.plugins.filter.core import to_json

    p = plan(catalog, "MiniMax-M2.5")
    assert _launch.plan_digest(p) == hashlib.sha1(to_json(p, sort_keys=True).encode()).hexdigest()
    assert _launch.plan_digest(json.loads(json.dumps(p))) == _launch.plan_digest(p)


def test_the_disk_still_needed_is_no_part_of_the_release(catalog):
    """serving_plan adds disk_needed_bytes, which drops to 0 once the weights are there: a re-run is the same release."""
    p = plan(catalog, "MiniMax-M2.5")
    before, after = dict(p, disk_needed_bytes=230_000_000_000), dict(p, disk_needed_bytes=0)
    assert _launch.plan_digest(before) == _launch.plan_digest(after) == _launch.plan_digest(p)
    spec = _launch.launch_spec("sglang", before, OPEN)
    assert "disk_needed_bytes" not in spec["release"]["plan"]


TLS = {"cert_file": "/ctl/pki/engine.pem", "key_file": "/ctl/pki/engine.key", "ca_file": "/ctl/pki/ca.pem"}


@pytest.mark.parametrize(
    "engine,model,version",
    [("sglang", "MiniMax-M2.5", "0.5.23"), ("vllm", "MiniMax-M1-40k", "0.9.2"), ("vllm", "MiniMax-M2.5", "0.33.0")],
)
def test_tls_serves_https_with_the_copies_under_the_config_dir(catalog, engine, model, version):
    p = plan(catalog, model, engine=engine, engine_version=version, port=8443)
    spec = _launch.launch_spec(engine, p, {"tls": TLS, **OPEN})
    tls_dir = f"/etc/fleetserve/{engine}/tls"
    flags = ["--ssl-certfile", f"{tls_dir}/cert.pem", "--ssl-keyfile", f"{tls_dir}/key.pem"]
    assert spec["argv"][-4:] == flags and spec["exec"][-4:] == flags
    assert spec["tls"]["ca_file"] == f"{tls_dir}/ca.pem"
    assert spec["probe_url"] == "https://127.0.0.1:8443/health"
    assert (spec["release"]["scheme"], spec["release"]["tls_ca_file"]) == ("https", f"{tls_dir}/ca.pem")
    assert "/ctl/pki" not in json.dumps(spec)  # controller paths are the role's business, not the host's
    if engine == "vllm":  # the engine in the container reads the host's copies, mounted read-only
        assert ["--volume", f"{tls_dir}:{tls_dir}:ro"] == spec["exec"][
            spec["exec"].index(f"{tls_dir}:{tls_dir}:ro") - 1 :
        ][:2]


def test_without_tls_nothing_changes_but_the_recorded_scheme(catalog):
    p = plan(catalog, "MiniMax-M2.5")
    spec = _launch.launch_spec("sglang", p, {"tls": {"cert_file": "", "key_file": "", "ca_file": ""}, **OPEN})
    assert spec["argv"] == p["engine_args"] and spec["tls"] is None
    assert (spec["release"]["scheme"], spec["release"]["tls_ca_file"]) == ("http", None)


def test_tls_on_an_engine_release_without_tls_flags_is_refused(catalog):
    p = plan(catalog, "MiniMax-M2", engine="sglang", engine_version="0.5.4.post1")
    with pytest.raises(_launch.LaunchError) as err:
        _launch.launch_spec("sglang", p, {"tls": TLS, **OPEN})
    assert str(err.value) == (
        "SGLang 0.5.4.post1 has no TLS flags (--ssl-certfile, --ssl-keyfile; first in SGLang 0.5.23): set "
        "preflight_engine_version to 0.5.23 or later, or unset fleetserve_tls_cert_file and fleetserve_tls_key_file "
        "to serve plain HTTP."
    )


def test_tls_needs_both_files_and_owns_its_flags(catalog):
    p = plan(catalog, "MiniMax-M2.5")
    with pytest.raises(_launch.LaunchError, match="set fleetserve_tls_key_file too"):
        _launch.launch_spec("sglang", p, {"tls": {"cert_file": "/ctl/c.pem"}, **OPEN})
    with pytest.raises(_launch.LaunchError, match="--ssl-keyfile.*set fleetserve_tls_key_file instead"):
        _launch.launch_spec("sglang", p, {"extra_args": ["--ssl-keyfile", "/k.pem"], **OPEN})


def test_the_vllm_key_reaches_the_container_through_a_mounted_file(catalog):
    """Keyed: the host's 0600 key file is mounted read-only and a /bin/sh wrapper exports it; nothing in the docker
    run line (what docker inspect shows) carries the key, and the engine argv stays the plan's."""
    p = plan(catalog, "MiniMax-M1-40k")
    spec = _launch.launch_spec("vllm", p, {"api_key": "True"})  # templated settings arrive as text
    exe = spec["exec"]
    ref = spec["release"]["image"]["ref"]
    assert exe[exe.index("--entrypoint") + 1] == "/bin/sh"
    assert f"/etc/fleetserve/vllm/vllm-api-key:{_launch.VLLM_KEY_MOUNT}:ro" in exe
    after = exe[exe.index(ref) + 1 :]
    assert after[:4] == ["-c", _launch.VLLM_KEY_WRAPPER[2], "fleetserve-vllm-key", "python3"]
    assert after[4:] == spec["argv"] == ["-m", "vllm.entrypoints.openai.api_server"] + p["engine_args"]
    assert spec["unit"]["secret_file"] == "/etc/fleetserve/vllm/vllm-api-key"
    assert not any(k in spec["env"] for k in ("VLLM_API_KEY",))


@pytest.mark.parametrize("engine, model", [("vllm", "MiniMax-M1-40k"), ("sglang", "MiniMax-M2.5")])
def test_no_open_engine_on_a_public_address(catalog, engine, model):
    """Keyless on 0.0.0.0 is refused naming both ways out; a key, loopback or the one opt-out variable each pass."""
    public = plan(catalog, model, engine=engine)
    role = {"vllm": "vllm_docker", "sglang": "sglang_venv"}[engine]
    with pytest.raises(ValueError, match="would listen on 0.0.0.0 without an API key") as refused:
        _launch.launch_spec(engine, public, {})
    assert f"fleetserve_api_key, vaulted, or {role}_api_key_file" in str(refused.value)
    assert "fleetserve_allow_unauthenticated: true" in str(refused.value)
    with pytest.raises(ValueError, match="without an API key"):
        _launch.launch_spec(engine, public, {"allow_unauthenticated": "False", "api_key": "false"})
    assert _launch.launch_spec(engine, public, {"api_key": True})
    assert _launch.launch_spec(engine, public, OPEN)
    for loopback in ("127.0.0.1", "::1", "localhost"):
        assert _launch.launch_spec(engine, plan(catalog, model, engine=engine, bind_address=loopback), {})


def test_an_extra_env_value_cannot_add_a_line(catalog):
    with pytest.raises(ValueError, match="vllm_docker_extra_env.X holds a control character"):
        _launch.launch_spec(
            "vllm", plan(catalog, "MiniMax-M2.5", engine="vllm"), {"extra_env": {"X": "1\nLD_PRELOAD=/x.so"}, **OPEN}
        )
