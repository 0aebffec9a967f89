"""Write two tiny random chat models into a Hugging Face cache, with no hub access.

usage: make_tiny_models.py HF_HOME

* ``local-org/tiny-llama``: a Llama with a byte-level BPE tokenizer trained here and a ChatML template.
* ``local-org/tiny-minimax-m2``: the real ``MiniMaxM2ForCausalLM`` architecture (mixture of experts,
  q/k norms, expert score bias) at toy sizes, sharing the tokenizer.

Both land in ``$HF_HOME/hub/models--local-org--<name>/snapshots/<rev>/`` with ``refs/main`` pointing
at ``<rev>``: ``transformers serve`` lists only cached models on ``/v1/models``, so a plain directory
would serve but could never pass the verifier's model-listing stage. Greedy decoding with a small
``max_new_tokens`` keeps replies deterministic and fast on CPU.

Runs inside the venv made by scripts/testenv/transformers_serve.sh (torch + transformers).
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    GenerationConfig,
    LlamaConfig,
    LlamaForCausalLM,
    MiniMaxM2Config,
    MiniMaxM2ForCausalLM,
    PreTrainedTokenizerFast,
)

ORG = "local-org"
SPECIAL = ["<|pad|>", "<|bos|>", "<|eos|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
# Content may arrive as a string or as a list of text parts (the MiniMax guides send parts).
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}"
    "{% else %}{% for p in m['content'] %}{{ p['text'] }}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SENTENCES = [
    "You are a helpful assistant. Who won the world series in 2020?",
    "The quick brown fox jumps over the lazy dog 0123456789.",
    "system user assistant tool function call arguments content role weather city",
]


def build_tokenizer() -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(SENTENCES * 40, trainer)
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|bos|>",
        eos_token="<|im_end|>",
        pad_token="<|pad|>",
        model_max_length=2048,
    )
    hf_tok.chat_template = CHAT_TEMPLATE
    return hf_tok


def generation_config(tok) -> GenerationConfig:
    return GenerationConfig(
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        max_new_tokens=16,
        do_sample=False,
    )


def llama(tok):
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    )
    return LlamaForCausalLM(cfg)


def minimax_m2(tok):
    cfg = MiniMaxM2Config(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        num_local_experts=4,
        num_experts_per_tok=2,
        max_position_embeddings=2048,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    return MiniMaxM2ForCausalLM(cfg)


def save_into_cache(hf_home: Path, name: str, tok, model) -> Path:
    """Save to a scratch dir, then place the files as the HF cache lays out one snapshot."""
    repo_dir = hf_home / "hub" / f"models--{ORG}--{name}"
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        tok.save_pretrained(scratch)
        model.generation_config = generation_config(tok)
        model.save_pretrained(scratch, safe_serialization=True)
        digest = hashlib.sha1()
        for path in sorted(scratch.iterdir()):
            digest.update(path.name.encode() + path.read_bytes())
        revision = digest.hexdigest()
        snapshot = repo_dir / "snapshots" / revision
        snapshot.mkdir(parents=True, exist_ok=True)
        for path in scratch.iterdir():
            (snapshot / path.name).write_bytes(path.read_bytes())
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(revision)
    return snapshot


def main() -> None:
    hf_home = Path(sys.argv[1])
    torch.manual_seed(0)
    tok = build_tokenizer()
    for name, build in (("tiny-llama", llama), ("tiny-minimax-m2", minimax_m2)):
        print(f"{ORG}/{name}:", save_into_cache(hf_home, name, tok, build(tok)))


if __name__ == "__main__":
    main()
