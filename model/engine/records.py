"""The engine's errors and records: requests in, candidates out, counters, per-row state."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from model.protocol import Candidate, DecodeBudget, FinishReason, SamplingParams


class EngineLoadError(RuntimeError):
    """The model directory cannot be loaded; ``str(error)`` is one line naming the fix."""


class GenerationCancelled(RuntimeError):
    """The caller's cancel event was set before generation finished."""


@dataclass(frozen=True)
class GeneratedCandidate:
    """One finished sample: text plus what produced it."""

    text: str
    token_ids: tuple[int, ...]
    token_logprobs: tuple[float, ...]
    finish_reason: FinishReason
    tokens: tuple[str, ...]
    #: Tokens sampled, including any trimmed with a stop string and the EOS token.
    generated_tokens: int
    #: Per kept token, the request's ``top_logprobs`` most likely (token id, raw log-prob) pairs
    #: at its position, most likely first; empty unless asked for.
    top_logprobs: tuple[tuple[tuple[int, float], ...], ...] = ()

    def to_candidate(self) -> Candidate:
        return Candidate(
            text=self.text,
            token_logprobs=self.token_logprobs,
            finish_reason=self.finish_reason,
            tokens=self.tokens,
        )


@dataclass
class GenerationRequest:
    """One prompt with its own sampling parameters, as the model server's scheduler submits it.

    ``on_token(sample_index, token_id, raw_logprob, top)`` is called from the engine thread for
    each sampled token (streaming; ``top`` holds the ``top_logprobs`` most likely (token id, raw
    log-prob) pairs, or nothing); ``on_finish(sample_index, candidate)`` for each sample as soon
    as it ends. ``cancel`` drops this request's rows from the batch when set; ``truncate`` ends
    them at the next step with the text they have (``finish_reason="length"``); ``budget`` cuts
    samples that run far longer than their finished siblings (default: ``params.decode_budget``).
    """

    prompt: str
    params: SamplingParams
    cancel: threading.Event | None = None
    on_token: Callable[[int, int, float, tuple[tuple[int, float], ...]], None] | None = None
    #: How many of each position's most likely tokens to record (the server's ``logprobs: k``).
    top_logprobs: int = 0
    on_finish: Callable[[int, GeneratedCandidate], None] | None = None
    truncate: threading.Event | None = None
    budget: DecodeBudget | None = None
    #: Filled in by the engine: prompt tokens actually used (after left truncation).
    prompt_tokens: int = 0
    cancelled: bool = False
    results: list[GeneratedCandidate] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.budget is None:
            self.budget = self.params.decode_budget


@dataclass
class EngineStats:
    """Counters that let tests and /metrics see what the engine really did."""

    prefill_calls: int = 0
    prefill_tokens: int = 0  # prompt tokens run through the model (padding excluded)
    decode_steps: int = 0  # forward calls of the decode loop
    decoded_rows: int = 0  # sum over decode steps of the rows in the batch
    generated_tokens: int = 0
    # Wall time: prompt forward passes, decode-step forward passes, and token choice (sampling).
    prefill_seconds: float = 0.0
    forward_seconds: float = 0.0
    sample_seconds: float = 0.0


@dataclass
class DecodeRow:
    """Bookkeeping for one sample while it decodes (one row of the batch)."""

    request: GenerationRequest
    sample_index: int
    seed: int
    max_tokens: int
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    tops: list[tuple[tuple[int, float], ...]] = field(default_factory=list)
