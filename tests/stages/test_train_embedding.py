"""train.task=embedding on a tiny decoder: the loss falls and held-out recall rises, the trained folder
round-trips through `luyen rag index` / query / eval, leakage and bad encoder folders are refused."""
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from luyen.cli import app
from luyen.config import RunConfig
from luyen.errors import LuyenError
from luyen.rag import build_index, load_index
from luyen.rag.evaluate import evaluate
from tests.conftest import make_tiny_model

TOPICS = {
    "hanh-ly.md": ("Hành lý", ["Hành lý xách tay tối đa 7 kg.", "Vali xách tay cao tối đa 56 cm.",
                               "Hành lý ký gửi mua thêm theo kg.", "Túi xách nhỏ được mang miễn phí."]),
    "hoan-ve.md": ("Hoàn vé", ["Hoàn tiền vé trong bảy ngày làm việc.", "Phí hoàn vé phụ thuộc hạng vé.",
                               "Vé khuyến mãi không được hoàn tiền.", "Hoàn tiền về thẻ đã thanh toán."]),
    "thu-cung.md": ("Thú cưng", ["Chó mèo nhỏ đi cùng khoang khách.", "Lồng thú cưng phải thoáng khí.",
                                 "Thú cưng lớn đi khoang hàng.", "Giấy tiêm phòng cho chó mèo là bắt buộc."]),
    "suat-an.md": ("Suất ăn", ["Suất ăn chay đặt trước hai mươi bốn giờ.", "Nước uống miễn phí trên chuyến bay.",
                               "Bánh mì và cơm được bán trên máy bay.", "Trẻ em có suất ăn riêng."]),
    "ghe-ngoi.md": ("Chỗ ngồi", ["Ghế cạnh cửa sổ có phí chọn chỗ.", "Ghế hàng đầu rộng chân hơn.",
                                 "Chọn chỗ miễn phí khi làm thủ tục trực tuyến.", "Ghế thoát hiểm cho người lớn."]),
    "wifi.md": ("Wifi", ["Wifi trên máy bay bán theo gói giờ.", "Phim và nhạc miễn phí trên màn hình.",
                         "Cổng sạc USB ở mỗi ghế.", "Gói wifi mua bằng thẻ tín dụng."]),
}


# English words for each document: queries built from them share no token with the Vietnamese passages,
# so an untrained encoder ranks their documents by chance and only training can connect the two
ENGLISH = {"hanh-ly.md": "baggage luggage suitcase carry weight kilograms cabin bag",
           "hoan-ve.md": "refund money back cancel ticket days card repay",
           "thu-cung.md": "pet dog cat animal cage vaccine kennel puppy",
           "suat-an.md": "meal food vegetarian drink bread rice snack lunch",
           "ghe-ngoi.md": "seat window aisle legroom exit row chair front",
           "wifi.md": "wifi internet movie music charging usb screen online"}


def write_queries(path: Path, per_doc: int = 14, seed: int = 0) -> Path:
    import random
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        for name, words in ENGLISH.items():
            for _ in range(per_doc):
                query = " ".join(["what about the"] + rng.sample(words.split(), 3))
                f.write(json.dumps({"query": query, "relevant": [name]}) + "\n")
    return path


def write_docs(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, (title, lines) in TOPICS.items():
        body = "\n\n".join(f"## {title} {i + 1}\n\n{line} {line}" for i, line in enumerate(lines))
        (folder / name).write_text(f"# {title}\n\n{body}\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def encoder_base(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("enc"), arch="gemma3_text", hidden=64)


def retriever_config(base: Path, docs: Path, **train) -> RunConfig:
    return RunConfig.model_validate({
        "model": {"name": str(base)},
        "rag": {"documents": [str(docs)], "chunk_tokens": 40, "overlap_tokens": 0},
        "train": {"task": "embedding", "method": "full", "lr": 3e-3, "epochs": 8, "batch_size": 4, "grad_accum": 1,
                  "warmup_ratio": 0.0, "scheduler": "constant",
                  "embedding": {"generate": 0, "translate": False, "val": 0.3, "max_length": 64, "pooling": "mean",
                                "bidirectional": True, **train}}})


@pytest.fixture(scope="module")
def trained(tmp_path_factory, encoder_base) -> Path:
    from luyen.train.stage import run
    root = tmp_path_factory.mktemp("retriever")
    out = root / "run"
    run(retriever_config(encoder_base, write_docs(root / "docs"), queries=[str(write_queries(root / "q.jsonl"))]),
        None, out)
    return out


def test_training_lowers_the_loss_and_raises_held_out_recall(trained):
    manifest = json.loads((trained / "manifest.json").read_text())
    m = manifest["metrics"]
    assert m["task"] == "embedding" and m["val_pairs"] > 0 and m["steps"] >= 100
    assert manifest["wall_time_s"] >= m["seconds"] - 0.1  # the whole stage (seconds is rounded to 0.1)
    assert m["final_loss"] < 0.7 * m["first_loss"]
    assert m["best_val"]["mrr"] > m["initial_val"]["mrr"] + 0.2
    assert m["best_val"]["recall@1"] > m["initial_val"]["recall@1"] + 0.2
    assert m["encoder"]["bidirectional"] is True and m["encoder"]["pooling"] == "mean"
    rows = [json.loads(line) for line in (trained / "pairs.jsonl").read_text().splitlines()]
    assert {r["split"] for r in rows} == {"train", "val"}
    assert not ({r["query"] for r in rows if r["split"] == "train"} & {r["query"] for r in rows if r["split"] == "val"})


def test_trained_encoder_round_trips_through_index_query_and_eval(trained, tmp_path):
    docs = tmp_path / "docs"
    write_docs(docs)
    cfg = RunConfig.model_validate({"rag": {"encoder": str(trained), "chunk_tokens": 40, "overlap_tokens": 0,
                                            "mode": "dense"}})
    build_index(cfg, [docs], tmp_path / "index")
    index = load_index(tmp_path / "index")
    assert index.manifest["config"]["encoder"]["dim"] == 64
    # what the index holds is what the trained encoder makes of the passage, with its passage prompt
    from sentence_transformers import SentenceTransformer
    st = SentenceTransformer(str(trained / "model"), device="cpu")
    assert st.prompts == {"query": "query: ", "document": "passage: "}
    first = index.chunks[0]
    from luyen.rag.build import indexed_text
    expected = st.encode(["passage: " + indexed_text(first, 62 - 40)], normalize_embeddings=True)[0]
    assert abs(float(expected @ index.vectors.reconstruct(first["id"])) - 1) < 1e-4
    queries = tmp_path / "q.jsonl"
    queries.write_text("".join(json.dumps({"query": lines[0], "relevant": [name]}, ensure_ascii=False) + "\n"
                               for name, (_, lines) in TOPICS.items()), encoding="utf-8")
    report = evaluate(index, queries, modes=("dense",))
    assert report["dense"]["recall@5"] >= 0.5  # six documents: chance is well below
    result = CliRunner().invoke(app, ["rag", "query", str(tmp_path / "index"), "Hành lý xách tay tối đa mấy kg?"])
    assert result.exit_code == 0, result.output


def test_an_index_finds_its_encoder_from_any_folder(trained, tmp_path, monkeypatch):
    from luyen.rag import encoder
    docs = write_docs(tmp_path / "docs")
    monkeypatch.chdir(trained.parent)  # rag.encoder given relative to where the index is built
    cfg = RunConfig.model_validate({"rag": {"encoder": trained.name, "chunk_tokens": 40, "overlap_tokens": 0,
                                            "mode": "dense"}})
    build_index(cfg, [docs], tmp_path / "index")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # a server or `luyen rag query` started from another folder
    encoder._load.cache_clear()
    index = load_index(tmp_path / "index")
    assert index.manifest["config"]["encoder"]["name"] == str(trained.resolve())
    assert index.search("Hành lý xách tay tối đa mấy kg?", mode="dense")
    (elsewhere / "more.md").write_text("# Thú cưng\n\nChó mèo dưới 7 kg đi cùng khoang.\n", encoding="utf-8")
    build_index(cfg, [elsewhere / "more.md"], tmp_path / "index", add=True)  # the index's own encoder, found
    assert "more.md" in load_index(tmp_path / "index").documents


def test_a_language_model_run_is_not_an_encoder(tiny_run, tmp_path):
    cfg = RunConfig.model_validate({"rag": {"encoder": str(tiny_run)}})
    with pytest.raises(LuyenError, match="language model, not a sentence encoder"):
        build_index(cfg, [write_docs(tmp_path / "docs")], tmp_path / "index")
    (tmp_path / "empty").mkdir()
    cfg = RunConfig.model_validate({"rag": {"encoder": str(tmp_path / "empty")}})
    with pytest.raises(LuyenError, match="not a sentence-transformers model folder"):
        build_index(cfg, [tmp_path / "docs"], tmp_path / "index2")


def test_training_data_that_leaks_into_the_eval_queries_is_refused(encoder_base, tmp_path, tiny_model_dir):
    from tests.conftest import prepare_data
    from luyen.train.stage import run
    docs = write_docs(tmp_path / "docs")
    qa = tmp_path / "qa.jsonl"
    qa.write_text("".join(json.dumps({"question": q, "answer": a}, ensure_ascii=False) + "\n" for q, a in [
        ("Hành lý xách tay được tối đa bao nhiêu kg?", "Hành lý xách tay tối đa 7 kg."),
        ("Bao lâu thì được hoàn tiền vé?", "Hoàn tiền vé trong bảy ngày làm việc."),
    ] * 6), encoding="utf-8")
    data = prepare_data(tiny_model_dir, tmp_path / "data", qa, "data.split.train=1", "data.split.val=0", "data.split.test=0",
                        "data.dedup.exact=false", "data.dedup.near=false")
    evals = tmp_path / "eval.jsonl"
    evals.write_text(json.dumps({"query": "hanh ly xach tay duoc toi da bao nhieu kg", "relevant": ["hanh-ly.md"]}) + "\n")
    cfg = retriever_config(encoder_base, docs, eval_queries=[str(evals)])
    with pytest.raises(LuyenError, match="train.jsonl"):
        run(cfg, data, tmp_path / "out")
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_a_decoder_encodes_by_its_last_token_with_causal_attention_by_default(encoder_base):
    from luyen.train import encoder as encoders
    model, about = encoders.build(RunConfig.model_validate({"model": {"name": str(encoder_base)},
                                                             "train": {"task": "embedding"}}))
    assert about["pooling"] == "lasttoken" and about["bidirectional"] is False
    assert model[0].auto_model.config.use_bidirectional_attention is False
    # its vector is the (normalised) state of the text's last token, wherever the batch pads it
    texts = ["vé máy bay", "hành lý xách tay tối đa bảy ký"]
    vectors = model.encode(texts, convert_to_tensor=True)
    for text, vector in zip(texts, vectors):
        features = model.preprocess([text])
        last = model[0](features)["token_embeddings"][0, -1]
        assert torch.allclose(vector, torch.nn.functional.normalize(last, dim=0), atol=1e-5)


def test_only_lora_and_full_train_an_encoder(encoder_base, tmp_path):
    from luyen.train.stage import run
    cfg = retriever_config(encoder_base, write_docs(tmp_path / "docs"))
    cfg.train.method = "prompt"
    with pytest.raises(LuyenError, match="cannot train a sentence encoder"):
        run(cfg, None, tmp_path / "out")


def test_under_bf16_autocast_the_contrastive_loss_runs_in_fp32(encoder_base, tmp_path, monkeypatch):
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss as Loss

    from luyen.train.stage import run
    seen = []  # (autocast on?, input dtypes, loss dtype) of every loss computed in training
    compute = Loss.compute_loss_from_embeddings

    def spy(self, embeddings, labels):
        loss = compute(self, embeddings, labels)
        seen.append((torch.is_autocast_enabled("cpu"), {e.dtype for e in embeddings}, loss.dtype))
        return loss
    monkeypatch.setattr(Loss, "compute_loss_from_embeddings", spy)
    cfg = retriever_config(encoder_base, write_docs(tmp_path / "docs"), queries=[str(write_queries(tmp_path / "q.jsonl"))])
    cfg.train.dtype, cfg.train.max_steps = "bfloat16", 2
    run(cfg, None, tmp_path / "out")
    # bf16 scores would be rounded to steps of 0.125 at a scaled cosine of ~16, the loss to steps of 1/64
    assert seen and all(s == (False, {torch.float32}, torch.float32) for s in seen), seen


@pytest.mark.parametrize("method", ["lora", "full"])
def test_gradient_checkpointing_recomputes_and_trains_the_same(encoder_base, tmp_path, monkeypatch, method):
    from luyen.train import encoder as encoders
    from luyen.train.stage import run
    wrap, runs = encoders.wrap, {}  # per setting: how often the first layer's MLP ran (a backward recomputes it)

    def counting(model, tc):
        model = wrap(model, tc)
        first = next(m for n, m in model.named_modules() if n.endswith("layers.0.mlp"))
        calls = runs.setdefault(tc.gradient_checkpointing, [])
        first.register_forward_hook(lambda *_: calls.append(torch.is_grad_enabled()))
        return model
    monkeypatch.setattr(encoders, "wrap", counting)
    docs, queries = write_docs(tmp_path / "docs"), str(write_queries(tmp_path / "q.jsonl"))
    losses = {}
    for on in (False, True):
        cfg = retriever_config(encoder_base, docs, queries=[queries])
        cfg.train.method, cfg.train.max_steps, cfg.train.gradient_checkpointing = method, 3, on
        m = run(cfg, None, tmp_path / f"out-{on}")["metrics"]
        losses[on] = (m["first_loss"], m["final_loss"])
    # the training forwards (grad on): once per column forward, and again in backward when checkpointing
    assert sum(runs[True]) == 2 * sum(runs[False]) > 0
    assert losses[True] == pytest.approx(losses[False], rel=1e-4)


def test_luyen_run_sends_a_retriever_to_luyen_train(tmp_path):
    from luyen import pipeline
    cfg = RunConfig.model_validate({"name": "r", "out": str(tmp_path / "r"), "train": {"task": "embedding"},
                                    "data": {"files": ["examples/data/airline_qa.csv"]}})
    with pytest.raises(LuyenError, match="luyen train"):
        pipeline.run(cfg)
    assert not (tmp_path / "r").exists()


def test_a_cross_lingual_encoder_alone_ranks_questions_in_another_language(trained, tmp_path):
    from luyen.rag.index import fuse
    cfg = RunConfig.model_validate({"rag": {"encoder": str(trained), "chunk_tokens": 40, "overlap_tokens": 0}})
    build_index(cfg, [write_docs(tmp_path / "docs")], tmp_path / "index")
    index = load_index(tmp_path / "index")
    assert json.loads((trained / "model" / "luyen-encoder.json").read_text())["cross_lingual"] is False
    english, marked = "what about the refund money back wifi", "Hoàn tiền vé mấy ngày?"
    assert index.lexical.kind(english) == "foreign" and index.lexical.kind(marked) == "marked"
    depth = index.settings["candidates"]
    both = lambda q: [r for r, _ in fuse([index.dense(q, depth), index.lexical.rank(q, depth)],
                                         [index.settings["dense_weight"], index.settings["bm25_weight"]],
                                         index.settings["rrf_k"])[:5]]
    dense = lambda q: [r for r, _ in index.dense(q, 5)]
    assert both(english) != dense(english)  # the rule below has something to change here
    assert [r for r, _ in index.rank(english, "hybrid", 5)] == both(english)  # not trained cross-lingually
    index.manifest["config"]["encoder"]["cross_lingual"] = True
    assert [r for r, _ in index.rank(english, "hybrid", 5)] == dense(english)
    assert [r for r, _ in index.rank(marked, "hybrid", 5)] == both(marked)


def test_a_lora_retriever_is_saved_with_its_adapters_merged(encoder_base, tmp_path):
    import numpy as np
    from safetensors import safe_open
    from sentence_transformers import SentenceTransformer

    from luyen.train import encoder as encoders
    from luyen.train.stage import run
    # no held-out queries, so the last weights ship whatever a held-out measure would say (on an AVX2 CPU,
    # in fp32, this one epoch lowered the held-out MRR and the untrained weights shipped: nothing to merge)
    cfg = retriever_config(encoder_base, write_docs(tmp_path / "docs"), queries=[str(write_queries(tmp_path / "q.jsonl"))],
                           val=0.0)
    cfg.train.method, cfg.train.epochs, cfg.train.lr = "lora", 1, 1e-2
    run(cfg, None, tmp_path / "out")
    with safe_open(str(tmp_path / "out" / "model" / "model.safetensors"), "pt") as f:
        assert not [k for k in f.keys() if "lora" in k or "base_layer" in k]
    text = ["what about the refund money back"]
    base, _ = encoders.build(cfg)
    saved = SentenceTransformer(str(tmp_path / "out" / "model"), device="cpu")
    assert not np.allclose(base.encode(text, prompt="query: "), saved.encode(text, prompt="query: "), atol=1e-3)


def test_grad_accum_trains_through_gradcache_with_the_whole_batch_as_negatives(encoder_base, tmp_path, monkeypatch):
    """train.grad_accum > 1: the batch of batch_size x grad_accum pairs is embedded batch_size rows of one
    column at a time (GradCache), and trains exactly as one forward of the whole batch does."""
    from luyen.train import encoder as encoders
    from luyen.train.stage import run
    wrap, rows = encoders.wrap, {}  # per grad_accum: the rows of every training forward (grad on or off)

    def counting(model, tc):
        model = wrap(model, tc)
        first = next(m for n, m in model.named_modules() if n.endswith("layers.0.mlp"))
        seen = rows.setdefault(tc.grad_accum, [])
        first.register_forward_hook(lambda m, args, out: seen.append((torch.is_grad_enabled(), args[0].shape[0])))
        return model
    monkeypatch.setattr(encoders, "wrap", counting)
    docs, queries = write_docs(tmp_path / "docs"), str(write_queries(tmp_path / "q.jsonl"))
    losses = {}
    for batch, accum in ((4, 1), (2, 2), (1, 4)):
        cfg = retriever_config(encoder_base, docs, queries=[queries])
        cfg.train.batch_size, cfg.train.grad_accum, cfg.train.max_steps, cfg.train.dtype = batch, accum, 3, "float32"
        m = run(cfg, None, tmp_path / f"out-{accum}")["metrics"]
        losses[accum] = (m["first_loss"], m["final_loss"])
    # the loss after two updates moves only if every mini-batch's cached gradient reached the weights
    assert losses[2] == pytest.approx(losses[1], rel=1e-5) and losses[4] == pytest.approx(losses[1], rel=1e-5)
    assert losses[1][1] < losses[1][0] - 0.5
    training = {a: [n for grad, n in seen if grad] for a, seen in rows.items()}
    assert max(training[1]) == 8  # the 4 queries, then their passages and mined negatives in one forward
    assert max(training[2]) == 2 and max(training[4]) == 1
    # each mini-batch twice: without gradients (the cache), then with them inside backward (3 columns x 2)
    assert sum(not grad for grad, n in rows[2] if n == 2) >= 3 * 6


def test_gradcache_replays_dropout_and_autocast_in_its_second_forward(encoder_base, tmp_path, monkeypatch):
    """The re-forward inside backward draws the first forward's dropout masks and runs under the run's bf16
    autocast, and the loss between them in fp32: else the cached gradients belong to other embeddings."""
    from sentence_transformers.sentence_transformer.losses import (
        CachedMultipleNegativesRankingLoss as Cached,
    )

    from luyen.train import embedding
    from luyen.train import encoder as encoders
    from luyen.train.stage import run
    calls, losses, inside = [], [], []  # (grad on?, embeddings) of every training forward; the loss; autocast in a layer
    forward, calculate, wrap = embedding._Autocast.forward, Cached.calculate_loss, encoders.wrap

    def spy(self, features):
        out = forward(self, features)
        calls.append((torch.is_grad_enabled(), out["sentence_embedding"].detach().clone()))
        return out

    def hooked(model, tc):
        model = wrap(model, tc)
        first = next(m for n, m in model.named_modules() if n.endswith("layers.0.mlp"))
        def note(m, *_):
            if m.training:
                inside.append(torch.is_autocast_enabled("cpu"))
        first.register_forward_hook(note)
        return model
    monkeypatch.setattr(encoders, "wrap", hooked)

    def loss_spy(self, reps, labels=None, **kw):
        losses.append((torch.is_autocast_enabled("cpu"), {r.dtype for col in reps for r in col}))
        return calculate(self, reps, labels, **kw)
    monkeypatch.setattr(embedding._Autocast, "forward", spy)
    monkeypatch.setattr(Cached, "calculate_loss", loss_spy)
    cfg = retriever_config(encoder_base, write_docs(tmp_path / "docs"), queries=[str(write_queries(tmp_path / "q.jsonl"))])
    cfg.train.method, cfg.train.lora.dropout, cfg.train.dtype = "lora", 0.5, "bfloat16"
    cfg.train.batch_size, cfg.train.grad_accum, cfg.train.max_steps = 2, 2, 2
    run(cfg, None, tmp_path / "out")
    first = [e for grad, e in calls if not grad]
    second = [e for grad, e in calls if grad]
    assert len(first) == len(second) == 2 * 3 * 2  # 2 steps x 3 columns x 2 mini-batches
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    assert len(inside) == 2 * len(first) and all(inside)  # both forwards under bf16 autocast
    assert all(e.dtype == torch.float32 for _, e in calls) and losses == [(False, {torch.float32})] * 2


def test_an_encoders_lora_drops_out_through_the_fast_dropout(encoder_base, tmp_path):
    """The LM's LoRA and the encoder's draw dropout masks the same way (torch's bernoulli_ had taken 55% of
    a Gemma encoder's forward on the AMX machine)."""
    from luyen.train import encoder as encoders
    from luyen.train.lora import FastDropout
    cfg = retriever_config(encoder_base, write_docs(tmp_path / "docs"))
    cfg.train.method, cfg.train.lora.dropout = "lora", 0.1
    model = encoders.wrap(encoders.build(cfg)[0], cfg.train)
    drops = [m for n, m in model.named_modules() if ".lora_dropout." in n]
    assert drops and all(isinstance(m, FastDropout) and m.p == 0.1 for m in drops)
