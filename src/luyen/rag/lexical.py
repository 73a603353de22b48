"""BM25 over syllables (bm25s), so Vietnamese retrieval works where the sentence encoder is weak.

    syllables("Hành lý XÁCH TAY 7kg, phí 300.000 VND") == ["hành", "lý", "xách", "tay", "7", "kg", "phí", "300.000", "vnd"]
    bm25 = Lexical.build([index_terms(t) for t in passages]); bm25.rank("hanh ly xach tay", n=10)

Many Vietnamese users type without tone marks ("hanh ly xach tay"). Each passage is therefore indexed
twice over: its syllables as written and their folded forms (`fold`: tone and vowel marks dropped,
đ -> d), kept apart in one vocabulary by the FOLD prefix. A query typed without any mark is matched
against the folded forms (when most of its terms are folded syllables of the corpus: English questions
are not folded); a query with marks is ranked by its exact syllables first and by the folded
forms only among passages whose exact score ties (none, when no exact syllable occurs), so folding
never lets "hoa" outrank a passage that holds the "hòa" the user typed.

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


FOLD = "~"  # marks a folded term in the index vocabulary
BARE_SHARE = 0.6  # share of a mark-less query's terms found among folded syllables for it to count as Vietnamese


def syllables(text: str) -> list[str]:
    text = normalize_tone_marks(unicodedata.normalize("NFC", text).lower(), "new")
    return _TERM.findall(text)


def fold(term: str) -> str:
    """`term` without its tone and vowel marks, đ as d: "hòa" -> "hoa", "đường" -> "duong"."""
    bare = "".join(c for c in unicodedata.normalize("NFD", term) if not unicodedata.combining(c))
    return bare.replace("đ", "d").replace("Đ", "D")


def index_terms(text: str) -> list[str]:
    """What a passage is indexed under: its syllables, then their folded forms (prefixed FOLD)."""
    exact = syllables(text)
    return exact + [FOLD + fold(t) for t in exact]


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
        """(row, score) of the best `n` passages holding at least one query term, best first. Vietnamese
        typed without marks is scored on the folded forms (exact ones breaking ties); a query with marks on
        its exact syllables, the folded forms breaking ties; an English one on its exact words only. The
        score returned is the first-level one, or the second where the first is 0."""
        exact = syllables(query)
        folded = [FOLD + fold(t) for t in exact]
        kind = self._kind(exact, folded)
        if kind == "bare":  # Vietnamese typed without marks: match every marked form
            first, second = self._scores(folded), self._scores(exact)
        elif kind == "marked":  # exact forms first, folded ones only below them
            first, second = self._scores(exact), self._scores(folded)
        else:  # no mark and not Vietnamese (an English question): folding would only add noise
            first = self._scores(exact)
            second = np.zeros_like(first)
        top = np.lexsort((-second, -first))[:n]  # by first, then second
        return [(int(i), float(first[i] or second[i])) for i in top if first[i] > 0 or second[i] > 0]

    def kind(self, query: str) -> str:
        """"marked" (written with Vietnamese marks), "bare" (Vietnamese typed without them) or "foreign"
        (neither: mostly words the corpus lacks even folded, such as an English question)."""
        exact = syllables(query)
        return self._kind(exact, [FOLD + fold(t) for t in exact])

    def _kind(self, exact: list[str], folded: list[str]) -> str:
        if any(t != f[len(FOLD):] for t, f in zip(exact, folded)):
            return "marked"
        return "bare" if self._typed_bare(folded) else "foreign"

    def _typed_bare(self, folded: list[str]) -> bool:
        """Whether a query without any mark is Vietnamese typed bare: most of its terms are syllables of the
        corpus once folded. An English question ("How many kilograms of carry-on baggage...") is mostly
        words the folded vocabulary lacks, and folding it would only add noise ("can" -> cần, "my" -> mỹ)."""
        vocab = self.retriever.vocab_dict
        return bool(folded) and sum(f in vocab for f in folded) >= BARE_SHARE * len(folded)

    def _scores(self, terms: list[str]):
        vocab = self.retriever.vocab_dict
        known = [t for t in terms if t in vocab]
        if not known:
            return np.zeros(self.retriever.scores["num_docs"], dtype=np.float32)
        return self.retriever.get_scores(known)
