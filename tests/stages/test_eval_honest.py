"""The numbers behind the verdict: only the final answer is scored, every system sees the same system
handling, and every training method's run can be evaluated."""
from __future__ import annotations

import json

import pytest
from conftest import make_tiny_model

from luyen.config import load_config
from luyen.evaluate.stage import run
from luyen.evaluate.systems import answer_nll, build_prompt, pick_shots
from luyen.infer.engine import Engine
from luyen.train.stage import run as train

QUESTION = [{"role": "system", "content": "Trả lời ngắn."}, {"role": "user", "content": "Hà Nội ở đâu?"}]
ANSWER = "Miền Bắc Việt Nam."
SHOTS = [{"role": "user", "content": "Huế ở đâu?"}, {"role": "assistant", "content": "Miền Trung, bên sông Hương."},
         {"role": "user", "content": "Cần Thơ ở đâu?"}, {"role": "assistant", "content": "Miền Tây Nam Bộ."}]


def test_only_the_final_answer_is_scored_for_every_system(tiny_model_dir):
    engine = Engine.load(str(tiny_model_dir), dtype=None, precision="fp32")
    cfg = load_config(None)
    zero = build_prompt("zero-shot", QUESTION, SHOTS, None, cfg)
    few = build_prompt("few-shot", QUESTION, SHOTS, None, cfg)
    (z_nll, z_n), (f_nll, f_n) = answer_nll(engine, [zero, few], [ANSWER, ANSWER])
    answer_tokens = len(engine.tok(ANSWER, add_special_tokens=False)["input_ids"]) + 1  # + the end marker
    assert z_n == f_n == answer_tokens  # the shots' answers are context, not scored (57 vs 13 tokens before)
    assert z_nll != f_nll  # the shots are in the prompt: they change what the model predicts
    multi = QUESTION + [{"role": "assistant", "content": "Một câu trả lời dài hơn nhiều ở lượt trước."},
                        {"role": "user", "content": "Còn Huế?"}]
    (_, m_n), = answer_nll(engine, [multi], [ANSWER])
    assert m_n == answer_tokens  # an earlier assistant turn of a test chat is not scored either


def test_few_shot_keeps_the_system_prompt_first_and_labelled_shots_are_balanced():
    few = build_prompt("few-shot", QUESTION, SHOTS, None, load_config(None))
    assert few[0] == QUESTION[0] and few[1:5] == SHOTS and few[5:] == QUESTION[1:]
    assert [m["role"] for m in few] == ["system", "user", "assistant", "user", "assistant", "user"]
    train = [{"kind": "labelled", "text": f"t{i}", "label": "a" if i < 8 else ("b" if i < 10 else "c")} for i in range(11)]
    assert [r["label"] for r in pick_shots(train, 3, labelled=True)] == ["a", "b", "c"]
    assert [r["label"] for r in pick_shots(train, 5, labelled=True)] == ["a", "b", "c", "a", "b"]
    assert pick_shots(train, 3, labelled=False) == train[:3]


@pytest.mark.parametrize("method,extra", [
    ("full", []), ("lora", []), ("qlora", []), ("prompt", ["train.num_virtual_tokens=4", "train.lr=0.05"]),
    ("ptuning", ["train.num_virtual_tokens=4"]), ("freeze", ["train.freeze_layers_but=1"]),
])
def test_every_methods_run_evaluates_against_its_base(tmp_path, tiny_model_dir, tiny_data_dir, method, extra):
    run_dir = tmp_path / "train"
    if method == "qlora":  # bitsandbytes' 4-bit CPU kernels need layers at least 64 wide
        tiny_model_dir = make_tiny_model(tmp_path / "wide", hidden=64)
    train(load_config(None, [f"model.name={tiny_model_dir}", "data.max_length=256", "train.max_steps=2",
                             f"train.method={method}", *extra]), tiny_data_dir, run_dir)
    run(load_config(None, ["generate.max_new_tokens=2"]), run_dir, tiny_data_dir, tmp_path / "eval", limit=3)
    systems = json.loads((tmp_path / "eval" / "metrics.json").read_text())["systems"]
    assert list(systems) == ["base zero-shot", "base few-shot", "fine-tuned"]
    tokens = {r["answer_tokens"] for r in systems.values()}
    assert len(tokens) == 1  # the same answers scored for every system


def test_the_verdict_says_when_a_system_rarely_stops():
    from luyen.evaluate.report import stops
    results = {"fine-tuned": {"stop_rate": 0.0, "stopped": 0, "answers": 37},
               "base few-shot": {"stop_rate": 81.1, "stopped": 30, "answers": 37}}
    assert stops(results, ["fine-tuned", "base few-shot"]) == " But fine-tuned rarely stops: 0/37 answers ended on their own."
    results["base few-shot"].update(stop_rate=78.4, stopped=29)
    assert stops(results, ["fine-tuned", "base few-shot"]).endswith(" But base few-shot rarely stops: 29/37 answers ended on their own.")
    assert stops(results, [None]) == ""


def test_the_verdict_says_when_a_system_copies_most_of_its_answers_from_its_prompt():
    from luyen.evaluate.report import copies
    results = {"fine-tuned": {"copy_rate": 3.0}, "base + retrieval": {"copy_rate": 49.6}}
    assert copies(results, ["fine-tuned", "base + retrieval"]) == ""
    results["base + retrieval"]["copy_rate"] = 64.4
    assert copies(results, ["fine-tuned", "base + retrieval"]) == " Base + retrieval copies 64% of its answer words from its prompt."
    assert copies({"x": {}}, ["x", None]) == ""  # labelled data: no copy measure


def test_a_rival_without_a_model_is_beaten_and_the_perplexity_named_is_the_best_modelled_baselines():
    """The retrieved passage can be the best baseline; it has no perplexity, so the verdict's perplexity
    clause comes from the best baseline that has one, and says which; that baseline's stop and copy
    rates are then the ones the verdict warns about."""
    from luyen.evaluate.report import verdict
    from luyen.evaluate.verdict import against_baselines
    per = {"base few-shot": {"primary": [10, 12, 14, 11], "nll": [2.0, 2.1, 2.2, 2.0]},
           "retrieved passage": {"primary": [12, 13, 15, 12], "nll": None},
           "fine-tuned": {"primary": [16, 17, 19, 18], "nll": [1.0, 1.1, 1.2, 1.0]}}
    comparisons = against_baselines(per, "fine-tuned")
    assert set(comparisons["nll"]) == {"base few-shot"}
    results = {"base few-shot": {"rougeL": 11.75, "answer_perplexity": 8.0, "stop_rate": 25.0, "stopped": 1, "answers": 4,
                                 "copy_rate": 60.0},
               "retrieved passage": {"rougeL": 13.0},
               "fine-tuned": {"rougeL": 17.5, "answer_perplexity": 3.0, "stop_rate": 100.0, "stopped": 4, "answers": 4,
                              "copy_rate": 0.0}}
    text = verdict(results, "rougeL", comparisons, n=4)
    assert text.startswith("Fine-tuning was worth it: fine-tuned beats the best baseline (retrieved passage) by 4.5")
    assert "answer perplexity 8.00 (base few-shot) -> 3.00" in text
    assert text.endswith(" But base few-shot rarely stops: 1/4 answers ended on their own."
                         " Base few-shot copies 60% of its answer words from its prompt.")
