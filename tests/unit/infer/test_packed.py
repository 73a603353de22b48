"""Prepacked fp32 matmuls (luyen.infer.packed) against their reference, F.linear."""
from __future__ import annotations

import torch

from luyen.infer import packed
from luyen.infer.engine import Engine


def _model(tiny_model_dir):
    from transformers import AutoModelForCausalLM
    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()


def _reference(model, ids):
    packed.unpack(model)
    with torch.no_grad():
        return model(ids).logits


def test_packed_model_matches_f_linear_and_leaves_the_state_dict_alone(tiny_model_dir):
    model = _model(tiny_model_dir)
    keys = set(model.state_dict())
    ids = torch.tensor([[5, 9, 17, 33, 2, 8], [1, 4, 4, 60, 7, 3]])
    summary = packed.pack(model)
    linears = [m for m in model.modules() if type(m) is torch.nn.Linear]
    assert summary.startswith("oneDNN prepacked") and f"{len(linears)} linears" in summary
    assert all(hasattr(m, packed._ATTR) for m in linears)  # the output layer included
    calls = []
    real = torch.ops.mkldnn._linear_pointwise
    with torch.no_grad():
        torch.ops.mkldnn._linear_pointwise = lambda *a: calls.append(1) or real(*a)
        try:
            got = model(ids).logits
        finally:
            torch.ops.mkldnn._linear_pointwise = real
    assert len(calls) == len(linears)  # every matmul went through the packed path
    assert set(model.state_dict()) == keys
    want = _reference(model, ids)
    assert not any(hasattr(m, packed._ATTR) for m in linears)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_packed_layer_falls_back_when_it_must(tiny_model_dir):
    layer = torch.nn.Linear(16, 8)
    layer.requires_grad_(False)
    packed.pack(layer)
    x = torch.randn(3, 16)
    torch.testing.assert_close(layer(x), torch.nn.functional.linear(x, layer.weight, layer.bias))
    with torch.no_grad():  # a tracked in-place change: the packed copy is stale, F.linear answers
        layer.weight.mul_(2)
    torch.testing.assert_close(layer(x), torch.nn.functional.linear(x, layer.weight, layer.bias))
    fresh = torch.nn.Linear(16, 8)
    packed.pack(fresh)  # trainable and packed: with gradients on, F.linear answers and gradients flow
    fresh(x).sum().backward()
    torch.testing.assert_close(fresh.weight.grad, x.sum(0).expand(8, 16))
    empty = layer(torch.randn(0, 16))
    assert empty.shape == (0, 8)


def test_engine_packs_fp32_and_greedy_text_is_unchanged(tiny_model_dir):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    prompts = ["Học máy", "Hà Nội là thủ đô của Việt Nam và", "The quick brown fox"]
    engine = Engine(_model(tiny_model_dir), tok)
    assert engine.kernels.startswith("oneDNN prepacked")
    fast = [c.text for c in engine.generate(prompts, max_new_tokens=24)]
    packed.unpack(engine.model)
    plain = [c.text for c in engine.generate(prompts, max_new_tokens=24)]
    assert fast == plain


def _count_packed(model, ids):
    calls, real = [], torch.ops.mkldnn._linear_pointwise
    with torch.no_grad():
        torch.ops.mkldnn._linear_pointwise = lambda *a: calls.append(a[0].dtype) or real(*a)
        try:
            return model(ids).logits, calls
        finally:
            torch.ops.mkldnn._linear_pointwise = real


def test_bf16_weights_pack_where_onednn_multiplies_bf16_and_match_f_linear(tiny_model_dir):
    """On a CPU with AVX512 (every AVX512-BF16/AMX machine) bf16 linears pack and answer as F.linear does,
    to bf16 rounding; where oneDNN refuses bf16 products (AVX2-only CPUs), pack says so and packs nothing."""
    from transformers import AutoTokenizer

    from luyen.precision import cpu_has_bf16
    model = _model(tiny_model_dir).to(torch.bfloat16)
    ids = torch.tensor([[5, 9, 17, 33, 2, 8], [1, 4, 4, 60, 7, 3]])
    linears = [m for m in model.modules() if type(m) is torch.nn.Linear]
    summary = packed.pack(model, dtype=torch.bfloat16)
    if packed.supported(torch.bfloat16) is not None:
        assert summary == "plain F.linear (oneDNN has no bfloat16 products on this CPU)"
        assert not any(hasattr(m, packed._ATTR) for m in linears)
        return
    assert summary.startswith("oneDNN prepacked bf16 matmuls") and f"{len(linears)} linears" in summary
    got, calls = _count_packed(model, ids)
    assert calls == [torch.bfloat16] * len(linears)  # every matmul went through the packed bf16 path
    with torch.autocast("cpu", dtype=torch.float16):  # autocast to another dtype: F.linear answers
        _, under = _count_packed(model, ids)
    assert under == []
    want = _reference(model, ids)
    torch.testing.assert_close(got, want, rtol=2e-2, atol=2e-2)
    engine = Engine(_model(tiny_model_dir).to(torch.bfloat16), AutoTokenizer.from_pretrained(tiny_model_dir))
    assert engine.kernels.startswith("oneDNN prepacked bf16") == cpu_has_bf16()


def test_a_packed_fp32_layer_leaves_bf16_autocast_to_f_linear():
    layer = torch.nn.Linear(16, 8)
    layer.requires_grad_(False)
    packed.pack(layer)
    x = torch.randn(3, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = layer(x)
    assert got.dtype == torch.bfloat16  # as F.linear under autocast gives, not the packed fp32 product


def test_pack_refuses_a_copy_that_would_not_fit(tiny_model_dir):
    model = _model(tiny_model_dir)
    assert "would not fit" in packed.pack(model, budget_bytes=1)
    assert not any(hasattr(m, packed._ATTR) for m in model.modules())


def _adapted(tiny_model_dir):
    from peft import LoraConfig, get_peft_model
    torch.manual_seed(3)  # init_lora_weights=False: B is random too, so the adapter changes every layer's output
    cfg = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.1, target_modules="all-linear", init_lora_weights=False)
    return get_peft_model(_model(tiny_model_dir), cfg).eval()


def test_adapter_merged_into_packed_copies_matches_peft_and_switches_off(tiny_model_dir):
    model = _adapted(tiny_model_dir)
    ids = torch.tensor([[5, 9, 17, 33, 2, 8], [1, 4, 4, 60, 7, 3]])
    with torch.no_grad():
        want, base_want = model(ids).logits, None
        with model.disable_adapter():
            base_want = model(ids).logits
    packed.pack(model)
    summary = packed.pack_merged(model)
    loras = [m for m in model.modules() if hasattr(m, packed._MERGED)]
    assert loras and f"adapter default merged into packed copies of its {len(loras)} linears" in summary
    calls = []
    hooks = [m.lora_A["default"].register_forward_hook(lambda *a: calls.append(1)) for m in loras]
    with torch.no_grad():
        got = model(ids).logits
        assert not calls  # the adapter's own small products never ran: its merged copy answered
        with model.disable_adapter():
            base_got = model(ids).logits
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(base_got, base_want, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(want, base_want, atol=1e-3)  # the adapter does change the logits
    got = model(ids).logits  # gradients on (training): peft's own forward
    assert calls
    for h in hooks:
        h.remove()


def test_merged_copy_is_dropped_when_the_adapter_changes(tiny_model_dir):
    model = _adapted(tiny_model_dir)
    ids = torch.tensor([[5, 9, 17, 33, 2, 8]])
    packed.pack(model)
    packed.pack_merged(model)
    with torch.no_grad():
        for m in model.modules():
            if hasattr(m, packed._MERGED):
                m.lora_B["default"].weight.mul_(3)  # a tracked in-place change: the merged copy is stale
        got = model(ids).logits
        packed.unpack(model)
        want = model(ids).logits
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_engine_merges_an_adapter_and_its_greedy_text_is_peft_s(tiny_model_dir):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    prompts = ["Học máy", "Hà Nội là thủ đô của Việt Nam và", "The quick brown fox"]
    engine = Engine(_adapted(tiny_model_dir), tok)
    assert "adapter default merged" in engine.kernels
    fast = [c.text for c in engine.generate(prompts, max_new_tokens=24)]
    packed.unpack(engine.model)
    assert fast == [c.text for c in engine.generate(prompts, max_new_tokens=24)]


def test_every_adapter_gets_its_merged_copy_and_a_deleted_one_is_freed(tiny_model_dir):
    """The server holds several adapters and switches per batch: each answers through its own merged copy
    (its small products never run), as peft's unmerged forward would; a deleted adapter's copies go."""
    from peft import LoraConfig
    model = _adapted(tiny_model_dir)
    torch.manual_seed(4)
    model.add_adapter("other", LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False))
    ids = torch.tensor([[5, 9, 17, 33, 2, 8]])
    want = {}
    with torch.no_grad():
        for name in ("default", "other"):
            model.set_adapter(name)
            want[name] = model(ids).logits
    packed.pack(model)
    assert "adapter default, other merged" in packed.pack_merged(model)
    loras = [m for m in model.modules() if hasattr(m, packed._MERGED)]
    calls = []
    hooks = [m.lora_A[a].register_forward_hook(lambda *_: calls.append(1)) for m in loras for a in ("default", "other")]
    with torch.no_grad():
        for name in ("other", "default"):
            model.set_adapter(name)
            torch.testing.assert_close(model(ids).logits, want[name], rtol=1e-5, atol=1e-5)
    assert not calls
    assert not torch.allclose(want["default"], want["other"], atol=1e-3)  # the two adapters do differ
    for h in hooks:
        h.remove()
    model.delete_adapter("other")
    assert packed.pack_merged(model) == ""  # nothing new to merge ...
    assert all(set(getattr(m, packed._MERGED)) == {"default"} for m in loras)  # ... and "other"'s copies are gone


def _dora(tiny_model_dir):
    """A DoRA adapter whose magnitudes are not the merged weight's own row norms, so they change the output."""
    from peft import LoraConfig, get_peft_model
    torch.manual_seed(3)
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False, use_dora=True)
    model = get_peft_model(_model(tiny_model_dir), cfg).eval()
    with torch.no_grad():
        for m in model.modules():
            if "default" in getattr(m, "lora_magnitude_vector", {}):
                m.lora_magnitude_vector["default"].weight.mul_(torch.rand_like(m.lora_magnitude_vector["default"].weight) + 0.5)
    return model


def test_a_dora_adapter_is_merged_as_peft_computes_it_and_a_changed_magnitude_drops_the_copy(tiny_model_dir):
    model = _dora(tiny_model_dir)
    ids = torch.tensor([[5, 9, 17, 33, 2, 8], [1, 4, 4, 60, 7, 3]])
    with torch.no_grad():
        want = model(ids).logits
        with model.disable_adapter():
            base = model(ids).logits
    packed.pack(model)
    assert "adapter default merged" in packed.pack_merged(model)
    loras = [m for m in model.modules() if hasattr(m, packed._MERGED)]
    calls = []
    hooks = [m.lora_A["default"].register_forward_hook(lambda *a: calls.append(1)) for m in loras]
    with torch.no_grad():
        got = model(ids).logits
    assert loras and not calls  # every DoRA layer answered from its merged copy
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(want, base, atol=1e-3)
    with torch.no_grad():
        for m in loras:
            m.lora_magnitude_vector["default"].weight.mul_(2)  # a tracked change of the magnitudes alone
        got = model(ids).logits
        assert calls  # stale copies: peft's own forward answered
        packed.unpack(model)
        torch.testing.assert_close(got, model(ids).logits, rtol=1e-5, atol=1e-5)
    for h in hooks:
        h.remove()


def test_bf16_packing_says_why_not_where_onednn_refuses_bf16(tiny_model_dir, monkeypatch):
    def refuse(*args):
        raise RuntimeError("mkldnn_linear_pointwise: bf16 path needs the cpu support avx_ne_convert or avx512bw, avx512vl and avx512dq")
    monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", refuse)  # what torch does on an AVX2-only CPU
    model = _model(tiny_model_dir).to(torch.bfloat16)
    assert packed.pack(model, dtype=torch.bfloat16) == "plain F.linear (oneDNN has no bfloat16 products on this CPU)"
    assert not any(hasattr(m, packed._ATTR) for m in model.modules())
    assert packed.supported() is None  # fp32 packing does not try a bf16 product
