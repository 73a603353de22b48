"""The sentence encoder a retriever training starts from, wrapped for its method, and saved for `luyen rag`.

    model, about = build(cfg)        # a SentenceTransformer; about = {"kind", "pooling", "bidirectional", ...}
    model = wrap(model, cfg.train)   # the method record's `encoder` (lora: peft adapters; full: every weight)
    save(model, Path("runs/retriever/model"))   # a sentence-transformers folder, LoRA merged, prompts kept

Two kinds of start: a sentence-transformers model (the shipped all-MiniLM-L6-v2, or a folder holding
modules.json) keeps its modules and, unless train.embedding.pooling says otherwise, its pooling; any
other model luyen can load (the embedded gemma3-270m, a folder, a hub id) is a decoder turned encoder:
its transformer without the language-model head, pooled at its last token by default (causal attention:
the last token has read the whole text) or over its tokens (mean, best attending both ways where its
config supports that: Gemma 3's `use_bidirectional_attention`, as EmbeddingGemma does), and normalised.
Queries and passages carry the prompts of train.embedding, stored in the saved folder so `luyen rag`
puts the same ones before what it embeds.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from luyen.errors import LuyenError


def build(cfg):
    """(SentenceTransformer, about) for cfg.model.name under cfg.train.embedding."""
    from luyen.rag.encoder import SHIPPED, encoder_folder
    ec, name = cfg.train.embedding, cfg.model.name
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    folder = encoder_folder(name) if name == SHIPPED or (Path(name) / "modules.json").is_file() else None
    if folder is not None:
        model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
        model.max_seq_length = min(ec.max_length, model.max_seq_length)
        if ec.pooling != "auto":
            model[1] = Pooling(model.get_embedding_dimension(), ec.pooling)
        kind, bidirectional = "sentence-transformers", True
    else:
        from luyen.models.resolve import resolve_model
        source = resolve_model(name, cache_dir=cfg.model.cache_dir, trust_remote_code=cfg.model.trust_remote_code)
        from transformers import AutoConfig
        config = AutoConfig.from_pretrained(source, trust_remote_code=cfg.model.trust_remote_code)
        settable = hasattr(config, "use_bidirectional_attention")
        transformer = Transformer(str(source), max_seq_length=ec.max_length,
                                  model_kwargs={"dtype": torch.float32, "trust_remote_code": cfg.model.trust_remote_code},
                                  config_kwargs={"use_bidirectional_attention": ec.bidirectional} if settable else {})
        bidirectional = bool(getattr(transformer.auto_model.config, "use_bidirectional_attention", False))
        pooling = "lasttoken" if ec.pooling == "auto" else ec.pooling
        if transformer.tokenizer.pad_token is None:
            transformer.tokenizer.pad_token = transformer.tokenizer.eos_token
        model = SentenceTransformer(modules=[transformer, Pooling(transformer.get_embedding_dimension(), pooling),
                                             Normalize()], device="cpu")
        kind = "decoder"
    model.prompts = {"query": ec.query_prompt, "document": ec.passage_prompt}
    about = {"kind": kind, "base": name, "pooling": pooling_of(model), "bidirectional": bidirectional,
             "dim": model.get_embedding_dimension(), "max_length": model.max_seq_length}
    return model, about


def pooling_of(model) -> str:
    mode = model[1].pooling_mode
    return mode if isinstance(mode, str) else "+".join(mode)


def wrap(model, tc):
    """The encoder to train under tc.method (its record's `encoder`)."""
    from luyen.train.methods import METHODS
    method = METHODS[tc.method]
    if method.encoder is None:
        able = ", ".join(m.name for m in METHODS.values() if m.encoder)
        raise LuyenError(f"train.method={tc.method} cannot train a sentence encoder", field="train.method",
                         fix=f"use train.method={able.replace(', ', ' or ')} with train.task=embedding")
    model = method.encoder(model, tc)
    if tc.gradient_checkpointing:  # keeps one layer's activations: the whole batch's (queries, passages and
        # negatives at once) took 19.9 GB peak for Gemma-3-270M with 16 pairs of up to 256 tokens, bf16
        model[0].auto_model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model


def save(model, folder: Path, about: dict) -> None:
    """A self-contained sentence-transformers folder: LoRA merged into the weights, prompts kept, and
    `luyen-encoder.json` saying what it is (`about`: base, pooling, pairs by origin, cross_lingual)."""
    transformer = model[0]
    if hasattr(transformer.model, "merge_and_unload"):
        transformer.model = transformer.model.merge_and_unload()
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()
    model.save(str(folder), create_model_card=False)
    import json

    from luyen.rag.encoder import ABOUT
    (folder / ABOUT).write_text(json.dumps(about, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
