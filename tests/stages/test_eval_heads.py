"""Evaluating task heads: their metrics on known cases, calibration, the decoder route by likelihood, and
the eval stage's report against the majority class / lead-3 and a (tiny) decoder zero-shot and few-shot."""
import json

import numpy as np
import pytest
import torch

from luyen.config import load_config
from luyen.tasks import classify, extract, seq2seq


def test_classification_metrics_on_a_known_case():
    spec = {"labels": ["a", "b", "c"]}
    preds = [{"label": x} for x in "aabbc"] + [{"label": "a"}]
    gold = list("abbbca")
    m, per = classify.metrics(preds, gold, spec)
    assert m["accuracy"] == pytest.approx(100 * 5 / 6) and per == [100, 0, 100, 100, 100, 100]
    # a: tp 2 fp 1 fn 0 -> F1 0.8; b: tp 2 fp 0 fn 1 -> 0.8; c: tp 1 -> 1.0
    assert m["macro_f1"] == pytest.approx(100 * (0.8 + 0.8 + 1.0) / 3)
    assert m["confusion"] == [[2, 0, 0], [1, 2, 0], [0, 0, 1]]  # rows true, columns predicted
    assert m["per_class"]["a"]["precision"] == pytest.approx(66.7) and m["per_class"]["b"]["recall"] == pytest.approx(66.7)
    assert "ece" not in m  # no probabilities, no calibration error


def test_expected_calibration_error_and_the_fitted_temperature():
    # confidence 0.9, right 60% of the time: ECE 0.3; right 90%: 0
    probs = np.array([[0.9, 0.1]] * 10)
    assert classify.ece(probs, np.array([0] * 6 + [1] * 4)) == pytest.approx(0.3)
    assert classify.ece(probs, np.array([0] * 9 + [1])) == pytest.approx(0.0)
    # two bins, each weighted by its share: 0.5 x |0.9 - 1.0| + 0.5 x |0.6 - 0.2| = 0.25
    two = np.array([[0.9, 0.1]] * 5 + [[0.6, 0.4]] * 5)
    assert classify.ece(two, np.array([0] * 5 + [0] + [1] * 4)) == pytest.approx(0.25)
    # logits drawn from a model with temperature 1, then sharpened 3x: the fit finds T ~ 3
    g = torch.Generator().manual_seed(0)
    z = torch.randn(4000, 5, generator=g) * 2
    y = torch.multinomial(torch.softmax(z, -1), 1, generator=g).squeeze(1)
    assert classify.fit_temperature(3 * z, y) == pytest.approx(3.0, rel=0.1)


def test_extractive_metrics_count_unanswerable_questions():
    preds = [{"answer": "20 kg"}, {"answer": "the 7 kg"}, {"answer": ""}, {"answer": "10 kg"}]
    gold = [["20 kg"], ["7 kg"], [], []]
    m, per = extract.metrics(preds, gold, {})
    assert m["exact_match"] == pytest.approx(75.0)  # "the" is an English article SQuAD drops
    assert m["no_answer_accuracy"] == pytest.approx(50.0) and m["has_answer_f1"] == pytest.approx(100.0)
    assert per == [100.0, 100.0, 100.0, 0.0]


def test_no_answer_wins_only_for_a_model_that_learned_unanswerable_questions():
    context = "Hành lý xách tay tối đa 7 kg."
    span = (np.log(0.3), context.index("7 kg"), context.index("7 kg") + 4)
    assert extract.choose(span, np.log(0.6), True, context)["answer"] == ""  # SQuAD v2: no answer is likelier
    assert extract.choose(span, np.log(0.1), True, context)["answer"] == "7 kg"
    got = extract.choose(span, np.log(0.6), False, context)  # SQuAD v1 data: always a span
    assert got["answer"] == "7 kg" and got["start"] == context.index("7 kg") and got["score"] == pytest.approx(0.3)
    assert extract.choose(None, np.log(0.2), False, context)["answer"] == ""


def test_the_majority_class_and_its_probabilities():
    train = [{"label": "a"}] * 3 + [{"label": "b"}]
    out = classify.majority([{}, {}], train, {"labels": ["a", "b"]})
    assert [o["label"] for o in out] == ["a", "a"] and out[0]["probabilities"] == {"a": 0.75, "b": 0.25}


def test_lead_takes_the_first_sentences():
    assert seq2seq.lead("Một. Hai! Ba? Bốn. Năm.") == "Một. Hai! Ba?"
    m, per = seq2seq.metrics([{"summary": "hà nội là thủ đô"}], ["hà nội là thủ đô"], {})
    assert m["rougeL"] == pytest.approx(100.0) and per == [pytest.approx(100.0)]


def test_the_decoder_picks_the_likeliest_label(tiny_model_dir, tiny_head_data):
    from luyen.data.stage import read_split
    from luyen.evaluate.likelihood import example_nll
    from luyen.infer.engine import Engine
    from luyen.train.batches import encode
    engine = Engine.load(str(tiny_model_dir))
    test = read_split(tiny_head_data["classification"], "test")[:4]
    spec = {"labels": ["baggage", "checkin", "refund"]}
    cfg = load_config(None, [])
    out = classify.decoder(engine, test, test, spec, "zero-shot", cfg)
    for r, o in zip(test, out):
        assert sum(o["probabilities"].values()) == pytest.approx(1, abs=1e-4)
        recs = [{"kind": "chat", "messages": [
            {"role": "user", "content": classify.PROMPT.format(labels="baggage, checkin, refund", text=r["text"])},
            {"role": "assistant", "content": label}]} for label in spec["labels"]]
        ex, _ = encode(recs, engine.tok, engine.template, max_length=4096)
        nll = [s for s, _ in example_nll(engine.model, ex, engine.pad_id)]
        assert o["label"] == spec["labels"][int(np.argmin(nll))]
        assert max(o["probabilities"], key=o["probabilities"].get) == o["label"]


def test_eval_of_a_classifier_against_majority_and_the_decoder(tiny_head_runs, tiny_head_data, tiny_model_dir, tmp_path):
    from luyen.evaluate.stage import run
    from luyen.data.stage import read_split
    cfg = load_config(None, [f"eval.decoder={tiny_model_dir}", "eval.shots=2"])
    out = tmp_path / "eval"
    m = run(cfg, tiny_head_runs["classification"], tiny_head_data["classification"], out)
    doc = json.loads((out / "metrics.json").read_text())
    test = read_split(tiny_head_data["classification"], "test")
    names = list(doc["systems"])
    assert names[:2] == ["fine-tuned head", "majority class"] and any("zero-shot" in n for n in names) \
        and any("few-shot" in n for n in names)
    head, major = doc["systems"]["fine-tuned head"], doc["systems"]["majority class"]
    assert sum(map(sum, head["confusion"])) == len(test)
    train = read_split(tiny_head_data["classification"], "train")
    top = max(set(r["label"] for r in train), key=[r["label"] for r in train].count)
    assert major["accuracy"] == pytest.approx(100 * np.mean([r["label"] == top for r in test]))
    assert head["accuracy"] > major["accuracy"] and head["ms_per_example"] > 0 and head["ms_single"] > 0
    assert "ece" in head and "temperature" in doc
    assert "95% CI" in doc["verdict"] and m["metrics"]["task"] == "classification"
    html = (out / "report.html").read_text()
    assert "id='confusion'" in html and "majority class" in html
    samples = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == len(test) and samples[0]["reference"] == test[0]["label"]


def test_eval_of_extractive_and_seq2seq_heads(tiny_head_runs, tiny_head_data, tiny_model_dir, tmp_path):
    from luyen.evaluate.stage import run
    cfg = load_config(None, [f"eval.decoder={tiny_model_dir}"])
    run(cfg, tiny_head_runs["extractive_qa"], tiny_head_data["extractive_qa"], tmp_path / "qa", baselines=["zero-shot"])
    doc = json.loads((tmp_path / "qa" / "metrics.json").read_text())
    assert doc["primary"] == "f1" and len(doc["systems"]) == 2
    assert doc["systems"]["fine-tuned head"]["f1"] > max(s["f1"] for n, s in doc["systems"].items() if n != "fine-tuned head")
    run(cfg, tiny_head_runs["seq2seq"], tiny_head_data["seq2seq"], tmp_path / "s2s", baselines=[])
    doc = json.loads((tmp_path / "s2s" / "metrics.json").read_text())
    assert list(doc["systems"]) == ["fine-tuned head", "lead-3"] and doc["primary"] == "rougeL"
    assert {"rouge1", "rouge2", "rougeL", "bleu", "chrf"} <= set(doc["systems"]["lead-3"])
