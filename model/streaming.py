"""Candidates as they finish: the in-process engine's streaming API.

Light tier (no torch at import). ``InProcessBackend.stream`` returns a :class:`CandidateStream`:
the engine thread hands over each sample the moment it ends (EOS, stop string, scope stop,
token limit), so the LSP server can run a candidate's doctests while its siblings still
decode, answer as soon as one passes, and let the rest finish in the background. HTTP backends
have no such API; callers fall back to ``Backend.complete``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any, Protocol, runtime_checkable

from model.protocol import Candidate, DecodeBudget, SamplingParams

__all__ = ["CandidateStream", "DecodeBudget", "StreamingBackend", "start_stream"]


class _End:
    """Queue marker: the engine call returned (``error`` set when it raised)."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


class CandidateStream:
    """One prompt's ``n`` samples, yielded as ``(sample_index, Candidate)`` as each finishes.

    ``truncate()`` ends every unfinished sample at once with the text it has so far
    (``finish_reason="length"``), and they are still yielded; ``cancel()`` drops them. Iterating
    ends when the engine call is over; ``finished`` counts what was yielded so far.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self.finished = 0
        self.truncate_event = threading.Event()
        self.cancel_event = threading.Event()
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[tuple[int, Candidate] | _End] = asyncio.Queue()
        self._done = False

    @classmethod
    def of(cls, candidates: Sequence[Candidate]) -> CandidateStream:
        """A stream of samples that all finished already (a model server's whole answer), so
        they go through the same early-answer path as the engine's. Call from the event loop."""
        stream = cls(len(candidates))
        for index, candidate in enumerate(candidates):
            stream.deliver(index, candidate)
        stream.end()
        return stream

    # -- called from the engine thread ---------------------------------------------------------
    def deliver(self, sample_index: int, candidate: Candidate) -> None:
        self._put((sample_index, candidate))

    def end(self, error: BaseException | None = None) -> None:
        self._put(_End(error))

    def _put(self, item: tuple[int, Candidate] | _End) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the event loop is gone (server shutting down): stop decoding
            self.cancel_event.set()

    # -- the consumer's side -------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self._done

    def truncate(self) -> None:
        self.truncate_event.set()

    def cancel(self) -> None:
        self.cancel_event.set()

    def __aiter__(self) -> CandidateStream:
        return self

    async def __anext__(self) -> tuple[int, Candidate]:
        if self._done:
            raise StopAsyncIteration
        item = await self._queue.get()
        if isinstance(item, _End):
            self._done = True
            if item.error is not None:
                raise item.error
            raise StopAsyncIteration
        self.finished += 1
        return item

    def ready(self) -> list[tuple[int, Candidate]]:
        """Candidates already delivered and not yet taken (without waiting)."""
        taken: list[tuple[int, Candidate]] = []
        while not self._done and not self._queue.empty():
            item = self._queue.get_nowait()
            if isinstance(item, _End):
                self._done = True
                if item.error is not None:
                    raise item.error
                break
            self.finished += 1
            taken.append(item)
        return taken


def start_stream(
    executor: Executor,
    get_engine: Callable[[], Any],
    prompt: str,
    params: SamplingParams,
    *,
    budget: DecodeBudget | None = None,
) -> CandidateStream:
    """Run ``prompt`` on the engine in ``executor``, streaming samples into a CandidateStream.

    Call from the event loop. ``get_engine`` runs in the executor (it may load the model, so
    the first stream waits only for what is left of a load started earlier).
    """
    from_engine = CandidateStream(params.n)

    def generate() -> None:
        try:
            from model.engine import GenerationRequest

            engine = get_engine()
            request = GenerationRequest(
                prompt=prompt,
                params=params,
                cancel=from_engine.cancel_event,
                truncate=from_engine.truncate_event,
                budget=budget,
                on_finish=lambda index, generated: from_engine.deliver(
                    index, generated.to_candidate()
                ),
            )
            engine.run([request])
        except BaseException as exc:  # handed to the awaiting side, which re-raises it
            from_engine.end(exc)
        else:
            from_engine.end()

    from_engine._loop.run_in_executor(executor, generate)
    return from_engine


@runtime_checkable
class StreamingBackend(Protocol):
    """A Backend that can also stream one prompt's candidates as they finish."""

    def stream(
        self, prompt: str, params: SamplingParams, *, budget: DecodeBudget | None = None
    ) -> CandidateStream: ...
