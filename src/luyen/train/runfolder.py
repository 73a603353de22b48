"""The training run's output folder: a fresh run, the resume of an unfinished one, or a refusal.

`run.json` (written first) says what the run computes, so a later `--resume` continues only the same
run: same config, same data, same resolved precision; `manifest.json` (written last) marks it finished.

    ckpt = start(out, identity(cfg, data_manifest, "fp32"), resume=False, overwrite=False)  # None: fresh
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from luyen.config import RunConfig
from luyen.errors import LuyenError
from luyen.manifest import MANIFEST, atomic_write
from luyen.precision import LONG
from luyen.train import checkpoint


# train.* fields that say how or from where a run goes, not what it computes: a resume may change them
NOT_COMPUTED = ("threads", "logging_steps", "resume", "data")


def identity(cfg: RunConfig, data_manifest: dict, precision: str) -> dict:
    """What the run computes: the settings training reads (seed, model, train.*, data.max_length and the
    repetition penalty saved with the model), its data's content and the *resolved* precision, so that
    resuming `dtype: auto` on hardware that resolves it differently is refused instead of switching precision."""
    conf = cfg.model_dump()
    what = {"seed": conf["seed"], "model": conf["model"], "max_length": conf["data"]["max_length"],
            "train": {k: v for k, v in conf["train"].items() if k not in NOT_COMPUTED},
            "repetition_penalty": conf["generate"]["repetition_penalty"]}
    blob = json.dumps({"config": what, "data": data_manifest.get("outputs"), "precision": precision}, sort_keys=True)
    return {"id": hashlib.sha256(blob.encode()).hexdigest()[:16], "name": cfg.name, "precision": precision}


def start(out: Path, identity: dict, resume: bool, overwrite: bool) -> Path | None:
    """Decide between a fresh run, a resume and a refusal; returns the checkpoint to resume from."""
    marker = out / "run.json"
    if out.exists() and not out.is_dir():
        raise LuyenError("output path exists and is a file", file=str(out), fix="choose a folder path")
    busy = out.is_dir() and any(out.iterdir())
    if busy and overwrite:
        (out / MANIFEST).unlink(missing_ok=True)
        shutil.rmtree(out)
        busy = False
    if busy:
        if (out / MANIFEST).exists():
            raise LuyenError("this output folder holds a finished run", file=str(out),
                             fix="choose a new --out folder or pass --overwrite")
        if not marker.exists():
            raise LuyenError("this output folder holds files that are not a luyen training run", file=str(out),
                             fix="choose a new --out folder or pass --overwrite")
        earlier = json.loads(marker.read_text())
        if earlier.get("precision", identity["precision"]) != identity["precision"]:
            raise LuyenError(f"this run trained in {earlier['precision']}, but train.dtype resolves to "
                             f"{identity['precision']} on this machine", file=str(out),
                             fix=f"resume with train.dtype={LONG[earlier['precision']]} (or on the "
                             "machine kind it started on), or pass --overwrite to start again")
        if earlier.get("id") != identity["id"]:
            raise LuyenError("this output folder holds a different run (other config or data)", file=str(out),
                             fix="resume with the same config and data, choose a new --out folder, or pass --overwrite")
        if not resume:
            raise LuyenError("this output folder holds an unfinished run", file=str(out),
                             fix="pass --resume to continue it, or --overwrite to start again")
        return checkpoint.latest(out / "checkpoints")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(marker, json.dumps(identity) + "\n")
    return None
