"""Answer early: clean and doctest each candidate as the engine finishes it; stop at a pass.

With a streaming backend (the embedded engine) the pipeline does not wait for the slowest of
its ``n`` samples. Each sample is post-processed and its doctests run the moment it finishes;
as soon as one passes every example of the docstring the request is answered with what is
ranked so far, and the remaining samples finish in the background (the pipeline then caches
the full ranking for the picker). Without examples the answer waits for all samples, which the
engine's decode budget keeps from waiting on one rambling sample.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any

from evalkit.candidate_policy import mean_logprob_of
from evalkit.sandbox_layers import JobsCancelled
from model.protocol import Candidate, DecodeBudget
from server.context import CompletionSite
from server.postprocess import CleanCandidate, normalised_key
from server.ranking import DoctestOutcome, RankedCandidate, preference, rank_candidates
from server.verdicts import describe, order_by_verdict

#: How the embedded engine cuts a sample far longer than its finished siblings.
DECODE_BUDGET = DecodeBudget()
#: After ``requestTimeout`` the unfinished samples are truncated; this long is waited for them.
TRUNCATE_GRACE_S = 1.0
#: How long the answer waits for one run of a request's doctests. Examples take milliseconds
#: (a project's imports a few hundred); a run that takes longer is nearly always a candidate that
#: loops until ``doctestTimeout`` (3 s per candidate). The request is then answered with what is
#: ready, the candidates being checked shown as "examples still running"; their verdicts reach
#: the cache and the picker when the run ends.
DOCTEST_PATIENCE_S = 1.0
#: The status of a candidate whose examples are still running when the request is answered.
CHECKING = DoctestOutcome(status="checking")
#: ... and of one whose examples were stopped for a newer request (``stop_slow_doctests``).
STOPPED = DoctestOutcome(status="skipped", details="stopped for a newer request")

#: Post-processes one raw candidate for the site (None: nothing worth showing is left).
Prepare = Callable[[Candidate], "CleanCandidate | None"]
#: Runs the docstring's examples against candidates (one outcome per candidate, in order);
#: setting the event stops it (``evalkit.sandbox.JobsCancelled``).
DoctestRunner = Callable[[list[CleanCandidate], threading.Event], Awaitable[list[DoctestOutcome]]]


def _likelier(candidate: Candidate, than: Candidate) -> bool:
    return preference(0, mean_logprob_of(candidate)) > preference(0, mean_logprob_of(than))


def passes_everything(outcome: DoctestOutcome) -> bool:
    return outcome.status == "passed" and outcome.total > 0 and outcome.passed == outcome.total


class StreamedCompletion:
    """One request's candidates as they arrive from a ``model.streaming.CandidateStream``.

    ``answer`` resolves with why the request may be answered now: ``"passing"`` (a candidate
    passed all its examples), ``"all"`` (every sample finished) or ``"doctests-slow"`` (a run
    of doctests outlasted ``DOCTEST_PATIENCE_S``); ``task`` runs until the stream ends, also
    after the answer. ``ranked()`` is the ranking of what arrived so far.
    """

    def __init__(
        self,
        stream: Any,
        site: CompletionSite,
        *,
        prepare: Prepare,
        run_doctests: DoctestRunner,
        started: float,
        log: logging.LoggerAdapter,
    ) -> None:
        self.stream = stream
        self.site = site
        self.prepare = prepare
        self.run_doctests = run_doctests
        self.started = started
        self.log = log
        self.raw: list[Candidate] = []
        self.clean: list[CleanCandidate] = []
        self.outcomes: list[DoctestOutcome] = []
        self._by_key: dict[str, int] = {}
        self._checking: list[CleanCandidate] = []  # whose doctests run past the answer
        self._stop_checking: threading.Event | None = None  # stops that run
        self.timings_ms: dict[str, float] = {}
        self.doctest_ms = 0.0
        self.answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.task = asyncio.ensure_future(self._consume())

    # -- the consumer --------------------------------------------------------------------------
    async def _consume(self) -> None:
        try:
            async for first in self.stream:
                await self._add([first, *self.stream.ready()])
                if not self.answer.done() and any(map(passes_everything, self.outcomes)):
                    self._mark("firstPass")
                    self.answer.set_result("passing")
            self._mark("allFinished")
            if not self.answer.done():
                self.answer.set_result("all")
        except asyncio.CancelledError:
            self.stream.cancel()
            if not self.answer.done():
                self.answer.cancel()
            raise
        except BaseException as exc:
            self.stream.cancel()
            if not self.answer.done():
                self.answer.set_exception(exc)
            else:  # answered already: a late failure only costs the picker its stragglers
                self.log.warning("background candidates failed: %s", exc)

    def _mark(self, name: str) -> None:
        self.timings_ms.setdefault(name, (time.perf_counter() - self.started) * 1000)

    async def _add(self, arrived: list[tuple[int, Candidate]]) -> None:
        """Post-process ``arrived``, drop duplicates of earlier candidates, doctest the rest."""
        self._mark("firstCandidate")
        fresh: dict[str, CleanCandidate] = {}
        for _index, candidate in arrived:
            self.raw.append(candidate)
            clean = self.prepare(candidate)
            if clean is None:
                continue
            key = normalised_key(clean.source, clean.continuation)
            known = self._by_key.get(key)
            if known is not None:
                # The same code again: keep the more likely text (its verdict is the same).
                if _likelier(candidate, self.clean[known].candidate):
                    self.clean[known] = clean
            elif key not in fresh or _likelier(candidate, fresh[key].candidate):
                fresh[key] = clean
        if not fresh:
            return
        checking = time.perf_counter()
        stop = threading.Event()
        run = asyncio.ensure_future(self.run_doctests(list(fresh.values()), stop))
        try:
            await asyncio.wait([run], timeout=DOCTEST_PATIENCE_S)
            if not run.done() and not self.answer.done():
                self.log.info("doctests still running after %.1f s: answering", DOCTEST_PATIENCE_S)
                self._checking, self._stop_checking = list(fresh.values()), stop
                self._mark("doctestsSlow")
                self.answer.set_result("doctests-slow")
            try:
                outcomes = await run
            except JobsCancelled:
                self.log.info("stopped the doctests of %d candidates", len(fresh))
                outcomes = [STOPPED] * len(fresh)
        except asyncio.CancelledError:
            stop.set()  # the sandbox is killed rather than left to finish
            run.cancel()
            raise
        finally:
            self._checking, self._stop_checking = [], None
        self.doctest_ms += (time.perf_counter() - checking) * 1000
        for (key, clean), outcome in zip(fresh.items(), outcomes, strict=True):
            self._by_key[key] = len(self.clean)
            self.clean.append(clean)
            self.outcomes.append(outcome)

    # -- what the pipeline reads ---------------------------------------------------------------
    def ranked(self) -> list[RankedCandidate]:
        """What arrived so far, best first; candidates whose examples are still running (see
        ``DOCTEST_PATIENCE_S``) are included, as ``checking``."""
        checking = [CHECKING] * len(self._checking)
        return order_by_verdict(
            rank_candidates([*self.clean, *self._checking], [*self.outcomes, *checking])
        )

    def stop_slow_doctests(self) -> None:
        """Stop a run of doctests that outlasted the answer (a newer request wants the CPU and
        the sandbox); its candidates keep the verdict ``skipped``."""
        if self._stop_checking is not None:
            self._stop_checking.set()

    @property
    def decode_steps(self) -> int:
        return max((len(c.token_logprobs) for c in self.raw), default=0)

    @property
    def finished(self) -> bool:
        return self.task.done()


def log_answer(
    log: logging.LoggerAdapter,
    sampled: int,
    ranked: list[RankedCandidate],
    timings: dict[str, float],
    answered: str,
) -> None:
    """One line per computed answer: counts, the best verdict, why now, where time went."""
    log.info(
        "%d sampled, %d kept, best %s; answered (%s) %s",
        sampled,
        len(ranked),
        describe(ranked[0]) if ranked else "-",
        answered,
        ", ".join(f"{k} {v:.0f} ms" for k, v in timings.items()),
    )


async def await_answer(
    streamed: StreamedCompletion, timeout_s: float, log: logging.LoggerAdapter
) -> str:
    """Why the request can be answered now. After ``timeout_s`` the unfinished samples are
    truncated and what is ready a moment later is the answer ("timeout", never an error)."""
    try:
        return await asyncio.wait_for(asyncio.shield(streamed.answer), max(0.0, timeout_s))
    except TimeoutError:
        pass
    log.info("no answer in time: truncating the unfinished samples")
    streamed.stream.truncate()
    try:
        await asyncio.wait_for(asyncio.shield(streamed.answer), TRUNCATE_GRACE_S)
    except TimeoutError:
        log.info("answering with the %d candidates ready", len(streamed.clean))
    return "timeout"


@dataclass
class _Unfinished:
    affinity: str | None
    streamed: StreamedCompletion


class BackgroundSamples:
    """Samples still decoding after their request was answered early, by cache key."""

    def __init__(self) -> None:
        self._work: dict[Hashable, _Unfinished] = {}

    def __contains__(self, key: Hashable) -> bool:
        return key in self._work

    def add(
        self,
        key: Hashable,
        affinity: str | None,
        streamed: StreamedCompletion,
        on_done: Callable[[StreamedCompletion], None],
    ) -> None:
        """Track ``streamed``; ``on_done`` runs when its last sample was checked."""
        self._work[key] = _Unfinished(affinity, streamed)
        streamed.task.add_done_callback(lambda _task: self._finished(key, streamed, on_done))

    def _finished(
        self,
        key: Hashable,
        streamed: StreamedCompletion,
        on_done: Callable[[StreamedCompletion], None],
    ) -> None:
        work = self._work.get(key)
        if work is not None and work.streamed is streamed:
            del self._work[key]
        if streamed.answer.done() and not streamed.answer.cancelled():
            streamed.answer.exception()  # retrieved: a late failure was logged already
        if not streamed.task.cancelled() and streamed.task.exception() is None:
            on_done(streamed)

    def settle(self, key: Hashable, affinity: str | None, log: logging.LoggerAdapter) -> None:
        """A new request makes other requests' unfinished samples less wanted: for the same
        document they are stale and dropped; for another one they are cut short (they still
        reach the cache) and a run of their doctests that outlasted their answer is stopped, so
        the engine and the sandbox are free for the new request."""
        for other, work in list(self._work.items()):
            if other == key:
                continue
            if affinity is not None and work.affinity == affinity:
                log.info("dropping the previous request's unfinished samples")
                work.streamed.task.cancel()
                self._work.pop(other, None)
            else:
                work.streamed.stream.truncate()
                work.streamed.stop_slow_doctests()

    async def finish(self, key: Hashable, timeout_s: float) -> None:
        """Wait for ``key``'s unfinished samples (truncated after ``timeout_s``)."""
        work = self._work.get(key)
        if work is None:
            return
        task = work.streamed.task
        await asyncio.wait([task], timeout=max(0.0, timeout_s))
        if not task.done():
            work.streamed.stream.truncate()
            await asyncio.wait([task], timeout=TRUNCATE_GRACE_S)

    def drop_all(self) -> None:
        for work in self._work.values():
            work.streamed.task.cancel()
        self._work.clear()
