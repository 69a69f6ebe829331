"""The completion pipeline: context → cache → backend → post-process → doctests → ranking.

One request id is threaded through every log line of a request. Backend failures are turned
into one user-facing message per outage; while a model server is down, requests fail fast
instead of waiting on it again, and the first request after a short pause probes whether it is
back. The embedded engine is never "down" for being slow: it streams its candidates
(:mod:`server.early_answer`), and a request is answered with what is ready as soon as one
passes its doctests, when a run of doctests outlasts a second, or at ``requestTimeout``; the
unfinished ones complete in the background into the cache (the picker waits for them; the next
request for the document drops them).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from model.fim import FimTemplate
from model.protocol import (
    Backend,
    BackendError,
    BackendUnavailable,
    Candidate,
    SamplingParams,
    estimate_tokens,
)
from model.streaming import CandidateStream, StreamingBackend
from server.ab import sampling_params
from server.backend_health import BackendFailure, BackendHealth
from server.cache import CompletionCache
from server.config import ServerConfig
from server.context import CompletionSite, StubReader, find_completion_site
from server.doctest_filter import extract_examples, run_examples
from server.early_answer import (
    DECODE_BUDGET,
    BackgroundSamples,
    StreamedCompletion,
    await_answer,
    log_answer,
)
from server.fim_prompt import FimLookupError, build_site_fim_prompt, resolve_fim_template
from server.postprocess import CleanCandidate, clean_candidate, syntax_checkable
from server.ranking import DoctestOutcome, RankedCandidate
from server.real_file_doctests import find_site_packages, run_site_doctests
from server.request_log import RequestLog
from server.suffix import fit_candidates

logger = logging.getLogger("server.pipeline")


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
    #: passed all its doctests before the others finished), "doctests-slow" (a run of doctests
    #: outlasted server.early_answer.DOCTEST_PATIENCE_S) or "timeout" (requestTimeout).
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
#: slower than one thread (2 cores under load: 126-474 ms per step against 22-44 ms).
ENGINE_THREADS = "auto"


def default_backend_factory(
    spec: tuple[str, ...], model_path: str | None, model_name: str | None = None
) -> Backend:
    from model.client import make_backend

    if spec == ("embedded",):
        # The layer projections follow the engine's default (bf16 where the CPU multiplies it
        # natively) or DOCOMPLETE_MATMUL_DTYPE, as `eval run` and `serve` do.
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
        self.workspace_root: str | None = None  # the editor's workspace (virtualenv lookup)
        self._fim_templates: dict[tuple[str, tuple[str, ...], str | None], FimTemplate | None] = {}
        self._background = BackgroundSamples()
        # One doctest run at a time: they then reuse the one warm sandbox.
        self._doctest_lock = asyncio.Lock()
        #: The run holding the sandbox: its stop event, and whether its request was answered.
        self._doctest_holder: tuple[threading.Event, Callable[[], bool]] | None = None

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
        fim = asyncio.ensure_future(self._fim_template(config))  # reads the tokenizer
        try:
            backend = await self.backend(config)
            if config.backend == ("embedded",):
                params = SamplingParams(n=config.n, temperature=config.temperature, max_tokens=4)
                warm_up = getattr(backend, "warm_up", None)
                if warm_up is not None:  # the in-process engine: a waiting request goes first
                    await warm_up(params)
                else:
                    await backend.complete(['def warm_up(a, b):\n    """Add a and b."""\n'], params)
        except BackendError as exc:
            self.health.record_failure(exc)
            return exc
        finally:
            await asyncio.gather(sandbox, fim)
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
        self,
        config: ServerConfig,
        source: str,
        line: int,
        character: int,
        *,
        workspace_stubs: StubReader | None = None,
    ) -> CompletionSite | None:
        return find_completion_site(
            source,
            line,
            character,
            context_tokens=config.context_tokens,
            count_tokens=self.count_tokens(),
            workspace_stubs=workspace_stubs,
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
        params = dataclasses.replace(
            sampling_params(config, arm), scope_indent=len(site.def_indent)
        )
        arm_name = str(arm["name"]) if arm else None
        settings = (
            params,
            config.doctest_filter,
            config.doctest_timeout,
            config.backend,
            config.fim_template,
            config.sandbox_site_packages,
        )
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
        prompt, params = await self._model_prompt(site, config, params)
        params = dataclasses.replace(params, decode_budget=DECODE_BUDGET)
        if isinstance(backend, StreamingBackend):
            stream = backend.stream(prompt, params, budget=DECODE_BUDGET)
        else:  # a model server answers all n at once: they are checked as one batch
            stream = CandidateStream.of(
                await self._sample(backend, prompt, config, params, affinity, log)
            )
        return await self._answer_from(stream, site, config, affinity, log, started, key, arm_name)

    async def _answer_from(
        self,
        stream: CandidateStream,
        site: CompletionSite,
        config: ServerConfig,
        affinity: str | None,
        log: RequestLog,
        started: float,
        key: Hashable,
        arm_name: str | None,
    ) -> _Answer:
        """Answer from the samples that finished, as soon as one passes its doctests."""
        check_syntax = syntax_checkable(site)

        def prepare(candidate: Candidate) -> CleanCandidate | None:
            [fitted] = fit_candidates(site, [candidate])
            return clean_candidate(site, fitted, check_syntax=check_syntax)

        async def doctests(
            clean: list[CleanCandidate], cancel: threading.Event
        ) -> list[DoctestOutcome]:
            return await self._doctests(
                site, config, clean, log, cancel=cancel, answered=lambda: streamed.answer.done()
            )

        streamed = StreamedCompletion(
            stream,
            site,
            prepare=prepare,
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
        prompt: str,
        config: ServerConfig,
        params: SamplingParams,
        affinity: str | None,
        log: RequestLog,
    ) -> list[Candidate]:
        try:
            results = await asyncio.wait_for(
                backend.complete([prompt], params, affinity=affinity),
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

    async def _model_prompt(
        self, site: CompletionSite, config: ServerConfig, params: SamplingParams
    ) -> tuple[str, SamplingParams]:
        """The prompt sent to the model: fill-in-the-middle when the model takes it."""
        template = await self._fim_template(config)
        if template is None:
            return site.prompt, params
        prompt = build_site_fim_prompt(site, template, config.context_tokens, self.count_tokens())
        stops = tuple(dict.fromkeys([*params.stop, *template.stop_sequences]))
        return prompt, dataclasses.replace(params, stop=stops)

    async def _fim_template(self, config: ServerConfig) -> FimTemplate | None:
        key = (config.fim_template, config.backend, config.model_path)
        if key not in self._fim_templates:
            try:
                self._fim_templates[key] = await asyncio.to_thread(resolve_fim_template, *key)
            except FimLookupError as exc:  # asked again next time; left to right meanwhile
                logger.info("fimTemplate auto: %s", exc)
        return self._fim_templates.get(key)

    async def _doctests(
        self,
        site: CompletionSite,
        config: ServerConfig,
        clean: list[CleanCandidate],
        log: logging.LoggerAdapter,
        *,
        cancel: threading.Event | None = None,
        answered: Callable[[], bool] | None = None,
    ) -> list[DoctestOutcome]:
        """The candidates' doctest outcomes, one sandbox run at a time. ``cancel`` stops this
        run; ``answered`` says whether its request has had its answer, after which the run is
        background work that a request waiting for the sandbox stops (a candidate looping until
        ``doctestTimeout`` would otherwise hold every later request)."""
        if not clean:
            return []
        if not config.doctest_filter:
            return [DoctestOutcome(status="disabled") for _ in clean]
        examples = extract_examples(site.docstring)
        if not examples:
            return [DoctestOutcome(status="no-examples") for _ in clean]
        log.debug("running %d examples against %d candidates", len(examples), len(clean))
        # Building the plan parses the document and the sandbox run blocks: a worker thread
        # keeps other requests (and cancels) flowing. One run at a time reuses the warm sandbox.
        holder = self._doctest_holder
        if self._doctest_lock.locked() and holder is not None and holder[1]():
            log.info("stopping an answered request's doctests, which hold the sandbox")
            holder[0].set()
        async with self._doctest_lock:
            if cancel is not None and answered is not None:
                self._doctest_holder = (cancel, answered)
            try:
                return await asyncio.to_thread(
                    run_site_doctests,
                    site,
                    clean,
                    examples,
                    timeout_s=config.doctest_timeout,
                    site_packages=find_site_packages(
                        config.sandbox_site_packages, self.workspace_root
                    ),
                    cancel=cancel,
                )
            finally:
                self._doctest_holder = None
