"""Pretraining from scratch: a BPE tokenizer trained on your text, a small model from a size preset.
A config asks for one with ``model.name: scratch:<arch>-<size>`` (train/source.py builds it):

    parse_scratch("scratch:masked-small")                        # ("masked", "small"); None for other names
    tok = train_tokenizer(texts, Path("runs/lm/tokenizer"), vocab_size=8000, kind="causal")
    model = build_model("causal", "tiny", tok, seed=0)        # LlamaForCausalLM, ~0.5M body params
    ids, labels = mask_tokens(batch_ids, tok, 0.15, generator)  # masked LM: BERT's 80/10/10 rule

Causal models use the Llama layout (RoPE, RMSNorm, SwiGLU): modern, and llama.cpp converts it, so a
model pretrained here exports to GGUF like any other. Masked models are BERT. Tokenizers are
byte-level BPE (`tokenizers`), so any text, Vietnamese with every diacritic included, round-trips.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import torch

from luyen.errors import LuyenError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

# ffn: BERT's feed-forward width (4 x hidden); glu: Llama's SwiGLU width, about 2/3 of that so both
# kinds have about the same body (non-embedding) size: ~0.5M, ~10M and ~85M.
SIZE_PRESETS = {
    "tiny": dict(layers=2, hidden=128, heads=4, ffn=512, glu=512, context=256),
    "small": dict(layers=6, hidden=384, heads=6, ffn=1536, glu=1024, context=512),
    "base": dict(layers=12, hidden=768, heads=12, ffn=3072, glu=2048, context=1024),
}
SPECIALS = {
    "causal": {"pad_token": "<pad>", "bos_token": "<bos>", "eos_token": "<eos>", "unk_token": "<unk>"},
    "masked": {"pad_token": "[PAD]", "cls_token": "[CLS]", "sep_token": "[SEP]", "mask_token": "[MASK]",
               "unk_token": "[UNK]"},
}


SCRATCH = "scratch:"  # model.name prefix of a model built here, e.g. scratch:causal-tiny


def parse_scratch(name: str | None) -> tuple[str, str] | None:
    """(arch, size) of a ``scratch:<arch>-<size>`` model name, checked; None for any other name."""
    if not name or not str(name).startswith(SCRATCH):
        return None
    kind, _, size = str(name)[len(SCRATCH):].partition("-")
    _check(kind, size)
    return kind, size


def _check(kind: str, size: str | None = None) -> None:
    if kind not in SPECIALS:
        raise LuyenError(f"unknown model kind '{kind}'", field="model.name",
                         fix="use causal or masked, as in model.name=scratch:causal-tiny")
    if size is not None and size not in SIZE_PRESETS:
        raise LuyenError(f"unknown size preset '{size}'", field="model.name",
                         fix=f"use one of {', '.join(SIZE_PRESETS)}, as in model.name=scratch:causal-tiny")


def train_tokenizer(texts: Iterable[str], out_dir: Path, vocab_size: int = 8000, kind: str = "causal",
                    min_frequency: int = 2, context: int = 1024) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on `texts`, save it to `out_dir` and return it.

    Causal tokenizers add nothing to a plain encode (the caller places EOS); masked ones wrap it in
    [CLS] ... [SEP]. The same texts always give the same vocabulary."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast
    _check(kind)
    specials = SPECIALS[kind]
    if vocab_size <= 256 + len(specials):
        raise LuyenError(f"vocab_size {vocab_size} leaves no room for merges", field="train.pretrain.vocab_size",
                         fix="use at least 300 (8000 or more for real text)")
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
    """A freshly initialised causal (Llama layout) or masked (BERT) model sized by `size`; same seed, same weights."""
    from transformers import BertConfig, BertForMaskedLM, LlamaConfig, LlamaForCausalLM
    _check(kind, size)
    p = SIZE_PRESETS[size]
    torch.manual_seed(seed)
    if kind == "causal":
        config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=p["hidden"], intermediate_size=p["glu"],
                             num_hidden_layers=p["layers"], num_attention_heads=p["heads"],
                             num_key_value_heads=p["heads"], max_position_embeddings=p["context"],
                             tie_word_embeddings=size != "base", pad_token_id=tokenizer.pad_token_id,
                             bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
        return LlamaForCausalLM(config)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=p["hidden"], intermediate_size=p["ffn"],
                        num_hidden_layers=p["layers"], num_attention_heads=p["heads"],
                        max_position_embeddings=p["context"], pad_token_id=tokenizer.pad_token_id)
    return BertForMaskedLM(config)


def mask_tokens(input_ids: torch.Tensor, tokenizer, probability: float = 0.15,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking of a (batch, length) tensor: pick `probability` of the ordinary tokens (at least one
    per row that has any), replace 80% of them by [MASK], 10% by a random ordinary token, keep 10%.

    Returns (input ids, labels): labels hold the original id where picked and -100 elsewhere. Special
    tokens and padding are never picked; the same generator state gives the same result."""
    if tokenizer.mask_token_id is None:
        raise LuyenError("masked LM needs a tokenizer with a mask token", fix="train the tokenizer with kind='masked'")
    if not 0 < probability < 1:
        raise LuyenError(f"mask probability {probability} is not between 0 and 1",
                         field="train.pretrain.mlm_probability")
    ids = input_ids.detach().cpu().contiguous().clone()
    rows = ids.view(-1, ids.shape[-1])  # a view: writing rows writes ids
    special = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=ids.dtype)
    maskable = ~torch.isin(rows, special)
    draw = torch.rand(rows.shape, generator=generator)
    picked = (draw < probability) & maskable
    empty = (~picked.any(-1) & maskable.any(-1)).nonzero(as_tuple=True)[0]
    lowest = torch.where(maskable, draw, 2.0).argmin(-1)  # a row's most likely maskable position
    picked[empty, lowest[empty]] = True  # no row without a target: a row with no loss teaches nothing
    labels = torch.where(picked, rows, torch.full_like(rows, -100))
    how = torch.rand(rows.shape, generator=generator)
    rows[picked & (how < 0.8)] = tokenizer.mask_token_id
    swap = picked & (how >= 0.8) & (how < 0.9)
    vocab = torch.arange(len(tokenizer), dtype=ids.dtype)
    ordinary = vocab[~torch.isin(vocab, special)]
    rows[swap] = ordinary[torch.randint(len(ordinary), (int(swap.sum()),), generator=generator)]
    return ids.to(input_ids.device), labels.view(ids.shape).to(input_ids.device)
