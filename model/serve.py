"""The OpenAI-compatible model server behind ``docomplete serve`` (heavy tier: FastAPI + engine).

Routes: ``POST /v1/completions`` (the completions subset: prompt string or list, max_tokens,
temperature, top_p, n, stop, seed, logprobs, echo, stream as server-sent events),
``GET /v1/models``, ``GET /health``, ``GET /metrics`` (Prometheus text) and a vLLM-style
``POST /tokenize``.

Scheduling is dynamic batching: requests wait in a bounded queue; whenever the engine is free,
the scheduler takes everything queued (up to ``max_batch`` sequences) and decodes it in one
engine call, each request with its own sampling parameters. A full queue answers 429 with
``Retry-After``. A client that disconnects sets its request's cancel event; the engine drops
that request's rows at its next decode step.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse

from model.engine import Engine, GeneratedCandidate, GenerationRequest
from model.protocol import SamplingParams

log = logging.getLogger(__name__)

MAX_N = 256
MAX_LOGPROBS = 5
MAX_STOP_SEQUENCES = 16
LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class InvalidParam(ValueError):
    """A request field is invalid; becomes an OpenAI-style 400 naming ``param``."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


class QueueFull(RuntimeError):
    """The scheduler's queue is full; the client should retry after ``retry_after_s``."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__("the model server is busy")
        self.retry_after_s = retry_after_s


# --------------------------------------------------------------------------- request parsing
@dataclass(frozen=True)
class CompletionRequest:
    prompts: list[str]
    params: SamplingParams
    logprobs: int | None
    echo: bool
    stream: bool


def _number(body: dict[str, Any], name: str, default: float, kind: type) -> Any:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidParam(name, f"'{name}' must be a number, got {type(value).__name__}")
    if kind is int and (not float(value).is_integer()):
        raise InvalidParam(name, f"'{name}' must be an integer, got {value}")
    return kind(value)


def parse_completion_request(body: Any, max_context: int) -> CompletionRequest:
    """Validate a /v1/completions body; raises InvalidParam naming the offending field."""
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
    )
    return CompletionRequest(prompts, params, logprobs_field, echo, stream)


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

    def __init__(self, engine: Engine, metrics: Metrics, *, max_batch: int, max_queue: int):
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


# --------------------------------------------------------------------------- responses
def _logprobs_block(candidate: GeneratedCandidate, offset_base: int) -> dict[str, Any]:
    offsets: list[int] = []
    position = offset_base
    for token in candidate.tokens:
        offsets.append(position)
        position += len(token)
    return {
        "tokens": list(candidate.tokens),
        "token_logprobs": list(candidate.token_logprobs),
        "text_offset": offsets,
        # Alternatives are not computed; the sampled token's log-prob is what rankers need.
        "top_logprobs": None,
    }


def completion_body(
    engine: Engine, request: CompletionRequest, job: Job, completion_id: str, created: int
) -> dict[str, Any]:
    choices = []
    completion_tokens = 0
    for prompt_index, engine_request in enumerate(job.requests):
        for sample_index, candidate in enumerate(engine_request.results):
            prefix = engine_request.prompt if request.echo else ""
            completion_tokens += candidate.generated_tokens
            choices.append(
                {
                    "index": prompt_index * request.params.n + sample_index,
                    "text": prefix + candidate.text,
                    "logprobs": _logprobs_block(candidate, len(prefix))
                    if request.logprobs is not None
                    else None,
                    "finish_reason": candidate.finish_reason,
                }
            )
    prompt_tokens = sum(r.prompt_tokens for r in job.requests)
    return {
        "id": completion_id,
        "object": "text_completion",
        "created": created,
        "model": engine.name,
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def error_body(message: str, *, param: str | None, kind: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


# --------------------------------------------------------------------------- the app
def create_app(engine: Engine, *, max_batch: int = 256, max_queue: int = 64) -> Any:
    """The FastAPI app serving ``engine``; the scheduler starts with the app's lifespan."""
    metrics = Metrics()
    state: dict[str, Scheduler] = {}

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        scheduler = Scheduler(engine, metrics, max_batch=max_batch, max_queue=max_queue)
        scheduler.start()
        state["scheduler"] = scheduler
        try:
            yield
        finally:
            await scheduler.stop()

    app = FastAPI(title="docomplete model server", lifespan=lifespan)
    app.state.engine = engine
    app.state.metrics = metrics
    app.state.scheduler_ref = state

    def fail(status: int, message: str, *, param: str | None, kind: str, code: str | None):
        metrics.observe_request(status)
        return JSONResponse(
            error_body(message, param=param, kind=kind, code=code), status_code=status
        )

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {
                    "id": engine.name,
                    "object": "model",
                    "owned_by": "docomplete",
                    "max_model_len": engine.max_context,
                }
            ],
        }

    @app.get("/metrics")
    async def prometheus() -> PlainTextResponse:
        scheduler = state["scheduler"]
        running = len(scheduler.running)
        text = metrics.render(len(scheduler.waiting), running, engine)
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    @app.post("/tokenize")
    async def tokenize(request: Request) -> Any:
        try:
            body = await request.json()
        except ValueError:
            body = None
        prompt = body.get("prompt") if isinstance(body, dict) else None
        if not isinstance(prompt, str):
            return fail(
                400,
                "'prompt' must be a string",
                param="prompt",
                kind="invalid_request_error",
                code=None,
            )
        ids = engine.encode(prompt)
        return {"tokens": ids, "count": len(ids), "max_model_len": engine.max_context}

    @app.post("/v1/completions")
    async def completions(request: Request) -> Any:
        started = time.perf_counter()
        try:
            body = await request.json()
        except ValueError:
            return fail(
                400,
                "the request body is not valid JSON",
                param=None,
                kind="invalid_request_error",
                code=None,
            )
        try:
            parsed = parse_completion_request(body, engine.max_context)
        except InvalidParam as exc:
            return fail(400, str(exc), param=exc.param, kind="invalid_request_error", code=None)
        scheduler = state["scheduler"]
        requests = [GenerationRequest(prompt=p, params=parsed.params) for p in parsed.prompts]
        completion_id = f"cmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        if parsed.stream:
            return _stream(request, parsed, requests, completion_id, created, started)
        try:
            job = scheduler.submit(requests)
        except QueueFull as exc:
            metrics.observe_request(429)
            return JSONResponse(
                error_body(
                    str(exc) + "; retry later", param=None, kind="overloaded", code="queue_full"
                ),
                status_code=429,
                headers={"Retry-After": str(exc.retry_after_s)},
            )
        # Wait for the batch, watching for the client going away so its rows can be dropped.
        while not job.done.done():
            await asyncio.wait([job.done], timeout=0.05)
            if not job.done.done() and await request.is_disconnected():
                job.cancel.set()
                metrics.observe_request(499)
                log.info("client disconnected; cancelled %s", completion_id)
                return JSONResponse({}, status_code=499)
        try:
            job.done.result()
        except Exception as exc:
            return fail(
                500, f"generation failed: {exc}", param=None, kind="server_error", code=None
            )
        _count_tokens(metrics, job)
        metrics.observe_request(200, time.perf_counter() - started)
        return completion_body(engine, parsed, job, completion_id, created)

    def _stream(
        request: Request,
        parsed: CompletionRequest,
        requests: list[GenerationRequest],
        completion_id: str,
        created: int,
        started: float,
    ) -> Any:
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[tuple[int, int, int, float] | None] = asyncio.Queue()

        def token_sink(prompt_index: int) -> Callable[[int, int, float], None]:
            def push(sample_index: int, token_id: int, logprob: float) -> None:
                loop.call_soon_threadsafe(
                    events.put_nowait, (prompt_index, sample_index, token_id, logprob)
                )

            return push

        for i, r in enumerate(requests):
            r.on_token = token_sink(i)
        try:
            job = scheduler_submit(requests)
        except QueueFull as exc:
            metrics.observe_request(429)
            return JSONResponse(
                error_body(
                    str(exc) + "; retry later", param=None, kind="overloaded", code="queue_full"
                ),
                status_code=429,
                headers={"Retry-After": str(exc.retry_after_s)},
            )
        job.done.add_done_callback(lambda _f: events.put_nowait(None))
        n = parsed.params.n
        hold = max((len(s) for s in parsed.params.stop), default=1) - 1

        def chunk(index: int, text: str, finish: str | None, logprobs: Any = None) -> str:
            payload = {
                "id": completion_id,
                "object": "text_completion",
                "created": created,
                "model": engine.name,
                "choices": [
                    {"index": index, "text": text, "logprobs": logprobs, "finish_reason": finish}
                ],
            }
            return f"data: {json.dumps(payload)}\n\n"

        async def sse() -> AsyncIterator[str]:
            ids: dict[int, list[int]] = {}
            emitted: dict[int, int] = {}
            pending_lp: dict[int, list[tuple[int, float]]] = {}
            try:
                if parsed.echo:
                    for p_index, r in enumerate(requests):
                        for s in range(n):
                            yield chunk(p_index * n + s, r.prompt, None)
                while True:
                    event = await events.get()
                    if event is None:
                        break
                    p_index, s_index, token_id, logprob = event
                    index = p_index * n + s_index
                    ids.setdefault(index, []).append(token_id)
                    pending_lp.setdefault(index, []).append((token_id, logprob))
                    text = engine.decode(ids[index])
                    # Hold back what could be the start of a stop string or a split character.
                    safe = len(text.rstrip("\ufffd")) - hold
                    start = emitted.get(index, 0)
                    if safe > start:
                        emitted[index] = safe
                        yield chunk(
                            index, text[start:safe], None, _stream_lp(pending_lp.pop(index))
                        )
                job.done.result()
                for p_index, r in enumerate(requests):
                    for s_index, candidate in enumerate(r.results):
                        index = p_index * n + s_index
                        rest = candidate.text[emitted.get(index, 0) :]
                        yield chunk(index, rest, candidate.finish_reason)
                _count_tokens(metrics, job)
                metrics.observe_request(200, time.perf_counter() - started)
                yield "data: [DONE]\n\n"
            finally:
                if not job.done.done():  # the client went away mid-stream
                    job.cancel.set()
                    metrics.observe_request(499)
                    log.info("stream closed early; cancelled %s", completion_id)

        def _stream_lp(pairs: list[tuple[int, float]]) -> Any:
            if parsed.logprobs is None:
                return None
            return {
                "tokens": [engine.decode([t]) for t, _ in pairs],
                "token_logprobs": [lp for _, lp in pairs],
                "top_logprobs": None,
            }

        return StreamingResponse(sse(), media_type="text/event-stream")

    def scheduler_submit(requests: list[GenerationRequest]) -> Job:
        return state["scheduler"].submit(requests)

    return app


def _count_tokens(metrics: Metrics, job: Job) -> None:
    for r in job.requests:
        metrics.prompt_tokens += r.prompt_tokens
        metrics.generated_tokens += sum(c.generated_tokens for c in r.results)


def serve(
    model_path: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    max_batch: int = 256,
    max_queue: int = 64,
    device: str = "auto",
) -> None:
    """Load the model (raising EngineLoadError with one line if it cannot) and serve it."""
    import uvicorn

    engine = Engine.load(model_path, device=device)
    app = create_app(engine, max_batch=max_batch, max_queue=max_queue)
    print(f"docomplete: serving {engine.name} on http://{host}:{port}/v1", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
