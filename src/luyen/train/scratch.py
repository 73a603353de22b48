"""Pretraining from scratch: a BPE tokenizer trained on your text, a small model from a size preset.

    tok = train_tokenizer(texts, Path("runs/lm/tokenizer"), vocab_size=8000, kind="causal")
    model = build_model("causal", "tiny", tok, seed=0)       # LlamaForCausalLM, ~1M body params
    ids, labels = mask_tokens(batch_ids, tok, 0.15, generator)  # masked LM (BERT's 80/10/10 rule)

Causal models use the Llama layout (RoPE, RMSNorm, SwiGLU): modern, and llama.cpp converts it, so a
model pretrained here exports to GGUF like any other. Masked models are BERT. Tokenizers are
byte-level BPE (`tokenizers`), so any text, Vietnamese with every diacritic included, round-trips.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import torch

from luyen.errors import LuyenError

SIZE_PRESETS = {
    "tiny": dict(layers=2, hidden=128, heads=4, intermediate=512, context=256),
    "small": dict(layers=6, hidden=384, heads=6, intermediate=1536, context=512),
    "base": dict(layers=12, hidden=768, heads=12, intermediate=3072, context=1024),
}
SPECIALS = {
    "causal": {"pad_token": "<pad>", "bos_token": "<bos>", "eos_token": "<eos>", "unk_token": "<unk>"},
    "masked": {"pad_token": "[PAD]", "cls_token": "[CLS]", "sep_token": "[SEP]", "mask_token": "[MASK]",
               "unk_token": "[UNK]"},
}


def _check(kind: str, size: str | None = None) -> None:
    if kind not in SPECIALS:
        raise LuyenError(f"unknown model kind '{kind}'", field="train.pretrain.arch", fix="use causal or masked")
    if size is not None and size not in SIZE_PRESETS:
        raise LuyenError(f"unknown size preset '{size}'", field="train.pretrain.size",
                         fix=f"use one of {', '.join(SIZE_PRESETS)}")


def train_tokenizer(texts: Iterable[str], out_dir: Path, vocab_size: int = 8000, kind: str = "causal",
                    min_frequency: int = 2, context: int = 1024):
    """Train a byte-level BPE tokenizer on `texts`, save it to `out_dir` and return it (transformers fast tokenizer)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast
    _check(kind)
    specials = SPECIALS[kind]
    tok = Tokenizer(models.BPE(unk_token=specials["unk_token"]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                  special_tokens=list(specials.values()),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    if kind == "masked":
        cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
        tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
                                                           special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=context, **specials)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out_dir)
    return fast


def build_model(kind: str, size: str, tokenizer, seed: int = 0):
    """A freshly initialised causal (Llama layout) or masked (BERT) model sized by `size`."""
    from transformers import BertConfig, BertForMaskedLM, LlamaConfig, LlamaForCausalLM
    _check(kind, size)
    p = SIZE_PRESETS[size]
    torch.manual_seed(seed)
    if kind == "causal":
        config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=p["hidden"], intermediate_size=p["intermediate"],
                             num_hidden_layers=p["layers"], num_attention_heads=p["heads"],
                             num_key_value_heads=p["heads"], max_position_embeddings=p["context"],
                             tie_word_embeddings=size != "base", pad_token_id=tokenizer.pad_token_id,
                             bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
        return LlamaForCausalLM(config)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=p["hidden"], intermediate_size=p["intermediate"],
                        num_hidden_layers=p["layers"], num_attention_heads=p["heads"],
                        max_position_embeddings=p["context"], pad_token_id=tokenizer.pad_token_id)
    return BertForMaskedLM(config)


def mask_tokens(input_ids: torch.Tensor, tokenizer, probability: float = 0.15,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking: pick `probability` of the ordinary tokens (at least one per row), replace 80% of
    them by [MASK], 10% by a random token, keep 10%; labels are -100 everywhere else."""
    ids = input_ids.clone()
    special = torch.tensor(tokenizer.all_special_ids)
    maskable = ~torch.isin(ids, special)
    rand = torch.rand(ids.shape, generator=generator)
    picked = (rand < probability) & maskable
    for row in range(ids.shape[0]):  # no row without a target: a row with no loss teaches nothing
        if maskable[row].any() and not picked[row].any():
            cand = maskable[row].nonzero().flatten()
            picked[row, cand[torch.randint(len(cand), (1,), generator=generator)]] = True
    labels = torch.where(picked, input_ids, torch.full_like(input_ids, -100))
    how = torch.rand(ids.shape, generator=generator)
    ids[picked & (how < 0.8)] = tokenizer.mask_token_id
    randomise = picked & (how >= 0.8) & (how < 0.9)
    ids[randomise] = torch.randint(len(tokenizer), ids.shape, generator=generator)[randomise]
    return ids, labels
