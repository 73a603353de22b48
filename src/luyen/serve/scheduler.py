"""Batching: requests that arrive together (within `batch_wait_ms`) start one batch, and requests that
arrive while it runs join it at its next step (continuous batching, luyen.infer.live); each row streams
on its own and leaves the batch when it ends.

    scheduler = Scheduler(backend, max_batch_size=16, wait_s=0.005, cache_size=256, metrics=metrics)
    scheduler.submit([Row(key, prompt_ids, max_tokens=64, stop=["\\n\\n"], deliver=callback)])

Rows are grouped by what a batch takes once: the model (base or LoRA adapter) and the sampling
parameters. A running batch admits new rows of its own group while no other group's request waits
longer (the oldest waiting request's group runs next, so none starves); a model whose cache cannot
join rows (peft's prompt-learning adapters) takes them after the rows it has. Where a batch runs
as one `generate` call, per-row work happens in `RowRouter`, a stopping criterion: transformers calls it
once per decoding step with the batch's tokens, before its streamer, so it can route each row's new
token to its request, apply that row's stop strings and max_tokens, drop rows whose client went away,
and tell `generate` which rows are finished in the same step (a finished row costs no further
tokens; when every row is finished the batch ends).
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable

log = logging.getLogger("luyen.serve")


@dataclass(eq=False)
class Row:
    """One prompt of one request. `deliver` hands events to the request (it must be thread-safe):
    ("text", index, str), ("done", index, finish_reason, prompt_tokens, completion_tokens), ("error", index, msg)."""
    key: tuple
    prompt_ids: list[int]
    max_tokens: int
    stop: list[str]
    deliver: Callable[[tuple], None]
    index: int = 0
    cache_key: tuple | None = None
    ids: list[int] = field(default_factory=list)
    sent: int = 0
    finish: str | None = None
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True

    def push(self, token: int, decode, stop_ids) -> bool:
        """Take this row's next token; True once the row is finished."""
        if self.finish:
            return True
        if self.cancelled:
            self.finish = "cancelled"
            return True
        if token in stop_ids:
            return self.end("stop", decode(self.ids))
        self.ids.append(token)
        text = decode(self.ids)
        hold = max((len(s) for s in self.stop), default=1) - 1
        cuts = [i for s in self.stop if (i := text.find(s, max(0, self.sent - hold))) >= 0]
        if cuts:
            return self.end("stop", text[:min(cuts)])
        if len(self.ids) >= self.max_tokens:
            return self.end("length", text)
        # Hold back what could be the start of a stop string, and a half-decoded UTF-8 character.
        safe = len(text.rstrip("\ufffd")) - hold
        if safe > self.sent:
            self.deliver(("text", self.index, text[self.sent:safe]))
            self.sent = safe
        return False

    def end(self, reason: str, text: str) -> bool:
        if text[self.sent:]:
            self.deliver(("text", self.index, text[self.sent:]))
        self.finish, self.text = reason, text
        self.deliver(("done", self.index, reason, len(self.prompt_ids), len(self.ids)))
        return True


class RowRouter:
    """A transformers stopping criterion that routes each row's new token (see the module doc)."""

    def __init__(self, rows: list[Row], decode, stop_ids):
        self.rows, self.decode, self.stop_ids = rows, decode, set(stop_ids)

    def __call__(self, input_ids, scores=None, **kwargs):
        import torch
        last = input_ids[:, -1].tolist()
        done = [row.push(t, self.decode, self.stop_ids) for row, t in zip(self.rows, last)]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    def close(self) -> None:
        """Rows generate ended without finishing (its own length limit) end as 'length'."""
        for row in self.rows:
            if not row.finish and not row.cancelled:
                row.end("length", self.decode(row.ids))


class AnswerCache:
    """LRU of deterministic answers (greedy, or seeded sampling): cache_key -> (text, finish, prompt, completion)."""

    def __init__(self, size: int):
        self.size, self.items, self.lock = size, OrderedDict(), threading.Lock()

    def get(self, key):
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        return None

    def put(self, key, value) -> None:
        if self.size <= 0:
            return
        with self.lock:
            self.items[key] = value
            self.items.move_to_end(key)
            while len(self.items) > self.size:
                self.items.popitem(last=False)


class Scheduler:
    """One worker thread owns the model; requests reach it through a queue."""

    def __init__(self, backend, *, max_batch_size: int, wait_s: float, cache_size: int, metrics):
        self.backend, self.max_batch, self.wait_s, self.metrics = backend, max_batch_size, wait_s, metrics
        self.cache = AnswerCache(cache_size)
        self.inbox: queue.SimpleQueue[Row] = queue.SimpleQueue()
        self.pending: list[Row] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="luyen-scheduler", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=30)

    def submit(self, rows: list[Row]) -> None:
        for row in rows:
            self.inbox.put(row)

    def _gather(self) -> bool:
        """Move arrivals into pending: wait for a first one, then for company as long as requests keep
        arriving less than wait_s apart (a burst joins one batch), at most 10 x wait_s in all."""
        if not self.pending:
            try:
                self.pending.append(self.inbox.get(timeout=0.2))
            except queue.Empty:
                return False
        start = time.monotonic()
        deadline = start + self.wait_s
        while len(self.pending) < self.max_batch and (left := deadline - time.monotonic()) > 0:
            try:
                self.pending.append(self.inbox.get(timeout=left))
            except queue.Empty:
                break
            deadline = min(time.monotonic() + self.wait_s, start + 10 * self.wait_s)
        self._drain()
        return bool(self.pending)

    def _drain(self) -> None:
        """Everything in the inbox into pending; rows whose client went away are dropped (and counted)."""
        while True:
            try:
                self.pending.append(self.inbox.get_nowait())
            except queue.Empty:
                break
        dropped = [r for r in self.pending if r.cancelled]
        self.metrics.cancelled.inc(len(dropped))
        self.pending = [r for r in self.pending if not r.cancelled]

    def _loop(self) -> None:
        while not self.stopping.is_set():
            if not self._gather():
                continue
            key = self.pending[0].key  # the oldest request's group goes first: no starvation
            batch = [r for r in self.pending if r.key == key][:self.max_batch]
            chosen = set(map(id, batch))
            self.pending = [r for r in self.pending if id(r) not in chosen]
            self._run(key, batch)

    def _joiner(self, key: tuple, rows: list[Row]):
        """``join(in_flight)``: the waiting rows of ``key``'s group that fit beside ``in_flight`` rows (added
        to ``rows``), none while an older request of another group waits."""
        def join(in_flight: int) -> list[Row]:
            self._drain()
            room = self.max_batch - in_flight
            if room <= 0 or not self.pending or self.pending[0].key != key:
                return []
            take = [r for r in self.pending if r.key == key][:room]
            chosen = set(map(id, take))
            self.pending = [r for r in self.pending if id(r) not in chosen]
            rows.extend(take)
            return take
        return join

    def _run(self, key: tuple, rows: list[Row]) -> None:
        self.metrics.batches.inc()
        self.metrics.batch_rows.observe(len(rows))
        rows = list(rows)
        try:
            self.backend.run(key, list(rows), join=self._joiner(key, rows))
        except Exception:  # the server stays up; the clients get a 500 without details
            log.exception("generation failed for a batch of %d", len(rows))
            for row in rows:
                if not row.finish:
                    row.finish = "error"
                    row.deliver(("error", row.index, "generation failed; see the server log"))
        for row in rows:
            if row.finish == "cancelled" or (row.cancelled and not row.finish):
                self.metrics.cancelled.inc()
            elif row.finish in ("stop", "length"):
                self.metrics.completion_tokens.inc(len(row.ids))
                if row.cache_key is not None:
                    self.cache.put(row.cache_key, (row.text, row.finish, len(row.prompt_ids), len(row.ids)))
