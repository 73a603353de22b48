"""A trained task head, loaded once, answering batches: what `luyen predict`, `luyen.load(RUN).predict`,
the evaluation and the server's /v1/classify, /v1/extract and seq2seq /v1/completions all call.

    p = Predictor.load("runs/intents/train")       # a run folder, or its model/ (or an export's merged/) folder
    p.predict([{"text": "Tôi muốn đổi vé"}])        # classification: [{"label", "score", "probabilities"}]
    p.predict([{"question": "...", "context": "..."}])   # extractive QA: [{"answer", "start", "score", "no_answer"}]
    p.predict([{"text": "a document"}])              # seq2seq: [{"summary"}]
    predict_file(p, "in.jsonl", "out.jsonl")         # one output line per input line, written atomically
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from luyen.errors import LuyenError
from luyen.manifest import atomic_write
from luyen.tasks import TASKS, read_spec

MAX_ITEMS = 1024  # inputs per predict call (the server's and the CLI's batches)


def head_folder(name: str | Path) -> Path | None:
    """The model folder of a head run (`RUN/model`) or a head model folder itself; None otherwise."""
    path = Path(name).expanduser()
    for folder in (path / "model", path):
        if read_spec(folder) is not None:
            return folder
    return None


@dataclass
class Predictor:
    task: object      # luyen.tasks.Task
    spec: dict
    model: object
    tokenizer: object
    folder: Path

    @classmethod
    def load(cls, name: str | Path, threads: int | None = None) -> "Predictor":
        from transformers import AutoTokenizer
        folder = head_folder(name)
        if folder is None:
            raise LuyenError("not a task-head model (no luyen_task.json)", file=str(name),
                             fix="pass a `luyen train` run of train.task=classification, extractive_qa or seq2seq")
        spec = read_spec(folder)
        task = TASKS[spec["task"]]
        if threads:
            torch.set_num_threads(threads)
        model = task.impl().load(folder, spec, dtype=torch.float32).eval()
        tokenizer = AutoTokenizer.from_pretrained(folder)
        return cls(task, spec, model, tokenizer, folder)

    def predict(self, items: list[dict], **kw) -> list[dict]:
        if not isinstance(items, list) or not items:
            raise LuyenError("predict takes a non-empty list of inputs", field="input", fix="pass [{...}, ...]")
        if len(items) > MAX_ITEMS:
            raise LuyenError(f"{len(items)} inputs in one call; at most {MAX_ITEMS}", field="input",
                             fix=f"send at most {MAX_ITEMS} inputs per call")
        with torch.inference_mode():
            return self.task.impl().predict(self.model, self.tokenizer, self.spec, items, **kw)

    @property
    def name(self) -> str:
        return self.spec["task"]


def read_inputs(path: Path) -> list[dict]:
    """The JSONL inputs of `luyen predict`; a bad line is a one-line error naming it."""
    if not path.is_file():
        raise LuyenError("no such input file", file=str(path), fix="pass a .jsonl file, one JSON object per line")
    items = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as e:
                raise LuyenError(f"not JSON: {e.msg}", file=str(path), line=n, fix="one JSON object per line") from None
            if not isinstance(item, dict):
                raise LuyenError("expected a JSON object", file=str(path), line=n, fix='e.g. {"text": "..."}')
            items.append((n, item))
    if not items:
        raise LuyenError("the input file holds no inputs", file=str(path), fix="one JSON object per line")
    return items


def predict_file(p: Predictor, source: Path, dest: Path, batch_size: int = 64) -> dict:
    """Predict every line of `source` into `dest` (each output keeps the input's `id` when it has one);
    the output appears whole or not at all. Returns counts and the time per input."""
    source, dest = Path(source), Path(dest)
    if dest.resolve() == source.resolve():
        raise LuyenError("the output would overwrite the input", file=str(dest), fix="choose another --output")
    items = read_inputs(source)
    lines, started = [], time.perf_counter()
    for i in range(0, len(items), batch_size):
        chunk = items[i:i + batch_size]
        try:
            outs = p.predict([it for _, it in chunk])
        except LuyenError as e:  # name the line of the bad input
            for n, it in chunk:
                try:
                    p.predict([it])
                except LuyenError:
                    raise LuyenError(e.message, file=str(source), line=n, field=e.field, fix=e.fix) from None
            raise
        for (_, it), out in zip(chunk, outs):
            lines.append(json.dumps({**({"id": it["id"]} if "id" in it else {}), **out}, ensure_ascii=False))
    seconds = time.perf_counter() - started
    atomic_write(dest, "\n".join(lines) + "\n")
    return {"inputs": len(items), "seconds": round(seconds, 3), "ms_per_input": round(1000 * seconds / len(items), 2)}
