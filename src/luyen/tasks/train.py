"""Training a task head (seq2seq, classification, extractive QA) through the same loop as a chat model.

    manifest = run(cfg, data_dir="runs/intents/data", out_dir="runs/intents/train", task=TASKS["classification"])

The loop (train.loop.Trainer), its exact accumulation, checkpoints, resume, best-weights shipping and
the run folder contract are the causal stage's; what differs is the task module's (tasks.classify,
tasks.seq2seq, tasks.extract): how records become examples, which transformers head is loaded, the
objective the loop minimises and what is fitted after training (a classifier's temperature). Methods:
full, lora (peft with the task's task_type, so the head is always trained: modules_to_save) and
freeze (the last layers; the head trains too).

Writes OUT/model/ (a plain transformers folder: the head model with LoRA merged, its tokenizer and
luyen_task.json: task, labels, prefix, lengths, calibration), metrics.jsonl, curves.png,
checkpoints/, run.json and, last, manifest.json.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from luyen.errors import LuyenError
from luyen.manifest import Manifest, RunDir, atomic_write, staged
from luyen.tasks import SPEC_FILE

@dataclass
class HeadExample:
    """One training example of a head task: token ids (and segment ids), what it must predict."""
    ids: np.ndarray
    target: dict              # {"label": int} | {"start": int, "end": int} | {"labels": np.ndarray}
    types: np.ndarray | None = None  # token_type_ids (BERT's question/context segments)
    n_loss: int = 1           # what the step's loss is normalised by: examples, or target tokens (seq2seq)

    def __len__(self) -> int:
        labels = self.target.get("labels")
        return len(self.ids) + (len(labels) if labels is not None else 0)

    @property
    def loss_tokens(self) -> int:
        return self.n_loss

    @property
    def answer(self) -> "HeadExample":
        return self


@dataclass
class Stats:
    """What encoding the training split found (the fields train.preflight.check_examples reads)."""
    records: int = 0
    examples: int = 0
    too_long: int = 0   # cut to max_length (classification, seq2seq) or split into windows (extractive QA)
    no_loss: int = 0
    no_stop: int = 0
    tokens: int = 0
    loss_tokens: int = 0
    longest: int = 0

    def add(self, ex: HeadExample) -> None:
        self.examples += 1
        self.tokens += len(ex)
        self.loss_tokens += ex.n_loss
        self.longest = max(self.longest, len(ex))


def pad(rows: list[np.ndarray], value: int) -> torch.Tensor:
    out = np.full((len(rows), max(len(r) for r in rows)), value, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return torch.from_numpy(out)


def inputs(examples: list[HeadExample], pad_id: int) -> dict:
    """input_ids, attention_mask (and token_type_ids) of a batch, padded on the right."""
    batch = {"input_ids": pad([e.ids for e in examples], pad_id),
             "attention_mask": pad([np.ones(len(e.ids), dtype=np.int64) for e in examples], 0)}
    if examples[0].types is not None:
        batch["token_type_ids"] = pad([e.types for e in examples], 0)
    return batch


def forward(model, batch: dict, device, autocast, keys=("input_ids", "attention_mask", "token_type_ids")):
    """The model's output on a batch's inputs, under the run's autocast."""
    args = {k: batch[k].to(device) for k in keys if k in batch}
    with torch.autocast(device.type, dtype=autocast or torch.bfloat16, enabled=autocast is not None):
        return model(**args)


class HeadObjective:
    """What the loop asks an objective (see train.head.NextToken), for a head: no language-model head."""
    needs_reference = False
    lm_head = False

    def __init__(self, spec: dict, examples=None):
        pass

    def collate(self, examples, pad_id: int, packing: bool) -> dict:
        return inputs(examples, pad_id)

    def end_step(self, sums: dict, norm: int, state: dict) -> None:
        pass

    @staticmethod
    def summarise(sums: dict, norm: int) -> dict:
        return {k: v / max(norm, 1) for k, v in sums.items()}


def run(cfg, data_dir=None, out_dir=None, *, task, resume: bool = False, overwrite: bool = False,
        console=None) -> Manifest:
    from rich.console import Console

    from luyen.data.stage import read_split
    from luyen.train import preflight
    from luyen.train.loop import Trainer
    from luyen.train.methods import METHODS, method_of, trainable_summary
    from luyen.train.stage import begin

    console = console or Console(stderr=True)
    begun = time.time()  # the manifest's wall_time_s: the whole stage, loading included
    tc, impl = cfg.train, task.impl()
    method = method_of(tc)
    if method.head is None:
        able = [m.name for m in METHODS.values() if m.head is not None]
        raise LuyenError(f"train.task={task.name} trains with {', '.join(able)}, not {tc.method}",
                         field="train.method", fix=f"set train.method to {' or '.join(able)}")
    for field, why in (("packing", "it does not pack examples"), ("train_on_prompt", "a head learns its targets, not its input")):
        if getattr(tc, field):
            raise LuyenError(f"train.task={task.name} does not take train.{field}: {why}", field=f"train.{field}",
                             fix=f"set train.{field}=false")
    data_dir, out, chosen, accelerator, ckpt = begin(cfg, data_dir, out_dir, resume, overwrite)

    train_records, val_records = read_split(data_dir, "train"), read_split(data_dir, "val")
    folder, tokenizer = source(cfg)
    max_length = min(tc.max_length or cfg.data.max_length, _context(folder, tokenizer))
    spec = {"task": task.name, "base_model": cfg.model.name, "max_length": max_length,
            **impl.spec(train_records, val_records, cfg, tokenizer, folder)}
    model = impl.load(folder, spec, dtype=torch.float32, trust_remote_code=cfg.model.trust_remote_code)
    train_ex, stats = impl.encode(train_records, tokenizer, spec)
    val_ex, _ = impl.encode(val_records, tokenizer, spec)
    preflight.check_examples(stats, tc, accelerator.num_processes, data_dir)
    model = method.head(model, tc, task.peft_task)
    objective = impl.Objective(spec, train_ex)
    lr = tc.lr or impl.LR.get(method.name, method.lr)
    trainer = Trainer(model=model, tokenizer=tokenizer, tc=tc, seed=cfg.seed, train=train_ex, val=val_ex, out=out,
                      accelerator=accelerator, console=console, lr=lr, autocast=chosen.autocast, objective=objective)
    if accelerator.is_main_process:
        s = trainable_summary(model)
        console.print(f"train: {task.name} head, {method.name}; precision {chosen.describe()}; {s['trainable']:,} of "
                      f"{s['total']:,} parameters train; {stats.examples} examples ({stats.records} records, "
                      f"{stats.too_long} {impl.CUT}); lr {lr:g}; {trainer.total} steps", highlight=False)
    started = time.perf_counter()
    state = trainer.run(resume=ckpt)
    loop_seconds = time.perf_counter() - started
    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        return {}
    final = accelerator.unwrap_model(trainer.model)
    if hasattr(final, "merge_and_unload"):
        final = final.merge_and_unload()
    final.eval()
    fitted = impl.after_training(final, spec, val_ex, device=accelerator.device, autocast=chosen.autocast)
    spec.update(fitted)
    rd = RunDir(out, "train", started=begun)
    save(final, tokenizer, spec, out / "model", rd)
    rd.outputs += [name for name in ("metrics.jsonl", "curves.png", "run.json") if (out / name).exists()]
    metrics = {"head": True, "task": task.name, "method": method.name, "precision": chosen.name, "steps": state.step,
               "final_train_loss": state.last_loss, "initial_val_loss": state.initial_val, "best_val_loss": state.best_val,
               "best_step": state.best_step, "shipped_step": state.shipped_step, "shipped_weights": state.shipped_weights,
               "initial_val": state.initial_val_stats, "best_val": state.best_val_stats, "train_tokens": state.tokens,
               "examples": stats.examples, "records": stats.records, "cut": stats.too_long, "lr": lr,
               "examples_per_s": round(state.step * tc.batch_size * tc.grad_accum * trainer.world
                                       / max(state.train_seconds, 1e-9), 2),
               "train_seconds": round(state.train_seconds, 2), "loop_seconds": round(loop_seconds, 2),
               "base_model": cfg.model.name, **{f"params_{k}": v for k, v in trainable_summary(model).items()},
               **{k: v for k, v in fitted.items() if not isinstance(v, (list, dict))}}
    inputs_ = [data_dir / f"{s}.jsonl" for s in ("train", "val")]
    return rd.finish(config=cfg.model_dump(), inputs=inputs_, seed=cfg.seed, metrics=metrics)


def source(cfg) -> tuple[Path, object]:
    """The base model's folder and its tokenizer (a fast one: extractive QA needs its offsets)."""
    from transformers import AutoTokenizer

    from luyen.models.trained import source_folder
    mc = cfg.model
    folder = source_folder(mc.name, cache_dir=mc.cache_dir, trust_remote_code=mc.trust_remote_code)
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=mc.trust_remote_code)
    if tokenizer.pad_token_id is None:  # decoders (Gemma has one; Llama, GPT-2 do not): pad with EOS
        tokenizer.pad_token = tokenizer.eos_token
    return folder, tokenizer


def _context(folder: Path, tokenizer) -> int:
    from transformers import AutoConfig
    config = AutoConfig.from_pretrained(folder)
    ctx = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    if getattr(config, "model_type", "") in ("t5", "mt5", "umt5"):  # relative positions: any length, 512 trained
        ctx = 512
    cap = tokenizer.model_max_length if tokenizer.model_max_length and tokenizer.model_max_length < 1e6 else None
    return min(x for x in (ctx, cap, 1 << 20) if x)


def save(model, tokenizer, spec: dict, folder: Path, rd: RunDir) -> None:
    """The head model, its tokenizer and spec, in a staged folder (whole or not at all)."""
    with staged(folder) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        atomic_write(tmp / SPEC_FILE, json.dumps(spec, indent=1, ensure_ascii=False) + "\n")
    rd.outputs += [str(f.relative_to(rd.path)) for f in sorted(folder.rglob("*")) if f.is_file()]


def summary(m: dict, out) -> str:
    """One line on what a finished head training wrote."""
    best = m.get("best_val") or {}
    first = m.get("initial_val") or {}
    shown = "; ".join(f"validation {k} {first.get(k, 0):.3f} -> {v:.3f}" for k, v in best.items())
    return (f"wrote {out}/model ({m['task']}, {m['method']}): {m['steps']} steps, final train loss "
            f"{m['final_train_loss']:.4f}" + (f", best validation loss {m['best_val_loss']:.4f}" if m.get('best_val_loss')
                                              is not None else "") + (f"; {shown}" if shown else "")
            + f"; {m['examples_per_s']:.1f} examples/s")
