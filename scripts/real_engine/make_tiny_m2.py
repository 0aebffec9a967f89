#!/usr/bin/env python3
"""Write a tiny random-weight MiniMax-M2-architecture checkpoint that real vLLM kernels accept.

Pure Python (no torch, no numpy): config.json, model.safetensors (bf16), tokenizer.json (byte-level
BPE without merges, plus MiniMax's role, think and tool-call tokens), tokenizer_config.json with a
chat template, generation_config.json. A few MiB; deterministic for a given --seed.

The shape (head_dim 128 so FlashAttention accepts it, 2 layers, 8 experts top-2, per-layer QK norm,
sigmoid routing with a bias) is the catalog entry `fleetserve-gpu-tiny-m2` in
roles/preflight/vars/models.yml; keep the two in sync (tests/unit checks nothing here: this is a lab
tool).

usage: make_tiny_m2.py OUT_DIR [--seed N]
"""

from __future__ import annotations

import argparse
import json
import random
import struct
import sys
from array import array
from pathlib import Path

SHAPE = {
    "vocab_size": 512,
    "hidden_size": 256,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 128,
    "rotary_dim": 64,
    "num_local_experts": 8,
    "num_experts_per_tok": 2,
    "max_position_embeddings": 4096,
}

# MiniMax-M2's own special tokens (its tokenizer_config.json): role markers, think and tool-call tags.
SPECIAL = ["]~!b[", "[e~[", "]~b]", "<think>", "</think>", "<minimax:tool_call>", "</minimax:tool_call>"]

CHAT_TEMPLATE = (
    "{{ ']~!b[' }}"
    "{%- if tools %}{{ ']~b]system\\n# Tools\\n' }}{%- for tool in tools %}{{ tool | tojson }}\\n{%- endfor %}"
    "{{ '[e~[\\n' }}{%- endif %}"
    "{%- for message in messages %}"
    "{{ ']~b]' ~ message['role'] ~ '\\n' }}"
    "{%- if message['content'] is string %}{{ message['content'] }}"
    "{%- elif message['content'] %}{%- for part in message['content'] %}{%- if part['type'] == 'text' %}"
    "{{ part['text'] }}{%- endif %}{%- endfor %}{%- endif %}"
    "{%- if message.get('tool_calls') %}{{ '<minimax:tool_call>' }}{%- for call in message['tool_calls'] %}"
    "{{ call['function'] | tojson }}{%- endfor %}{{ '</minimax:tool_call>' }}{%- endif %}"
    "{{ '[e~[\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ ']~b]ai\\n<think>\\n' }}{%- endif %}"
)


def bytes_to_unicode() -> dict:
    """GPT-2's reversible byte -> printable character map (what ByteLevel pre-tokenisation uses)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def tokenizer_json() -> dict:
    vocab = {ch: b for b, ch in sorted(bytes_to_unicode().items())}
    added = [
        {
            "id": 256 + i,
            "content": tok,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        for i, tok in enumerate(SPECIAL)
    ]
    for item in added:
        vocab[item["content"]] = item["id"]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": vocab,
            "merges": [],
        },
    }


def config_json() -> dict:
    return {
        "architectures": ["MiniMaxM2ForCausalLM"],
        "model_type": "minimax_m2",
        **SHAPE,
        "attn_type_list": [1] * SHAPE["num_hidden_layers"],
        "hidden_act": "silu",
        "rms_norm_eps": 1e-06,
        "rope_theta": 5000000,
        "partial_rotary_factor": SHAPE["rotary_dim"] / SHAPE["head_dim"],
        "scoring_func": "sigmoid",
        "use_routing_bias": True,
        "use_qk_norm": True,
        "qk_norm_type": "per_layer",
        "tie_word_embeddings": False,
        "attention_dropout": 0.0,
        "bos_token_id": 256,
        "eos_token_id": 257,
        "torch_dtype": "bfloat16",
        "dtype": "bfloat16",
        "use_cache": True,
    }


def tensors() -> list:
    """(name, shape, kind) in the checkpoint's own names (vLLM maps q/k/v_proj to qkv_proj, w1/w2/w3 to experts)."""
    h, inter, heads, kv, hd = (
        SHAPE[k] for k in ("hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads", "head_dim")
    )
    out = [("model.embed_tokens.weight", (SHAPE["vocab_size"], h), "w")]
    for i in range(SHAPE["num_hidden_layers"]):
        p = f"model.layers.{i}"
        out += [
            (f"{p}.input_layernorm.weight", (h,), "one"),
            (f"{p}.post_attention_layernorm.weight", (h,), "one"),
            (f"{p}.self_attn.q_proj.weight", (heads * hd, h), "w"),
            (f"{p}.self_attn.k_proj.weight", (kv * hd, h), "w"),
            (f"{p}.self_attn.v_proj.weight", (kv * hd, h), "w"),
            (f"{p}.self_attn.o_proj.weight", (h, heads * hd), "w"),
            (f"{p}.self_attn.q_norm.weight", (heads * hd,), "one"),
            (f"{p}.self_attn.k_norm.weight", (kv * hd,), "one"),
            (f"{p}.block_sparse_moe.gate.weight", (SHAPE["num_local_experts"], h), "w32"),
            (f"{p}.block_sparse_moe.e_score_correction_bias", (SHAPE["num_local_experts"],), "zero32"),
        ]
        for e in range(SHAPE["num_local_experts"]):
            q = f"{p}.block_sparse_moe.experts.{e}"
            out += [
                (f"{q}.w1.weight", (inter, h), "w"),
                (f"{q}.w2.weight", (h, inter), "w"),
                (f"{q}.w3.weight", (inter, h), "w"),
            ]
    out += [("model.norm.weight", (h,), "one"), ("lm_head.weight", (SHAPE["vocab_size"], h), "w")]
    return out


def _bf16(values) -> bytes:
    f32 = array("f", values).tobytes()
    # bf16 = the high half of each little-endian float32 (truncation; fine for random weights)
    return b"".join(f32[i + 2 : i + 4] for i in range(0, len(f32), 4))


def safetensors_bytes(seed: int) -> bytes:
    rng = random.Random(seed)
    header, blobs, offset = {}, [], 0
    for name, shape, kind in tensors():
        n = 1
        for d in shape:
            n *= d
        if kind == "one":
            data, dtype = _bf16([1.0] * n), "BF16"
        elif kind == "zero32":
            data, dtype = array("f", [0.0] * n).tobytes(), "F32"
        elif kind == "w32":
            data, dtype = array("f", (rng.gauss(0.0, 0.02) for _ in range(n))).tobytes(), "F32"
        else:
            data, dtype = _bf16(rng.gauss(0.0, 0.02) for _ in range(n)), "BF16"
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = {"format": "pt"}
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    return struct.pack("<Q", len(head)) + head + b"".join(blobs)


_SIZES: dict = {}


def weights_bytes(seed: int = 0) -> int:
    """Size of model.safetensors (what the engine loads onto the GPU)."""
    if seed not in _SIZES:
        _SIZES[seed] = len(safetensors_bytes(seed))
    return _SIZES[seed]


def total_bytes(seed: int = 0) -> int:
    """Size of every file write() makes (what the weights step copies)."""
    return weights_bytes(seed) + sum(len(text.encode()) for text in _texts().values())


def _texts() -> dict:
    return {
        "config.json": json.dumps(config_json(), indent=1) + "\n",
        "generation_config.json": json.dumps(
            {"bos_token_id": 256, "eos_token_id": 257, "do_sample": True, "temperature": 1.0}
        )
        + "\n",
        "tokenizer.json": json.dumps(tokenizer_json(), ensure_ascii=False),
        "tokenizer_config.json": json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "bos_token": "]~!b[",
                "eos_token": "[e~[",
                "pad_token": "[e~[",
                "model_max_length": SHAPE["max_position_embeddings"],
                "add_bos_token": False,
                "add_eos_token": False,
                "chat_template": CHAT_TEMPLATE,
            },
            indent=1,
        )
        + "\n",
        "special_tokens_map.json": json.dumps({"bos_token": "]~!b[", "eos_token": "[e~[", "pad_token": "[e~["}) + "\n",
    }


def write(out: Path, seed: int = 0) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    for name, text in _texts().items():
        (out / name).write_text(text, encoding="utf-8")
    (out / "model.safetensors").write_bytes(safetensors_bytes(seed))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    out = write(Path(args.out), args.seed)
    total = sum(p.stat().st_size for p in out.iterdir())
    print(f"{out} {total} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
