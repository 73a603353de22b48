"""The training stage: a prepared data folder + a base model -> a trained model folder.

    manifest = run(cfg, data_dir="runs/demo/data", out_dir="runs/demo/train")

Writes `OUT/model/` (a PEFT adapter or full safetensors weights, the tokenizer with the chat
template it was trained with, generation_config.json with the stop tokens), `metrics.jsonl`,
`tensorboard/`, `curves.png`, `checkpoints/step-*/`, `run.json` (what this run is, for --resume)
and, last, `manifest.json`. Every check that can fail does so before the first step.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from pathlib import Path

import torch

from luyen import precision as precision_policy
from luyen.config import RunConfig
from luyen.errors import LuyenError
from luyen.infer.engine import answer_budget
from luyen.manifest import MANIFEST, RunDir, atomic_write, read_manifest
from luyen.train import checkpoint
from luyen.train.save import save_model
from luyen.train.methods import METHODS, default_lr, prepare_model, trainable_summary, trained_rows

NO_LOSS_LIMIT = 0.5  # fail when more than this share of examples has no loss-bearing token


def run(cfg: RunConfig, data_dir: str | Path | None = None, out_dir: str | Path | None = None, *,
        resume: bool = False, overwrite: bool = False, console=None) -> dict:
    from accelerate import Accelerator
    from rich.console import Console

    from luyen.data.stage import read_split
    from luyen.train.loop import Trainer, seed_everything

    console = console or Console(stderr=True)
    tc = cfg.train
    data_dir = Path(data_dir or tc.data or "")
    if not str(data_dir) or str(data_dir) == ".":
        raise LuyenError("no training data given", field="train.data",
                         fix="pass --data DIR (the --out of `luyen data prepare`) or set train.data")
    if out_dir is None:
        raise LuyenError("no output folder given", fix="pass --out DIR")
    out = Path(out_dir)
    data_manifest = read_manifest(data_dir, stage="data")
    chosen = precision_policy.choose(tc.dtype)
    precision = chosen.name
    cuda = torch.cuda.is_available()
    # The loop runs autocast itself (and fp16's loss scaling), so one process can run several trainings
    # at different precisions; an `accelerate config` that asks for mixed precision still applies too.
    accelerator = Accelerator(cpu=not cuda)
    identity = _identity(cfg, data_manifest, precision)
    ckpt = _prepare_out(out, identity, resume, overwrite, accelerator) if accelerator.is_main_process else None
    accelerator.wait_for_everyone()
    if not accelerator.is_main_process and resume:
        ckpt = checkpoint.latest(out / "checkpoints")
    if accelerator.device.type == "cpu":
        torch.set_num_threads(tc.threads or max(1, (os.cpu_count() or 1) // accelerator.num_processes))
    seed_everything(cfg.seed)

    train_records, val_records = read_split(data_dir, "train"), read_split(data_dir, "val")
    tokenizer, model, template, masker = _load(cfg, train_records, out, accelerator)
    max_length = tc.max_length or cfg.data.max_length
    scratch_model = tc.method == "pretrain" and tc.pretrain.from_scratch
    if scratch_model:  # a new model's context is its size preset's: text blocks fit it
        max_length = min(max_length, model.config.max_position_embeddings)
    _check_context(model, max_length)
    from luyen.train.batches import encode, wrap_masked
    if masker is not None:  # masked LM: every record is plain text, blocks wrapped in [CLS] ... [SEP]
        train_records, val_records = _as_text(train_records), _as_text(val_records)
    block = max_length - 2 if masker is not None else max_length
    train_ex, stats = encode(train_records, tokenizer, template, max_length, text_block=block)
    val_ex, _ = encode(val_records, tokenizer, template, max_length, text_block=block)
    if masker is not None:
        train_ex, val_ex = wrap_masked(train_ex, tokenizer), wrap_masked(val_ex, tokenizer)
    _check_examples(stats, tc, accelerator.num_processes, data_dir)
    if tc.packing:
        _check_packing(model, tc.method)
    model = prepare_model(model, tc, tokenizer, template)
    if tc.gradient_checkpointing and hasattr(model, "gradient_checkpointing_enable"):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if hasattr(model, "enable_input_require_grads"):
            model.enable_input_require_grads()
    _check_memory(model, tc, stats, accelerator)
    summary = trainable_summary(model)
    lr = default_lr(tc)
    if accelerator.is_main_process:
        console.print(f"train: precision {chosen.describe()}", highlight=False)
        if chosen.warning:
            console.print(f"[yellow]warning: {chosen.warning}[/yellow]")
        console.print(f"train: {tc.method} ({METHODS[tc.method].trains}); {summary['trainable']:,} of "
                      f"{summary['total']:,} parameters train; {stats.examples} examples, {stats.tokens:,} tokens "
                      f"({stats.loss_tokens:,} loss-bearing); lr {lr:g}", highlight=False)
        rows = trained_rows(model)
        if rows:
            console.print(f"train: also trains the embedding rows of {', '.join(tokenizer.convert_ids_to_tokens(rows))}: "
                          "the base model never learned them (set train.lora.train_tokens: none to keep them frozen)",
                          highlight=False)
        for what, n in (("longer than max_length", stats.too_long), ("without loss-bearing tokens", stats.no_loss)):
            if n:
                console.print(f"[yellow]skipped {n} training examples {what}[/yellow]")
    trainer = Trainer(model=model, tokenizer=tokenizer, tc=tc, seed=cfg.seed, train=train_ex, val=val_ex, out=out,
                      accelerator=accelerator, console=console, lr=lr, masker=masker,
                      autocast={"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision))
    estimate = _estimate(model, tc, trainer, train_ex, val_ex, precision)
    if accelerator.is_main_process:
        console.print(f"train: estimate ~{_minutes(estimate['seconds'])} for {trainer.total} steps, peak ~"
                      f"{estimate['peak_memory_gb']} GB ({estimate['matmul_peak_gflops']} GFLOP/s {precision} matmul "
                      f"peak measured, {estimate['assumed_efficiency']:.0%} of it assumed)", highlight=False)
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
    rd = RunDir(out, "train")
    budget = answer_budget([ex.n_loss for ex in train_ex]) if template is not None else None
    save_model(final, tokenizer, template, out / "model", rd, max_new_tokens=budget and budget["max_new_tokens"],
               repetition_penalty=cfg.generate.repetition_penalty)
    for name in ("metrics.jsonl", "curves.png", "run.json"):
        if (out / name).exists():
            rd.outputs.append(name)
    tps = state.tokens / state.train_seconds if state.train_seconds else 0.0
    metrics = {"method": tc.method, "precision": precision, "steps": state.step, "final_train_loss": state.last_loss,
               "initial_val_loss": state.initial_val, "best_val_loss": state.best_val, "best_step": state.best_step,
               "shipped_step": state.shipped_step, "shipped_weights": state.shipped_weights, "train_tokens": state.tokens,
               "loss_tokens": state.loss_tokens, "tokens_per_s": round(tps, 2), "train_seconds": round(state.train_seconds, 2),
               "examples": stats.examples, "skipped_too_long": stats.too_long, "skipped_no_loss": stats.no_loss,
               "world_size": accelerator.num_processes, "lr": lr, **{f"params_{k}": v for k, v in summary.items()},
               "base_model": cfg.model.name, "answer_tokens": budget, "trained_token_rows": tokenizer.convert_ids_to_tokens(trained_rows(final)),
               **_estimate_vs_actual(estimate, state, loop_seconds, resumed=ckpt is not None)}
    inputs = [data_dir / f"{s}.jsonl" for s in ("train", "val")]
    return rd.finish(config=cfg.model_dump(), inputs=inputs, seed=cfg.seed, metrics=metrics)


def _estimate(model, tc, trainer, train_ex, val_ex, precision: str) -> dict:
    """The time and memory this run will take, from the plan the loop will follow (steps, examples per
    step, validation passes) and the matmul peak measured here in the precision it trains in."""
    from luyen.models.estimate import cached_peak, estimate_training, model_shape, optimizer_rate
    shape = model_shape(model)
    per_step = tc.batch_size * tc.grad_accum * trainer.world
    seen = trainer.total * per_step / max(len(train_ex), 1)  # passes over the training split
    tokens, loss_tokens = (seen * sum(f(e) for e in train_ex) for f in (len, lambda e: e.n_loss))
    cadence = math.ceil(trainer.total / (tc.eval_steps or trainer.steps_per_epoch))
    evals = 1 + cadence if val_ex else 0
    saves = 1 + (trainer.total // tc.save_steps if tc.save_steps else cadence if val_ex else 0)
    return estimate_training(**{k: shape[k] for k in ("params", "embed", "hidden", "layers", "vocab")},
                             method=tc.method, tokens=tokens, loss_tokens=loss_tokens,
                             tokens_per_batch=tc.batch_size * max((len(e) for e in train_ex), default=1),
                             peak_flops=cached_peak(precision_policy.LONG[precision]),
                             lora_r=tc.lora.r, gradient_checkpointing=tc.gradient_checkpointing,
                             device="cuda" if torch.cuda.is_available() else "cpu", precision=precision,
                             steps=trainer.total, saves=saves, optimizer_params_per_s=optimizer_rate(),
                             eval_tokens=evals * sum(len(e) for e in val_ex), eval_loss_tokens=evals * sum(e.n_loss for e in val_ex))


def _estimate_vs_actual(estimate: dict, state, loop_seconds: float, resumed: bool) -> dict:
    """The estimate beside what the run took: step time (resume-safe: checkpoints carry it), the whole
    loop with validation and saves (this process only, so not after a resume) and peak RSS."""
    import resource
    rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
    actual = {"train_seconds": round(state.train_seconds, 2), "peak_rss_gb": round(rss_gb, 2)}
    ratio = {"train_seconds": round(state.train_seconds / estimate["train_seconds"], 2) if estimate["train_seconds"] else None,
             "peak_memory": round(rss_gb / estimate["peak_memory_gb"], 2)}
    if not resumed:
        actual["loop_seconds"] = round(loop_seconds, 2)
        ratio["seconds"] = round(loop_seconds / estimate["seconds"], 2) if estimate["seconds"] else None
    return {"estimate": estimate, "actual": actual, "actual_over_estimate": ratio}


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def _identity(cfg: RunConfig, data_manifest: dict, precision: str) -> dict:
    """What the run computes: its config, its data and the *resolved* precision, so that resuming
    `dtype: auto` on hardware that resolves it differently is refused instead of switching precision."""
    conf = cfg.model_dump()
    for k in ("threads", "logging_steps"):  # do not change what the run computes
        conf["train"].pop(k, None)
    blob = json.dumps({"config": conf, "data": data_manifest.get("outputs"), "precision": precision}, sort_keys=True)
    return {"id": hashlib.sha256(blob.encode()).hexdigest()[:16], "name": cfg.name, "precision": precision}


def _prepare_out(out: Path, identity: dict, resume: bool, overwrite: bool, accelerator) -> Path | None:
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
                             fix=f"resume with train.dtype={precision_policy.LONG[earlier['precision']]} (or on the "
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


def _load(cfg: RunConfig, records: list[dict], out: Path, accelerator):
    """Tokenizer, model, chat template and (masked LM) masker for the configured method."""
    from luyen.data.template import resolve_chat_template
    from luyen.models.resolve import load_model, load_tokenizer, resolve_model
    tc, mc = cfg.train, cfg.model
    masker = None
    if tc.method == "pretrain" and tc.pretrain.from_scratch:
        from luyen.train import scratch
        texts = [t for r in records for t in _texts(r)]
        tok_dir = out / "tokenizer"
        kind = tc.pretrain.arch
        tokenizer = None
        if accelerator.is_main_process:
            tokenizer = scratch.train_tokenizer(texts, tok_dir, vocab_size=tc.pretrain.vocab_size, kind=kind,
                                                context=scratch.SIZE_PRESETS[tc.pretrain.size]["context"])
        accelerator.wait_for_everyone()
        if tokenizer is None:
            from transformers import AutoTokenizer
            tokenizer = AutoTokenizer.from_pretrained(tok_dir)
        model = scratch.build_model(kind, tc.pretrain.size, tokenizer, seed=cfg.seed)
        if kind == "masked":
            prob = tc.pretrain.mlm_probability
            masker = lambda ids, g: scratch.mask_tokens(ids, tokenizer, probability=prob, generator=g)  # noqa: E731
        template = None if kind == "masked" else resolve_chat_template(tokenizer, mc.chat_template)
        return tokenizer, model, template, masker
    folder = resolve_model(mc.name, cache_dir=mc.cache_dir, trust_remote_code=mc.trust_remote_code)
    tokenizer = load_tokenizer(str(folder), trust_remote_code=mc.trust_remote_code)
    template = resolve_chat_template(tokenizer, mc.chat_template)
    adapter = METHODS[tc.method].adapter
    mp = precision_policy.choose(tc.dtype).name
    if mp == "fp16" and not torch.cuda.is_available():
        raise LuyenError("float16 training needs a GPU", field="train.dtype", fix="use auto, float32 or bfloat16 on a CPU")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mp, torch.float32) if adapter else torch.float32
    kw = {}
    if tc.method == "qlora":
        kw = _qlora_kwargs(dtype, accelerator)
    try:
        model = load_model(str(folder), dtype=dtype, trust_remote_code=mc.trust_remote_code, **kw)
    except ValueError as e:
        if "Unrecognized configuration class" in str(e):
            raise LuyenError("this model is not a causal (decoder) language model", file=str(folder),
                             field="model.name", fix="choose a decoder model such as gemma3-270m, Llama, Qwen or Mistral") from None
        raise
    return tokenizer, model, template, masker


def _as_text(records: list[dict]) -> list[dict]:
    from luyen.data.formats import record_texts
    return [{"kind": "text", "text": "\n".join(record_texts(r))} for r in records]


def _texts(rec: dict) -> list[str]:
    from luyen.data.formats import record_texts
    return record_texts(rec)


def _qlora_kwargs(dtype, accelerator) -> dict:
    import importlib.util

    from transformers import BitsAndBytesConfig
    if importlib.util.find_spec("bitsandbytes") is None:
        raise LuyenError("QLoRA needs bitsandbytes, which is not installed", field="train.method",
                         fix="pip install 'luyen[train]' (or bitsandbytes), or use train.method=lora")
    q = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                           bnb_4bit_compute_dtype=dtype)
    return {"quantization_config": q, "device_map": {"": accelerator.device}}


def _check_context(model, max_length: int) -> None:
    ctx = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
    if ctx and max_length > ctx:
        raise LuyenError(f"max_length {max_length} is beyond the model's context of {ctx} tokens",
                         field="train.max_length", fix=f"set train.max_length (or data.max_length) to at most {ctx}")


def _check_examples(stats, tc, world: int, data_dir: Path) -> None:
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


def _check_packing(model, method: str) -> None:
    """Packing needs a model whose attention honours restarting position ids; check it on the real model."""
    if method in ("prompt", "ptuning"):
        raise LuyenError("packing cannot be combined with soft prompts", field="train.packing",
                         fix="set train.packing=false")
    vocab = model.config.vocab_size
    a, b = torch.arange(5) % vocab + 3, torch.arange(7, 13) % vocab + 3
    with torch.no_grad():
        alone = model(input_ids=b[None], use_cache=False).logits[0]
        packed = model(input_ids=torch.cat([a, b])[None], use_cache=False,
                       position_ids=torch.cat([torch.arange(5), torch.arange(6)])[None]).logits[0, 5:]
    if not torch.allclose(alone, packed, atol=1e-4, rtol=1e-3):
        raise LuyenError(f"{type(model).__name__} lets packed examples see each other", field="train.packing",
                         fix="set train.packing=false (length buckets waste almost no padding)")


def _check_memory(model, tc, stats, accelerator) -> None:
    """Refuse a run whose estimated peak memory exceeds what the device has free."""
    from luyen.models.estimate import model_shape
    shape = model_shape(model)
    params, hidden, layers, vocab = shape["params"], shape["hidden"], shape["layers"], shape["vocab"]
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    tokens = tc.batch_size * stats.longest
    act = tokens * layers * hidden * 4 * 18 * (0.15 if tc.gradient_checkpointing else 1)
    logits = min(tc.logit_chunk, tokens) * vocab * 4 * 3
    need = 4 * params + 12 * trainable + act + logits
    free = _free_memory(accelerator.device)
    if need > 0.9 * free:
        where = "GPU memory" if accelerator.device.type == "cuda" else "memory"
        raise LuyenError(f"this run needs about {need / 1e9:.1f} GB of {where} but {free / 1e9:.1f} GB is free",
                         field="train.batch_size", fix="lower train.batch_size or train.max_length, turn on "
                         "train.gradient_checkpointing, or use method lora/qlora")


def _free_memory(device) -> int:
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    import psutil
    return psutil.virtual_memory().available
