"""The training stage on the real embedded Gemma-3-270M and the example Vietnamese QA."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from luyen.config import load_config
from luyen.data import stage as data_stage
from luyen.train.stage import run

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_lora_on_vietnamese_qa_lowers_validation_loss(tmp_path):
    data = tmp_path / "data"
    data_stage.run(load_config(ROOT / "configs" / "data.yaml"), [ROOT / "examples" / "data" / "vi_ai_qa.jsonl"], data,
                   estimate=False)
    out = tmp_path / "train"
    m = run(load_config(ROOT / "configs" / "lora.yaml", ["train.max_steps=8", "train.eval_steps=8",
                                                           "train.batch_size=4"]), data, out)["metrics"]
    assert m["best_val_loss"] < m["initial_val_loss"] - 0.05, m
    # Gemma-3 base never learned its turn markers: their rows train with the adapter, or it cannot learn to stop
    assert m["trained_token_rows"] == ["<start_of_turn>", "<end_of_turn>"], m
    assert (out / "model" / "adapter_model.safetensors").is_file()
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["step"] == 0 and rows[-1]["step"] == 8
    tpl = (out / "model" / "chat_template.jinja").read_text()
    assert "<start_of_turn>" in tpl
