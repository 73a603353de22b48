"""Pretraining from scratch: tokenizer training, size presets, masking; and the stage end to end."""
from __future__ import annotations

import json
import math
import unicodedata

import pytest
import torch

from luyen.errors import LuyenError
from luyen.train.scratch import SIZE_PRESETS, build_model, mask_tokens, train_tokenizer

TEXTS = [unicodedata.normalize("NFC", t) for t in (
    "Hòa bình, độc lập, tự do, hạnh phúc.", "Học máy là một nhánh của trí tuệ nhân tạo.",
    "Chuyến bay bị hoãn vì thời tiết xấu; hành khách được hoàn tiền.", "Thuỷ thủ nghỉ ở Huế.",
    "Fine-tuning adapts a pretrained model to your data.", "Tokens are counted with the model's tokenizer.",
)] * 10


@pytest.mark.parametrize("kind", ["causal", "masked"])
def test_tokenizer_round_trips_vietnamese_reloads_and_is_deterministic(tmp_path, kind):
    from transformers import AutoTokenizer
    tok = train_tokenizer(TEXTS, tmp_path / "a", vocab_size=400, kind=kind)
    again = train_tokenizer(TEXTS, tmp_path / "b", vocab_size=400, kind=kind)
    assert tok.get_vocab() == again.get_vocab()
    reloaded = AutoTokenizer.from_pretrained(tmp_path / "a")
    for text in TEXTS[:6] + ["Ngữ cảnh mới chưa từng thấy: ỹ ở ữ 😀"]:
        ids = reloaded(text, add_special_tokens=False)["input_ids"]
        assert reloaded.decode(ids) == text
    assert tok.pad_token_id != (tok.eos_token_id if kind == "causal" else tok.sep_token_id)
    if kind == "causal":
        assert tok("xin chào")["input_ids"] == tok("xin chào", add_special_tokens=False)["input_ids"]
    else:
        ids = tok("xin chào")["input_ids"]
        assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id


@pytest.mark.parametrize("kind", ["causal", "masked"])
def test_presets_build_deterministic_models_that_learn(tmp_path, kind):
    tok = train_tokenizer(TEXTS, tmp_path, vocab_size=400, kind=kind)
    a, b = build_model(kind, "tiny", tok, seed=3), build_model(kind, "tiny", tok, seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    ids = torch.tensor([tok(TEXTS[i], add_special_tokens=kind == "masked")["input_ids"][:12] for i in range(2)])
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.AdamW(a.parameters(), lr=1e-3)
    losses = []
    for _ in range(30):
        if kind == "causal":
            loss = a(input_ids=ids, labels=ids).loss
        else:
            masked, labels = mask_tokens(ids, tok, 0.3, g)
            loss = a(input_ids=masked, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(float(loss))
    assert math.isfinite(losses[0]) and sum(losses[-5:]) / 5 < sum(losses[:5]) / 5


def test_bad_kind_or_size_names_the_choices(tmp_path):
    tok = train_tokenizer(TEXTS, tmp_path, vocab_size=400)
    with pytest.raises(LuyenError, match="tiny, small, base"):
        build_model("causal", "huge", tok)
    with pytest.raises(LuyenError, match="causal or masked"):
        build_model("seq2seq", "tiny", tok)
    assert set(SIZE_PRESETS) == {"tiny", "small", "base"}


def test_masking_rate_specials_and_80_10_10(tmp_path):
    tok = train_tokenizer(TEXTS, tmp_path, vocab_size=400, kind="masked")
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, len(tok), (64, 256), generator=g)
    ids[:, 0], ids[:, -1] = tok.cls_token_id, tok.sep_token_id
    masked, labels = mask_tokens(ids, tok, 0.15, torch.Generator().manual_seed(1))
    again, labels2 = mask_tokens(ids, tok, 0.15, torch.Generator().manual_seed(1))
    assert torch.equal(masked, again) and torch.equal(labels, labels2)
    picked = labels != -100
    assert 0.13 < picked.float().mean() < 0.17
    assert not picked[:, 0].any() and not picked[:, -1].any()
    as_mask = (masked == tok.mask_token_id) & picked
    kept = (masked == ids) & picked
    assert 0.75 < as_mask.sum() / picked.sum() < 0.85 and 0.07 < kept.sum() / picked.sum() < 0.14
    short = torch.tensor([[tok.cls_token_id, 7, tok.sep_token_id]])
    assert (mask_tokens(short, tok, 0.01, g)[1] != -100).sum() == 1  # never a row without a target


@pytest.mark.parametrize("arch", ["causal", "masked"])
def test_pretraining_from_scratch_end_to_end(tmp_path, tiny_model_dir, arch):
    from conftest import prepare_data

    from luyen.config import load_config
    from luyen.train.stage import run
    src = tmp_path / "corpus.txt"
    src.write_text("\n\n".join(f"{TEXTS[i % 6]} Đoạn {i}." for i in range(80)), encoding="utf-8")
    data = prepare_data(tiny_model_dir, tmp_path / "data", src, "data.dedup.near=false")
    out = tmp_path / "lm"
    m = run(load_config(None, ["train.method=pretrain", f"train.pretrain.arch={arch}", "train.pretrain.vocab_size=400",
                               "train.batch_size=2", "train.max_steps=12", "data.max_length=64", "train.lr=3e-3",
                               f"model.name={tiny_model_dir}"]), data, out)["metrics"]
    assert m["params_total"] > 100_000 and (out / "model" / "model.safetensors").is_file()
    assert (out / "model" / "tokenizer.json").is_file()
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if '"loss"' in x]
    assert rows[-1]["loss"] < rows[0]["loss"]
