"""Decode-step attention that reads each prompt's keys once for all of that prompt's samples."""

from __future__ import annotations

import threading
from typing import Any

import torch

#: The name the attention function is registered under with transformers.
SHARED_PREFIX_ATTENTION = "docomplete_shared_prefix"
_SHARED_PREFIX_ARCHITECTURES = frozenset({"llama", "qwen2", "qwen3", "mistral"})


class _ActiveCache(threading.local):
    """The cache ``shared_prefix_attention`` reads during an engine forward call (thread-local:
    several engines may decode in different threads of one process); None outside one."""

    cache: Any = None


ACTIVE = _ActiveCache()


def shared_prefix_attention(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Decode-step attention over a shared prompt part plus per-row generated part.

    Anything else (prefill, other caches, HF ``generate``) goes to the stock SDPA function.
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    active = ACTIVE.cache
    layer = active.layers[module.layer_idx] if active is not None else None
    if layer is None or query.shape[2] != 1 or getattr(layer, "row_prompt", None) is None:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, scaling=scaling, **kwargs
        )
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    return shared_prefix_decode(layer, query, scale), None


def shared_prefix_decode(layer: Any, query: torch.Tensor, scale: float) -> torch.Tensor:
    """One decode step's attention for (B, H, 1, D) queries over ``layer`` (a
    ``SharedPrefixLayer`` after ``share``): its prompts' keys plus each row's generated keys.

    Returns (B, 1, H, D), the layout attention functions hand back to the model.
    """
    rows, q_heads, _, dim = query.shape  # (B, H, 1, D)
    prompt_keys, prompt_values = layer.prompt_keys, layer.prompt_values  # (P, Hkv, Lp, D) each
    prompts, kv_heads, _, _ = prompt_keys.shape
    group = q_heads // kv_heads  # query heads per key/value head (GQA)
    q = query.reshape(rows, kv_heads, group, dim)  # (B, Hkv, G, D)

    # Prompt part: gather each prompt's rows into one block so its keys are read once.
    slots = layer.slots
    one_block = prompts == 1 and slots == rows  # one prompt (an editor's request): no gathers
    if one_block:
        grouped = q.unsqueeze(0)  # (1, B, Hkv, G, D): row r is slot r
    else:
        grouped = q.new_zeros((prompts, slots, kv_heads, group, dim))  # (P, S, Hkv, G, D)
        grouped[layer.row_prompt, layer.row_slot] = q  # padding slots stay zero
    # (P, S, Hkv, G, D) -> (P, Hkv, S*G, D): one query block per prompt and key/value head
    grouped = grouped.permute(0, 2, 1, 3, 4).reshape(prompts, kv_heads, slots * group, dim)
    # Softmax pieces in fp32 even when the cache is bf16/fp16 (GPU); no-ops on CPU fp32.
    scores = torch.matmul(grouped, prompt_keys.transpose(-1, -2)).float() * scale  # (P,Hkv,S*G,Lp)
    scores = scores.masked_fill(~layer.prompt_valid[:, None, None, :], float("-inf"))
    prompt_max = scores.amax(dim=-1, keepdim=True)  # (P, Hkv, S*G, 1)
    weights = torch.exp(scores - prompt_max)
    prompt_sum = weights.sum(dim=-1, keepdim=True)
    prompt_out = torch.matmul(
        weights.to(prompt_values.dtype), prompt_values
    ).float()  # (P,Hkv,S*G,D)

    def to_rows(t: torch.Tensor) -> torch.Tensor:  # (P, Hkv, S*G, X) -> (B, Hkv, G, X)
        t = t.reshape(prompts, kv_heads, slots, group, t.shape[-1]).permute(0, 2, 1, 3, 4)
        return t[0] if one_block else t[layer.row_prompt, layer.row_slot]

    prompt_max, prompt_sum, prompt_out = (
        to_rows(prompt_max),
        to_rows(prompt_sum),
        to_rows(prompt_out),
    )

    # Generated part: every surviving row has generated the same number of tokens, no padding.
    gen_keys = layer.gen_keys[:, :, : layer.generated]  # (B, Hkv, T, D)
    gen_values = layer.gen_values[:, :, : layer.generated]
    gen_scores = torch.matmul(q, gen_keys.transpose(-1, -2)).float() * scale  # (B, Hkv, G, T)
    gen_max = gen_scores.amax(dim=-1, keepdim=True)
    gen_weights = torch.exp(gen_scores - gen_max)
    gen_sum = gen_weights.sum(dim=-1, keepdim=True)
    gen_out = torch.matmul(gen_weights.to(gen_values.dtype), gen_values).float()  # (B, Hkv, G, D)

    # Merge the two softmax pieces (log-sum-exp rescaling).
    both_max = torch.maximum(prompt_max, gen_max)
    prompt_scale = torch.exp(prompt_max - both_max)
    gen_scale = torch.exp(gen_max - both_max)
    out = (prompt_out * prompt_scale + gen_out * gen_scale) / (
        prompt_sum * prompt_scale + gen_sum * gen_scale
    )  # (B, Hkv, G, D)
    return out.to(query.dtype).reshape(rows, 1, q_heads, dim)  # (B, 1, H, D) like SDPA


def enable_shared_prefix(model: Any) -> bool:
    """Switch a known decoder architecture to the shared-prompt attention; False if unsuitable."""
    config = model.config
    if getattr(config, "model_type", None) not in _SHARED_PREFIX_ARCHITECTURES:
        return False
    if getattr(config, "sliding_window", None) or (
        getattr(config, "layer_types", None)
        and any(t != "full_attention" for t in config.layer_types)
    ):
        return False
    if config._attn_implementation not in ("sdpa", "eager", SHARED_PREFIX_ATTENTION):
        return False
    _register()
    model.set_attn_implementation(SHARED_PREFIX_ATTENTION)
    return True


def _register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(SHARED_PREFIX_ATTENTION, shared_prefix_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(SHARED_PREFIX_ATTENTION, sdpa_mask)
