# -*- coding: utf-8 -*-
# Copyright: fleetserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The launch spec: a serving plan plus an engine role's settings -> everything the host runs.

Pure functions. The serving plan (_plan.build_plan) decides the model, the engine release, the
parallel layout, the context, the parsers and the engine's argv (host and port included). This module
adds what belongs to the deployment, not to the decision (the image or venv, unit and container
names, the role's extra flags and environment), checks that those additions do not re-decide anything
the plan decided, and returns one dict that the engine roles write to the host as they are:

  exec     the unit's ExecStart argv (docker run ... IMAGE argv, or the venv's python -m ... argv)
  argv     the engine's own arguments (what the engines' parsers see; tests/contract feeds them)
  env      the engine's non-secret environment
  unit     systemd unit name, paths and timeouts
  release  the release record: what the host runs (no secrets), written 0644 to record_path
  record_path, probe_url

Every refusal raises LaunchError (a ValueError) whose message names the variable to change.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re

from ansible_collections.fleetserve.minimax.plugins.module_utils import _catalog, _secrets

RELEASE_DIR = "/var/lib/fleetserve/releases"  # current.json (the engine roles) and previous.json (the rollout)
RECORD_SCHEMA = 1
UNIT_DIR = "/etc/systemd/system"
VLLM_SOURCE_ROOT = "/opt/fleetserve/vllm-src"

# Plan fields that describe the host at planning time rather than the release (serving_plan adds them).
HOST_STATE_FIELDS = ("disk_needed_bytes",)

VLLM_LAUNCHERS = {
    "api_server": ("python3", ["-m", "vllm.entrypoints.openai.api_server"]),
    "serve": ("vllm", ["serve"]),
}
SGLANG_MODULE = ["-m", "sglang.launch_server"]

_NO_PP = "plans have no pipeline parallelism: size the host with preflight_tensor_parallel_size and preflight_data_parallel_size"
# Flags the plan decides, and how to change each (None: the model catalog sets it). Also every flag the plan's own argv
# carries (catalog flags such as --trust-remote-code): an extra argument may add flags, never re-set one.
_OWNED_FLAGS = {
    "--model": "fleetserve_models_dir",
    "--model-path": "fleetserve_models_dir",
    "--served-model-name": "preflight_served_model_name",
    "--tensor-parallel-size": "preflight_tensor_parallel_size",
    "--tp-size": "preflight_tensor_parallel_size",
    "-tp": "preflight_tensor_parallel_size",
    "--tp": "preflight_tensor_parallel_size",
    "--data-parallel-size": "preflight_data_parallel_size",
    "--dp-size": "preflight_data_parallel_size",
    "-dp": "preflight_data_parallel_size",
    "--dp": "preflight_data_parallel_size",
    "--pipeline-parallel-size": _NO_PP,
    "-pp": _NO_PP,
    "--pp-size": _NO_PP,
    "--enable-expert-parallel": "preflight_expert_parallel_size",
    "--ep-size": "preflight_expert_parallel_size",
    "--expert-parallel-size": "preflight_expert_parallel_size",
    "--ep": "preflight_expert_parallel_size",
    "--max-model-len": "preflight_max_context",
    "--context-length": "preflight_max_context",
    "--gpu-memory-utilization": "preflight_mem_fraction",
    "--mem-fraction-static": "preflight_mem_fraction",
    "--tool-call-parser": None,
    "--reasoning-parser": "preflight_reasoning_style",
    "--host": "preflight_bind_address",
    "--port": "preflight_port",
    "--nnodes": "preflight_nnodes",
    "--node-rank": "preflight_node_group",
    "--dist-init-addr": "preflight_node_address",
    "--api-key": "fleetserve_api_key",
    "--config": "fleetserve_api_key",
    "--ssl-certfile": "fleetserve_tls_cert_file",
    "--ssl-keyfile": "fleetserve_tls_key_file",
}
_OWNED_ENV = {"VLLM_USE_V1": "preflight_engine_version", "HF_HUB_OFFLINE": None}
_SECRET_ENV = ("VLLM_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")

# The vLLM key never enters the container's configuration (docker inspect shows its environment): the host's
# 0600 key file is mounted read-only, and a /bin/sh wrapper exports it as VLLM_API_KEY inside the container
# just before it execs the engine. Both pinned releases read VLLM_API_KEY (`args.api_key or envs.VLLM_API_KEY`)
# and, unlike an `api-key:` line in a --config file, vLLM 0.9.2 does not print it in its "non-default args" log.
VLLM_KEY_MOUNT = "/run/fleetserve/vllm-api-key"
VLLM_KEY_WRAPPER = ["/bin/sh", "-c", f'VLLM_API_KEY="$(cat {VLLM_KEY_MOUNT})" && export VLLM_API_KEY && exec "$@"']
VLLM_KEY_WRAPPER_NAME = "fleetserve-vllm-key"  # $0 of the wrapper: shows up in its error messages

# A release tag: v0.9.2, 0.9.2, v0.10.1.1, v0.9.2rc1, v0.9.2-fleet.1, v0.9.2+patched (the suffix names a
# patched commit of that release) -> the version; anything else (branches, commits) has none.
_RELEASE_TAG = re.compile(r"^v?([0-9]+(?:[.][0-9]+)+(?:(?:a|b|rc|[.]post|[.]dev)[0-9]+)?)(?:[-+][0-9A-Za-z._-]+)?$")


# Options of fleetserve.minimax.launch_spec (the action and its module).
ARGUMENT_SPEC = {
    "engine": {"type": "str", "required": True, "choices": ["vllm", "sglang"]},
    "plan": {"type": "dict", "default": {}},
    "settings": {"type": "dict", "default": {}},
    "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
}


class LaunchError(ValueError):
    """The launch cannot be rendered as asked; the message says what to change."""


def release_plan(plan: dict) -> dict:
    """The plan as a release records it: without what describes the host's state at planning time (the disk
    still needed for the weights drops to 0 once they are there), which is no decision about the release."""
    return {key: value for key, value in plan.items() if key not in HOST_STATE_FIELDS}


def plan_digest(plan: dict) -> str:
    """The identity of a plan's release: a rollout leaves a host alone whose record carries the same digest.

    Same bytes as Ansible's `to_json(sort_keys=true) | hash('sha1')` of the release plan."""
    return hashlib.sha1(json.dumps(release_plan(plan), sort_keys=True).encode("utf-8")).hexdigest()


def source_version(ref: str) -> str:
    """The vLLM version a source-checkout ref names ('' when it names none)."""
    match = _RELEASE_TAG.match(str(ref or ""))
    return match.group(1) if match else ""


def _flag_name(arg: str) -> str:
    name = arg.split("=", 1)[0]
    return name if not name.startswith("--") else "--" + name[2:].replace("_", "-")


def _check_plan(engine: str, role: str, plan: dict) -> None:
    complete = (
        plan.get("model")
        and plan.get("engine") == engine
        and plan.get("engine_version")
        and str(plan.get("model_dir") or "").startswith("/")
        and int(plan.get("port") or 0) > 0
        and plan.get("engine_args")
    )
    if not complete:
        name = {"vllm": "vLLM", "sglang": "SGLang"}[engine]
        raise LaunchError(
            f"{role} needs a serving plan for the {name} engine (fact preflight_plan with model, engine: {engine}, "
            f"engine_version, model_dir as an absolute path, port, engine_args); got engine "
            f"'{plan.get('engine') or 'none'}', model_dir '{plan.get('model_dir') or ''}'. "
            f"Run the preflight role first (playbooks/site.yml does) or set {role}_plan."
        )


def _check_extra_args(role: str, plan: dict, extra_args: list) -> None:
    owned = set(_OWNED_FLAGS) | {_flag_name(a) for a in plan["engine_args"] if str(a).startswith("-")}
    for arg in extra_args:
        arg = str(arg)
        if arg.startswith("-") and _flag_name(arg) in owned:
            name = _flag_name(arg)
            wish = _OWNED_FLAGS.get(name)
            if wish is None:
                fix = "the model's catalog entry (roles/preflight/vars/models.yml) decides it"
            elif " " in wish:
                fix = wish
            else:
                fix = f"set {wish} instead"
            raise LaunchError(
                f"{role}_extra_args sets {name}, which the serving plan decides (the plan has "
                f"{_plan_value(plan['engine_args'], name)}): remove it from {role}_extra_args; {fix}."
            )


def _plan_value(argv: list, name: str) -> str:
    for i, arg in enumerate(argv):
        if _flag_name(str(arg)) == name:
            value = argv[i + 1] if i + 1 < len(argv) and not str(argv[i + 1]).startswith("--") else None
            return f"{name} {value}" if value is not None else name
    return f"no {name}"


def _check_extra_env(role: str, engine: str, version: str, plan_env: dict, extra_env: dict) -> None:
    for key in sorted(extra_env):
        if key in _SECRET_ENV:
            raise LaunchError(
                f"{role}_extra_env sets {key}, a secret: secrets never go into plain role variables. "
                f"Put the API key in fleetserve_api_key (vaulted) or {role}_api_key_file."
            )
        if key in _OWNED_ENV or key in plan_env:
            why = ""
            if key == "VLLM_USE_V1":
                why = (
                    " (only where the model needs vLLM's V0 engine; the plan for vLLM "
                    f"{version} {'sets' if key in plan_env else 'does not set'} it)"
                )
            raise LaunchError(
                f"{role}_extra_env sets {key}, which the serving plan decides{why}: remove it from {role}_extra_env."
            )


def _env(plan: dict, extra_env: dict) -> dict:
    env = {"HF_HUB_OFFLINE": "1"}  # weights come from model_dir; nothing is fetched at start
    env.update({str(k): str(v) for k, v in (plan.get("engine_env") or {}).items()})
    env.update({str(k): str(v) for k, v in extra_env.items()})
    return env


def _probe_url(plan: dict, tls: dict | None = None) -> str:
    host = str(plan.get("host") or "0.0.0.0")
    host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return f"{'https' if tls else 'http'}://{host}:{int(plan['port'])}/health"


# TLS (opt-in, fleetserve_tls_cert_file/fleetserve_tls_key_file): the first release of each engine whose own
# parser accepts --ssl-certfile/--ssl-keyfile/--ssl-ca-certs. [wheel] vLLM 0.9.2 and 0.33.0 accept them;
# SGLang 0.5.23 accepts them and 0.5.4.post1 rejects them (tests/contract/test_tls_cli.py feeds both).
TLS_SINCE = {"vllm": "0.9.2", "sglang": "0.5.23"}


def _tls(engine: str, role: str, version: str, config_dir: str, settings: dict) -> dict | None:
    """Where the engine reads its certificate and key on the host, and the flags naming them; None without TLS.

    The role copies the operator's files there (tasks/tls.yml); an engine release without the flags is refused."""
    files = settings.get("tls") or {}
    if not (files.get("cert_file") or files.get("key_file")):
        return None
    if not (files.get("cert_file") and files.get("key_file")):
        missing = "fleetserve_tls_key_file" if files.get("cert_file") else "fleetserve_tls_cert_file"
        raise LaunchError(
            f"TLS needs both a certificate and its key: set {missing} too, or unset both fleetserve_tls_cert_file "
            "and fleetserve_tls_key_file to serve plain HTTP."
        )
    if not _catalog.version_at_least(version, TLS_SINCE[engine]):
        name = {"vllm": "vLLM", "sglang": "SGLang"}[engine]
        raise LaunchError(
            f"{name} {version} has no TLS flags (--ssl-certfile, --ssl-keyfile; first in {name} "
            f"{TLS_SINCE[engine]}): set preflight_engine_version to {TLS_SINCE[engine]} or later, or unset "
            "fleetserve_tls_cert_file and fleetserve_tls_key_file to serve plain HTTP."
        )
    directory = f"{config_dir}/tls"
    tls = {"dir": directory, "cert_file": f"{directory}/cert.pem", "key_file": f"{directory}/key.pem"}
    # fleetserve_tls_ca_file, when set, is copied beside them for verify on the host (verify_from: host).
    tls["ca_file"] = f"{directory}/ca.pem" if files.get("ca_file") else None
    tls["argv"] = ["--ssl-certfile", tls["cert_file"], "--ssl-keyfile", tls["key_file"]]
    return tls


def placement(engine: str, settings: dict) -> dict:
    """Where a role's release lives on the host, from its settings alone (no plan): what removal needs too."""
    service = settings.get("service_name") or engine
    config_dir = settings.get("config_dir") or f"/etc/fleetserve/{service}"
    where = {
        "engine": engine,
        "config_dir": config_dir,
        "unit": {
            "name": f"{service}.service",
            "service": service,
            "path": f"{UNIT_DIR}/{service}.service",
            "env_file": f"{config_dir}/{service}.env",
        },
        "record_path": posixpath.join(settings.get("release_dir") or RELEASE_DIR, "current.json"),
    }
    if engine == "vllm":
        where["container"] = settings.get("container_name") or service
        where["unit"]["secret_file"] = f"{config_dir}/{service}-api-key"  # mounted read-only at VLLM_KEY_MOUNT
    else:
        # SGLang merges a YAML --config file into its arguments in-process: the key stays out of argv.
        where["unit"]["secret_file"] = f"{config_dir}/{service}-secrets.yaml"
        where["root"] = (settings.get("root") or "/opt/fleetserve/sglang").rstrip("/")
    return where


def _unit(where: dict, settings: dict, plan: dict) -> dict:
    return dict(
        where["unit"],
        start_timeout_s=int(settings.get("start_timeout_s") or plan.get("start_timeout_s") or 3600),
        stop_timeout_s=int(settings.get("stop_timeout_s") or 60),
    )


def _release(plan: dict, unit: dict, **where) -> dict:
    release = {
        "schema": RECORD_SCHEMA,
        "engine": plan["engine"],
        "version": str(plan["engine_version"]),
        "model": plan["model"],
        "revision": plan.get("revision"),
        "model_dir": plan["model_dir"],
        "served_model_name": plan.get("served_model_name"),
        "host": plan.get("host") or "0.0.0.0",
        "port": int(plan["port"]),
        "service": unit["service"],
        "unit": unit["path"],
        "config_dir": None,
        "venv": None,
        "image": None,
        "container": None,
        "source": None,
        "scheme": "http",
        "tls_ca_file": None,
    }
    release.update(where)
    release["plan"] = release_plan(plan)
    release["plan_digest"] = plan_digest(plan)
    return release


def _flag(value) -> bool:
    """A setting's truth value, whether it arrives as a bool or as templated text ('True', 'false')."""
    return value.strip().lower() in ("1", "true", "yes", "on") if isinstance(value, str) else bool(value)


def _checked_inputs(engine: str, role: str, plan: dict, settings: dict) -> tuple:
    """(version, extra_args, extra_env) once the plan is the engine's and the extras re-decide nothing."""
    _check_plan(engine, role, plan)
    version = str(plan["engine_version"])
    extra_args = [str(a) for a in settings.get("extra_args") or []]
    extra_env = dict(settings.get("extra_env") or {})
    _check_extra_args(role, plan, extra_args)
    _check_extra_env(role, engine, version, plan.get("engine_env") or {}, extra_env)
    for key, value in extra_env.items():  # a newline in a value would add a line to the env file
        _secrets.check_line(f"{role}_extra_env.{key}", str(value))
    _secrets.check_exposure(
        {"vllm": "The vLLM engine", "sglang": "The SGLang engine"}[engine],
        str(plan.get("host") or "0.0.0.0"),
        _flag(settings.get("api_key")),
        _flag(settings.get("allow_unauthenticated")),
        f"fleetserve_api_key, vaulted, or {role}_api_key_file",
    )
    return version, extra_args, extra_env


def vllm_spec(plan: dict, settings: dict) -> dict:
    """The launch spec of a vLLM container (role vllm_docker)."""
    version, extra_args, extra_env = _checked_inputs("vllm", "vllm_docker", plan, settings)
    launcher = settings.get("launcher") or "api_server"
    if launcher not in VLLM_LAUNCHERS:
        raise LaunchError(f"vllm_docker_launcher '{launcher}' is not one of: {', '.join(sorted(VLLM_LAUNCHERS))}")
    entrypoint, launcher_args = VLLM_LAUNCHERS[launcher]
    keyed = _flag(settings.get("api_key"))
    where = placement("vllm", settings)
    container, unit = where["container"], _unit(where, settings, plan)
    image = {
        "repository": settings.get("image_repository") or "vllm/vllm-openai",
        "tag": settings.get("image_tag") or f"v{version}",
        "digest": settings.get("image_digest") or "",
    }
    image["ref"] = f"{image['repository']}:{image['tag']}" + (f"@{image['digest']}" if image["digest"] else "")

    source = None
    env = _env(plan, extra_env)
    if settings.get("source_checkout"):
        ref = settings.get("source_ref") or f"v{version}"
        directory = settings.get("source_dir") or f"{VLLM_SOURCE_ROOT}/{ref}"
        found = source_version(ref)
        if not found or not directory.startswith("/"):
            raise LaunchError(
                f"vllm_docker_source_ref '{ref}' is not a release tag (or vllm_docker_source_dir '{directory}' is not "
                f"absolute): pin a tag such as v{version}, or tag your patched commit (e.g. v{version}-patched.1), so "
                "the checkout's version is known before anything is cloned; branches move and bare commits carry no "
                "version."
            )
        if _catalog.parse_version(_base(found)) != _catalog.parse_version(_base(version)) or _pre(found) != _pre(
            version
        ):
            raise LaunchError(
                f"The source checkout {ref} is vLLM {found}, but the image runs vLLM {version}: its compiled parts "
                f"only fit the Python code of their own release. Pin vllm_docker_source_ref to a tag of {version}, or "
                "change the plan's engine version (preflight_engine_version)."
            )
        source = {"ref": ref, "dir": directory, "version": found, "repo": settings.get("source_repo") or ""}
        # The checkout comes first on the path, so the `vllm` console script (serve launcher) imports it too.
        env["PYTHONPATH"] = ":".join([directory] + ([extra_env["PYTHONPATH"]] if "PYTHONPATH" in extra_env else []))

    tls = _tls("vllm", "vllm_docker", version, where["config_dir"], settings)
    argv = launcher_args + [str(a) for a in plan["engine_args"]] + extra_args + (tls["argv"] if tls else [])
    port = str(int(plan["port"]))
    wrapper = VLLM_KEY_WRAPPER[1:] + [VLLM_KEY_WRAPPER_NAME, entrypoint] if keyed else []
    run = ["--name", container, "--rm", "--pull=never", "--entrypoint", VLLM_KEY_WRAPPER[0] if keyed else entrypoint]
    run += ["--env-file", unit["env_file"]]
    run += ["--volume", f"{unit['secret_file']}:{VLLM_KEY_MOUNT}:ro"] if keyed else []
    run += [
        "--volume",
        f"{plan['model_dir']}:{plan['model_dir']}:ro",
        "--shm-size",
        str(settings.get("shm_size") or "32g"),
    ]
    run += ["--ipc=host"] if settings.get("ipc_host", True) else []
    run += [f"--ulimit={u}" for u in settings.get("ulimits") or []]
    run += ["--network=host"] if settings.get("network_host", True) else ["--publish", f"{port}:{port}"]
    run += ["--gpus", settings["gpus"]] if settings.get("gpus") else []
    run += [f"--device={d}" for d in settings.get("cdi_devices") or []]
    run += ["--privileged"] if settings.get("privileged") else []
    run += ["--volume", f"{source['dir']}:{source['dir']}:ro", "--workdir", source["dir"]] if source else []
    run += ["--volume", f"{tls['dir']}:{tls['dir']}:ro"] if tls else []
    run += [str(a) for a in settings.get("extra_run_args") or []]
    docker = settings.get("docker_bin") or "/usr/bin/docker"
    unit["description"] = (
        f"vLLM {version}"
        + (f" from source checkout {source['ref']}" if source else "")
        + f" serving {plan['model']} (container {container})"
    )
    return {
        "engine": "vllm",
        "version": version,
        "exec": [docker, "run"] + run + [image["ref"]] + wrapper + argv,
        "argv": argv,
        "env": env,
        "unit": unit,
        "config_dir": where["config_dir"],
        "container": container,
        "image": image,
        "source": source,
        "probe_url": _probe_url(plan, tls),
        "tls": tls,
        "release": _release(
            plan,
            unit,
            image=image,
            container=container,
            source=source,
            config_dir=where["config_dir"],
            scheme="https" if tls else "http",
            tls_ca_file=tls["ca_file"] if tls else None,
        ),
        "record_path": where["record_path"],
    }


def _base(version: str) -> str:
    return re.sub(r"(a|b|rc|\.dev)[0-9]+$", "", version)


def _pre(version: str) -> str:
    match = re.search(r"(a|b|rc|\.dev)[0-9]+$", version)
    return match.group(0) if match else ""


def sglang_spec(plan: dict, settings: dict) -> dict:
    """The launch spec of an SGLang service from a release venv (role sglang_venv)."""
    version, extra_args, extra_env = _checked_inputs("sglang", "sglang_venv", plan, settings)
    where = placement("sglang", settings)
    root, unit = where["root"], _unit(where, settings, plan)
    venv = f"{root}/venv-{version}"
    unit["description"] = f"SGLang {version} serving {plan['model']}"
    argv = [str(a) for a in plan["engine_args"]] + extra_args
    argv += ["--config", unit["secret_file"]] if _flag(settings.get("api_key")) else []
    tls = _tls("sglang", "sglang_venv", version, where["config_dir"], settings)
    argv += tls["argv"] if tls else []
    return {
        "engine": "sglang",
        "version": version,
        "exec": [f"{venv}/bin/python"] + SGLANG_MODULE + argv,
        "argv": argv,
        "env": _env(plan, extra_env),
        "unit": unit,
        "config_dir": where["config_dir"],
        "probe_url": _probe_url(plan, tls),
        "tls": tls,
        "venv": {"root": root, "dir": venv, "python": f"{venv}/bin/python", "current_link": f"{root}/venv"},
        "release": _release(
            plan,
            unit,
            venv=venv,
            config_dir=where["config_dir"],
            scheme="https" if tls else "http",
            tls_ca_file=tls["ca_file"] if tls else None,
        ),
        "record_path": where["record_path"],
    }


def launch_spec(engine: str, plan: dict, settings: dict, state: str = "present") -> dict:
    """The launch spec for `engine` ('vllm' or 'sglang'), or LaunchError naming the fix.

    state absent: only the placement (unit, config, container or venv root, record path); no plan needed."""
    plan = dict(plan or {})
    settings = dict(settings or {})
    if state == "absent" and engine in ("vllm", "sglang"):
        return placement(engine, settings)
    if engine == "vllm":
        return vllm_spec(plan, settings)
    if engine == "sglang":
        return sglang_spec(plan, settings)
    raise LaunchError(f"engine '{engine}' has no launch spec; the engines are vllm and sglang")
