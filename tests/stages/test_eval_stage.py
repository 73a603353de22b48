"""The evaluation stage on a tiny trained model: every system, every metric, safe reports."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from luyen.cli import app
from luyen.config import load_config
from luyen.errors import LuyenError
from luyen.evaluate.stage import run


def test_eval_compares_base_zero_shot_few_shot_and_fine_tuned(tmp_path, tiny_run, tiny_data_dir):
    out = tmp_path / "eval"
    m = run(load_config(None, ["generate.max_new_tokens=8"]), tiny_run, tiny_data_dir, out, limit=6)
    metrics = json.loads((out / "metrics.json").read_text())
    systems = metrics["systems"]
    assert list(systems) == ["base zero-shot", "base few-shot", "fine-tuned"]
    for r in systems.values():
        assert {"bleu", "chrf", "rouge1", "rouge2", "rougeL", "exact_match", "f1", "answer_perplexity",
                "mean_answer_words", "seconds_per_example"} <= set(r)
    assert "sequence_perplexity" in systems["fine-tuned"] and "sequence_perplexity" not in systems["base few-shot"]
    # 20 steps at a high learning rate on this data: the answers became more likely
    assert systems["fine-tuned"]["answer_perplexity"] < systems["base zero-shot"]["answer_perplexity"]
    # the verdict follows the paired bootstrap against the best baseline, and says n
    comps = metrics["comparisons"]["primary"]
    assert set(comps) == {"base zero-shot", "base few-shot"}
    rival = max(comps, key=lambda n: systems[n]["rougeL"])
    c = comps[rival]
    assert c["n"] == 6 and c["resamples"] >= 1000 and c["lo"] <= c["diff"] <= c["hi"]
    assert c["diff"] == pytest.approx(systems["fine-tuned"]["rougeL"] - systems[rival]["rougeL"], abs=1e-3)
    want = ("Fine-tuning was worth it" if c["lo"] > 0 else "Fine-tuning did not win" if c["hi"] < 0
            else "No significant difference (n=6)")
    assert metrics["verdict"].startswith(want) and rival in metrics["verdict"]
    for r in systems.values():  # behaviour beside correctness, for every system
        assert 0 <= r["stop_rate"] <= 100 and 0 <= r["loop_rate"] <= 100 and r["answers"] == 6
    assert ("fine-tuned rarely stops" in metrics["verdict"]) == (systems["fine-tuned"]["stop_rate"] < 80)
    g = metrics["general"]  # the general-ability check ran for the base and the fine-tuned model
    assert g["n"] >= 150 and 0 <= g["base"]["accuracy"] <= 100 and g["comparison"]["n"] == g["n"]
    samples = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 6 and {"prompt", "reference", "fine-tuned", "base few-shot"} <= set(samples[0])
    page = (out / "report.html").read_text()
    assert "<svg" in page and "<script" not in page and metrics["verdict"].split(":")[0] in page
    assert "| fine-tuned |" in (out / "report.md").read_text()
    assert m["stage"] == "eval" and (out / "manifest.json").is_file()


def test_model_output_is_escaped_in_the_html_report():
    from luyen.evaluate.report import html
    page = html({"results": {"fine-tuned": {"rougeL": 1.0}}, "verdict": "v", "primary": "rougeL",
                 "samples": [{"prompt": "<b>q</b>", "reference": "r", "fine-tuned": "<script>alert(1)</script>"}]})
    assert "<script>alert" not in page and "&lt;script&gt;" in page


def test_bad_baselines_and_cli(tmp_path, tiny_run, tiny_data_dir):
    with pytest.raises(LuyenError, match="unknown baseline 'ten-shot'"):
        run(load_config(None), tiny_run, tiny_data_dir, tmp_path / "x", baselines=["ten-shot"])
    with pytest.raises(LuyenError, match="retrieval index"):
        run(load_config(None), tiny_run, tiny_data_dir, tmp_path / "x", baselines=["rag"])
    result = CliRunner().invoke(app, ["eval", "--model", str(tiny_run), "--data", str(tiny_data_dir), "--out",
                                      str(tmp_path / "cli"), "--baselines", "zero-shot", "--limit", "3",
                                      "generate.max_new_tokens=4"])
    assert result.exit_code == 0, result.output[-2000:]
    assert "fine-tuned" in result.output and (tmp_path / "cli" / "report.html").is_file()


def test_judge_rating_parser():
    from luyen.evaluate.judge import parse_rating
    assert parse_rating("Close to the reference but misses the fee. Rating: 3") == 3
    assert parse_rating("Rating: [[5]]") == 5 and parse_rating("rating=2") == 2 and parse_rating(" 4 ") == 4
    assert parse_rating("Rating: 2 at first, on reflection Rating: 4") == 4  # the last one counts
    assert parse_rating("4/5") == 4
    assert parse_rating("I would give it a 7") is None and parse_rating("") is None
    assert parse_rating("Rating: 6") is None  # out of scale: not guessed


def test_judge_endpoint_down_is_one_line_error(tmp_path, tiny_run, tiny_data_dir):
    import socket
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = load_config(None, [f"eval.judge.url=http://127.0.0.1:{port}/v1", "eval.judge.timeout=5",
                             "generate.max_new_tokens=2"])
    with pytest.raises(LuyenError, match=r"judge endpoint .* failed") as e:
        run(cfg, tiny_run, tiny_data_dir, tmp_path / "j", baselines=["zero-shot"], limit=2)
    assert "\n" not in str(e.value) and not (tmp_path / "j" / "manifest.json").exists()


def test_eval_with_retrieval_adds_base_and_fine_tuned_rag_systems(tmp_path, tiny_run, tiny_data_dir):
    from pathlib import Path

    from luyen.evaluate.metrics import rouge_l_per_example
    from luyen.evaluate.systems import build_prompt
    from luyen.rag import build_index, load_index
    policies = Path(__file__).resolve().parents[2] / "examples" / "data" / "airline_policies"
    build_index(load_config(None), [policies], tmp_path / "index")
    cfg = load_config(None, ["generate.max_new_tokens=3"])
    with pytest.raises(LuyenError, match="needs a retrieval index"):
        run(cfg, tiny_run, tiny_data_dir, tmp_path / "x", baselines=["rag"])
    run(cfg, tiny_run, tiny_data_dir, tmp_path / "e", baselines=["zero-shot"], rag=tmp_path / "index", limit=3)
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert list(metrics["systems"]) == ["base zero-shot", "base + retrieval", "retrieved passage", "fine-tuned",
                                        "fine-tuned + retrieval"]
    rag, plain = metrics["systems"]["fine-tuned + retrieval"], metrics["systems"]["fine-tuned"]
    assert rag["answer_perplexity"] != plain["answer_perplexity"]  # the passages changed what the model saw
    question = [{"role": "user", "content": "Phí đổi vé hạng Tiết kiệm là bao nhiêu?"}]
    index = load_index(tmp_path / "index")
    # the retrieval-only baseline: each question's best passage is its answer, scored like any other
    samples = [json.loads(line) for line in (tmp_path / "e" / "samples.jsonl").read_text().splitlines()]
    best = [index.search(s["prompt"])[0].text.strip() for s in samples]
    assert [s["retrieved passage"] for s in samples] == best
    passage = metrics["systems"]["retrieved passage"]
    assert passage["rougeL"] == pytest.approx(sum(rouge_l_per_example(best, [s["reference"] for s in samples])) / 3, abs=1e-3)
    assert "answer_perplexity" not in passage and "stop_rate" not in passage
    assert "retrieved passage" in metrics["comparisons"]["primary"] and "retrieved passage" not in metrics["comparisons"]["nll"]
    hits = index.search(question[0]["content"])
    prompt = build_prompt("rag", question, [], index, cfg)
    assert hits[0].source in prompt[-1]["content"] and "[1]" in prompt[-1]["content"]
    custom = cfg.model_copy(update={"rag": cfg.rag.model_copy(update={"template": "Q: {question}\nP: {context}"})})
    assert build_prompt("rag", question, [], index, custom)[-1]["content"].startswith("Q: Phí đổi vé")  # rag.template is honoured


def test_a_zero_shot_systems_two_perplexities_come_from_one_forward_pass(tiny_run, tiny_data_dir):
    """The answer's NLL and the whole example's are read off the same forward pass (the same tokens), and
    equal what a pass of each alone gives."""
    from rich.console import Console

    from luyen.data.template import encode_chat
    from luyen.evaluate.likelihood import example_nll
    from luyen.evaluate.metrics import perplexity
    from luyen.evaluate.systems import TestSet, _perplexities, answer_nll, load_engines
    from luyen.train.batches import shifted
    cfg = load_config(None)
    engine = load_engines(tiny_run, [], cfg, Console(quiet=True)).tuned
    test = TestSet.read(tiny_data_dir, 6, 0)
    prompts = test.prompts("zero-shot", cfg)
    calls = []
    hook = engine.model.register_forward_hook(lambda *args: calls.append(1))
    try:
        scores = answer_nll(engine, prompts, test.refs, whole=True)
    finally:
        hook.remove()
    out, per = _perplexities(scores, whole=True)
    assert len(calls) == 1  # six examples, one batch, one pass
    assert per == answer_nll(engine, prompts, test.refs) and all(k > 0 for _, k in per)
    encoded = [encode_chat(engine.tok, engine.template, p + [{"role": "assistant", "content": a}], targets="last")
               for p, a in zip(prompts, test.refs)]
    every = example_nll(engine.model, [shifted(ids, [True] * len(ids)) for ids, _ in encoded], engine.pad_id)
    assert out["sequence_perplexity"] == perplexity(sum(n for n, _ in every), sum(k for _, k in every))
    assert out["sequence_perplexity"] != out["answer_perplexity"]


def test_the_copied_share_is_measured_against_each_systems_own_prompt(tmp_path, tiny_model_dir):
    """A model trained to give one fixed answer, asked zero-shot, few-shot and with retrieval over the training
    answers: the same words are copied from its prompt where the shots or passages hold them, else not."""
    import random

    from conftest import SHORT_WORDS, prepare_data
    from luyen.rag import build_index
    from luyen.train.stage import run as train
    rng, fixed = random.Random(1), "Học máy là một nhánh của trí tuệ nhân tạo."  # 10 words, few tokens
    qa = tmp_path / "qa.jsonl"
    qa.write_text("".join(json.dumps({"question": " ".join(rng.choices(SHORT_WORDS, k=5)) + f" {i}?", "answer": fixed},
                                     ensure_ascii=False) + "\n" for i in range(60)), encoding="utf-8")
    data = prepare_data(tiny_model_dir, tmp_path / "data", qa)
    train(load_config(None, [f"model.name={tiny_model_dir}", "data.max_length=256", "train.max_steps=60",
                             "train.lr=3e-3", "train.method=full"]), data, tmp_path / "train")
    build_index(load_config(None), [data / "train.jsonl"], tmp_path / "index")
    # the trained weights as a model of their own (not a run): every baseline is asked of them
    run(load_config(None, ["generate.max_new_tokens=24"]), tmp_path / "train" / "model", data, tmp_path / "eval",
        baselines=["zero-shot", "few-shot"], rag=tmp_path / "index", limit=4)
    systems = json.loads((tmp_path / "eval" / "metrics.json").read_text())["systems"]
    assert list(systems) == ["model zero-shot", "model few-shot", "model + retrieval", "retrieved passage"]
    assert all(r["rougeL"] > 90 for name, r in systems.items() if name.startswith("model"))  # it says `fixed`
    assert systems["model zero-shot"]["copy_rate"] == 0  # its prompt is the question alone
    assert systems["model few-shot"]["copy_rate"] > 90  # the shots' answers, in earlier turns, are `fixed`
    assert systems["model + retrieval"]["copy_rate"] > 90  # so are the passages
