"""`luyen run` end to end on a tiny model: every stage, then skips, reruns and a resume after a kill."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import write_short_qa
from luyen import pipeline
from luyen.config import load_config

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


@pytest.fixture()
def config(tmp_path, tiny_model_dir) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "hanh-ly.md").write_text("# Hành lý\n\nHành lý xách tay tối đa 7 kg.\n", encoding="utf-8")
    (docs / "doi-ve.md").write_text("# Đổi vé\n\nĐổi vé hạng Tiết kiệm mất phí 300.000 đồng.\n", encoding="utf-8")
    tree = {
        "name": "tiny", "out": str(tmp_path / "runs" / "tiny"),
        "model": {"name": str(tiny_model_dir)},
        "data": {"files": [str(write_short_qa(tmp_path / "qa.jsonl", n=80))], "max_length": 256},
        "rag": {"documents": [str(docs)]},
        "train": {"max_steps": 40, "save_steps": 4, "lr": 3e-3, "batch_size": 4},
        "eval": {"limit": 3, "general": False, "baselines": ["zero-shot"]},
        "export": {"format": "merged"},
        "generate": {"max_new_tokens": 4},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tree, allow_unicode=True), encoding="utf-8")
    return path


def _kill_mid_train(config: Path, root: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "luyen", "run", str(config)], env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    checkpoints, t0 = root / "train" / "checkpoints", time.time()
    while not (checkpoints.is_dir() and list(checkpoints.glob("step-*"))):
        if proc.poll() is not None:
            raise AssertionError(f"luyen run ended before a checkpoint: {proc.stdout.read()[-3000:]}")
        assert time.time() - t0 < 300, "no checkpoint appeared"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (root / "train" / "manifest.json").exists()


def test_run_resumes_skips_and_reruns_exactly_what_changed(config, tmp_path):
    root = tmp_path / "runs" / "tiny"
    _kill_mid_train(config, root)
    (root / "train" / "kept").write_text("a fresh start would delete this")
    cfg = load_config(config)
    assert pipeline.run(cfg) == {"data": "skipped", "rag": "skipped", "train": "resumed", "eval": "ran", "export": "ran"}
    assert (root / "train" / "kept").exists()  # resumed in place, not started over
    manifests = {s: json.loads((root / s / "manifest.json").read_text()) for s in ("data", "rag", "train", "eval", "export")}
    assert manifests["train"]["metrics"]["steps"] == 40 and all(m["fingerprint"] for m in manifests.values())
    assert json.loads((root / "eval" / "metrics.json").read_text())["examples"] == 3
    assert (root / "export" / "model.safetensors").is_file() or list((root / "export").glob("*.safetensors"))

    assert set(pipeline.run(cfg).values()) == {"skipped"}  # nothing changed: nothing runs

    faster = load_config(config, ["train.lr=1e-3"])
    assert pipeline.run(faster) == {"data": "skipped", "rag": "skipped", "train": "ran", "eval": "ran", "export": "ran"}
    assert json.loads((root / "train" / "manifest.json").read_text())["config"]["train"]["lr"] == 1e-3

    assert pipeline.run(faster, start="eval") == {"data": "skipped", "rag": "skipped", "train": "skipped",
                                                  "eval": "ran", "export": "ran"}
    shorter = load_config(config, ["train.lr=1e-3", "eval.limit=2"])
    assert pipeline.run(shorter) == {"data": "skipped", "rag": "skipped", "train": "skipped", "eval": "ran",
                                     "export": "skipped"}


def test_changed_data_reruns_every_stage_that_reads_it(config, tmp_path):
    cfg = load_config(config, ["stages=[data, train]", "train.max_steps=2"])
    assert pipeline.run(cfg) == {"data": "ran", "train": "ran"}
    with open(cfg.data.files[0], "a", encoding="utf-8") as f:
        f.write(json.dumps({"question": "câu hỏi mới?", "answer": "trả lời mới."}, ensure_ascii=False) + "\n")
    assert pipeline.run(cfg) == {"data": "ran", "train": "ran"}


def test_run_refuses_a_folder_it_did_not_write(config, tmp_path):
    from luyen.errors import LuyenError
    root = tmp_path / "runs" / "tiny"
    root.mkdir(parents=True)
    (root / "notes.txt").write_text("mine")
    with pytest.raises(LuyenError, match="not a `luyen run` run"):
        pipeline.run(load_config(config))
    assert (root / "notes.txt").read_text() == "mine"


def test_a_scratch_model_runs_from_raw_text(tmp_path, tiny_tokenizer_dir):
    from luyen.errors import LuyenError
    text = tmp_path / "corpus.txt"
    text.write_text("\n\n".join(f"Hà Nội là thủ đô của Việt Nam. Đoạn văn số {i} kể về học máy." for i in range(60)),
                    encoding="utf-8")
    words = ["model.name=scratch:causal-tiny", "train.method=full", "stages=[data, train]", f"data.files=[{text}]",
             f"out={tmp_path / 'runs' / 'lm'}", "train.pretrain.vocab_size=400", "train.max_steps=4",
             "train.batch_size=2", "data.max_length=64", "data.dedup.near=false"]
    with pytest.raises(LuyenError, match="has no tokenizer yet"):
        pipeline.run(load_config(None, words))
    assert pipeline.run(load_config(None, [*words, f"model.tokenizer={tiny_tokenizer_dir}"])) == {"data": "ran",
                                                                                                  "train": "ran"}
    assert (tmp_path / "runs" / "lm" / "train" / "model" / "tokenizer.json").is_file()  # its own, trained on the text
