"""What a training run will cost on this machine, before it starts.

Compute: a causal LM spends ~2 FLOPs per parameter per token forward and ~2 more backward for the
activation gradients; full fine-tuning adds ~2 for the weight gradients. The output layer (hidden x
vocab) runs only at loss-bearing positions, because luyen computes logits only where the loss needs
them. Time = FLOPs / (measured matmul peak x efficiency) + the optimiser's pass over the trainable
weights each step + writing checkpoints. Memory = fp32 weights (+ gradients and AdamW state for what
trains) + activations for one micro-batch + one chunk of logits.

    estimate_training(params=268e6, embed=168e6, hidden=640, layers=18, vocab=262144, method="lora",
                      tokens=1e6, loss_tokens=4e5, tokens_per_batch=2048, peak_flops=169e9)
"""
from __future__ import annotations

import time
from functools import lru_cache

# Share of the measured matmul peak (in the dtype training uses) a run reaches, by device and precision.
# CPU, measured on Gemma-3-270M LoRA: ~0.48 of the fp32 peak (bench/train_throughput.py's MFU on the AVX2
# kind 0.47; a demo-config run on AVX512 in fp32 0.51), but only ~0.11 of the bf16 peak on AMX, whose tiles multiply
# ~6x faster than fp32 while the rest of a step (attention, norms, casts, the loss) does not speed up.
# Full fine-tuning under bf16 autocast reaches less (~0.05, measured: a forward+backward of 2 x 200
# tokens took 3 s): every weight gradient is a bf16 matmul cast back to fp32, and the tied 262k x 640
# embedding/head gradient is written at every chunk of logits and by the embedding backward.
EFFICIENCY = {("cpu", "fp32"): 0.48, ("cpu", "bf16"): 0.11, ("cpu", "bf16", "full"): 0.05,
              ("cuda", "fp32"): 0.4, ("cuda", "bf16"): 0.4, ("cuda", "fp16"): 0.4}
OPTIMIZER_PASSES = 2  # AdamW plus gradient clipping and zeroing: measured 0.86 s a step on 268M, 2x a bare AdamW
DISK_BANDWIDTH = 0.5e9  # bytes/s for an fsynced checkpoint (weights + AdamW state: 12 bytes per trainable parameter)
LOGIT_CHUNK = 256  # positions whose logits exist at once
ACT_BYTES_PER_TOKEN_LAYER_HIDDEN = 4 * 18  # fp32, ~18 saved tensors of width `hidden` per layer


def training_peak(dtype: str = "auto") -> float:
    """The matmul peak in the dtype `luyen train` will compute in on this CPU (train.dtype)."""
    from luyen.precision import LONG, choose
    return cached_peak(LONG[choose(dtype).name])


def measure_matmul_peak(n: int = 2048, repeats: int = 10, dtype=None) -> float:
    """FLOP/s of a square matmul (fp32 unless `dtype` says otherwise) on this device: best of a few
    runs after a warm-up, as bench/train_throughput.py measures it (n=1024 read 36 GFLOP/s on a CPU
    whose peak is ~170: too small to keep both cores busy, and one slow run was enough)."""
    import torch
    g = torch.Generator().manual_seed(0)  # never the global RNG: training's dropout draws from it after this
    a, b = torch.randn(n, n, dtype=dtype, generator=g), torch.randn(n, n, dtype=dtype, generator=g)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best


@lru_cache(maxsize=1)
def optimizer_rate(n: int = 8_000_000) -> float:
    """Parameters per second an AdamW step (foreach, fp32, as the loop runs it) updates here: memory-bound,
    and on a 2-core CPU it dominates full fine-tuning (measured 0.8 s per 100M parameters)."""
    import torch
    g = torch.Generator().manual_seed(0)  # never the global RNG (see measure_matmul_peak)
    p = torch.nn.Parameter(torch.randn(n, generator=g))
    p.grad = torch.randn(n, generator=g)
    opt = torch.optim.AdamW([p], foreach=True)
    opt.step()
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        opt.step()
        best = min(best, time.perf_counter() - t)
    return n / best


@lru_cache(maxsize=4)
def cached_peak(dtype_name: str) -> float:
    """measure_matmul_peak once per process and dtype ("float32", "bfloat16", "float16")."""
    import torch
    return measure_matmul_peak(dtype=getattr(torch, dtype_name))


def estimate_training(*, params: float, embed: float, hidden: int, layers: int, vocab: int, method: str,
                      tokens: float, loss_tokens: float, tokens_per_batch: int, peak_flops: float,
                      lora_r: int = 8, gradient_checkpointing: bool = False, device: str = "cpu",
                      precision: str = "fp32", steps: int = 0, saves: int = 0, optimizer_params_per_s: float = 0.0,
                      eval_tokens: float = 0.0, eval_loss_tokens: float = 0.0) -> dict:
    """``eval_*``: tokens of all validation passes (forward only: 2 FLOPs per parameter per token);
    ``steps``: optimiser steps, each updating the trainable parameters at ``optimizer_params_per_s``
    (``optimizer_rate()``; 0 leaves it out), OPTIMIZER_PASSES times; ``saves``: checkpoints written."""
    body = max(params - embed, 0.0)
    full = method in ("full", "pretrain")
    flops_per_token = (6 if full else 4) * body + (2 * body if gradient_checkpointing else 0)  # recomputed forward
    flops = flops_per_token * tokens + (6 if full else 4) * hidden * vocab * loss_tokens
    eval_flops = 2 * body * eval_tokens + 2 * hidden * vocab * eval_loss_tokens
    eff = EFFICIENCY.get((device, precision, "full") if full else (), EFFICIENCY.get((device, precision),
                                                                                    EFFICIENCY[(device, "fp32")]))
    trainable = params if full else _adapter_params(method, hidden, layers, lora_r)
    optimizer_s = steps * OPTIMIZER_PASSES * trainable / optimizer_params_per_s if optimizer_params_per_s else 0.0
    seconds = flops / (peak_flops * eff) + optimizer_s
    eval_seconds = eval_flops / (peak_flops * eff) + saves * 12 * trainable / DISK_BANDWIDTH
    weight_bytes = (0.6 if method == "qlora" else 4) * params
    optimizer_bytes = 12 * trainable  # fp32 gradient + AdamW's two moments
    act = tokens_per_batch * layers * hidden * ACT_BYTES_PER_TOKEN_LAYER_HIDDEN * (0.15 if gradient_checkpointing else 1)
    logits = min(LOGIT_CHUNK, tokens_per_batch) * vocab * 4 * 3  # logits, softmax and their gradient
    # + the runtime: Python, torch, the tokenizer (Gemma's 262k vocabulary), allocator slack; measured
    # peak RSS minus the terms above came to ~1-1.5 GB on the embedded model's LoRA runs
    peak = weight_bytes + optimizer_bytes + act + logits + 1.2e9
    # seconds to 3 significant digits: a tiny run takes milliseconds, not 0
    return {"method": method, "trainable_params": int(trainable), "train_tokens": int(tokens),
            "flops": flops, "seconds": float(f"{seconds + eval_seconds:.3g}"), "train_seconds": float(f"{seconds:.3g}"),
            "eval_seconds": float(f"{eval_seconds:.3g}"), "peak_memory_gb": round(peak / 1e9, 2),
            "assumed_efficiency": eff, "matmul_peak_gflops": round(peak_flops / 1e9, 1), "precision": precision}


def _adapter_params(method: str, hidden: int, layers: int, r: int) -> float:
    if method in ("lora", "qlora"):
        return layers * 7 * r * (hidden + 2.5 * hidden)  # all linear layers, MLP ~ 3-4x wider
    if method in ("prompt", "ptuning"):
        return 20 * hidden
    return 2 * 12 * hidden * hidden  # freeze: last layers train (default 2)


def describe_model(folder) -> dict:
    """Parameter counts and shapes from a model folder's config, without loading weights."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM
    config = AutoConfig.from_pretrained(folder)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return model_shape(model)


def model_shape(model) -> dict:
    """The one reader of a model's shape (parameters, embedding, hidden, layers, vocab, context),
    for a plain, PEFT-wrapped or meta-device model."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = getattr(base.config, "text_config", None) or base.config
    embed = base.get_input_embeddings()
    return {"params": sum(p.numel() for p in base.parameters()), "embed": embed.weight.numel() if embed is not None else 0,
            "hidden": getattr(config, "hidden_size", None) or getattr(config, "n_embd", 0) or 0,
            "layers": getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer", 0) or 0,
            "vocab": getattr(config, "vocab_size", 0) or 0, "context": getattr(config, "max_position_embeddings", None)}
