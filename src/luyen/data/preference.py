"""Preference data: four formats mapped into two record kinds, and their per-record columns.

    preference  {"kind": "preference", "prompt": [messages], "chosen": [messages], "rejected": [messages]}
    feedback    {"kind": "feedback", "prompt": [messages], "completion": [messages], "label": true|false}

`prompt` is the conversation up to and including the last user turn (a system turn may come first);
`chosen`, `rejected` and `completion` are the one assistant turn that follows. Formats:

    preference  (TRL) prompt/chosen/rejected[/system]: strings, or message lists; a side that holds the
                whole chat (the prompt's turns, then the answer) loses that prefix; no prompt: as hh
    openai_dpo  input.messages / preferred_output / non_preferred_output (OpenAI DPO fine-tuning)
    hh          chosen/rejected, each a whole transcript ("\\n\\nHuman: ...\\n\\nAssistant: ..." or
                messages); the shared turns up to the last shared user turn are the prompt
    kto         prompt/completion/label[/system], label a JSON true or false

    to_records({"prompt": "2+2?", "chosen": "4", "rejected": "5"}, {})
    -> ("preference", [{"kind": "preference", "prompt": [{"role": "user", "content": "2+2?"}],
                        "chosen": [{"role": "assistant", "content": "4"}], "rejected": [...]}])

`PairColumns` gathers what the data stage needs beyond a chat's columns: each answer's tokens, the
rejected side's length, KTO labels, and near-duplicate prompt clusters (several pairs often share
one prompt, and such prompts must never cross splits).
"""
from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from luyen.data.dedup import Deduper, key_hashes
from luyen.data.formats import PAIR_KINDS, ROLES, RecordError, _type_name, prompt_text
from luyen.data.split import merge_groups

PREFERENCE_FORMATS = ("preference", "openai_dpo", "hh")
_HH_TURN = re.compile(r"(?:^|\n\n)(Human|Assistant):[ \t]?")
_MSG = "[{\"role\": \"assistant\", \"content\": ...}]"


class _Turn:
    """One parsed message and where it came from, for error fields."""
    __slots__ = ("role", "content", "at", "what")

    def __init__(self, role: str, content: str, at: str, what: str = ""):
        self.role, self.content, self.at, self.what = role, content, at, what  # at: "chosen" or "chosen[2]"

    def field(self, part: str) -> str:
        return f"{self.at}.{part}" if self.at.endswith("]") else self.at

    def same(self, other: _Turn) -> bool:
        return self.role == other.role and self.content.strip() == other.content.strip()


def _need(row: dict, key: str) -> Any:
    if key not in row:
        raise RecordError(key, "missing", f"add '{key}' to every record", "missing_field")
    value = row[key]
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise RecordError(key, "is null/NaN", f"give '{key}' a value or drop the record", "null")
    return value


def _turns(value: Any, key: str, role: str | None) -> list[_Turn]:
    """A string (one message of `role`; an HH transcript when role is None) or a message list."""
    if isinstance(value, str):
        return [_Turn(role, value, key)] if role else _hh_turns(value, key)
    if not isinstance(value, list):
        raise RecordError(key, f"expected text or a list of messages, got {_type_name(value)}",
                          f"write '{key}' as text or as [{{\"role\": ..., \"content\": ...}}, ...]", "wrong_type")
    out = []
    for i, m in enumerate(value):
        at = f"{key}[{i}]"
        if not isinstance(m, dict):
            raise RecordError(at, f"expected a message object, got {_type_name(m)}",
                              "write each message as {\"role\": ..., \"content\": ...}", "wrong_type")
        raw = m.get("role", m.get("from"))
        r = ROLES.get(raw.lower()) if isinstance(raw, str) else None
        if r is None:
            raise RecordError(f"{at}.role", f"unknown role {raw!r}", "use system, user or assistant", "unknown_role")
        content = m.get("content", m.get("value"))
        if not isinstance(content, str):
            raise RecordError(f"{at}.content", "empty content" if content is None else
                              f"expected text, got {_type_name(content)}", "give every message its text", "empty_content")
        out.append(_Turn(r, content, at))
    return out


def _hh_turns(text: str, key: str) -> list[_Turn]:
    parts = _HH_TURN.split(text.lstrip())
    if len(parts) < 3 or parts[0].strip():
        raise RecordError(key, "is not an HH transcript (\"\\n\\nHuman: ...\\n\\nAssistant: ...\")" if len(parts) < 3
                          else "has text before the first 'Human:' turn",
                          "write the whole chat as \"\\n\\nHuman: ...\\n\\nAssistant: ...\", or use "
                          "prompt/chosen/rejected", "bad_transcript")
    return [_Turn("user" if who == "Human" else "assistant", content.strip(), key, f" (turn {i + 1}, {who})")
            for i, (who, content) in enumerate(zip(parts[1::2], parts[2::2]))]


def _prompt(turns: list[_Turn], key: str) -> list[dict]:
    """The prompt's messages: [system], user, assistant, ..., user."""
    if not turns:
        raise RecordError(key, "is empty", f"give '{key}' the user's message", "empty")
    for t in turns:
        if not t.content.strip():
            raise RecordError(t.field("content"), f"empty content{t.what}", "give every message some text", "empty_content")
    roles = [t.role for t in turns]
    body = roles[1:] if roles[0] == "system" else roles
    problem = (("no user turn", "no_user") if not body else
               ("a system turn after the first turn", "misplaced_system") if "system" in body else
               ("starts with the assistant", "starts_with_assistant") if body[0] != "user" else
               ("has two turns of one role in a row", "not_alternating") if any(a == b for a, b in zip(body, body[1:])) else
               ("does not end with a user turn", "prompt_not_user_last") if body[-1] != "user" else None)
    if problem:
        raise RecordError(key, f"the prompt {problem[0]}", "make the prompt [system], user, assistant, ..., user: "
                          "the conversation up to the message the answers reply to", problem[1])
    return [{"role": t.role, "content": t.content} for t in turns]


def _answer(turns: list[_Turn], key: str) -> list[dict]:
    """One answer side: exactly one non-empty assistant message."""
    if not turns:
        raise RecordError(key, "is empty (no answer after the prompt)", f"give '{key}' the assistant's answer", "empty_side")
    for t in turns:
        if t.role != "assistant":
            raise RecordError(t.field("role"), f"the answer holds a {t.role} turn{t.what}; answers are assistant "
                              "turns only", "put the conversation up to the last user turn in the prompt", f"{t.role}_in_answer")
        if not t.content.strip():
            raise RecordError(t.field("content"), f"is empty{t.what}", f"give '{key}' the assistant's answer", "empty_side")
    if len(turns) > 1:
        raise RecordError(key, f"has {len(turns)} assistant turns in a row", "merge them into one answer", "not_alternating")
    return [{"role": "assistant", "content": turns[0].content}]


def _strip_prompt(prompts: list[list[_Turn]], side: list[_Turn], key: str) -> list[_Turn]:
    """A side holding the whole chat (any non-assistant turn) must start with the prompt's turns."""
    if all(t.role == "assistant" for t in side):
        return side
    for p in prompts:
        if len(side) >= len(p) and all(a.same(b) for a, b in zip(p, side)):
            return side[len(p):]
    raise RecordError(key, "holds a conversation whose first turns differ from 'prompt'",
                      f"make '{key}' the answer only, or the prompt's turns followed by the answer", "prompt_mismatch")


def _system_and_prompt(row: dict) -> tuple[list[_Turn], list[list[_Turn]]]:
    """The prompt with the optional `system` field first, and the prefixes a whole-chat side may repeat."""
    prompt = _turns(_need(row, "prompt"), "prompt", "user")
    if row.get("system") is None or row.get("system") == "":
        return prompt, [prompt]
    system = row["system"]
    if not isinstance(system, str):
        raise RecordError("system", f"expected text, got {_type_name(system)}", "make 'system' a string", "wrong_type")
    if prompt and prompt[0].role == "system":
        raise RecordError("system", "given twice: as a field and as the prompt's first turn", "keep one", "misplaced_system")
    full = [_Turn("system", system, "system")] + prompt
    return full, [full, prompt]


def _trl(row: dict) -> list[dict]:
    if "prompt" not in row:  # TRL's implicit prompt: chosen/rejected are whole chats
        return _hh(row)
    full, prefixes = _system_and_prompt(row)
    prompt = _prompt(full, "prompt")
    sides = [_answer(_strip_prompt(prefixes, _turns(_need(row, k), k, "assistant"), k), k) for k in ("chosen", "rejected")]
    return [{"kind": "preference", "prompt": prompt, "chosen": sides[0], "rejected": sides[1]}]


def _openai_dpo(row: dict) -> list[dict]:
    inp = _need(row, "input")
    if not isinstance(inp, dict) or not isinstance(inp.get("messages"), list):
        raise RecordError("input" if not isinstance(inp, dict) else "input.messages",
                          f"expected {{\"messages\": [...]}}, got {_type_name(inp)}" if not isinstance(inp, dict) else
                          f"expected a list of messages, got {_type_name(inp.get('messages'))}",
                          "write input: {\"messages\": [{\"role\": \"user\", \"content\": ...}]}", "wrong_type")
    prompt = _prompt(_turns(inp["messages"], "input.messages", None), "input.messages")
    sides = []
    for key in ("preferred_output", "non_preferred_output"):
        value = _need(row, key)
        if not isinstance(value, list):
            raise RecordError(key, f"expected a list of messages, got {_type_name(value)}", f"write {key}: {_MSG}", "wrong_type")
        sides.append(_answer(_turns(value, key, None), key))
    return [{"kind": "preference", "prompt": prompt, "chosen": sides[0], "rejected": sides[1]}]


def _hh(row: dict) -> list[dict]:
    chosen = _turns(_need(row, "chosen"), "chosen", None)
    rejected = _turns(_need(row, "rejected"), "rejected", None)
    shared = 0
    while shared < min(len(chosen), len(rejected)) and chosen[shared].same(rejected[shared]):
        shared += 1
    users = [i for i in range(shared) if chosen[i].role == "user"]
    if not users:
        raise RecordError("rejected", "shares no opening user turn with 'chosen', so there is no common prompt",
                          "both transcripts must start with the same Human turn(s) and differ only in the answer",
                          "no_shared_prompt")
    k = users[-1] + 1
    return [{"kind": "preference", "prompt": _prompt(chosen[:k], "chosen"),
             "chosen": _answer(chosen[k:], "chosen"), "rejected": _answer(rejected[k:], "rejected")}]


def _kto(row: dict) -> list[dict]:
    label = _need(row, "label")
    if not isinstance(label, bool):
        raise RecordError("label", f"expected true or false, got {_type_name(label)} {label!r}",
                          "write label as a JSON boolean without quotes: true (a good completion) or false (a bad one)",
                          "wrong_type")
    full, prefixes = _system_and_prompt(row)
    prompt = _prompt(full, "prompt")
    completion = _answer(_strip_prompt(prefixes, _turns(_need(row, "completion"), "completion", "assistant"),
                                       "completion"), "completion")
    return [{"kind": "feedback", "prompt": prompt, "completion": completion, "label": label}]


MAPPERS = {"preference": _trl, "openai_dpo": _openai_dpo, "hh": _hh, "kto": _kto}


def answers(rec: dict) -> list[list[dict]]:
    """The answer sides of a pair-kind record: [chosen, rejected] or [completion]."""
    return [rec["chosen"], rec["rejected"]] if rec["kind"] == "preference" else [rec["completion"]]


def is_empty(rec: dict) -> bool:
    """After cleaning: a non-system message became empty."""
    return any(not m["content"] for side in [rec["prompt"], *answers(rec)] for m in side if m["role"] != "system")


class PairColumns:
    """Per-record columns of preference/feedback candidates, gathered part by part like the pipeline's.

    `process` is a pure function of a chunk (worker processes run it), `merge` stores parts in order,
    `finish` gives full-length columns (none when the data holds no pair kind):
    total_rejected (prompt + rejected through the template; `total` elsewhere), answer_a/answer_b
    (tokens of the chosen or completion / rejected answer), feedback_label (1, 0; -1 elsewhere)."""

    def __init__(self, threshold: float, num_perm: int, seed: int):
        self._args = dict(near=True, threshold=threshold, num_perm=num_perm, seed=seed)
        self._prompts: Deduper | None = None  # near-duplicate prompts, built on first use (8 MB of scratch)
        self._parts: list[dict] = []
        self._result = None

    @property
    def prompts(self) -> Deduper:
        if self._prompts is None:
            self._prompts = Deduper(**self._args)
        return self._prompts

    def process(self, records: list[dict], counter, loss: np.ndarray) -> dict | None:
        """The chunk's pair columns; sets `loss` of pair records to their first answer's target tokens."""
        idx = [i for i, r in enumerate(records) if r["kind"] in PAIR_KINDS]
        if not idx:
            return None
        recs = [records[i] for i in idx]
        sides = [answers(r) for r in recs]
        counts = counter.count([s[0][0]["content"] for s in sides] + [s[1][0]["content"] for s in sides if len(s) > 1])
        a = np.array(counts[:len(recs)], np.int32)
        b = np.zeros(len(recs), np.int32)
        pref = np.array([len(s) > 1 for s in sides], bool)
        b[pref] = counts[len(recs):]
        loss[idx] = a + counter.marker_len
        label = np.array([int(r["label"]) if r["kind"] == "feedback" else -1 for r in recs], np.int8)
        keys = key_hashes(["\n".join(m["content"] for m in s[0]) for s in sides]).view(np.uint64) * np.uint64(3) + \
            key_hashes(["\n".join(m["content"] for m in s[-1]) for s in sides]).view(np.uint64)
        return {"idx": np.array(idx, np.int64), "a": a, "b": b, "pref": pref, "label": label,
                "answers": keys, "sig": self.prompts.signatures([prompt_text(r) for r in recs])}

    def merge(self, part: dict | None, offset: int) -> None:
        if part is not None:
            self.prompts.extend(*part.pop("sig"))
            self._parts.append({**part, "idx": part["idx"] + offset})

    def finish(self, total: np.ndarray) -> dict[str, np.ndarray]:
        if not self._parts:
            return {}
        n, p = len(total), {k: np.concatenate([q[k] for q in self._parts]) for k in self._parts[0]}
        rows = p["idx"]
        cols = {"total_rejected": total.copy(), "answer_a": np.zeros(n, np.int32), "answer_b": np.zeros(n, np.int32),
                "feedback_label": np.full(n, -1, np.int8), "answers": np.zeros(n, np.uint64)}
        cols["total_rejected"][rows[p["pref"]]] += p["b"][p["pref"]] - p["a"][p["pref"]]  # same roles: same overhead
        cols["answer_a"][rows], cols["answer_b"][rows] = p["a"], p["b"]
        cols["feedback_label"][rows], cols["answers"][rows] = p["label"], p["answers"]
        cluster = np.arange(n)
        cluster[rows] = rows[self.prompts.finish().cluster]
        self._result = (rows, cols["answers"], cluster)
        return cols

    def near_ok(self, cluster: np.ndarray) -> np.ndarray | bool:
        """Which near duplicates may go: a pair only when an earlier record of its cluster has the same
        answers (up to case and punctuation), so pairs that share a prompt but not both answers stay."""
        if self._result is None:
            return True
        rows, keys, _ = self._result
        combo = cluster[rows].astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + keys[rows]
        _, first, inverse = np.unique(combo, return_index=True, return_inverse=True)
        ok = np.ones(len(cluster), bool)
        ok[rows] = first[inverse] < np.arange(len(rows))
        return ok

    def prompt_groups(self, exact: np.ndarray) -> np.ndarray:
        """Exact-prompt groups joined with the near-duplicate prompt clusters of pair records."""
        return exact if self._result is None else merge_groups(exact, self._result[2])
