"""The completion pipeline: context → cache → backend → post-process → doctests → ranking.

One request id is threaded through every log line of a request. Backend failures are turned
into one user-facing message per outage; while a model server is down, requests fail fast
instead of waiting on it again, and the first request after a short pause probes whether it is
back. The embedded engine is never "down" for being slow: it streams its candidates
(:mod:`server.early_answer`), a request is answered as soon as one passes its doctests or at
``requestTimeout`` with what is ready, and the unfinished ones complete in the background into
the cache (the picker waits for them; the next request for the document drops them).
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field, replace
from typing import Any

from model.protocol import (
    Backend,
    BackendError,
    BackendUnavailable,
    SamplingParams,
    estimate_tokens,
)
from model.streaming import StreamingBackend
from server.ab import sampling_params
from server.backend_health import BackendFailure, BackendHealth
from server.cache import CompletionCache
from server.config import ServerConfig
from server.context import CompletionSite, find_completion_site
from server.doctest_filter import extract_examples, run_examples
from server.early_answer import (
    DECODE_BUDGET,
    BackgroundSamples,
    StreamedCompletion,
    await_answer,
    log_answer,
)
from server.postprocess import clean_candidates, syntax_checkable
from server.ranking import DoctestOutcome, RankedCandidate, rank_candidates

logger = logging.getLogger("server.pipeline")

_request_numbers = itertools.count(1)

#: The request being served in this task; lets library log lines (httpx, engine) carry its id.
current_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "docomplete_request_id", default=None
)


def new_request_id() -> str:
    return f"r{next(_request_numbers):05d}"


class RequestIdFilter(logging.Filter):
    """Handler filter: prefixes other libraries' records with the current request id."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = current_request_id.get()
        if (
            request_id
            and not record.name.startswith("server")
            and not getattr(record, "_docomplete_tagged", False)
        ):
            record.msg = f"[{request_id}] {record.msg}"
            record._docomplete_tagged = True
        return True


class RequestLog(logging.LoggerAdapter):
    """Prefixes every message with the request id."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return f"[{self.extra['request_id'] if self.extra else '-'}] {msg}", kwargs


@dataclass
class CompletionOutcome:
    request_id: str
    site: CompletionSite
    ranked: list[RankedCandidate]
    from_cache: str | None  # None, "exact" or "typed-ahead"
    arm: str | None
    params: SamplingParams
    timings_ms: dict[str, float] = field(default_factory=dict)
    raw_count: int = 0
    decode_steps: int = 0  # tokens of the longest raw candidate: what sampling latency scales with
    #: Why the answer was given when it was: "all" (every sample finished), "passing" (one
    #: passed all its doctests before the others finished) or "timeout" (requestTimeout).
    answered: str = "all"


@dataclass(frozen=True)
class _Answer:
    """What one computation produced for the requests that share it."""

    ranked: list[RankedCandidate]
    timings_ms: dict[str, float]
    raw_count: int
    decode_steps: int
    answered: str = "all"


BackendFactory = Callable[[tuple[str, ...], str | None, str | None], Backend]

#: torch threads of the embedded engine: measured while decoding (``model.engine.threads``).
#: A thread per core is fastest on an idle machine, but when the cores are shared (an editor,
#: a build, the doctest sandbox) OpenMP threads waiting on each other made decode steps ~10x
#: slower than one thread (2 cores under load: 250-560 ms per step against 40-45 ms).
ENGINE_THREADS = "auto"


def default_backend_factory(
    spec: tuple[str, ...], model_path: str | None, model_name: str | None = None
) -> Backend:
    from model.client import make_backend

    if spec == ("embedded",):
        return make_backend("embedded", model_path=model_path, threads=ENGINE_THREADS)
    # accept_fewer: a server that gives fewer than n candidates still gets its answer shown;
    # the client says so once through its notices (shown to the user by the server).
    return make_backend(list(spec), model_path=model_path, model_name=model_name, accept_fewer=True)


@dataclass
class _SharedWork:
    """One computation that several identical requests (e.g. inline + completion) await."""

    future: asyncio.Future[_Answer]
    waiters: int = 0


class CompletionPipeline:
    """Owns the backend, the cache and the health state; one instance per server."""

    def __init__(
        self,
        *,
        backend_factory: BackendFactory = default_backend_factory,
        cache: CompletionCache | None = None,
        health: BackendHealth | None = None,
    ) -> None:
        self._backend_factory = backend_factory
        self._backend: Backend | None = None
        self._backend_key: tuple[tuple[str, ...], str | None, str | None] | None = None
        self._backend_lock = asyncio.Lock()
        self.cache = cache or CompletionCache()
        self.health = health or BackendHealth()
        self._pending: dict[Hashable, _SharedWork] = {}
        self._background = BackgroundSamples()
        # One doctest run at a time: they then reuse the one warm sandbox.
        self._doctest_lock = asyncio.Lock()

    async def backend(self, config: ServerConfig) -> Backend:
        """The backend for ``config``, built on first use and rebuilt when its spec changes."""
        key = (config.backend, config.model_path, config.model)
        async with self._backend_lock:
            if self._backend is not None and self._backend_key == key:
                return self._backend
            old, self._backend = self._backend, None
            if old is not None:
                self._background.drop_all()
                await old.aclose()
            # Building the embedded backend loads a model: keep the event loop responsive.
            try:
                backend = await asyncio.to_thread(self._backend_factory, *key)
            except BackendError:
                raise
            except Exception as exc:  # e.g. a missing model directory: one clear message
                raise BackendUnavailable(f"could not start the model backend: {exc}") from exc
            self._backend, self._backend_key = backend, key
            self.health.record_success()
            self.cache.clear()
            return backend

    def backend_notices(self) -> list[str]:
        """What the backend had to adapt to (a server capping ``n``, sending no log-probs, …):
        one line each, in order; the server shows each to the user once."""
        return list(getattr(self._backend, "notices", ()) or ())

    async def warm_up(self, config: ServerConfig) -> BackendError | None:
        """Load what the first request would otherwise wait for: the embedded model (loaded and
        run once at the request's shape) and, meanwhile, the doctest sandbox. HTTP backends are
        left alone (a request to a shared server for nothing). Returns the backend error, if
        any, so the user hears about a missing model at startup rather than at the first
        keystroke."""
        sandbox = asyncio.ensure_future(self._warm_sandbox(config))
        try:
            backend = await self.backend(config)
            if config.backend == ("embedded",):
                await backend.complete(
                    ['def warm_up(a, b):\n    """Add a and b."""\n'],
                    SamplingParams(n=config.n, temperature=config.temperature, max_tokens=4),
                )
        except BackendError as exc:
            self.health.record_failure(exc)
            return exc
        finally:
            await sandbox
        return None

    async def _warm_sandbox(self, config: ServerConfig) -> None:
        if config.doctest_filter:
            examples = extract_examples(">>> warm_up()\n1\n")
            await asyncio.to_thread(
                run_examples,
                "",
                ["def warm_up():\n    return 1\n"],
                examples,
                timeout_s=config.doctest_timeout,
            )

    async def aclose(self) -> None:
        self._background.drop_all()
        if self._backend is not None:
            await self._backend.aclose()
            self._backend = None

    def count_tokens(self) -> Callable[[str], int]:
        backend = self._backend
        return backend.count_tokens if backend is not None else estimate_tokens

    def find_site(
        self, config: ServerConfig, source: str, line: int, character: int
    ) -> CompletionSite | None:
        return find_completion_site(
            source,
            line,
            character,
            context_tokens=config.context_tokens,
            count_tokens=self.count_tokens(),
        )

    async def complete(
        self,
        site: CompletionSite,
        config: ServerConfig,
        *,
        request_id: str,
        affinity: str | None = None,
        arm: dict[str, Any] | None = None,
        want_all: bool = False,
    ) -> CompletionOutcome:
        """Candidates for ``site``; ``arm`` (see server/ab.py) overrides sampling settings.
        ``want_all`` (the picker) also waits for samples still decoding after an early answer,
        instead of taking the early answer's list."""
        log = RequestLog(logger, {"request_id": request_id})
        started = time.perf_counter()
        params = replace(sampling_params(config, arm), scope_indent=len(site.def_indent))
        arm_name = str(arm["name"]) if arm else None
        settings = (params, config.doctest_filter, config.doctest_timeout, config.backend)
        suffix_key = tuple(line.strip() for line in site.suffix.split("\n") if line.strip())
        key: Hashable = (site.prompt, suffix_key, settings)
        log.debug(
            "function %s, prompt %d chars, arm %s", site.function_name, len(site.prompt), arm_name
        )
        self._background.settle(key, affinity, log)
        if want_all:
            await self._background.finish(key, self._time_left(config, started))

        cached = self.cache.get(key)
        how: str | None = "exact"
        if cached is None:
            cached = self.cache.typed_ahead(
                site.prompt, lambda k: isinstance(k, tuple) and k[2] == settings
            )
            how = "typed-ahead"
        if cached is not None:
            elapsed = (time.perf_counter() - started) * 1000
            log.info("cache hit (%s): %d candidates in %.1f ms", how, len(cached.ranked), elapsed)
            return CompletionOutcome(
                request_id,
                site,
                list(cached.ranked),
                how,
                cached.arm,
                params,
                {"total": elapsed},
                answered="cache",
            )

        shared = self._pending.get(key)
        if shared is None:
            work = self._compute(site, config, params, affinity, log, started, key, arm_name)
            shared = _SharedWork(asyncio.ensure_future(work))
            self._pending[key] = shared
            shared.future.add_done_callback(lambda _done: self._pending.pop(key, None))
        else:
            log.info("joining an identical request already in flight")
        shared.waiters += 1
        try:
            # shield: one waiter giving up must not cancel the work another still awaits.
            answer = await asyncio.shield(shared.future)
        except asyncio.CancelledError:
            shared.waiters -= 1
            if shared.waiters == 0 and not shared.future.done():
                shared.future.cancel()  # nobody wants it any more: stop the backend too
            raise
        shared.waiters -= 1
        ranked = answer.ranked
        if want_all and key in self._background:
            await self._background.finish(key, self._time_left(config, started))
            entry = self.cache.get(key)
            ranked = list(entry.ranked) if entry is not None else ranked
        return CompletionOutcome(
            request_id,
            site,
            list(ranked),
            None,
            arm_name,
            params,
            answer.timings_ms,
            raw_count=answer.raw_count,
            decode_steps=answer.decode_steps,
            answered=answer.answered,
        )

    @staticmethod
    def _time_left(config: ServerConfig, started: float) -> float:
        return config.request_timeout - (time.perf_counter() - started)

    # -- computing an answer -------------------------------------------------------------------

    async def _compute(
        self,
        site: CompletionSite,
        config: ServerConfig,
        params: SamplingParams,
        affinity: str | None,
        log: RequestLog,
        started: float,
        key: Hashable,
        arm_name: str | None,
    ) -> _Answer:
        backend = await self._ready_backend(config, log)
        if isinstance(backend, StreamingBackend):
            return await self._compute_streaming(
                backend, site, config, params, affinity, log, started, key, arm_name
            )
        raw = await self._sample(backend, site, config, params, affinity, log)
        sampled = time.perf_counter()
        clean = clean_candidates(site, raw, check_syntax=syntax_checkable(site))
        cleaned = time.perf_counter()
        outcomes = await self._doctests(site, config, [c.source for c in clean], log)
        checked = time.perf_counter()
        ranked = rank_candidates(clean, outcomes)
        timings = {
            "sample": (sampled - started) * 1000,
            "postprocess": (cleaned - sampled) * 1000,
            "doctest": (checked - cleaned) * 1000,
            "total": (time.perf_counter() - started) * 1000,
        }
        if ranked and ranked[0].doctest.status == "passed":
            timings["firstPass"] = timings["total"]
        log_answer(log, len(raw), ranked, timings, "all")
        self.cache.put(key, site.prompt, ranked, arm_name)
        steps = max((len(c.token_logprobs) for c in raw), default=0)
        return _Answer(ranked, timings, len(raw), steps)

    async def _compute_streaming(
        self,
        backend: StreamingBackend,
        site: CompletionSite,
        config: ServerConfig,
        params: SamplingParams,
        affinity: str | None,
        log: RequestLog,
        started: float,
        key: Hashable,
        arm_name: str | None,
    ) -> _Answer:
        """Answer from the samples that finished, as soon as one passes its doctests."""
        stream = backend.stream(site.prompt, params, budget=DECODE_BUDGET)

        async def doctests(sources: list[str]) -> list[DoctestOutcome]:
            return await self._doctests(site, config, sources, log)

        streamed = StreamedCompletion(
            stream,
            site,
            check_syntax=syntax_checkable(site),
            run_doctests=doctests,
            started=started,
            log=log,
        )
        try:
            answered = await await_answer(streamed, self._time_left(config, started), log)
        except asyncio.CancelledError:
            streamed.task.cancel()  # stops the engine's rows too
            raise
        except BackendError as exc:
            log.warning("backend error: %s", exc)
            raise BackendFailure(exc, first_of_outage=self.health.record_failure(exc)) from exc
        if self.health.record_success():
            log.info("backend reachable again")
        ranked = streamed.ranked()
        if ranked or answered != "timeout":  # an empty answer at the deadline is not a result
            self.cache.put(key, site.prompt, ranked, arm_name)
        if not streamed.finished:

            def cache_late_candidates(done: StreamedCompletion) -> None:
                if late := done.ranked():  # the picker then sees the full ranking
                    self.cache.put(key, site.prompt, late, arm_name)

            self._background.add(key, affinity, streamed, cache_late_candidates)
        now = (time.perf_counter() - started) * 1000
        timings = {"sample": now - streamed.doctest_ms, "doctest": streamed.doctest_ms}
        timings.update(streamed.timings_ms)
        timings["total"] = now
        log_answer(log, len(streamed.raw), ranked, timings, answered)
        return _Answer(ranked, timings, len(streamed.raw), streamed.decode_steps, answered)

    async def _ready_backend(self, config: ServerConfig, log: RequestLog) -> Backend:
        """The backend, unless a model server is known to be down (then fail fast). The
        embedded engine never fails fast: a slow model is not a dead server."""
        if config.backend != ("embedded",):
            failing = self.health.should_fail_fast()
            if failing is not None:
                log.info("backend still down, failing fast: %s", failing)
                raise BackendFailure(failing, first_of_outage=False)
        try:
            return await self.backend(config)
        except BackendError as exc:
            log.warning("backend error: %s", exc)
            raise BackendFailure(exc, first_of_outage=self.health.record_failure(exc)) from exc

    async def _sample(
        self,
        backend: Backend,
        site: CompletionSite,
        config: ServerConfig,
        params: SamplingParams,
        affinity: str | None,
        log: RequestLog,
    ) -> list:
        try:
            results = await asyncio.wait_for(
                backend.complete([site.prompt], params, affinity=affinity),
                timeout=config.request_timeout,
            )
        except TimeoutError:
            error: BackendError = BackendUnavailable(
                f"the model backend did not answer within {config.request_timeout:g} s; "
                "check that it is running, or raise docomplete.requestTimeout"
            )
            raise BackendFailure(error, first_of_outage=self.health.record_failure(error)) from None
        except BackendError as exc:
            log.warning("backend error: %s", exc)
            raise BackendFailure(exc, first_of_outage=self.health.record_failure(exc)) from exc
        if self.health.record_success():
            log.info("backend reachable again")
        return list(results[0]) if results else []

    async def _doctests(
        self,
        site: CompletionSite,
        config: ServerConfig,
        sources: list[str],
        log: RequestLog,
    ) -> list[DoctestOutcome]:
        if not sources:
            return []
        if not config.doctest_filter:
            return [DoctestOutcome(status="disabled") for _ in sources]
        examples = extract_examples(site.docstring)
        if not examples:
            return [DoctestOutcome(status="no-examples") for _ in sources]
        if site.is_method:
            return [DoctestOutcome(total=len(examples), status="skipped") for _ in sources]
        log.debug("running %d examples against %d candidates", len(examples), len(sources))
        # The sandbox run blocks; a worker thread keeps other requests (and cancels) flowing.
        async with self._doctest_lock:
            return await asyncio.to_thread(
                run_examples,
                site.module_context,
                sources,
                examples,
                timeout_s=config.doctest_timeout,
            )
