"""Read /v1/completions answers of any OpenAI-compatible server into checked Candidates.

Light tier (stdlib only). Servers differ in how they answer the same request:

* choices: vLLM, llama-server and ``docomplete serve`` number them ``prompt_index * n + i``;
  llama_cpp.server ignores ``n`` and answers one choice per call; a server may cap ``n``.
  :func:`group_choices` accepts exactly these shapes and rejects everything else (indices out of
  range or repeated, a prompt without candidates) with a ``BackendResponseError``.
* log-probs: the classic shape ``{tokens, token_logprobs, top_logprobs, text_offset}`` (vLLM,
  llama_cpp.server, ``docomplete serve``), the chat-style ``{content: [{token, logprob, bytes,
  top_logprobs}]}`` that llama-server uses for completions too, or none at all. Servers also
  disagree on the tokens of a stop string: llama_cpp.server and vLLM keep them, llama-server
  drops as many tokens as the stop string tokenizes to. :func:`parse_logprobs` keeps exactly the
  tokens whose text lies inside the returned text, as our engine does.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from model.protocol import BackendResponseError, BackendShortfall, Candidate, FinishReason

LogprobShape = Literal["classic", "content", "none"]


@dataclass(frozen=True)
class ParsedLogprobs:
    """The sampled tokens' texts and log-probs of one choice, and the shape they came in."""

    tokens: tuple[str, ...]
    logprobs: tuple[float, ...]
    shape: LogprobShape


_NONE = ParsedLogprobs((), (), "none")


def _finite_floats(values: Sequence[Any]) -> tuple[float, ...] | None:
    """All values as floats, or None if any is missing, not a number, NaN or infinite."""
    out = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        if not math.isfinite(value):
            return None
        out.append(float(value))
    return tuple(out)


def _kept_token_count(ends: Sequence[int], text_length: int) -> int:
    """How many leading tokens end inside the text (the rest belong to a trimmed stop string)."""
    kept = 0
    for end in ends:
        if end > text_length:
            break
        kept += 1
    return kept


def _cut_to_text(
    tokens: tuple[str, ...],
    logprobs: tuple[float, ...],
    ends: list[int],
    text_length: int,
    finish_reason: FinishReason,
) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """Drop the tokens of a trimmed stop string and a trailing end-of-sequence token.

    ``ends`` are the tokens' end offsets, in the unit ``text_length`` is measured in. Only an
    answer that ended on a stop is cut, and only when the offsets are consistent
    (non-decreasing): a server whose token texts do not spell the text keeps what it sent.
    """
    if finish_reason != "stop" or not tokens:
        return tokens, logprobs
    if any(later < earlier for earlier, later in itertools.pairwise(ends)):
        return tokens, logprobs
    kept = _kept_token_count(ends, text_length)
    # A zero-width last token is an end-of-sequence token (llama-server reports it with empty
    # text); our engine does not keep it either.
    while kept > 0 and ends[kept - 1] == (ends[kept - 2] if kept > 1 else 0):
        kept -= 1
    return tokens[:kept], logprobs[:kept]


def _parse_classic(raw: dict[str, Any], text: str, finish: FinishReason) -> ParsedLogprobs:
    # vLLM: vllm/entrypoints/openai/protocol.py CompletionLogProbs and serving_completion.py
    # _create_completion_logprobs (text_offset starts at 0, -inf is clamped to -9999.0);
    # llama_cpp.server: llama_cpp/llama.py _create_completion (text_offset starts at
    # len(prompt), tokens decoded one by one with errors="ignore").
    tokens_raw = raw.get("tokens")
    values = raw.get("token_logprobs")
    if not isinstance(values, list):
        return _NONE
    if not values:  # an empty completion
        return ParsedLogprobs((), (), "classic")
    logprobs = _finite_floats(values)
    if logprobs is None:
        return _NONE
    if not isinstance(tokens_raw, list) or len(tokens_raw) != len(values):
        # Log-probs without token texts cannot be aligned with the text: keep them as sent.
        return ParsedLogprobs((), logprobs, "classic")
    tokens = tuple(str(t) for t in tokens_raw)
    offsets = raw.get("text_offset")
    if (
        isinstance(offsets, list)
        and len(offsets) == len(tokens)
        and all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
    ):
        # Offsets come from decoding token prefixes, so they survive tokens that split a
        # character; a token ends where the next one starts.
        starts = [o - offsets[0] for o in offsets]
        ends = [*starts[1:], starts[-1] + len(tokens[-1])]
    else:
        ends = _running_ends(len(t) for t in tokens)
    tokens, logprobs = _cut_to_text(tokens, logprobs, ends, len(text), finish)
    return ParsedLogprobs(tokens, logprobs, "classic")


def _running_ends(lengths: Any) -> list[int]:
    ends, position = [], 0
    for length in lengths:
        position += length
        ends.append(position)
    return ends


def _parse_content(entries: list[Any], text: str, finish: FinishReason) -> ParsedLogprobs:
    # llama-server: tools/server/server-task.cpp completion_token_output::probs_vector_to_json,
    # used by to_json_oaicompat for /v1/completions; "bytes" are the token's raw UTF-8 bytes,
    # "token" is cut to valid UTF-8. A probability of 0 is sent as the lowest float, not -inf.
    if not all(isinstance(e, dict) for e in entries):
        return _NONE
    logprobs = _finite_floats([e.get("logprob") for e in entries])
    if logprobs is None:
        return _NONE
    tokens = tuple(str(e.get("token", "")) for e in entries)
    lengths = []
    for entry, token in zip(entries, tokens, strict=True):
        raw_bytes = entry.get("bytes")
        if isinstance(raw_bytes, list) and all(isinstance(b, int) for b in raw_bytes):
            lengths.append(len(raw_bytes))
        else:
            lengths.append(len(token.encode("utf-8")))
    ends = _running_ends(lengths)
    tokens, logprobs = _cut_to_text(tokens, logprobs, ends, len(text.encode("utf-8")), finish)
    return ParsedLogprobs(tokens, logprobs, "content")


def parse_logprobs(raw: Any, text: str, finish_reason: FinishReason) -> ParsedLogprobs:
    """One choice's ``logprobs`` field in any shape, cut to the tokens inside ``text``."""
    if not isinstance(raw, dict):
        return _NONE
    content = raw.get("content")
    if isinstance(content, list):
        return _parse_content(content, text, finish_reason)
    if "token_logprobs" in raw:
        return _parse_classic(raw, text, finish_reason)
    return _NONE


@dataclass(frozen=True)
class GroupedChoices:
    """Candidates per prompt (possibly fewer than n) and the log-prob shapes seen."""

    groups: list[list[Candidate]]
    shapes: frozenset[LogprobShape]


def _choice_index(choice: dict[str, Any], position: int, where: str) -> int:
    index = choice.get("index", position)
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise BackendResponseError(f"{where} answered a choice with index {index!r}")
    return index


def group_choices(
    body: Any, prompt_count: int, n: int, *, where: str = "the model server"
) -> GroupedChoices:
    """Group a completions answer's choices per prompt, checking the indices.

    Accepted shapes: ``prompt_count * n`` choices indexed ``prompt * n + i``; one choice per
    prompt indexed by prompt (``n`` ignored); for a single prompt, 1..n choices (``n`` capped).
    Anything else raises ``BackendResponseError`` naming what came back.
    """
    choices = body.get("choices") if isinstance(body, dict) else None
    if not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
        raise BackendResponseError(f"{where} answered without a list of 'choices'")
    indexed = [(_choice_index(c, i, where), c) for i, c in enumerate(choices)]
    indices = sorted(i for i, _ in indexed)
    count = len(indexed)
    if indices != list(range(count)):
        raise BackendResponseError(
            f"{where} answered choice indices {indices[:8]}{'…' if count > 8 else ''}, expected "
            f"0..{prompt_count * n - 1} for {prompt_count} prompt(s) × n={n}"
        )
    if count == prompt_count * n:
        per_prompt = n
    elif count == prompt_count:  # n ignored: one choice per prompt, indexed by prompt
        per_prompt = 1
    elif prompt_count == 1 and 0 < count < n:  # n capped
        per_prompt = count
    else:
        raise BackendResponseError(
            f"{where} answered {count} choice(s) for {prompt_count} prompt(s) × n={n}; "
            f"expected {prompt_count * n}"
        )
    groups: list[list[Candidate]] = [[] for _ in range(prompt_count)]
    shapes: set[LogprobShape] = set()
    for index, choice in sorted(indexed, key=lambda pair: pair[0]):
        candidate, shape = choice_candidate(choice)
        shapes.add(shape)
        groups[index // per_prompt].append(candidate)
    return GroupedChoices(groups, frozenset(shapes))


def choice_candidate(choice: dict[str, Any]) -> tuple[Candidate, LogprobShape]:
    """One choice as a Candidate (finish reasons other than "stop" count as "length")."""
    text = choice.get("text")
    text = text if isinstance(text, str) else ""
    finish: FinishReason = "stop" if choice.get("finish_reason") == "stop" else "length"
    parsed = parse_logprobs(choice.get("logprobs"), text, finish)
    candidate = Candidate(
        text=text, token_logprobs=parsed.logprobs, finish_reason=finish, tokens=parsed.tokens
    )
    return candidate, parsed.shape


def parse_completions(
    body: Any, prompt_count: int, n: int, *, where: str = "the model server"
) -> list[list[Candidate]]:
    """``prompt_count`` lists of exactly ``n`` candidates, or a typed ``BackendResponseError``."""
    grouped = group_choices(body, prompt_count, n, where=where)
    for prompt_index, group in enumerate(grouped.groups):
        if len(group) != n:
            raise BackendShortfall(
                f"{where} answered {len(group)} of n={n} candidates for prompt {prompt_index}"
            )
    return grouped.groups
