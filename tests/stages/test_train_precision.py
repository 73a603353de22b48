"""Training says which precision it chose and why, and a resume cannot silently switch it."""
from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from luyen.config import load_config
from luyen.errors import LuyenError
from luyen.train.stage import run


def test_the_chosen_precision_is_printed_recorded_and_kept_on_resume(tmp_path, tiny_model_dir, tiny_data_dir):
    cfg = load_config(None, [f"model.name={tiny_model_dir}", "data.max_length=256", "train.max_steps=1",
                             "train.dtype=float32"])
    log = io.StringIO()
    m = run(cfg, tiny_data_dir, tmp_path / "a", console=Console(file=log, width=200))
    assert "train: precision float32: asked for in the config" in log.getvalue()
    assert m["metrics"]["precision"] == "fp32"
    assert json.loads((tmp_path / "a" / "run.json").read_text())["precision"] == "fp32"
    # an unfinished run that started in bf16 (another machine kind), resumed where it resolves to fp32
    (tmp_path / "b").mkdir()
    marker = json.loads((tmp_path / "a" / "run.json").read_text())
    (tmp_path / "b" / "run.json").write_text(json.dumps({**marker, "precision": "bf16"}))
    with pytest.raises(LuyenError, match=r"this run trained in bf16, but train.dtype resolves to fp32 on this "
                                         r"machine.*train.dtype=bfloat16") as e:
        run(cfg, tiny_data_dir, tmp_path / "b", resume=True)
    assert "\n" not in str(e.value)
