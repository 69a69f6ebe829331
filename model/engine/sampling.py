"""Token choice for the decode loop: counter-based randomness, top-p, stop strings, scope stop."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from model.engine.records import GenerationRequest

#: How many trailing tokens are re-decoded to look for a stop string after each new token.
_STOP_WINDOW_EXTRA_TOKENS = 4
_HASH_MASK = 0xFFFFFFFF
#: Top-k sizes tried in turn for top-p before a full sort (see ``sample_next``): on the bundled
#: model the nucleus (T=0.8, top_p=0.95) lies in the top 64 tokens in ~98 % of decode steps and
#: in the top 256 in all but ~0.4 %; a top-64 costs a third of a top-256 over 8k tokens.
_TOP_P_CANDIDATES = (64, 256)

Decode = Callable[[Sequence[int]], str]


def _hash32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer mix (int64 tensor in, values in [0, 2**32) out); constants < 2**31 keep
    every product inside int64."""
    x = x & _HASH_MASK
    x = ((x ^ (x >> 16)) * 0x45D9F3B) & _HASH_MASK
    x = ((x ^ (x >> 16)) * 0x45D9F3B) & _HASH_MASK
    return x ^ (x >> 16)


def step_uniforms(seeds: torch.Tensor, sample_indices: torch.Tensor, step: int) -> torch.Tensor:
    """One uniform in [0, 1) per row, a pure function of (seed, sample index, step).

    ``seeds`` and ``sample_indices`` are (B,) int64 on the CPU; the result is (B,) float64.
    """
    h = _hash32(seeds)
    h = _hash32(h ^ (sample_indices * 0x27D4EB2D & _HASH_MASK))
    h = _hash32(h ^ ((step + 1) * 0x165667B1 & _HASH_MASK))
    return h.to(torch.float64) / float(1 << 32)


def sample_next(
    logits: torch.Tensor,  # (B, V) float32
    temperatures: torch.Tensor,  # (B,)
    top_ps: torch.Tensor,  # (B,)
    uniforms: torch.Tensor,  # (B,) float64 on CPU
) -> tuple[torch.Tensor, torch.Tensor]:
    """Next token per row (greedy where T == 0, else top-p sampling) + its raw log-prob."""
    raw_logprobs = torch.log_softmax(logits, dim=-1)  # (B, V)
    sampling = temperatures > 0
    # The argmax only for rows that decode greedily (None: every row samples).
    greedy = None if bool(sampling.all()) else logits.argmax(dim=-1)  # (B,)
    if greedy is None or bool(sampling.any()):
        safe_t = torch.where(sampling, temperatures, torch.ones_like(temperatures))
        probs = torch.softmax(logits / safe_t.unsqueeze(1), dim=-1)  # (B, V)
        order: torch.Tensor | None
        if bool((top_ps < 1).any()):
            # Sorting the whole vocabulary is slow; a trained model's nucleus nearly always lies
            # in its top few dozen tokens, and when the top-k mass reaches top_p the nucleus is
            # exactly inside it (the kept prefix, hence the pick, is the same for any such k).
            for k in _TOP_P_CANDIDATES:
                sorted_probs, order = probs.topk(min(k, probs.shape[-1]), dim=-1)  # (B, k)
                if k >= probs.shape[-1] or bool((sorted_probs.sum(-1) >= top_ps).all()):
                    break
            else:
                sorted_probs, order = probs.sort(dim=-1, descending=True)  # (B, V) each
            mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
            # Keep the smallest prefix whose mass reaches top_p (the first token always).
            sorted_probs = sorted_probs.masked_fill(mass_before >= top_ps.unsqueeze(1), 0.0)
        else:
            sorted_probs, order = probs, None
        cumulative = sorted_probs.double().cumsum(dim=-1)  # (B, V)
        targets = uniforms.to(cumulative.device) * cumulative[:, -1]  # (B,)
        picked = torch.searchsorted(cumulative, targets.unsqueeze(1), right=True)  # (B, 1)
        # u * total can round up to total: never step past the last kept token.
        last_kept = (sorted_probs > 0).sum(dim=-1, keepdim=True) - 1  # (B, 1)
        picked = torch.minimum(picked, last_kept.clamp(min=0))
        if order is not None:
            picked = order.gather(1, picked)
        sampled = picked.squeeze(1)  # (B,)
        next_ids = sampled if greedy is None else torch.where(sampling, sampled, greedy)
    else:
        assert greedy is not None
        next_ids = greedy
    return next_ids, raw_logprobs.gather(1, next_ids.unsqueeze(1)).squeeze(1)


def hit_stop(token_ids: Sequence[int], stops: Sequence[str], decode: Decode) -> bool:
    """Whether a stop string appears in the text around the newest token."""
    window = max(len(s) for s in stops) + _STOP_WINDOW_EXTRA_TOKENS
    tail = decode(token_ids[-window:])
    return any(s in tail for s in stops)


def scope_exit(text: str, scope_indent: int, *, at_line_start: bool) -> int:
    """Where ``text`` leaves the function being written, or -1.

    The function's body starts at the first non-blank line of ``text`` (line 0 counts only when
    the prompt ended at a line start: otherwise it continues the prompt's last line). A later
    line whose first non-blank character sits at column <= ``scope_indent``, and left of that
    first body line, is outside the function; the result is the offset of the line break before
    it. A line that is still blank is undecided, so blank lines inside a body are kept.
    """
    anchor: int | None = None
    offset = 0
    for number, line in enumerate(text.split("\n")):
        start, offset = offset, offset + len(line) + 1
        content = line.lstrip(" \t")
        if not content or (number == 0 and not at_line_start):
            continue
        column = len(line) - len(content)
        if anchor is None:
            anchor = column
        elif column <= scope_indent and column < anchor:
            return start - 1
    return -1


def scope_cut(request: GenerationRequest, text: str) -> int:
    """Where ``text`` leaves the function the request completes (``params.scope_indent``)."""
    indent = request.params.scope_indent
    if indent is None or "\n" not in text:
        return -1
    prompt = request.prompt
    return scope_exit(text, indent, at_line_start=not prompt or prompt.endswith("\n"))


def left_scope(request: GenerationRequest, token_ids: Sequence[int], decode: Decode) -> bool:
    """Whether a sample has written a line outside the function it completes."""
    if request.params.scope_indent is None:
        return False
    return scope_cut(request, decode(token_ids)) >= 0


def stop_offset(text: str, stops: Sequence[str]) -> int:
    """Offset of the earliest stop string in ``text``, or -1."""
    return min((pos for s in stops if (pos := text.find(s)) >= 0), default=-1)


def cut_at(
    text: str,
    token_ids: list[int],
    logprobs: list[float],
    cut: int,
    decode: Decode,
) -> tuple[str, list[int], list[float]]:
    """Cut ``text`` at offset ``cut``, keeping only the tokens whose text lies entirely before
    it (with their log-probs); unchanged when ``cut`` is negative."""
    if cut < 0:
        return text, token_ids, logprobs
    # Keep the longest token prefix whose text fits before the cut.
    kept = len(token_ids)
    while kept > 0 and len(decode(token_ids[:kept])) > cut:
        kept -= 1
    return text[:cut], token_ids[:kept], logprobs[:kept]


def cut_at_stop(
    text: str,
    token_ids: list[int],
    logprobs: list[float],
    stops: Sequence[str],
    decode: Decode,
) -> tuple[str, list[int], list[float]]:
    """Cut ``text`` just before its first stop string, keeping only the tokens whose text lies
    entirely before it (with their log-probs); unchanged when no stop string occurs."""
    return cut_at(text, token_ids, logprobs, stop_offset(text, stops), decode)
