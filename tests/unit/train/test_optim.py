"""The optimiser every trainer builds (train/optim.py): decay only on matrices, LoRA+ moves B faster, and a
ratio with no B matrix to apply it to is refused."""
from __future__ import annotations

import pytest
import torch

from luyen.config import load_config
from luyen.errors import LuyenError
from luyen.train.optim import optimizer


def lora_model():
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    base = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=4))
    return get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0))


def one_step(ratio: float) -> dict[str, torch.Tensor]:
    """How far each trainable parameter moves in the first AdamW step (past warmup) with LoRA+ at `ratio`."""
    model = lora_model()
    with torch.no_grad():  # B starts at zero; make it nonzero so that A gets a gradient too
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(std=0.1)
    tc = load_config(None, [f"train.lora.plus_ratio={ratio}", "train.warmup_ratio=0", "train.scheduler=constant",
                            "train.weight_decay=0.1"]).train
    opt, _ = optimizer(model, tc, lr=1e-3, total=10)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    model(torch.tensor([[1, 2, 3, 4, 5]]), labels=torch.tensor([[1, 2, 3, 4, 5]])).loss.backward()
    opt.step()
    return {n: float((p.detach() - before[n]).abs().max()) for n, p in model.named_parameters() if p.requires_grad}


def test_lora_plus_moves_b_ratio_times_further_and_a_as_before():
    plain, plus = one_step(1.0), one_step(4.0)
    b = [n for n in plain if "lora_B" in n]
    a = [n for n in plain if "lora_A" in n]
    assert b and a
    for n in b:  # Adam's first step moves each weight by about lr (x ratio), whatever its gradient's size
        assert plus[n] / plain[n] == pytest.approx(4.0, rel=0.02), n
    for n in a:
        assert plus[n] == pytest.approx(plain[n], rel=1e-4), n


def test_decay_skips_norms_and_biases_and_a_ratio_without_lora_b_is_refused():
    model = lora_model()
    for n, p in model.named_parameters():
        p.requires_grad = "lora_" in n or "norm" in n
    tc = load_config(None, ["train.weight_decay=0.1", "train.lora.plus_ratio=2"]).train
    opt, _ = optimizer(model, tc, lr=1e-3, total=10)
    names = {id(p): n for n, p in model.named_parameters()}
    seen = {(("norm" in names[id(p)]), ("lora_B" in names[id(p)])): (g["weight_decay"], g["lr"])
            for g in opt.param_groups for p in g["params"]}
    assert seen == {(True, False): (0.0, 1e-3), (False, False): (0.1, 1e-3), (False, True): (0.1, 2e-3)}
    for n, p in model.named_parameters():
        p.requires_grad = "norm" in n  # a run that trains no adapter (method full, a head alone)
    with pytest.raises(LuyenError, match="train.lora.plus_ratio"):
        optimizer(model, tc, lr=1e-3, total=10)
