"""Token counting: the per-word fast path gives exactly the tokenizer's own counts."""
from __future__ import annotations

import random

import pytest
from tokenizers import AddedToken, Tokenizer, models, normalizers, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from luyen.data.tokens import _WordCounts


def gemma_like(cross_boundary: bool = True) -> PreTrainedTokenizerFast:
    """Gemma's layout in miniature: spaces -> '\u2581', a no-op split on ' ', BPE over the whole text,
    an added token, and (optionally) one token that merges across a word start, as '>\u2581</' does."""
    chars = ["<unk>", "\u2581", "a", "b", ">", "<", "/", "t", "\n", "x"]
    merges = [("\u2581", "a"), ("\u2581a", "b"), ("a", "b"), ("b", "b"), ("\u2581", "\u2581"), ("ab", "ab")]
    if cross_boundary:
        merges.append((">", "\u2581a"))
    vocab = {c: i for i, c in enumerate(chars)}
    for left, right in merges:
        vocab.setdefault(left + right, len(vocab))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", fuse_unk=True))
    tok.normalizer = normalizers.Replace(" ", "\u2581")
    tok.pre_tokenizer = pre_tokenizers.Split(" ", behavior="merged_with_previous")
    tok.add_special_tokens([AddedToken("<t>", normalized=False)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>")


def reference(tok):
    return lambda texts: [len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]]


@pytest.mark.parametrize("cross_boundary", [True, False])
def test_word_counts_equal_the_tokenizer_on_random_texts(cross_boundary):
    tok = gemma_like(cross_boundary)
    counts = _WordCounts.build(tok, reference(tok))
    assert counts is not None
    assert (">" in counts.unsafe.pattern) == cross_boundary and "<" in counts.unsafe.pattern
    rng = random.Random(0)
    alphabet = ["a", "b", "ab", " ", " ", ">", "<t>", "\n", "x", "y", "\u2581", "abab"]
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12))) for _ in range(3000)]
    texts += ["", " ", "a b", "a  b", " a", "a ", "> ab", ">\u2581ab", "yy ab", "ab ab ab"]
    expected = reference(tok)(texts)
    assert counts.count(texts) == expected
    assert counts.count(texts) == expected  # from the cache
    assert counts.rest and counts.first


def test_word_counts_refuse_other_tokenizers(tiny_tokenizer_dir):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)  # byte-level BPE: counted the plain way
    assert _WordCounts.build(tok, reference(tok)) is None
