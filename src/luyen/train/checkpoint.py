"""Checkpoints that survive SIGKILL and full disks, in safetensors only (no pickle anywhere).

A checkpoint is a folder `checkpoints/step-000120/` holding the trainable weights, the optimiser's
state, the torch RNG state and `state.json` (step, best validation loss, ...). It is written into a
temporary folder, fsynced, and renamed into place: a folder named `step-*` is always complete.
Older checkpoints are deleted only after the new one is in place, so a failed save (ENOSPC, a kill)
leaves the previous checkpoint loadable.

    save(out / "checkpoints", step=120, model=model, optimizer=opt, state={...}, keep=2)
    ckpt = latest(out / "checkpoints")        # None when there is none
    state = load(ckpt, model, opt)
"""
from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from luyen.errors import LuyenError

PREFIX = "step-"


def trainable_state(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().contiguous().cpu() for n, p in model.named_parameters() if p.requires_grad}


def save(root: Path, *, step: int, model, optimizer, state: dict, keep: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{PREFIX}{step:06d}"
    tmp = root / f".tmp-{PREFIX}{step:06d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        save_file(trainable_state(model), str(tmp / "trainable.safetensors"))
        tensors, meta = _optimizer_tensors(optimizer)
        save_file(tensors, str(tmp / "optimizer.safetensors"))
        save_file({"torch": torch.get_rng_state()}, str(tmp / "rng.safetensors"))
        (tmp / "state.json").write_text(json.dumps({**state, "step": step, "optimizer": meta}, indent=1))
        for f in tmp.iterdir():
            _fsync(f)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync(root)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        prev = latest(root)
        kept = f"the previous checkpoint {prev.name} is intact" if prev else "no earlier checkpoint exists"
        why = "the disk is full" if e.errno == errno.ENOSPC else f"{e.strerror or e}"
        raise LuyenError(f"could not save checkpoint step {step}: {why}; {kept}", file=str(root),
                         fix="free disk space (or lower train.save_total_limit), then run again with --resume") from e
    for old in sorted(root.glob(f"{PREFIX}*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest(root: Path) -> Path | None:
    done = sorted(p for p in Path(root).glob(f"{PREFIX}*") if (p / "state.json").is_file())
    return done[-1] if done else None


def load(ckpt: Path, model, optimizer) -> dict:
    state = json.loads((ckpt / "state.json").read_text())
    weights = load_file(str(ckpt / "trainable.safetensors"))
    params = dict(model.named_parameters())
    missing = [n for n in weights if n not in params]
    if missing:
        raise LuyenError(f"checkpoint does not match this model ({len(missing)} unknown weights, e.g. {missing[0]})",
                         file=str(ckpt), fix="resume with the same config and model, or start a new --out folder")
    with torch.no_grad():
        for n, t in weights.items():
            if params[n].shape != t.shape:
                raise LuyenError(f"checkpoint weight {n} has shape {tuple(t.shape)}, the model {tuple(params[n].shape)}",
                                 file=str(ckpt), fix="resume with the same config and model")
            params[n].copy_(t)
    optimizer.load_state_dict(_optimizer_state(load_file(str(ckpt / "optimizer.safetensors")), state["optimizer"]))
    torch.set_rng_state(load_file(str(ckpt / "rng.safetensors"))["torch"])
    return state


def _optimizer_tensors(optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = optimizer.state_dict()
    tensors = {}
    for idx, slots in sd["state"].items():
        for key, value in slots.items():
            t = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"{idx}.{key}"] = t.detach().contiguous().cpu()
    return tensors, {"param_groups": sd["param_groups"]}


def _optimizer_state(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for name, t in tensors.items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = t
    return {"state": state, "param_groups": meta["param_groups"]}


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
