"""Serving a task head (`luyen serve RUN` of train.task=classification, extractive_qa or seq2seq).

    app = create_head_app(HeadBackend.load("runs/intents/train"), ServeConfig())

| task           | route                  | body                                                  | answer (data[i] / choices[i])             |
|----------------|------------------------|-------------------------------------------------------|-------------------------------------------|
| classification | POST /v1/classify      | {"model"?, "input": str or [str, ...]}                | {"label", "score", "probabilities"}        |
| extractive_qa  | POST /v1/extract       | {"model"?, "question", "context"} or {"inputs": [...]} | {"answer", "start", "score", "no_answer"} |
| seq2seq        | POST /v1/completions   | OpenAI's: {"model", "prompt": str or [str], ...}      | {"text": the summary, "finish_reason"}     |

The key check, body limit, error shape, /health, /metrics and /v1/models are the chat server's
(app.py, guard.py). A request runs on a worker thread under one lock (one request at a time uses
the model), so /health answers while a batch is being predicted. Every input is checked before the
model sees it; a bad one is a 400 whose `param` names it ("input.2", "inputs.0.context"). A route of
another task answers 404 naming this model's task and the route it does answer. Seq2seq decodes
greedily (temperature, top_p and seed are ignored, as the model was evaluated); max_tokens, stop,
echo and stream behave as OpenAI's completions do.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import threading

from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict

from luyen.config import ServeConfig
from luyen.errors import LuyenError
from luyen.serve import protocol as p
from luyen.serve.app import _body, _check_model, _handlers, _model_card, not_served
from luyen.serve.guard import Guard, Metrics
from luyen.tasks.predictor import MAX_ITEMS, Predictor

ROUTE = {"classification": "/v1/classify", "extractive_qa": "/v1/extract", "seq2seq": "/v1/completions"}
OTHERS = ("/", "/v1/chat/completions", "/v1/completions", "/v1/classify", "/v1/extract", "/v1/embeddings")
WARMUP = {"classification": {"text": "warm up"}, "extractive_qa": {"question": "warm up?", "context": "warm up"},
          "seq2seq": {"text": "warm up"}}


class ClassifyRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str | None = None
    input: str | list[str]


class QAInput(BaseModel):
    model_config = ConfigDict(extra="ignore")
    question: str
    context: str


class ExtractRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str | None = None
    question: str | None = None
    context: str | None = None
    inputs: list[QAInput] | None = None


class HeadBackend:
    """A trained task head (luyen.tasks.predictor.Predictor) under one lock, served as model `name`."""

    def __init__(self, predictor: Predictor, name: str):
        self.predictor, self.name, self.lock = predictor, name, threading.Lock()

    @classmethod
    def load(cls, model: str) -> "HeadBackend":
        return cls(Predictor.load(model), str(model))

    @property
    def task(self) -> str:
        return self.predictor.name

    def models(self) -> list[str]:
        return [self.name]

    def warmup(self) -> None:
        self.run([WARMUP[self.task]], **({"max_new_tokens": 2} if self.task == "seq2seq" else {}))

    def run(self, items: list[dict], **kw) -> tuple[list[dict], list[tuple[int, int, str | None]]]:
        """(predictions, [(input tokens, generated tokens, finish reason)] per item), on the caller's thread."""
        with self.lock:
            if self.task != "seq2seq":
                out = self.predictor.predict(items, **kw)
                return out, [(n, 0, None) for n in self._input_tokens(items)]
            with _generated(self.predictor.model) as calls:
                out = self.predictor.predict(items, **kw)
            return out, _counts(calls, self.predictor.model.generation_config)

    def _input_tokens(self, items: list[dict]) -> list[int]:
        if self.task != "classification":
            return [0] * len(items)
        impl, spec, tok = self.predictor.task.impl(), self.predictor.spec, self.predictor.tokenizer
        return [len(impl.example(tok, it["text"], spec["max_length"]).ids) for it in items]


@contextlib.contextmanager
def _generated(model):
    """Record what `model.generate` takes and returns while seq2seq.predict runs (its batches, in order):
    the exact prompt and generated token counts, and whether each row ended with EOS or at max_tokens."""
    calls, original = [], model.generate

    def generate(*args, **kw):
        out = original(*args, **kw)
        ids, mask = kw.get("input_ids", args[0] if args else None), kw.get("attention_mask")
        calls.append((mask if mask is not None else (ids != model.config.pad_token_id).long(), out))
        return out
    model.generate = generate
    try:
        yield calls
    finally:
        del model.generate


def _counts(calls, generation_config) -> list[tuple[int, int, str]]:
    eos = generation_config.eos_token_id
    eos = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    out = []
    for mask, gen in calls:
        for n_prompt, row in zip(mask.sum(1).tolist(), gen[:, 1:].tolist()):  # gen[:, 0]: the decoder's start token
            end = next((i for i, t in enumerate(row) if t in eos), None)
            out.append((n_prompt, len(row), "length") if end is None else (n_prompt, end + 1, "stop"))
    return out


def create_head_app(backend: HeadBackend, cfg: ServeConfig) -> FastAPI:
    metrics, task = Metrics(), backend.task

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await asyncio.to_thread(backend.warmup)
        yield

    app = FastAPI(title="luyen", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.metrics, app.state.backend = metrics, backend
    _handlers(app)

    @app.get("/health")
    async def health():
        return {"status": "ok", "models": backend.models(), "task": task}

    @app.get("/metrics")
    async def prometheus():
        body, kind = metrics.render()
        return Response(body, media_type=kind)

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{**_model_card(backend, m), "task": task} for m in backend.models()]}

    @app.get("/v1/models/{model_id:path}")
    async def model(model_id: str):
        _check_model(backend, model_id)
        return {**_model_card(backend, model_id), "task": task}

    async def predict(items: list[dict], param: str | None, **kw):
        metrics.in_flight.inc()
        metrics.batches.inc()
        metrics.batch_rows.observe(len(items))
        try:
            outs, counts = await asyncio.to_thread(backend.run, items, **kw)
        except LuyenError as e:  # the routes' own checks come first; this names the field all the same
            raise p.APIError(400, e.message, param=param or e.field) from None
        finally:
            metrics.in_flight.dec()
        metrics.prompt_tokens.inc(sum(c[0] for c in counts))
        metrics.completion_tokens.inc(sum(c[1] for c in counts))
        return outs, counts

    if task == "classification":
        @app.post("/v1/classify")
        async def classify(request: Request):
            req = p.parse(ClassifyRequest, await _body(request, cfg.max_body_bytes))
            name = _model(backend, req.model)
            texts = [req.input] if isinstance(req.input, str) else req.input
            params = ["input"] if isinstance(req.input, str) else [f"input.{i}" for i in range(len(texts))]
            _check_count(len(texts), "input")
            for text, param in zip(texts, params):
                _check_text(text, param)
            outs, counts = await predict([{"text": t} for t in texts], "input")
            return {"object": "list", "model": name,
                    "data": [{"object": "classification", "index": i, **o} for i, o in enumerate(outs)],
                    "usage": {"input_tokens": sum(c[0] for c in counts)}}

    elif task == "extractive_qa":
        @app.post("/v1/extract")
        async def extract(request: Request):
            req = p.parse(ExtractRequest, await _body(request, cfg.max_body_bytes))
            name = _model(backend, req.model)
            items = _qa_items(req)
            outs, _ = await predict(items, None)
            return {"object": "list", "model": name,
                    "data": [{"object": "extraction", "index": i, **o} for i, o in enumerate(outs)]}

    else:
        @app.post("/v1/completions")
        async def completions(request: Request):
            req = p.parse(p.CompletionRequest, await _body(request, cfg.max_body_bytes))
            _check_model(backend, req.model)
            prompts = req.prompts()
            max_tokens = req.limit(backend.predictor.spec["max_new_tokens"])
            if max_tokens > cfg.max_tokens:
                raise p.APIError(400, f"max_tokens is {max_tokens}, over this server's limit of {cfg.max_tokens}",
                                 param="max_tokens")
            params = ["prompt"] if isinstance(req.prompt, str) else [f"prompt.{i}" for i in range(len(prompts))]
            _check_count(len(prompts), "prompt")
            for text, param in zip(prompts, params):
                _check_text(text, param)
            outs, counts = await predict([{"text": t} for t in prompts], "prompt", max_new_tokens=max_tokens)
            choices = []
            for i, (prompt, out, (_, _, finish)) in enumerate(zip(prompts, outs, counts)):
                text = out["summary"]
                cuts = [k for s in req.stop if (k := text.find(s)) >= 0]
                if cuts:
                    text, finish = text[:min(cuts)], "stop"
                choices.append({"index": i, "text": (prompt if req.echo else "") + text, "finish_reason": finish})
            use = p.usage(sum(c[0] for c in counts), sum(c[1] for c in counts))
            rid = p.new_id("cmpl")
            if req.stream:
                include = bool(req.stream_options and req.stream_options.include_usage)
                return StreamingResponse(_stream(rid, req.model, choices, use if include else None),
                                         media_type="text/event-stream",
                                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
            return p.completion_response(rid, req.model, choices, use)

    not_served(app, [r for r in OTHERS if r != ROUTE[task]], backend.name, f"a task-head model (task {task})",
               f"POST {ROUTE[task]}")
    app.add_middleware(Guard, api_key=cfg.api_key, max_body_bytes=cfg.max_body_bytes, metrics=metrics)
    if cfg.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware
        app.add_middleware(CORSMiddleware, allow_origins=cfg.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])
    return app


def _model(backend: HeadBackend, name: str | None) -> str:
    if name is not None:
        _check_model(backend, name)
    return name or backend.name


def _check_count(n: int, param: str) -> None:
    if n == 0:
        raise p.APIError(400, f"{param}: give at least one input", param=param)
    if n > MAX_ITEMS:
        raise p.APIError(400, f"{param}: {n} inputs in one request; this server takes at most {MAX_ITEMS}",
                         param=param, code="too_many_inputs")


def _check_text(text: str, param: str) -> None:
    if not text.strip():
        raise p.APIError(400, f"{param}: must be a non-empty string", param=param)


def _qa_items(req: ExtractRequest) -> list[dict]:
    """The {question, context} inputs of a request, each checked (a bad one's param: "context", "inputs.3.question")."""
    if req.inputs is not None:
        if req.question is not None or req.context is not None:
            raise p.APIError(400, "inputs: give either question and context, or inputs, not both", param="inputs")
        items = [{"question": x.question, "context": x.context} for x in req.inputs]
        prefixes = [f"inputs.{i}." for i in range(len(items))]
        _check_count(len(items), "inputs")
    else:
        for key in ("question", "context"):
            if getattr(req, key) is None:
                raise p.APIError(400, f"{key}: Field required (give question and context, or inputs)", param=key)
        items, prefixes = [{"question": req.question, "context": req.context}], [""]
    for item, prefix in zip(items, prefixes):
        for key in ("question", "context"):
            _check_text(item[key], prefix + key)
    return items


async def _stream(rid: str, model: str, choices: list[dict], use: dict | None):
    """OpenAI's completion stream of answers already made: each choice's text, then its finish_reason."""
    def sse(obj) -> str:
        return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"
    for c in choices:
        if c["text"]:
            yield sse(p.completion_chunk(rid, model, c["index"], c["text"]))
        yield sse(p.completion_chunk(rid, model, c["index"], "", finish_reason=c["finish_reason"]))
    if use is not None:
        yield sse(p.completion_chunk(rid, model, 0, "", use=use))
    yield "data: [DONE]\n\n"
