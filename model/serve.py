"""The OpenAI-compatible model server behind ``docomplete serve`` (heavy tier: FastAPI + engine).

Routes: ``POST /v1/completions`` (the completions subset: prompt string or list, max_tokens,
temperature, top_p, n, stop, seed, logprobs, echo, stream as server-sent events),
``GET /v1/models``, ``GET /health``, ``GET /metrics`` (Prometheus text) and a vLLM-style
``POST /tokenize``. The wire format lives in ``model.serve_protocol``, dynamic batching in
``model.serve_scheduler``.

Scheduling is dynamic batching: requests wait in a bounded queue; whenever the engine is free,
the scheduler takes everything queued (up to ``max_batch`` sequences) and decodes it in one
engine call, each request with its own sampling parameters. A full queue answers 429 with
``Retry-After``. A client that disconnects sets its request's cancel event; the engine drops
that request's rows at its next decode step.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse

from model.engine import Engine, GenerationRequest
from model.serve_protocol import (
    CompletionRequest,
    InvalidParam,
    completion_body,
    error_body,
    parse_completion_request,
    stream_chunk,
    stream_logprobs_block,
)
from model.serve_scheduler import Job, Metrics, QueueFull, Scheduler

log = logging.getLogger(__name__)

# (prompt index, sample index, token id, log-prob) of one sampled token; None ends the stream.
TokenEvent = tuple[int, int, int, float]


def _fail(
    metrics: Metrics, status: int, message: str, *, param: str | None, kind: str, code: str | None
) -> JSONResponse:
    metrics.observe_request(status)
    return JSONResponse(error_body(message, param=param, kind=kind, code=code), status_code=status)


def _queue_full(metrics: Metrics, exc: QueueFull) -> JSONResponse:
    metrics.observe_request(429)
    return JSONResponse(
        error_body(str(exc) + "; retry later", param=None, kind="overloaded", code="queue_full"),
        status_code=429,
        headers={"Retry-After": str(exc.retry_after_s)},
    )


# --------------------------------------------------------------------------- the app
def create_app(engine: Engine, *, max_batch: int = 256, max_queue: int = 64) -> FastAPI:
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

    # The two POST routes answer either a dict or an error response; ``Any`` keeps FastAPI from
    # deriving a response model from the annotation.
    @app.post("/tokenize")
    async def tokenize(request: Request) -> Any:
        try:
            body = await request.json()
        except ValueError:
            body = None
        prompt = body.get("prompt") if isinstance(body, dict) else None
        if not isinstance(prompt, str):
            return _fail(
                metrics,
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
            return _fail(
                metrics,
                400,
                "the request body is not valid JSON",
                param=None,
                kind="invalid_request_error",
                code=None,
            )
        try:
            parsed = parse_completion_request(body, engine.max_context)
        except InvalidParam as exc:
            return _fail(
                metrics, 400, str(exc), param=exc.param, kind="invalid_request_error", code=None
            )
        scheduler = state["scheduler"]
        requests = [GenerationRequest(prompt=p, params=parsed.params) for p in parsed.prompts]
        completion_id = f"cmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        if parsed.stream:
            return stream_completion(
                engine, scheduler, metrics, parsed, requests, completion_id, created, started
            )
        try:
            job = scheduler.submit(requests)
        except QueueFull as exc:
            return _queue_full(metrics, exc)
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
            return _fail(
                metrics,
                500,
                f"generation failed: {exc}",
                param=None,
                kind="server_error",
                code=None,
            )
        metrics.count_tokens(job)
        metrics.observe_request(200, time.perf_counter() - started)
        return completion_body(engine.name, parsed, job.requests, completion_id, created)

    return app


# --------------------------------------------------------------------------- streaming
def stream_completion(
    engine: Engine,
    scheduler: Scheduler,
    metrics: Metrics,
    parsed: CompletionRequest,
    requests: list[GenerationRequest],
    completion_id: str,
    created: int,
    started: float,
) -> StreamingResponse | JSONResponse:
    """Queue ``requests`` with a token sink each and answer with their tokens as SSE (or a 429)."""
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[TokenEvent | None] = asyncio.Queue()

    def token_sink(prompt_index: int) -> Callable[[int, int, float], None]:
        # Called on the engine thread: hand each token to the event loop.
        def push(sample_index: int, token_id: int, logprob: float) -> None:
            loop.call_soon_threadsafe(
                events.put_nowait, (prompt_index, sample_index, token_id, logprob)
            )

        return push

    for i, r in enumerate(requests):
        r.on_token = token_sink(i)
    try:
        job = scheduler.submit(requests)
    except QueueFull as exc:
        return _queue_full(metrics, exc)
    job.done.add_done_callback(lambda _f: events.put_nowait(None))
    sse = _sse_events(engine, metrics, parsed, job, events, completion_id, created, started)
    return StreamingResponse(sse, media_type="text/event-stream")


async def _sse_events(
    engine: Engine,
    metrics: Metrics,
    parsed: CompletionRequest,
    job: Job,
    events: asyncio.Queue[TokenEvent | None],
    completion_id: str,
    created: int,
    started: float,
) -> AsyncIterator[str]:
    """The event stream of one job: text as it decodes, the final pieces, then ``[DONE]``."""
    n = parsed.params.n
    hold = max((len(s) for s in parsed.params.stop), default=1) - 1

    def chunk(
        index: int, text: str, finish: str | None, logprobs: dict[str, Any] | None = None
    ) -> str:
        return stream_chunk(engine.name, completion_id, created, index, text, finish, logprobs)

    def chunk_logprobs(pairs: list[tuple[int, float]]) -> dict[str, Any] | None:
        if parsed.logprobs is None:
            return None
        return stream_logprobs_block(
            [engine.decode([t]) for t, _ in pairs], [lp for _, lp in pairs]
        )

    ids: dict[int, list[int]] = {}
    emitted: dict[int, int] = {}
    pending_lp: dict[int, list[tuple[int, float]]] = {}
    try:
        if parsed.echo:
            for p_index, r in enumerate(job.requests):
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
                yield chunk(index, text[start:safe], None, chunk_logprobs(pending_lp.pop(index)))
        job.done.result()
        for p_index, r in enumerate(job.requests):
            for s_index, candidate in enumerate(r.results):
                index = p_index * n + s_index
                rest = candidate.text[emitted.get(index, 0) :]
                yield chunk(index, rest, candidate.finish_reason)
        metrics.count_tokens(job)
        metrics.observe_request(200, time.perf_counter() - started)
        yield "data: [DONE]\n\n"
    finally:
        if not job.done.done():  # the client went away mid-stream
            job.cancel.set()
            metrics.observe_request(499)
            log.info("stream closed early; cancelled %s", completion_id)


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
