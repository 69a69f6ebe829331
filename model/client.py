"""Backend implementations: any OpenAI-compatible server over HTTP, or the in-process engine.

Light tier: importing this module never imports torch; ``InProcessBackend`` loads
``model.engine`` on first use.

``OpenAIBackend`` speaks the ``/v1/completions`` subset, so the same client works unchanged
against our own ``docomplete serve`` and against other engines started on a GPU box:

* vLLM: ``vllm serve /path/to/model --port 8000`` (add ``--tensor-parallel-size N`` for several
  GPUs; vLLM prefix-caches, which ``affinity`` routing helps);
* llama.cpp: ``llama-server -m model.gguf --port 8000 --parallel 8`` (convert the checkpoint
  with llama.cpp's ``convert_hf_to_gguf.py``), or ``python -m llama_cpp.server``;

then point the editor at ``http://HOST:8000`` (several replica URLs may be given). Servers
differ, so the client learns what each URL does from its answers (``model.client_caps``) and
adapts: one prompt per call where a list of prompts fails (llama_cpp.server), several calls
with distinct seeds where ``n`` is ignored or capped (llama_cpp.server, llama-server's
``--parallel``), the ``model`` field from ``GET /v1/models`` where one is required. Every answer
is checked (``model.completions``). What it had to adapt to is said once per server through
``OpenAIBackend.notices`` / ``on_notice``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from model.client_caps import (
    PlannedCall,
    ServerCaps,
    ServerError,
    ServerKind,
    asks_for_model,
    first_model_id,
    kind_from_error,
    kind_from_models,
    lists_refused_notice,
    may_reject_prompt_lists,
    merged_caps,
    model_ids,
    n_capped_notice,
    no_logprobs_notice,
    plan_calls,
    refused_n_limit,
    refused_rows_limit,
    request_error_hint,
    seed_for,
)
from model.completions import group_choices, parse_completions
from model.protocol import (
    BackendError,
    BackendRequestError,
    BackendResponseError,
    BackendShortfall,
    BackendUnavailable,
    Candidate,
    SamplingParams,
    estimate_tokens,
)
from model.replicas import Replica, ReplicaPool, error_of

__all__ = ["InProcessBackend", "OpenAIBackend", "make_backend", "parse_completions"]

if TYPE_CHECKING:
    from model.streaming import CandidateStream, DecodeBudget

log = logging.getLogger(__name__)

#: Rounds of asking again for candidates a server left out before giving up (each round asks
#: for everything still missing at once; one round is the normal case).
_MAX_FILL_ROUNDS = 16


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


class OpenAIBackend:
    """A Backend over one or more OpenAI-compatible ``/v1/completions`` servers.

    ``model`` is sent as the request's ``model`` field; without it, a server that asks for one
    gets the first id of its ``GET /v1/models``. ``accept_fewer=True`` returns the candidates
    that came back when a server cannot give all ``n`` (a later call failed) instead of raising;
    ``notices`` lists, once each, the one-line messages about what the client had to adapt to
    (prompts one by one, ``n`` capped, no log-probs, fewer candidates), and ``on_notice`` is
    called with each as it happens, so an editor can show it once.
    """

    def __init__(
        self,
        urls: Sequence[str],
        *,
        timeout_s: float = 30.0,
        retries: int = 3,
        backoff_s: float = 0.25,
        tokenizer_path: str | Path | None = None,
        model: str | None = None,
        api_key: str | None = None,
        max_parallel_calls: int = 8,
        accept_fewer: bool = False,
        on_notice: Callable[[str], None] | None = None,
    ) -> None:
        if not urls:
            raise ValueError("OpenAIBackend needs at least one server URL")
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"model server URL must start with http:// or https://: {url!r}")
        self.pool = ReplicaPool(
            urls, timeout_s=timeout_s, retries=retries, backoff_s=backoff_s, api_key=api_key
        )
        self.replicas = self.pool.replicas
        self.name = f"openai:{','.join(r.url for r in self.replicas)}"
        self.timeout_s = timeout_s
        self.model = model
        self.max_parallel_calls = max(1, max_parallel_calls)
        self.accept_fewer = accept_fewer
        self.on_notice = on_notice
        #: What each server URL was found to do (see ``model.client_caps``).
        self.capabilities: dict[str, ServerCaps] = {r.url: ServerCaps() for r in self.replicas}
        self.notices: list[str] = []
        self._notice_keys: set[Hashable] = set()
        self._kind_probed: set[str] = set()
        self._tokenizer = _load_tokenizer(tokenizer_path)

    def _notice(self, key: Hashable, message: str) -> None:
        """Say ``message`` once per ``key`` (log, ``notices``, ``on_notice``)."""
        if key in self._notice_keys:
            return
        self._notice_keys.add(key)
        self.notices.append(message)
        log.warning("%s", message)
        if self.on_notice is not None:
            try:
                self.on_notice(message)
            except Exception:  # a broken listener must not break completions
                log.exception("on_notice callback failed")

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
        if params.scope_indent is not None or params.decode_budget is not None:
            for replica in self.replicas:  # which of them take these extensions (asked once)
                await self._server_kind(replica)
        n = params.n
        got: list[list[Candidate]] = [[] for _ in prompts]
        failure: BackendError | None = None
        for _ in range(_MAX_FILL_ROUNDS):
            missing = [p for p, group in enumerate(got) if len(group) < n]
            if not missing:
                break
            have = {p: len(got[p]) for p in missing}
            calls = plan_calls(have, n, merged_caps(list(self.capabilities.values())))
            answers, failure = await self._run_calls(calls, prompts, params, affinity)
            for call, groups in zip(calls, answers, strict=True):
                for prompt_index, group in zip(call.prompt_indices, groups or (), strict=False):
                    got[prompt_index].extend(group[: n - len(got[prompt_index])])
            if failure is not None:
                break
        short = [p for p, group in enumerate(got) if len(group) < n]
        if not short:
            return got
        if not self.accept_fewer or any(not got[p] for p in short):
            if failure is not None:
                raise failure
            raise BackendShortfall(
                f"the model server answered {min(len(got[p]) for p in short)} of n={n} "
                f"candidates for {len(short)} prompt(s) and gave no more when asked again"
            )
        reason = f" ({failure})" if failure is not None else ""
        self._notice(
            ("shortfall", self.name),
            f"the model server returned fewer than the {n} candidates asked for"
            f"{reason}; showing what came back",
        )
        return got

    async def _run_calls(
        self,
        calls: list[PlannedCall],
        prompts: Sequence[str],
        params: SamplingParams,
        affinity: str | None,
    ) -> tuple[list[list[list[Candidate]] | None], BackendError | None]:
        """Run ``calls``, ``max_parallel_calls`` at once: each one's candidates per prompt, or
        None when it taught the client a limit and must be planned again. Without
        ``accept_fewer`` the first error cancels the rest and is raised; with it, the rest
        finish and the first error is returned beside their answers."""
        limiter = asyncio.Semaphore(self.max_parallel_calls)

        async def run(call: PlannedCall) -> list[list[Candidate]] | None:
            async with limiter:
                return await self._call(call, prompts, params, affinity)

        tasks = [asyncio.ensure_future(run(call)) for call in calls]
        try:
            outcomes = await asyncio.gather(*tasks, return_exceptions=self.accept_fewer)
        finally:
            for task in tasks:
                task.cancel()
        answers: list[list[list[Candidate]] | None] = []
        failure: BackendError | None = None
        for outcome in outcomes:
            if isinstance(outcome, BackendError):
                failure = failure or outcome
                answers.append(None)
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                answers.append(outcome)
        return answers, failure

    async def _call(
        self,
        call: PlannedCall,
        prompts: Sequence[str],
        params: SamplingParams,
        affinity: str | None,
    ) -> list[list[Candidate]] | None:
        """One request; its candidates per prompt (possibly fewer than asked), or None to
        plan it again after the server taught the client a limit."""
        texts = [prompts[i] for i in call.prompt_indices]
        one_by_one = any(c.prompt_lists is False for c in self.capabilities.values())
        payload: dict[str, Any] = {
            # A list, as the OpenAI API has it; a bare string where lists were refused.
            "prompt": texts[0] if one_by_one and len(texts) == 1 else texts,
            "n": call.count,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
            "logprobs": 1,
        }
        if params.stop:
            payload["stop"] = list(params.stop)
        seed = seed_for(params.seed, call.start)
        if seed is not None:
            payload["seed"] = seed
        sent: dict[str, Any] = {}

        def body_for(replica: Replica) -> dict[str, Any]:
            sent.clear()
            sent.update(self._with_model(payload, replica))
            if self.capabilities[replica.url].kind == "docomplete":
                # docomplete's own server ends a sample when it leaves the function, and cuts
                # one far longer than its siblings, as the in-process engine does
                if params.scope_indent is not None:
                    sent["scope_indent"] = params.scope_indent
                if params.decode_budget is not None:
                    sent["decode_budget"] = dataclasses.asdict(params.decode_budget)
            return sent

        replica, response = await self.pool.post(
            body_for,
            affinity,
            # A 5xx to a list of prompts may mean "one prompt per call": judged below.
            hold_back=lambda replica: (
                len(texts) > 1 and self.capabilities[replica.url].prompt_lists is not True
            ),
        )
        if response.status_code != 200:
            await self._adapt_or_raise(replica, dict(sent), response, params.n)
            return None
        where = f"the model server at {replica.url}"
        try:
            body = response.json()
        except ValueError as exc:
            raise BackendResponseError(f"{where} answered with invalid JSON") from exc
        grouped = group_choices(body, len(texts), call.count, where=where)
        caps = self.capabilities[replica.url]
        if len(texts) > 1:
            caps.prompt_lists = True
        per_prompt = min(len(group) for group in grouped.groups)
        if per_prompt < call.count and (caps.max_n is None or per_prompt < caps.max_n):
            caps.max_n = per_prompt
            kind = await self._server_kind(replica)
            self._notice(
                ("n", replica.url), n_capped_notice(replica.url, per_prompt, params.n, kind)
            )
        if shapes := sorted(grouped.shapes - {"none"}):
            caps.logprob_shape = shapes[0]
        elif caps.logprob_shape in (None, "none"):
            # Once a server sent log-probs, a choice without them is a quirk (llama-server sends
            # null when a stop string ate every token), not a server without log-probs.
            caps.logprob_shape = "none"
            self._notice(("logprobs", replica.url), no_logprobs_notice(replica.url))
        return grouped.groups

    def _with_model(self, payload: dict[str, Any], replica: Replica) -> dict[str, Any]:
        model = self.model or self.capabilities[replica.url].model_id
        return {**payload, "model": model} if model else payload

    # ------------------------------------------------------------------ learning
    async def _adapt_or_raise(
        self, replica: Replica, payload: dict[str, Any], response: httpx.Response, n: int
    ) -> None:
        """Learn a limit from a refused request ``payload`` (then the caller plans again), or
        raise the error it is."""
        error = error_of(response)
        caps = self.capabilities[replica.url]
        caps.kind = caps.kind or kind_from_error(error)
        where = f"the model server at {replica.url}"
        prompt = payload["prompt"]
        prompt_count = len(prompt) if isinstance(prompt, list) else 1
        sent_n = int(payload["n"])
        n_limit = refused_n_limit(error, sent_n)
        if n_limit is not None:
            caps.max_n = min(caps.max_n or n_limit, n_limit)
            kind = await self._server_kind(replica)
            self._notice(("n", replica.url), n_capped_notice(replica.url, caps.max_n, n, kind))
            return
        rows_limit = refused_rows_limit(error, prompt_count * sent_n)
        if rows_limit is not None:
            caps.max_rows = min(caps.max_rows or rows_limit, rows_limit)
            return
        if asks_for_model(error):
            await self._discover_model(replica, error, payload.get("model"))
            return
        if prompt_count > 1 and caps.prompt_lists is not True and may_reject_prompt_lists(error):
            caps.prompt_lists = False
            kind = await self._server_kind(replica)
            self._notice(("lists", replica.url), lists_refused_notice(replica.url, kind))
            return
        message = error.message or "no details"
        if error.status >= 500:
            replica.mark_down()
            raise BackendUnavailable(f"{where} failed (HTTP {error.status}): {message}")
        hint = request_error_hint(error, caps.kind or await self._server_kind(replica))
        raise BackendRequestError(
            f"{where} rejected the request (HTTP {error.status}): {message}"
            + (f"; {hint}" if hint else "")
        )

    async def _server_kind(self, replica: Replica) -> ServerKind | None:
        """Which server this is (probed once: when a message should name its flags, or when a
        request's ``scope_indent`` / ``decode_budget`` could go to docomplete's own server)."""
        caps = self.capabilities[replica.url]
        if caps.kind is None and replica.url not in self._kind_probed:
            self._kind_probed.add(replica.url)
            caps.kind = kind_from_models(await self.pool.get_json(replica, "/models"))
        return caps.kind

    async def _discover_model(self, replica: Replica, error: ServerError, sent: str | None) -> None:
        """Take the model name from ``/v1/models`` after a server asked for one, or raise."""
        caps = self.capabilities[replica.url]
        where = f"the model server at {replica.url}"
        if sent is None and caps.model_id is not None:
            return  # a concurrent call found it meanwhile
        models = await self.pool.get_json(replica, "/models")
        if caps.kind is None:
            caps.kind = kind_from_models(models)
        if sent is None and (found := first_model_id(models)) is not None:
            caps.model_id = found
            self._notice(
                ("model", replica.url), f"{where} needs a model name: using {found!r} (its first)"
            )
            return
        served = ", ".join(model_ids(models)) or "none listed at /v1/models"
        asked = f"model {sent!r} is refused" if sent else "it needs a model name"
        raise BackendRequestError(
            f"{where} rejected the request (HTTP {error.status}: {error.message}): {asked}; it "
            f"serves {served}: set the backend's model (LSP setting `model`, eval --model-name)"
        )

    def count_tokens(self, text: str) -> int:
        if self._tokenizer is not None:
            return len(self._tokenizer.encode(text, add_special_tokens=False).ids)
        return estimate_tokens(text)

    async def aclose(self) -> None:
        await self.pool.aclose()


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
        matmul_dtype: str | None = None,
    ) -> None:
        from model.paths import default_model_path

        self.model_path = Path(model_path) if model_path is not None else default_model_path()
        self.device = device
        self.threads = threads  # torch CPU threads: a count, "auto" or None (default)
        # The layer projections' dtype (``Engine.load``); None: $DOCOMPLETE_MATMUL_DTYPE or auto.
        self.matmul_dtype = matmul_dtype
        self.name = f"embedded:{self.model_path.name}"
        self.notices: list[str] = []  # as OpenAIBackend's; the engine never has to adapt
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
                        self.model_path,
                        device=self.device,
                        threads=self.threads,
                        matmul_dtype=self.matmul_dtype,
                    )
                except EngineLoadError as exc:
                    raise BackendUnavailable(str(exc)) from exc
            return self._engine

    async def warm_up(self, params: SamplingParams) -> None:
        """Load the engine, then pay first-call costs with a short generation at ``params``'
        shape, unless a request submitted meanwhile already ran (one worker: it goes first)."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._get_engine)
        await loop.run_in_executor(self._executor, self._warm_generate, params)

    def _warm_generate(self, params: SamplingParams) -> None:
        if (engine := self._get_engine()).stats.prefill_calls == 0:
            engine.generate(['def warm_up(a, b):\n    """Add a and b."""\n'], params)

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
    spec: str | Sequence[str],
    model_path: str | Path | None = None,
    model_name: str | None = None,
    *,
    accept_fewer: bool = False,
    on_notice: Callable[[str], None] | None = None,
    **options: Any,
) -> OpenAIBackend | InProcessBackend:
    """Build a Backend from a user setting: ``"embedded"`` or one or more http(s) URLs.

    ``model_path`` is the embedded model, or for URLs a local tokenizer for token counting;
    ``model_name``, ``accept_fewer`` and ``on_notice`` concern servers only (the ``model`` field
    sent, see ``OpenAIBackend``); the embedded backend ignores them.
    """
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
    return OpenAIBackend(
        specs,
        tokenizer_path=model_path,
        model=model_name,
        accept_fewer=accept_fewer,
        on_notice=on_notice,
        **options,
    )
