"""What LoRA needs beyond peft: the embedding rows it also trains, its target check and a faster dropout.

    ids = train_token_ids(model, tokenizer, template, cfg.train.lora)   # rows of untrained chat markers
    fast_lora_dropout(peft_model)                                       # peft's Dropout -> FastDropout
"""
from __future__ import annotations

import torch

from luyen.errors import LuyenError


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


def fast_trainable_tokens(model) -> int:
    """Make peft's trainable tokens read their rows instead of copying the whole matrix. peft's layer writes
    the trained rows into a copy of the 262,144 x 640 table on every forward, and backward builds a dense
    gradient of that copy (~0.7 GB per step in bf16, 1.3 GB in fp32, for Gemma-3). Here, over the input
    embedding, rows outside the trained ids come from the frozen table and the trained ones from their
    deltas; over a tied output layer, the frozen layer's logits (its packed weights, luyen.infer.packed)
    get the trained ids' columns from the deltas. Generating with a demo adapter spent 0.7 s of every
    decoding step of 37 rows in that copy and an unpacked 262k-column product (AVX2 EPYC). Same values
    and gradients; peft's own layer is the tests' oracle. Returns how many layers were switched."""
    from peft.tuners.trainable_tokens.layer import TrainableTokensLayer
    n = 0
    for mod in model.modules():
        if isinstance(mod, TrainableTokensLayer) and isinstance(mod.base_layer, torch.nn.Embedding):
            mod.forward_adapters = _lookup.__get__(mod)
            n += 1
        elif isinstance(mod, TrainableTokensLayer) and isinstance(mod.base_layer, torch.nn.Linear):
            mod.forward_adapters = _columns.__get__(mod)
            n += 1
    return n


def _columns(self, x: torch.Tensor, active_adapters, *args, **kwargs) -> torch.Tensor:
    """TrainableTokensLayer.forward_adapters for a tied output layer, without the copied matrix (see above)."""
    base = self.base_layer
    if self.disable_adapters or not active_adapters or self.merged or base.bias is not None:
        return type(self).forward_adapters(self, x, active_adapters, *args, **kwargs)
    self._check_overlapping_tokens(active_adapters)
    result = base(x)
    for name in active_adapters:
        index = torch.tensor(self.token_indices[name], device=x.device)
        rows = torch.nn.functional.linear(x, self.trainable_tokens_delta[name].to(x.dtype))
        result = result.index_copy(result.dim() - 1, index, rows.to(result.dtype))
    return result


def _lookup(self, x: torch.Tensor, active_adapters, *args, **kwargs) -> torch.Tensor:
    """TrainableTokensLayer.forward_adapters for an embedding, without the copied table (see above)."""
    base = self.base_layer
    if self.disable_adapters or not active_adapters or self.merged or base.max_norm is not None:
        return type(self).forward_adapters(self, x, active_adapters, *args, **kwargs)
    self._check_overlapping_tokens(active_adapters)
    result = torch.nn.functional.embedding(x, base.weight, padding_idx=base.padding_idx)
    for name in active_adapters:
        index = torch.tensor(self.token_indices[name], device=x.device)
        hit = torch.isin(x, index)
        if hit.any():
            slot = torch.searchsorted(index.sort().values, x[hit])  # x's position among the sorted trained ids
            order = index.argsort()
            rows = self.trainable_tokens_delta[name][order[slot]].to(result.dtype)
            result = result.index_put((hit,), rows)
    scale = self._get_embed_scale()
    return result if scale is None else result * scale.to(result.dtype)


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


def check_targets(model, targets) -> None:
    if targets == "all-linear":
        return
    wanted = [targets] if isinstance(targets, str) else list(targets)
    have = set(linear_names(model))
    missing = [t for t in wanted if t not in have]
    if missing:
        raise LuyenError(f"LoRA target module(s) {missing} do not exist in this model", field="train.lora.target_modules",
                         fix=f"use some of {sorted(have)} or 'all-linear'")


def trained_rows(model) -> list[int]:
    """Token ids whose embedding rows a peft model trains (trainable tokens); [] for any other model."""
    config = getattr(model, "peft_config", {}).get("default")
    indices = getattr(config, "trainable_token_indices", None) or []
    return sorted(indices.get("embed_tokens", []) if isinstance(indices, dict) else indices)
