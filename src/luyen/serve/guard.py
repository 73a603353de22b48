"""The server's front door: API keys, body-size limit and per-route Prometheus metrics.

A plain ASGI middleware rather than Starlette's BaseHTTPMiddleware, which would buffer streamed
responses and hide a client's disconnect from the stream.

Keys: `Authorization: Bearer KEY` (what the OpenAI client sends) or HTTP Basic with KEY as the
password (what a browser sends after its login prompt, so the chat page works behind a key too).
Every route but /health answers 401 without one.
"""
from __future__ import annotations

import base64
import hmac
import json
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from luyen.serve.protocol import error_body

ROUTES = {"/", "/health", "/metrics", "/v1/models", "/v1/chat/completions", "/v1/completions", "/v1/classify",
          "/v1/extract", "/train", "/v1/files"}
PAGES = ("/", "/train")  # what a browser opens: a missing key gets the Basic login prompt
PREFIXES = ("/v1/files/", "/v1/fine_tuning/jobs", "/v1/models/")  # routes with ids: counted under their prefix
MULTIPART_SLACK = 64 * 1024  # the form's boundaries and headers around an uploaded file


class Metrics:
    """The server's Prometheus series, in a registry of its own (one per app, so tests can start many)."""

    def __init__(self):
        r = self.registry = CollectorRegistry()
        self.requests = Counter("luyen_requests", "HTTP requests by route and status", ["route", "status"], registry=r)
        self.latency = Histogram("luyen_request_seconds", "Time to the end of the response by route", ["route"],
                                 registry=r, buckets=(.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120))
        self.in_flight = Gauge("luyen_requests_in_flight", "Generation requests being answered", registry=r)
        self.prompt_tokens = Counter("luyen_prompt_tokens", "Prompt tokens received", registry=r)
        self.completion_tokens = Counter("luyen_completion_tokens", "Tokens generated for delivered answers", registry=r)
        self.batches = Counter("luyen_batches", "Batched generate calls", registry=r)
        self.batch_rows = Histogram("luyen_batch_rows", "Requests per batch", registry=r,
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128))
        self.cache_hits = Counter("luyen_cache_hits", "Requests answered from the deterministic-answer cache", registry=r)
        self.cancelled = Counter("luyen_cancelled", "Rows dropped because their client went away", registry=r)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def key_matches(headers: dict[bytes, bytes], key: str) -> bool:
    auth = headers.get(b"authorization", b"").decode("latin-1")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer":
        given = value.strip()
    elif scheme.lower() == "basic":
        try:
            given = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")[2]
        except (ValueError, UnicodeDecodeError):
            return False
    else:
        return False
    return hmac.compare_digest(given.encode(), key.encode())


class Guard:
    def __init__(self, app, *, api_key: str | None, max_body_bytes: int, metrics: Metrics, max_file_bytes: int = 0):
        self.app, self.key, self.limit, self.metrics = app, api_key, max_body_bytes, metrics
        self.file_limit = max_file_bytes + MULTIPART_SLACK if max_file_bytes else max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        route = path if path in ROUTES else next((p.rstrip("/") for p in PREFIXES if path.startswith(p)), "other")
        limit = self.file_limit if path == "/v1/files" else self.limit
        start, status = time.perf_counter(), [500]

        async def send_status(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        headers = dict(scope["headers"])
        length = headers.get(b"content-length", b"0")
        try:
            if self.key and scope["path"] != "/health" and not key_matches(headers, self.key):
                challenge = 'Basic realm="luyen"' if path in PAGES else "Bearer"
                await _reply(send_status, 401, "a valid API key is required: send 'Authorization: Bearer KEY'",
                             "authentication_error", "invalid_api_key", [(b"www-authenticate", challenge.encode())])
            elif not length.isdigit() or int(length) > limit:
                await _reply(send_status, 413, f"request body is over the server's limit of {limit} bytes",
                             "invalid_request_error", "body_too_large")
            else:
                await self.app(scope, receive, send_status)
        finally:
            self.metrics.requests.labels(route, str(status[0])).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - start)


async def _reply(send, status: int, message: str, kind: str, code: str, headers=()) -> None:
    body = json.dumps(error_body(message, kind, None, code)).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})
