"""Shared fixtures: tiny tokenizers and models built locally, never downloaded."""
from __future__ import annotations

import io
import json
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


# -- task heads: tiny BERT (the shipped MiniLM's real WordPiece tokenizer), T5 and BART -------------
# each label's own words (none of them among SHORT_WORDS, the filler)
HEAD_LABELS = {"baggage": "vali kiện cân túi suitcase", "refund": "refund trả lại tiền_mặt cash", "checkin": "quầy cổng online sớm"}


def make_tiny_head_model(path: Path, arch: str = "bert", hidden: int = 32) -> Path:
    """A tiny random encoder (bert) or encoder-decoder (t5, bart) folder with a fast tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM, AutoTokenizer
    torch.manual_seed(0)
    if arch == "bert":
        from luyen.rag.encoder import encoder_folder
        tok = AutoTokenizer.from_pretrained(encoder_folder("all-MiniLM-L6-v2"))
        tok.save_pretrained(path)
        config = AutoConfig.for_model("bert", vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden,
                                      num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=256)
        AutoModel.from_config(config).save_pretrained(path)
        return path
    tok = make_tiny_tokenizer(path)
    common = dict(vocab_size=len(tok), pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                  decoder_start_token_id=tok.pad_token_id if arch == "t5" else tok.eos_token_id)
    if arch == "t5":
        config = AutoConfig.for_model("t5", d_model=hidden, d_ff=2 * hidden, d_kv=hidden // 2, num_layers=2,
                                      num_heads=2, **common)
    else:
        config = AutoConfig.for_model("bart", d_model=hidden, encoder_ffn_dim=2 * hidden, decoder_ffn_dim=2 * hidden,
                                      encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
                                      decoder_attention_heads=2, max_position_embeddings=256,
                                      bos_token_id=tok.bos_token_id, forced_eos_token_id=tok.eos_token_id, **common)
    AutoModelForSeq2SeqLM.from_config(config).save_pretrained(path)
    if arch == "t5":  # T5 ends every text with EOS
        from tokenizers.processors import TemplateProcessing
        eos = ("<eos>", tok.eos_token_id)
        tok._tokenizer.post_processor = TemplateProcessing(single="$A <eos>", pair="$A <eos> $B <eos>", special_tokens=[eos])
        tok.save_pretrained(path)
    return path


def write_labelled(path: Path, n: int = 90, seed: int = 0) -> Path:
    """Messages whose label shows in their words (so a tiny model can learn it), as a CSV."""
    import csv
    import random
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for i in range(n):
            label = list(HEAD_LABELS)[i % len(HEAD_LABELS)]
            words = HEAD_LABELS[label].split() * 2
            w.writerow([" ".join(rng.sample(words, 4) + rng.choices(SHORT_WORDS, k=3)) + f" {i}", label])
    return path


def write_squad(path: Path, n: int = 60, seed: int = 0, unanswerable: int = 0) -> Path:
    """SQuAD-style questions over short contexts; the answer is a number before 'kg' (`unanswerable` have none)."""
    import json
    import random
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            kg = rng.randint(5, 40)
            filler = " ".join(rng.choices(SHORT_WORDS, k=rng.randint(4, 10)))
            context = f"{filler}. Hành lý xách tay tối đa {kg} kg mỗi khách. {filler}."
            if i < unanswerable:
                context = f"{filler}. Giờ làm thủ tục đóng trước 40 phút. {filler}."
                answers = {"text": [], "answer_start": []}
            else:
                answers = {"text": [f"{kg} kg"], "answer_start": [context.index(f"{kg} kg")]}
            f.write(json.dumps({"id": f"q{i}", "context": context, "question": f"Hành lý xách tay tối đa bao nhiêu? {i}",
                                "answers": answers}, ensure_ascii=False) + "\n")
    return path


def write_pairs(path: Path, n: int = 60, seed: int = 0) -> Path:
    """Document -> summary pairs whose summary is the document's first sentence."""
    import json
    import random
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            first = " ".join(rng.choices(SHORT_WORDS, k=5)) + "."
            rest = " ".join(" ".join(rng.choices(SHORT_WORDS, k=8)) + "." for _ in range(3))
            f.write(json.dumps({"document": f"{first} {rest}", "summary": first}, ensure_ascii=False) + "\n")
    return path


HEAD_CASES = {"classification": ("bert", write_labelled), "extractive_qa": ("bert", write_squad),
              "seq2seq": ("t5", write_pairs)}
# a random BERT learns to pool its [CLS] slowly: the classifier needs more passes (measured: 10 at 3e-3 leave it at 2/3)
HEAD_TRAIN = {"classification": ["train.epochs=30", "train.lr=1e-3"], "extractive_qa": ["train.epochs=10", "train.lr=3e-3"],
              "seq2seq": ["train.epochs=10", "train.lr=3e-3"]}


@pytest.fixture(scope="session")
def tiny_head_models(tmp_path_factory) -> dict:
    """{"bert", "t5", "bart"}: tiny random model folders."""
    root = tmp_path_factory.mktemp("heads")
    return {arch: make_tiny_head_model(root / arch, arch) for arch in ("bert", "t5", "bart")}


@pytest.fixture(scope="session")
def tiny_head_data(tmp_path_factory, tiny_head_models) -> dict:
    """{task: prepared data folder} for the three head tasks."""
    root = tmp_path_factory.mktemp("head_data")
    out = {}
    for task, (arch, write) in HEAD_CASES.items():
        src = write(root / f"{task}.{'csv' if write is write_labelled else 'jsonl'}")
        out[task] = prepare_data(tiny_head_models[arch], root / task, src)
    return out


@pytest.fixture(scope="session")
def tiny_head_runs(tmp_path_factory, tiny_head_models, tiny_head_data) -> dict:
    """{task: finished run folder}: each head task trained (full) on its tiny model for a few epochs."""
    from luyen.config import load_config
    from luyen.train.stage import run
    root = tmp_path_factory.mktemp("head_runs")
    out = {}
    for task, (arch, _) in HEAD_CASES.items():
        cfg = load_config(None, [f"model.name={tiny_head_models[arch]}", "data.max_length=256", "train.method=full",
                                 "train.batch_size=8", "train.grad_accum=1", *HEAD_TRAIN[task]])
        run(cfg, tiny_head_data[task], root / task)
        out[task] = root / task
    return out


SPM_SENTENCES = sorted(set(CORPUS))


def make_spm_model(path: Path, arch: str, hidden: int = 256, steps: int = 40) -> Path:
    """A tiny model with a sentencepiece tokenizer (tokenizer.model, which llama.cpp's converter reads
    for any vocabulary) that has memorised CORPUS, so its greedy continuations win by wide margins and
    quantisation noise cannot honestly flip them."""
    import sentencepiece as spm
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    gemma = arch.startswith("gemma")
    path.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(SPM_SENTENCES * 5), model_writer=buf, vocab_size=600, model_type="bpe", byte_fallback=True,
        pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>",
        unk_piece="<unk>", user_defined_symbols=["<start_of_turn>", "<end_of_turn>"] if gemma else [],
        add_dummy_prefix=not gemma, minloglevel=2)
    (path / "tokenizer.model").write_bytes(buf.getvalue())
    (path / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "GemmaTokenizer" if gemma else "LlamaTokenizer", "bos_token": "<bos>", "eos_token": "<eos>",
        "pad_token": "<pad>", "unk_token": "<unk>", "add_bos_token": True}))
    tok = AutoTokenizer.from_pretrained(path)
    tok.save_pretrained(path)
    tok.padding_side = "right"  # positions as at inference
    config = AutoConfig.for_model(arch, vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden,
                                  head_dim=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                  max_position_embeddings=256, pad_token_id=tok.pad_token_id,
                                  eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id,
                                  # llama.cpp scales Gemma-3 attention by 1/sqrt(head_dim), as every real Gemma-3 does
                                  **({"query_pre_attn_scalar": 64} if gemma else {}))
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    batch = tok(SPM_SENTENCES, return_tensors="pt", padding=True)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    for _ in range(steps):
        loss = model(**batch, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    # the floor is the first word after <bos>, one of 8: ln(8) / 11 predictions = 0.19
    assert loss.item() < 0.3, f"the tiny model did not memorise its corpus (loss {loss.item():.3f})"
    model.save_pretrained(path)
    return path
