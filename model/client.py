"""Backend implementations: any OpenAI-compatible server over HTTP, or the in-process engine.

Light tier: importing this module never imports torch; ``InProcessBackend`` loads
``model.engine`` on first use.

``OpenAIBackend`` speaks the ``/v1/completions`` subset, so the same client works unchanged
against our own ``docomplete serve`` and against other engines started on a GPU box:

* vLLM: ``vllm serve /path/to/model --port 8000`` (add ``--tensor-parallel-size N`` for several
  GPUs; vLLM prefix-caches, which ``affinity`` routing helps);
* llama.cpp: ``llama-server -m model.gguf --port 8000 --parallel 8`` (convert the checkpoint
  with llama.cpp's ``convert_hf_to_gguf.py``);

then point the editor at ``http://HOST:8000`` (several replica URLs may be given). All three
order choices as ``prompt_index * n + i``; the client sorts by each choice's ``index``.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from model.protocol import (
    BackendOverloaded,
    BackendRequestError,
    BackendUnavailable,
    Candidate,
    FinishReason,
    SamplingParams,
    estimate_tokens,
)

if TYPE_CHECKING:
    from model.streaming import CandidateStream, DecodeBudget

log = logging.getLogger(__name__)

#: How long a replica that failed is skipped before it is tried again.
REPLICA_COOL_DOWN_S = 30.0
_RETRYABLE_STATUS = (429, 503)


def _load_tokenizer(path: str | Path | None) -> Any:
    """A ``tokenizers.Tokenizer`` from ``path`` (a tokenizer.json or a directory holding one)."""
    if path is None:
        return None
    from tokenizers import Tokenizer

    path = Path(path).expanduser()
    file = path / "tokenizer.json" if path.is_dir() else path
    if not file.is_file():
        return None
    return Tokenizer.from_file(str(file))


def _retry_after_s(response: httpx.Response) -> float | None:
    """The Retry-After header in seconds (either form the RFC allows), if present."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def _error_message(response: httpx.Response) -> str:
    """The server's own error message (OpenAI, vLLM and llama.cpp all use error.message)."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip().splitlines()[0] if response.text.strip() else "no details"
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    if isinstance(error, str):
        return error
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return str(body)[:200]


def parse_completions(body: dict[str, Any], prompt_count: int, n: int) -> list[list[Candidate]]:
    """Group a /v1/completions response's choices into ``prompt_count`` lists of ``n``."""
    choices = body.get("choices")
    if not isinstance(choices, list):
        raise BackendRequestError("the model server answered without 'choices'")
    grouped: list[list[tuple[int, Candidate]]] = [[] for _ in range(prompt_count)]
    for position, choice in enumerate(choices):
        index = int(choice.get("index", position))
        logprobs = choice.get("logprobs") or {}
        token_logprobs = tuple(
            float(lp) for lp in (logprobs.get("token_logprobs") or []) if lp is not None
        )
        tokens = tuple(str(t) for t in (logprobs.get("tokens") or []))
        finish: FinishReason = "stop" if choice.get("finish_reason") == "stop" else "length"
        candidate = Candidate(
            text=str(choice.get("text", "")),
            token_logprobs=token_logprobs,
            finish_reason=finish,
            tokens=tokens,
        )
        prompt_index = min(index // n, prompt_count - 1)
        grouped[prompt_index].append((index, candidate))
    return [[c for _, c in sorted(group, key=lambda pair: pair[0])] for group in grouped]


class _Replica:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.in_flight = 0
        self.failed_until = 0.0

    @property
    def completions_url(self) -> str:
        base = self.url if self.url.endswith("/v1") else f"{self.url}/v1"
        return f"{base}/completions"

    def healthy(self, now: float) -> bool:
        return now >= self.failed_until


class OpenAIBackend:
    """A Backend over one or more OpenAI-compatible ``/v1/completions`` servers."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        timeout_s: float = 30.0,
        retries: int = 3,
        backoff_s: float = 0.25,
        tokenizer_path: str | Path | None = None,
        model_name: str | None = None,
        api_key: str | None = None,
    ) -> None:
        if not urls:
            raise ValueError("OpenAIBackend needs at least one server URL")
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"model server URL must start with http:// or https://: {url!r}")
        self.replicas = [_Replica(u) for u in urls]
        self.name = f"openai:{','.join(r.url for r in self.replicas)}"
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.model_name = model_name
        self._tokenizer = _load_tokenizer(tokenizer_path)
        self._affinity: dict[str, _Replica] = {}
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0)), headers=headers
        )

    # ------------------------------------------------------------------ routing
    def _pick_replica(self, affinity: str | None, exclude: set[str]) -> _Replica:
        now = time.monotonic()
        candidates = [r for r in self.replicas if r.url not in exclude and r.healthy(now)]
        if not candidates:  # everything is cooling down: try the least recently failed
            candidates = [r for r in self.replicas if r.url not in exclude] or self.replicas
            candidates = [min(candidates, key=lambda r: r.failed_until)]
        if affinity is not None:
            sticky = self._affinity.get(affinity)
            if sticky is not None and sticky in candidates:
                return sticky
        chosen = min(candidates, key=lambda r: (r.in_flight, random.random()))
        if affinity is not None:
            self._affinity[affinity] = chosen
        return chosen

    # ------------------------------------------------------------------ Backend API
    async def complete(
        self,
        prompts: Sequence[str],
        params: SamplingParams,
        *,
        affinity: str | None = None,
    ) -> list[list[Candidate]]:
        if not prompts:
            return []
        payload: dict[str, Any] = {
            "prompt": list(prompts),
            "n": params.n,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
            "logprobs": 1,
        }
        if params.stop:
            payload["stop"] = list(params.stop)
        if params.seed is not None:
            payload["seed"] = params.seed
        if self.model_name:
            payload["model"] = self.model_name
        body = await self._post(payload, affinity)
        return parse_completions(body, len(prompts), params.n)

    async def _post(self, payload: dict[str, Any], affinity: str | None) -> dict[str, Any]:
        failed: set[str] = set()
        last_error: Exception | None = None
        for attempt in range(self.retries + 1):
            replica = self._pick_replica(affinity, failed)
            replica.in_flight += 1
            try:
                response = await self._client.post(replica.completions_url, json=payload)
            except (httpx.TransportError, OSError) as exc:
                # Cancellation (CancelledError) is not caught: httpx closes the connection.
                replica.failed_until = time.monotonic() + REPLICA_COOL_DOWN_S
                failed.add(replica.url)
                if isinstance(exc, httpx.TimeoutException) and not isinstance(
                    exc, httpx.ConnectTimeout
                ):
                    last_error = BackendUnavailable(
                        f"the model server at {replica.url} did not answer within "
                        f"{self.timeout_s:g} s: raise the backend timeout or lower n / max_tokens"
                    )
                else:
                    last_error = BackendUnavailable(
                        f"cannot reach the model server at {replica.url} "
                        f"({type(exc).__name__}): start it with `docomplete serve --model PATH "
                        "--port 8000` or fix the backend URL in your settings"
                    )
                if len(failed) >= len(self.replicas) and attempt >= len(self.replicas) - 1:
                    break
                continue
            finally:
                replica.in_flight -= 1
            if response.status_code == 200:
                try:
                    return dict(response.json())
                except ValueError as exc:
                    raise BackendRequestError(
                        f"the model server at {replica.url} answered with invalid JSON"
                    ) from exc
            if response.status_code in _RETRYABLE_STATUS:
                wait = _retry_after_s(response)
                if wait is None:
                    wait = self.backoff_s * (2**attempt)
                last_error = BackendOverloaded(
                    f"the model server at {replica.url} is overloaded "
                    f"(HTTP {response.status_code}) after {attempt + 1} tries: "
                    "add replicas, lower n, or retry later"
                )
                if attempt < self.retries:
                    await asyncio.sleep(min(wait, self.timeout_s))
                continue
            message = _error_message(response)
            if 400 <= response.status_code < 500:
                raise BackendRequestError(
                    f"the model server rejected the request (HTTP {response.status_code}): "
                    f"{message}"
                )
            replica.failed_until = time.monotonic() + REPLICA_COOL_DOWN_S
            failed.add(replica.url)
            last_error = BackendUnavailable(
                f"the model server at {replica.url} failed (HTTP {response.status_code}): {message}"
            )
        assert last_error is not None
        raise last_error

    def count_tokens(self, text: str) -> int:
        if self._tokenizer is not None:
            return len(self._tokenizer.encode(text, add_special_tokens=False).ids)
        return estimate_tokens(text)

    async def aclose(self) -> None:
        await self._client.aclose()


class InProcessBackend:
    """The embedded default: the engine in this process, generating in one worker thread.

    Calls are serialised (one engine, one thread); cancelling the awaiting task sets the
    engine's cancel event, so decoding stops at its next step.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        device: str = "auto",
        threads: int | str | None = None,
    ) -> None:
        from model.paths import default_model_path

        self.model_path = Path(model_path) if model_path is not None else default_model_path()
        self.device = device
        self.threads = threads  # torch CPU threads: a count, "auto" or None (default)
        self.name = f"embedded:{self.model_path.name}"
        self._engine: Any = None
        self._engine_lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="docomplete-engine")
        self._tokenizer = _load_tokenizer(self.model_path)

    def _get_engine(self) -> Any:
        with self._engine_lock:
            if self._engine is None:
                from model.engine import Engine, EngineLoadError

                try:
                    self._engine = Engine.load(
                        self.model_path, device=self.device, threads=self.threads
                    )
                except EngineLoadError as exc:
                    from model.protocol import BackendUnavailable as Unavailable

                    raise Unavailable(str(exc)) from exc
            return self._engine

    def _generate(
        self, prompts: list[str], params: SamplingParams, cancel: threading.Event
    ) -> list[list[Candidate]]:
        engine = self._get_engine()
        results = engine.generate(prompts, params, cancel=cancel)
        return [[c.to_candidate() for c in candidates] for candidates in results]

    async def complete(
        self,
        prompts: Sequence[str],
        params: SamplingParams,
        *,
        affinity: str | None = None,
    ) -> list[list[Candidate]]:
        if not prompts:
            return []
        cancel = threading.Event()
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, self._generate, list(prompts), params, cancel)
        try:
            return await future
        except asyncio.CancelledError:
            cancel.set()  # the worker thread sees it at the next decode step
            raise

    def stream(
        self, prompt: str, params: SamplingParams, *, budget: DecodeBudget | None = None
    ) -> CandidateStream:
        """``prompt``'s candidates as each finishes, decoded in the engine thread."""
        from model.streaming import start_stream

        return start_stream(self._executor, self._get_engine, prompt, params, budget=budget)

    def count_tokens(self, text: str) -> int:
        if self._tokenizer is not None:
            return len(self._tokenizer.encode(text, add_special_tokens=False).ids)
        return estimate_tokens(text)

    async def aclose(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def make_backend(
    spec: str | Sequence[str], model_path: str | Path | None = None, **options: Any
) -> OpenAIBackend | InProcessBackend:
    """Build a Backend from a user setting: ``"embedded"`` or one or more http(s) URLs."""
    specs = [spec] if isinstance(spec, str) else list(spec)
    specs = [s.strip() for item in specs for s in item.split(",") if s.strip()]
    if specs == ["embedded"]:
        return InProcessBackend(model_path, **options)
    bad = [s for s in specs if not s.startswith(("http://", "https://"))]
    if not specs or bad:
        raise ValueError(
            f'invalid backend {bad[0] if bad else spec!r}: use "embedded" or one or more '
            "model server URLs like http://127.0.0.1:8000"
        )
    return OpenAIBackend(specs, tokenizer_path=model_path, **options)
