"""The completion pipeline: context → cache → backend → post-process → doctests → ranking.

One request id is threaded through every log line of a request. Backend failures are turned
into one user-facing message per outage; while the backend is down, requests fail fast instead
of waiting on it again, and the first request after a short pause probes whether it is back.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import itertools
import logging
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from model.fim import FimTemplate
from model.protocol import (
    Backend,
    BackendError,
    BackendUnavailable,
    SamplingParams,
    estimate_tokens,
)
from server.ab import sampling_params
from server.cache import CompletionCache
from server.config import ServerConfig
from server.context import CompletionSite, StubReader, find_completion_site
from server.doctest_filter import extract_examples, run_examples
from server.fim_prompt import FimLookupError, build_site_fim_prompt, resolve_fim_template
from server.postprocess import CleanCandidate, clean_candidates, syntax_checkable
from server.ranking import DoctestOutcome, RankedCandidate, rank_candidates
from server.real_file_doctests import find_site_packages, run_site_doctests
from server.suffix import fit_candidates
from server.verdicts import describe, order_by_verdict

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
class BackendHealth:
    """Tracks outages so the user sees one message per outage, not one per keystroke."""

    retry_after_s: float = 1.0
    down_since: float | None = None
    last_failure: float = 0.0
    last_error: BackendError | None = None
    clock: Callable[[], float] = time.monotonic

    def should_fail_fast(self) -> BackendError | None:
        if self.down_since is None or self.last_error is None:
            return None
        if self.clock() - self.last_failure < self.retry_after_s:
            return self.last_error
        return None  # time to probe again

    def record_failure(self, error: BackendError) -> bool:
        """Returns True when this failure starts an outage (the moment to tell the user)."""
        first = self.down_since is None
        now = self.clock()
        if first:
            self.down_since = now
        self.last_failure = now
        self.last_error = error
        return first

    def record_success(self) -> bool:
        """Returns True when this success ends an outage."""
        recovered = self.down_since is not None
        self.down_since = None
        self.last_error = None
        return recovered


class BackendFailure(Exception):
    """A request failed because of the backend; ``first_of_outage`` says whether to tell."""

    def __init__(self, error: BackendError, *, first_of_outage: bool) -> None:
        super().__init__(str(error))
        self.error = error
        self.first_of_outage = first_of_outage


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


BackendFactory = Callable[[tuple[str, ...], str | None, str | None], Backend]


def default_backend_factory(
    spec: tuple[str, ...], model_path: str | None, model_name: str | None = None
) -> Backend:
    from model.client import make_backend

    target: str | list[str] = spec[0] if spec == ("embedded",) else list(spec)
    # accept_fewer: a server that gives fewer than n candidates still gets its answer shown;
    # the client says so once through its notices (shown to the user by the server).
    return make_backend(target, model_path=model_path, model_name=model_name, accept_fewer=True)


@dataclass
class _SharedWork:
    """One computation that several identical requests (e.g. inline + completion) await."""

    future: asyncio.Future[tuple[list[RankedCandidate], dict[str, float], int, int]]
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

    async def backend(self, config: ServerConfig) -> Backend:
        """The backend for ``config``, built on first use and rebuilt when its spec changes."""
        key = (config.backend, config.model_path, config.model)
        async with self._backend_lock:
            if self._backend is not None and self._backend_key == key:
                return self._backend
            old, self._backend = self._backend, None
            if old is not None:
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
        """Load what the first request would otherwise wait for: the embedded model (one
        one-token generation) and the doctest sandbox. HTTP backends are left alone (a request
        to a shared server for nothing). Returns the backend error, if any, so the user hears
        about a missing model at startup rather than at the first keystroke."""
        try:
            backend = await self.backend(config)
            if config.backend == ("embedded",):
                await backend.complete(
                    ["def warm_up():\n"], SamplingParams(n=1, temperature=0.0, max_tokens=1)
                )
        except BackendError as exc:
            self.health.record_failure(exc)
            return exc
        if config.doctest_filter:
            examples = extract_examples(">>> warm_up()\n1\n")
            await asyncio.to_thread(
                run_examples,
                "",
                ["def warm_up():\n    return 1\n"],
                examples,
                timeout_s=config.doctest_timeout,
            )
        return None

    async def aclose(self) -> None:
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
    ) -> CompletionOutcome:
        """Candidates for ``site``; ``arm`` (see server/ab.py) overrides sampling settings."""
        log = RequestLog(logger, {"request_id": request_id})
        started = time.perf_counter()
        params = sampling_params(config, arm)
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
                request_id, site, list(cached.ranked), how, cached.arm, params, {"total": elapsed}
            )

        shared = self._pending.get(key)
        if shared is None:
            shared = _SharedWork(
                asyncio.ensure_future(self._compute(site, config, params, affinity, log, started))
            )
            self._pending[key] = shared
            shared.future.add_done_callback(lambda _done: self._pending.pop(key, None))
        else:
            log.info("joining an identical request already in flight")
        shared.waiters += 1
        try:
            # shield: one waiter giving up must not cancel the work another still awaits.
            ranked, timings, raw_count, steps = await asyncio.shield(shared.future)
        except asyncio.CancelledError:
            shared.waiters -= 1
            if shared.waiters == 0 and not shared.future.done():
                shared.future.cancel()  # nobody wants it any more: stop the backend too
            raise
        shared.waiters -= 1
        self.cache.put(key, site.prompt, ranked, arm_name)
        return CompletionOutcome(
            request_id,
            site,
            list(ranked),
            None,
            arm_name,
            params,
            timings,
            raw_count=raw_count,
            decode_steps=steps,
        )

    async def _compute(
        self,
        site: CompletionSite,
        config: ServerConfig,
        params: SamplingParams,
        affinity: str | None,
        log: logging.LoggerAdapter,
        started: float,
    ) -> tuple[list[RankedCandidate], dict[str, float], int, int]:
        raw = await self._sample(site, config, params, affinity, log)
        sampled = time.perf_counter()
        fitted = fit_candidates(site, raw)  # against the code after the cursor
        clean = clean_candidates(site, fitted, check_syntax=syntax_checkable(site))
        cleaned = time.perf_counter()
        outcomes = await self._doctests(site, config, clean, log)
        checked = time.perf_counter()
        ranked = order_by_verdict(rank_candidates(clean, outcomes))
        timings = {
            "sample": (sampled - started) * 1000,
            "postprocess": (cleaned - sampled) * 1000,
            "doctest": (checked - cleaned) * 1000,
            "total": (time.perf_counter() - started) * 1000,
        }
        log.info(
            "%d sampled, %d kept, best %s; %s",
            len(raw),
            len(ranked),
            describe(ranked[0]) if ranked else "-",
            ", ".join(f"{k} {v:.0f} ms" for k, v in timings.items()),
        )
        steps = max((len(c.token_logprobs) for c in raw), default=0)
        return ranked, timings, len(raw), steps

    async def _sample(
        self,
        site: CompletionSite,
        config: ServerConfig,
        params: SamplingParams,
        affinity: str | None,
        log: logging.LoggerAdapter,
    ) -> list:
        failing = self.health.should_fail_fast()
        if failing is not None:
            log.info("backend still down, failing fast: %s", failing)
            raise BackendFailure(failing, first_of_outage=False)
        try:
            backend = await self.backend(config)
            prompt, params = await self._model_prompt(site, config, params)
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
        key = (config.fim_template, config.backend, config.model_path)
        if key not in self._fim_templates:
            try:
                self._fim_templates[key] = await asyncio.to_thread(resolve_fim_template, *key)
            except FimLookupError as exc:  # asked again next time; left to right meanwhile
                logger.info("fimTemplate auto: %s", exc)
        template = self._fim_templates.get(key)
        if template is None:
            return site.prompt, params
        prompt = build_site_fim_prompt(site, template, config.context_tokens, self.count_tokens())
        stops = tuple(dict.fromkeys([*params.stop, *template.stop_sequences]))
        return prompt, dataclasses.replace(params, stop=stops)

    async def _doctests(
        self,
        site: CompletionSite,
        config: ServerConfig,
        clean: list[CleanCandidate],
        log: logging.LoggerAdapter,
    ) -> list[DoctestOutcome]:
        if not clean:
            return []
        if not config.doctest_filter:
            return [DoctestOutcome(status="disabled") for _ in clean]
        examples = extract_examples(site.docstring)
        if not examples:
            return [DoctestOutcome(status="no-examples") for _ in clean]
        log.debug("running %d examples against %d candidates", len(examples), len(clean))
        # Building the plan parses the document and the sandbox run blocks: a worker thread
        # keeps other requests (and cancels) flowing.
        return await asyncio.to_thread(
            run_site_doctests,
            site,
            clean,
            examples,
            timeout_s=config.doctest_timeout,
            site_packages=find_site_packages(config.sandbox_site_packages, self.workspace_root),
        )
