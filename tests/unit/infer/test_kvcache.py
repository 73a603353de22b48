"""luyen.infer.kvcache: decoding from a cache that grows in place gives exactly what transformers' own
DynamicLayer (the reference) gives, through room running out, rows leaving and crops; and a step within
the room writes in place instead of copying the cache."""
from __future__ import annotations

import copy

import pytest
import torch

from luyen.infer.kvcache import GrowingLayer, with_room
from tests.conftest import make_tiny_tokenizer


def _model(tmp_path, arch: str, **extra):
    from transformers import AutoConfig, AutoModelForCausalLM
    tok = make_tiny_tokenizer(tmp_path, gemma_markers=True)
    config = AutoConfig.for_model(arch, vocab_size=len(tok), hidden_size=32, intermediate_size=64, head_dim=8,
                                  num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                  max_position_embeddings=256, pad_token_id=tok.pad_token_id, **extra)
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config).eval(), tok


def _step(model, ids, mask, cache):
    pos = (mask.cumsum(1) - 1).clamp(min=0)[:, -ids.shape[1]:]
    return model(input_ids=ids, attention_mask=mask, position_ids=pos, past_key_values=cache, use_cache=True).logits


@pytest.mark.parametrize("arch,extra", [
    ("llama", {}),
    ("gemma3_text", {"sliding_window": 6, "layer_types": ["sliding_attention", "full_attention"]}),
])
@torch.no_grad()
def test_decoding_from_a_growing_cache_equals_transformers_dynamic_cache(tmp_path, arch, extra):
    from transformers import DynamicCache
    model, tok = _model(tmp_path, arch, **extra)
    torch.manual_seed(1)
    rows, width = 4, 9
    ids = torch.randint(5, len(tok), (rows, width))
    mask = torch.ones_like(ids)
    mask[0, :4] = mask[2, :2] = 0  # left padding
    ref = DynamicCache()  # every position on every layer, as evaluate.likelihood.prefilled_nll keeps them
    ref_logits = _step(model, ids, mask, ref)
    grow = with_room(copy.deepcopy(ref), 3)  # room for 3 steps: the 4th makes it grow
    assert all(isinstance(layer, GrowingLayer) for layer in grow.layers)
    logits = ref_logits
    for step in range(10):
        if step == 5:  # rows leave the batch, as Engine._retiring retires finished rows
            keep = torch.tensor([0, 2, 3])
            ref.batch_select_indices(keep)
            grow.batch_select_indices(keep)
            mask, logits = mask[keep], logits[keep]
        if step == 7:  # a crop, as prefilled_nll leaves the prompt less its last token
            ref.crop(-2)
            grow.crop(-2)
            mask = mask[:, :-2]
        nxt = logits[:, -1].argmax(-1, keepdim=True)
        mask = torch.cat([mask, torch.ones_like(nxt)], 1)
        a, b = _step(model, nxt, mask, ref), _step(model, nxt, mask, grow)
        assert torch.equal(a, b), f"step {step}"
        logits = a
        assert grow.get_seq_length() == ref.get_seq_length() == mask.shape[1]


@torch.no_grad()
def test_a_step_within_the_room_writes_in_place(tmp_path):
    from transformers import DynamicCache
    model, tok = _model(tmp_path, "llama")
    ids = torch.randint(5, len(tok), (2, 6))
    mask = torch.ones_like(ids)
    cache = DynamicCache()
    _step(model, ids, mask, cache)
    with_room(cache, 4)
    layer = cache.layers[0]
    buffer = layer._k.data_ptr()
    for _ in range(4):
        mask = torch.cat([mask, torch.ones(2, 1, dtype=torch.long)], 1)
        _step(model, torch.randint(5, len(tok), (2, 1)), mask, cache)
        assert layer._k.data_ptr() == buffer and layer.keys.data_ptr() == buffer  # a view, not a copy
    mask = torch.cat([mask, torch.ones(2, 1, dtype=torch.long)], 1)
    _step(model, torch.randint(5, len(tok), (2, 1)), mask, cache)  # out of room: it grows
    assert layer._k.data_ptr() != buffer and layer._k.shape[-2] >= 2 * 10
    assert with_room(cache, 4) is cache and layer._k.shape[-2] - layer.get_seq_length() >= 4


def test_engine_answers_are_those_of_transformers_own_cache(tmp_path, monkeypatch):
    """Engine.answer (every chat, generate and evaluation answer) through the growing cache and through
    transformers' own: the same tokens for a batch whose rows finish at different steps."""
    from luyen.config import GenerateConfig
    from luyen.infer import kvcache
    from luyen.infer.engine import Engine
    model, tok = _model(tmp_path, "gemma3_text", sliding_window=6, layer_types=["sliding_attention", "full_attention"])
    engine = Engine(model, tok)
    chats = [[{"role": "user", "content": q}] for q in ["Học máy là gì?", "LoRA?", "Một câu hỏi dài hơn một chút nhé?"]]
    cfg = GenerateConfig(max_new_tokens=20, batch_size=3)
    grown = [c.text for c in engine.chat(chats, cfg)]
    monkeypatch.setattr(kvcache, "with_room", lambda cache, room: cache)
    assert grown == [c.text for c in engine.chat(chats, cfg)]


@pytest.mark.parametrize("arch,extra", [
    ("llama", {}),
    ("gemma3_text", {"sliding_window": 6, "layer_types": ["sliding_attention", "full_attention"]}),
    ("bloom", {"n_layer": 2, "n_head": 4}),  # ALiBi: no position ids
])
def test_many_prompts_prefill_a_few_rows_a_pass_and_answer_as_one_pass_does(tmp_path, monkeypatch, arch, extra):
    from luyen.config import GenerateConfig
    from luyen.infer import kvcache
    from luyen.infer.engine import Engine
    model, tok = _model(tmp_path, arch, **extra)
    engine = Engine(model, tok)
    questions = ["Học máy là gì?", "LoRA?", "Một câu hỏi dài hơn một chút về dữ liệu nhé?", "Vì sao?",
                 "Mạng nơ-ron học như thế nào từ dữ liệu có nhãn?"]
    chats = [[{"role": "user", "content": q}] for q in questions]
    cfg = GenerateConfig(max_new_tokens=12, batch_size=8)
    wide = []
    hook = model.register_forward_hook(lambda m, args, kw, out: wide.append(kw["input_ids"].shape), with_kwargs=True)
    monkeypatch.setattr(kvcache, "PREFILL_ROWS", 2)
    try:
        passes = [c.text for c in engine.chat(chats, cfg)]
    finally:
        hook.remove()
    prefills = [s for s in wide if s[1] > 1]
    assert [s[0] for s in prefills] == [2, 2, 1]  # five prompts, two rows a pass
    monkeypatch.setattr(kvcache, "PREFILL_ROWS", 10**6)  # one pass, inside generate
    assert passes == [c.text for c in engine.chat(chats, cfg)]


@pytest.mark.parametrize("arch,extra", [
    ("llama", {}),
    ("gemma3_text", {"sliding_window": 6, "layer_types": ["sliding_attention", "full_attention"]}),
    ("bloom", {"n_layer": 2, "n_head": 4}),
])
@torch.no_grad()
def test_prefill_in_passes_holds_the_states_one_forward_over_all_rows_leaves(tmp_path, monkeypatch, arch, extra):
    from transformers import DynamicCache
    from luyen.infer import kvcache
    model, tok = _model(tmp_path, arch, **extra)
    torch.manual_seed(2)
    ids = torch.randint(5, len(tok), (5, 11))
    mask = torch.ones_like(ids)
    mask[0, :6] = mask[3, :3] = mask[4, :8] = 0
    monkeypatch.setattr(kvcache, "PREFILL_ROWS", 2)
    got = kvcache.prefill(model, ids, mask)
    want = DynamicCache()
    _step(model, ids[:, :-1], mask[:, :-1], want)
    real = mask[:, :-1].bool()
    for a, b in zip(got.layers, want.layers):
        assert a.keys.shape == b.keys.shape
        for x, y in ((a.keys, b.keys), (a.values, b.values)):  # [rows, heads, positions, dim]: the real positions
            torch.testing.assert_close(x.transpose(1, 2)[real], y.transpose(1, 2)[real], rtol=1e-5, atol=1e-5)
