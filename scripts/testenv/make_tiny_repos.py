#!/usr/bin/env python3
"""Tiny hub repos shaped like MiniMax-M2.x (layout only), published to an olah offline mirror.

Each repo has the MiniMax config, ``model.safetensors.index.json`` and ``model-0000K-of-0000N``
shards holding exactly the tensors the index maps to them, with hub tensor names
(``model.layers.L.block_sparse_moe.experts.E.w1.weight`` ...). ``--shard-mb`` pads every shard with
one filler tensor of random bytes so downloads last long enough to be interrupted, and so the
benchmark has a payload. No torch: numpy + safetensors only.

usage:
  make_tiny_repos.py repo MIRRORS_DIR REPOS_PATH ORG/NAME [--shards N] [--shard-mb MB]
  make_tiny_repos.py revision MIRRORS_DIR REPOS_PATH ORG/NAME BRANCH [--shards N] [--seed S]
  make_tiny_repos.py olah-config MIRRORS_DIR REPOS_PATH PORT [--host ADDR] > olah.toml

``repo`` prints the commit sha. Importable: the tests call make_repo(), publish(), olah_config().
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

LAYERS = 2
EXPERTS = 4


def tensor_names() -> list[str]:
    names = ["model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"]
    for layer in range(LAYERS):
        p = f"model.layers.{layer}"
        names += [f"{p}.input_layernorm.weight", f"{p}.post_attention_layernorm.weight"]
        names += [f"{p}.self_attn.{m}.weight" for m in ("q_proj", "k_proj", "v_proj", "o_proj", "q_norm", "k_norm")]
        names += [f"{p}.block_sparse_moe.gate.weight", f"{p}.block_sparse_moe.e_score_correction_bias"]
        names += [f"{p}.block_sparse_moe.experts.{e}.{w}.weight" for e in range(EXPERTS) for w in ("w1", "w2", "w3")]
    return sorted(names)


def make_repo(out: Path, shards: int = 3, shard_mb: float = 0.0, seed: int = 0) -> dict:
    """Write the repo files into ``out``. Returns the weight_map."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = tensor_names()
    weight_map = {n: f"model-{i % shards + 1:05d}-of-{shards:05d}.safetensors" for i, n in enumerate(names)}
    total = 0
    for k in range(1, shards + 1):
        shard = f"model-{k:05d}-of-{shards:05d}.safetensors"
        tensors = {n: rng.standard_normal((4, 8)).astype(np.float32) for n in names if weight_map[n] == shard}
        if shard_mb > 0:
            # Filler tensors are part of the index too, so the index stays exact.
            filler = f"model.fleetserve_filler.{k}"
            tensors[filler] = rng.integers(0, 255, size=int(shard_mb * 1024 * 1024), dtype=np.uint8)
            weight_map[filler] = shard
        total += sum(t.nbytes for t in tensors.values())
        save_file(tensors, str(out / shard), metadata={"format": "pt"})
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    config = {
        "architectures": ["MiniMaxM2ForCausalLM"],
        "model_type": "minimax_m2",
        "hidden_size": 8,
        "num_hidden_layers": LAYERS,
        "num_local_experts": EXPERTS,
        "num_experts_per_tok": 2,
        "torch_dtype": "float32",
    }
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (out / "generation_config.json").write_text(json.dumps({"do_sample": False}) + "\n")
    (out / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 2048}) + "\n")
    (out / "README.md").write_text(f"# {out.name}\n\nTiny layout-only MiniMax-shaped test repo.\n")
    return weight_map


def _git(repo: Path, *args: str) -> str:
    env_args = ["-c", "user.name=fleetserve-tests", "-c", "user.email=tests@fleetserve.invalid"]
    return subprocess.run(
        ["git", *env_args, "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def publish(mirrors_dir: Path, repos_path: Path, repo_id: str, **kwargs) -> str:
    """Create ``repo_id`` as a git repo under the olah mirrors dir and seed olah's metadata cache.

    olah offline resolves ``/api/models/<repo>`` (no revision) only from a cached meta_head.json, so
    it is written for the commit. Returns the commit sha.
    """
    d = mirrors_dir / "models" / repo_id
    make_repo(d, **kwargs)
    if not (d / ".git").exists():
        _git(d, "init", "-q", "-b", "main")
    _git(d, "add", "-A")
    _git(d, "commit", "-q", "--allow-empty", "-m", "fleetserve test repo")
    sha = _git(d, "rev-parse", "HEAD")
    stamp = _git(d, "log", "-1", "--format=%cI", "HEAD")
    meta = repos_path / "api" / "models" / repo_id / "revision" / sha
    meta.mkdir(parents=True, exist_ok=True)
    (meta / "meta_head.json").write_text(json.dumps({"sha": sha, "lastModified": stamp}) + "\n")
    return sha


def publish_revision(mirrors_dir: Path, repos_path: Path, repo_id: str, branch: str, **kwargs) -> str:
    """A second revision of ``repo_id``: branch ``branch`` off main with new weights (another seed), main
    untouched, so a deploy of main fetches nothing new. Idempotent: an existing branch is kept. Returns its sha."""
    d = mirrors_dir / "models" / repo_id
    have = subprocess.run(
        ["git", "-C", str(d), "rev-parse", "--verify", "-q", f"refs/heads/{branch}"], capture_output=True
    )
    if have.returncode == 0:
        return have.stdout.decode().strip()
    _git(d, "checkout", "-q", "-b", branch)
    try:
        make_repo(d, **kwargs)
        _git(d, "add", "-A")
        _git(d, "commit", "-q", "-m", f"fleetserve test repo, revision {branch}")
        sha = _git(d, "rev-parse", "HEAD")
    finally:
        _git(d, "checkout", "-q", "-f", "main")
    return sha


def olah_config(mirrors_dir: Path, repos_path: Path, port: int, host: str = "127.0.0.1", netloc: str = "") -> str:
    """olah.toml for offline mode. ``host`` is where it listens; ``netloc`` (default host:port) is the address
    it hands to clients, another one when they reach it through a proxy."""
    netloc = netloc or f"{host}:{port}"
    return f"""[basic]
host = "{host}"
port = {port}
repos-path = "{repos_path}"
mirror-scheme = "http"
mirror-netloc = "{netloc}"
mirror-lfs-netloc = "{netloc}"
mirrors-path = ["{mirrors_dir}"]

[accessibility]
offline = true

[[accessibility.proxy]]
repo = "*"
allow = true

[[accessibility.cache]]
repo = "*"
allow = true
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("repo")
    r.add_argument("mirrors_dir", type=Path)
    r.add_argument("repos_path", type=Path)
    r.add_argument("repo_id")
    r.add_argument("--shards", type=int, default=3)
    r.add_argument("--shard-mb", type=float, default=0.0)
    v = sub.add_parser("revision")
    v.add_argument("mirrors_dir", type=Path)
    v.add_argument("repos_path", type=Path)
    v.add_argument("repo_id")
    v.add_argument("branch")
    v.add_argument("--shards", type=int, default=3)
    v.add_argument("--seed", type=int, default=1)
    c = sub.add_parser("olah-config")
    c.add_argument("mirrors_dir", type=Path)
    c.add_argument("repos_path", type=Path)
    c.add_argument("port", type=int)
    c.add_argument("--host", default="127.0.0.1")
    a = ap.parse_args()
    if a.cmd == "repo":
        print(publish(a.mirrors_dir, a.repos_path, a.repo_id, shards=a.shards, shard_mb=a.shard_mb))
    elif a.cmd == "revision":
        print(publish_revision(a.mirrors_dir, a.repos_path, a.repo_id, a.branch, shards=a.shards, seed=a.seed))
    else:
        print(olah_config(a.mirrors_dir, a.repos_path, a.port, a.host), end="")


if __name__ == "__main__":
    main()
