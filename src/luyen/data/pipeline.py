"""One streaming pass over the inputs: parse -> map -> clean -> scrub -> measure, then decide.

Candidates are written to a scratch JSONL as they come (memory stays flat at any size); only small
per-record numpy columns stay in memory. `finish()` then removes duplicates, filters by token
length and assigns splits by group, so near-duplicates and repeated prompts never cross splits.

    scan = Scan(cfg, tokenizer, template, scratch_dir, collect_errors=True)
    scan.consume(read_rows(files, cfg.data.max_record_bytes))
    outcome = scan.finish()
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import orjson

from luyen.config import RunConfig
from luyen.data.clean import is_empty, make_cleaner
from luyen.data.dedup import Deduper, key_hashes
from luyen.data.formats import RecordError, map_texts, prompt_text, record_texts, to_records
from luyen.data.load import Row
from luyen.data.scrub import Scrubber
from luyen.data.split import assign_splits, cross_split_groups, merge_groups
from luyen.data.tokens import TokenCounter
from luyen.data.vietnamese import detect_language
from luyen.errors import LuyenError

BATCH = 4096
LANGS = ("vi", "en", "other")


@dataclass
class Tally:
    rows: int = 0
    formats: Counter = field(default_factory=Counter)
    kinds: Counter = field(default_factory=Counter)
    per_file: dict = field(default_factory=lambda: defaultdict(Counter))
    errors: Counter = field(default_factory=Counter)
    error_lines: list[str] = field(default_factory=list)
    empty: int = 0
    scrub_found: Counter = field(default_factory=Counter)
    scrub_redacted: int = 0
    scrub_dropped: int = 0


@dataclass
class Outcome:
    keep: np.ndarray          # bool per candidate
    split: np.ndarray         # int8 per kept candidate: 0 train, 1 val, 2 test
    removed: dict[str, int]
    columns: dict[str, np.ndarray]
    labels: list[str]
    leakage: dict[str, int]


class Scan:
    def __init__(self, cfg: RunConfig, tokenizer, template: str, scratch: Path, collect_errors: bool = False):
        d = cfg.data
        self.cfg, self.collect = cfg, collect_errors
        self.clean = make_cleaner(d.clean)
        self.scrubber = Scrubber(d.scrub.secrets, d.scrub.pii)
        self.deduper = Deduper(near=d.dedup.near, threshold=d.dedup.threshold, num_perm=d.dedup.num_perm, seed=cfg.seed)
        self.counter = TokenCounter(tokenizer, template)
        self.tally = Tally()
        self.scratch_path = scratch / "candidates.jsonl"
        self._scratch = open(self.scratch_path, "wb")
        self._cols: dict[str, list] = defaultdict(list)
        self._label_ids: dict[str, int] = {}

    def consume(self, rows: Iterable[Row]) -> None:
        batch: list[dict] = []
        for row in rows:
            self.tally.rows += 1
            batch += self._records(row)
            if len(batch) >= BATCH:
                self._flush(batch)
                batch = []
        self._flush(batch)
        self._scratch.close()

    def _records(self, row: Row) -> list[dict]:
        origin = f"{row.file}:{row.line}" if row.line else f"{row.file}{row.where}"
        try:
            if isinstance(row.obj, LuyenError):
                raise row.obj
            fmt, records = to_records(row.obj, self.cfg.data.columns, self.cfg.data.format)
        except RecordError as e:
            where = f"{row.where}.{e.field}" if row.where and e.field else (row.where or e.field)
            self._error(e.problem, LuyenError(e.message, file=row.file, line=row.line, field=where, fix=e.fix))
            return []
        except LuyenError as e:
            self._error("unreadable", e)
            return []
        self.tally.formats[fmt] += len(records)
        self.tally.per_file[row.file][fmt] += len(records)
        out = []
        for rec in records:
            if self._prepare(rec):
                rec["origin"] = origin
                out.append(rec)
        return out

    def _error(self, problem: str, err: LuyenError) -> None:
        if self.cfg.data.on_error == "fail" and not self.collect:
            raise err
        self.tally.errors[problem] += 1
        if len(self.tally.error_lines) < 50:
            self.tally.error_lines.append(err.render())

    def _prepare(self, rec: dict) -> bool:
        """Clean and scrub in place; False when the record is dropped."""
        map_texts(rec, self.clean)
        if is_empty(rec):
            self.tally.empty += 1
            return False
        found: Counter = Counter()

        def scrub(text: str) -> str:
            text, counts = self.scrubber.scrub(text)
            found.update(counts)
            return text

        map_texts(rec, scrub)
        if found:
            self.tally.scrub_found.update(found)
            if self.scrubber.should_drop(found):
                self.tally.scrub_dropped += 1
                return False
            self.tally.scrub_redacted += 1
        return True

    def _flush(self, batch: list[dict]) -> None:
        if not batch:
            return
        total, loss = self.counter.measure(batch)
        keys = ["\n".join(record_texts(r)) for r in batch]
        self.deduper.add(keys)
        cols = self._cols
        cols["total"].append(total)
        cols["loss"].append(loss)
        cols["kind"] += [r["kind"] for r in batch]
        cols["lang"] += [LANGS.index(detect_language(k[:2000])) for k in keys]
        cols["prompt"].append(key_hashes([prompt_text(r) for r in batch]).astype(np.int64))
        cols["label"] += [self._label_ids.setdefault(r["label"], len(self._label_ids)) if r["kind"] == "labelled"
                          else -1 for r in batch]
        self.tally.kinds.update(cols["kind"][-len(batch):])
        self._scratch.write(b"".join(orjson.dumps(r) + b"\n" for r in batch))

    def finish(self) -> Outcome:
        c = self._columns()
        n, d = len(c["total"]), self.cfg.data
        dup = self.deduper.finish()
        exact = dup.exact_of >= 0 if d.dedup.exact else np.zeros(n, bool)
        near = dup.near_removed & ~exact if d.dedup.near else np.zeros(n, bool)
        bounded = c["kind"] != "text"  # raw text is chunked at training, never dropped for length
        too_long = bounded & (c["total"] > d.max_length)
        too_short = c["total"] < d.min_length
        keep = ~exact & ~near & ~too_long & ~too_short
        groups = merge_groups(dup.cluster, _first_index(c["prompt"]))[keep]
        labels = c["label"][keep] if d.split.stratify and (c["label"][keep] >= 0).all() and keep.any() else None
        fractions = (d.split.train, d.split.val, d.split.test)
        split = assign_splits(groups, labels, fractions, self.cfg.seed)
        leak_prompts = _shared_across(c["prompt"][keep], split)
        removed = {"exact_duplicates": int(exact.sum()), "near_duplicates": int(near.sum()),
                   "too_long": int((too_long & ~exact & ~near).sum()), "too_short": int((too_short & ~exact & ~near).sum())}
        leakage = {"near_duplicate_groups_across_splits": cross_split_groups(groups, split),
                   "eval_prompts_also_in_train": leak_prompts}
        return Outcome(keep, split, removed, c, list(self._label_ids), leakage)

    def _columns(self) -> dict[str, np.ndarray]:
        c = self._cols
        cat = lambda k, dtype: np.concatenate(c[k]) if c[k] else np.zeros(0, dtype)  # noqa: E731
        return {"total": cat("total", np.int32), "loss": cat("loss", np.int32), "prompt": cat("prompt", np.int64),
                "kind": np.array(c["kind"], dtype=object), "lang": np.array(c["lang"], dtype=np.int8),
                "label": np.array(c["label"], dtype=np.int64)}


def _first_index(keys: np.ndarray) -> np.ndarray:
    """For each record, the index of the first record with the same key."""
    if len(keys) == 0:
        return np.zeros(0, np.int64)
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return first[inverse]


def _shared_across(prompts: np.ndarray, split: np.ndarray) -> int:
    """Validation/test records whose exact prompt also occurs in the training split."""
    train = np.unique(prompts[split == 0])
    return int(np.isin(prompts[split != 0], train).sum())


