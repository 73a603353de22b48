"""The FastAPI app: OpenAI-compatible routes, the chat page, health and Prometheus metrics.

    app = create_app(TransformersBackend.load("gemma3-270m"), ServeConfig())
    uvicorn.run(app, host="127.0.0.1", port=8000)

Every error a client sees is OpenAI's error JSON with no stack trace; bearer keys, body size, prompt
and max_tokens limits are checked before a request reaches the model.
"""
from __future__ import annotations

import asyncio
import json
import logging
from contextlib import asynccontextmanager
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from luyen.config import ServeConfig
from luyen.serve import protocol as p
from luyen.serve.guard import PAGES, Guard, Metrics
from luyen.serve.scheduler import Row, Scheduler

log = logging.getLogger("luyen.serve")
PAGE_CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; "
            "img-src 'self' data:; base-uri 'none'; form-action 'none'")


def create_app(backend, cfg: ServeConfig, rag=None) -> FastAPI:
    """``rag``: a function messages -> (messages, sources) (see luyen.serve.load_rag) applied to chat
    requests; the passages given to the model come back in the reply's top-level ``sources`` (the first
    chunk's, when streaming), a field OpenAI clients keep as an extra."""
    metrics = Metrics()
    scheduler = Scheduler(backend, max_batch_size=cfg.max_batch_size, wait_s=cfg.batch_wait_ms / 1000,
                          cache_size=cfg.cache_size, metrics=metrics)

    runner = None

    @asynccontextmanager
    async def lifespan(app):
        await asyncio.to_thread(backend.warmup)  # /health answers once the first request would be fast
        scheduler.start()
        if runner is not None:
            runner.start()
        yield
        if runner is not None:
            await asyncio.to_thread(runner.stop)
        scheduler.stop()

    app = FastAPI(title="luyen", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.scheduler, app.state.metrics, app.state.backend = scheduler, metrics, backend
    _handlers(app)
    page = resources.files("luyen.serve").joinpath("static/chat.html").read_text(encoding="utf-8")

    if cfg.state_dir and hasattr(backend, "add_model"):  # the fine-tuning API: models it trains are served here
        from luyen.serve.tuning import mount
        runner = mount(app, backend, cfg, PAGE_CSP)

    @app.get("/health")
    async def health():
        return {"status": "ok", "models": backend.models(),
                **({"threads": runner.threads()} if runner is not None else {})}

    @app.get("/metrics")
    async def prometheus():
        body, kind = metrics.render()
        return Response(body, media_type=kind)

    @app.get("/", response_class=HTMLResponse)
    async def chat_page():
        return HTMLResponse(page, headers={"Content-Security-Policy": PAGE_CSP, "X-Content-Type-Options": "nosniff"})

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [_model_card(backend, m) for m in backend.models()]}

    @app.get("/v1/models/{model_id:path}")
    async def model(model_id: str):
        _check_model(backend, model_id)
        return _model_card(backend, model_id)

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        req = p.parse(p.ChatRequest, await _body(request, cfg.max_body_bytes))
        _check_model(backend, req.model)
        messages, sources = [m.plain() for m in req.messages], None
        if rag is not None:
            messages, sources = await asyncio.to_thread(rag, messages)  # embedding a query takes a while
        prompts = [(backend.render(req.model, messages), True)]
        return await _serve(request, req, prompts, backend, scheduler, metrics, cfg, chat=True, sources=sources)

    @app.post("/v1/completions")
    async def completions(request: Request):
        req = p.parse(p.CompletionRequest, await _body(request, cfg.max_body_bytes))
        _check_model(backend, req.model)
        return await _serve(request, req, [(t, False) for t in req.prompts()], backend, scheduler, metrics, cfg,
                            chat=False)

    if runner is None:
        not_served(app, ["/train", "/v1/files", "/v1/fine_tuning/jobs"], backend.models()[0],
                   "served without the fine-tuning API", "chat; start the server with --state-dir DIR (serve.state_dir) to "
                   "upload files and run fine-tuning jobs")
    not_served(app, ["/v1/classify", "/v1/extract"], backend.models()[0], "a chat model (task causal)",
               "POST /v1/chat/completions and /v1/completions")
    app.add_middleware(Guard, api_key=cfg.api_key, max_body_bytes=cfg.max_body_bytes, metrics=metrics,
                       max_file_bytes=cfg.max_file_bytes if runner is not None else 0)
    if cfg.cors_origins:  # added last = outermost, so preflights never meet the key check
        from fastapi.middleware.cors import CORSMiddleware
        app.add_middleware(CORSMiddleware, allow_origins=cfg.cors_origins, allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Authorization", "Content-Type"])
    return app


def _handlers(app: FastAPI) -> None:
    @app.exception_handler(p.APIError)
    async def api_error(request, e: p.APIError):
        return JSONResponse(e.body(), status_code=e.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, e: StarletteHTTPException):
        kind = "not_found_error" if e.status_code == 404 else "invalid_request_error"
        return JSONResponse(p.error_body(str(e.detail), kind), status_code=e.status_code)

    @app.exception_handler(Exception)
    async def internal(request, e: Exception):  # the trace goes to the server log, never to the client
        log.exception("internal error on %s", request.url.path)
        return JSONResponse(p.error_body("internal server error", "server_error"), status_code=500)


def not_served(app: FastAPI, routes: list[str], model: str, what: str, serves: str) -> None:
    """Routes of another kind of model answer 404 in OpenAI's shape, naming this model's kind and its routes
    (a classifier asked for chat completions, a chat model asked to classify); PAGES are answered on GET."""
    def answer(route: str, method: str):
        async def refuse():
            raise p.APIError(404, f"{method} {route} is not served here: {model} is {what}; it answers {serves}",
                             param="model", code="wrong_route")
        return refuse

    for route in routes:
        method = "GET" if route in PAGES else "POST"
        app.add_api_route(route, answer(route, method), methods=[method], include_in_schema=False)


async def _body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it passes ``limit`` (Content-Length may be absent or wrong)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise p.APIError(413, f"request body is over the server's limit of {limit} bytes", code="body_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


def _model_card(backend, name: str) -> dict:
    base = backend.models()[0]
    return {"id": name, "object": "model", "created": 0, "owned_by": "luyen",
            "root": base, "parent": None if name == base else base}


def _check_model(backend, name: str) -> None:
    if name not in backend.models():
        raise p.APIError(404, f"model '{name}' is not served here; GET /v1/models lists {', '.join(backend.models())}",
                         param="model", code="model_not_found")


async def _serve(request: Request, req, prompts, backend, scheduler: Scheduler, metrics: Metrics,
                 cfg: ServeConfig, chat: bool, sources: list[dict] | None = None):
    """Check limits, answer cached rows at once, queue the rest, and stream or collect the events."""
    budget = backend.default_tokens(req.model)  # what the model learned to need
    max_tokens = req.limit(min(budget, cfg.max_tokens) if budget else cfg.default_max_tokens)
    if max_tokens > cfg.max_tokens:
        raise p.APIError(400, f"max_tokens is {max_tokens}, over this server's limit of {cfg.max_tokens}",
                         param="max_tokens")
    encoded = await asyncio.to_thread(lambda: [backend.encode(req.model, t, templated) for t, templated in prompts])
    limit = cfg.max_prompt_tokens or backend.context - max_tokens
    for ids in encoded:
        if len(ids) > limit:
            raise p.APIError(400, f"the prompt has {len(ids)} tokens; this server takes at most {limit} with "
                             f"max_tokens={max_tokens} (context {backend.context})",
                             param="messages" if chat else "prompt", code="context_length_exceeded")
    events, deliver = _channel()
    rows = _rows(req, encoded, max_tokens, deliver)
    fresh = [row for row in rows if not _from_cache(row, scheduler, metrics)]
    metrics.prompt_tokens.inc(sum(map(len, encoded)))
    scheduler.submit(fresh)
    echo = [text if getattr(req, "echo", False) else "" for text, _ in prompts]
    if req.stream:
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        return StreamingResponse(_sse(events, rows, req.model, chat, include_usage, echo, metrics, sources),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    return await _collect(request, events, rows, req.model, chat, echo, metrics, sources)


def _channel():
    """An asyncio queue and a thread-safe function that feeds it from the scheduler's thread."""
    loop, events = asyncio.get_running_loop(), asyncio.Queue()

    def deliver(event):
        try:
            loop.call_soon_threadsafe(events.put_nowait, event)
        except RuntimeError:  # the event loop is gone: the server is shutting down
            pass
    return events, deliver


def _rows(req, encoded: list[list[int]], max_tokens: int, deliver) -> list[Row]:
    """One row per prompt. Rows batch together when their model and sampling match; greedy rows share
    batches, a seeded sampled request runs alone so its answer depends on its seed only. Greedy and
    seeded answers are deterministic, so they are cached."""
    sampled = req.temperature > 0
    key = (req.model, req.temperature if sampled else 0.0, req.top_p if sampled else 1.0,
           req.seed if sampled else None, object() if sampled and req.seed is not None else None)
    deterministic = not sampled or req.seed is not None
    return [Row(key, ids, max_tokens, req.stop, deliver, index=i,
                cache_key=(req.model, tuple(ids), max_tokens, tuple(req.stop), *key[1:4]) if deterministic else None)
            for i, ids in enumerate(encoded)]


def _from_cache(row: Row, scheduler: Scheduler, metrics: Metrics) -> bool:
    hit = scheduler.cache.get(row.cache_key) if row.cache_key else None
    if hit:
        metrics.cache_hits.inc()
        text, row.finish, n_prompt, n_completion = hit
        row.deliver(("text", row.index, text))
        row.deliver(("done", row.index, row.finish, n_prompt, n_completion))
    return bool(hit)


async def _collect(request, events, rows, model, chat, echo, metrics, sources=None):
    texts, ends = [*echo], {}
    metrics.in_flight.inc()
    try:
        while len(ends) < len(rows):
            try:
                event = await asyncio.wait_for(events.get(), timeout=1.0)
            except asyncio.TimeoutError:
                if await request.is_disconnected():
                    return Response(status_code=499)
                continue
            if event[0] == "text":
                texts[event[1]] += event[2]
            elif event[0] == "done":
                ends[event[1]] = event[2:]
            else:
                raise p.APIError(500, event[2], type="server_error")
    finally:
        metrics.in_flight.dec()
        for row in rows:
            row.cancel()
    choices = [{"index": i, "text": texts[i], "finish_reason": ends[i][0]} for i in range(len(rows))]
    use = p.usage(sum(e[1] for e in ends.values()), sum(e[2] for e in ends.values()))
    rid = p.new_id("chatcmpl" if chat else "cmpl")
    reply = (p.chat_response if chat else p.completion_response)(rid, model, choices, use)
    return reply if sources is None else {**reply, "sources": sources}


async def _sse(events, rows, model, chat, include_usage, echo, metrics, sources=None):
    """Server-sent events as OpenAI streams them. If the client goes away, Starlette cancels this
    generator; `finally` marks its rows cancelled, so they stop at the next decoding step."""
    rid = p.new_id("chatcmpl" if chat else "cmpl")
    chunk = p.chat_chunk if chat else p.completion_chunk

    def sse(obj) -> str:
        return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"

    metrics.in_flight.inc()
    done, n_prompt, n_completion = 0, 0, 0
    try:
        for row in rows:
            if chat:
                first = chunk(rid, model, row.index, {"role": "assistant", "content": ""})
                yield sse(first if sources is None else {**first, "sources": sources})
            elif echo[row.index]:
                yield sse(chunk(rid, model, row.index, echo[row.index]))
        while done < len(rows):
            event = await events.get()
            if event[0] == "text":
                yield sse(chunk(rid, model, event[1], {"content": event[2]} if chat else event[2]))
            elif event[0] == "done":
                done, n_prompt, n_completion = done + 1, n_prompt + event[3], n_completion + event[4]
                yield sse(chunk(rid, model, event[1], {} if chat else "", finish_reason=event[2]))
            else:
                yield sse(p.error_body(event[2], "server_error"))
                return
        if include_usage:
            yield sse(chunk(rid, model, 0, {}, use=p.usage(n_prompt, n_completion)))
        yield "data: [DONE]\n\n"
    finally:
        metrics.in_flight.dec()
        for row in rows:
            row.cancel()
