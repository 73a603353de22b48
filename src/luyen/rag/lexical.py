"""BM25 over syllables (bm25s), so Vietnamese retrieval works where the sentence encoder is weak.

    syllables("Hành lý XÁCH TAY 7kg, phí 300.000 VND") == ["hành", "lý", "xách", "tay", "7", "kg", "phí", "300.000", "vnd"]
    bm25 = Lexical.build([syllables(t) for t in passages]); bm25.rank("hành lý xách tay", n=10)

Vietnamese writes one syllable per space-separated word, so syllables are its natural BM25 terms
(words span several syllables, and the bigrams that would approximate them measured no better on the
airline queries). Text is NFC-normalised, lower-cased and its tone marks put in one style (hòa, not
hoà), so spelling variants match; numbers keep their separators, and letters split from digits.
"""
from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import numpy as np

from luyen.data.vietnamese import normalize_tone_marks
from luyen.errors import LuyenError

_TERM = re.compile(r"\d+(?:[.,]\d+)*|[^\W\d_]+")


def syllables(text: str) -> list[str]:
    text = normalize_tone_marks(unicodedata.normalize("NFC", text).lower(), "new")
    return _TERM.findall(text)


def _bm25s():
    try:
        import bm25s
    except ImportError:
        raise LuyenError("BM25 retrieval needs bm25s", fix="pip install 'luyen[rag]'") from None
    return bm25s


class Lexical:
    """A bm25s index whose document i is passage row i of the index."""

    def __init__(self, retriever):
        self.retriever = retriever

    @classmethod
    def build(cls, corpus: list[list[str]]) -> "Lexical":
        retriever = _bm25s().BM25()  # Lucene's BM25 variant, k1=1.5, b=0.75
        retriever.index([terms or [""] for terms in corpus], show_progress=False)
        return cls(retriever)

    @classmethod
    def load(cls, folder: Path) -> "Lexical":
        return cls(_bm25s().BM25.load(str(folder)))

    def save(self, folder: Path) -> None:
        self.retriever.save(str(folder))

    def rank(self, query: str, n: int) -> list[tuple[int, float]]:
        """(row, score) of the best `n` passages holding at least one query term, best first."""
        vocab = self.retriever.vocab_dict
        terms = [t for t in syllables(query) if t in vocab]
        if not terms:
            return []
        scores = self.retriever.get_scores(terms)
        top = np.argsort(-scores, kind="stable")[:n]
        return [(int(i), float(scores[i])) for i in top if scores[i] > 0]
