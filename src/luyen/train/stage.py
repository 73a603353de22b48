"""The training stage: a prepared data folder + a base model -> a trained model folder.

    manifest = run(cfg, data_dir="runs/demo/data", out_dir="runs/demo/train")

Writes `OUT/model/` (a PEFT adapter or full safetensors weights, the tokenizer with the chat template it
was trained with, generation_config.json with the stop tokens), `metrics.jsonl`, `tensorboard/`,
`curves.png`, `checkpoints/step-*/`, `run.json` (what this run is, for --resume) and, last,
`manifest.json`. It reads load -> build -> loop -> save; what differs between methods comes from their
record (train.methods), where the model comes from from train.source, and every check that can fail
runs before the first step (train.preflight).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from luyen import precision as precision_policy
from luyen.config import RunConfig
from luyen.errors import LuyenError
from luyen.infer.engine import answer_budget
from luyen.manifest import Manifest, RunDir, read_manifest
from luyen.models.estimate import peak_memory_gb, reset_peak_memory
from luyen.train import checkpoint, preflight, runfolder
from luyen.train.lora import trained_rows
from luyen.train.methods import method_of, trainable_summary
from luyen.train.save import save_model
from luyen.train.source import load_base


def run(cfg: RunConfig, data_dir: str | Path | None = None, out_dir: str | Path | None = None, *,
        resume: bool = False, overwrite: bool = False, console=None) -> Manifest:
    """Train what cfg.train.task says (luyen.tasks): a language model (this module), a task head
    (tasks.train) or a retriever (train.embedding)."""
    from luyen.tasks import resolve
    return resolve(cfg, data_dir).train(cfg, data_dir, out_dir, resume=resume, overwrite=overwrite, console=console)


def summary(manifest: Manifest, out) -> str:
    """One line on what a finished training wrote."""
    m = manifest["metrics"]
    if m.get("head"):
        from luyen.tasks.train import summary as head_summary
        return head_summary(m, out)
    if m.get("task") == "embedding":
        first, best = m["initial_val"], m["best_val"]
        return (f"wrote {out}/model (retriever, {m['method']}): {m['steps']} steps, loss {m['first_loss']:.3f} -> "
                f"{m['final_loss']:.3f}; held-out recall@5 {first['recall@5']:.3f} -> {best['recall@5']:.3f}, MRR "
                f"{first['mrr']:.3f} -> {best['mrr']:.3f}; use it with rag.encoder={out}")
    best = f", best validation loss {m['best_val_loss']:.4f}" if m.get("best_val_loss") is not None else ""
    pref = m.get("preference") or {}
    if pref.get("best_val", {}).get("reward_accuracy") is not None:
        best += (f", validation reward accuracy {pref['initial_val'].get('reward_accuracy', 0):.2f} -> "
                 f"{pref['best_val']['reward_accuracy']:.2f}")
    return (f"wrote {out}/model ({m['method']}): {m['steps']} steps, final train loss "
            f"{m['final_train_loss']:.4f}{best}, {m['tokens_per_s']:.0f} tokens/s")


def train_causal(cfg: RunConfig, data_dir: str | Path | None = None, out_dir: str | Path | None = None, *,
            resume: bool = False, overwrite: bool = False, console=None) -> Manifest:
    from rich.console import Console

    from luyen.data.stage import read_split
    from luyen.train.loop import Trainer

    console = console or Console(stderr=True)
    begun = time.time()  # the manifest's wall_time_s: the whole stage, loading included
    reset_peak_memory()  # the manifest's peak_rss_gb: this stage's, not the data or rag stage's before it
    tc, method = cfg.train, method_of(cfg.train)
    preflight.check_supervised_options(tc, method)
    data_dir, out, chosen, accelerator, ckpt = begin(cfg, data_dir, out_dir, resume, overwrite)

    train_records, val_records = read_split(data_dir, "train"), read_split(data_dir, "val")
    base = load_base(cfg, method, chosen, train_records, out, accelerator)
    objective = method.objective(tc.preference) if method.objective else None
    train_ex, val_ex, stats = _examples(cfg, base, train_records, val_records, objective)
    preflight.check_examples(stats, tc, accelerator.num_processes, data_dir)
    if tc.packing:
        preflight.check_packing(base.model, method)
    model = method.wrap(base.model, tc, base.tokenizer, base.template)
    if tc.gradient_checkpointing and hasattr(model, "gradient_checkpointing_enable"):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if hasattr(model, "enable_input_require_grads"):
            model.enable_input_require_grads()
    preflight.check_memory(model, tc, stats.longest, accelerator.device, chosen.name,
                           rows=len(train_ex[0].sides()) if objective is not None else 1)
    lr = tc.lr or base.lr or method.lr
    trainer = Trainer(model=model, tokenizer=base.tokenizer, tc=tc, seed=cfg.seed, train=train_ex, val=val_ex, out=out,
                      accelerator=accelerator, console=console, lr=lr, masker=base.masker, autocast=chosen.autocast,
                      objective=objective)
    reference_tokens, reference_started = 0, time.perf_counter()
    if objective is not None and objective.needs_reference:  # the model before its first step, adapter off
        from luyen.train.preference import attach_reference
        reference_tokens = attach_reference(model, {"train": train_ex, "val": val_ex}, objective, pad_id=trainer.pad_id,
                                            batch_size=tc.batch_size, chunk=tc.logit_chunk, device=accelerator.device,
                                            autocast=chosen.autocast, out=out, console=console if accelerator.is_main_process else None)
    reference_seconds = time.perf_counter() - reference_started
    estimate = _estimate(model, tc, trainer, train_ex, val_ex, chosen.name, reference_tokens)
    if accelerator.is_main_process:
        _announce(console, chosen, method, model, base.tokenizer, stats, lr, estimate, trainer.total)

    started = time.perf_counter()
    state = trainer.run(resume=ckpt)
    loop_seconds = time.perf_counter() - started
    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        return {}
    if state.shipped_weights == "best":
        console.print(f"train: shipping the best weights: step {state.shipped_step}, validation loss "
                      f"{state.best_val:.4f} (last step {state.step})", highlight=False)
    final = accelerator.unwrap_model(trainer.model)
    rd = RunDir(out, "train", started=begun)
    budget = answer_budget([ex.answer.n_loss for ex in train_ex]) if base.template is not None else None
    save_model(final, base.tokenizer, base.template, out / "model", rd,
               max_new_tokens=budget and budget["max_new_tokens"], repetition_penalty=cfg.generate.repetition_penalty)
    rd.outputs += [name for name in ("metrics.jsonl", "curves.png", "run.json") if (out / name).exists()]
    tps = state.tokens / state.train_seconds if state.train_seconds else 0.0
    metrics = {"method": method.name, "precision": chosen.name, "steps": state.step, "final_train_loss": state.last_loss,
               "initial_val_loss": state.initial_val, "best_val_loss": state.best_val, "best_step": state.best_step,
               "shipped_step": state.shipped_step, "shipped_weights": state.shipped_weights, "train_tokens": state.tokens,
               "loss_tokens": state.loss_tokens, "tokens_per_s": round(tps, 2), "train_seconds": round(state.train_seconds, 2),
               "examples": stats.examples, "skipped_too_long": stats.too_long, "skipped_no_loss": stats.no_loss,
               "world_size": accelerator.num_processes, "lr": lr, **{f"params_{k}": v for k, v in trainable_summary(final).items()},
               "base_model": cfg.model.name, "answer_tokens": budget,
               "trained_token_rows": base.tokenizer.convert_ids_to_tokens(trained_rows(final)),
               **({"preference": {**tc.preference.model_dump(), "initial_val": state.initial_val_stats,
                                  "best_val": state.best_val_stats, "reference": "none" if not objective.needs_reference else
                                  "the base, adapter off" if method.adapter else "the weights before training",
                                  "reference_tokens": reference_tokens, "reference_seconds": round(reference_seconds, 2)}}
                  if objective is not None else {}),
               **_estimate_vs_actual(estimate, state, loop_seconds, resumed=ckpt is not None)}
    inputs = [data_dir / f"{s}.jsonl" for s in ("train", "val")]
    return rd.finish(config=cfg.model_dump(), inputs=inputs, seed=cfg.seed, metrics=metrics)


def begin(cfg: RunConfig, data_dir, out_dir, resume: bool, overwrite: bool):
    """What every training of a data folder starts with: the folders, the precision, the accelerator, the
    checkpoint to resume from (None: a fresh run; the run folder's identity decides), threads and seeds.
    Returns (data_dir, out, precision, accelerator, checkpoint)."""
    from accelerate import Accelerator

    from luyen.train.loop import seed_everything
    tc = cfg.train
    data_dir, out = _folders(tc, data_dir, out_dir)
    data_manifest = read_manifest(data_dir, stage="data")
    chosen = precision_policy.for_training(tc.dtype)
    # The loop runs autocast itself (and fp16's loss scaling), so one process can run several trainings
    # at different precisions; an `accelerate config` that asks for mixed precision still applies too.
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    ckpt = _start(out, runfolder.identity(cfg, data_manifest, chosen.name), resume, overwrite, accelerator)
    if accelerator.device.type == "cpu":
        torch.set_num_threads(tc.threads or max(1, (os.cpu_count() or 1) // accelerator.num_processes))
    seed_everything(cfg.seed)
    return data_dir, out, chosen, accelerator, ckpt


def _folders(tc, data_dir, out_dir) -> tuple[Path, Path]:
    data_dir = Path(data_dir or tc.data or "")
    if not str(data_dir) or str(data_dir) == ".":
        raise LuyenError("no training data given", field="train.data",
                         fix="pass --data DIR (the --out of `luyen data prepare`) or set train.data")
    if out_dir is None:
        raise LuyenError("no output folder given", fix="pass --out DIR")
    return data_dir, Path(out_dir)


def _start(out: Path, identity: dict, resume: bool, overwrite: bool, accelerator) -> Path | None:
    """The checkpoint to resume from (None: a fresh run); the main process decides, the others follow."""
    ckpt = runfolder.start(out, identity, resume, overwrite) if accelerator.is_main_process else None
    accelerator.wait_for_everyone()
    if not accelerator.is_main_process and resume:
        ckpt = checkpoint.latest(out / "checkpoints")
    return ckpt


def _examples(cfg: RunConfig, base, train_records: list[dict], val_records: list[dict], objective=None):
    """Tokenised training and validation examples (text cut into blocks of max_length; a preference
    objective's pairs or rated answers), and the training split's statistics. A masked LM reads every
    record as plain text, blocks wrapped in [CLS] ... [SEP]."""
    from luyen.train.batches import encode, wrap_masked
    max_length = cfg.train.max_length or cfg.data.max_length
    if base.context_cap:  # a new model's context is its size preset's: text blocks fit it
        max_length = min(max_length, base.context_cap)
    preflight.check_context(base.model, max_length)
    if objective is not None:
        train_ex, stats = objective.examples(train_records, base.tokenizer, base.template, max_length)
        val_ex, _ = objective.examples(val_records, base.tokenizer, base.template, max_length)
        return train_ex, val_ex, stats
    preflight.check_supervised(train_records)
    masked = base.masker is not None
    if masked:
        train_records, val_records = _as_text(train_records), _as_text(val_records)
    block = max_length - 2 if masked else max_length
    train_ex, stats = encode(train_records, base.tokenizer, base.template, max_length, text_block=block,
                             prompt=cfg.train.train_on_prompt)
    # validation scores the answers alone whatever trains: its loss means the same with and without
    # train_on_prompt, and the weights shipped are the ones that answer best
    val_ex, _ = encode(val_records, base.tokenizer, base.template, max_length, text_block=block)
    if masked:
        train_ex, val_ex = wrap_masked(train_ex, base.tokenizer), wrap_masked(val_ex, base.tokenizer)
    return train_ex, val_ex, stats


def _as_text(records: list[dict]) -> list[dict]:
    from luyen.data.formats import record_texts
    return [{"kind": "text", "text": "\n".join(record_texts(r))} for r in records]


def _announce(console, chosen, method, model, tokenizer, stats, lr: float, estimate: dict, steps: int) -> None:
    """What the run is about to do, before its first step."""
    summary = trainable_summary(model)
    console.print(f"train: precision {chosen.describe()}", highlight=False)
    if chosen.warning:
        console.print(f"[yellow]warning: {chosen.warning}[/yellow]")
    console.print(f"train: {method.name} ({method.trains}); {summary['trainable']:,} of {summary['total']:,} parameters "
                  f"train; {stats.examples} examples, {stats.tokens:,} tokens ({stats.loss_tokens:,} loss-bearing); "
                  f"lr {lr:g}", highlight=False)
    rows = trained_rows(model)
    if rows:
        console.print(f"train: also trains the embedding rows of {', '.join(tokenizer.convert_ids_to_tokens(rows))}: "
                      "the base model never learned them (set train.lora.train_tokens: none to keep them frozen)",
                      highlight=False)
    for what, n in (("longer than max_length", stats.too_long), ("without loss-bearing tokens", stats.no_loss)):
        if n:
            console.print(f"[yellow]skipped {n} training examples {what}[/yellow]")
    console.print(f"train: estimate ~{_minutes(estimate['seconds'])} for {steps} steps, peak ~{estimate['peak_memory_gb']} "
                  f"GB ({estimate['matmul_peak_gflops']} GFLOP/s {estimate['precision']} matmul peak measured, "
                  f"{estimate['assumed_efficiency']:.0%} of it assumed)", highlight=False)


def _estimate(model, tc, trainer, train_ex, val_ex, precision: str, reference_tokens: int = 0) -> dict:
    """The time and memory this run will take, from the plan the loop will follow (steps, examples per
    step, validation passes and checkpoints by train.cadence) and the matmul peak measured here in the
    precision it trains in."""
    from luyen.models.estimate import cached_peak, estimate_training, optimizer_rate
    from luyen.models.shape import model_shape
    from luyen.train.cadence import planned
    per_step = tc.batch_size * tc.grad_accum * trainer.world
    seen = trainer.total * per_step / max(len(train_ex), 1)  # passes over the training split
    tokens, loss_tokens = (seen * sum(f(e) for e in train_ex) for f in (len, lambda e: e.loss_tokens))
    plan = planned(tc, total=trainer.total, steps_per_epoch=trainer.steps_per_epoch, validation=bool(val_ex))
    return estimate_training(model_shape(model), tc, tokens=tokens, loss_tokens=loss_tokens,
                             tokens_per_batch=tc.batch_size * max((len(e) for e in train_ex), default=1),
                             peak_flops=cached_peak(precision_policy.LONG[precision]), precision=precision,
                             device="cuda" if torch.cuda.is_available() else "cpu", steps=trainer.total,
                             saves=plan["saves"], optimizer_params_per_s=optimizer_rate(),
                             eval_tokens=plan["evals"] * sum(len(e) for e in val_ex) + reference_tokens,
                             eval_loss_tokens=plan["evals"] * sum(e.loss_tokens for e in val_ex))


def _estimate_vs_actual(estimate: dict, state, loop_seconds: float, resumed: bool) -> dict:
    """The estimate beside what the run took: step time (resume-safe: checkpoints carry it), the whole
    loop with validation and saves (this process only, so not after a resume) and the stage's peak RSS."""
    rss_gb = peak_memory_gb()
    actual = {"train_seconds": round(state.train_seconds, 2), "peak_rss_gb": round(rss_gb, 2)}
    ratio = {"train_seconds": round(state.train_seconds / estimate["train_seconds"], 2) if estimate["train_seconds"] else None,
             "peak_memory": round(rss_gb / estimate["peak_memory_gb"], 2)}
    if not resumed:
        actual["loop_seconds"] = round(loop_seconds, 2)
        ratio["seconds"] = round(loop_seconds / estimate["seconds"], 2) if estimate["seconds"] else None
    return {"estimate": estimate, "actual": actual, "actual_over_estimate": ratio}


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"
