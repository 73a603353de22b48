"""Detect a row's format and map it, once, into one of seven typed record kinds.

Downstream code sees only these kinds, never the user's column names:

    chat        {"kind": "chat", "messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}
    text        {"kind": "text", "text": str}
    pair        {"kind": "pair", "source": str, "target": str}                 # document -> summary
    labelled    {"kind": "labelled", "text": str, "label": str}
    extractive  {"kind": "extractive", "context": str, "question": str, "answers": [{"text": str, "start": int}]}
    preference  {"kind": "preference", "prompt": [messages], "chosen": [messages], "rejected": [messages]}
    feedback    {"kind": "feedback", "prompt": [messages], "completion": [messages], "label": bool}

Formats (detected from keys): qa (question/answer), alpaca (instruction[/input]/output|response),
io (input/output[/context]), openai (messages), sharegpt (conversations with from/value),
summary (document|article|dialogue / summary|highlights), squad (flat or nested SQuAD v1/v2),
labelled (text|sentence + label), text (text|content); preference data (preference.py): preference
(prompt/chosen/rejected), hh (chosen/rejected transcripts), openai_dpo (input/preferred_output/
non_preferred_output), kto (prompt/completion/label).

    to_records({"question": "Hà Nội ở đâu?", "answer": "Miền Bắc."}, columns={})
    -> ("qa", [{"kind": "chat", "messages": [{"role": "user", ...}, {"role": "assistant", ...}]}])
"""
from __future__ import annotations

import math
from typing import Any

KIND_OF = {"qa": "chat", "alpaca": "chat", "io": "chat", "openai": "chat", "sharegpt": "chat", "summary": "pair",
           "squad": "extractive", "labelled": "labelled", "text": "text", "preference": "preference",
           "openai_dpo": "preference", "hh": "preference", "kto": "feedback"}
ROLES = {"system": "system", "developer": "system", "user": "user", "human": "user", "assistant": "assistant",
         "gpt": "assistant", "model": "assistant", "bot": "assistant", "chatgpt": "assistant"}
PAIR_KINDS = ("preference", "feedback")  # preference.py: prompt + answer sides
_SOURCE_KEYS, _TARGET_KEYS = ("document", "article", "dialogue"), ("summary", "highlights")


class RecordError(ValueError):
    """A problem with one record; the pipeline adds file and line, then fails or skips it."""

    def __init__(self, field: str | None, message: str, fix: str, problem: str = "invalid"):
        super().__init__(message)
        self.field, self.message, self.fix, self.problem = field, message, fix, problem


def detect(row: dict) -> str | None:
    keys = row.keys()
    if "chosen" in keys and "rejected" in keys:
        return "preference" if "prompt" in keys else "hh"
    if "preferred_output" in keys or "non_preferred_output" in keys:
        return "openai_dpo"
    if "prompt" in keys and "completion" in keys and "label" in keys:
        return "kto"
    if "messages" in keys:
        return "openai"
    if "conversations" in keys:
        return "sharegpt"
    if "paragraphs" in keys or ("context" in keys and "question" in keys and "answers" in keys):
        return "squad"
    if "question" in keys and "answer" in keys:
        return "qa"
    if "instruction" in keys and ("output" in keys or "response" in keys):
        return "alpaca"
    if "input" in keys and "output" in keys:
        return "io"
    if any(k in keys for k in _SOURCE_KEYS) and any(k in keys for k in _TARGET_KEYS):
        return "summary"
    if ("text" in keys or "sentence" in keys) and "label" in keys:
        return "labelled"
    if "text" in keys or "content" in keys:
        return "text"
    return None


def to_records(obj: Any, columns: dict[str, str], forced: str = "auto") -> tuple[str, list[dict]]:
    """Map one raw row to (format, typed records). Raises RecordError naming the field."""
    if not isinstance(obj, dict):
        raise RecordError(None, f"expected a JSON object (record), got {_type_name(obj)}",
                          "write one object per record, e.g. {\"question\": ..., \"answer\": ...}")
    row = {columns.get(k, k): v for k, v in obj.items()} if columns else obj
    fmt = detect(row) if forced == "auto" else forced
    if fmt is None:
        _raise_undetected(row)
    return fmt, (_MAPPERS.get(fmt) or _preference_mapper(fmt))(row)


def _preference_mapper(fmt: str):
    from luyen.data.preference import MAPPERS  # imports this module, so not at the top
    _MAPPERS.update(MAPPERS)
    return MAPPERS[fmt]


# For a row no format matches: the format it most looks like, and the fields that one needs.
_REQUIRED = {"qa": ("question", "answer"), "alpaca": ("instruction", "output"), "io": ("input", "output"),
             "summary": ("document", "summary"), "labelled": ("text", "label"),
             "preference": ("prompt", "chosen", "rejected"), "kto": ("prompt", "completion", "label"),
             "openai_dpo": ("input", "preferred_output", "non_preferred_output")}


def _raise_undetected(row: dict) -> None:
    keys = set(map(str, row))
    best = max(_REQUIRED, key=lambda f: len(keys & set(_REQUIRED[f])))
    have = keys & set(_REQUIRED[best])
    if have:
        missing = next(k for k in _REQUIRED[best] if k not in keys)
        raise RecordError(missing, f"missing (the record looks like {'/'.join(_REQUIRED[best])})",
                          f"add '{missing}' to every record or drop this one", "missing_field")
    shown = ", ".join(sorted(keys)[:8]) or "none"
    raise RecordError(None, f"cannot tell the format from the keys ({shown})",
                      "use question/answer, instruction/output, messages, text, text/label, document/summary, "
                      "prompt/chosen/rejected, prompt/completion/label, "
                      "or map your columns with data.columns (e.g. data.columns.cau_hoi=question)", "unknown_format")


def _text(row: dict, key: str, optional: bool = False, allow_empty: bool = False) -> str:
    if key not in row:
        if optional:
            return ""
        raise RecordError(key, "missing", f"add a '{key}' field to every record", "missing_field")
    value = row[key]
    if value is None or (isinstance(value, float) and math.isnan(value)):
        if optional:
            return ""
        raise RecordError(key, "is null/NaN", f"give '{key}' a text value or drop the record", "null")
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise RecordError(key, f"expected text, got {_type_name(value)}", f"make '{key}' a string", "wrong_type")
    text = value if isinstance(value, str) else str(value)
    if not text.strip() and not (optional or allow_empty):
        raise RecordError(key, "is empty", f"give '{key}' some text or drop the record", "empty")
    return text


def _first(row: dict, keys: tuple[str, ...]) -> str:
    return next(k for k in keys if k in row)


def _chat(user: str, assistant: str) -> list[dict]:
    return [{"kind": "chat", "messages": [{"role": "user", "content": user},
                                          {"role": "assistant", "content": assistant}]}]


def _join(*parts: str) -> str:
    return "\n\n".join(p for p in parts if p.strip())


def _qa(row: dict) -> list[dict]:
    return _chat(_join(_text(row, "context", optional=True), _text(row, "question")), _text(row, "answer"))


def _alpaca(row: dict) -> list[dict]:
    out = _first(row, ("output", "response"))
    extra = _text(row, "input", optional=True) or _text(row, "context", optional=True)
    return _chat(_join(_text(row, "instruction"), extra), _text(row, out))


def _io(row: dict) -> list[dict]:
    return _chat(_join(_text(row, "context", optional=True), _text(row, "input")), _text(row, "output"))


def _messages(row: dict, key: str, role_key: str, text_key: str) -> list[dict]:
    turns = row[key]
    if not isinstance(turns, list) or not turns:
        raise RecordError(key, f"expected a non-empty list of turns, got {_type_name(turns)}",
                          f"write {key}: [{{\"{role_key}\": ..., \"{text_key}\": ...}}, ...]", "wrong_type")
    messages = []
    for i, turn in enumerate(turns):
        field = f"{key}[{i}]"
        if not isinstance(turn, dict):
            raise RecordError(field, f"expected an object, got {_type_name(turn)}", f"each turn needs {role_key} and {text_key}", "wrong_type")
        raw_role = turn.get(role_key)
        role = ROLES.get(str(raw_role).lower()) if isinstance(raw_role, str) else None
        if role is None:
            raise RecordError(f"{field}.{role_key}", f"unknown role {raw_role!r}",
                              "use system, user or assistant (ShareGPT: system, human, gpt)", "unknown_role")
        content = turn.get(text_key)
        if not isinstance(content, str) or not content.strip():
            raise RecordError(f"{field}.{text_key}", "empty content" if isinstance(content, str) or content is None
                              else f"expected text, got {_type_name(content)}", "give every turn some text", "empty_content")
        messages.append({"role": role, "content": content})
    _check_roles(messages, key)
    return [{"kind": "chat", "messages": messages}]


def _check_roles(messages: list[dict], key: str) -> None:
    roles = [m["role"] for m in messages]
    if "assistant" not in roles:
        raise RecordError(key, "no assistant turn, so nothing to learn from", "add the assistant's reply", "no_assistant")
    body = roles[1:] if roles[0] == "system" else roles
    if "system" in body:
        raise RecordError(key, "a system turn after the first turn", "put the system prompt first", "misplaced_system")
    for i, (a, b) in enumerate(zip(body, body[1:])):
        if a == b:
            raise RecordError(key, f"two {a} turns in a row (turns {i + 1} and {i + 2})",
                              "alternate user and assistant turns (merge consecutive ones)", "not_alternating")
    if body[0] != "user":
        raise RecordError(key, "the conversation starts with the assistant", "start with a user turn", "starts_with_assistant")


def _openai(row: dict) -> list[dict]:
    return _messages(row, "messages", "role", "content")


def _sharegpt(row: dict) -> list[dict]:
    return _messages(row, "conversations", "from", "value")


def _summary(row: dict) -> list[dict]:
    return [{"kind": "pair", "source": _text(row, _first(row, _SOURCE_KEYS)),
             "target": _text(row, _first(row, _TARGET_KEYS))}]


def _labelled(row: dict) -> list[dict]:
    return [{"kind": "labelled", "text": _text(row, _first(row, ("text", "sentence"))), "label": _text(row, "label").strip()}]


def _plain(row: dict) -> list[dict]:
    return [{"kind": "text", "text": _text(row, _first(row, ("text", "content")))}]


def _squad(row: dict) -> list[dict]:
    if "paragraphs" in row:  # nested SQuAD: one article -> many questions
        paragraphs = row["paragraphs"]
        if not isinstance(paragraphs, list):
            raise RecordError("paragraphs", f"expected a list, got {_type_name(paragraphs)}", "use SQuAD's layout", "wrong_type")
        out = []
        for i, para in enumerate(paragraphs):
            if not isinstance(para, dict) or not isinstance(para.get("qas"), list):
                raise RecordError(f"paragraphs[{i}]", "expected {context, qas: [...]}", "use SQuAD's layout", "wrong_type")
            for j, qa in enumerate(para["qas"]):
                if not isinstance(qa, dict):
                    raise RecordError(f"paragraphs[{i}].qas[{j}]", "expected an object", "use SQuAD's layout", "wrong_type")
                out += _squad_flat({**qa, "context": para.get("context")}, f"paragraphs[{i}].qas[{j}].")
        return out
    return _squad_flat(row, "")


def _squad_flat(row: dict, prefix: str) -> list[dict]:
    try:
        context, question = _text(row, "context"), _text(row, "question")
    except RecordError as e:
        raise RecordError(prefix + (e.field or ""), e.message, e.fix, e.problem) from None
    answers = row.get("answers")
    if isinstance(answers, dict):  # Hugging Face layout: {"text": [...], "answer_start": [...]}
        texts, starts = answers.get("text") or [], answers.get("answer_start") or []
        answers = [{"text": t, "answer_start": s} for t, s in zip(texts, starts)]
    if not isinstance(answers, list):
        raise RecordError(prefix + "answers", f"expected a list, got {_type_name(answers)}", "use SQuAD's answers layout", "wrong_type")
    parsed = []
    for k, ans in enumerate(answers):
        text = ans.get("text") if isinstance(ans, dict) else None
        start = ans.get("answer_start", -1) if isinstance(ans, dict) else -1
        if not isinstance(text, str) or not text.strip() or not isinstance(start, int):
            raise RecordError(f"{prefix}answers[{k}]", "each answer needs text and an integer answer_start",
                              "fix the answer or drop the question", "wrong_type")
        if context[start:start + len(text)] != text:
            found = context.find(text)
            if found < 0:
                raise RecordError(f"{prefix}answers[{k}]", "the answer text does not occur in the context",
                                  "fix the answer span", "bad_span")
            start = found
        parsed.append({"text": text, "start": start})
    if not parsed and not row.get("is_impossible", True if not answers else False):
        raise RecordError(prefix + "answers", "no answers and not marked is_impossible", "add an answer", "missing_field")
    return [{"kind": "extractive", "context": context, "question": question, "answers": parsed}]


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "text", bool: "true/false", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


_MAPPERS = {"qa": _qa, "alpaca": _alpaca, "io": _io, "openai": _openai, "sharegpt": _sharegpt,
            "summary": _summary, "labelled": _labelled, "text": _plain, "squad": _squad}


def map_texts(rec: dict, fn) -> None:
    """Apply fn to every text field of a typed record, in place; answer spans are re-anchored."""
    kind = rec["kind"]
    if kind == "chat":
        for m in rec["messages"]:
            m["content"] = fn(m["content"])
    elif kind in PAIR_KINDS:
        for m in _messages_of(rec):
            m["content"] = fn(m["content"])
    elif kind == "text" or kind == "labelled":
        rec["text"] = fn(rec["text"])
    elif kind == "pair":
        rec["source"], rec["target"] = fn(rec["source"]), fn(rec["target"])
    else:
        rec["context"], rec["question"] = fn(rec["context"]), fn(rec["question"])
        for ans in rec["answers"]:
            ans["text"] = fn(ans["text"])
            ans["start"] = _reanchor(rec["context"], ans["text"], ans["start"])


def _reanchor(context: str, text: str, old: int) -> int:
    """Cleaning can shift offsets; take the occurrence nearest to the original one (-1: gone)."""
    starts, i = [], context.find(text)
    while i >= 0 and len(starts) < 64:
        starts.append(i)
        i = context.find(text, i + 1)
    return min(starts, key=lambda s: abs(s - old)) if starts else -1


def prompt_text(rec: dict) -> str:
    """What the model is asked (for leakage checks): every non-assistant text of the record."""
    chat = rec["prompt"] if rec["kind"] in PAIR_KINDS else as_chat(rec)
    if chat is None:
        return rec["text"]
    return "\n".join(m["content"] for m in chat if m["role"] != "assistant")


def record_texts(rec: dict) -> list[str]:
    """Every text field of a record, in order (for cleaning, scrubbing and duplicate keys)."""
    kind = rec["kind"]
    if kind == "chat":
        return [m["content"] for m in rec["messages"]]
    if kind in PAIR_KINDS:
        return [m["content"] for m in _messages_of(rec)]
    if kind == "text":
        return [rec["text"]]
    if kind == "pair":
        return [rec["source"], rec["target"]]
    if kind == "labelled":
        return [rec["text"]]
    return [rec["context"], rec["question"]] + [a["text"] for a in rec["answers"]]


def as_chat(rec: dict) -> list[dict] | None:
    """The chat a causal LM trains on for this record (None for raw text)."""
    kind = rec["kind"]
    if kind == "chat":
        return rec["messages"]
    if kind == "pair":
        return [{"role": "user", "content": rec["source"]}, {"role": "assistant", "content": rec["target"]}]
    if kind == "preference":
        return rec["prompt"] + rec["chosen"]
    if kind == "feedback":
        return rec["prompt"] + rec["completion"]
    if kind == "labelled":
        return [{"role": "user", "content": rec["text"]}, {"role": "assistant", "content": rec["label"]}]
    if kind == "extractive":
        answer = rec["answers"][0]["text"] if rec["answers"] else "(no answer in the context)"
        return [{"role": "user", "content": f"{rec['context']}\n\n{rec['question']}"},
                {"role": "assistant", "content": answer}]
    return None


def _messages_of(rec: dict) -> list[dict]:
    """Every message of a preference or feedback record, prompt first."""
    return rec["prompt"] + (rec["chosen"] + rec["rejected"] if rec["kind"] == "preference" else rec["completion"])
