"""`luyen run CONFIG.yaml`: every stage of a config, in order, into runs/<name>/<stage>/.

    from luyen.pipeline import run
    outcome = run(load_config("configs/demo.yaml"))      # {"data": "skipped", "train": "ran", ...}

The stages are data -> rag (when `rag.documents` names documents) -> train -> eval -> export, as
`stages:` selects. Each stage is a record: the config keys it computes from, the stages whose outputs
it reads, whether it can resume, and how it calls its stage module. Its fingerprint hashes those
config values, the manifests (or, for data and rag, the files) it reads, and luyen's version; the
manifest records it. A stage whose manifest holds the same fingerprint is skipped, so changing
`train.lr` redoes train, eval and export and leaves data alone; `--from STAGE` redoes that stage and
every later one. The run folder's pipeline.json notes the fingerprint each stage was started with,
so a training killed half way (Ctrl-C, a lost machine) resumes from its last checkpoint when the
same command runs again; `RunDir.plan` makes these decisions, nowhere else.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from luyen import __version__
from luyen.config import RunConfig, Stage as StageName
from luyen.errors import LuyenError
from luyen.manifest import MANIFEST, Manifest, RunDir, atomic_write, file_sha256, fingerprint, fingerprinted

STATE = "pipeline.json"


@dataclass(frozen=True)
class Stage:
    name: StageName
    keys: tuple[str, ...]                 # config values (dotted) the stage's output depends on
    needs: tuple[str, ...]                # earlier stages whose outputs it reads
    run: Callable[..., Manifest]          # (cfg, inputs: {stage: folder}, out, console, resume) -> Manifest
    resumable: bool = False
    files: Callable[[RunConfig], list[Path]] | None = None  # the user's files it reads (data, documents)
    wanted: Callable[[RunConfig], bool] = lambda cfg: True


def _data(cfg, inputs, out, console, resume):
    from luyen.data.stage import run
    if not cfg.data.files:
        raise LuyenError("no data files to prepare", field="data.files",
                         fix="list your data files under data: files: in the config (or pass data.files=[PATH])")
    return run(cfg, cfg.data.files, out, overwrite=True)


def _rag(cfg, inputs, out, console, resume):
    from luyen.rag.build import run
    return run(cfg, cfg.rag.documents, out, overwrite=True)


def _train(cfg, inputs, out, console, resume):
    from luyen.train.stage import run
    return run(cfg, inputs["data"], out, resume=resume, overwrite=not resume, console=console)


def _eval(cfg, inputs, out, console, resume):
    from luyen.evaluate.stage import run
    return run(cfg, inputs["train"], inputs["data"], out, rag=inputs.get("rag"), overwrite=True, console=console)


def _export(cfg, inputs, out, console, resume):
    from luyen.export.stage import run
    return run(cfg, inputs["train"], out, fmt=cfg.export.format, quant=cfg.export.quant or None,
               overwrite=True, console=console)


def _data_files(cfg: RunConfig) -> list[Path]:
    from luyen.data.stage import data_files
    return data_files(cfg.data.files, cfg) if cfg.data.files else []


def _documents(cfg: RunConfig) -> list[Path]:
    from luyen.rag.documents import find_documents
    return [path for _, path in find_documents(cfg.rag.documents)]


STAGES: tuple[Stage, ...] = (
    Stage("data", ("seed", "model", "data"), (), _data, files=_data_files),
    Stage("rag", ("rag.mode", "rag.encoder", "rag.chunk_tokens", "rag.overlap_tokens", "rag.text_field", "rag.k",
                  "rag.rrf_k", "rag.dense_weight", "rag.bm25_weight", "rag.candidates", "rag.template", "rag.documents"),
          (), _rag, files=_documents, wanted=lambda cfg: bool(cfg.rag.documents)),
    Stage("train", ("seed", "model", "data.max_length", "train", "generate.repetition_penalty"), ("data",), _train,
          resumable=True),
    Stage("eval", ("seed", "eval", "generate", "rag.template", "rag.index"), ("data", "train", "rag"), _eval),
    Stage("export", ("export",), ("train",), _export),
)


def run(cfg: RunConfig, *, start: str | None = None, console=None) -> dict[str, str]:
    """Run the config's stages into its run folder; returns {stage: "skipped" | "ran" | "resumed"}."""
    from rich.console import Console
    console = console or Console(stderr=True)
    root = folder(cfg)
    stages = [s for s in STAGES if s.name in cfg.stages and s.wanted(cfg)]
    names = [s.name for s in stages]
    if cfg.train.task == "embedding" and {"eval", "export"} & set(names):
        raise LuyenError("`luyen run` evaluates and exports language models; a retriever (train.task=embedding) "
                         "is trained by `luyen train` and measured by `luyen rag eval`", field="train.task",
                         fix="run `luyen train CONFIG --out DIR`, or set stages: [data, train]")
    if start is not None and start not in names:
        raise LuyenError(f"no stage '{start}' in this run", field="--from", fix=f"use one of {', '.join(names)}")
    state = _state(root, cfg.overwrite)
    done: dict[str, str] = {}
    forced = False
    for stage in stages:
        forced = forced or stage.name == start  # --from: this stage and every later one
        out = root / stage.name
        inputs = {need: root / need for need in stage.needs if need in names}
        fp = _fingerprint(stage, cfg, inputs)
        plan = "fresh" if forced else RunDir.plan(out, fp, started=state.get(stage.name), resumable=stage.resumable)
        if plan == "skip":
            console.print(f"run: {stage.name}: skipped (unchanged since {_created(out)})", highlight=False)
            done[stage.name] = "skipped"
            continue
        console.print(f"run: {stage.name}: {'resuming' if plan == 'resume' else 'running'} -> {out}", highlight=False)
        state[stage.name] = fp
        atomic_write(root / STATE, json.dumps({"stages": state}, indent=2) + "\n")
        with fingerprinted(fp):
            stage.run(cfg, inputs, out, console, plan == "resume")
        done[stage.name] = "resumed" if plan == "resume" else "ran"
    return done


def folder(cfg: RunConfig) -> Path:
    """The run folder: `out`, else runs/<name>."""
    return Path(cfg.out or Path("runs") / cfg.name)


def _fingerprint(stage: Stage, cfg: RunConfig, inputs: dict[str, Path]) -> str:
    tree = cfg.model_dump()
    parts: dict[str, Any] = {"stage": stage.name, "luyen": __version__,
                             "config": {key: _dotted(tree, key) for key in stage.keys}}
    parts["inputs"] = {name: file_sha256(folder / MANIFEST) if (folder / MANIFEST).is_file() else None
                       for name, folder in inputs.items()}
    if stage.files is not None:
        parts["files"] = {str(p): file_sha256(p) for p in stage.files(cfg)}
    return fingerprint(parts)


def _dotted(tree: dict, key: str) -> Any:
    for part in key.split("."):
        tree = tree[part]
    return tree


def _state(root: Path, overwrite: bool) -> dict[str, str]:
    """The fingerprints stages were started with; refuses a folder that is not a luyen run."""
    path = root / STATE
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8")).get("stages", {})
    if root.is_dir() and any(root.iterdir()) and not overwrite:
        raise LuyenError("this folder holds files that are not a `luyen run` run", file=str(root),
                         fix="choose another name: (or out:), or pass --overwrite to let luyen replace its stages")
    root.mkdir(parents=True, exist_ok=True)
    return {}


def _created(out: Path) -> str:
    return json.loads((out / MANIFEST).read_text(encoding="utf-8")).get("created", "?")
