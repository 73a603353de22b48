"""Token lengths with the model's own tokenizer and chat template, fast enough for 1M records.

Every record is measured by batch-encoding its message contents (Rust, all cores) and adding the
template's fixed overhead for that sequence of roles, measured once by rendering. The first
`exact_n` chats are also encoded exactly (render + offsets) to check that estimate, the loss mask,
the template round trip and the stop token, and the report says how close the estimate was.

    counter = TokenCounter(tokenizer, template)
    total, loss = counter.measure(records)      # numpy int32 arrays, one entry per record
"""
from __future__ import annotations

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

    def measure(self, records: list[dict]) -> tuple[np.ndarray, np.ndarray]:
        chats = [as_chat(r) for r in records]
        texts = [m["content"] for c, r in zip(chats, records) for m in (c or [{"content": r.get("text", "")}])]
        counts = iter(self._count(texts))
        total = np.empty(len(records), dtype=np.int32)
        loss = np.empty(len(records), dtype=np.int32)
        for i, (chat, rec) in enumerate(zip(chats, records)):
            if chat is None:  # raw text: every token is a target, plus EOS
                n = next(counts) + self.specials + 1
                total[i], loss[i] = n, n
                continue
            lengths = [next(counts) for _ in chat]
            roles = tuple(m["role"] for m in chat)
            total[i] = sum(lengths) + self._template_overhead(roles)
            loss[i] = sum(n + self.marker_len for n, m in zip(lengths, chat) if m["role"] == "assistant")
            if self.checks.n < self.exact_n:
                self._check_exact(chat, int(total[i]))
        return total, loss

    def _count(self, texts: list[str]) -> list[int]:
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
