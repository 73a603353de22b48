"""The OpenAI wire format: request schemas, response and stream-chunk builders, and the error shape.

Only what luyen serves is modelled; fields a client may send that change nothing here (user,
logit_bias, ...) are accepted and ignored, as vLLM does; fields that would change the answer and
are not supported (n > 1, images, tools) are refused with a 400 that names them.
"""
from __future__ import annotations

import time
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

# Accepted by OpenAI, would change the answer, not done here: refused rather than silently ignored.
UNSUPPORTED = ("tools", "functions", "tool_choice", "logprobs", "top_logprobs", "best_of", "suffix", "audio")


class APIError(Exception):
    """Answered as ``{"error": {"message", "type", "param", "code"}}`` with this HTTP status."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code

    def body(self) -> dict:
        return error_body(self.message, self.type, self.param, self.code)


def error_body(message: str, type: str, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


class StreamOptions(BaseModel):
    include_usage: bool = False


class Sampling(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    seed: int | None = None
    stop: str | list[str] | None = Field(default_factory=list)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(1, ge=1, le=1, description="one choice per prompt")

    @model_validator(mode="before")
    @classmethod
    def _supported(cls, data):
        if isinstance(data, dict):
            asked = [k for k in UNSUPPORTED if data.get(k) not in (None, False, [], 0, "none")]
            fmt = data.get("response_format")
            if isinstance(fmt, dict) and fmt.get("type", "text") != "text":
                asked.append("response_format")
            if asked:
                raise ValueError(f"{', '.join(asked)} is not supported by this server")
        return data

    @field_validator("stop")
    @classmethod
    def _stops(cls, v):
        stops = [v] if isinstance(v, str) else list(v or [])
        if len(stops) > 4 or any(not s for s in stops):
            raise ValueError("stop takes at most 4 non-empty strings")
        return stops

    def limit(self, default: int) -> int:
        return self.max_completion_tokens or self.max_tokens or default


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = ""

    def plain(self) -> dict:
        text = self.content if isinstance(self.content, str) else "".join(p.text for p in self.content or [])
        return {"role": "system" if self.role == "developer" else self.role, "content": text}


class ChatRequest(Sampling):
    messages: list[Message] = Field(min_length=1)


class CompletionRequest(Sampling):
    prompt: str | list[str]
    echo: bool = False

    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else self.prompt


def parse(kind: type[BaseModel], raw: bytes) -> BaseModel:
    """Validate a JSON body; any problem is a 400 naming the first bad field."""
    try:
        return kind.model_validate_json(raw)
    except ValidationError as e:
        err = max(e.errors(), key=lambda x: len(x["loc"]))  # in a union, the deepest error says the most
        param = ".".join(str(p) for p in err["loc"] if not (isinstance(p, str) and (p == "str" or "[" in p))) or None
        msg = err["msg"].removeprefix("Value error, ") if err["type"] != "json_invalid" else "the body is not valid JSON"
        raise APIError(400, f"{param}: {msg}" if param else msg, param=param) from None


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def chat_response(rid: str, model: str, choices: list[dict], use: dict) -> dict:
    return {"id": rid, "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": c["index"], "message": {"role": "assistant", "content": c["text"]},
                         "finish_reason": c["finish_reason"], "logprobs": None} for c in choices],
            "usage": use}


def completion_response(rid: str, model: str, choices: list[dict], use: dict) -> dict:
    return {"id": rid, "object": "text_completion", "created": int(time.time()), "model": model,
            "choices": [{"index": c["index"], "text": c["text"], "finish_reason": c["finish_reason"],
                         "logprobs": None} for c in choices],
            "usage": use}


def chat_chunk(rid: str, model: str, index: int, delta: dict, finish_reason: str | None = None,
               use: dict | None = None) -> dict:
    choices = [] if use is not None else [{"index": index, "delta": delta, "finish_reason": finish_reason,
                                           "logprobs": None}]
    return {"id": rid, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
            "choices": choices, "usage": use}


def completion_chunk(rid: str, model: str, index: int, text: str, finish_reason: str | None = None,
                     use: dict | None = None) -> dict:
    choices = [] if use is not None else [{"index": index, "text": text, "finish_reason": finish_reason,
                                           "logprobs": None}]
    return {"id": rid, "object": "text_completion", "created": int(time.time()), "model": model,
            "choices": choices, "usage": use}
