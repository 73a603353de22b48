"""Text metrics that are right for Vietnamese and identical to the reference implementations on English.

Stock tokenizers often keep only [a-z0-9]: rouge-score turns "hòa" into "h a", so "hòa" and "hoa"
score the same. Here every text is NFC-normalised and words are runs of Unicode letters and digits
(`[^\\W_]+`), which on ASCII text is exactly rouge-score's tokenisation, so English scores equal the
reference ones and Vietnamese diacritics count. BLEU and chrF come from sacrebleu itself.

    scores = generation_metrics(predictions, references)   # bleu, chrf, rouge1/2/L, exact_match, f1
    classification_metrics(predicted_labels, gold_labels)  # accuracy, macro_f1
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


class _Tokenizer:  # the interface rouge_scorer.RougeScorer expects
    def tokenize(self, text: str) -> list[str]:
        return words(text)


def rouge(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Mean ROUGE-1/2/L F-measure (rouge-score, with the Unicode word tokenizer above), in 0..100."""
    from rouge_score import rouge_scorer
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=_Tokenizer())
    totals = Counter()
    for p, r in zip(predictions, references):
        for k, s in scorer.score(r, p).items():
            totals[k] += s.fmeasure
    n = max(len(predictions), 1)
    return {k: 100 * totals[k] / n for k in ("rouge1", "rouge2", "rougeL")}


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


def classification_metrics(predicted: list[str], gold: list[str]) -> dict[str, float]:
    """Accuracy and macro-F1 over the gold label set (labels compared after NFC and strip), in 0..100."""
    p = [nfc(x).strip() for x in predicted]
    g = [nfc(x).strip() for x in gold]
    n = max(len(g), 1)
    f1s = []
    for label in sorted(set(g)):
        tp = sum(a == label == b for a, b in zip(p, g))
        fp = sum(a == label != b for a, b in zip(p, g))
        fn = sum(b == label != a for a, b in zip(p, g))
        f1s.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return {"accuracy": 100 * sum(a == b for a, b in zip(p, g)) / n,
            "macro_f1": 100 * sum(f1s) / max(len(f1s), 1)}


def perplexity(nll_sum: float, n_tokens: int) -> float:
    """Token-weighted perplexity: exp(total negative log-likelihood / number of tokens)."""
    return math.exp(nll_sum / n_tokens) if n_tokens else float("nan")
