"""Token lengths with the model's own tokenizer and chat template, fast enough for 1M records.

Every record is measured by counting the tokens of its message contents and adding the template's
fixed overhead for that sequence of roles, measured once by rendering. The first `exact_n` chats are
also encoded exactly (render + offsets) to check that estimate, the loss mask, the template round
trip and the stop token, and the report says how close the estimate was.

Counting contents: a Gemma-style tokenizer (normalizer " " -> "▁", no real pre-tokenizer, BPE)
runs BPE over each whole text, ~30 us per short text: 60 s of CPU for 1M QA records. No vocabulary
token joins a non-"▁" character to a following "▁" (Gemma's one exception, ">▁</", is
handled), so no merge crosses the start of a space-separated word and a text's count is the sum of
its words' counts: `_WordCounts` keeps those in a dict, ~2 us per text, and sends every text that
could break the argument (added-token characters, double or edge spaces, a literal "▁") to the
tokenizer itself. Counts are identical either way.

    counter = TokenCounter(tokenizer, template)
    total, loss = counter.measure(records)      # numpy int32 arrays, one entry per record
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from luyen.data.formats import as_chat
from luyen.data.template import encode_chat, end_marker, stop_token_ids


@dataclass
class ExactChecks:
    n: int = 0
    abs_error: int = 0
    round_trip_failures: list[str] = field(default_factory=list)
    no_stop_token: int = 0
    empty_mask: int = 0


class TokenCounter:
    def __init__(self, tokenizer, template: str, exact_n: int = 300):
        self.tok, self.template, self.exact_n = tokenizer, template, exact_n
        self.marker = end_marker(tokenizer, template)
        self.stop_ids = stop_token_ids(tokenizer, template)
        self.marker_len = len(tokenizer.encode(self.marker, add_special_tokens=False)) if self.marker else 0
        self._overhead: dict[tuple[str, ...], int] = {}
        self.specials = len(tokenizer.build_inputs_with_special_tokens([])) if hasattr(
            tokenizer, "build_inputs_with_special_tokens") else 0
        self.checks = ExactChecks()
        self._words = _WordCounts.build(tokenizer, self._encode_count)

    def measure(self, records: list[dict], check: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Total and loss-bearing tokens per record; with `check`, the first `exact_n` chats seen
        are also encoded exactly (see `check_exact`)."""
        chats = [as_chat(r) for r in records]
        texts = [m["content"] for c, r in zip(chats, records) for m in (c or [{"content": r.get("text", "")}])]
        counts = self._count(texts)
        total = np.empty(len(records), dtype=np.int32)
        loss = np.empty(len(records), dtype=np.int32)
        at, overhead, marker_len = 0, self._overhead, self.marker_len
        for i, chat in enumerate(chats):
            if chat is None:  # raw text: every token is a target, plus EOS
                n = counts[at] + self.specials + 1
                at += 1
                total[i], loss[i] = n, n
                continue
            roles = tuple([m["role"] for m in chat])
            lengths = counts[at:at + len(chat)]
            at += len(chat)
            extra = overhead[roles] if roles in overhead else self._template_overhead(roles)
            total[i] = sum(lengths) + extra
            loss[i] = sum([n + marker_len for n, r in zip(lengths, roles) if r == "assistant"])
        if check:
            self.check_exact(records, total)
        return total, loss

    def check_exact(self, records: list[dict], total: np.ndarray) -> None:
        """Encode exactly the chats among `records` (with their measured totals) while fewer than
        `exact_n` have been checked; records come in stream order."""
        for rec, n in zip(records, total):
            if self.checks.n >= self.exact_n:
                return
            chat = as_chat(rec)
            if chat is not None:
                self._check_exact(chat, int(n))

    def count(self, texts: list[str]) -> list[int]:
        """Tokens of each text alone, without template or special tokens (answer lengths)."""
        return self._count(texts)

    def _count(self, texts: list[str]) -> list[int]:
        if not texts:
            return []
        return self._words.count(texts) if self._words is not None else self._encode_count(texts)

    def _encode_count(self, texts: list[str]) -> list[int]:
        """The reference: the tokenizer's own count of each text."""
        if not texts:
            return []
        enc = self.tok(texts, add_special_tokens=False, return_attention_mask=False, return_token_type_ids=False)
        return [len(ids) for ids in enc["input_ids"]]

    def _template_overhead(self, roles: tuple[str, ...]) -> int:
        if roles not in self._overhead:
            probe = [{"role": r, "content": "x"} for r in roles]
            ids, _ = encode_chat(self.tok, self.template, probe, self.marker)
            self._overhead[roles] = len(ids) - len(roles) * len(self.tok.encode("x", add_special_tokens=False))
        return self._overhead[roles]

    def _check_exact(self, chat: list[dict], estimate: int) -> None:
        c = self.checks
        c.n += 1
        try:
            ids, mask = encode_chat(self.tok, self.template, chat, self.marker)
        except ValueError as e:
            c.round_trip_failures.append(str(e))
            return
        c.abs_error += abs(len(ids) - estimate)
        targets = _runs(ids, mask)
        if not targets:
            c.empty_mask += 1
            return
        expected = [m["content"] + self.marker for m in chat if m["role"] == "assistant"]
        decoded = [self.tok.decode(t, skip_special_tokens=False) for t in targets]
        if [d.strip() for d in decoded] != [e.strip() for e in expected] and len(c.round_trip_failures) < 5:
            c.round_trip_failures.append(f"expected {expected[0][:60]!r}, got {decoded[0][:60]!r}")
        c.no_stop_token += sum(1 for t in targets if t[-1] not in self.stop_ids)


class _WordCounts:
    """Exact token counts of texts as sums of cached per-word counts, for tokenizers where that
    is provably the same as encoding the whole text (see the module docstring); `build` returns None
    for any other tokenizer.

    A "plain" text (no unsafe character, single spaces inside only) splits into pieces
    words[0], " " + words[1], ...; normalised, each piece is "▁*" + non-"▁" characters, and
    BPE never merges across such a boundary when no token holds a non-"▁" character followed by
    "▁" (the characters of such tokens before their "▁" are unsafe), so the text's count is
    the sum of the pieces' counts, each counted once by the tokenizer itself. No added token can
    match inside a plain text: its first character is unsafe.
    """

    MAX_WORDS = 1 << 20  # forget the cache past this many words (a few hundred MB at most)

    def __init__(self, unsafe: str, encode_count):
        self.unsafe = re.compile("[" + "".join(map(re.escape, sorted(unsafe))) + "]")
        self.encode_count = encode_count
        self.first: dict[str, int] = {}  # the text's first word, as is
        self.rest: dict[str, int] = {}   # a later word, counted with its leading space

    @classmethod
    def build(cls, tokenizer, encode_count) -> _WordCounts | None:
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None or backend.truncation is not None or backend.padding is not None:
            return None
        import json
        try:
            from tokenizers.models import BPE
            model = backend.model
            if not isinstance(model, BPE) or model.dropout or model.continuing_subword_prefix \
                    or model.end_of_word_suffix or getattr(model, "ignore_merges", True):
                return None
            norm = json.loads(backend.normalizer.__getstate__()) if backend.normalizer is not None else None
            pre = json.loads(backend.pre_tokenizer.__getstate__()) if backend.pre_tokenizer is not None else None
        except Exception:  # an unexpected tokenizers version or layout: count the plain way
            return None
        if norm != {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}:
            return None
        if pre is not None and not (pre.get("type") == "Split" and pre.get("pattern") == {"String": " "}):
            return None  # any pre-tokenizer but a split on " " (a no-op once spaces are gone) could cut words
        added = list(backend.get_added_tokens_decoder().values())
        if any(a.normalized for a in added) or any(not a.content for a in added):
            return None
        vocab = backend.get_vocab()
        if "▁" not in vocab:
            return None
        unsafe = {a.content[0] for a in added} | {"▁"}
        for t in vocab:
            if "▁" in t[1:]:
                unsafe.update(t[i - 1] for i in range(1, len(t)) if t[i] == "▁" and t[i - 1] != "▁")
        if " " in unsafe:
            return None
        return cls("".join(unsafe), encode_count)

    def count(self, texts: list[str]) -> list[int]:
        out = [0] * len(texts)
        first, rest, unsafe = self.first, self.rest, self.unsafe.search
        slow, missing = [], []
        for i, text in enumerate(texts):
            if not text or text[0] == " " or text[-1] == " " or "  " in text or unsafe(text):
                slow.append(i)
                continue
            words = text.split(" ")
            try:
                out[i] = first[words[0]] + sum(map(rest.__getitem__, words[1:]))  # noqa: RUF015
            except KeyError:
                missing.append(i)
        if missing:
            self._learn(texts, missing)
            for i in missing:
                words = texts[i].split(" ")
                out[i] = first[words[0]] + sum(map(rest.__getitem__, words[1:]))
        if slow:
            for i, n in zip(slow, self.encode_count([texts[i] for i in slow])):
                out[i] = n
        return out

    def _learn(self, texts: list[str], missing: list[int]) -> None:
        if len(self.first) + len(self.rest) > self.MAX_WORDS:
            self.first.clear()
            self.rest.clear()
        new_first, new_rest = set(), set()
        for i in missing:
            words = texts[i].split(" ")
            if words[0] not in self.first:
                new_first.add(words[0])
            new_rest.update(w for w in words[1:] if w not in self.rest)
        new_first, new_rest = sorted(new_first), sorted(new_rest)
        counts = self.encode_count(new_first + [" " + w for w in new_rest])
        self.first.update(zip(new_first, counts))
        self.rest.update(zip(new_rest, counts[len(new_first):]))


def _runs(ids: list[int], mask: list[bool]) -> list[list[int]]:
    """Contiguous runs of loss-bearing tokens: one per assistant turn."""
    runs, cur = [], []
    for i, m in zip(ids, mask):
        if m:
            cur.append(i)
        elif cur:
            runs.append(cur)
            cur = []
    return runs + ([cur] if cur else [])


def length_stats(lengths: np.ndarray) -> dict[str, float]:
    if len(lengths) == 0:
        return {"min": 0, "mean": 0, "p50": 0, "p95": 0, "max": 0}
    p50, p95 = np.percentile(lengths, [50, 95])
    return {"min": int(lengths.min()), "mean": round(float(lengths.mean()), 1), "p50": round(float(p50), 1),
            "p95": round(float(p95), 1), "max": int(lengths.max())}
