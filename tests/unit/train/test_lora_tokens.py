"""luyen's lookup of peft's trainable token rows gives peft's own values and gradients (peft is the oracle)."""
from __future__ import annotations

import pytest
import torch

from luyen.train.lora import fast_trainable_tokens


def _wrapped(model_dir, ids: list[int]):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", r=4, target_modules=["q_proj"],
                                             trainable_token_indices=ids))
    g = torch.Generator().manual_seed(1)
    for name, p in model.named_parameters():
        if "trainable_tokens_delta" in name:
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=g))  # trained rows that differ from the frozen table
    return model


@pytest.mark.parametrize("arch_fixture", ["tiny_model_dir", "tiny_gemma_tokenizer_dir"])  # gemma3 scales embeddings
def test_looked_up_rows_equal_peft_values_and_gradients(request, arch_fixture):
    model_dir = request.getfixturevalue(arch_fixture)
    ids = [9, 4, 30]  # unsorted on purpose
    ours, theirs = _wrapped(model_dir, ids), _wrapped(model_dir, ids)
    assert fast_trainable_tokens(ours) >= 1
    x = torch.tensor([[4, 5, 9, 9, 30, 2], [1, 30, 7, 4, 0, 0]])
    upstream = torch.randn(2, 6, ours.get_input_embeddings().weight.shape[1], generator=torch.Generator().manual_seed(2))
    got = []
    for model in (ours, theirs):
        out = model.get_input_embeddings()(x)
        (out * upstream).sum().backward()
        delta = next(p for n, p in model.named_parameters() if "trainable_tokens_delta" in n and "embed" in n)
        got.append((out.detach(), delta.grad.clone()))
    assert torch.allclose(got[0][0], got[1][0]) and torch.allclose(got[0][1], got[1][1])
    assert got[0][1].abs().sum() > 0
    base = theirs.get_input_embeddings().token_adapter.base_layer(x)  # without the trained rows the values differ
    assert not torch.allclose(got[0][0], base)
    with ours.disable_adapter():  # adapter off: the frozen table, as peft gives it
        assert torch.allclose(ours.get_input_embeddings()(x), base)


def test_a_tied_output_layer_gives_peft_logits_with_its_weights_packed(tiny_gemma_tokenizer_dir):
    """Gemma ties its output layer to the embedding, so peft wraps both; the engine's output layer reads
    the packed frozen weights plus the trained ids' columns (luyen.train.lora._columns)."""
    from transformers import AutoTokenizer
    from luyen.infer.engine import Engine
    ids = [9, 4, 30]
    ours, theirs = _wrapped(tiny_gemma_tokenizer_dir, ids), _wrapped(tiny_gemma_tokenizer_dir, ids)
    engine = Engine(ours, AutoTokenizer.from_pretrained(tiny_gemma_tokenizer_dir))  # switches and packs
    assert "prepacked" in engine.kernels
    x = torch.tensor([[4, 5, 9, 9, 30, 2], [1, 30, 7, 4, 0, 0]])
    with torch.no_grad():
        got, want = ours(input_ids=x).logits, theirs(input_ids=x).logits
        assert torch.allclose(got, want, atol=1e-5)
        with theirs.disable_adapter():
            plain = theirs(input_ids=x).logits
    assert not torch.allclose(want[..., ids], plain[..., ids], atol=1e-3)  # the trained columns matter
    head = ours.get_output_embeddings()
    assert head.token_adapter.forward_adapters.__func__.__name__ == "_columns"
