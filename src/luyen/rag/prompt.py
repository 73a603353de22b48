"""Put retrieved passages into a chat, numbered, and read back which of them an answer cited.

    hits = index.search("Phí đổi vé Tiết kiệm?", k=3)
    messages = augment([{"role": "user", "content": "Phí đổi vé Tiết kiệm?"}], hits)
    cite("Phí là 300.000 VND [2].", hits)   # [{"n": 2, "source": "doi-ve.md", ...}]
    messages, hits = ground(index, chat, cfg.rag.template)   # what eval, generate, chat and serve all send
"""
from __future__ import annotations

import copy
import re

from luyen.errors import LuyenError

DEFAULT_TEMPLATE = (
    "Answer the question using only the numbered passages below. After each fact you use, cite its "
    "passage as [1], [2]... If the passages do not contain the answer, say that you do not know. "
    "Answer in the language of the question.\n\n{context}\n\nQuestion: {question}"
)
_CITATION = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")


def context(hits) -> str:
    """The numbered passages: "[1] hoan-ve.md (Hoàn vé > Hủy miễn phí trong 24 giờ)" then the text."""
    if not hits:
        return "(no passage was found)"
    blocks = []
    for n, hit in enumerate(hits, 1):
        where = f" ({hit.heading})" if hit.heading else ""
        blocks.append(f"[{n}] {hit.label}{where}\n{hit.text.strip()}")
    return "\n\n".join(blocks)


def augment(messages: list[dict], hits, template: str | None = None) -> list[dict]:
    """A copy of `messages` whose last user turn asks its question over the numbered passages.

    `template` (config rag.template) needs {context} and {question}; other braces are left as written."""
    template = template or DEFAULT_TEMPLATE
    missing = [p for p in ("{context}", "{question}") if p not in template]
    if missing:
        raise LuyenError(f"the prompt template lacks {' and '.join(missing)}", field="rag.template",
                         fix="write both placeholders, e.g. '{context}\\n\\nQuestion: {question}'")
    out = copy.deepcopy(list(messages))
    last = next((m for m in reversed(out) if m.get("role") == "user"), None)
    if last is None:
        raise LuyenError("no user message to answer from the documents", field="messages",
                         fix="end the conversation with a user turn")
    question = _text(last.get("content"))
    # replace, not str.format: a question or template may hold braces of its own
    last["content"] = template.replace("{context}", context(hits)).replace("{question}", question)
    return out


def ground(index, messages: list[dict], template: str | None = None) -> tuple[list[dict], list]:
    """The one RAG grounding every caller shares (eval, generate, chat, serve): the index's best passages
    for the last user turn, put into that turn by `augment`. `template` is config rag.template; unset,
    the template the index was built with, else DEFAULT_TEMPLATE. A chat with no question is left as is."""
    last = next((m for m in reversed(messages) if m.get("role") == "user"), None)
    question = _text(last.get("content")) if last else ""
    if not question.strip():
        return list(messages), []
    hits = index.search(question)
    return augment(messages, hits, template or index.settings.get("template")), hits


def _text(content) -> str:
    """A message's text: a string, or OpenAI content parts [{"type": "text", "text": ...}]."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return "" if content is None else str(content)


def given(hits) -> list[dict]:
    """Every passage the prompt holds, numbered as `context` numbers them: what a reader needs to check
    an answer (n, label, source, position, heading)."""
    return [_about(n, hit) for n, hit in enumerate(hits, 1)]


def _about(n: int, hit) -> dict:
    return {"n": n, "label": hit.label, "source": hit.source, "position": hit.position, "heading": hit.heading}


def cite(answer: str, hits) -> list[dict]:
    """The passages `answer` cites as [n] (also [1, 2]), once each in order of first citation, as
    `given` describes them plus their text; numbers with no passage behind them are left out."""
    seen: list[int] = []
    for m in _CITATION.finditer(answer or ""):
        for n in map(int, re.split(r"\s*[,;]\s*", m.group(1))):
            if 1 <= n <= len(hits) and n not in seen:
                seen.append(n)
    return [{**_about(n, hits[n - 1]), "text": hits[n - 1].text} for n in seen]
