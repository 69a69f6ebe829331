"""A torch-only Llama forward pass, so the embedded engine starts without importing transformers.

``load_llama(path, device, dtype)`` reads a Hugging Face ``LlamaForCausalLM`` directory
(``config.json`` + safetensors) into ``TorchLlama``, which computes what transformers' Llama
computes (RMSNorm, rotary embeddings, SwiGLU MLP, multi-head or grouped-query attention, tied
or untied output head) and keeps its keys in the engine's own cache layers
(``model.engine.kv_cache``). It declines, with the reason, any config it does not implement in
full (rope scaling, biases, another activation, quantisation, missing or unknown weights), and
the engine then loads the model through transformers as before.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional

from model.engine.attention import shared_prefix_decode
from model.engine.kv_cache import LayerCache, make_layer_cache

#: Config keys that change the forward pass, with the only values implemented here.
_FIXED_SETTINGS: dict[str, tuple[Any, ...]] = {
    "hidden_act": ("silu",),
    "attention_bias": (False, None),
    "mlp_bias": (False, None),
    "rope_scaling": (None,),
    "quantization_config": (None,),
}
#: Weights transformers keeps as buffers in some old checkpoints; recomputed here.
_IGNORED_WEIGHT_SUFFIXES = (".rotary_emb.inv_freq",)


@dataclass(frozen=True)
class LlamaShape:
    """What the forward pass needs from ``config.json`` (read by ``read_llama_config``)."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    rms_norm_eps: float
    rope_theta: float
    tie_word_embeddings: bool
    max_position_embeddings: int
    bos_token_id: int | None
    eos_token_id: int | list[int] | None
    pad_token_id: int | None
    model_type: str = "llama"


def read_llama_config(config: dict[str, Any]) -> LlamaShape | str:
    """The shape of a plain Llama config, or why this module does not implement it."""
    if config.get("model_type") != "llama":
        return f"model_type {config.get('model_type')!r} is not llama"
    architectures = config.get("architectures") or ["LlamaForCausalLM"]
    if architectures != ["LlamaForCausalLM"]:
        return f"architectures {architectures} are not [LlamaForCausalLM]"
    for key, allowed in _FIXED_SETTINGS.items():
        if config.get(key, allowed[0]) not in allowed:
            return f"{key}={config[key]!r} is not implemented"
    rope = config.get("rope_parameters") or {}
    if not isinstance(rope, dict) or rope.get("rope_type", "default") != "default":
        return f"rope_parameters {rope!r} are not the default rotary embedding"
    if set(rope) - {"rope_type", "rope_theta"}:
        return f"rope_parameters {sorted(rope)} hold settings not implemented"
    try:
        heads = int(config["num_attention_heads"])
        hidden = int(config["hidden_size"])
        shape = LlamaShape(
            vocab_size=int(config["vocab_size"]),
            hidden_size=hidden,
            intermediate_size=int(config["intermediate_size"]),
            num_hidden_layers=int(config["num_hidden_layers"]),
            num_attention_heads=heads,
            num_key_value_heads=int(config.get("num_key_value_heads") or heads),
            head_dim=int(config.get("head_dim") or hidden // heads),
            rms_norm_eps=float(config.get("rms_norm_eps", 1e-6)),
            rope_theta=float(rope.get("rope_theta", config.get("rope_theta", 10000.0))),
            tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
            max_position_embeddings=int(config.get("max_position_embeddings", 2048)),
            bos_token_id=config.get("bos_token_id"),
            eos_token_id=config.get("eos_token_id"),
            pad_token_id=config.get("pad_token_id"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        return f"config.json lacks a usable {exc}"
    if shape.num_attention_heads % shape.num_key_value_heads:
        return "attention heads are not a multiple of key/value heads"
    return shape


@dataclass(frozen=True)
class GenerationSettings:
    """The part of ``generation_config.json`` the engine reads."""

    eos_token_id: int | list[int] | None = None


@dataclass(frozen=True)
class CausalLMOutput:
    logits: torch.Tensor  # (B, T, V)


def _empty(*shape: int) -> nn.Parameter:
    """A parameter to be filled from the checkpoint (no random initialisation to pay for)."""
    return nn.Parameter(torch.empty(shape), requires_grad=False)


class RMSNorm(nn.Module):
    def __init__(self, size: int, eps: float) -> None:
        super().__init__()
        self.weight = _empty(size)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype  # the statistics in fp32, as transformers computes them
        x = x.to(torch.float32)
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


class TokenEmbedding(nn.Module):
    def __init__(self, vocab_size: int, hidden_size: int) -> None:
        super().__init__()
        self.weight = _empty(vocab_size, hidden_size)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return functional.embedding(input_ids, self.weight)


def _linear(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``x @ weight.T`` in the weight's dtype, returned in ``x``'s (no casts when they match).

    With bf16 weights and fp32 activations this is what bf16 autocast computes (the bundled
    model trained under it): bf16 inputs, fp32 accumulation, the result rounded to bf16.
    """
    return functional.linear(x.to(weight.dtype), weight).to(x.dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class Attention(nn.Module):
    """Self-attention with the q, k and v projections in one matrix (one matmul per step)."""

    def __init__(self, shape: LlamaShape) -> None:
        super().__init__()
        self.heads, self.kv_heads = shape.num_attention_heads, shape.num_key_value_heads
        self.head_dim = shape.head_dim
        self.scale = shape.head_dim**-0.5
        self.qkv = _empty((self.heads + 2 * self.kv_heads) * self.head_dim, shape.hidden_size)
        self.out = _empty(shape.hidden_size, self.heads * self.head_dim)

    def forward(
        self,
        x: torch.Tensor,  # (B, T, C)
        rotary: tuple[torch.Tensor, torch.Tensor],  # cos, sin: (B, 1, T, D) each
        mask: torch.Tensor | None,  # (B, 1, T, K) bool, True = may attend
        layer: Any,
    ) -> torch.Tensor:
        batch, length, _ = x.shape
        q_size = self.heads * self.head_dim
        rotated = self.heads + self.kv_heads  # query and key heads: rotated in one pass
        qkv = _linear(x, self.qkv).view(batch, length, rotated + self.kv_heads, self.head_dim)
        qk = qkv[:, :, :rotated].transpose(1, 2)  # (B, H + Hkv, T, D)
        v = qkv[:, :, rotated:].transpose(1, 2)  # (B, Hkv, T, D)
        cos, sin = rotary
        qk = qk * cos + _rotate_half(qk) * sin
        q, k = qk.split([self.heads, self.kv_heads], dim=1)  # (B, H, T, D), (B, Hkv, T, D)
        if layer is not None and length == 1 and getattr(layer, "row_prompt", None) is not None:
            layer.update(k, v)  # a decode step over prompts shared by their samples
            out = shared_prefix_decode(layer, q, self.scale)  # (B, 1, H, D)
            return _linear(out.reshape(batch, 1, q_size), self.out)
        if layer is not None:
            k, v = layer.update(k, v)  # (B, Hkv, K, D): cached keys and these
        if self.kv_heads != self.heads:
            group = self.heads // self.kv_heads
            k = k[:, :, None].expand(-1, -1, group, -1, -1).flatten(1, 2)  # (B, H, K, D)
            v = v[:, :, None].expand(-1, -1, group, -1, -1).flatten(1, 2)
        out = functional.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=mask is None and length > 1, scale=self.scale
        )  # (B, H, T, D)
        return _linear(out.transpose(1, 2).reshape(batch, length, q_size), self.out)


class MLP(nn.Module):
    """SwiGLU with the gate and up projections in one matrix."""

    def __init__(self, shape: LlamaShape) -> None:
        super().__init__()
        self.gate_up = _empty(2 * shape.intermediate_size, shape.hidden_size)
        self.down = _empty(shape.hidden_size, shape.intermediate_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = _linear(x, self.gate_up).chunk(2, dim=-1)
        return _linear(functional.silu(gate) * up, self.down)


class DecoderLayer(nn.Module):
    def __init__(self, shape: LlamaShape) -> None:
        super().__init__()
        self.attention_norm = RMSNorm(shape.hidden_size, shape.rms_norm_eps)
        self.attention = Attention(shape)
        self.mlp_norm = RMSNorm(shape.hidden_size, shape.rms_norm_eps)
        self.mlp = MLP(shape)

    def forward(
        self,
        x: torch.Tensor,
        rotary: tuple[torch.Tensor, torch.Tensor],
        mask: torch.Tensor | None,
        layer: Any,
    ) -> torch.Tensor:
        x = x + self.attention(self.attention_norm(x), rotary, mask, layer)
        return x + self.mlp(self.mlp_norm(x))


class TorchLlama(nn.Module):
    """``LlamaForCausalLM``'s inference forward pass in plain torch, over the engine's caches.

    ``forward`` takes the keywords the engine passes transformers models (``input_ids``,
    ``attention_mask``, ``position_ids``, ``cache``, ``logits_to_keep``) and returns an object
    with ``logits``.
    """

    inv_freq: torch.Tensor  # (D/2,) rotary frequencies, a buffer kept in fp32

    def __init__(self, shape: LlamaShape) -> None:
        super().__init__()
        self.config = shape
        self.generation_config = GenerationSettings()
        self.embed = TokenEmbedding(shape.vocab_size, shape.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(shape) for _ in range(shape.num_hidden_layers))
        self.norm = RMSNorm(shape.hidden_size, shape.rms_norm_eps)
        self.lm_head = (
            self.embed.weight
            if shape.tie_word_embeddings
            else _empty(shape.vocab_size, shape.hidden_size)
        )
        dim = shape.head_dim
        inv_freq = 1.0 / (shape.rope_theta ** (torch.arange(0, dim, 2, dtype=torch.float) / dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)  # (D/2,)

    def get_input_embeddings(self) -> nn.Module:
        return self.embed

    def use_matmul_dtype(self, dtype: torch.dtype) -> None:
        """Keep the decoder layers' projection weights in ``dtype`` (e.g. bf16) and multiply in
        it; activations, norms, attention, the KV cache and the output head stay as they are.

        Half the weight bytes per decode step (a small batch's step is bound by reading the
        weights) and native bf16 matmuls for the prefill, on CPUs that have them. The output
        head keeps its dtype so logits and log-probs keep their precision.
        """
        for block in self.layers:
            assert isinstance(block, DecoderLayer)
            for parameter in (
                block.attention.qkv,
                block.attention.out,
                block.mlp.gate_up,
                block.mlp.down,
            ):
                parameter.data = parameter.data.to(dtype)

    def new_cache(self, kind: str, reserve_tokens: int) -> LayerCache:
        """An empty cache of ``kind`` (shared or preallocated) for one generation."""
        return make_layer_cache(len(self.layers), kind, reserve_tokens)

    def forward(
        self,
        input_ids: torch.Tensor,  # (B, T)
        attention_mask: torch.Tensor | None = None,  # (B, K): 1 = real token, K = past + T
        position_ids: torch.Tensor | None = None,  # (B, T)
        cache: LayerCache | None = None,
        use_cache: bool = True,
        logits_to_keep: int = 0,
    ) -> CausalLMOutput:
        batch, length = input_ids.shape
        past = 0
        if cache is not None and attention_mask is None and cache.layers:
            past = cache.layers[0].get_seq_length()
        if position_ids is None:
            position_ids = torch.arange(past, past + length, device=input_ids.device)
            position_ids = position_ids.expand(batch, -1)
        x = self.embed(input_ids)  # (B, T, C)
        freqs = position_ids[..., None].float() * self.inv_freq  # (B, T, D/2)
        angles = torch.cat((freqs, freqs), dim=-1)  # (B, T, D)
        rotary = (angles.cos()[:, None].to(x.dtype), angles.sin()[:, None].to(x.dtype))
        mask = _attention_mask(attention_mask, length)
        layers = cache.layers if cache is not None else [None] * len(self.layers)
        for block, layer in zip(self.layers, layers, strict=True):
            x = block(x, rotary, mask, layer)
        if logits_to_keep:
            x = x[:, -logits_to_keep:]
        return CausalLMOutput(functional.linear(self.norm(x), self.lm_head))


def _attention_mask(padding: torch.Tensor | None, length: int) -> torch.Tensor | None:
    """(B, 1, T, K) bool from a (B, K) padding mask whose last T columns are the new tokens:
    causal, real keys only. Each position may also see itself, so a padding query row is never
    empty (its output is unused, but an all-masked row would turn into NaN)."""
    if padding is None:
        return None
    width = padding.shape[1]
    keys = torch.arange(width, device=padding.device)  # (K,)
    queries = torch.arange(width - length, width, device=padding.device)[:, None]  # (T, 1)
    causal = keys <= queries  # (T, K)
    allowed = padding.bool()[:, None, :] & causal  # (B, T, K)
    allowed |= keys == queries  # the diagonal
    return allowed[:, None]  # (B, 1, T, K)


def _weight_files(path: Path) -> list[Path] | str:
    index = path / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return f"unreadable model.safetensors.index.json ({exc})"
        return [path / name for name in sorted(set(weight_map.values()))]
    single = path / "model.safetensors"
    return [single] if single.is_file() else "no model.safetensors"


def _checkpoint_names(shape: LlamaShape) -> dict[str, tuple[str, int, int]]:
    """Checkpoint tensor name -> (our parameter, first row, row count) it fills."""
    heads, kv_heads, dim = shape.num_attention_heads, shape.num_key_value_heads, shape.head_dim
    inner = shape.intermediate_size
    names = {"model.embed_tokens.weight": ("embed.weight", 0, shape.vocab_size)}
    names["model.norm.weight"] = ("norm.weight", 0, shape.hidden_size)
    if not shape.tie_word_embeddings:
        names["lm_head.weight"] = ("lm_head", 0, shape.vocab_size)
    for i in range(shape.num_hidden_layers):
        source, target = f"model.layers.{i}.", f"layers.{i}."
        pieces = {
            "self_attn.q_proj.weight": ("attention.qkv", 0, heads * dim),
            "self_attn.k_proj.weight": ("attention.qkv", heads * dim, kv_heads * dim),
            "self_attn.v_proj.weight": ("attention.qkv", (heads + kv_heads) * dim, kv_heads * dim),
            "self_attn.o_proj.weight": ("attention.out", 0, shape.hidden_size),
            "mlp.gate_proj.weight": ("mlp.gate_up", 0, inner),
            "mlp.up_proj.weight": ("mlp.gate_up", inner, inner),
            "mlp.down_proj.weight": ("mlp.down", 0, shape.hidden_size),
            "input_layernorm.weight": ("attention_norm.weight", 0, shape.hidden_size),
            "post_attention_layernorm.weight": ("mlp_norm.weight", 0, shape.hidden_size),
        }
        for name, (parameter, row, rows) in pieces.items():
            names[source + name] = (target + parameter, row, rows)
    return names


def load_llama(
    path: Path, device: torch.device, dtype: torch.dtype, matmul_dtype: torch.dtype | None = None
) -> TorchLlama | str:
    """The Llama checkpoint in ``path`` on ``device`` in ``dtype``, or why it needs transformers.

    ``matmul_dtype`` (default ``dtype``): the decoder layers' projections, see
    ``TorchLlama.use_matmul_dtype``.

    Each tensor is read from the safetensors file and converted straight into its slot of the
    model's (fused) parameters: one copy, no intermediate float32 checkpoint.
    """
    from safetensors import safe_open

    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"unreadable config.json ({exc})"
    shape = read_llama_config(config) if isinstance(config, dict) else "config.json is no object"
    if isinstance(shape, str):
        return shape
    files = _weight_files(path)
    if isinstance(files, str):
        return files
    names = _checkpoint_names(shape)
    with torch.device(device):
        model = TorchLlama(shape).to(dtype)
    model.inv_freq = model.inv_freq.float()  # rotary angles in fp32 whatever the weights' dtype
    if matmul_dtype is not None and matmul_dtype != dtype:
        model.use_matmul_dtype(matmul_dtype)  # before filling: each tensor is copied once
    parameters = dict(model.named_parameters(remove_duplicate=False))
    filled: set[str] = set()
    for file in files:
        if not file.is_file():
            return f"missing weights file {file.name}"
        with safe_open(str(file), framework="pt") as weights:
            for name in weights.keys():  # noqa: SIM118 (safe_open is no mapping)
                if name.endswith(_IGNORED_WEIGHT_SUFFIXES):
                    continue
                if name == "lm_head.weight" and shape.tie_word_embeddings:
                    continue  # tied: transformers uses the embedding matrix as well
                if name not in names:
                    return f"unexpected weight {name}"
                parameter, row, rows = names[name]
                tensor = weights.get_tensor(name)
                target = parameters[parameter].data[row : row + rows]
                if tensor.shape != target.shape:
                    return (
                        f"weight {name} has shape {tuple(tensor.shape)}, not {tuple(target.shape)}"
                    )
                target.copy_(tensor)
                filled.add(name)
    missing = sorted(set(names) - filled)
    if missing:
        return f"weight {missing[0]} is missing"
    model.generation_config = _generation_settings(path)
    return model.eval()


def _generation_settings(path: Path) -> GenerationSettings:
    try:
        saved = json.loads((path / "generation_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return GenerationSettings()
    return GenerationSettings(eos_token_id=saved.get("eos_token_id"))
