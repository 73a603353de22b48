"""A base model whose turn markers were never trained (Gemma-3 base: <end_of_turn> is one of ~6,400
near-identical rows) still learns to end its answers: LoRA trains those embedding rows too.

The tiny model here gets the same defect by hand: its two turn markers and 80 other rows are set to one
shared vector plus noise, as an untrained vocabulary's rows are."""
from __future__ import annotations

import json

import pytest
import torch

from tests.conftest import make_tiny_model, prepare_data, write_short_qa

CLONED = 80


@pytest.fixture(scope="module")
def untrained_markers(tmp_path_factory):
    """A tiny Gemma-layout model whose <start_of_turn>/<end_of_turn> rows sit in a cluster of clones, and
    prepared short QA data for it."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    root = tmp_path_factory.mktemp("untrained")
    folder = make_tiny_model(root / "model", arch="gemma3_text", gemma_markers=True)
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    markers = tok.convert_tokens_to_ids(["<start_of_turn>", "<end_of_turn>"])
    rows = markers + list(range(len(tok) - CLONED, len(tok)))
    g = torch.Generator().manual_seed(3)
    weight = model.get_input_embeddings().weight
    with torch.no_grad():
        centre = torch.randn(weight.shape[1], generator=g) * weight.std()
        weight[rows] = centre + 0.01 * weight.std() * torch.randn(len(rows), weight.shape[1], generator=g)
    model.save_pretrained(folder)
    data = prepare_data(folder, root / "data", write_short_qa(root / "qa.jsonl", n=160))
    return folder, data


def train_and_ask(folder, data, out, *extra):
    from luyen.config import load_config
    from luyen.infer.engine import Engine
    from luyen.train.stage import run
    cfg = load_config(None, [f"model.name={folder}", "data.max_length=256", "train.max_steps=60", "train.lr=3e-3",
                             "train.eval_steps=0", *extra])
    manifest = run(cfg, data, out)
    engine = Engine.load(str(out / "model"))
    engine.stop_ids = [engine.tok.convert_tokens_to_ids("<end_of_turn>")]  # ended by its own marker, nothing else
    questions = [json.loads(line)["messages"][:1] for line in open(data / "test.jsonl", encoding="utf-8")]
    answers = engine.chat(questions, max_new_tokens=48, temperature=0.0)
    return manifest, sum(a.finish_reason == "stop" for a in answers) / len(answers)


def test_untrained_end_marker_rows_are_found_trained_and_the_model_learns_to_stop(tmp_path, untrained_markers):
    folder, data = untrained_markers
    manifest, stops = train_and_ask(folder, data, tmp_path / "auto")
    assert manifest["metrics"]["trained_token_rows"] == ["<start_of_turn>", "<end_of_turn>"]
    assert stops >= 0.9, f"only {stops:.0%} of answers ended on their own"
    _, frozen_stops = train_and_ask(folder, data, tmp_path / "frozen", "train.lora.train_tokens=none")
    assert frozen_stops <= 0.5, f"{frozen_stops:.0%} stopped with the marker rows frozen: the test lost its defect"
