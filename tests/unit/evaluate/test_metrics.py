"""Metrics: diacritics count in Vietnamese; English equals the reference implementations exactly."""
from __future__ import annotations

import math
import re
import string
import unicodedata
from collections import Counter

import pytest

from luyen.evaluate.metrics import (classification_metrics, exact_match, generation_metrics, label_matches,
                                    normalize_label, perplexity, rouge, rouge_l_per_example, token_f1, words)

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


def test_bleu_and_chrf_equal_hand_computed_values():
    # BLEU-4 (sacrebleu defaults: 13a tokens, no lower-casing; smoothing never triggers: no precision is 0).
    # Pair 1: hyp "the cat sat on the mat" (6 tokens), ref "the cat sat on a mat" (6 tokens).
    #   1-grams: the x2 (clipped to the ref's one), cat, sat, on, mat          -> 5/6
    #   2-grams: the cat, cat sat, sat on | on the, the mat miss              -> 3/5
    #   3-grams: the cat sat, cat sat on | sat on the, on the mat miss        -> 2/4
    #   4-grams: the cat sat on | cat sat on the, sat on the mat miss         -> 1/3
    #   c = r = 6, BP = 1;  BLEU = (5/6 * 3/5 * 2/4 * 1/3) ** (1/4) = (1/12) ** (1/4)
    assert generation_metrics(["the cat sat on the mat"], ["the cat sat on a mat"])["bleu"] == \
        pytest.approx(100 * (1 / 12) ** 0.25, abs=1e-9)  # 53.73
    # Pair 2: hyp "the cat sat on the" (5), ref "the cat sat on the mat" (6): every n-gram matches
    #   (5/5, 4/4, 3/3, 2/2) but the hypothesis is short: BP = exp(1 - 6/5) = exp(-0.2).
    assert generation_metrics(["the cat sat on the"], ["the cat sat on the mat"])["bleu"] == \
        pytest.approx(100 * math.exp(-0.2), abs=1e-9)  # 81.87
    # Both pairs as one corpus: counts add up before the geometric mean (it is not the mean of 53.73 and 81.87):
    #   p1 = 10/11, p2 = 7/9, p3 = 5/7, p4 = 3/5, product = 1050/3465 = 10/33;  c = 11, r = 12, BP = exp(-1/11)
    both = generation_metrics(["the cat sat on the mat", "the cat sat on the"],
                              ["the cat sat on a mat", "the cat sat on the mat"])
    assert both["bleu"] == pytest.approx(100 * math.exp(-1 / 11) * (10 / 33) ** 0.25, abs=1e-9)  # 67.75
    # chrF (sacrebleu defaults: character orders 1..6, no word n-grams, beta = 2, whitespace removed first).
    # Precision and recall are averaged over the orders that both sides have, then F = 5PR / (4P + R).
    # hyp "cat", ref "cats": order 1: 3/3 hyp chars match, 3 of the ref's 4; order 2: ca at (2/2) of ca at ts (3);
    #   order 3: cat (1/1) of cat ats (2); orders 4-6: the hypothesis has none, so they do not count.
    #   P = 1, R = (3/4 + 2/3 + 1/2) / 3 = 23/36;  F = 5 * 23/36 / (4 + 23/36) = 115/167
    assert generation_metrics(["cat"], ["cats"])["chrf"] == pytest.approx(100 * 115 / 167, abs=1e-9)  # 68.86
    # identical after removing whitespace -> every order is 1/1 -> 100; no shared character -> P = R = 0 -> 0
    assert generation_metrics(["the cat"], ["thecat"])["chrf"] == pytest.approx(100.0)
    assert generation_metrics(["abc"], ["xyz"])["chrf"] == 0.0


def test_squad_scores_equal_the_official_script():
    for p, r in zip(EN_PRED, EN_REF):
        assert token_f1(p, r) == pytest.approx(official_f1(p, r))
        assert exact_match(p, r) == float(official_normalize(p) == official_normalize(r))
    got = generation_metrics(EN_PRED, EN_REF)
    assert got["exact_match"] == 0.0
    assert got["f1"] == pytest.approx(100 * sum(official_f1(p, r) for p, r in zip(EN_PRED, EN_REF)) / 3)
    assert exact_match("The Cat!", "cat") == 1.0


def test_rouge_l_per_example_equals_hand_computed_lcs_f_measure():
    # ROUGE-L F = 2PR / (P + R) with P = LCS / |prediction|, R = LCS / |reference| (words, lower-cased, no punctuation)
    # "The cat sat on the mat." vs "the cat is on the mat": LCS "the cat on the mat" = 5; P = R = 5/6 -> F = 5/6
    # "a quick fox" vs "the quick brown fox jumps": LCS "quick fox" = 2; P = 2/3, R = 2/5 -> F = (8/15) / (16/15) = 1/2
    # "hòa bình" vs "hoa bình": LCS "bình" = 1 (diacritics count); P = R = 1/2 -> F = 1/2
    # "fox quick brown" vs "the quick brown fox": LCS "quick brown" = 2 (order matters: ROUGE-1 would give 6/7);
    #   P = 2/3, R = 2/4 -> F = (2/3) / (7/6) = 4/7
    preds = ["The cat sat on the mat.", "a quick fox", "hòa bình", "fox quick brown"]
    refs = ["the cat is on the mat", "the quick brown fox jumps", "hoa bình", "the quick brown fox"]
    per = rouge_l_per_example(preds, refs)
    assert per == pytest.approx([100 * 5 / 6, 50.0, 50.0, 100 * 4 / 7], abs=1e-9)
    assert rouge(preds, refs)["rougeL"] == sum(per) / 4  # the mean is of exactly these scores
    assert generation_metrics(preds, refs)["rougeL"] == sum(per) / 4
    with pytest.raises(ValueError):
        rouge_l_per_example(preds, refs[:2])


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
    nfd_ref = unicodedata.normalize("NFD", ref)  # every diacritic a separate combining mark
    assert nfd_ref != ref and generation_metrics([nfd_ref], [ref])["bleu"] == pytest.approx(100.0)
    assert generation_metrics([nfd_ref], [ref])["chrf"] == pytest.approx(100.0)
    assert exact_match("Thủ đô là Hà Nội.", "thủ đô là hà nội") == 1.0  # punctuation and case only


def test_labels_are_normalised():
    assert normalize_label("  «Tích   Cực.»  ") == "tích cực"
    assert normalize_label('"(Positive)!"') == normalize_label("[positive]…") == normalize_label("POSITIVE。") == "positive"
    assert normalize_label("Hoàn_tiền") == normalize_label("hoàn-tiền") == "hoàn tiền"
    assert normalize_label(unicodedata.normalize("NFD", "Tiêu cực")) == "tiêu cực"
    assert normalize_label("a.b") == "a.b" and normalize_label("...") == "..."  # inner punctuation stays; all-punctuation stays


def test_classification_maps_answers_onto_labels():
    # the gold labels are normalised too: decorations on them do not hide the label from a plain answer
    assert label_matches(["tích cực", "Tích cực", "hoàn tiền"], ["Tích cực.", "«tích cực»", "[Hoàn_tiền]"]) == [1.0] * 3
    assert label_matches(["Tích cực.", "«tích cực»", "(Tích cực)!", "tích cực…", "tích cực。", "  TÍCH   CỰC "],
                         ["tích cực"] * 6) == [1.0] * 6
    nfd = unicodedata.normalize("NFD", "tiêu cực")
    assert label_matches(["Nhãn: Tiêu cực", "Nhãn: Tiêu cực", nfd], ["tiêu cực", "tích cực", "tiêu cực"]) == [1.0, 0.0, 1.0]
    assert label_matches(["hoàn_tiền", "Hoàn-tiền.", "hoàn tiền"], ["hoàn tiền", "hoàn tiền", "hoàn_tiền"]) == [1.0] * 3
    # whole words only: "pos" is not in "positive"; a label that names several labels maps onto none
    assert classification_metrics(["positive", "pos."], ["pos", "neg"]) == {"accuracy": 0.0, "macro_f1": 0.0,
                                                                          "unmatched": 1}
    assert label_matches(["positive sentiment", "The answer is negative"], ["positive", "negative"]) == [1.0, 1.0]
    assert label_matches(["tích cực hay tiêu cực"] * 2, ["tích cực", "tiêu cực"]) == [0.0, 0.0]  # both: ambiguous
    # a label inside a longer one: "positive" within "not positive" is that longer label, not both
    gold = ["not positive", "positive", "positive", "not positive"]
    assert label_matches(["It is not positive", "positive, not positive", "Positive!", "positive"], gold) == \
        [1.0, 0.0, 1.0, 0.0]
    with pytest.raises(ValueError):
        label_matches(["a"], ["a", "b"])


def test_classification_metrics_hand_worked():
    # gold:      tích cực   tích cực         tiêu cực                 trung lập
    # answer:    Tích cực.  Nhãn: tiêu cực   tích cực hay tiêu cực    Trung_lập
    # mapped to: tích cực   tiêu cực         (none: two labels named) trung lập
    # accuracy 2/4; unmatched 1
    # F1 = 2tp / (2tp + fp + fn): tích cực tp 1 fp 0 fn 1 -> 2/3; tiêu cực tp 0 -> 0; trung lập tp 1 -> 1
    # macro-F1 = (2/3 + 0 + 1) / 3 = 5/9
    m = classification_metrics(["Tích cực.", "Nhãn: tiêu cực", "tích cực hay tiêu cực", "Trung_lập"],
                               ["tích cực", "tích cực", "tiêu cực", "trung lập"])
    assert m == {"accuracy": 50.0, "macro_f1": pytest.approx(100 * 5 / 9), "unmatched": 1}
    assert label_matches(["Tích cực.", "Nhãn: tiêu cực", "tích cực hay tiêu cực", "Trung_lập"],
                         ["tích cực", "tích cực", "tiêu cực", "trung lập"]) == [1.0, 0.0, 0.0, 1.0]
    m = classification_metrics(["a", "b", "b", "c"], ["a", "b", "c", "c"])
    assert m["accuracy"] == 75.0 and m["unmatched"] == 0
    assert m["macro_f1"] == pytest.approx(100 * (1 + 2 / 3 + 2 / 3) / 3)


def test_perplexity():
    assert perplexity(math.log(5) * 10, 10) == pytest.approx(5.0)
    assert math.isnan(perplexity(0.0, 0))
