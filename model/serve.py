"""The OpenAI-compatible model server behind ``docomplete serve`` (heavy tier: FastAPI + engine).

Routes: ``POST /v1/completions`` (the completions subset: prompt string or list, suffix for
fill-in-the-middle models, max_tokens, temperature, top_p, n, stop, seed, logprobs, echo, stream
as server-sent events),
``GET /v1/models``, ``GET /health``, ``GET /metrics`` (Prometheus text) and a vLLM-style
``POST /tokenize``. The wire format lives in ``model.serve_protocol``, token text and stream
stop handling in ``model.serve_text``, dynamic batching in ``model.serve_scheduler``.

Scheduling is dynamic batching: requests wait in a bounded queue; whenever the engine is free,
the scheduler takes everything queued (up to ``max_batch`` sequences) and decodes it in one
engine call, each request with its own sampling parameters. One request may ask for at most
``max_rows`` completions (prompts x n), so no single request holds the engine for long. A full
queue answers 429 with ``Retry-After``. A client that disconnects sets its request's cancel event; the engine drops
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
from model.fim import FimTemplate, fim_auto_declined, find_fim_template
from model.serve_protocol import (
    DEFAULT_MAX_ROWS,
    CompletionRequest,
    InvalidParam,
    completion_body,
    error_body,
    parse_completion_request,
    stream_chunk,
    stream_logprobs_block,
)
from model.serve_scheduler import Job, Metrics, QueueFull, Scheduler
from model.serve_text import Release, StreamedChoice, TopAlternatives, token_labeller

log = logging.getLogger(__name__)

# (prompt index, sample index, token id, log-prob, top alternatives) of one sampled token;
# None ends the stream.
TokenEvent = tuple[int, int, int, float, TopAlternatives]


def model_fim_template(engine: Engine) -> FimTemplate | None:
    """The fill-in-the-middle template of the served model: its tokenizer must hold the
    template's three tokens, each encoding as one token."""
    tokenizer = engine.tokenizer
    vocabulary: dict[str, int] = tokenizer.get_vocab() if hasattr(tokenizer, "get_vocab") else {}
    template = find_fim_template(vocabulary)
    if template is None:
        return None
    for token in template.tokens:
        if list(tokenizer(token, add_special_tokens=False)["input_ids"]) != [vocabulary[token]]:
            log.warning("%s is in the vocabulary but not a special token: no FIM", token)
            return None
    return template


def engine_requests(parsed: CompletionRequest) -> list[GenerationRequest]:
    """One engine request per prompt (recording ``logprobs: k`` top alternatives when asked)."""
    top = parsed.logprobs or 0
    return [
        GenerationRequest(prompt=p, params=parsed.params, top_logprobs=top) for p in parsed.prompts
    ]


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
def create_app(
    engine: Engine,
    *,
    max_batch: int = 256,
    max_queue: int = 64,
    max_rows: int = DEFAULT_MAX_ROWS,
    fim_declined: str | None = None,
) -> FastAPI:
    """The FastAPI app serving ``engine``; the scheduler starts with the app's lifespan.
    ``fim_declined``: why the model should not get FIM prompts unless a client names the template
    (its directory's ``docomplete.json``); ``GET /v1/models`` says so to ``fimTemplate: auto``."""
    metrics = Metrics()
    fim = model_fim_template(engine)
    label = token_labeller(engine.tokenizer)
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
                    # Which fill-in-the-middle tokens ``suffix`` uses (None: no FIM).
                    "fim_template": fim.name if fim is not None else None,
                    **(
                        {"fim_auto": False, "fim_auto_reason": fim_declined}
                        if fim is not None and fim_declined is not None
                        else {}
                    ),
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
            parsed = parse_completion_request(body, engine.max_context, max_rows=max_rows, fim=fim)
        except InvalidParam as exc:
            return _fail(
                metrics, 400, str(exc), param=exc.param, kind="invalid_request_error", code=None
            )
        scheduler = state["scheduler"]
        requests = engine_requests(parsed)
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
        return completion_body(
            engine.name, parsed, job.requests, completion_id, created, engine.decode, label
        )

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

    def token_sink(prompt_index: int) -> Callable[..., None]:
        # Called on the engine thread: hand each token to the event loop.
        def push(
            sample_index: int, token_id: int, logprob: float, top: TopAlternatives = ()
        ) -> None:
            loop.call_soon_threadsafe(
                events.put_nowait, (prompt_index, sample_index, token_id, logprob, top)
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

    def chunk(index: int, text: str, finish: str | None, release: Release | None = None) -> str:
        logprobs = None
        if parsed.logprobs is not None and release is not None:
            logprobs = stream_logprobs_block(release)
        return stream_chunk(engine.name, completion_id, created, index, text, finish, logprobs)

    choices: dict[int, StreamedChoice] = {}
    label = token_labeller(engine.tokenizer)

    def choice(index: int) -> StreamedChoice:
        if index not in choices:
            offset = len(parsed.client_prompts[index // n]) if parsed.echo else 0
            choices[index] = StreamedChoice(engine.decode, parsed.params.stop, offset, label)
        return choices[index]

    try:
        if parsed.echo:
            for p_index, prompt in enumerate(parsed.client_prompts):
                for s in range(n):
                    yield chunk(p_index * n + s, prompt, None)
        while True:
            event = await events.get()
            if event is None:
                break
            p_index, s_index, token_id, logprob, top = event
            index = p_index * n + s_index
            # Text is sent once no stop string can change it (see model.serve_text).
            release = choice(index).push(token_id, logprob, top)
            if release is not None:
                yield chunk(index, release.text, None, release)
        job.done.result()
        for p_index, r in enumerate(job.requests):
            for s_index, candidate in enumerate(r.results):
                index = p_index * n + s_index
                release = choice(index).finish(
                    candidate.text, candidate.token_ids, candidate.token_logprobs
                )
                yield chunk(index, release.text, candidate.finish_reason, release)
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
    max_rows: int = DEFAULT_MAX_ROWS,
    device: str = "auto",
) -> None:
    """Load the model (raising EngineLoadError with one line if it cannot) and serve it."""
    import uvicorn

    engine = Engine.load(model_path, device=device)
    app = create_app(
        engine,
        max_batch=max_batch,
        max_queue=max_queue,
        max_rows=max_rows,
        fim_declined=fim_auto_declined(model_path),
    )
    print(f"docomplete: serving {engine.name} on http://{host}:{port}/v1", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
