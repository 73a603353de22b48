"""What a training run will cost on this machine, before it starts.

Compute: a causal LM spends ~2 FLOPs per parameter per token forward and ~2 more backward for the
activation gradients; full fine-tuning adds ~2 for the weight gradients. The output layer (hidden x
vocab) runs only at loss-bearing positions, because luyen computes logits only where the loss needs
them. Time = FLOPs / (measured matmul peak x efficiency) + the optimiser's pass over the trainable
weights each step + writing checkpoints. Memory = the base weights as the method holds them (+ gradients
and AdamW state for what trains) + activations for one micro-batch + one chunk of logits (`training_memory`, the one formula).
What differs between methods comes from their records (train.methods.METHODS).

    shape = {"params": 268e6, "embed": 168e6, "hidden": 640, "layers": 18, "vocab": 262144}
    estimate_training(shape, load_config().train, tokens=1e6, loss_tokens=4e5, tokens_per_batch=2048,
                      peak_flops=169e9)
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
EFFICIENCY = {("cpu", "fp32"): 0.48, ("cpu", "bf16"): 0.11, ("cpu", "bf16", "weight_grads"): 0.05,
              ("cuda", "fp32"): 0.4, ("cuda", "bf16"): 0.4, ("cuda", "fp16"): 0.4}
OPTIMIZER_PASSES = 2  # AdamW plus gradient clipping and zeroing: measured 0.86 s a step on 268M, 2x a bare AdamW
DISK_BANDWIDTH = 0.5e9  # bytes/s for an fsynced checkpoint (weights + AdamW state: 12 bytes per trainable parameter)
ACT_BYTES_PER_TOKEN_LAYER_HIDDEN = 4 * 18  # fp32, ~18 saved tensors of width `hidden` per layer
# Python, torch, the tokenizer (Gemma's 262k vocabulary), allocator slack: measured peak RSS minus the
# tensors' terms came to ~1-1.5 GB on the embedded model's LoRA runs
RUNTIME_BYTES = 1.2e9


def training_peak(dtype: str = "auto") -> float:
    """The matmul peak in the dtype `luyen train` will compute in on this CPU (train.dtype)."""
    from luyen.precision import choose
    return cached_peak(choose(dtype).long)


def measure_matmul_peak(n: int = 2048, repeats: int = 10, dtype=None, min_seconds: float = 0.5) -> float:
    """FLOP/s of a square matmul (fp32 unless `dtype` says otherwise) on this device: the best of at least
    `repeats` runs spread over at least `min_seconds`, after a warm-up, as bench/train_throughput.py
    measures it. n=1024 read 36 GFLOP/s on a CPU whose peak is ~170: too small to keep both cores busy.
    The time floor is for shared machines: on a 2-core AMX VM, ten bf16 runs take 60 ms, and one such window
    read 935 GFLOP/s where sixty in a row read 2,100-3,100, which made `luyen train` announce 12 minutes
    for a 4-minute run."""
    import torch
    g = torch.Generator().manual_seed(0)  # never the global RNG: training's dropout draws from it after this
    a, b = torch.randn(n, n, dtype=dtype, generator=g), torch.randn(n, n, dtype=dtype, generator=g)
    torch.mm(a, b)
    best, runs, began = float("inf"), 0, time.perf_counter()
    while runs < repeats or (time.perf_counter() - began < min_seconds and runs < 50 * repeats):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
        runs += 1
    return 2 * n ** 3 / best


def reset_peak_memory() -> bool:
    """Start this process's peak RSS afresh from its current RSS (Linux: "5" to /proc/self/clear_refs), so a
    stage that runs after others in one process (`luyen run`: data, rag, train) reports its own peak; False
    where the kernel does not offer it, and peak_memory_gb then covers the whole process."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_memory_gb() -> float:
    """This process's peak RSS in GB since reset_peak_memory (VmHWM). Not ru_maxrss where /proc answers:
    it never resets, and Linux carries a parent's peak into a child's ru_maxrss at exec."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) * 1024 / 1e9
    except (OSError, StopIteration, ValueError):
        import resource
        import sys
        unit = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is in bytes on macOS, KiB on Linux
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * unit / 1e9


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


def estimate_training(shape: dict, tc, *, tokens: float, loss_tokens: float, tokens_per_batch: int,
                      peak_flops: float, precision: str = "fp32", device: str = "cpu", steps: int = 0, saves: int = 0,
                      optimizer_params_per_s: float = 0.0, eval_tokens: float = 0.0,
                      eval_loss_tokens: float = 0.0) -> dict:
    """Time and peak memory of training a model of ``shape`` (models.shape.model_shape) under train config
    ``tc`` (its method's terms: what trains, whether every weight gets a gradient, how the base is held).
    ``eval_*``: tokens of all validation passes (forward only: 2 FLOPs per parameter per token);
    ``steps``: optimiser steps, each updating the trainable parameters at ``optimizer_params_per_s``
    (``optimizer_rate()``; 0 leaves it out), OPTIMIZER_PASSES times; ``saves``: checkpoints written."""
    from luyen.train.methods import method_of
    method = method_of(tc)
    params, hidden, vocab = shape["params"], shape["hidden"] or 0, shape["vocab"] or 0
    body = max(params - shape["embed"], 0.0)
    backward = 4 if method.weight_grads else 2  # activation gradients, plus weight gradients when all train
    flops_per_token = (2 + backward) * body + (2 * body if tc.gradient_checkpointing else 0)  # recomputed forward
    flops = flops_per_token * tokens + (2 + backward) * hidden * vocab * loss_tokens
    eval_flops = 2 * body * eval_tokens + 2 * hidden * vocab * eval_loss_tokens
    eff = EFFICIENCY.get((device, precision, "weight_grads") if method.weight_grads else (),
                         EFFICIENCY.get((device, precision), EFFICIENCY[(device, "fp32")]))
    trainable = method.trainable(shape, tc)
    optimizer_s = steps * OPTIMIZER_PASSES * trainable / optimizer_params_per_s if optimizer_params_per_s else 0.0
    seconds = flops / (peak_flops * eff) + optimizer_s
    eval_seconds = eval_flops / (peak_flops * eff) + saves * 12 * trainable / DISK_BANDWIDTH
    peak = training_memory(shape, tc, trainable=trainable, tokens_per_batch=tokens_per_batch,
                           precision=precision) + RUNTIME_BYTES
    # seconds to 3 significant digits: a tiny run takes milliseconds, not 0
    return {"method": method.name, "trainable_params": int(trainable), "train_tokens": int(tokens),
            "flops": flops, "seconds": float(f"{seconds + eval_seconds:.3g}"), "train_seconds": float(f"{seconds:.3g}"),
            "eval_seconds": float(f"{eval_seconds:.3g}"), "peak_memory_gb": round(peak / 1e9, 2),
            "assumed_efficiency": eff, "matmul_peak_gflops": round(peak_flops / 1e9, 1), "precision": precision}


def training_memory(shape: dict, tc, *, trainable: float, tokens_per_batch: int, precision: str = "fp32") -> float:
    """Bytes the tensors of one training step hold at its peak: the base weights (as the method holds them),
    gradient + AdamW state of what trains, one micro-batch's activations and one chunk of logits. The one
    memory formula: the estimate adds the runtime to it, the stage's pre-flight check compares it with
    the memory that is free."""
    import torch

    from luyen.precision import choose
    from luyen.train.methods import method_of
    method = method_of(tc)
    held = choose(precision).weights(trained=method.base_trains)
    weight_bytes = method.weight_bytes if method.weight_bytes is not None else torch.empty((), dtype=held).element_size()
    optimizer = 12 * trainable  # fp32 gradient + AdamW's two moments
    act = tokens_per_batch * (shape["layers"] or 0) * (shape["hidden"] or 0) * ACT_BYTES_PER_TOKEN_LAYER_HIDDEN
    act *= 0.15 if tc.gradient_checkpointing else 1
    logits = min(tc.logit_chunk, tokens_per_batch) * (shape["vocab"] or 0) * 4 * 3  # logits, softmax, their gradient
    return weight_bytes * shape["params"] + optimizer + act + logits


def describe_model(folder) -> dict:
    """Parameter counts and shapes from a model folder's config, without loading weights."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from luyen.models.shape import model_shape
    config = AutoConfig.from_pretrained(folder)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return model_shape(model)
