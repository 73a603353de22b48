"""The model's output layer, as training, scoring and generation use it: `output_head(model)`.

Training (`train.loop`) and scoring (`evaluate.likelihood`) run the model with its output layer
switched off: inside ``with head:`` the layer is an identity, so the model returns final hidden
states as ``.logits``, and `HiddenHead.loss` computes the output layer's cross-entropy only at the
positions that carry loss, a chunk at a time (`loss.linear_cross_entropy`). Generation keeps the
layer and only needs its input contiguous (see `output_head`).

Some architectures change the logits after the output layer (Gemma-2/3 soft-cap them, Cohere scales
them, Granite divides them). With the layer switched off that step would hit the hidden states, so
`with head:` switches it off too and `HiddenHead.loss` applies it itself. Which step an architecture
takes is written down per model type in LOGIT_POSTPROCESS; a model type not written there is refused,
because a step we did not know of would silently give a wrong loss.

    head = output_head(model)
    hidden, targets = hidden_states(model, head, batch, device)
    loss = head.loss(hidden[targets != IGNORE], targets[targets != IGNORE], chunk=256)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from luyen.errors import LuyenError
from luyen.train.batches import IGNORE
from luyen.train.loss import linear_cross_entropy, linear_token_losses


MODEL_INPUTS = ("input_ids", "attention_mask", "position_ids")  # what of a batch the model's forward takes


@dataclass(frozen=True)
class LogitStep:
    """A step the model's forward applies to the output layer's logits. ``attr`` names the value the
    forward reads, on the model's config (``on="config"``) or on the model itself (``on="model"``);
    setting it to ``neutral`` makes the forward skip the step."""
    kind: str    # "softcap": cap * tanh(z / cap); "scale": z * value; "divide": z / value
    attr: str
    on: str = "config"
    neutral: float | None = None


SOFTCAP = LogitStep("softcap", "final_logit_softcapping")
# Every model type luyen trains or scores, and what its forward does to the logits (checked against
# each *ForCausalLM.forward in transformers 5; None: nothing).
LOGIT_POSTPROCESS: dict[str, LogitStep | None] = {
    **dict.fromkeys(("gpt2", "llama", "mistral", "mixtral", "bloom", "phi", "phi3", "gpt_neox", "qwen2", "qwen3",
                     "qwen3_moe", "gemma", "smollm3", "starcoder2", "olmo2", "falcon", "gptj", "opt", "bert"), None),
    "gemma2": SOFTCAP, "gemma3": SOFTCAP, "gemma3_text": SOFTCAP,
    "cohere": LogitStep("scale", "logit_scale", on="model", neutral=1.0),
    "cohere2": LogitStep("scale", "logit_scale", on="model", neutral=1.0),
    "granite": LogitStep("divide", "logits_scaling", neutral=1.0),
    "granitemoe": LogitStep("divide", "logits_scaling", neutral=1.0),
}


def output_head(model) -> "HiddenHead":
    """The one place luyen handles a model's output layer, for training, scoring and generation alike:
    it makes the layer's input contiguous for generation, and returns the `HiddenHead` that training and
    scoring run the model through. Refuses a model type whose logit post-processing it does not know.

    Contiguity: at the first decoding step transformers slices the last position out of the prompt's
    hidden states ([B, L, H] -> [B, 1, H], not contiguous); for such an input torch.matmul takes its
    batched path and copies the [V, H] weight once per row: 41 s instead of 30 ms for 37 prompts on
    Gemma-3's 262k-token head (measured under PEFT). A forward pre-hook makes it contiguous first
    (`contiguous_input`, which the generation engine installs too)."""
    head = HiddenHead(model)
    contiguous_input(head.layer)
    return head


def contiguous_input(layer) -> None:
    """A forward pre-hook that makes `layer`'s input contiguous, installed once (see `output_head`)."""
    if isinstance(layer, torch.nn.Module) and not getattr(layer, "_luyen_contiguous", False):
        layer.register_forward_pre_hook(lambda _, args: (args[0].contiguous(), *args[1:]) if args else None)
        layer._luyen_contiguous = True


class HiddenHead:
    """Inside `with head:` the model returns final hidden states as `.logits` (its output layer is
    an identity, its logit post-processing off); `head.loss(hidden, targets)` is the output layer's
    cross-entropy with that post-processing. When peft trains a few rows of the layer (trainable
    tokens), the loss reads the frozen matrix plus those rows. Made by `output_head`."""

    def __init__(self, model):
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        layer = base.get_output_embeddings()
        if layer is None:
            raise LuyenError(f"{type(base).__name__} has no output layer to train a language model with",
                             field="model.name", fix="use a causal (decoder) language model")
        kind = getattr(base.config, "model_type", None)
        if kind not in LOGIT_POSTPROCESS:
            raise LuyenError(f"luyen does not know how model type '{kind}' post-processes its logits, so it cannot "
                             "compute its loss", field="model.name",
                             fix="use a supported architecture (llama, qwen2, gemma3, mistral, phi3, gpt2 ...), or add "
                             "the model type to luyen.train.head.LOGIT_POSTPROCESS")
        for name, mod in base.named_modules():
            if mod is layer:
                parent_name, _, self.attr = name.rpartition(".")
                self.parent = base.get_submodule(parent_name) if parent_name else base
                break
        self.layer = layer
        self.tokens = getattr(layer, "token_adapter", None)  # peft's TrainableTokensLayer, when it wraps the head
        frozen = self.tokens.base_layer if self.tokens is not None else layer
        self.weight, self.bias = frozen.weight, getattr(frozen, "bias", None)
        self.use_cache = getattr(base.config, "use_cache", None) is not None
        step = self.step = LOGIT_POSTPROCESS[kind]
        self.owner = None if step is None else base if step.on == "model" else base.config
        self.value = None if step is None else getattr(self.owner, step.attr, None)  # None: the step is off
        applied = step.kind if self.value is not None else None
        self.softcap = self.value if applied == "softcap" else None
        self.scale = self.value if applied == "scale" else 1 / self.value if applied == "divide" else None

    def __enter__(self):
        setattr(self.parent, self.attr, torch.nn.Identity())
        if self.value is not None:
            setattr(self.owner, self.step.attr, self.step.neutral)
        return self

    def __exit__(self, *exc):
        setattr(self.parent, self.attr, self.layer)
        if self.value is not None:
            setattr(self.owner, self.step.attr, self.value)

    def rows(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(index, values) of the output rows peft's trainable tokens replace, while the adapter is on."""
        t = self.tokens
        if t is None or t.disable_adapters or t.merged or not t.active_adapters:
            return None
        name = t.active_adapters[0]
        index = torch.tensor(t.token_indices[name], device=self.weight.device)
        return index, t.trainable_tokens_delta[name]

    def loss(self, hidden: torch.Tensor, targets: torch.Tensor, chunk: int, per_token: bool = False) -> torch.Tensor:
        """Cross-entropy of the output layer on final hidden states [N, H] against targets [N]: summed,
        or with ``per_token`` every position's own [N] (what sequence log-probabilities add up)."""
        bias = self.bias
        if self.scale is not None and self.scale != 1:  # (s h) W^T + s b = s (h W^T + b): exact
            hidden, bias = hidden * self.scale, (bias * self.scale if bias is not None else None)
        fn = linear_token_losses if per_token else linear_cross_entropy
        return fn(hidden, self.weight, bias, targets, chunk=chunk, softcap=self.softcap, rows=self.rows())


def hidden_states(model, head: HiddenHead, batch: dict, device, autocast=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Final hidden states [B, L, H] of one micro-batch, aligned with its targets [B, L]."""
    targets = batch["targets"].to(device)
    inputs = {k: v.to(device) for k, v in batch.items() if k in MODEL_INPUTS}
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


def sequence_logps(model, head: HiddenHead, batch: dict, chunk: int, device, autocast=None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probability of every sequence's loss-bearing tokens (its answer), summed, [S], and their
    number [S]; ``batch["seq"]`` says which sequence each position belongs to (row, or packed segment)."""
    hidden, targets = hidden_states(model, head, batch, device, autocast)
    sel = targets != IGNORE
    seq = batch["seq"].to(device)[sel]
    n = batch["sequences"]
    token = -head.loss(hidden[sel], targets[sel], chunk, per_token=True)
    logp = torch.zeros(n, dtype=token.dtype, device=device).index_add(0, seq, token)
    return logp, torch.bincount(seq, minlength=n)


class NextToken:
    """The objective of supervised fine-tuning and pretraining: the mean next-token loss over the
    step's loss-bearing tokens. The training loop asks its objective for batches and loss sums; a
    preference objective (train.preference) answers the same questions for pairs."""
    needs_reference = False

    def collate(self, examples, pad_id: int, packing: bool) -> dict:
        from luyen.train.batches import collate
        return collate(examples, pad_id, packing)

    def loss(self, model, head: HiddenHead, batch: dict, chunk: int, device, autocast, state: dict):
        """(sum of losses, what it is a sum over, {statistic: sum}) for one micro-batch."""
        s, k = loss_sum(model, head, batch, chunk, device, autocast)
        return s, k, {}

    def end_step(self, sums: dict, norm: int, state: dict) -> None:
        """After an optimiser step: carry what the next step's loss needs (nothing here)."""

    @staticmethod
    def summarise(sums: dict, norm: int) -> dict:
        return {}
