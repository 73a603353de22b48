"""Batches of prompts and chats through the engine: what `luyen generate --input FILE` runs.

    requests = read_requests(Path("prompts.jsonl"))     # every line checked before the model loads
    results = answer(engine, requests, cfg)              # [{"id", "text", "tokens", ...}] in input order

A line is {"prompt": text} or {"messages": [{role, content}]}, with an optional "id". Chats go
through the model's chat template; plain prompts are continued as text unless `cfg.chat` (or a
retrieval index, which always answers through the template) says otherwise. With an index, each
question is grounded by `luyen.rag.ground`, the grounding eval, chat and serve use too.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from luyen.config import GenerateConfig
from luyen.errors import LuyenError

ROLES = ("system", "user", "assistant")
_FIX = 'write {"prompt": "text"} or {"messages": [{"role": "user", "content": "text"}]}'


def as_messages(prompt: str, system: str | None) -> list[dict]:
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]


def read_requests(path: Path) -> list[dict]:
    """Every line checked before the model loads: {"prompt": str} or {"messages": [{role, content}]}, optional id."""
    if not path.is_file():
        raise LuyenError("no such file", file=str(path), fix="pass a JSONL file of prompts")
    requests = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                requests.append(parse_request(line, str(path), n))
    if not requests:
        raise LuyenError("no prompts in this file", file=str(path), fix='write one {"prompt": "..."} per line')
    return requests


def parse_request(line: str, file: str, n: int) -> dict:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise LuyenError(f"not valid JSON ({e.msg} at column {e.colno})", file=file, line=n, fix=_FIX) from None
    if not isinstance(obj, dict) or ("prompt" in obj) == ("messages" in obj):
        raise LuyenError("each line needs exactly one of 'prompt' or 'messages'", file=file, line=n, fix=_FIX)
    if "prompt" in obj and not (isinstance(obj["prompt"], str) and obj["prompt"].strip()):
        raise LuyenError("the prompt must be non-empty text", file=file, line=n, field="prompt", fix=_FIX)
    if "messages" in obj:
        msgs = obj["messages"]
        bad = not isinstance(msgs, list) or not msgs or any(
            not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str) for m in msgs)
        if bad:
            raise LuyenError(f"messages must be a non-empty list of {{role, content}} with role one of {ROLES}",
                             file=file, line=n, field="messages", fix=_FIX)
    return {"id": obj.get("id", n), **{k: obj[k] for k in ("prompt", "messages") if k in obj}}


def check_options(g: GenerateConfig, out: str | None, index: str | None) -> None:
    """Refuse option combinations `luyen generate` cannot honour, before the model loads."""
    if (g.prompt is None) == (g.input is None):
        raise LuyenError("give either --prompt TEXT or --input FILE.jsonl", fix="e.g. luyen generate --prompt 'Học máy là gì?'")
    if g.input is not None and out is None:
        raise LuyenError("--input needs --out for the answers", fix="add --out answers.jsonl")
    if g.input is not None and Path(out).resolve() == Path(g.input).resolve():
        raise LuyenError("--out would overwrite the input file", file=out, fix="write the answers to another file")
    if index is not None and g.chat is False:
        raise LuyenError("--rag answers through the chat template", field="--no-chat", fix="leave out --no-chat")


def chat_templated(engine, g: GenerateConfig, index=None) -> bool:
    """Whether prompts go through the chat template: always with retrieval, else as `g.chat` says, else
    when the model has a template of its own; a system message needs it."""
    templated = index is not None or (bool(engine.tok.chat_template) if g.chat is None else g.chat)
    if g.system and not templated:
        raise LuyenError("--system needs the chat template, and this model continues plain text", field="--system",
                         fix="add --chat, or leave out --system")
    return templated


def answer_one(engine, g: GenerateConfig, templated: bool, index=None, template: str | None = None):
    """(the completion of `g.prompt`, the passages it was given)."""
    from luyen.rag import ground
    messages = as_messages(g.prompt, g.system)
    messages, hits = ground(index, messages, template) if index is not None else (messages, [])
    return (engine.chat(messages, g) if templated else engine.generate(g.prompt, g)), hits


def write_answers(path: Path, results: list[dict]) -> None:
    from luyen.manifest import atomic_write
    atomic_write(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in results))


def sources(answer: str, hits) -> list[dict]:
    """The passages the answer cites as [n]."""
    from luyen.rag import cite
    return [{k: c[k] for k in ("n", "label", "source", "position")} for c in cite(answer, hits)]


def answer(engine, requests: list[dict], cfg: GenerateConfig, templated: bool, index=None, template: str | None = None,
           advance: Callable[[int], None] = lambda n: None) -> list[dict]:
    """Chats and plain prompts generated in batches of similar length (less padding); results in input
    order, each {id, text, tokens, prompt_tokens, finish_reason} (+ sources and retrieved with an index)."""
    from luyen.rag import given, ground
    chats = [i for i, r in enumerate(requests) if "messages" in r or templated]
    plain = sorted(set(range(len(requests))) - set(chats))
    out: list[dict | None] = [None] * len(requests)
    for group, is_chat in ((chats, True), (plain, False)):
        inputs = {i: (requests[i].get("messages") or as_messages(requests[i]["prompt"], cfg.system)) if is_chat
                  else requests[i]["prompt"] for i in group}
        hits = {}
        for i in group if index is not None else []:
            inputs[i], hits[i] = ground(index, inputs[i], template)
        order = sorted(group, key=lambda i: len(json.dumps(inputs[i], ensure_ascii=False)))
        for start in range(0, len(order), cfg.batch_size):
            chunk = order[start:start + cfg.batch_size]
            batch = [inputs[i] for i in chunk]
            done = engine.chat(batch, cfg) if is_chat else engine.generate(batch, cfg)
            for i, c in zip(chunk, done):
                out[i] = {"id": requests[i]["id"], "text": c.text, "tokens": c.completion_tokens,
                          "prompt_tokens": c.prompt_tokens, "finish_reason": c.finish_reason}
                if index is not None:
                    out[i]["sources"], out[i]["retrieved"] = sources(c.text, hits[i]), given(hits[i])
            advance(len(chunk))
    return out
