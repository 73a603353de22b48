"""The export stage: a trained model (or any model) as merged safetensors, GGUF or ONNX.

    manifest = run(cfg, "runs/demo/train", "runs/demo/export/gguf", fmt="gguf", quant=["q8_0", "q4_k_m"])

Load (a `luyen train` run with its LoRA adapter or full weights, or any model) -> fold the adapter
into the base -> save the merged folder (into the output for ``merged``, into a temp folder that the
GGUF or ONNX exporter reads otherwise) -> manifest.json, last. A failed export leaves no manifest,
so the folder never looks complete.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from luyen.config import RunConfig
from luyen.errors import LuyenError
from luyen.export import FORMATS
from luyen.manifest import MANIFEST, Manifest, RunDir, read_manifest


def run(cfg: RunConfig, run_or_model: str | Path, out_dir: str | Path, fmt: str = "merged",
        quant: list[str] | None = None, overwrite: bool = False, console=None) -> Manifest:
    from rich.console import Console

    from luyen.export.merged import merge_adapter, save_merged
    from luyen.models.trained import load_trained, model_folder
    console = console or Console(stderr=True)
    head = _head_folder(run_or_model, fmt)
    if head is not None:
        return _run_head(cfg, head, run_or_model, out_dir, fmt, quant, overwrite, console)
    exporter, quant = _exporter(fmt, quant)
    source = _check_source(run_or_model)
    out_dir = Path(out_dir)
    RunDir.check(out_dir, overwrite)  # refuses with the usual message, before minutes of loading
    with console.status(f"export: loading {source}", spinner="dots"):
        model, tok = load_trained(source, trust_remote_code=cfg.model.trust_remote_code)
        model = merge_adapter(model, str(source))
    if cfg.model.chat_template:
        from luyen.data.template import resolve_chat_template
        tok.chat_template = resolve_chat_template(tok, cfg.model.chat_template)
    provenance = {"source": str(source), "format": fmt, "quant": quant,
                  "merged_adapter": (model_folder(source) / "adapter_config.json").is_file(),
                  "parameters": sum(p.numel() for p in model.parameters())}
    with RunDir.create(out_dir, stage="export", overwrite=overwrite) as rd:
        if exporter is None:
            console.print(f"export: saving the merged model into {rd.path}", highlight=False)
            save_merged(model, tok, rd.path, provenance)
            metrics = {}
        else:
            with tempfile.TemporaryDirectory(prefix="luyen-merged-") as tmp:
                save_merged(model, tok, Path(tmp), provenance)
                del model  # the exporter reloads what it needs from the folder
                try:
                    metrics = exporter(Path(tmp), rd.path, quant, console)
                except LuyenError as e:  # name what the user passed, not the temp folder
                    if e.file != tmp:
                        raise
                    raise LuyenError(e.message, file=str(source), field=e.field, fix=e.fix) from None
        rd.outputs += sorted(str(p.relative_to(rd.path)) for p in rd.path.rglob("*")
                             if p.is_file() and p.name != MANIFEST and not p.name.startswith("."))
        return rd.finish(config=cfg.model_dump(), inputs=_input_files(source),
                         metrics={**provenance, **metrics}, seed=None)


def _exporter(fmt: str, quant: list[str] | None):
    """The format's export function (None for merged) and its quant list, checked before any loading."""
    if fmt not in FORMATS:
        raise LuyenError(f"unknown export format '{fmt}'", field="--format", fix=f"use one of {', '.join(FORMATS)}")
    if fmt == "merged":
        if quant:
            raise LuyenError("merged safetensors are not quantised", field="--quant",
                             fix="leave out --quant, or export --format gguf or onnx")
        return None, []
    if fmt == "gguf":
        from luyen.export import gguf
        quant = gguf.check_quants(quant)
        gguf.require_llama_cpp()
        return gguf.export, quant
    try:
        from luyen.export import onnx
    except ImportError as e:
        if e.name != "luyen.export.onnx":
            raise
        raise LuyenError("this luyen has no ONNX exporter", field="--format",
                         fix="export --format merged or gguf, or update luyen") from None
    onnx.require_onnx()
    return onnx.export, list(quant or [])


def _head_folder(run_or_model, fmt: str) -> Path | None:
    """The model folder of a task-head run (classification, extractive QA, seq2seq), None for a chat model."""
    if fmt not in FORMATS:
        return None  # _exporter names the unknown format
    from luyen.tasks.predictor import head_folder
    return head_folder(run_or_model)


def _run_head(cfg, folder: Path, source, out_dir, fmt: str, quant, overwrite: bool, console) -> Manifest:
    """A head run as ONNX graphs (luyen.tasks.onnx) or as its model folder, already merged, copied as is."""
    from luyen.tasks import read_spec
    task = read_spec(folder)["task"]
    if fmt == "gguf":
        raise LuyenError(f"GGUF is for decoder chat models; this run trained a {task} head", file=str(source),
                         fix="export --format onnx (onnxruntime) or --format merged (transformers)")
    if fmt == "onnx":
        _exporter(fmt, None)  # the install hint when the ONNX libraries are missing
        from luyen.tasks import onnx as head_onnx
        quant = head_onnx.check_quant(quant)
    else:
        _exporter(fmt, quant)  # merged: refuses a quant
        quant = []
    _check_source(source)
    out_dir = Path(out_dir)
    RunDir.check(out_dir, overwrite)
    provenance = {"source": str(source), "format": fmt, "quant": quant, "head": True, "task": task}
    with RunDir.create(out_dir, stage="export", overwrite=overwrite) as rd:
        if fmt == "onnx":
            metrics = head_onnx.export(folder, rd.path, quant, console)
        else:
            console.print(f"export: copying the {task} model into {out_dir}", highlight=False)
            metrics = _copy_head(folder, rd.path, provenance)
        rd.outputs += sorted(str(p.relative_to(rd.path)) for p in rd.path.rglob("*")
                             if p.is_file() and p.name != MANIFEST and not p.name.startswith("."))
        return rd.finish(config=cfg.model_dump(), inputs=_input_files(source),
                         metrics={**provenance, **metrics}, seed=None)


def _copy_head(folder: Path, out: Path, provenance: dict) -> dict:
    """The head's model folder (LoRA merged in training) copied file for file, then loaded and run once."""
    import shutil

    from luyen.export.merged import PROVENANCE
    from luyen.manifest import atomic_write
    from luyen.tasks.predictor import Predictor
    for f in sorted(folder.iterdir()):
        if f.is_file() and not f.name.startswith("."):
            shutil.copyfile(f, out / f.name)
    atomic_write(out / PROVENANCE, json.dumps(provenance, ensure_ascii=False, indent=2) + "\n")
    p = Predictor.load(out)
    item = ({"question": "Hành lý xách tay tối đa bao nhiêu?", "context": "Hành lý xách tay tối đa 7 kg."}
            if p.name == "extractive_qa" else {"text": "Hành lý xách tay tối đa 7 kg."})
    p.predict([item])
    return {"parameters": sum(t.numel() for t in p.model.parameters()), "loads": True}


def _check_source(run_or_model: str | Path) -> str:
    """A train run must be finished (manifest.json); a half-written one is refused, not exported."""
    path = Path(str(run_or_model)).expanduser()
    if path.is_dir() and (path / "model").is_dir() and not (path / MANIFEST).is_file():
        read_manifest(path, stage="train")  # raises: incomplete run
    if path.is_dir() and (path / MANIFEST).is_file():
        stage = json.loads((path / MANIFEST).read_text(encoding="utf-8")).get("stage")
        if stage != "train" and not (path / "config.json").is_file():
            read_manifest(path, stage="train")  # raises: the output of another stage
    return str(run_or_model)


def _input_files(source: str) -> list[Path]:
    """The weight and adapter files exported, hashed into the manifest."""
    from luyen.models.trained import model_folder
    folder = model_folder(source)
    if not folder.is_dir():
        from luyen.models.resolve import resolve_model
        folder = resolve_model(source)
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in (".safetensors", ".json"))
