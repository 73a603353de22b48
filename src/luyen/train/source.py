"""Where the model to train comes from, per ``model.name``:

- a pretrained model (a preset, hub id, folder or .gguf): its tokenizer and chat template, its weights
  loaded as the method holds them (train.methods.Method.load_kwargs: dtype, quantisation);
- ``scratch:<arch>-<size>`` (e.g. ``scratch:causal-tiny``, ``scratch:masked-base``): a new model built
  from a size preset of train/scratch.py, on a byte-level BPE tokenizer trained here on the training
  texts (train.pretrain.vocab_size). Every weight of a new model trains, so it needs method full.

Continued pretraining of a pretrained model on raw text is a pretrained source with method full.

    base = load_base(cfg, method_of(cfg.train), for_training(cfg.train.dtype), train_records, out, accelerator)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from luyen.errors import LuyenError
from luyen.train import scratch

SCRATCH_LR = 6e-4  # a new model learns from nothing: pretraining rates, 30x full fine-tuning's


@dataclass
class Base:
    """The model to train, before its method wraps it, and what comes with it."""
    model: object
    tokenizer: object
    template: str | None  # the chat template; None for a masked LM (no chat, no generation)
    masker: Callable | None = None  # masked LM: (input_ids, generator) -> (input_ids, targets)
    lr: float | None = None  # the source's default learning rate; None: the method's
    context_cap: int | None = None  # cut text blocks to this context rather than refusing longer ones


def load_base(cfg, method, precision, records: list[dict], out: Path, accelerator) -> Base:
    """The model and tokenizer ``cfg.model.name`` names, for ``method`` at ``precision``."""
    new = scratch.parse_scratch(cfg.model.name)
    if new is None:
        return _pretrained(cfg.model, method, precision, accelerator)
    if not method.weight_grads:
        raise LuyenError(f"model.name={cfg.model.name} builds a new model, whose every weight must train, but "
                         f"train.method={method.name} trains only part of it", field="train.method",
                         fix="set train.method=full")
    return _scratch(cfg, *new, records, out, accelerator)


def _pretrained(mc, method, precision, accelerator) -> Base:
    from luyen.data.template import resolve_chat_template
    from luyen.models.resolve import load_tokenizer
    from luyen.models.trained import load_base_model, source_folder
    # a finished adapter run (SFT before DPO): its adapter merged into its base, its tokenizer and template
    folder = source_folder(mc.name, cache_dir=mc.cache_dir, trust_remote_code=mc.trust_remote_code)
    tokenizer = load_tokenizer(str(folder), trust_remote_code=mc.trust_remote_code)
    template = resolve_chat_template(tokenizer, mc.chat_template)
    try:
        model = load_base_model(folder, trust_remote_code=mc.trust_remote_code,
                                **method.load_kwargs(precision, accelerator.device))
    except ValueError as e:
        if "Unrecognized configuration class" in str(e):
            raise LuyenError("this model is not a causal (decoder) language model", file=str(folder),
                             field="model.name", fix="choose a decoder model such as gemma3-270m, Llama, Qwen or Mistral") from None
        raise
    return Base(model, tokenizer, template)


def _scratch(cfg, kind: str, size: str, records: list[dict], out: Path, accelerator) -> Base:
    """A new model on a tokenizer trained on the training texts (by the main process; the others read it)."""
    from luyen.data.formats import record_texts
    from luyen.data.template import resolve_chat_template
    pc, tok_dir = cfg.train.pretrain, out / "tokenizer"
    context = scratch.SIZE_PRESETS[size]["context"]
    tokenizer = None
    if accelerator.is_main_process:
        texts = [t for r in records for t in record_texts(r)]
        tokenizer = scratch.train_tokenizer(texts, tok_dir, vocab_size=pc.vocab_size, kind=kind, context=context)
    accelerator.wait_for_everyone()
    if tokenizer is None:
        from transformers import AutoTokenizer
        tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    model = scratch.build_model(kind, size, tokenizer, seed=cfg.seed)
    if kind == "masked":
        prob = pc.mlm_probability
        masker = lambda ids, g: scratch.mask_tokens(ids, tokenizer, probability=prob, generator=g)  # noqa: E731
        return Base(model, tokenizer, None, masker, lr=SCRATCH_LR, context_cap=context)
    return Base(model, tokenizer, resolve_chat_template(tokenizer, cfg.model.chat_template), lr=SCRATCH_LR,
                context_cap=context)
