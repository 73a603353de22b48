"""Checkpoints that survive SIGKILL and full disks, in safetensors only (no pickle anywhere).

A checkpoint is a folder `checkpoints/step-000120/` holding the trainable weights, the optimiser's
state, the RNG states and `state.json`: the loop's `LoopState`, whole, and the fp16 loss-scaler state. It
is written into a temporary folder, fsynced, and renamed into place: a folder named `step-*` is
always complete. Older checkpoints are deleted only after the new one is in place, so a failed save
(ENOSPC, a kill) leaves the previous checkpoint loadable. Weights that are non-finite or exploded
(see `weight_bound`) are never written.

    save(out / "checkpoints", model=model, optimizer=opt, state=LoopState(step=120), keep=2, protect=80)
    ckpt = latest(out / "checkpoints")        # None when there is none
    state = load(ckpt, model, opt, scaler)    # the LoopState it was saved with

What an exact resume covers: resuming from a checkpoint continues as if the run had never stopped
(same losses and weights, bit for bit on CPU) because these are restored:
  - the trainable weights (frozen ones come from the base model, which the run's identity pins);
  - the optimiser state (AdamW moments and step counts) and its parameter groups (lr, decay);
  - the learning-rate schedule, replayed by the loop to the saved step;
  - the torch CPU RNG (dropout), and the CUDA RNG of every visible device when CUDA is available at
    both save and load (a checkpoint saved without CUDA carries no CUDA state);
  - the fp16 GradScaler (scale, growth tracker, factors) when the run uses one;
  - the loop's position and bookkeeping: every field of `LoopState` (step, best validation loss and
    step, early-stopping count, ...), saved and restored as one dataclass, so a field added to it is
    carried without touching this file; the data order is a function of (seed, epoch) only.
Not covered: Python's `random` and NumPy's RNG (the loop draws nothing from them); GPU kernels that
are not deterministic (atomics in some cuBLAS/cuDNN paths), which differ run to run even without a
resume; and a resume with another number of processes or devices, which changes the data shards.
"""
from __future__ import annotations

import dataclasses
import errno
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from luyen.errors import LuyenError
from luyen.manifest import staged

PREFIX = "step-"
# Fine-tuning moves weights by small amounts relative to their O(1) start (norm weights ~1, matrices
# ~1/sqrt(width), LoRA B = 0), and AdamW moves each weight by about lr per step, so a weight 10^4 x
# the largest starting weight (or above 10^4 when all start below 1) only comes from a blow-up.
# It also keeps every saved weight inside float16's range (65504), so any checkpoint can be exported.
EXPLODE_FACTOR = 1e4


@dataclass
class LoopState:
    """Where the training loop is and what it has seen: everything a resume needs besides the weights,
    the optimiser and the RNG. Fields are JSON values; `save` writes all of them and `load` restores all."""
    step: int = 0
    best_val: float | None = None
    best_step: int | None = None
    bad_evals: int = 0  # evaluations since the best one (early stopping)
    tokens: int = 0
    loss_tokens: int = 0
    train_seconds: float = 0.0
    last_loss: float | None = None
    initial_val: float | None = None
    start_weight_max: float | None = None  # max |w| of the trainable weights before step 1 (weight_bound)
    # What the model holds when the loop returns: the weights of step `shipped_step`, "best" (lowest validation
    # loss, reloaded from its checkpoint) or "last" (no validation split: the last step's weights).
    shipped_step: int | None = None
    shipped_weights: str | None = None
    objective: dict = dataclasses.field(default_factory=dict)  # what the objective carries between steps (KTO's KL)
    initial_val_stats: dict = dataclasses.field(default_factory=dict)  # the objective's statistics (rewards) at step 0
    best_val_stats: dict = dataclasses.field(default_factory=dict)  # ... at the best validation


class ExplodedWeights(ValueError):
    """The weights are non-finite or above the bound: they must not be saved or resumed from."""


def weight_bound(start_max_abs: float) -> float:
    """The largest |w| a healthy run can reach, given the largest |w| at the start of training."""
    return EXPLODE_FACTOR * max(1.0, start_max_abs)


def max_abs(tensors) -> float:
    """The largest |w| over the tensors; inf when any is NaN or infinite."""
    m = 0.0
    for t in tensors:
        if t.numel():  # the inf-norm is a reduction: no full-size temporary, unlike t.abs().max()
            norm = torch.linalg.vector_norm(t.detach(), float("inf")).float()
            m = max(m, float(torch.nan_to_num(norm, nan=math.inf, posinf=math.inf)))
    return m


def trainable_state(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().contiguous().cpu() for n, p in model.named_parameters() if p.requires_grad}


def save(root: Path, *, model, optimizer, state: LoopState, keep: int, protect: int | None = None,
         bound: float | None = None, scaler=None) -> Path:
    """Write the checkpoint of step `state.step`, then delete all but the newest `keep` and the one of step
    `protect`. Raises ExplodedWeights, writing nothing, when a weight is non-finite or above `bound`."""
    step = state.step
    weights = trainable_state(model)
    if bound is not None:
        big = max_abs(weights.values())
        if not big <= bound:
            raise ExplodedWeights(f"the weights exploded (max |w| {big:.3g}, above the bound {bound:.3g})")
    final = root / f"{PREFIX}{step:06d}"
    try:
        with staged(final, durable=True) as tmp:
            save_file(weights, str(tmp / "trainable.safetensors"))
            tensors, meta = _optimizer_tensors(optimizer)
            save_file(tensors, str(tmp / "optimizer.safetensors"))
            save_file(rng_state(), str(tmp / "rng.safetensors"))
            extra = {"scaler": scaler.state_dict()} if scaler is not None and scaler.is_enabled() else {}
            (tmp / "state.json").write_text(json.dumps({"loop": dataclasses.asdict(state), **extra, "optimizer": meta},
                                                       indent=1))
    except OSError as e:
        prev = latest(root)
        kept = f"the previous checkpoint {prev.name} is intact" if prev else "no earlier checkpoint exists"
        why = "the disk is full" if e.errno == errno.ENOSPC else f"{e.strerror or e}"
        raise LuyenError(f"could not save checkpoint step {step}: {why}; {kept}", file=str(root),
                         fix="free disk space (or lower train.save_total_limit), then run again with --resume") from e
    kept = f"{PREFIX}{protect:06d}" if protect is not None else None
    for old in sorted(root.glob(f"{PREFIX}*"))[:-keep]:
        if old.name != kept:
            shutil.rmtree(old, ignore_errors=True)
    return final


def rng_state() -> dict[str, torch.Tensor]:
    """The torch CPU RNG and, only where CUDA is available, each device's CUDA RNG (`cuda.0`, ...)."""
    states = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states.update({f"cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    return states


def set_rng_state(states: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(states["torch"])
    cuda = [states[f"cuda.{i}"] for i in range(len(states)) if f"cuda.{i}" in states]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[:torch.cuda.device_count()])


def step_path(root: Path, step: int) -> Path:
    return Path(root) / f"{PREFIX}{step:06d}"


def complete(root: Path) -> list[Path]:
    """The checkpoints under ``root`` that were written whole (state.json is written last), oldest first."""
    return sorted(p for p in Path(root).glob(f"{PREFIX}*") if (p / "state.json").is_file())


def step_of(ckpt: Path) -> int:
    return int(ckpt.name[len(PREFIX):])


def latest(root: Path) -> Path | None:
    done = complete(root)
    return done[-1] if done else None


def latest_good(root: Path, bound: float) -> Path | None:
    """The newest complete checkpoint whose weights are all finite and within `bound`."""
    for p in reversed(complete(root)):
        try:
            if max_abs(load_file(str(p / "trainable.safetensors")).values()) <= bound:
                return p
        except (OSError, ValueError, RuntimeError):  # unreadable or cut short: not a good checkpoint
            continue
    return None


def load_weights(ckpt: Path, model) -> None:
    """Copy a checkpoint's trainable weights into the model."""
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


def load(ckpt: Path, model, optimizer, scaler=None, state_type: type = LoopState):
    """Restore everything `save` wrote (see the module docstring); returns the loop state it was saved
    with, as a `state_type` (LoopState, or a dataclass extending it)."""
    saved = json.loads((ckpt / "state.json").read_text())
    load_weights(ckpt, model)
    optimizer.load_state_dict(_optimizer_state(load_file(str(ckpt / "optimizer.safetensors")), saved["optimizer"]))
    set_rng_state(load_file(str(ckpt / "rng.safetensors")))
    if scaler is not None and scaler.is_enabled() and saved.get("scaler"):
        scaler.load_state_dict(saved["scaler"])
    return state_type(**saved["loop"])


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
