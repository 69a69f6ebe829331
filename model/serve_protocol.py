"""The /v1/completions wire format: request validation and the JSON and SSE bodies sent back."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from model.fim import FimTemplate, build_fim_prompt
from model.protocol import DecodeBudget, SamplingParams
from model.serve_text import Decode, Release, TokenLabel, detokenize, top_logprob_dicts

if TYPE_CHECKING:
    from model.engine import GeneratedCandidate, GenerationRequest

MAX_N = 256
MAX_LOGPROBS = 5
MAX_STOP_SEQUENCES = 16
#: Default cap on rows (prompts x n) of one request: a bigger one would hold the engine alone.
DEFAULT_MAX_ROWS = 512


class InvalidParam(ValueError):
    """A request field is invalid; becomes an OpenAI-style 400 naming ``param``."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


# --------------------------------------------------------------------------- request parsing
@dataclass(frozen=True)
class CompletionRequest:
    """A validated /v1/completions body: the prompts and how to sample and answer them."""

    #: What the engine completes: the prompts, or their fill-in-the-middle form with a suffix.
    prompts: list[str]
    params: SamplingParams
    logprobs: int | None
    echo: bool
    stream: bool
    #: The prompts as the client sent them (what ``echo`` repeats).
    client_prompts: list[str]


def _number(body: dict[str, Any], name: str, default: float, kind: type[int] | type[float]) -> Any:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidParam(name, f"'{name}' must be a number, got {type(value).__name__}")
    if kind is int and (not float(value).is_integer()):
        raise InvalidParam(name, f"'{name}' must be an integer, got {value}")
    return kind(value)


def parse_completion_request(
    body: Any,
    max_context: int,
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
    fim: FimTemplate | None = None,
) -> CompletionRequest:
    """Validate a /v1/completions body; raises InvalidParam naming the offending field.

    ``max_rows`` caps prompts x n; ``fim`` is the served model's fill-in-the-middle template
    (None when its tokenizer has no FIM tokens), used when the body has a ``suffix``.
    """
    if not isinstance(body, dict):
        raise InvalidParam("body", "the request body must be a JSON object")
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        prompts = [prompt]
    elif isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        prompts = list(prompt)
    else:
        raise InvalidParam("prompt", "'prompt' must be a string or a non-empty list of strings")
    max_tokens = _number(body, "max_tokens", 16, int)
    if not 1 <= max_tokens < max_context:
        raise InvalidParam(
            "max_tokens", f"'max_tokens' must be between 1 and {max_context - 1}, got {max_tokens}"
        )
    temperature = _number(body, "temperature", 1.0, float)
    if not 0 <= temperature <= 100:
        raise InvalidParam("temperature", f"'temperature' must be in [0, 100], got {temperature}")
    top_p = _number(body, "top_p", 1.0, float)
    if not 0 < top_p <= 1:
        raise InvalidParam("top_p", f"'top_p' must be in (0, 1], got {top_p}")
    n = _number(body, "n", 1, int)
    if not 1 <= n <= MAX_N:
        raise InvalidParam("n", f"'n' must be between 1 and {MAX_N}, got {n}")
    if len(prompts) * n > max_rows:
        raise InvalidParam(
            "n" if len(prompts) == 1 else "prompt",
            f"this request asks for {len(prompts)} prompt(s) x n={n} = {len(prompts) * n} "
            f"completions; this server takes at most {max_rows} per request (--max-rows): "
            "split it into smaller requests",
        )
    engine_prompts = _fim_prompts(body.get("suffix"), prompts, fim)
    stop_field = body.get("stop")
    if stop_field is None:
        stop: tuple[str, ...] = ()
    elif isinstance(stop_field, str):
        stop = (stop_field,)
    elif isinstance(stop_field, list) and all(isinstance(s, str) for s in stop_field):
        stop = tuple(stop_field)
    else:
        raise InvalidParam("stop", "'stop' must be a string or a list of strings")
    if len(stop) > MAX_STOP_SEQUENCES or any(not s for s in stop):
        raise InvalidParam("stop", f"'stop' takes at most {MAX_STOP_SEQUENCES} non-empty strings")
    seed_field = body.get("seed")
    if seed_field is not None and (isinstance(seed_field, bool) or not isinstance(seed_field, int)):
        raise InvalidParam("seed", "'seed' must be an integer")
    logprobs_field = body.get("logprobs")
    if logprobs_field is not None and (
        isinstance(logprobs_field, bool)
        or not isinstance(logprobs_field, int)
        or not 0 <= logprobs_field <= MAX_LOGPROBS
    ):
        raise InvalidParam("logprobs", f"'logprobs' must be an integer in [0, {MAX_LOGPROBS}]")
    scope_field = body.get("scope_indent")  # a docomplete extension, see SamplingParams
    if scope_field is not None and (
        isinstance(scope_field, bool) or not isinstance(scope_field, int) or scope_field < 0
    ):
        raise InvalidParam("scope_indent", "'scope_indent' must be an integer >= 0")
    budget = _decode_budget(body.get("decode_budget"))
    echo = body.get("echo", False)
    stream = body.get("stream", False)
    for name, value in (("echo", echo), ("stream", stream)):
        if not isinstance(value, bool):
            raise InvalidParam(name, f"'{name}' must be true or false")
    if echo and logprobs_field is not None:
        raise InvalidParam("echo", "'echo' together with 'logprobs' is not supported; drop one")
    params = SamplingParams(
        n=n,
        temperature=temperature,
        top_p=top_p,
        max_tokens=max_tokens,
        stop=stop,
        seed=seed_field % (1 << 31) if seed_field is not None else None,
        scope_indent=scope_field,
        decode_budget=budget,
    )
    return CompletionRequest(engine_prompts, params, logprobs_field, echo, stream, prompts)


def _decode_budget(field_value: Any) -> DecodeBudget | None:
    """The ``decode_budget`` extension: an object with any of DecodeBudget's fields, or null."""
    if field_value is None:
        return None
    defaults = dataclasses.asdict(DecodeBudget())  # the fields, and which of them are integers
    if not isinstance(field_value, dict) or not set(field_value) <= set(defaults):
        raise InvalidParam(
            "decode_budget",
            f"'decode_budget' must be an object with fields from {sorted(defaults)}",
        )
    values: dict[str, Any] = {}
    for name, value in field_value.items():
        integral = isinstance(defaults[name], int)
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or value < 0 or (integral and not float(value).is_integer()):
            raise InvalidParam("decode_budget", f"'decode_budget.{name}' must be a number >= 0")
        if name == "quorum" and value > 1:
            raise InvalidParam("decode_budget", "'decode_budget.quorum' must be at most 1")
        values[name] = int(value) if integral else float(value)
    return DecodeBudget(**values)


def _fim_prompts(suffix: Any, prompts: list[str], fim: FimTemplate | None) -> list[str]:
    """The prompts the engine sees: with a ``suffix``, the model's fill-in-the-middle form."""
    if suffix is None:
        return prompts
    if not isinstance(suffix, str):
        raise InvalidParam("suffix", "'suffix' must be a string")
    if fim is None:
        if not suffix:  # nothing after the cursor: a plain completion is the same request
            return prompts
        raise InvalidParam(
            "suffix",
            "'suffix' needs a fill-in-the-middle model, and this model's tokenizer has no FIM "
            "tokens (such as <fim_prefix>/<fim_suffix>/<fim_middle>): drop 'suffix' or serve "
            "a FIM-trained model",
        )
    return [build_fim_prompt(prompt, suffix, fim) for prompt in prompts]


# --------------------------------------------------------------------------- response bodies
def logprobs_block(
    decode: Decode,
    candidate: GeneratedCandidate,
    offset_base: int,
    top: bool,
    label: TokenLabel | None = None,
) -> dict[str, Any]:
    """A choice's ``logprobs``: token strings that join to its text, their sampled log-probs,
    offsets, and (when asked and the engine recorded them) the top alternatives per position."""
    detokenizer = detokenize(decode, candidate.token_ids, candidate.text, label)
    pieces = detokenizer.pieces
    offsets: list[int] = []
    position = offset_base
    for piece in pieces:
        offsets.append(position)
        position += len(piece)
    tops = getattr(candidate, "top_logprobs", ())
    count = len(pieces)
    return {
        "tokens": pieces,
        "token_logprobs": [float(lp) for lp in candidate.token_logprobs],
        "text_offset": offsets,
        "top_logprobs": top_logprob_dicts(detokenizer, tops, candidate.token_logprobs, 0, count)
        if top and len(tops) == count
        else None,
    }


def completion_body(
    model_name: str,
    request: CompletionRequest,
    results: Sequence[GenerationRequest],
    completion_id: str,
    created: int,
    decode: Decode,
    label: TokenLabel | None = None,
) -> dict[str, Any]:
    """The non-streaming answer: one choice per prompt and sample, plus token usage."""
    choices = []
    completion_tokens = 0
    top = bool(request.logprobs)
    for prompt_index, engine_request in enumerate(results):
        for sample_index, candidate in enumerate(engine_request.results):
            prefix = request.client_prompts[prompt_index] if request.echo else ""
            completion_tokens += candidate.generated_tokens
            choices.append(
                {
                    "index": prompt_index * request.params.n + sample_index,
                    "text": prefix + candidate.text,
                    "logprobs": logprobs_block(decode, candidate, len(prefix), top, label)
                    if request.logprobs is not None
                    else None,
                    "finish_reason": candidate.finish_reason,
                }
            )
    prompt_tokens = sum(r.prompt_tokens for r in results)
    return {
        "id": completion_id,
        "object": "text_completion",
        "created": created,
        "model": model_name,
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def stream_chunk(
    model_name: str,
    completion_id: str,
    created: int,
    index: int,
    text: str,
    finish: str | None,
    logprobs: dict[str, Any] | None = None,
) -> str:
    """One server-sent event carrying the next piece of choice ``index``."""
    payload = {
        "id": completion_id,
        "object": "text_completion",
        "created": created,
        "model": model_name,
        "choices": [{"index": index, "text": text, "logprobs": logprobs, "finish_reason": finish}],
    }
    return f"data: {json.dumps(payload)}\n\n"


def stream_logprobs_block(release: Release) -> dict[str, Any]:
    """The ``logprobs`` of one stream chunk: the same fields as a whole choice's, for its part."""
    return {
        "tokens": release.tokens,
        "token_logprobs": release.token_logprobs,
        "text_offset": release.text_offset,
        "top_logprobs": release.top_logprobs,
    }


def error_body(message: str, *, param: str | None, kind: str, code: str | None) -> dict[str, Any]:
    """An OpenAI-style error object."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}
