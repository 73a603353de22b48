"""What a training run will cost on this machine, before it starts.

Compute: a causal LM spends ~2 FLOPs per parameter per token forward and ~2 more backward for the
activation gradients; full fine-tuning adds ~2 for the weight gradients. The output layer (hidden x
vocab) runs only at loss-bearing positions, because luyen computes logits only where the loss needs
them. Time = FLOPs / (measured matmul peak x efficiency). Memory = fp32 weights (+ gradients and
AdamW state for what trains) + activations for one micro-batch + one chunk of logits.

    estimate_training(params=268e6, embed=168e6, hidden=640, layers=18, vocab=262144, method="lora",
                      tokens=1e6, loss_tokens=4e5, tokens_per_batch=2048, peak_flops=169e9)
"""
from __future__ import annotations

import time

# Share of the measured matmul peak (in the dtype training uses) a run reaches. CPU: measured by
# bench/train_throughput.py on Gemma-3-270M LoRA, 0.40 of the bf16 peak and 0.49 of the fp32 one.
EFFICIENCY = {"cpu": 0.40, "cuda": 0.40}
LOGIT_CHUNK = 256  # positions whose logits exist at once
ACT_BYTES_PER_TOKEN_LAYER_HIDDEN = 4 * 18  # fp32, ~18 saved tensors of width `hidden` per layer


def training_peak(dtype: str = "auto") -> float:
    """The matmul peak in the dtype `luyen train` will compute in on this CPU (train.dtype)."""
    from luyen.precision import choose
    return measure_matmul_peak(dtype=choose(dtype).dtype)


def measure_matmul_peak(n: int = 1024, repeats: int = 3, dtype=None) -> float:
    """FLOP/s of a square matmul (fp32 unless `dtype` says otherwise) on this device (best of a few runs, ~0.1 s)."""
    import torch
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best


def estimate_training(*, params: float, embed: float, hidden: int, layers: int, vocab: int, method: str,
                      tokens: float, loss_tokens: float, tokens_per_batch: int, peak_flops: float,
                      lora_r: int = 8, gradient_checkpointing: bool = False, device: str = "cpu") -> dict:
    body = max(params - embed, 0.0)
    full = method in ("full", "pretrain")
    flops_per_token = (6 if full else 4) * body
    flops = flops_per_token * tokens + (6 if full else 4) * hidden * vocab * loss_tokens
    seconds = flops / (peak_flops * EFFICIENCY[device])
    trainable = params if full else _adapter_params(method, hidden, layers, lora_r)
    weight_bytes = (0.6 if method == "qlora" else 4) * params
    optimizer_bytes = 12 * trainable  # fp32 gradient + AdamW's two moments
    act = tokens_per_batch * layers * hidden * ACT_BYTES_PER_TOKEN_LAYER_HIDDEN * (0.15 if gradient_checkpointing else 1)
    logits = min(LOGIT_CHUNK, tokens_per_batch) * vocab * 4 * 3  # logits, softmax and their gradient
    peak = weight_bytes + optimizer_bytes + act + logits + 0.5e9  # + runtime overhead
    # seconds to 3 significant digits: a tiny run takes milliseconds, not 0
    return {"method": method, "trainable_params": int(trainable), "train_tokens": int(tokens),
            "flops": flops, "seconds": float(f"{seconds:.3g}"), "peak_memory_gb": round(peak / 1e9, 2),
            "assumed_efficiency": EFFICIENCY[device], "matmul_peak_gflops": round(peak_flops / 1e9, 1)}


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
    text = getattr(config, "text_config", None) or config
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    params = sum(p.numel() for p in model.parameters())
    embed = model.get_input_embeddings().weight.numel()
    return {"params": params, "embed": embed, "hidden": text.hidden_size, "layers": text.num_hidden_layers,
            "vocab": text.vocab_size, "context": getattr(text, "max_position_embeddings", None)}
