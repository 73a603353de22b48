"""The data stage with the real embedded model's tokenizer on the example data."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from luyen.cli import app
from luyen.config import load_config
from luyen.data import stage

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "data"


def test_vietnamese_qa_with_gemma_tokenizer(tmp_path):
    out = tmp_path / "data"
    manifest = stage.run(load_config(Path(__file__).resolve().parents[2] / "configs" / "data.yaml"),
                         [EXAMPLES / "vi_ai_qa.jsonl"], out)
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["usable"] and manifest["metrics"]["train"] >= 240
    tpl = report["template"]
    assert tpl["end_marker"] == "<end_of_turn>" and 106 in tpl["stop_token_ids"] and 1 in tpl["stop_token_ids"]
    assert tpl["round_trip_ok"] == tpl["checked_exactly"] > 0 and tpl["targets_without_stop_token"] == 0
    assert not tpl["pad_is_stop_token"]
    assert report["language"]["vi"] >= 0.95 * report["records"]["kept"]
    assert report["estimate"]["trainable_params"] > 0


@pytest.mark.parametrize("name", ["airline_qa.csv", "airline_chats.jsonl", "en_instructions.jsonl",
                                  "summaries.jsonl", "support_intents.csv", "raw_text", "airline_preferences.jsonl",
                                  "airline_feedback.jsonl", "airline_extractive.jsonl"])
def test_every_example_dataset_is_usable(name):
    result = CliRunner().invoke(app, ["data", "check", str(EXAMPLES / name), "--json"])
    assert result.exit_code == 0, result.output[-2000:]
    report = json.loads(result.stdout)
    assert report["errors"]["count"] == 0 and report["usable"]
    if "preference" in report:  # the pairs are written to one length, so DPO cannot learn "longer is better"
        assert report["preference"]["kept"] >= 200 and 0.85 < report["preference"]["length_ratio"]["mean"] < 1.15
    if report["records"]["by_kind"].get("extractive"):  # questions over one passage are not near-duplicates
        assert report["records"]["kept"] == report["records"]["rows_read"] >= 150
    if "feedback" in report:
        assert report["feedback"]["examples"] >= 100 and 0.4 < report["feedback"]["desirable_share"] < 0.7


def test_word_count_fast_path_equals_gemma_tokenizer():
    """The data stage counts Gemma tokens per cached word (issue 2's 1M-record speed); the sums must
    equal the tokenizer's own counts on real Vietnamese and English text, odd spacing included."""
    import random

    from luyen.data.tokens import _WordCounts
    from luyen.models.resolve import load_tokenizer
    tok = load_tokenizer("gemma3-270m")
    reference = lambda texts: [len(i) for i in tok(texts, add_special_tokens=False)["input_ids"]]  # noqa: E731
    counts = _WordCounts.build(tok, reference)
    assert counts is not None  # Gemma's layout: the fast path is on
    texts = []
    for name in ("vi_ai_qa.jsonl", "airline_chats.jsonl", "en_instructions.jsonl", "summaries.jsonl"):
        for line in (EXAMPLES / name).read_text(encoding="utf-8").splitlines():
            texts += [s for s in _strings(json.loads(line))]
    rng = random.Random(0)
    words = " ".join(texts).split()
    texts += [" ".join(rng.choice(words) for _ in range(rng.randint(1, 30))) for _ in range(2000)]
    texts += ["a  b", " lead", "trail ", "x>▁</y", "<end_of_turn> hi", "tab\there", "emoji 😀 ok", "Hoà hòa"]
    assert counts.count(texts) == reference(texts)


def _strings(obj):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)
