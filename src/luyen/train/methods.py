"""The fine-tuning methods, as one table of data and one function each that makes a model trainable.

| method   | trains                                   | default lr | saved as                   |
|----------|------------------------------------------|------------|----------------------------|
| full     | every weight                             | 2e-5       | safetensors model          |
| lora     | low-rank adapters (peft) on chosen layers| 2e-4       | PEFT adapter               |
| qlora    | LoRA over a 4-bit NF4 base (bitsandbytes)| 2e-4       | PEFT adapter               |
| prompt   | a soft prompt of virtual tokens (peft)   | 3e-2       | PEFT adapter               |
| ptuning  | a soft prompt from an MLP encoder (peft) | 3e-3       | PEFT adapter               |
| freeze   | the last N transformer layers + norm     | 5e-5       | safetensors model          |
| pretrain | a new model on a new BPE tokenizer, or   | 6e-4 / 5e-5| safetensors model          |
|          | continued pretraining of model.name      |            |                            |

    model = prepare_model(model, cfg.train)      # returns the trainable model (peft-wrapped or not)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from luyen.errors import LuyenError


@dataclass(frozen=True)
class Method:
    name: str
    trains: str
    lr: float
    adapter: bool  # saved as a PEFT adapter over an unchanged base


METHODS = {m.name: m for m in (
    Method("full", "every weight", 2e-5, False),
    Method("lora", "low-rank adapters on the chosen linear layers", 2e-4, True),
    Method("qlora", "low-rank adapters over a 4-bit NF4 quantised base", 2e-4, True),
    Method("prompt", "a soft prompt of virtual token embeddings", 3e-2, True),
    Method("ptuning", "a soft prompt produced by a small MLP encoder", 3e-3, True),
    Method("freeze", "only the last N transformer layers and the final norm", 5e-5, False),
    Method("pretrain", "every weight of a new (or continued) model on raw text", 6e-4, False),
)}


def default_lr(tc) -> float:
    if tc.lr:
        return tc.lr
    if tc.method == "pretrain" and not tc.pretrain.from_scratch:
        return 5e-5
    return METHODS[tc.method].lr


def prepare_model(model, tc, tokenizer=None, template: str | None = None):
    """Freeze what the method keeps fixed and wrap the model as the method needs; returns the model to
    train. With a tokenizer and chat template, LoRA also trains the embedding rows `train_token_ids` picks."""
    m = tc.method
    if m in ("full", "pretrain"):
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    if m == "freeze":
        return _freeze_all_but(model, tc.freeze_layers_but)
    from peft import get_peft_model
    if m in ("lora", "qlora"):
        from peft import LoraConfig
        if m == "qlora":
            from peft import prepare_model_for_kbit_training
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=tc.gradient_checkpointing)
        lc = tc.lora
        _check_targets(model, lc.target_modules)
        train_tokens = train_token_ids(model, tokenizer, template, lc) if tokenizer is not None and template else []
        config = LoraConfig(task_type="CAUSAL_LM", r=lc.r, lora_alpha=lc.alpha, lora_dropout=lc.dropout,
                            target_modules=lc.target_modules, use_rslora=lc.rslora, use_dora=lc.dora,
                            trainable_token_indices=sorted(train_tokens) if train_tokens else None)
    elif m == "prompt":
        from peft import PromptTuningConfig
        config = PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=tc.num_virtual_tokens)
    else:
        from peft import PromptEncoderConfig
        config = PromptEncoderConfig(task_type="CAUSAL_LM", num_virtual_tokens=tc.num_virtual_tokens,
                                     encoder_hidden_size=_hidden(model))
    model = get_peft_model(model, config)
    if m in ("lora", "qlora"):
        fast_lora_dropout(model)
    return model


CLONE_COSINE, CLONES = 0.9, 64


def untrained_rows(model, ids: list[int]) -> list[int]:
    """The ids whose input-embedding row was never trained: a row with at least CLONES near-copies (cosine
    >= CLONE_COSINE) in the vocabulary, the untouched initialisation that unused tokens share, or an
    all-zero row. On Gemma-3-270M base, <start_of_turn> and <end_of_turn> each have ~6,400 such copies
    (the <unusedN> tokens); a trained token such as <eos> or '\\n' has none."""
    if not ids:
        return []
    weight = model.get_input_embeddings().weight.detach()
    norms = torch.linalg.vector_norm(weight, dim=1, dtype=torch.float32)  # no fp32 copy of a 262k-row matrix
    rows = weight[ids]
    cosine = (weight @ rows.t()).float() / (norms[:, None] * norms[ids][None, :]).clamp_min(1e-12)
    clones = (cosine >= CLONE_COSINE).sum(0) - 1  # the row itself is not its own clone
    return [i for i, n, c in zip(ids, norms[ids].tolist(), clones.tolist()) if n == 0.0 or c >= CLONES]


def train_token_ids(model, tokenizer, template: str, lc) -> list[int]:
    """The ids whose embedding rows LoRA config ``lc`` trains: under 'auto' the template's special tokens
    whose rows `untrained_rows` finds untrained."""
    from luyen.data.template import special_ids
    if lc.train_tokens == "none":
        return []
    if lc.train_tokens == "auto":
        return untrained_rows(model, special_ids(tokenizer, template))
    vocab = tokenizer.get_vocab()
    unknown = [t for t in lc.train_tokens if t not in vocab]
    if unknown:
        raise LuyenError(f"train.lora.train_tokens names tokens the tokenizer does not have: {unknown}",
                         field="train.lora.train_tokens", fix="name whole tokens of the vocabulary, or use 'auto'")
    return sorted({vocab[t] for t in lc.train_tokens})


class FastDropout(torch.nn.Module):
    """Inverted dropout whose mask comes from numpy's PCG64 (seeded by one draw from torch's RNG, so
    checkpoints that save torch's RNG state resume exactly). torch's CPU bernoulli_ spends ~4.3 ms on
    a 1280x640 activation; this spends ~1.7 ms, and LoRA calls it 7 times per layer per step. The
    drop probability is rounded to 1/65536 (0.05 -> 0.0500031)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p
        self.threshold = round(p * 65536) - 32768  # int16 values below this are dropped

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0 or x.device.type != "cpu":
            return torch.nn.functional.dropout(x, self.p, self.training)
        import numpy as np
        seed = int(torch.randint(0, 2**62, (1,)))
        raw = np.random.Generator(np.random.PCG64(seed)).bytes(2 * x.numel())
        keep = torch.frombuffer(bytearray(raw), dtype=torch.int16).view(x.shape) >= self.threshold
        return x * keep.to(x.dtype) * (1.0 / (1.0 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}"


def fast_lora_dropout(model) -> int:
    """Swap peft's LoRA dropout modules for FastDropout (same p); returns how many were swapped."""
    n = 0
    for mod in model.modules():
        drops = getattr(mod, "lora_dropout", None)
        if isinstance(drops, torch.nn.ModuleDict):
            for key, d in list(drops.items()):
                if isinstance(d, torch.nn.Dropout) and d.p > 0:
                    drops[key] = FastDropout(d.p)
                    n += 1
    return n


def _hidden(model) -> int:
    c = model.config
    return getattr(c, "hidden_size", None) or getattr(c, "n_embd", None) or getattr(c, "d_model")


def linear_names(model) -> list[str]:
    """Distinct leaf names of the linear layers LoRA can adapt (the output layer excluded)."""
    head = model.get_output_embeddings()
    names = set()
    for name, mod in model.named_modules():
        if mod is head:
            continue
        if isinstance(mod, torch.nn.Linear) or type(mod).__name__ in ("Conv1D", "Linear4bit", "Linear8bitLt"):
            names.add(name.rsplit(".", 1)[-1])
    return sorted(names)


def _check_targets(model, targets) -> None:
    if targets == "all-linear":
        return
    wanted = [targets] if isinstance(targets, str) else list(targets)
    have = set(linear_names(model))
    missing = [t for t in wanted if t not in have]
    if missing:
        raise LuyenError(f"LoRA target module(s) {missing} do not exist in this model", field="train.lora.target_modules",
                         fix=f"use some of {sorted(have)} or 'all-linear'")


def transformer_layers(model) -> torch.nn.ModuleList:
    """The model's stack of transformer blocks: the longest ModuleList inside it."""
    best = None
    for mod in model.modules():
        if isinstance(mod, torch.nn.ModuleList) and (best is None or len(mod) > len(best)):
            best = mod
    if best is None:
        raise LuyenError("cannot find this model's transformer layers", field="train.method",
                         fix="use method lora or full for this architecture")
    return best


def _freeze_all_but(model, n: int):
    layers = transformer_layers(model)
    if n > len(layers):
        raise LuyenError(f"the model has {len(layers)} layers; cannot train the last {n}", field="train.freeze_layers_but",
                         fix=f"use a value between 1 and {len(layers)}")
    for p in model.parameters():
        p.requires_grad_(False)
    for layer in list(layers)[-n:]:
        for p in layer.parameters():
            p.requires_grad_(True)
    for name, mod in model.named_modules():  # the final norm after the last layer
        if name.endswith(("norm", "ln_f", "final_layer_norm", "final_layernorm")) and "layers" not in name and ".h." not in name:
            for p in mod.parameters():
                p.requires_grad_(True)
    return model


def trained_rows(model) -> list[int]:
    """Token ids whose embedding rows a peft model trains (trainable tokens); [] for any other model."""
    config = getattr(model, "peft_config", {}).get("default")
    indices = getattr(config, "trainable_token_indices", None) or []
    return sorted(indices.get("embed_tokens", []) if isinstance(indices, dict) else indices)


def trainable_summary(model) -> dict:
    total = sum(p.numel() for p in model.parameters())
    train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"trainable": train, "total": total, "share": round(train / max(total, 1), 6)}
