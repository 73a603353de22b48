"""Text metrics that are right for Vietnamese and identical to the reference implementations on English.

Stock tokenizers often keep only [a-z0-9]: rouge-score turns "hòa" into "h a", so "hòa" and "hoa"
score the same. Here every text is NFC-normalised and words are runs of Unicode letters and digits
(`[^\\W_]+`), which on ASCII text is exactly rouge-score's tokenisation, so English scores equal the
reference ones and Vietnamese diacritics count. BLEU and chrF come from sacrebleu itself.

    scores = generation_metrics(predictions, references)   # bleu, chrf, rouge1/2/L, exact_match, f1
    classification_metrics(predicted_labels, gold_labels)  # accuracy, macro_f1, unmatched
    label_matches(predicted_labels, gold_labels)           # 1.0/0.0 per example (for a bootstrap)
    rouge_l_per_example(predictions, references)           # ROUGE-L F per example (rouge()'s rougeL is their mean)
    perplexity(nll_sum, n_tokens)                          # exp(token-weighted mean NLL)
"""
from __future__ import annotations

import math
import re
import string
import unicodedata
from collections import Counter

WORD = re.compile(r"[^\W_]+")
ARTICLES = re.compile(r"\b(a|an|the)\b")


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def words(text: str) -> list[str]:
    """Lower-cased runs of Unicode letters/digits (rouge-score's tokens on ASCII text)."""
    return WORD.findall(nfc(text).lower())



ROUGE_KEYS = ("rouge1", "rouge2", "rougeL")


class _Tokenizer:  # the interface rouge_scorer.RougeScorer expects
    def tokenize(self, text: str) -> list[str]:
        return words(text)


def _rouge_per_example(predictions: list[str], references: list[str], keys=ROUGE_KEYS) -> list[dict[str, float]]:
    from rouge_score import rouge_scorer
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    scorer = rouge_scorer.RougeScorer(list(keys), tokenizer=_Tokenizer())
    return [{k: 100 * s.fmeasure for k, s in scorer.score(r, p).items()} for p, r in zip(predictions, references)]


def rouge_l_per_example(predictions: list[str], references: list[str]) -> list[float]:
    """ROUGE-L F-measure of each prediction against its reference (same tokenizer as `rouge`), in 0..100."""
    return [s["rougeL"] for s in _rouge_per_example(predictions, references, ("rougeL",))]


def rouge(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Mean ROUGE-1/2/L F-measure (rouge-score, with the Unicode word tokenizer above), in 0..100: the
    plain mean of the per-example scores, so rouge()["rougeL"] is exactly the mean of rouge_l_per_example."""
    per = _rouge_per_example(predictions, references)
    n = max(len(per), 1)
    return {k: sum(s[k] for s in per) / n for k in ROUGE_KEYS}


def bleu_chrf(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Corpus BLEU-4 and chrF from sacrebleu (0..100)."""
    import sacrebleu
    preds, refs = [nfc(p) for p in predictions], [[nfc(r) for r in references]]
    return {"bleu": sacrebleu.corpus_bleu(preds, refs).score, "chrf": sacrebleu.corpus_chrf(preds, refs).score}


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation (lower, drop punctuation and English articles, fold spaces), made Unicode-safe:
    NFC first, and Unicode punctuation dropped too (ASCII punctuation exactly as the official script)."""
    text = nfc(text).lower()
    text = "".join(ch for ch in text if ch not in string.punctuation and not unicodedata.category(ch).startswith("P"))
    text = ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, reference: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(reference))


def token_f1(prediction: str, reference: str) -> float:
    pred, ref = normalize_answer(prediction).split(), normalize_answer(reference).split()
    common = Counter(pred) & Counter(ref)
    same = sum(common.values())
    if not pred or not ref:
        return float(pred == ref)
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def generation_metrics(predictions: list[str], references: list[str]) -> dict[str, float]:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    n = max(len(predictions), 1)
    out = {**bleu_chrf(predictions, references), **rouge(predictions, references)}
    out["exact_match"] = 100 * sum(exact_match(p, r) for p, r in zip(predictions, references)) / n
    out["f1"] = 100 * sum(token_f1(p, r) for p, r in zip(predictions, references)) / n
    return out


_JOINER = re.compile(r"(?<=[^\W_])[-_\u2010\u2011]+(?=[^\W_])")  # "hoàn_tiền", "hoàn-tiền" -> "hoàn tiền"
_WRAPPERS = "\"'`*"  # besides every Unicode opening/closing bracket and quote (categories Ps Pe Pi Pf)
_TRAILING = ".,;:!?\u2026\u3002\uff0c\u3001\uff1b\uff1a\uff01\uff1f\uff61\u203c\u2047\u2048\u2049"  # . , ; : ! ? … 。 ， 、 ； ： ！ ？ ｡ ‼ ⁇ ⁈ ⁉


def _wrapper(ch: str) -> bool:
    return ch in _WRAPPERS or unicodedata.category(ch) in ("Ps", "Pe", "Pi", "Pf")


def normalize_label(text: str) -> str:
    """A label or a model's answer in comparable form: NFC, casefolded, "_"/"-" between words read as a space,
    whitespace collapsed, surrounding quotes/brackets and trailing punctuation removed ("«Tích cực.»" -> "tích cực")."""
    plain = " ".join(nfc(nfc(text).casefold()).split())
    t = " ".join(_JOINER.sub(" ", plain).split())
    i, j = 0, len(t)
    while i < j and (_wrapper(t[i]) or t[i].isspace()):
        i += 1
    while j > i and (_wrapper(t[j - 1]) or t[j - 1] in _TRAILING or t[j - 1].isspace()):
        j -= 1
    return t[i:j] or plain  # a label that is all punctuation stays itself


class _Labels:
    """Maps a normalised answer onto one label of a (normalised) label set, or None when it names none or several."""

    def __init__(self, labels):
        self.labels = set(labels)
        self.patterns = {label: re.compile(r"(?<![^\W_])" + re.escape(label) + r"(?![^\W_])")
                         for label in self.labels if label}

    def map(self, answer: str) -> str | None:
        if answer in self.labels:
            return answer
        spans = {label: [m.span() for m in pattern.finditer(answer)] for label, pattern in self.patterns.items()}
        spans = {label: s for label, s in spans.items() if s}

        def covered(label, a, b):  # this occurrence is part of a longer label's occurrence ("positive" in "not positive")
            return any(other != label and a0 <= a and b <= b0 for other, s in spans.items() for a0, b0 in s)
        named = [label for label, s in spans.items() if not all(covered(label, a, b) for a, b in s)]
        return named[0] if len(named) == 1 else None  # none, or several: never guessed


def _map_labels(predicted: list[str], gold: list[str]) -> tuple[list[str | None], list[str]]:
    if len(predicted) != len(gold):
        raise ValueError(f"{len(predicted)} predictions for {len(gold)} gold labels")
    g = [normalize_label(x) for x in gold]
    labels = _Labels(g)
    return [labels.map(normalize_label(x)) for x in predicted], g


def label_matches(predicted: list[str], gold: list[str]) -> list[float]:
    """1.0 where the answer maps onto its gold label, else 0.0 (the mapping of classification_metrics)."""
    p, g = _map_labels(predicted, gold)
    return [float(a == b) for a, b in zip(p, g)]


def classification_metrics(predicted: list[str], gold: list[str]) -> dict[str, float]:
    """Accuracy and macro-F1 over the gold label set, in 0..100, and how many answers matched no label.

    Both sides are normalised (`normalize_label`); an answer is then its label when it equals one, else the one
    label that occurs in it as a whole word or phrase ("Nhãn: tiêu cực" -> "tiêu cực"; an occurrence inside a
    longer label's occurrence does not count, so "not positive" is not also "positive"). Answers naming no label
    or several are unmatched: wrong, and a false positive for no class."""
    p, g = _map_labels(predicted, gold)
    n = max(len(g), 1)
    f1s = []
    for label in sorted(set(g)):
        tp = sum(a == label == b for a, b in zip(p, g))
        fp = sum(a == label != b for a, b in zip(p, g))
        fn = sum(b == label != a for a, b in zip(p, g))
        f1s.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return {"accuracy": 100 * sum(float(a == b) for a, b in zip(p, g)) / n,
            "macro_f1": 100 * sum(f1s) / max(len(f1s), 1),
            "unmatched": sum(a is None for a in p)}


def perplexity(nll_sum: float, n_tokens: int) -> float:
    """Token-weighted perplexity: exp(total negative log-likelihood / number of tokens)."""
    return math.exp(nll_sum / n_tokens) if n_tokens else float("nan")
