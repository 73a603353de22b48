"""train.train_on_prompt through the training stage on a tiny model: the questions become targets of the
training steps, validation still scores the answers alone, and the runs that cannot take it refuse it."""
from __future__ import annotations

import json

import pytest

from luyen.config import load_config
from luyen.errors import LuyenError
from luyen.train.stage import run


def cfg(model_dir, *extra):
    return load_config(None, [f"model.name={model_dir}", "data.max_length=256", "train.batch_size=4",
                              "train.max_steps=3", "train.eval_steps=3", "train.lr=5e-3", *extra])


def rows(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_the_prompt_trains_but_validation_scores_the_answers_alone(tmp_path, tiny_model_dir, tiny_data_dir):
    answers = run(cfg(tiny_model_dir), tiny_data_dir, tmp_path / "answers")["metrics"]
    whole = run(cfg(tiny_model_dir, "train.train_on_prompt=true"), tiny_data_dir, tmp_path / "whole")["metrics"]
    # the same examples, more of each learned: the questions and turn headers too
    assert whole["train_tokens"] == answers["train_tokens"]
    assert whole["loss_tokens"] > 1.3 * answers["loss_tokens"]
    a, w = rows(tmp_path / "answers"), rows(tmp_path / "whole")
    # the untrained model's validation loss is the same number: validation never scores the prompt
    assert w[0]["val_loss"] == a[0]["val_loss"]
    assert w[1]["loss"] != pytest.approx(a[1]["loss"], rel=1e-4)
    assert json.loads((tmp_path / "whole" / "manifest.json").read_text())["config"]["train"]["train_on_prompt"] is True


def test_runs_that_cannot_take_it_refuse_it(tmp_path, tiny_model_dir, tiny_data_dir, tiny_head_models, tiny_head_data):
    with pytest.raises(LuyenError, match="train_on_prompt cannot be combined with method dpo"):
        run(cfg(tiny_model_dir, "train.method=dpo", "train.train_on_prompt=true"), tiny_data_dir, tmp_path / "dpo")
    assert not (tmp_path / "dpo").exists()
    with pytest.raises(LuyenError, match="train_on_prompt does not apply to a retriever"):
        run(cfg(tiny_model_dir, "train.task=embedding", "train.train_on_prompt=true", "rag.documents=[x]"), None,
            tmp_path / "emb")
    with pytest.raises(LuyenError, match="does not take train.train_on_prompt") as e:
        run(cfg(tiny_head_models["bert"], "train.task=classification", "train.train_on_prompt=true"),
            tiny_head_data["classification"], tmp_path / "head")
    assert e.value.field == "train.train_on_prompt" and not (tmp_path / "head").exists()
