"""One streaming pass over the inputs: parse -> map -> clean -> scrub -> measure, then decide.

Candidates are written to a scratch JSONL as they come (memory stays flat at any size); only small
per-record numpy columns stay in memory. `finish()` then removes duplicates, filters by token
length and assigns splits by group, so near-duplicates and repeated prompts never cross splits.

    scan = Scan(cfg, tokenizer, template, scratch_dir, collect_errors=True)
    scan.consume_files(files)        # or scan.consume(read_rows(files, cfg.data.max_record_bytes))
    outcome = scan.finish()

Rows are handled a chunk at a time: `_process` turns a chunk into a `Part` (tallies, the kept
records as JSONL bytes, their columns and duplicate-detection hashes), a pure function of the
chunk, and `_merge` appends parts in input order. `consume_files` lets forked worker processes
run `_process` on blocks of large .jsonl files while this process merges, so the outputs are
byte-identical to the serial path whatever the number of workers.
"""
from __future__ import annotations

import io
import multiprocessing
import os
import sys
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import orjson

from luyen.config import RunConfig
from luyen.data.clean import is_empty, make_cleaner
from luyen.data.dedup import Deduper, key_hashes
from luyen.data.formats import PAIR_KINDS, RecordError, map_texts, prompt_text, record_texts, to_records
from luyen.data.load import Row, data_suffix, expand_paths, jsonl_blocks, jsonl_rows, read_rows, sniff_encoding
from luyen.data.preference import PairColumns
from luyen.data.preference import is_empty as pair_is_empty
from luyen.data.scrub import Scrubber
from luyen.data.split import assign_splits, cross_split_groups, merge_groups
from luyen.data.tokens import TokenCounter
from luyen.data.vietnamese import detect_language
from luyen.errors import LuyenError

BATCH = 4096
LANGS = ("vi", "en", "other")
# Worker processes pay off from about 20k short records (4 MB of .jsonl): forking and merging cost
# ~0.3 s. Tests set PARALLEL_MIN_BYTES = 0 to force the parallel path on small inputs.
PARALLEL_MIN_BYTES = 4 << 20
PARALLEL_WORKERS = 4   # at most; never more than the cores this process may use
BLOCK_BYTES = 1 << 20  # ~4,500 short records per task
_WORKER_SCAN: Scan | None = None  # the forked workers' copy of the Scan


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
    same_pair: int = 0  # preference pairs whose chosen equals rejected after cleaning: dropped

    def add(self, other: Tally) -> None:
        """Add a later chunk's tally (Counter keys keep first-seen order, as one pass would)."""
        self.rows += other.rows
        self.formats.update(other.formats)
        self.kinds.update(other.kinds)
        for f, counts in other.per_file.items():
            self.per_file[f].update(counts)
        self.errors.update(other.errors)
        self.error_lines += other.error_lines[:max(0, 50 - len(self.error_lines))]
        self.empty += other.empty
        self.scrub_found.update(other.scrub_found)
        self.scrub_redacted += other.scrub_redacted
        self.scrub_dropped += other.scrub_dropped
        self.same_pair += other.same_pair


@dataclass
class Part:
    """What one chunk of rows adds: see `Scan._process`."""
    tally: Tally
    lines: bytes = b""            # kept candidates, one JSON object per line
    total: np.ndarray = None      # int32 per candidate
    loss: np.ndarray = None       # int32 per candidate
    kind: list = None             # str per candidate
    lang: np.ndarray = None       # int8 per candidate (index into LANGS)
    prompt: np.ndarray = None     # int64 per candidate
    label: list = None            # str per labelled candidate, else None
    hashes: np.ndarray = None     # Deduper.signatures
    shingles: np.ndarray = None
    pairs: dict | None = None     # PairColumns.process: preference/feedback columns
    pinned: np.ndarray = None     # bool per candidate: from one of data.val_files (always validation)
    fail: tuple | None = None     # (message, file, line, field, fix) of the error that stops the run


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
        self._scrub = _ScrubInto(self.scrubber)
        self.deduper = Deduper(near=d.dedup.near, threshold=d.dedup.threshold, num_perm=d.dedup.num_perm, seed=cfg.seed)
        self.counter = TokenCounter(tokenizer, template)
        self.pairs = PairColumns(d.dedup.threshold, d.dedup.num_perm, cfg.seed)
        self.tally = Tally()
        self.scratch_path = scratch / "candidates.jsonl"
        self._scratch = open(self.scratch_path, "wb")
        self._cols: dict[str, list] = defaultdict(list)
        self._label_ids: dict[str, int] = {}
        self.val_files = {str(p) for p in expand_paths(d.val_files)} if d.val_files else set()

    def consume(self, rows: Iterable[Row]) -> None:
        """Scan rows in this process."""
        self._consume_rows(rows)
        self._scratch.close()

    def consume_files(self, files: list[Path]) -> None:
        """Scan files, with worker processes when the inputs are large enough to pay for them."""
        limit = self.cfg.data.max_record_bytes
        workers = _worker_count(files)
        if workers < 2:
            return self.consume(read_rows(files, limit))
        global _WORKER_SCAN
        _WORKER_SCAN = self
        try:
            with multiprocessing.get_context("fork").Pool(workers, initializer=_init_worker) as pool:
                pending: deque = deque()

                def drain(depth: int) -> None:
                    while len(pending) > depth:
                        self._merge(pending.popleft().get())

                tasks = _tasks(files)
                while True:
                    try:
                        task = next(tasks)
                    except StopIteration:
                        break
                    except Exception:
                        drain(0)  # what came before the unreadable part decides first, as in one pass
                        raise
                    if isinstance(task, Path):  # not a plain UTF-8 .jsonl file: read it here
                        drain(0)
                        self._consume_rows(read_rows([task], limit))
                    else:
                        pending.append(pool.apply_async(_work, task))
                        drain(2 * workers)
                drain(0)
        finally:
            _WORKER_SCAN = None
        self._scratch.close()

    def _consume_rows(self, rows: Iterable[Row]) -> None:
        chunk: list[Row] = []
        it = iter(rows)
        while True:
            try:
                chunk.append(next(it))
            except StopIteration:
                break
            except Exception:
                self._merge(self._process(chunk))  # rows before an unreadable one still come first
                raise
            if len(chunk) >= BATCH:
                self._merge(self._process(chunk))
                chunk = []
        self._merge(self._process(chunk))

    def _process(self, rows: Iterable[Row]) -> Part:
        """Map, clean, scrub and measure a chunk of rows; only caches change, so workers run it."""
        tally = Tally()
        records: list[dict] = []
        pinned: list[bool] = []
        try:
            for row in rows:
                tally.rows += 1
                found = self._records(row, tally)
                records += found
                pinned += [row.file in self.val_files] * len(found)
        except LuyenError as e:  # data.on_error=fail: the run stops at this record
            return Part(tally, fail=(e.message, e.file, e.line, e.field, e.fix))
        total, loss = self.counter.measure(records, check=False)
        pairs = self.pairs.process(records, self.counter, loss)
        keys = ["\n".join(record_texts(r)) for r in records]
        hashes, shingles = self.deduper.signatures(keys)
        lang = np.array([LANGS.index(detect_language(k[:2000])) for k in keys], dtype=np.int8)
        return Part(tally, lines=b"".join([orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE) for r in records]),
                    total=total, loss=loss, kind=[r["kind"] for r in records], lang=lang,
                    prompt=key_hashes([prompt_text(r) for r in records]).astype(np.int64),
                    label=[r["label"] if r["kind"] == "labelled" else None for r in records],
                    hashes=hashes, shingles=shingles, pairs=pairs, pinned=np.array(pinned, dtype=bool))

    def _merge(self, part: Part) -> None:
        if part.fail is not None:
            message, file, line, where, fix = part.fail
            raise LuyenError(message, file=file, line=line, field=where, fix=fix)
        self.tally.add(part.tally)
        if not part.kind:
            return
        self.tally.kinds.update(part.kind)
        self._check_exact(part)
        self.deduper.extend(part.hashes, part.shingles)
        cols = self._cols
        self.pairs.merge(part.pairs, len(cols["kind"]))
        cols["total"].append(part.total)
        cols["loss"].append(part.loss)
        cols["kind"] += part.kind
        cols["lang"].append(part.lang)
        cols["prompt"].append(part.prompt)
        cols["pinned"].append(part.pinned)
        ids = self._label_ids
        cols["label"].append(np.array([-1 if lab is None else ids.setdefault(lab, len(ids)) for lab in part.label],
                                      dtype=np.int64) if any(lab is not None for lab in part.label)
                             else np.full(len(part.label), -1, np.int64))
        self._scratch.write(part.lines)

    def _check_exact(self, part: Part) -> None:
        """The token counter's exact checks run on the first chats of the whole stream."""
        counter = self.counter
        need = counter.exact_n - counter.checks.n
        if need <= 0:
            return
        chats = [i for i, k in enumerate(part.kind) if k != "text"][:need]
        if chats:
            lines = part.lines.split(b"\n")
            counter.check_exact([orjson.loads(lines[i]) for i in chats], part.total[chats])

    def _records(self, row: Row, tally: Tally) -> list[dict]:
        origin = f"{row.file}:{row.line}" if row.line else f"{row.file}{row.where}"
        try:
            if isinstance(row.obj, LuyenError):
                raise row.obj
            fmt, records = to_records(row.obj, self.cfg.data.columns, self.cfg.data.format)
        except RecordError as e:
            where = f"{row.where}.{e.field}" if row.where and e.field else (row.where or e.field)
            self._error(tally, e.problem, LuyenError(e.message, file=row.file, line=row.line, field=where, fix=e.fix))
            return []
        except LuyenError as e:
            self._error(tally, "unreadable", e)
            return []
        tally.formats[fmt] += len(records)
        tally.per_file[row.file][fmt] += len(records)
        out = []
        for rec in records:
            if self._prepare(rec, tally):
                rec["origin"] = origin
                out.append(rec)
        return out

    def _error(self, tally: Tally, problem: str, err: LuyenError) -> None:
        if self.cfg.data.on_error == "fail" and not self.collect:
            raise err
        tally.errors[problem] += 1
        if len(tally.error_lines) < 50:
            tally.error_lines.append(err.render())

    def _prepare(self, rec: dict, tally: Tally) -> bool:
        """Clean and scrub in place; False when the record is dropped."""
        map_texts(rec, self.clean)
        if pair_is_empty(rec) if rec["kind"] in PAIR_KINDS else is_empty(rec):
            tally.empty += 1
            return False
        scrub = self._scrub
        scrub.found = None
        map_texts(rec, scrub)
        found = scrub.found
        if found:
            tally.scrub_found.update(found)
            if self.scrubber.should_drop(found):
                tally.scrub_dropped += 1
                return False
            tally.scrub_redacted += 1
        if rec["kind"] == "preference" and rec["chosen"] == rec["rejected"]:
            tally.same_pair += 1  # teaches nothing
            return False
        return True

    def finish(self) -> Outcome:
        c = self._columns()
        n, d = len(c["total"]), self.cfg.data
        dup = self.deduper.finish()
        c.update(self.pairs.finish(c["total"]))
        exact = dup.exact_of >= 0 if d.dedup.exact else np.zeros(n, bool)
        near = dup.near_removed & ~exact & self.pairs.near_ok(dup.cluster) if d.dedup.near else np.zeros(n, bool)
        # questions over one context look alike as whole records: they stay grouped (one split), none is dropped
        near &= c["kind"] != "extractive"
        bounded = c["kind"] != "text"  # raw text is chunked at training, never dropped for length
        too_long = bounded & (longest(c) > d.max_length)  # a pair goes when either side is too long
        too_short = c["total"] < d.min_length
        keep = ~exact & ~near & ~too_long & ~too_short
        groups = merge_groups(dup.cluster, self.pairs.prompt_groups(_first_index(c["prompt"])))[keep]
        labels = c["label"][keep] if d.split.stratify and (c["label"][keep] >= 0).all() and keep.any() else None
        fractions = (d.split.train, d.split.val, d.split.test)
        pinned = c["pinned"][keep]
        if self.val_files:  # validation is the given files; the rest splits into train and test alone
            fractions = (d.split.train / (d.split.train + d.split.test), 0.0, d.split.test / (d.split.train + d.split.test))
        split = assign_splits(groups, labels, fractions, self.cfg.seed)
        split[pinned] = 1
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
                "kind": np.array(c["kind"], dtype=object), "lang": cat("lang", np.int8),
                "label": cat("label", np.int64), "pinned": cat("pinned", bool)}


class _ScrubInto:
    """Scrubs one text at a time (for map_texts), adding what it finds to `found` (None: nothing yet)."""

    def __init__(self, scrubber: Scrubber):
        self.scrubber, self.found = scrubber, None

    def __call__(self, text: str) -> str:
        text, counts = self.scrubber.scrub(text)
        if counts:
            if self.found is None:
                self.found = Counter()
            self.found.update(counts)
        return text


def longest(c: dict[str, np.ndarray]) -> np.ndarray:
    """Tokens of each record's longest training sequence (a preference pair's longer side)."""
    return np.maximum(c["total"], c["total_rejected"]) if "total_rejected" in c else c["total"]


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


def _worker_count(files: list[Path]) -> int:
    """Worker processes for these inputs: 0 (serial) unless enough plain .jsonl data and cores."""
    if not sys.platform.startswith("linux"):  # fork after loading torch is only safe on Linux
        return 0
    size = sum(f.stat().st_size for f in files if _plain_jsonl(f))
    if size < PARALLEL_MIN_BYTES or size == 0:
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return min(PARALLEL_WORKERS, cores)


def _plain_jsonl(path: Path) -> bool:
    return data_suffix(path) == ".jsonl" and not path.name.lower().endswith(".gz")


def _tasks(files: list[Path]):
    """Worker tasks (path, first line, block) for plain UTF-8 .jsonl files, in order; any other
    file comes as its Path, to be read in this process. Raises what `read_rows` would raise."""
    for path in files:
        if not _plain_jsonl(path) or sniff_encoding(path) not in ("utf-8", "utf-8-sig"):
            yield path
            continue
        for first, block in jsonl_blocks(path, BLOCK_BYTES):
            yield str(path), first, block


def _init_worker() -> None:
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # this process is one of the parallel parts


def _work(path: str, first: int, block: bytes) -> Part:
    scan = _WORKER_SCAN
    limit = scan.cfg.data.max_record_bytes
    return scan._process(jsonl_rows(Path(path), enumerate(io.BytesIO(block), first), limit))
