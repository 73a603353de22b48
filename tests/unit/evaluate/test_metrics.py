"""Metrics: diacritics count in Vietnamese; English equals the reference implementations exactly."""
from __future__ import annotations

import math
import re
import string
import unicodedata
from collections import Counter

import pytest

from luyen.evaluate.metrics import (classification_metrics, exact_match, generation_metrics, perplexity, rouge,
                                    token_f1, words)

EN_PRED = ["The cat sat on the mat.", "A quick brown fox jumps over a lazy dog!", "Fine-tuning helps, sometimes."]
EN_REF = ["The cat is on the mat.", "The quick brown fox jumped over the lazy dog.", "Fine-tuning sometimes helps."]


def official_normalize(s):  # SQuAD v1.1 evaluate.py, verbatim logic
    def remove_articles(text):
        return re.sub(r"\b(a|an|the)\b", " ", text)

    def white_space_fix(text):
        return " ".join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)
    return white_space_fix(remove_articles(remove_punc(s.lower())))


def official_f1(prediction, ground_truth):
    p, g = official_normalize(prediction).split(), official_normalize(ground_truth).split()
    common = Counter(p) & Counter(g)
    same = sum(common.values())
    if same == 0:
        return 0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


def test_english_rouge_equals_rouge_score_default():
    from rouge_score import rouge_scorer
    ref = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"])
    want = {k: 100 * sum(ref.score(r, p)[k].fmeasure for p, r in zip(EN_PRED, EN_REF)) / 3
            for k in ("rouge1", "rouge2", "rougeL")}
    assert rouge(EN_PRED, EN_REF) == pytest.approx(want, abs=1e-12)


def test_english_bleu_chrf_equal_sacrebleu_and_squad_scores_equal_the_official_script():
    import sacrebleu
    got = generation_metrics(EN_PRED, EN_REF)
    assert got["bleu"] == sacrebleu.corpus_bleu(EN_PRED, [EN_REF]).score
    assert got["chrf"] == sacrebleu.corpus_chrf(EN_PRED, [EN_REF]).score
    for p, r in zip(EN_PRED, EN_REF):
        assert token_f1(p, r) == pytest.approx(official_f1(p, r))
        assert exact_match(p, r) == float(official_normalize(p) == official_normalize(r))
    assert exact_match("The Cat!", "cat") == 1.0


def test_vietnamese_diacritics_count_everywhere():
    assert words("Hòa bình") == ["hòa", "bình"]
    assert rouge(["hòa bình"], ["hoa binh"])["rouge1"] == 0.0
    assert rouge(["hòa bình"], ["hòa bình"])["rouge1"] == 100.0
    assert exact_match("hòa", "hoa") == 0.0 and token_f1("hòa bình", "hoa bình") == 0.5
    ref = "Hòa bình là khát vọng của mọi người dân Việt Nam"
    plain = "Hoa binh la khat vong cua moi nguoi dan Viet Nam"
    same, diff = generation_metrics([ref], [ref]), generation_metrics([plain], [ref])
    assert same["chrf"] > diff["chrf"] and same["bleu"] > diff["bleu"]
    decomposed = unicodedata.normalize("NFD", "Hòa bình")
    assert generation_metrics([decomposed], ["Hòa bình"])["exact_match"] == 100.0  # NFC: same text, same score
    assert exact_match("Thủ đô là Hà Nội.", "thủ đô là hà nội") == 1.0  # punctuation and case only


def test_classification_and_perplexity():
    m = classification_metrics(["a", "b", "b", "c"], ["a", "b", "c", "c"])
    assert m["accuracy"] == 75.0
    assert m["macro_f1"] == pytest.approx(100 * (1 + 2 / 3 + 2 / 3) / 3)
    assert classification_metrics(["hoàn_tiền"], [unicodedata.normalize("NFD", "hoàn_tiền")])["accuracy"] == 100.0
    assert perplexity(math.log(5) * 10, 10) == pytest.approx(5.0)
    assert math.isnan(perplexity(0.0, 0))
