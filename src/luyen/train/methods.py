"""The fine-tuning methods: one `Method` record each, holding everything that differs between them.

| method  | trains                                    | lr   | base weights      | saved as          | packing |
|---------|-------------------------------------------|------|-------------------|-------------------|---------|
| full    | every weight                              | 2e-5 | fp32 (they train) | safetensors model | yes     |
| lora    | low-rank adapters (peft) on chosen layers | 2e-4 | compute dtype     | PEFT adapter      | yes     |
| qlora   | LoRA over a 4-bit NF4 base (bitsandbytes) | 2e-4 | NF4 + compute     | PEFT adapter      | yes     |
| prompt  | a soft prompt of virtual tokens (peft)    | 3e-2 | compute dtype     | PEFT adapter      | no      |
| ptuning | a soft prompt from an MLP encoder (peft)  | 3e-3 | compute dtype     | PEFT adapter      | no      |
| freeze  | the last N transformer layers + norm      | 5e-5 | fp32 (they train) | safetensors model | yes     |
| dpo     | what train.preference.over trains (lora, qlora, full), from pairs, against a reference | 5e-5 x | as over | as over | as over |
| kto     | the same, from answers rated good or bad, against a reference                            | 5e-5 x | as over | as over | as over |
| orpo    | the same, from pairs, no reference (SFT + odds ratio)                                     | 5e-5 x | as over | as over | as over |
| simpo   | the same, from pairs, no reference (length-normalised margin)                             | 5e-5 x | as over | as over | as over |

The preference methods (`objective` set) are an objective over another method's record: `method_of(tc)`
completes them with train.preference.over, whose wrap, memory and saving they take; their rate is the
one shown over lora, scaled like over's own rate (full: 5e-6).

Training a new model (``model.name: scratch:causal-tiny``) or continuing the pretraining of one on raw
text is method ``full``: where the model comes from is the model source's business (train/source.py).
Adding a method is one record here (and its tests); the stage, the loop and the estimate read the
record and know no method by name. A record's `encoder` and `head` say how it trains a sentence encoder
(train.task=embedding) and a task head (luyen.tasks: full, lora and freeze can); None where it cannot.

    method = method_of(cfg.train)
    model = method.wrap(model, cfg.train, tokenizer, template)   # the model to train (peft-wrapped or not)
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import torch

from luyen.errors import LuyenError
from luyen.train import lora, preference


@dataclass(frozen=True)
class Method:
    name: str
    trains: str          # what trains, in words (`luyen train --methods`)
    lr: float            # default peak learning rate
    adapter: bool        # saved as a PEFT adapter over an unchanged base; else as full safetensors weights
    wrap: Callable       # (model, tc, tokenizer | None, template | None) -> the model to train
    # the estimate's terms: (shape, tc) -> parameters that train, known before the model is wrapped
    trainable: Callable[[dict, object], float]
    base_trains: bool = False  # base weights train: held in fp32 (precision.weights); else in the compute dtype
    quantise: Callable | None = None  # (compute dtype, device) -> from_pretrained kwargs that quantise the base
    weight_bytes: float | None = None  # memory per base weight; None: the size of the dtype it is held in
    weight_grads: bool = False  # every weight gets a gradient: backward costs 4 FLOPs/param/token, not 2
    packing: bool = True  # several examples may share a row (soft prompts prepend tokens to every row: no)
    # train.task=embedding: (sentence-transformers model, tc) -> the encoder to train; None: cannot train one
    encoder: Callable | None = None
    # a task head (classification, extractive QA, seq2seq; luyen.tasks): (model, tc, peft task_type) -> the
    # model to train, its head (HEAD_NAMES) trained whole; None: this method cannot train a head
    head: Callable | None = None
    # what the loop minimises: None = next-token loss (head.NextToken); else (train.preference) -> objective
    objective: Callable | None = None

    def load_kwargs(self, precision, device) -> dict:
        """from_pretrained keyword arguments for the base: its dtype, and quantisation if the method has one."""
        dtype = precision.weights(trained=self.base_trains)
        return {"dtype": dtype, **(self.quantise(dtype, device) if self.quantise else {})}


def _every_weight(model, tc, tokenizer=None, template=None):
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def _last_layers(model, tc, tokenizer=None, template=None):
    """Freeze all but the last `tc.freeze_layers_but` transformer layers and the final norm."""
    layers = transformer_layers(model)
    n = tc.freeze_layers_but
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


def _lora(model, tc, tokenizer=None, template=None):
    """LoRA adapters on tc.lora.target_modules; with a tokenizer and chat template also the embedding rows
    `lora.train_token_ids` picks (peft trainable tokens)."""
    from peft import LoraConfig, get_peft_model
    lc = tc.lora
    lora.check_targets(model, lc.target_modules)
    rows = lora.train_token_ids(model, tokenizer, template, lc) if tokenizer is not None and template else []
    config = LoraConfig(task_type="CAUSAL_LM", r=lc.r, lora_alpha=lc.alpha, lora_dropout=lc.dropout,
                        target_modules=lc.target_modules, use_rslora=lc.rslora, use_dora=lc.dora,
                        trainable_token_indices=sorted(rows) if rows else None)
    model = get_peft_model(model, config)
    lora.fast_lora_dropout(model)
    lora.fast_trainable_tokens(model)
    return model


HEAD_NAMES = ("classifier", "score", "qa_outputs")  # the heads transformers puts on top (trained whole)


def head_modules(model) -> list[str]:
    """The names of a task model's head modules (a seq2seq model's output layer is tied: none)."""
    return [n for n, _ in model.named_children() if n in HEAD_NAMES]


def _head_every_weight(model, tc, task_type: str):
    return _every_weight(model, tc)


def _head_last_layers(model, tc, task_type: str):
    """The last layers, as `_last_layers`, and the head."""
    model = _last_layers(model, tc)
    for name in head_modules(model):
        for p in model.get_submodule(name).parameters():
            p.requires_grad_(True)
    return model


def _head_lora(model, tc, task_type: str):
    """LoRA through peft with the task's task_type; the head is not adapted but trained whole (modules_to_save)."""
    from peft import LoraConfig, get_peft_model
    lc, heads = tc.lora, head_modules(model)
    lora.check_targets(model, lc.target_modules)
    config = LoraConfig(task_type=task_type, r=lc.r, lora_alpha=lc.alpha, lora_dropout=lc.dropout,
                        target_modules=lc.target_modules, use_rslora=lc.rslora, use_dora=lc.dora,
                        modules_to_save=heads or None, exclude_modules=heads or None)
    return get_peft_model(model, config)


def _encoder_lora(model, tc):
    """LoRA on a sentence encoder's transformer (sentence-transformers' first module). Its `auto_model` is
    a read-only property over `model`: assigning it would register a second module and leave the save
    unmerged, so `model` is what is replaced."""
    from peft import LoraConfig, get_peft_model
    lc, transformer = tc.lora, model[0]
    lora.check_targets(transformer.model, lc.target_modules)
    config = LoraConfig(task_type="FEATURE_EXTRACTION", r=lc.r, lora_alpha=lc.alpha, lora_dropout=lc.dropout,
                        target_modules=lc.target_modules, use_rslora=lc.rslora, use_dora=lc.dora)
    transformer.model = get_peft_model(transformer.model, config)
    lora.fast_lora_dropout(transformer.model)  # torch's bernoulli_ took 55% of a forward's time here
    return model


def _qlora(model, tc, tokenizer=None, template=None):
    from peft import prepare_model_for_kbit_training
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=tc.gradient_checkpointing)
    return _lora(model, tc, tokenizer, template)


def _prompt(model, tc, tokenizer=None, template=None):
    from peft import PromptTuningConfig, get_peft_model
    return get_peft_model(model, PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=tc.num_virtual_tokens))


def _ptuning(model, tc, tokenizer=None, template=None):
    from peft import PromptEncoderConfig, get_peft_model

    from luyen.models.shape import model_shape
    config = PromptEncoderConfig(task_type="CAUSAL_LM", num_virtual_tokens=tc.num_virtual_tokens,
                                 encoder_hidden_size=model_shape(model)["hidden"])
    return get_peft_model(model, config)


def _nf4(dtype, device) -> dict:
    """4-bit NF4 with double quantisation (QLoRA's recipe), computing in `dtype`."""
    import importlib.util

    from transformers import BitsAndBytesConfig
    if importlib.util.find_spec("bitsandbytes") is None:
        raise LuyenError("QLoRA needs bitsandbytes, which is not installed", field="train.method",
                         fix="pip install 'luyen[train]' (or bitsandbytes), or use train.method=lora")
    q = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                           bnb_4bit_compute_dtype=dtype)
    return {"quantization_config": q, "device_map": {"": device}}


def _lora_params(shape: dict, tc) -> float:
    """Every linear layer of every block adapted (attention 4, MLP 3, the MLP ~3-4x wider)."""
    return shape["layers"] * 7 * tc.lora.r * (shape["hidden"] + 2.5 * shape["hidden"])


METHODS = {m.name: m for m in (
    Method("full", "every weight", 2e-5, adapter=False, wrap=_every_weight, base_trains=True, weight_grads=True,
           trainable=lambda shape, tc: shape["params"], encoder=_every_weight, head=_head_every_weight),
    Method("lora", "low-rank adapters on the chosen linear layers", 2e-4, adapter=True, wrap=_lora,
           trainable=_lora_params, encoder=_encoder_lora, head=_head_lora),
    Method("qlora", "low-rank adapters over a 4-bit NF4 quantised base", 2e-4, adapter=True, wrap=_qlora,
           quantise=_nf4, weight_bytes=0.6, trainable=_lora_params),  # 4 bits + scales, embeddings unquantised
    Method("prompt", "a soft prompt of virtual token embeddings", 3e-2, adapter=True, wrap=_prompt, packing=False,
           trainable=lambda shape, tc: tc.num_virtual_tokens * shape["hidden"]),
    Method("ptuning", "a soft prompt produced by a small MLP encoder", 3e-3, adapter=True, wrap=_ptuning,
           packing=False,  # the virtual tokens' table and a 3-layer MLP as wide as the model
           trainable=lambda shape, tc: tc.num_virtual_tokens * shape["hidden"] + 3 * shape["hidden"] ** 2),
    Method("freeze", "only the last N transformer layers and the final norm", 5e-5, adapter=False, wrap=_last_layers,
           base_trains=True, trainable=lambda shape, tc: tc.freeze_layers_but * 12 * shape["hidden"] ** 2,
           head=_head_last_layers),
)}


def _preference(name: str, trains: str, objective: Callable) -> Method:
    """A preference method's own part; `method_of` completes it with train.preference.over."""
    return Method(name, trains, 5e-5, adapter=True, wrap=_lora, trainable=_lora_params, objective=objective)


_OVER = "what train.preference.over trains (LoRA by default), "
for _m in (_preference("dpo", _OVER + "to rank chosen answers above rejected ones against a reference (DPO, IPO, hinge)",
                       preference.dpo),
           _preference("kto", _OVER + "to raise answers rated good and lower those rated bad against a reference (KTO)",
                       preference.kto),
           _preference("orpo", _OVER + "to learn chosen answers and rank them above rejected ones, no reference (ORPO)",
                       preference.orpo),
           _preference("simpo", _OVER + "to rank chosen answers above rejected ones by length-normalised likelihood, "
                       "no reference (SimPO)", preference.simpo)):
    METHODS[_m.name] = _m


def method_of(tc) -> Method:
    """The record of tc.method; a preference method over the record of train.preference.over (what trains,
    how it is held and saved), with its own objective and a rate scaled from over's."""
    m = METHODS[tc.method]
    if m.objective is None:
        return m
    over = METHODS[tc.preference.over]
    return replace(over, name=m.name, trains=f"{over.trains}, {m.trains.removeprefix(_OVER)}", lr=m.lr * over.lr / METHODS["lora"].lr,
                   objective=m.objective, head=None)  # a preference objective scores answers, not a head


def prepare_model(model, tc, tokenizer=None, template: str | None = None):
    """The model to train under tc.method: what the method keeps fixed frozen, wrapped as it needs."""
    return method_of(tc).wrap(model, tc, tokenizer, template)


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


def trainable_summary(model) -> dict:
    total = sum(p.numel() for p in model.parameters())
    train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"trainable": train, "total": total, "share": round(train / max(total, 1), 6)}
