"""Dynamic batching for the model server: a bounded queue feeding one engine thread; metrics."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from model.engine import Engine, GenerationRequest

log = logging.getLogger(__name__)

LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class QueueFull(RuntimeError):
    """The scheduler's queue is full; the client should retry after ``retry_after_s``."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__("the model server is busy")
        self.retry_after_s = retry_after_s


# --------------------------------------------------------------------------- metrics
@dataclass
class Metrics:
    """Prometheus counters and gauges, rendered by hand (no client library needed)."""

    requests_by_status: dict[int, int] = field(default_factory=dict)
    generated_tokens: int = 0
    prompt_tokens: int = 0
    batches: int = 0
    latency_counts: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS_S))
    latency_sum_s: float = 0.0
    latency_count: int = 0

    def observe_request(self, status: int, seconds: float | None = None) -> None:
        self.requests_by_status[status] = self.requests_by_status.get(status, 0) + 1
        if seconds is not None:
            self.latency_sum_s += seconds
            self.latency_count += 1
            for i, bound in enumerate(LATENCY_BUCKETS_S):
                if seconds <= bound:
                    self.latency_counts[i] += 1

    def count_tokens(self, job: Job) -> None:
        """Add a finished job's prompt and generated tokens to the totals."""
        for r in job.requests:
            self.prompt_tokens += r.prompt_tokens
            self.generated_tokens += sum(c.generated_tokens for c in r.results)

    def render(self, queue_depth: int, running: int, engine: Engine) -> str:
        lines = [
            "# HELP docomplete_requests_total Completion requests by HTTP status.",
            "# TYPE docomplete_requests_total counter",
        ]
        lines += [
            f'docomplete_requests_total{{status="{status}"}} {count}'
            for status, count in sorted(self.requests_by_status.items())
        ]
        lines += [
            "# HELP docomplete_generated_tokens_total Tokens sampled by the engine for requests.",
            "# TYPE docomplete_generated_tokens_total counter",
            f"docomplete_generated_tokens_total {self.generated_tokens}",
            "# HELP docomplete_prompt_tokens_total Prompt tokens processed.",
            "# TYPE docomplete_prompt_tokens_total counter",
            f"docomplete_prompt_tokens_total {self.prompt_tokens}",
            "# HELP docomplete_queue_depth Requests waiting for the engine.",
            "# TYPE docomplete_queue_depth gauge",
            f"docomplete_queue_depth {queue_depth}",
            "# HELP docomplete_running_requests Requests in the batch being decoded.",
            "# TYPE docomplete_running_requests gauge",
            f"docomplete_running_requests {running}",
            "# HELP docomplete_batches_total Engine calls (each decodes one dynamic batch).",
            "# TYPE docomplete_batches_total counter",
            f"docomplete_batches_total {self.batches}",
            "# HELP docomplete_decode_steps_total Decode steps (model forward calls) so far.",
            "# TYPE docomplete_decode_steps_total counter",
            f"docomplete_decode_steps_total {engine.stats.decode_steps}",
            "# HELP docomplete_request_latency_seconds Time from arrival to full answer.",
            "# TYPE docomplete_request_latency_seconds histogram",
        ]
        for bound, count in zip(LATENCY_BUCKETS_S, self.latency_counts, strict=True):
            lines.append(f'docomplete_request_latency_seconds_bucket{{le="{bound}"}} {count}')
        lines += [
            f'docomplete_request_latency_seconds_bucket{{le="+Inf"}} {self.latency_count}',
            f"docomplete_request_latency_seconds_sum {self.latency_sum_s:.6f}",
            f"docomplete_request_latency_seconds_count {self.latency_count}",
        ]
        return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- scheduler
@dataclass
class Job:
    """One HTTP request: its per-prompt engine requests, a cancel flag and a future."""

    requests: list[GenerationRequest]
    cancel: threading.Event
    done: asyncio.Future[None]

    @property
    def rows(self) -> int:
        return sum(r.params.n for r in self.requests)


class Scheduler:
    """Dynamic batching over one engine thread, with a bounded queue."""

    def __init__(self, engine: Engine, metrics: Metrics, *, max_batch: int, max_queue: int) -> None:
        self.engine = engine
        self.metrics = metrics
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.waiting: deque[Job] = deque()
        self.running: list[Job] = []
        # One thread: the engine is not thread-safe and the CPU is better used by one batch.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine")
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        for job in [*self.waiting, *self.running]:
            job.cancel.set()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._executor.shutdown(wait=True)

    def submit(self, requests: list[GenerationRequest]) -> Job:
        if len(self.waiting) >= self.max_queue:
            # A rough wait estimate: one batch's worth of time per queued request ahead.
            raise QueueFull(retry_after_s=max(1, min(30, len(self.waiting))))
        cancel = threading.Event()
        for r in requests:
            r.cancel = cancel
        job = Job(requests, cancel, asyncio.get_running_loop().create_future())
        self.waiting.append(job)
        self._wakeup.set()
        return job

    def _take_batch(self) -> list[Job]:
        batch: list[Job] = []
        rows = 0
        while self.waiting:
            job = self.waiting[0]
            if job.cancel.is_set():  # cancelled while queued: never reaches the engine
                self.waiting.popleft()
                if not job.done.done():
                    job.done.set_result(None)
                continue
            if batch and rows + job.rows > self.max_batch:
                break
            batch.append(self.waiting.popleft())
            rows += job.rows
        return batch

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while batch := self._take_batch():
                self.running = batch
                requests = [r for job in batch for r in job.requests]
                self.metrics.batches += 1
                try:
                    await loop.run_in_executor(self._executor, self.engine.run, requests)
                except Exception as exc:  # a model failure must fail its requests, not the loop
                    log.exception("engine call failed")
                    for job in batch:
                        if not job.done.done():
                            job.done.set_exception(exc)
                else:
                    for job in batch:
                        if not job.done.done():
                            job.done.set_result(None)
                finally:
                    self.running = []
