"""`luyen export` of task-head runs (classification, extractive QA, seq2seq): ONNX graphs that onnxruntime
runs like transformers, int8 copies with their task scores, the merged folder, and GGUF refused."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from luyen.config import load_config
from luyen.errors import LuyenError
from luyen.export.stage import run
from luyen.tasks.onnx import GRAPHS, SCORE, TOLERANCE, OrtGraph, OrtHead, check_items, int8_name
from luyen.tasks.predictor import Predictor

TASKS = ("classification", "extractive_qa", "seq2seq")
TEXTS = ["kg vali hành lý", "Tôi muốn hoàn tiền vé vì chuyến bay bị hủy hôm qua", "làm thủ tục ở quầy nào",
         "hoàn vé", "giờ quầy làm thủ tục đóng trước bao lâu vậy"]  # of different lengths: a padded batch
QA = [{"question": "Hành lý xách tay tối đa bao nhiêu?", "context": "vé giờ. Hành lý xách tay tối đa 12 kg mỗi khách. ghế."},
      {"question": "Hành lý xách tay tối đa bao nhiêu? 7", "context": "Hành lý xách tay tối đa 30 kg mỗi khách."}]


def cfg():
    return load_config(None, [])


@pytest.fixture(scope="module")
def exported(tiny_head_runs, tmp_path_factory) -> dict:
    """{task: (export folder, manifest)}: each tiny head run exported to ONNX with an int8 copy."""
    root = tmp_path_factory.mktemp("head_onnx")
    return {t: (root / t, run(cfg(), tiny_head_runs[t], root / t, fmt="onnx", quant=["int8"])) for t in TASKS}


def items_of(task: str) -> list[dict]:
    return QA if task == "extractive_qa" else [{"text": t} for t in TEXTS]


@pytest.mark.parametrize("task", TASKS)
def test_onnx_export_reproduces_transformers_and_records_int8_scores(exported, tiny_head_data, task):
    out, manifest = exported[task]
    m = manifest["metrics"]
    assert manifest["stage"] == "export" and m["head"] is True and m["task"] == task and (out / "manifest.json").is_file()
    graphs = list(GRAPHS[task])
    assert m["files"] == {"fp32": graphs, "int8": [int8_name(g) for g in graphs]}
    assert set(graphs + ["luyen_task.json", "tokenizer.json", "config.json"]) <= set(manifest["outputs"])
    assert not [p for p in out.iterdir() if p.name.endswith(".safetensors") or p.name.startswith(".")]
    # the check ran the run's own test split, and fp32 is transformers to rounding
    n = len((tiny_head_data[task] / "test.jsonl").read_text(encoding="utf-8").splitlines())
    assert m["check_inputs"] == f"{n} test records of {tiny_head_data[task]}"
    assert m["max_abs_diff"]["fp32"] < 1e-4 and m["agreement"]["fp32"] == 1.0
    score = m[SCORE[task]]
    assert score["fp32"] == score["transformers"] and set(score) == {"transformers", "fp32", "int8"}
    # the int8 copy: smaller, quantised, its agreement and task score recorded
    for g in graphs:
        assert (out / int8_name(g)).stat().st_size == m["bytes"][int8_name(g)] < m["bytes"][g] == (out / g).stat().st_size
    assert 0 <= m["agreement"]["int8"] <= 1 and 0 < m["max_abs_diff"]["int8"] < 1 and 0 <= score["int8"] <= 100
    json.dumps(m)


@pytest.mark.parametrize("task", TASKS)
def test_graphs_take_dynamic_batch_and_sequence_axes(exported, task):
    import onnx
    out, _ = exported[task]
    for name in GRAPHS[task]:
        graph = onnx.load(str(out / name), load_external_data=False).graph
        for i in graph.input:
            dims = i.type.tensor_type.shape.dim
            assert dims[0].dim_param and dims[1].dim_param, (name, i.name)
    model = onnx.load(str(out / GRAPHS[task][0]), load_external_data=False).graph
    names, outputs = [i.name for i in model.input], [o.name for o in model.output]
    if task == "seq2seq":
        dec = onnx.load(str(out / "decoder.onnx"), load_external_data=False).graph
        assert names == ["input_ids", "attention_mask"] and outputs == ["last_hidden_state"]
        assert [i.name for i in dec.input] == ["input_ids", "encoder_hidden_states", "encoder_attention_mask"]
        assert [o.name for o in dec.output] == ["logits"]
    else:  # BERT reads its segment ids
        assert names == ["input_ids", "attention_mask", "token_type_ids"]
        assert outputs == (["logits"] if task == "classification" else ["start_logits", "end_logits"])


@pytest.mark.parametrize("task", ["classification", "extractive_qa"])
def test_onnxruntime_logits_equal_transformers_on_a_padded_batch(exported, tiny_head_runs, task):
    """Measured here, not read from the manifest: a right-padded batch through the graph and the model."""
    import onnxruntime as ort
    from transformers import AutoTokenizer
    out, _ = exported[task]
    p = Predictor.load(tiny_head_runs[task])
    tok = AutoTokenizer.from_pretrained(out)
    if task == "classification":
        enc = tok(TEXTS, padding=True, return_tensors="np")
    else:
        enc = tok([q["question"] for q in QA], [q["context"] for q in QA], padding=True, return_tensors="np")
    assert (enc["attention_mask"] == 0).any()  # padding the graph must mask
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {i.name: enc[i.name].astype(np.int64) for i in session.get_inputs()})
    with torch.no_grad():
        want = p.model(**{k: torch.from_numpy(v) for k, v in enc.items()})
    keys = ["logits"] if task == "classification" else ["start_logits", "end_logits"]
    for g, k in zip(got, keys):
        np.testing.assert_allclose(g, want[k].numpy(), atol=1e-4)


def test_seq2seq_graphs_give_transformers_logits(exported, tiny_head_runs):
    import onnxruntime as ort
    out, _ = exported["seq2seq"]
    p = Predictor.load(tiny_head_runs["seq2seq"])
    enc = p.tokenizer(["summarize: " + t for t in TEXTS[:3]], padding=True, return_tensors="np")
    dec = np.array([[0, 7, 9, 11], [0, 5, 5, 20], [0, 30, 2, 0]], np.int64)
    encoder = ort.InferenceSession(str(out / "encoder.onnx"), providers=["CPUExecutionProvider"])
    decoder = ort.InferenceSession(str(out / "decoder.onnx"), providers=["CPUExecutionProvider"])
    mask = enc["attention_mask"].astype(np.int64)
    hidden = encoder.run(None, {"input_ids": enc["input_ids"].astype(np.int64), "attention_mask": mask})[0]
    logits = decoder.run(None, {"input_ids": dec, "encoder_hidden_states": hidden, "encoder_attention_mask": mask})[0]
    with torch.no_grad():
        want = p.model(input_ids=torch.from_numpy(enc["input_ids"]), attention_mask=torch.from_numpy(mask),
                       decoder_input_ids=torch.from_numpy(dec)).logits.numpy()
    np.testing.assert_allclose(logits, want, atol=1e-4)


def test_exported_classifier_labels_equal_the_predictors(exported, tiny_head_runs):
    """A consumer with only the export folder (onnxruntime, tokenizer, config.json) gets Predictor's labels."""
    import onnxruntime as ort
    from transformers import AutoConfig, AutoTokenizer
    out, _ = exported["classification"]
    want = Predictor.load(tiny_head_runs["classification"]).predict(items_of("classification"))
    tok, config = AutoTokenizer.from_pretrained(out), AutoConfig.from_pretrained(out)
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    labels = []
    for text in TEXTS:  # one at a time: no padding at all
        enc = tok(text, truncation=True, max_length=256, return_tensors="np")
        logits = session.run(["logits"], {i.name: enc[i.name].astype(np.int64) for i in session.get_inputs()})[0]
        labels.append(config.id2label[int(logits[0].argmax())])
    assert labels == [w["label"] for w in want]
    assert len(set(labels)) > 1  # the tiny classifier tells the inputs apart, so equality means something


@pytest.mark.parametrize("task", TASKS)
def test_ort_head_predicts_what_the_predictor_predicts(exported, tiny_head_runs, task):
    out, _ = exported[task]
    items = items_of(task)
    want = Predictor.load(tiny_head_runs[task]).predict(items)
    got = OrtHead(out).predict(items)
    key = {"classification": "label", "extractive_qa": "answer", "seq2seq": "summary"}[task]
    assert [g[key] for g in got] == [w[key] for w in want]
    if task == "classification":
        for g, w in zip(got, want):
            assert g["probabilities"] == pytest.approx(w["probabilities"], abs=1e-4)
    assert len(OrtHead(out, "int8").predict(items)) == len(items)


def test_int8_graphs_hold_int8_weights(exported):
    import onnx
    out, _ = exported["classification"]
    ops = [n.op_type for n in onnx.load(str(out / "model_int8.onnx")).graph.node]
    assert ops.count("MatMulInteger") >= 8 and "DynamicQuantizeLinear" in ops  # every linear layer, head included


def test_gguf_of_a_head_run_is_a_one_line_error(tiny_head_runs, tmp_path):
    with pytest.raises(LuyenError, match="GGUF is for decoder chat models") as e:
        run(cfg(), tiny_head_runs["classification"], tmp_path / "gguf", fmt="gguf")
    assert "\n" not in str(e.value) and "--format onnx" in str(e.value) and "merged" in str(e.value)
    assert not (tmp_path / "gguf").exists()


def test_unknown_quantisation_is_refused_before_any_work(tiny_head_runs, tmp_path):
    with pytest.raises(LuyenError, match="int4"):
        run(cfg(), tiny_head_runs["classification"], tmp_path / "onnx", fmt="onnx", quant=["int4"])
    assert not (tmp_path / "onnx").exists()


def test_a_graph_that_strays_from_transformers_fails_the_export(tiny_head_runs, tmp_path, monkeypatch):
    """One logit off by more than the tolerance: no export folder, a one-line error naming the difference."""
    call = OrtGraph.__call__

    def off(self, **batch):
        out = call(self, **batch)
        out.logits[0, 0] += 2 * TOLERANCE
        return out
    monkeypatch.setattr(OrtGraph, "__call__", off)
    with pytest.raises(LuyenError, match="max .logit difference. 0.002") as e:
        run(cfg(), tiny_head_runs["classification"], tmp_path / "onnx", fmt="onnx")
    assert "\n" not in str(e.value) and not (tmp_path / "onnx").exists()


def test_merged_head_export_is_the_model_folder_and_loads(tiny_head_runs, tmp_path):
    src = tiny_head_runs["extractive_qa"] / "model"
    manifest = run(cfg(), tiny_head_runs["extractive_qa"], tmp_path / "merged", fmt="merged")
    out = tmp_path / "merged"
    assert manifest["metrics"]["loads"] is True and manifest["metrics"]["task"] == "extractive_qa"
    for f in src.iterdir():
        assert (out / f.name).read_bytes() == f.read_bytes()
    assert Predictor.load(out).predict(QA) == Predictor.load(src).predict(QA)
    with pytest.raises(LuyenError, match="not quantised"):
        run(cfg(), tiny_head_runs["extractive_qa"], tmp_path / "m2", fmt="merged", quant=["int8"])


def test_a_head_folder_without_its_data_is_checked_on_fixed_inputs(tiny_head_runs, tmp_path):
    """An export's merged folder has no test split beside it: the check uses fixed inputs and no score."""
    run(cfg(), tiny_head_runs["classification"], tmp_path / "merged", fmt="merged")
    items, gold, source = check_items(tmp_path / "merged", "classification")
    assert source == "fixed inputs" and gold is None and len(items) >= 4
    m = run(cfg(), tmp_path / "merged", tmp_path / "onnx", fmt="onnx")["metrics"]
    assert m["check_inputs"] == "fixed inputs" and "accuracy" not in m and m["max_abs_diff"]["fp32"] < 1e-4
    assert m["files"] == {"fp32": ["model.onnx"]}


def test_missing_onnx_libraries_end_in_the_install_hint(tiny_head_runs, tmp_path, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` raises ImportError
    with pytest.raises(LuyenError, match=r"needs onnxruntime. Fix: pip install 'luyen\[onnx\]'") as e:
        run(cfg(), tiny_head_runs["seq2seq"], tmp_path / "onnx", fmt="onnx")
    assert "\n" not in str(e.value) and not (tmp_path / "onnx").exists()
