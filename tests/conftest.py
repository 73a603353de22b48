"""Shared fixtures: tiny tokenizers and models built locally, never downloaded."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a hub

CORPUS = [
    "Học máy là một nhánh của trí tuệ nhân tạo.", "Hà Nội là thủ đô của Việt Nam.",
    "Machine learning is a branch of artificial intelligence.", "The quick brown fox jumps over the lazy dog.",
    "Hòa bình, độc lập, tự do, hạnh phúc.", "Xin chào, tôi có thể giúp gì cho bạn?",
    "Fine-tuning adapts a pretrained model to your data.", "Hành lý xách tay tối đa 7 kg.",
] * 20


def make_tiny_tokenizer(path: Path, gemma_markers: bool = False, vocab_size: int = 600):
    """A byte-level BPE tokenizer trained on a few sentences, saved as a transformers folder."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<eos>", "<bos>", "<unk>"] + (["<start_of_turn>", "<end_of_turn>"] if gemma_markers else [])
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
                                   unk_token="<unk>",
                                   additional_special_tokens=specials[4:] if gemma_markers else None)
    fast.save_pretrained(path)
    return fast


def make_tiny_model(path: Path, arch: str = "llama", gemma_markers: bool = False, hidden: int = 32):
    """A tiny random causal LM folder (config + safetensors + tokenizer) for stage tests."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    tok = make_tiny_tokenizer(path, gemma_markers=gemma_markers)
    config = AutoConfig.for_model(arch, vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden,
                                  head_dim=hidden // 4,
                                  num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                  max_position_embeddings=256, pad_token_id=tok.pad_token_id,
                                  eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory) -> Path:
    """A tiny llama folder whose tokenizer has no chat markers (ChatML+EOS default template)."""
    return make_tiny_model(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="session")
def tiny_gemma_tokenizer_dir(tmp_path_factory) -> Path:
    """A tiny gemma3 folder whose tokenizer has Gemma's turn markers."""
    return make_tiny_model(tmp_path_factory.mktemp("tok_gemma"), arch="gemma3_text", gemma_markers=True)


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_tokenizer_dir) -> Path:
    return tiny_tokenizer_dir


SHORT_WORDS = ("học máy mô hình dữ liệu huấn luyện vé hành lý chuyến bay giờ khách hàng đổi hoàn tiền "
               "hạng ghế thời gian chi phí").split()


def write_short_qa(path: Path, n: int = 120, seed: int = 0) -> Path:
    """Short Vietnamese-looking QA pairs that fit a tiny model's 256-token context."""
    import json
    import random
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            q = " ".join(rng.choices(SHORT_WORDS, k=rng.randint(3, 8))) + f" {i}?"
            a = " ".join(rng.choices(SHORT_WORDS, k=rng.randint(3, 12))) + "."
            f.write(json.dumps({"question": q, "answer": a}, ensure_ascii=False) + "\n")
    return path


def prepare_data(model_dir: Path, out: Path, source: Path, *extra: str) -> Path:
    from luyen.config import load_config
    from luyen.data.stage import run
    cfg = load_config(None, [f"model.name={model_dir}", "data.max_length=256", *extra])
    run(cfg, [source], out, overwrite=True, estimate=False)
    return out


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory, tiny_model_dir) -> Path:
    """A prepared data folder (train/val/test) of short QA for the tiny llama model."""
    root = tmp_path_factory.mktemp("train_data")
    return prepare_data(tiny_model_dir, root / "data", write_short_qa(root / "qa.jsonl"))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_model_dir, tiny_data_dir) -> Path:
    """A finished LoRA run of the tiny llama model on tiny_data_dir (20 steps at a high learning rate)."""
    from luyen.config import load_config
    from luyen.train.stage import run
    out = tmp_path_factory.mktemp("tiny_run") / "train"
    run(load_config(None, [f"model.name={tiny_model_dir}", "data.max_length=256", "train.max_steps=20",
                           "train.lr=3e-3"]), tiny_data_dir, out)
    return out
