"""The data stage: `check` (report only) and `run` (report + train/val/test files + manifest).

    report = check(["examples/data/vi_ai_qa.jsonl"], cfg)
    manifest = run(cfg, ["examples/data/vi_ai_qa.jsonl"], Path("runs/demo/data"))
"""
from __future__ import annotations

import math
import tempfile
from pathlib import Path

import orjson

from luyen.config import RunConfig
from luyen.data.load import expand_paths
from luyen.data.pipeline import Scan
from luyen.data.report import build_report
from luyen.data.split import SPLITS
from luyen.data.template import resolve_chat_template
from luyen.errors import LuyenError
from luyen.manifest import Manifest, RunDir


def check(inputs: list[str | Path], cfg: RunConfig, estimate: bool = True) -> dict:
    """The report; a large input's scan is kept for a `prepare` of the same files (luyen.data.scans)."""
    from luyen.data import scans
    files = data_files(inputs, cfg)
    with tempfile.TemporaryDirectory(prefix="luyen-check-") as scratch:
        report, outcome, scan = _scan(files, cfg, Path(scratch), collect_errors=True, estimate=estimate)
        scans.keep(scans.scan_key(files, cfg, lambda: _tokenizer_folder(cfg), estimate), report, outcome,
                   scan.scratch_path, cfg.data.on_error)
    return report


def run(cfg: RunConfig, inputs: list[str | Path], out_dir: Path, overwrite: bool = False,
        estimate: bool = True) -> Manifest:
    files = data_files(inputs, cfg)
    _refuse_overlap(files, Path(out_dir))
    from luyen.data import scans
    kept = scans.find(scans.scan_key(files, cfg, lambda: _tokenizer_folder(cfg), estimate))
    with RunDir.create(Path(out_dir), stage="data", overwrite=overwrite) as rd, \
            tempfile.TemporaryDirectory(prefix=".scratch-", dir=rd.path) as scratch:
        if kept:  # `data check` scanned these very files with this configuration
            report, keep, split, candidates = kept
        else:
            report, outcome, scan = _scan(files, cfg, Path(scratch), collect_errors=False, estimate=estimate)
            keep, split, candidates = outcome.keep, outcome.split, scan.scratch_path
        if not report["usable"]:
            raise LuyenError(report["problems"][0], file=str(inputs[0]) if len(inputs) == 1 else None)
        _write_splits(rd, candidates, keep, split)
        rd.write_json("report.json", report)
        counts = {s: report["split"][s] for s in SPLITS}
        return rd.finish(config=cfg.model_dump(), inputs=files, seed=cfg.seed,
                         metrics={**counts, "kind": next(iter(report["records"]["by_kind"]), None),
                                  "removed": report["cleaning"], "errors": report["errors"]["count"]})


def data_files(inputs: list[str | Path], cfg: RunConfig) -> list[Path]:
    """The inputs, then data.val_files (whose records all go to validation)."""
    files = expand_paths(inputs)
    return files + [f for f in expand_paths(cfg.data.val_files) if f not in files] if cfg.data.val_files else files


def _tokenizer_folder(cfg: RunConfig) -> Path:
    """The folder whose tokenizer measures the data (a finished LoRA run: the tokenizer saved beside its adapter)."""
    from luyen.models.trained import source_folder
    return source_folder(_measured_with(cfg), cache_dir=cfg.model.cache_dir, trust_remote_code=cfg.model.trust_remote_code)


def _scan(files, cfg: RunConfig, scratch: Path, collect_errors: bool, estimate: bool):
    from luyen.models.resolve import load_tokenizer
    folder = _tokenizer_folder(cfg)
    tokenizer = load_tokenizer(str(folder), trust_remote_code=cfg.model.trust_remote_code)
    if tokenizer.eos_token is None and tokenizer.sep_token is not None:
        tokenizer.eos_token = tokenizer.sep_token  # an encoder (BERT): its [SEP] ends a text, so lengths can be measured
    template = resolve_chat_template(tokenizer, cfg.model.chat_template)
    source = ("config" if cfg.model.chat_template else "tokenizer's own" if getattr(tokenizer, "chat_template", None)
              else "luyen default")
    scan = Scan(cfg, tokenizer, template, scratch, collect_errors=collect_errors)
    scan.consume_files(files)
    outcome = scan.finish()
    report = build_report(scan.tally, outcome, scan.counter, tokenizer=tokenizer, template_source=source,
                          max_length=cfg.data.max_length, on_error=cfg.data.on_error,
                          estimate=None)
    if estimate and report["records"]["kept"] and not cfg.model.tokenizer:  # the folder is the model's own
        report["estimate"] = _estimate(folder, cfg, report)
    return report, outcome, scan


def _measured_with(cfg: RunConfig) -> str:
    """The model whose tokenizer measures the data: model.tokenizer, else the model itself."""
    from luyen.train.scratch import parse_scratch
    if cfg.model.tokenizer:
        return cfg.model.tokenizer
    if parse_scratch(cfg.model.name):
        raise LuyenError(f"{cfg.model.name} has no tokenizer yet (training trains one on your text)", field="model.tokenizer",
                         fix="name a tokenizer to measure lengths with, e.g. model.tokenizer=gemma3-270m")
    return cfg.model.name


def _estimate(folder: Path, cfg: RunConfig, report: dict) -> dict | None:
    from luyen.models.estimate import describe_model, estimate_training, optimizer_rate, training_peak
    from luyen.precision import choose
    try:
        shape = describe_model(folder)
    except (OSError, ValueError, KeyError):
        return None  # a tokenizer-only folder: nothing to estimate
    t, tok = cfg.train, report["tokens"]
    per_batch = int(t.batch_size * min(tok["kept"]["p95"] or 1, cfg.data.max_length))
    # the train: section of the config given here (`luyen data prepare DATA -c train.yaml`); its
    # defaults otherwise, which the report says, since a demo config with 1 epoch is 3x shorter
    train_records = max(report["records"]["kept"] * cfg.data.split.train, 1)
    epochs = t.max_steps * t.batch_size * t.grad_accum / train_records if t.max_steps else t.epochs
    est = estimate_training(shape, t, tokens=tok["train_tokens"] * epochs, loss_tokens=tok["train_loss_tokens"] * epochs,
                            tokens_per_batch=per_batch, peak_flops=training_peak(t.dtype), precision=choose(t.dtype).name,
                            steps=math.ceil(epochs * train_records / (t.batch_size * t.grad_accum)),
                            optimizer_params_per_s=optimizer_rate())
    return {**est, "epochs": round(epochs, 3)}


def _write_splits(rd: RunDir, scratch: Path, keep, split) -> None:
    paths = [rd.file(f"{name}.jsonl") for name in SPLITS]
    temps = [p.with_name(f".{p.name}.tmp") for p in paths]
    handles = [open(t, "wb") for t in temps]
    try:
        kept = 0
        with open(scratch, "rb") as f:
            for i, line in enumerate(f):
                if keep[i]:
                    handles[split[kept]].write(line)
                    kept += 1
    finally:
        for h in handles:
            h.close()
    for t, p in zip(temps, paths):
        t.replace(p)


def _refuse_overlap(files: list[Path], out: Path) -> None:
    out = out.resolve()
    for f in files:
        if out == f.resolve().parent or out in f.resolve().parents:
            raise LuyenError("the output folder contains an input file; luyen never overwrites inputs",
                             file=str(out), fix="choose an --out folder outside your data")


def read_split(data_dir: Path, split: str) -> list[dict]:
    """Load one split of a prepared data directory (refusing an unfinished one)."""
    from luyen.manifest import read_manifest
    read_manifest(data_dir, stage="data")
    with open(Path(data_dir) / f"{split}.jsonl", "rb") as f:
        return [orjson.loads(line) for line in f]
