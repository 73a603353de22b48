"""The training stage's checks that can fail, run before the first step so a run never dies half way
for a reason known at the start: context, usable examples, packing, memory.

    check_context(model, max_length)
    check_examples(stats, cfg.train, world=1, data_dir=Path("runs/demo/data"))
    check_packing(model, method_of(cfg.train))
    check_memory(model, cfg.train, stats.longest, accelerator.device, precision="fp32")
"""
from __future__ import annotations

from pathlib import Path

import torch

from luyen.errors import LuyenError

NO_LOSS_LIMIT = 0.5  # fail when more than this share of examples has no loss-bearing token
MEMORY_HEADROOM = 0.9  # refuse a run whose estimate exceeds this share of the free memory


def check_context(model, max_length: int) -> None:
    from luyen.models.shape import config_shape
    ctx = config_shape(model.config)["context"]
    if ctx and max_length > ctx:
        raise LuyenError(f"max_length {max_length} is beyond the model's context of {ctx} tokens",
                         field="train.max_length", fix=f"set train.max_length (or data.max_length) to at most {ctx}")


def check_examples(stats, tc, world: int, data_dir: Path) -> None:
    where = str(data_dir / "train.jsonl")
    if stats.records and stats.no_loss / stats.records > NO_LOSS_LIMIT:
        raise LuyenError(f"{stats.no_loss} of {stats.records} training examples have no loss-bearing token "
                         "(no assistant turn survives the template)", file=where,
                         fix="check the chat roles (the model must answer as 'assistant') or the chat template")
    if stats.no_stop:
        raise LuyenError(f"{stats.no_stop} of {stats.records} training chats end their answer without a stop token "
                         "(the chat template puts no EOS or end-of-turn token the loss can reach after the answer), so "
                         "the model would never learn to stop", file=where,
                         fix="use a chat template that ends each assistant turn with the tokenizer's EOS or a single "
                         "end-of-turn token (model.chat_template), or leave it unset for luyen's default")
    if stats.examples == 0:
        reason = f"all {stats.too_long} are longer than max_length" if stats.too_long else "none has loss-bearing tokens"
        raise LuyenError(f"no training example is usable: {reason}", file=where,
                         fix="raise train.max_length or re-run `luyen data prepare` with a smaller data.max_length")
    need = tc.batch_size * tc.grad_accum * world
    if need > stats.examples:
        raise LuyenError(f"one optimiser step needs {need} examples (batch_size {tc.batch_size} x grad_accum "
                         f"{tc.grad_accum} x {world} processes) but the training split has {stats.examples}"
                         + (f" ({stats.too_long} more are longer than max_length)" if stats.too_long else ""),
                         field="train.batch_size", fix=f"use train.batch_size <= {max(1, stats.examples // (tc.grad_accum * world))}")


def check_supervised(records: list[dict]) -> None:
    """Supervised training learns every answer it is given: answers rated bad must not be among them."""
    bad = sum(r["kind"] == "feedback" for r in records)
    if bad:
        raise LuyenError(f"the training data holds {bad} answers rated good or bad (KTO feedback); supervised "
                         "fine-tuning would learn the bad ones too", field="train.method",
                         fix="use train.method=kto for rated answers")


# options of supervised fine-tuning on answers, each with the value that turns it off; preference
# objectives and retriever training refuse them while set
SUPERVISED_ONLY = {"neftune_alpha": "0", "train_on_prompt": "false"}


def supervised_options_set(tc) -> list[tuple[str, str]]:
    """(option, its off value) for each of SUPERVISED_ONLY that `tc` sets."""
    return [(field, off) for field, off in SUPERVISED_ONLY.items() if getattr(tc, field)]


def check_supervised_options(tc, method) -> None:
    """Options of supervised fine-tuning that a preference objective cannot take: NEFTune (the objective
    compares the policy with a reference, and noise on one side only would bias every reward) and
    train_on_prompt (the objective scores whole answers against each other, never the prompt)."""
    if method.objective is None:
        return
    for field, off in supervised_options_set(tc):
        raise LuyenError(f"train.{field} cannot be combined with method {method.name} ({method.trains})",
                         field=f"train.{field}", fix=f"set train.{field}={off}, or use it when fine-tuning on answers (lora, qlora, full)")


def check_packing(model, method) -> None:
    """Packing needs a method that allows it and a model whose attention honours restarting position
    ids; the second is checked on the real model."""
    from luyen.models.shape import config_shape
    if not method.packing:
        raise LuyenError(f"packing cannot be combined with method {method.name} ({method.trains})",
                         field="train.packing", fix="set train.packing=false")
    vocab = config_shape(model.config)["vocab"]
    a, b = torch.arange(5) % vocab + 3, torch.arange(7, 13) % vocab + 3
    with torch.no_grad():
        alone = model(input_ids=b[None], use_cache=False).logits[0]
        packed = model(input_ids=torch.cat([a, b])[None], use_cache=False,
                       position_ids=torch.cat([torch.arange(5), torch.arange(6)])[None]).logits[0, 5:]
    if not torch.allclose(alone, packed, atol=1e-4, rtol=1e-3):
        raise LuyenError(f"{type(model).__name__} lets packed examples see each other", field="train.packing",
                         fix="set train.packing=false (length buckets waste almost no padding)")


def check_memory(model, tc, longest: int, device, precision: str, rows: int = 1) -> None:
    """Refuse a run whose peak memory (models.estimate.training_memory, with the parameters that really
    train) exceeds what the device has free. ``rows``: sequences per example in a batch (a preference
    pair's chosen and rejected answers are two)."""
    from luyen.models.estimate import training_memory
    from luyen.models.shape import model_shape
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    need = training_memory(model_shape(model), tc, trainable=trainable, tokens_per_batch=tc.batch_size * rows * longest,
                           precision=precision)
    free = free_memory(device)
    if need > MEMORY_HEADROOM * free:
        where = "GPU memory" if device.type == "cuda" else "memory"
        raise LuyenError(f"this run needs about {need / 1e9:.1f} GB of {where} but {free / 1e9:.1f} GB is free",
                         field="train.batch_size", fix="lower train.batch_size or train.max_length, turn on "
                         "train.gradient_checkpointing, or use method lora/qlora")


def free_memory(device) -> int:
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    import psutil
    return psutil.virtual_memory().available
