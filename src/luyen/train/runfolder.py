"""The training run's output folder: a fresh run, the resume of an unfinished one, or a refusal.

`run.json` (written first) says what the run computes, so a later `--resume` continues only the same
run: same config, same data, same resolved precision; `manifest.json` (written last) marks it finished.

    ckpt = start(out, identity(cfg, data_manifest, "fp32"), resume=False, overwrite=False)  # None: fresh
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from luyen.config import RunConfig
from luyen.errors import LuyenError
from luyen.manifest import RunDir
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
    """Decide between a fresh run, a resume and a refusal (`RunDir.resume_or_start`, plus the precision
    check); returns the checkpoint to resume from."""
    def same_precision(earlier: dict) -> None:
        if earlier.get("precision", identity["precision"]) != identity["precision"]:
            raise LuyenError(f"this run trained in {earlier['precision']}, but train.dtype resolves to "
                             f"{identity['precision']} on this machine", file=str(out),
                             fix=f"resume with train.dtype={LONG[earlier['precision']]} (or on the "
                             "machine kind it started on), or pass --overwrite to start again")
    _, resuming = RunDir.resume_or_start(out, "training", identity, resume=resume, overwrite=overwrite,
                                         check=same_precision)
    return checkpoint.latest(out / "checkpoints") if resuming else None
