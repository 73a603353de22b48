"""The model with its output layer switched off, and the loss computed from its final hidden states.

Training (`train.loop`) and scoring (`evaluate.likelihood`) both run the model through `HiddenHead`:
inside ``with head:`` the output layer is an identity, so the model returns final hidden states as
``.logits``, and `HiddenHead.loss` computes the output layer's cross-entropy only at the positions
that carry loss, a chunk at a time (`loss.linear_cross_entropy`). The architecture's final logit
softcap (Gemma's ``final_logit_softcapping``) is switched off in the model and applied in the loss.

    head = HiddenHead(model)
    hidden, targets = hidden_states(model, head, batch, device)
    loss = head.loss(hidden[targets != IGNORE], targets[targets != IGNORE], chunk=256)
"""
from __future__ import annotations

import torch

from luyen.errors import LuyenError
from luyen.train.batches import IGNORE
from luyen.train.loss import linear_cross_entropy


class HiddenHead:
    """Inside `with head:` the model returns final hidden states as `.logits` (its output layer is
    an identity); `head.loss(hidden, targets)` is the output layer's cross-entropy. When peft trains a
    few rows of it (trainable tokens), the loss reads the frozen matrix plus those rows."""

    def __init__(self, model):
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        layer = base.get_output_embeddings()
        if layer is None:
            raise LuyenError(f"{type(base).__name__} has no output layer to train a language model with",
                             field="model.name", fix="use a causal (decoder) language model")
        for name, mod in base.named_modules():
            if mod is layer:
                parent_name, _, self.attr = name.rpartition(".")
                self.parent = base.get_submodule(parent_name) if parent_name else base
                break
        self.layer = layer
        self.tokens = getattr(layer, "token_adapter", None)  # peft's TrainableTokensLayer, when it wraps the head
        frozen = self.tokens.base_layer if self.tokens is not None else layer
        self.weight, self.bias = frozen.weight, getattr(frozen, "bias", None)
        self.config = base.config
        self.use_cache = getattr(base.config, "use_cache", None) is not None
        self.softcap = getattr(base.config, "final_logit_softcapping", None)

    def __enter__(self):
        setattr(self.parent, self.attr, torch.nn.Identity())
        if self.softcap:
            self.config.final_logit_softcapping = None
        return self

    def __exit__(self, *exc):
        setattr(self.parent, self.attr, self.layer)
        if self.softcap:
            self.config.final_logit_softcapping = self.softcap


    def rows(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(index, values) of the output rows peft's trainable tokens replace, while the adapter is on."""
        t = self.tokens
        if t is None or t.disable_adapters or t.merged or not t.active_adapters:
            return None
        name = t.active_adapters[0]
        index = torch.tensor(t.token_indices[name], device=self.weight.device)
        return index, t.trainable_tokens_delta[name]

    def loss(self, hidden: torch.Tensor, targets: torch.Tensor, chunk: int) -> torch.Tensor:
        """Summed cross-entropy of the output layer on final hidden states [N, H] against targets [N]."""
        return linear_cross_entropy(hidden, self.weight, self.bias, targets, chunk=chunk, softcap=self.softcap,
                                    rows=self.rows())


def hidden_states(model, head: HiddenHead, batch: dict, device, autocast=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Final hidden states [B, L, H] of one micro-batch, aligned with its targets [B, L]."""
    targets = batch["targets"].to(device)
    inputs = {k: v.to(device) for k, v in batch.items() if k != "targets"}
    if head.use_cache:
        inputs["use_cache"] = False
    with head, torch.autocast(device.type, dtype=autocast or torch.bfloat16, enabled=autocast is not None):
        hidden = model(**inputs).logits
    # Prompt-learning adapters (prompt, ptuning) prepend their virtual tokens to the sequence; with the
    # adapter switched off (evaluation's base systems) there are none. Read it off the output.
    return hidden[:, hidden.shape[1] - targets.shape[1]:], targets


def loss_sum(model, head: HiddenHead, batch: dict, chunk: int, device, autocast=None) -> tuple[torch.Tensor, int]:
    """Sum of token losses of one micro-batch, and its number of loss-bearing tokens."""
    hidden, targets = hidden_states(model, head, batch, device, autocast)
    sel = targets != IGNORE
    return head.loss(hidden[sel], targets[sel], chunk), int(sel.sum())
