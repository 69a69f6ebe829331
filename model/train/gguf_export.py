"""``docomplete train export-gguf``: a Llama-architecture HF model directory → one GGUF file.

Written with PyPI's ``gguf`` writer, the way llama.cpp's own converter lays a Llama out: tensor
names ``token_embd``, ``blk.N.*``, ``output_norm`` (no ``output`` when the embeddings are tied),
Q and K rows permuted from transformers' rotate-half RoPE layout to llama.cpp's interleaved one,
norms always f32. The tokenizer must map to a llama.cpp pre-tokenizer preset exactly
(``model.train.gguf_vocab``), otherwise the export is refused.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model.cli_support import CommandError
from model.train.gguf_vocab import GgufVocab, read_vocab

#: Output tensor types a user can ask for.
OUT_TYPES = ("f32", "f16", "bf16")

#: HF per-layer tensor suffix → GGUF per-layer name.
_LAYER_NAMES = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
_GLOBAL_NAMES = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}


@dataclass(frozen=True)
class LlamaShape:
    """The hyper-parameters llama.cpp needs, read from ``config.json``."""

    vocab_size: int
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    context: int
    rope_theta: float
    rms_eps: float
    tied: bool


def read_shape(model_dir: Path) -> LlamaShape:
    """Read and check ``config.json``: only plain Llama models are exported."""
    path = model_dir / "config.json"
    if not path.is_file():
        raise CommandError(f"no config.json in {model_dir}: pass a Hugging Face model directory")
    config: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if config.get("model_type") != "llama":
        raise CommandError(
            f"{path}: model_type {config.get('model_type')!r} is not 'llama'; only "
            "LlamaForCausalLM models can be exported to GGUF here"
        )
    if config.get("attention_bias") or config.get("mlp_bias"):
        raise CommandError(f"{path}: attention or MLP biases are not supported by this exporter")
    if config.get("hidden_act", "silu") != "silu":
        raise CommandError(f"{path}: hidden_act {config.get('hidden_act')!r} is not 'silu'")
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type not in ("default", None):
        raise CommandError(f"{path}: RoPE type {rope_type!r} is not supported (only 'default')")
    heads = int(config["num_attention_heads"])
    hidden = int(config["hidden_size"])
    return LlamaShape(
        vocab_size=int(config["vocab_size"]),
        hidden=hidden,
        layers=int(config["num_hidden_layers"]),
        heads=heads,
        kv_heads=int(config.get("num_key_value_heads") or heads),
        head_dim=int(config.get("head_dim") or hidden // heads),
        intermediate=int(config["intermediate_size"]),
        context=int(config.get("max_position_embeddings", 2048)),
        rope_theta=float(rope.get("rope_theta", config.get("rope_theta", 10000.0))),
        rms_eps=float(config.get("rms_norm_eps", 1e-6)),
        tied=bool(config.get("tie_word_embeddings", False)),
    )


def permute_rotary(weights: Any, heads: int) -> Any:
    """Reorder Q/K output rows from rotate-half pairs (i, i + d/2) to adjacent pairs (2i, 2i+1).

    transformers rotates the two halves of each head; llama.cpp's RoPE rotates neighbouring
    elements. The same reordering as llama.cpp's ``convert_hf_to_gguf.py``. (rows, cols) in,
    same shape out.
    """
    rows = weights.shape[0]
    return (
        weights.reshape(heads, 2, rows // heads // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def unpermute_rotary(weights: Any, heads: int) -> Any:
    """The inverse of ``permute_rotary`` (GGUF layout back to transformers')."""
    rows = weights.shape[0]
    return (
        weights.reshape(heads, rows // heads // 2, 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def _iter_hf_tensors(model_dir: Path) -> Iterator[tuple[str, Any]]:
    """(name, float32 numpy array) for every tensor of the model's safetensors files."""
    import torch
    from safetensors import safe_open

    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise CommandError(
            f"no *.safetensors in {model_dir}: save the model with save_pretrained() first"
        )
    for file in files:
        with safe_open(str(file), framework="pt") as handle:
            for name in handle.keys():  # noqa: SIM118 (safe_open is not a mapping)
                yield name, handle.get_tensor(name).to(torch.float32).numpy()


def gguf_tensor_name(hf_name: str, layers: int) -> str | None:
    """The GGUF name of an HF Llama tensor; None for tensors llama.cpp does not load."""
    if hf_name in _GLOBAL_NAMES:
        return _GLOBAL_NAMES[hf_name]
    if hf_name.endswith("rotary_emb.inv_freq"):
        return None
    parts = hf_name.split(".", 3)
    if len(parts) == 4 and parts[:2] == ["model", "layers"] and parts[3] in _LAYER_NAMES:
        index = int(parts[2])
        if index < layers:
            return f"blk.{index}.{_LAYER_NAMES[parts[3]]}"
    raise CommandError(f"unexpected tensor {hf_name!r}: not a plain Llama checkpoint")


def export_gguf(model_dir: Path, out_path: Path, *, out_type: str = "f32") -> dict[str, Any]:
    """Write ``out_path``; return a summary (tensor count, bytes, tokenizer preset)."""
    import gguf
    import numpy as np

    if out_type not in OUT_TYPES:
        raise CommandError(f"--outtype must be one of {', '.join(OUT_TYPES)}, got {out_type!r}")
    shape = read_shape(model_dir)
    vocab = read_vocab(model_dir, vocab_size=shape.vocab_size)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = out_path.with_name(out_path.name + ".partial")
    writer = gguf.GGUFWriter(str(tmp_path), arch="llama")
    _write_metadata(writer, gguf, shape, vocab, model_dir.name, out_type)

    seen: set[str] = set()
    for hf_name, data in _iter_hf_tensors(model_dir):
        name = gguf_tensor_name(hf_name, shape.layers)
        if name is None or (name == "output.weight" and shape.tied):
            continue
        if name.endswith("attn_q.weight"):
            data = permute_rotary(data, shape.heads)
        elif name.endswith("attn_k.weight"):
            data = permute_rotary(data, shape.kv_heads)
        data = np.ascontiguousarray(data)
        if data.ndim == 1 or out_type == "f32":
            writer.add_tensor(name, data.astype(np.float32))
        elif out_type == "f16":
            writer.add_tensor(name, data.astype(np.float16))
        else:
            packed = gguf.quants.quantize(data, gguf.GGMLQuantizationType.BF16)
            writer.add_tensor(
                name, packed, raw_shape=packed.shape, raw_dtype=gguf.GGMLQuantizationType.BF16
            )
        seen.add(name)
    expected = {"token_embd.weight", "output_norm.weight"}
    expected |= {f"blk.{i}.{n}" for i in range(shape.layers) for n in _LAYER_NAMES.values()}
    if not shape.tied:
        expected.add("output.weight")
    missing = sorted(expected - seen)
    if missing:
        writer.close()
        tmp_path.unlink(missing_ok=True)
        raise CommandError(f"{model_dir} lacks tensors {missing[:4]}: not a complete Llama model")

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp_path.replace(out_path)
    return {
        "out": str(out_path),
        "bytes": out_path.stat().st_size,
        "tensors": len(seen),
        "outtype": out_type,
        "tokenizer_pre": vocab.pre,
        "vocab_size": len(vocab.tokens),
        "merges": len(vocab.merges),
        "add_bos_token": vocab.add_bos,
        "special_token_ids": vocab.special_ids,
    }


def _write_metadata(
    writer: Any, gguf: Any, shape: LlamaShape, vocab: GgufVocab, name: str, out_type: str
) -> None:
    file_types = {
        "f32": gguf.LlamaFileType.ALL_F32,
        "f16": gguf.LlamaFileType.MOSTLY_F16,
        "bf16": gguf.LlamaFileType.MOSTLY_BF16,
    }
    writer.add_name(name)
    writer.add_file_type(file_types[out_type])
    writer.add_vocab_size(shape.vocab_size)
    writer.add_context_length(shape.context)
    writer.add_embedding_length(shape.hidden)
    writer.add_block_count(shape.layers)
    writer.add_feed_forward_length(shape.intermediate)
    writer.add_head_count(shape.heads)
    writer.add_head_count_kv(shape.kv_heads)
    writer.add_rope_dimension_count(shape.head_dim)
    if shape.head_dim * shape.heads != shape.hidden:
        writer.add_key_length(shape.head_dim)
        writer.add_value_length(shape.head_dim)
    writer.add_rope_freq_base(shape.rope_theta)
    writer.add_layer_norm_rms_eps(shape.rms_eps)

    writer.add_tokenizer_model(vocab.model)
    writer.add_tokenizer_pre(vocab.pre)
    writer.add_token_list(vocab.tokens)
    writer.add_token_types(vocab.token_types)
    writer.add_token_merges(vocab.merges)
    writer.add_add_bos_token(vocab.add_bos)
    writer.add_add_eos_token(False)
    adders = {
        "bos": writer.add_bos_token_id,
        "eos": writer.add_eos_token_id,
        "pad": writer.add_pad_token_id,
        "unk": writer.add_unk_token_id,
    }
    fim_keys = {
        "fim_pre": gguf.Keys.Tokenizer.FIM_PRE_ID,
        "fim_mid": gguf.Keys.Tokenizer.FIM_MID_ID,
        "fim_suf": gguf.Keys.Tokenizer.FIM_SUF_ID,
    }
    for key, token_id in vocab.special_ids.items():
        if key in adders:
            adders[key](token_id)
        else:
            writer.add_uint32(fim_keys[key], token_id)
