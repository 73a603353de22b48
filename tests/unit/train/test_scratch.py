"""Pretraining from scratch: tokenizer training, size presets, chunking, masking; and the stage end to end."""
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
# every Vietnamese vowel with every tone mark, both cases, NFC (one code point each)
VOWELS = "".join(unicodedata.normalize("NFC", v + m) for v in "aăâeêioôơuưyAĂÂEÊIOÔƠUƯY"
                 for m in ("", "\u0300", "\u0301", "\u0309", "\u0303", "\u0323"))


@pytest.fixture(scope="module")
def toks(tmp_path_factory):
    """One causal and one masked tokenizer trained on TEXTS (vocab 400), shared by the tests below."""
    root = tmp_path_factory.mktemp("scratch_tok")
    return {kind: train_tokenizer(TEXTS, root / kind, vocab_size=400, kind=kind) for kind in ("causal", "masked")}


@pytest.mark.parametrize("kind", ["causal", "masked"])
def test_tokenizer_round_trips_vietnamese_reloads_and_is_deterministic(tmp_path, toks, kind):
    from transformers import AutoTokenizer
    tok = train_tokenizer(TEXTS, tmp_path / "a", vocab_size=400, kind=kind)
    again = train_tokenizer(iter(TEXTS), tmp_path / "b", vocab_size=400, kind=kind)  # a one-pass iterator is enough
    assert tok.get_vocab() == again.get_vocab() == toks[kind].get_vocab() and len(tok) == 400
    assert tok.backend_tokenizer.to_str() == again.backend_tokenizer.to_str()  # merges too, not just the vocab
    reloaded = AutoTokenizer.from_pretrained(tmp_path / "a")
    assert reloaded.get_vocab() == tok.get_vocab() and reloaded.all_special_ids == tok.all_special_ids
    assert reloaded.special_tokens_map == tok.special_tokens_map and reloaded.model_max_length == 1024
    unseen = ["Ngữ cảnh mới chưa từng thấy: ỹ ở ữ 😀", VOWELS, "  hai  khoảng\tvà\nxuống dòng "]
    for text in TEXTS[:6] + unseen:
        assert reloaded(text)["input_ids"] == tok(text)["input_ids"]
        ids = reloaded(text, add_special_tokens=False)["input_ids"]
        assert reloaded.decode(ids) == text and tok.unk_token_id not in ids  # byte level: nothing is unknown
    assert tok.pad_token_id != (tok.eos_token_id if kind == "causal" else tok.sep_token_id)
    if kind == "causal":
        assert tok.pad_token_id != tok.eos_token_id and None not in (tok.bos_token_id, tok.unk_token_id)
        assert tok("xin chào")["input_ids"] == tok("xin chào", add_special_tokens=False)["input_ids"]
    else:
        ids = tok("xin chào")["input_ids"]
        assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
        assert ids[1:-1] == tok("xin chào", add_special_tokens=False)["input_ids"] and tok.mask_token_id is not None


def test_tokenizer_rejects_bad_kind_and_tiny_vocab(tmp_path):
    with pytest.raises(LuyenError, match="causal or masked"):
        train_tokenizer(TEXTS, tmp_path, kind="seq2seq")
    with pytest.raises(LuyenError, match="vocab_size"):
        train_tokenizer(TEXTS, tmp_path, vocab_size=200)


@pytest.mark.parametrize("kind", ["causal", "masked"])
def test_presets_build_deterministic_models_that_learn(toks, kind):
    tok = toks[kind]
    a, b = build_model(kind, "tiny", tok, seed=3), build_model(kind, "tiny", tok, seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    other = build_model(kind, "tiny", tok, seed=4)
    assert not torch.equal(a.get_input_embeddings().weight, other.get_input_embeddings().weight)
    assert a.config.vocab_size == len(tok) and a.config.pad_token_id == tok.pad_token_id
    assert a.config.max_position_embeddings == SIZE_PRESETS["tiny"]["context"] == 256
    assert a.get_output_embeddings().weight is a.get_input_embeddings().weight  # tied at small sizes
    if kind == "causal":
        assert type(a).__name__ == "LlamaForCausalLM" and a.config.eos_token_id == tok.eos_token_id
    else:
        assert type(a).__name__ == "BertForMaskedLM"
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
        losses.append(loss.item())
    assert all(map(math.isfinite, losses)) and sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5


@pytest.mark.parametrize("kind", ["causal", "masked"])
def test_preset_sizes_match_their_budgets(toks, kind):
    """Body (non-embedding) parameters per preset, counted on the meta device (no memory, no init)."""
    def body(size):
        with torch.device("meta"):
            m = build_model(kind, size, toks[kind])
        skip = {id(m.get_input_embeddings().weight), id(m.get_output_embeddings().weight)}
        if kind == "masked":
            e = m.bert.embeddings
            skip |= {id(e.position_embeddings.weight), id(e.token_type_embeddings.weight)}
        return sum(p.numel() for p in m.parameters() if id(p) not in skip), m
    tiny, _ = body("tiny")
    small, _ = body("small")
    base, model = body("base")
    assert 0.3e6 < tiny < 1.1e6 and 8e6 < small < 13e6 and 75e6 < base < 95e6
    assert model.config.max_position_embeddings == 1024 and SIZE_PRESETS["small"]["context"] == 512


def test_bad_kind_or_size_names_the_choices(toks):
    tok = toks["causal"]
    with pytest.raises(LuyenError, match="tiny, small, base"):
        build_model("causal", "huge", tok)
    with pytest.raises(LuyenError, match="causal or masked"):
        build_model("seq2seq", "tiny", tok)
    assert set(SIZE_PRESETS) == {"tiny", "small", "base"}


def test_masking_rate_specials_and_80_10_10(toks):
    tok = toks["masked"]
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, len(tok), (64, 256), generator=g)
    ids[:, 0], ids[:, -1] = tok.cls_token_id, tok.sep_token_id
    ids[:8, -40:] = tok.pad_token_id  # padded rows
    masked, labels = mask_tokens(ids, tok, 0.15, torch.Generator().manual_seed(1))
    again, labels2 = mask_tokens(ids, tok, 0.15, torch.Generator().manual_seed(1))
    other, _ = mask_tokens(ids, tok, 0.15, torch.Generator().manual_seed(2))
    assert torch.equal(masked, again) and torch.equal(labels, labels2) and not torch.equal(masked, other)
    picked = labels != -100
    assert torch.equal(labels[picked], ids[picked]) and torch.equal(masked[~picked], ids[~picked])
    assert 0.13 < picked.float().mean() < 0.17
    special = torch.isin(ids, torch.tensor(tok.all_special_ids))
    assert not (picked & special).any()  # [CLS], [SEP] and padding are never targets
    as_mask = (masked == tok.mask_token_id) & picked
    kept = (masked == ids) & picked
    swapped = picked & ~as_mask & ~kept
    assert 0.75 < as_mask.sum() / picked.sum() < 0.85 and 0.07 < kept.sum() / picked.sum() < 0.14
    assert 0.07 < swapped.sum() / picked.sum() < 0.13
    assert not torch.isin(masked[swapped], torch.tensor(tok.all_special_ids)).any()  # random tokens are ordinary


def test_masking_gives_every_row_a_target(toks):
    tok = toks["masked"]
    cls, sep, pad = tok.cls_token_id, tok.sep_token_id, tok.pad_token_id
    short = torch.tensor([[cls, 7, sep, pad], [cls, 9, 11, sep], [cls, sep, pad, pad]])
    for seed in range(20):
        _, labels = mask_tokens(short, tok, 0.01, torch.Generator().manual_seed(seed))
        assert (labels[:2] != -100).sum(-1).tolist() == [1, 1]  # never a row without a target ...
        assert (labels[2] == -100).all()  # ... unless it has nothing to mask
    one_row, one_labels = mask_tokens(short[1], tok, 0.5, torch.Generator().manual_seed(0))
    assert one_row.shape == short[1].shape and (one_labels != -100).any()
    with pytest.raises(LuyenError, match="mask token"):
        mask_tokens(short, toks["causal"], 0.15)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["causal", "masked"])
def test_pretraining_from_scratch_end_to_end(tmp_path, tiny_model_dir, arch):
    from conftest import prepare_data

    from luyen.config import load_config
    from luyen.train.stage import run
    src = tmp_path / "corpus.txt"
    src.write_text("\n\n".join(f"{TEXTS[i % 6]} Đoạn {i}." for i in range(80)), encoding="utf-8")
    data = prepare_data(tiny_model_dir, tmp_path / "data", src, "data.dedup.near=false")
    out = tmp_path / "lm"
    m = run(load_config(None, [f"model.name=scratch:{arch}-tiny", "train.method=full", "train.pretrain.vocab_size=400",
                               "train.batch_size=2", "train.max_steps=12", "data.max_length=64", "train.lr=3e-3"]),
            data, out)["metrics"]
    assert m["params_total"] > 100_000 and (out / "model" / "model.safetensors").is_file()
    assert (out / "model" / "tokenizer.json").is_file()
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if '"loss"' in x]
    assert rows[-1]["loss"] < rows[0]["loss"]
