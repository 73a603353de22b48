"""The one shape reader and the one memory formula, against hand-computed values."""
from __future__ import annotations

import json

import pytest
import torch

from luyen.config import load_config
from luyen.errors import LuyenError
from luyen.models.estimate import RUNTIME_BYTES, estimate_training, training_memory
from luyen.models.presets import PRESETS
from luyen.models.shape import config_shape, model_shape

SHAPE = {"params": 1_000_000, "embed": 200_000, "hidden": 64, "layers": 4, "vocab": 3000, "context": 512}


def tc(*overrides):
    return load_config(None, list(overrides)).train


def test_one_reader_for_every_spelling_of_a_shape():
    from transformers import BloomConfig, GPT2Config, LlamaConfig
    assert config_shape(GPT2Config(n_embd=48, n_layer=3, vocab_size=500, n_positions=128)) == {
        "model_type": "gpt2", "hidden": 48, "layers": 3, "vocab": 500, "context": 128}
    assert config_shape(LlamaConfig(hidden_size=32, num_hidden_layers=2, vocab_size=600, max_position_embeddings=256,
                                    intermediate_size=64, num_attention_heads=4)) == {
        "model_type": "llama", "hidden": 32, "layers": 2, "vocab": 600, "context": 256}
    assert config_shape(BloomConfig(hidden_size=64, n_layer=2, vocab_size=700))["context"] is None  # ALiBi: no limit
    # a multimodal config: its text model's shape
    assert config_shape({"model_type": "gemma3", "text_config": {"hidden_size": 640, "num_hidden_layers": 18,
                                                                 "vocab_size": 262144}})["hidden"] == 640


def test_model_shape_counts_parameters_of_a_plain_or_peft_model(tiny_model_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    plain = model_shape(model)
    assert plain["params"] == sum(p.numel() for p in model.parameters()) and plain["embed"] == plain["vocab"] * 32
    assert plain["hidden"] == 32 and plain["layers"] == 2 and plain["context"] == 256
    wrapped = model_shape(get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"])))
    same = ("model_type", "hidden", "layers", "vocab", "context", "embed")
    assert {k: wrapped[k] for k in same} == {k: plain[k] for k in same}  # the base's (which now holds the adapter)


def test_a_preset_speaks_the_same_shape():
    assert set(PRESETS["gemma3-270m"].shape) == {"params", "embed", "hidden", "layers", "vocab", "context"}
    assert PRESETS["gemma3-270m"].shape["embed"] == 262_144 * 640


def test_an_adapter_base_written_with_the_configs_own_names_is_still_checked(tmp_path):
    from transformers import LlamaConfig

    from luyen.models.trained import BASE_INFO, check_adapter_base
    base = LlamaConfig(hidden_size=32, num_hidden_layers=2, vocab_size=600, intermediate_size=64, num_attention_heads=4)
    (tmp_path / BASE_INFO).write_text(json.dumps({"shape": {"model_type": "llama", "hidden_size": 32,
                                                            "num_hidden_layers": 2, "vocab_size": 600}}))
    check_adapter_base(tmp_path, base, "tiny")  # the same base, as an older luyen wrote it
    (tmp_path / BASE_INFO).write_text(json.dumps({"shape": {"model_type": "llama", "hidden": 32, "layers": 4, "vocab": 600}}))
    with pytest.raises(LuyenError, match="layers 4 vs 2"):
        check_adapter_base(tmp_path, base, "tiny")


def test_the_memory_formula_by_hand():
    # lora in fp32: 4 B x 1M weights + 12 B x trainable + 10 tokens x 4 layers x 64 x 72 B + 10 x 3000 x 12 B
    t = tc("train.method=lora", "train.logit_chunk=16")
    assert training_memory(SHAPE, t, trainable=5000, tokens_per_batch=10) == (
        4e6 + 12 * 5000 + 10 * 4 * 64 * 72 + 10 * 3000 * 12)
    # checkpointing keeps 15% of the activations; the chunk caps the logits
    t = tc("train.method=lora", "train.logit_chunk=16", "train.gradient_checkpointing=true")
    assert training_memory(SHAPE, t, trainable=0, tokens_per_batch=100) == pytest.approx(
        4e6 + 100 * 4 * 64 * 72 * 0.15 + 16 * 3000 * 12)
    # the method decides how the base is held: bf16 for a frozen base, fp32 for one that trains, NF4 for qlora
    lora, full, qlora = (training_memory(SHAPE, tc(f"train.method={m}"), trainable=0, tokens_per_batch=1,
                                         precision="bf16") for m in ("lora", "full", "qlora"))
    assert full - lora == pytest.approx(2e6) and lora - qlora == pytest.approx(1.4e6)


def test_the_estimate_reports_the_formula_plus_the_runtime_and_full_costs_more():
    common = dict(tokens=1e5, loss_tokens=4e4, tokens_per_batch=512, peak_flops=1e11)
    lora = estimate_training(SHAPE, tc("train.method=lora"), **common)
    full = estimate_training(SHAPE, tc("train.method=full"), **common)
    mem = training_memory(SHAPE, tc("train.method=full"), trainable=SHAPE["params"], tokens_per_batch=512)
    assert full["peak_memory_gb"] == round((mem + RUNTIME_BYTES) / 1e9, 2)
    assert full["trainable_params"] == SHAPE["params"] and lora["trainable_params"] < SHAPE["params"] / 10
    # forward 2 + backward 2 (+2 for the weight gradients of full fine-tuning) FLOPs per parameter per token
    assert full["flops"] / lora["flops"] == pytest.approx(6 / 4)


def test_the_stage_refuses_with_the_same_formula(tiny_model_dir, monkeypatch):
    from transformers import AutoModelForCausalLM

    from luyen.train import preflight
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    t = tc("train.method=full", "train.batch_size=2")
    need = training_memory(model_shape(model), t, trainable=model.num_parameters(), tokens_per_batch=2 * 50)
    monkeypatch.setattr(preflight, "free_memory", lambda device: need / preflight.MEMORY_HEADROOM + 1)
    preflight.check_memory(model, t, 50, torch.device("cpu"), "fp32")
    monkeypatch.setattr(preflight, "free_memory", lambda device: need / preflight.MEMORY_HEADROOM - 1)
    with pytest.raises(LuyenError, match="needs about"):
        preflight.check_memory(model, t, 50, torch.device("cpu"), "fp32")
