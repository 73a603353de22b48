"""Task heads (train.task=classification | extractive_qa | seq2seq) through the shared loop, on tiny
random BERT, T5 and BART built locally: the task auto picks, what trains, that loss falls, exact resume,
prediction and its bad inputs."""
import json
import signal

import numpy as np
import pytest
import torch
from conftest import prepare_data, write_labelled, write_pairs, write_short_qa
from safetensors.torch import load_file

from luyen.config import load_config
from luyen.errors import LuyenError
from luyen.tasks import TASKS, resolve
from luyen.tasks.predictor import Predictor, predict_file
from luyen.train.methods import method_of
from luyen.train.stage import run


def _cfg(model, *extra):
    return load_config(None, [f"model.name={model}", "data.max_length=256", *extra])


def test_auto_picks_the_task_from_the_model_and_the_data(tiny_head_models, tiny_head_data, tiny_model_dir, tmp_path):
    bert, t5, bart = (tiny_head_models[a] for a in ("bert", "t5", "bart"))
    assert resolve(_cfg(bert), tiny_head_data["classification"]).name == "classification"
    assert resolve(_cfg(bert), tiny_head_data["extractive_qa"]).name == "extractive_qa"
    assert resolve(_cfg(t5), tiny_head_data["seq2seq"]).name == "seq2seq"
    pairs_for_bart = prepare_data(bart, tmp_path / "bart", write_pairs(tmp_path / "p.jsonl"))
    assert resolve(_cfg(bart), pairs_for_bart).name == "seq2seq"
    # a decoder learns anything as chat, and a classifier head when asked
    labelled = prepare_data(tiny_model_dir, tmp_path / "lab", write_labelled(tmp_path / "l.csv"))
    assert resolve(_cfg(tiny_model_dir), labelled).name == "causal"
    assert resolve(_cfg(tiny_model_dir, "train.task=classification"), labelled).name == "classification"


def test_impossible_pairings_are_one_line_errors(tiny_head_models, tiny_head_data, tiny_gemma_tokenizer_dir, tmp_path):
    bert, t5 = tiny_head_models["bert"], tiny_head_models["t5"]
    chat = prepare_data(bert, tmp_path / "chat", write_short_qa(tmp_path / "qa.jsonl", n=40))
    with pytest.raises(LuyenError) as e:
        resolve(_cfg(bert), chat)
    assert "encoder" in str(e.value) and "gemma3-270m" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(LuyenError, match="learns from labelled records, but the data holds pair"):
        resolve(_cfg(t5, "train.task=classification"), tiny_head_data["seq2seq"])
    with pytest.raises(LuyenError, match="train.task=seq2seq needs an encoder-decoder"):
        resolve(_cfg(bert, "train.task=seq2seq"), tiny_head_data["classification"])
    with pytest.raises(LuyenError, match="train.task=extractive_qa needs an encoder"):
        resolve(_cfg(tiny_gemma_tokenizer_dir, "train.task=extractive_qa"), tiny_head_data["extractive_qa"])  # no QA head


@pytest.mark.parametrize("task", ["classification", "extractive_qa", "seq2seq"])
def test_loss_falls_for_every_head(tiny_head_runs, task):
    manifest = json.loads((tiny_head_runs[task] / "manifest.json").read_text())
    m = manifest["metrics"]
    assert m["task"] == task and m["head"]
    assert manifest["wall_time_s"] >= m["loop_seconds"]  # the whole stage, not the writing of its files
    assert m["best_val_loss"] < 0.9 * m["initial_val_loss"], m
    spec = json.loads((tiny_head_runs[task] / "model" / "luyen_task.json").read_text())
    assert spec["task"] == task


def test_the_classifier_learns_its_labels_and_saves_them(tiny_head_runs):
    m = json.loads((tiny_head_runs["classification"] / "manifest.json").read_text())["metrics"]
    assert m["best_val"]["accuracy"] > 0.9 > m["initial_val"]["accuracy"]
    config = json.loads((tiny_head_runs["classification"] / "model" / "config.json").read_text())
    assert sorted(config["id2label"].values()) == ["baggage", "checkin", "refund"]


def _wrapped(model_dir, data_dir, task, *extra):
    from luyen.tasks.train import source
    cfg = _cfg(model_dir, f"train.task={task}", *extra)
    folder, tok = source(cfg)
    impl = TASKS[task].impl()
    from luyen.data.stage import read_split
    train = read_split(data_dir, "train")
    spec = {"max_length": 128, **impl.spec(train, read_split(data_dir, "val"), cfg, tok, folder)}
    return method_of(cfg.train).head(impl.load(folder, spec, dtype=torch.float32), cfg.train, TASKS[task].peft_task)


def test_lora_trains_adapters_and_the_whole_head_and_nothing_else(tiny_head_models, tiny_head_data):
    for task, head in (("classification", "classifier"), ("extractive_qa", "qa_outputs")):
        model = _wrapped(tiny_head_models["bert"], tiny_head_data[task], task, "train.method=lora")
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        assert any(f"{head}.modules_to_save" in n for n in trainable), sorted(trainable)
        assert all("lora_" in n or "modules_to_save" in n for n in trainable), sorted(trainable)
        assert not any(head in n and "lora_" in n for n in trainable)  # the head is trained whole, not adapted
    model = _wrapped(tiny_head_models["bert"], tiny_head_data["classification"], "classification", "train.method=freeze",
                     "train.freeze_layers_but=1")
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any(n.startswith("classifier.") for n in trainable) and any(".layer.1." in n for n in trainable)
    assert not any(".layer.0." in n or "embeddings" in n for n in trainable)


def test_balanced_class_weights_follow_the_label_counts(tiny_head_models, tmp_path):
    import csv
    src = tmp_path / "imbalanced.csv"
    with open(src, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for i in range(60):
            w.writerow([f"tin nhắn số {i} về {'hành lý' if i % 4 else 'hoàn tiền'}", "baggage" if i % 4 else "refund"])
    data = prepare_data(tiny_head_models["bert"], tmp_path / "d", src)
    from luyen.data.stage import read_split
    from luyen.tasks import classify
    train = read_split(data, "train")
    spec = classify.spec(train, [], _cfg(tiny_head_models["bert"], "train.head.class_weights=balanced"), None, None)
    counts = dict(zip(spec["labels"], spec["counts"]))
    assert spec["class_weights"] == pytest.approx([len(train) / (2 * counts[k]) for k in spec["labels"]])
    assert spec["class_weights"][spec["labels"].index("refund")] > 1 > spec["class_weights"][spec["labels"].index("baggage")]
    # the weighted loss is the sum of each example's weight x its cross-entropy
    obj = classify.Objective(spec)
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    model = lambda **kw: type("Out", (), {"logits": logits})()  # noqa: E731
    batch = {"input_ids": torch.zeros(2, 3, dtype=torch.long), "attention_mask": torch.ones(2, 3, dtype=torch.long),
             "labels": torch.tensor([0, 1])}
    loss, n, _ = obj.loss(model, None, batch, 0, torch.device("cpu"), None, {})
    ce = torch.nn.functional.cross_entropy(logits, batch["labels"], reduction="none")
    assert n == 2 and float(loss) == pytest.approx(float((ce * torch.tensor(spec["class_weights"])).sum()))


def test_answer_offsets_map_to_the_answer_tokens_and_long_contexts_are_windowed(tiny_head_models):
    from transformers import AutoTokenizer

    from luyen.tasks.extract import _target, windows
    tok = AutoTokenizer.from_pretrained(tiny_head_models["bert"])
    context = ("Khách hạng phổ thông được mang theo một kiện. " * 12 + "Hành lý xách tay tối đa 12 kg mỗi khách. "
               + "Quầy làm thủ tục đóng trước giờ bay. " * 12)
    answer = {"text": "12 kg", "start": context.index("12 kg")}
    spec = {"max_length": 64, "doc_stride": 16}
    wins = windows(tok, "Hành lý xách tay tối đa bao nhiêu?", context, spec)
    assert len(wins) > 3
    found = 0
    for w in wins:
        s, e = _target(w, [answer])
        if (s, e) != (0, 0):
            found += 1
            a, b = w["offsets"][s][0], w["offsets"][e][1]
            assert context[a:b] == "12 kg"
        assert _target(w, []) == (0, 0)  # unanswerable: the [CLS] position
    assert found >= 1
    # consecutive windows overlap by the stride
    ctx = [np.asarray(w["offsets"])[w["context"]] for w in wins[:2]]
    assert ctx[1][0][0] < ctx[0][-1][1]


def test_predictions_of_every_head(tiny_head_runs, tiny_head_data):
    from luyen.data.stage import read_split
    import luyen
    clf = luyen.load(tiny_head_runs["classification"])
    out = clf.predict([{"text": "vali kiện cân túi"}, {"text": "refund trả lại cash"}])
    assert [o["label"] for o in out] == ["baggage", "refund"]
    assert all(sum(o["probabilities"].values()) == pytest.approx(1, abs=1e-4) for o in out)
    qa = Predictor.load(tiny_head_runs["extractive_qa"])
    test = read_split(tiny_head_data["extractive_qa"], "test")
    got = qa.predict([{"question": r["question"], "context": r["context"]} for r in test])
    for r, o in zip(test, got):
        assert o["answer"] == r["context"][o["start"]:o["start"] + len(o["answer"])]
    assert np.mean([o["answer"] == r["answers"][0]["text"] for r, o in zip(test, got)]) >= 0.5
    s2s = Predictor.load(tiny_head_runs["seq2seq"])
    assert isinstance(s2s.predict([{"text": "học máy mô hình dữ liệu. vé hành lý."}])[0]["summary"], str)


def test_predict_file_and_its_bad_inputs(tiny_head_runs, tmp_path):
    from typer.testing import CliRunner

    from luyen.cli import app
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": 7, "text": "refund trả lại cash"}\n{"text": "vali kiện"}\n', encoding="utf-8")
    p = Predictor.load(tiny_head_runs["classification"])
    done = predict_file(p, src, tmp_path / "out.jsonl")
    rows = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert done["inputs"] == 2 and rows[0]["id"] == 7 and rows[0]["label"] == "refund"
    for bad, line, what in (('{"text": "ok"}\n{"txt": "wrong field"}\n', 2, "field 'text'"),
                            ('{"text": "   "}\n', 1, "non-empty"), ('{"text": "a"}\nnot json\n', 2, "not JSON")):
        src.write_text(bad, encoding="utf-8")
        r = CliRunner().invoke(app, ["predict", "-m", str(tiny_head_runs["classification"]), "-i", str(src),
                                     "-o", str(tmp_path / "bad.jsonl")])
        assert r.exit_code == 2, r.output
        assert f"in.jsonl:{line}:" in r.output and what in r.output and "Traceback" not in r.output
        assert not (tmp_path / "bad.jsonl").exists()  # nothing half-written
    with pytest.raises(LuyenError, match="at most"):
        p.predict([{"text": "x"}] * 2000)
    with pytest.raises(LuyenError, match="'question'"):
        Predictor.load(tiny_head_runs["extractive_qa"]).predict([{"text": "no question"}])


@pytest.mark.parametrize("task", ["classification", "extractive_qa", "seq2seq"])
def test_head_resume_after_sigkill_is_exact(tmp_path, tiny_head_models, tiny_head_data, task):
    from conftest import HEAD_CASES
    from test_train_cli import start, wait_for_checkpoint
    extra = [f"model.name={tiny_head_models[HEAD_CASES[task][0]]}", "data.max_length=256", "train.method=lora",
             "train.batch_size=4", "train.max_steps=150", "train.save_steps=5", "train.lr=1e-3"]
    data = tiny_head_data[task]
    ref = run(load_config(None, extra), data, tmp_path / "ref")
    out = tmp_path / "killed"
    proc = start(data, out, *extra)
    wait_for_checkpoint(proc, out)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "manifest.json").exists()
    resumed = start(data, out, *extra, resume=True)
    said, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-2000:]
    assert "resumed from step-" in said + err
    got = json.loads((out / "manifest.json").read_text())["metrics"]
    assert got["final_train_loss"] == pytest.approx(ref["metrics"]["final_train_loss"], rel=1e-5)
    wa, wb = (load_file(str(p / "model" / "model.safetensors")) for p in (out, tmp_path / "ref"))
    assert wa.keys() == wb.keys() and all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wb)


def test_a_decoder_with_a_classification_head(tiny_gemma_tokenizer_dir, tmp_path):
    """Gemma-3 (here a tiny random one) as the second classifier option: its last real token is read."""
    data = prepare_data(tiny_gemma_tokenizer_dir, tmp_path / "d", write_labelled(tmp_path / "l.csv"))
    cfg = _cfg(tiny_gemma_tokenizer_dir, "train.task=classification", "train.method=lora", "train.max_steps=8",
               "train.batch_size=8", "train.grad_accum=1")
    m = run(cfg, data, tmp_path / "run")["metrics"]
    assert m["task"] == "classification" and m["params_trainable"] < m["params_total"]
    p = Predictor.load(tmp_path / "run")
    assert type(p.model).__name__ == "Gemma3TextForSequenceClassification"
    # padding must not change a label: a text alone and beside a longer one get the same probabilities
    alone = p.predict([{"text": "vali kiện"}])[0]["probabilities"]
    padded = p.predict([{"text": "vali kiện"}, {"text": "refund trả lại cash " * 8}])[0]["probabilities"]
    assert all(abs(alone[k] - padded[k]) < 1e-4 for k in alone)


def test_summaries_train_a_t5_with_its_prefix_and_lora_adapts_only_its_layers(tiny_head_models, tmp_path):
    """examples/data/summaries.jsonl (our document/summary pairs) -> seq2seq on a tiny T5."""
    from pathlib import Path
    src = Path(__file__).resolve().parents[2] / "examples" / "data" / "summaries.jsonl"
    t5 = tiny_head_models["t5"]
    data = prepare_data(t5, tmp_path / "d", src, "data.max_length=16384")  # the tiny tokenizer spends many tokens
    assert resolve(_cfg(t5), data).name == "seq2seq"
    m = run(_cfg(t5, "data.max_length=16384", "train.method=lora", "train.max_steps=12", "train.lr=3e-3",
                 "train.eval_steps=6", "train.batch_size=4", "train.grad_accum=1"), data, tmp_path / "run")["metrics"]
    assert m["best_val_loss"] < m["initial_val_loss"] and m["params_trainable"] < 0.5 * m["params_total"]
    spec = json.loads((tmp_path / "run" / "model" / "luyen_task.json").read_text())
    assert spec["source_prefix"] == "summarize: " and spec["max_new_tokens"] >= 8
    model = _wrapped(t5, data, "seq2seq", "train.method=lora")
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)


@pytest.mark.parametrize("method", ["qlora", "prompt", "dpo"])
def test_a_method_that_cannot_train_a_head_is_refused_by_name(tiny_head_models, tiny_head_data, tmp_path, method):
    """A soft prompt, a 4-bit base or a preference objective has no way to train a classifier head: the
    stage says which methods do before it loads anything (the list comes from the methods' own records)."""
    cfg = _cfg(tiny_head_models["bert"], "train.task=classification", f"train.method={method}")
    with pytest.raises(LuyenError, match=f"trains with full, lora, freeze, not {method}") as e:
        run(cfg, tiny_head_data["classification"], tmp_path / "run")
    assert e.value.field == "train.method" and not (tmp_path / "run").exists()
