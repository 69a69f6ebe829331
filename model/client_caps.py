"""What an OpenAI-compatible server can do, how to ask within it, and hints naming its flags.

Light tier (stdlib only). ``OpenAIBackend`` keeps one :class:`ServerCaps` per server URL and
updates it from answers it already gets (no extra calls on the normal path):

* ``prompt_lists`` — False once a list of prompts failed where one prompt worked
  (llama_cpp.server asserts ``len(prompt) <= 1`` and answers an empty HTTP 500);
* ``max_n`` — the most candidates one call returns: 1 when ``n`` is ignored (llama_cpp.server),
  the limit in llama-server's 400 (``Field 'n': Value must be between 1 <= value <= 8, but got
  20``, from ``--parallel``), or half of what was refused when the limit cannot be read;
* ``max_rows`` — prompts × n per call, when a server says it caps those;
* ``logprob_shape`` — classic, chat-style ``content`` or none;
* ``model_id`` — from ``GET /v1/models`` when the server asked for a ``model``;
* ``kind`` — which server it is, when an answer tells, so messages can name the right flag.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

ServerKind = Literal["llama-server", "llama_cpp.server", "vllm", "docomplete"]


@dataclass
class ServerCaps:
    """Capabilities of one server URL (None = not known yet)."""

    prompt_lists: bool | None = None
    max_n: int | None = None
    max_rows: int | None = None
    logprob_shape: str | None = None
    model_id: str | None = None
    kind: ServerKind | None = None


def merged_caps(caps: list[ServerCaps]) -> ServerCaps:
    """The most restrictive view over several replicas (they usually run the same server)."""
    known_n = [c.max_n for c in caps if c.max_n is not None]
    known_rows = [c.max_rows for c in caps if c.max_rows is not None]
    return ServerCaps(
        prompt_lists=False if any(c.prompt_lists is False for c in caps) else None,
        max_n=min(known_n) if known_n else None,
        max_rows=min(known_rows) if known_rows else None,
    )


@dataclass(frozen=True)
class PlannedCall:
    """One HTTP request of a ``complete``: these prompts, samples ``start .. start+count-1``."""

    prompt_indices: tuple[int, ...]
    start: int
    count: int


def plan_calls(have: dict[int, int], n: int, caps: ServerCaps) -> list[PlannedCall]:
    """The calls that ask for every missing candidate (``have``: prompt index → candidates
    already there), within what the server accepts: ``n`` per call, lists, rows."""
    per_call = min(n, caps.max_n or n, caps.max_rows or n)
    by_need: dict[tuple[int, int], list[int]] = {}
    for prompt_index, count in have.items():
        by_need.setdefault((count, n - count), []).append(prompt_index)
    calls = []
    for (start, count), group in by_need.items():
        for chunk_start in range(start, start + count, per_call):
            chunk = min(per_call, start + count - chunk_start)
            batch = 1 if caps.prompt_lists is False else len(group)
            if caps.max_rows is not None:
                batch = max(1, min(batch, caps.max_rows // chunk))
            for i in range(0, len(group), batch):
                calls.append(PlannedCall(tuple(group[i : i + batch]), chunk_start, chunk))
    return calls


def seed_for(seed: int | None, start: int) -> int | None:
    """The seed of a call asking for samples ``start, start+1, …`` of a prompt.

    Samples 0.. use the caller's seed; a call for later samples (a server that ignores or caps
    ``n``) gets a seed derived from it, so repeated calls draw different, reproducible samples.
    """
    if seed is None or start == 0:
        return seed
    return (seed + start * 0x9E3779B1) % (2**31)


# llama-server, tools/server/server-schema.cpp field_num::eval + handle_with_catch:
#   "Field 'n': Value must be between 1 <= value <= 8, but got 20"
# docomplete serve: "'n' must be between 1 and 256, got 300" (param "n").
_N_FIELD_RE = re.compile(r"""['"`](?:n|n_cmpl)['"`]|\bn\s+must\b""", re.I)
_LIMIT_RE = re.compile(
    r"(?:<=\s*value\s*<=|between\s+1\s+and|at most|no more than|cannot exceed|up to|"
    r"less than or equal to|<=)\s*(\d+)",
    re.I,
)
_ROWS_RE = re.compile(r"\brows?\b", re.I)
_MODEL_RE = re.compile(r"\bmodel\b", re.I)
_CONTEXT_RE = re.compile(r"context (?:window|length|size)|exceed.*context|max_model_len", re.I)


@dataclass(frozen=True)
class ServerError:
    """A non-200 answer, reduced to what the client decides on."""

    status: int
    message: str
    param: str | None
    error_type: str | None


def read_error(status: int, body: Any, text: str) -> ServerError:
    """The message, param and type of an error body in the OpenAI, vLLM or llama.cpp shape."""
    error = body.get("error") if isinstance(body, dict) else None
    source = error if isinstance(error, dict) else body if isinstance(body, dict) else {}
    message = source.get("message") if isinstance(source, dict) else None
    if isinstance(error, str):
        message = error
    if not isinstance(message, str):
        message = (text.strip().splitlines() or [""])[0] if body is None else ""
    param = source.get("param") if isinstance(source, dict) else None
    kind = source.get("type") if isinstance(source, dict) else None
    return ServerError(
        status=status,
        message=message.strip()[:300],
        param=param if isinstance(param, str) else None,
        error_type=kind if isinstance(kind, str) else None,
    )


def kind_from_error(error: ServerError) -> ServerKind | None:
    if error.error_type == "exceed_context_size_error":
        return "llama-server"
    if error.message.startswith("Field '") and "Value must be between" in error.message:
        return "llama-server"
    if error.error_type == "internal_server_error" and error.status == 500 and not error.message:
        return "llama_cpp.server"  # llama_cpp/server/errors.py wraps an empty AssertionError
    return None


def kind_from_models(body: Any) -> ServerKind | None:
    """Which server answered ``GET /v1/models`` (by each one's ``owned_by``)."""
    data = body.get("data") if isinstance(body, dict) else None
    first = data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else {}
    owner = first.get("owned_by")
    return {
        "llamacpp": "llama-server",  # tools/server/server-context.cpp handle_models
        "me": "llama_cpp.server",  # llama_cpp/server/app.py get_models
        "vllm": "vllm",
        "docomplete": "docomplete",
    }.get(owner if isinstance(owner, str) else "")  # type: ignore[return-value]


def first_model_id(body: Any) -> str | None:
    data = body.get("data") if isinstance(body, dict) else None
    if isinstance(data, list):
        for entry in data:
            if isinstance(entry, dict) and isinstance(entry.get("id"), str) and entry["id"]:
                return str(entry["id"])
    return None


def model_ids(body: Any) -> list[str]:
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        return []
    return [str(e["id"]) for e in data if isinstance(e, dict) and isinstance(e.get("id"), str)]


def refused_n_limit(error: ServerError, sent_n: int) -> int | None:
    """The largest ``n`` to try after a 4xx about ``n``, or None if the error is not about n."""
    if error.status >= 500 or sent_n <= 1:
        return None
    about_n = error.param in ("n", "n_cmpl") or bool(_N_FIELD_RE.search(error.message))
    if not about_n or _ROWS_RE.search(error.message):
        return None
    match = _LIMIT_RE.search(error.message)
    limit = int(match.group(1)) if match else sent_n // 2
    return max(1, min(limit, sent_n - 1))


def refused_rows_limit(error: ServerError, sent_rows: int) -> int | None:
    """The largest prompts × n per call after a 4xx that says it caps rows, else None."""
    if error.status >= 500 or sent_rows <= 1 or not _ROWS_RE.search(error.message):
        return None
    match = _LIMIT_RE.search(error.message)
    limit = int(match.group(1)) if match else sent_rows // 2
    return max(1, min(limit, sent_rows - 1))


def asks_for_model(error: ServerError) -> bool:
    """Whether a 4xx says the request needs (another) ``model``."""
    if not 400 <= error.status < 500 or is_context_error(error):
        return False
    return error.param == "model" or bool(_MODEL_RE.search(error.message))


def is_context_error(error: ServerError) -> bool:
    """Whether the prompt plus max_tokens did not fit the server's context."""
    return error.error_type == "exceed_context_size_error" or bool(
        _CONTEXT_RE.search(error.message)
    )


def may_reject_prompt_lists(error: ServerError) -> bool:
    """Whether an error to a list of prompts may mean "one prompt per call, please"."""
    return error.status in (400, 422, 500) and not is_context_error(error)


# --------------------------------------------------------------------------- hints
_CONTEXT_FLAG: dict[ServerKind | None, str] = {
    "llama-server": "start llama-server with a larger --ctx-size (-c), or lower max_tokens",
    "llama_cpp.server": "start llama_cpp.server with a larger --n_ctx, or lower max_tokens",
    "vllm": "start vLLM with a larger --max-model-len, or lower max_tokens",
    "docomplete": "lower max_tokens (the model's context is fixed)",
    None: "give the server a larger context (llama-server -c, llama_cpp.server --n_ctx, "
    "vllm --max-model-len) or lower max_tokens",
}


def request_error_hint(error: ServerError, kind: ServerKind | None) -> str:
    """The fix to append to a rejected request's message, when one is known."""
    if is_context_error(error):
        return _CONTEXT_FLAG[kind]
    return ""


def n_capped_notice(url: str, limit: int, n: int, kind: ServerKind | None) -> str:
    calls = -(-n // limit)
    if kind == "llama-server":
        fix = f"start llama-server with --parallel {n} (or more) to get them in one call"
    elif kind == "llama_cpp.server" or limit == 1:
        fix = "llama-server --parallel N or vLLM answer n candidates in one call"
    else:
        fix = "raise the server's limit on n to get them in one call"
    return (
        f"the model server at {url} gives at most {limit} candidate(s) per call: asking "
        f"{calls} times for n={n}; {fix}"
    )


def lists_refused_notice(url: str, kind: ServerKind | None) -> str:
    who = "llama_cpp.server takes" if kind == "llama_cpp.server" else "it takes"
    return (
        f"the model server at {url} rejects a list of prompts ({who} one prompt per call): "
        "sending prompts one by one; llama-server or vLLM take lists"
    )


def no_logprobs_notice(url: str) -> str:
    return (
        f"the model server at {url} returns no log-probs: candidates are ranked by doctests, "
        "then in the server's order"
    )


def n_refused_error(url: str, message: str, kind: ServerKind | None) -> str:
    fix = (
        "start llama-server with --parallel N (N >= n)"
        if kind == "llama-server"
        else "lower n or raise the server's limit on n"
    )
    return f"the model server at {url} refuses n=1 too ({message}): {fix}"
