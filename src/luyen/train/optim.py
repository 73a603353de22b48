"""The optimiser and learning-rate schedule every trainer uses (the loop, the retriever's):

    opt, sched = optimizer(model, tc, lr, total)

AdamW over what trains, in groups: weight decay on matrices only (train.weight_decay says "not applied to
biases and norms"), and with LoRA+ (Hayou et al. 2024, train.lora.plus_ratio) LoRA's B matrices at lr x
ratio: A and B are not symmetric (B starts at zero), and the paper reaches a lower loss in the same steps
by letting B move faster (the demo did not: bench/demo_budget.py keeps the runs). The schedule warms up
over train.warmup_ratio of the steps, then follows train.scheduler.
"""
from __future__ import annotations

import torch

from luyen.errors import LuyenError

B_MATRICES = ("lora_B", "lora_embedding_B")  # peft's names for the B side of LoRA (linear and embedding layers)


def groups(model, tc, lr: float) -> list[dict]:
    """AdamW parameter groups of the trainable parameters (empty groups left out)."""
    ratio = tc.lora.plus_ratio
    out: dict[tuple[bool, bool], list] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            decays = not (p.ndim < 2 or "norm" in name.lower() or name.endswith(".bias"))
            faster = ratio != 1 and any(f".{b}." in f".{name}." for b in B_MATRICES)
            out.setdefault((decays, faster), []).append(p)
    if ratio != 1 and not any(faster for _, faster in out):
        raise LuyenError(f"train.lora.plus_ratio is {ratio:g}, but this run trains no LoRA B matrix",
                         field="train.lora.plus_ratio", fix="leave it at 1 (it is for methods that train LoRA adapters)")
    return [{"params": ps, "weight_decay": tc.weight_decay if decays else 0.0, "lr": lr * ratio if faster else lr}
            for (decays, faster), ps in sorted(out.items())]


def optimizer(model, tc, lr: float, total: int):
    """AdamW (foreach) and its schedule over ``total`` optimiser steps."""
    from transformers import get_scheduler
    opt = torch.optim.AdamW(groups(model, tc, lr), lr=lr, betas=(0.9, 0.999), eps=1e-8, foreach=True)
    name = {"constant": "constant_with_warmup"}.get(tc.scheduler, tc.scheduler)
    return opt, get_scheduler(name, opt, num_warmup_steps=int(tc.warmup_ratio * total), num_training_steps=total)
