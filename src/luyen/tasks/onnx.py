"""ONNX export of a task head (classification, extractive QA, seq2seq), checked against transformers.

    metrics = export(Path("runs/intents/train/model"), Path("runs/intents/export/onnx"), ["int8"], console)
    OrtHead("runs/intents/export/onnx").predict([{"text": "Tôi muốn hoàn vé"}])   # as Predictor.predict

Graphs (``torch.onnx.export``, dynamo, as luyen.export.onnx; batch and sequence axes dynamic): model.onnx
``input_ids, attention_mask (, token_type_ids) -> logits`` (classification) or ``-> start_logits,
end_logits`` (extractive QA); seq2seq: encoder.onnx ``input_ids, attention_mask -> last_hidden_state``
and decoder.onnx without a cache ``input_ids, encoder_hidden_states, encoder_attention_mask -> logits``,
decoded greedily in numpy (the whole prefix each step). ``int8``: a dynamically quantised copy of each
graph (``*_int8.onnx``). The tokenizer, config and luyen_task.json are copied beside the graphs.

The check runs the run's test split (up to 64 examples; a few fixed inputs when the data cannot be
found) through transformers and each graph: the largest |logit difference| (fp32 must stay under 1e-3,
else the export fails), the agreement (same argmax label; same start and end argmax per window; same
greedy tokens) and the task's score (accuracy, exact match, ROUGE-L) per precision.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from luyen.errors import LuyenError
from luyen.export.onnx import file_bytes, quantize_int8, require_onnx, save_graph
from luyen.tasks import TASKS, read_spec

GRAPHS = {"classification": ("model.onnx",), "extractive_qa": ("model.onnx",), "seq2seq": ("encoder.onnx", "decoder.onnx")}
OUTPUTS = {"classification": ("logits",), "extractive_qa": ("start_logits", "end_logits")}
SCORE = {"classification": "accuracy", "extractive_qa": "exact_match", "seq2seq": "rougeL"}
KINDS = {"classification": "labelled", "extractive_qa": "extractive", "seq2seq": "pair"}
TOLERANCE = 1e-3     # the largest |logit difference| an fp32 graph may show against transformers
CHECK_EXAMPLES = 64  # test records the check runs
BATCH = 16
WEIGHT_FILES = (".safetensors", ".bin", ".pt", ".pth", ".msgpack", ".h5")  # not copied: the graphs hold them
# Inputs for the check when the run's test split cannot be found (no gold answers: no task score).
TEXTS = ["Hành lý xách tay tối đa 7 kg mỗi khách.", "Tôi muốn hoàn tiền vé vì chuyến bay bị hủy.",
         "Quầy làm thủ tục đóng trước giờ khởi hành 40 phút.", "Machine learning is a branch of artificial intelligence.",
         "Hà Nội là thủ đô của Việt Nam, nằm ở đồng bằng sông Hồng.", "Can I change my seat after check-in?"]
QUESTIONS = [("Hành lý xách tay tối đa bao nhiêu?", TEXTS[0] + " Hành lý ký gửi tối đa 23 kg."),
             ("Quầy đóng khi nào?", TEXTS[2] + " Khách đến muộn phải đổi vé."),
             ("What is machine learning?", TEXTS[3] + " It learns patterns from data."),
             ("Thủ đô của Việt Nam là gì?", TEXTS[4])]


def int8_name(name: str) -> str:
    return name.replace(".onnx", "_int8.onnx")


def check_quant(quant: list[str] | None) -> list[str]:
    unknown = sorted(set(quant or []) - {"int8"})
    if unknown:
        raise LuyenError(f"unknown ONNX quantisation {unknown}", field="export.quant", fix="use 'int8' or nothing")
    return list(quant or [])


def export(folder: Path, out_dir: Path, quant: list[str], console=None, data_dir: Path | None = None) -> dict:
    """Export the head model folder ``folder`` (a run's model/) into ``out_dir`` (the stage's staged folder),
    check it against transformers on ``data_dir``'s test split (default: the run's own data) and return
    the metrics."""
    require_onnx()
    from transformers import AutoTokenizer
    quant = check_quant(quant)
    say = console.print if console is not None else (lambda *a, **k: None)
    folder, out_dir, spec = Path(folder), Path(out_dir), read_spec(folder)
    task = spec["task"]
    model, tok = TASKS[task].impl().load(folder, spec, dtype=torch.float32).eval(), AutoTokenizer.from_pretrained(folder)
    out_dir.mkdir(parents=True, exist_ok=True)
    say(f"exporting the {task} head {folder} to ONNX")
    start = time.perf_counter()
    paths = export_graphs(model, tok, task, out_dir)
    metrics = {"task": task, "export_s": round(time.perf_counter() - start, 1), "files": {"fp32": [p.name for p in paths]}}
    if "int8" in quant:
        say("quantising to INT8 (dynamic, per channel)")
        for p in paths:
            quantize_int8(p, out_dir / int8_name(p.name))
        metrics["files"]["int8"] = [int8_name(p.name) for p in paths]
    for f in sorted(folder.iterdir()):
        if f.is_file() and not f.name.endswith(WEIGHT_FILES) and not f.name.startswith("."):
            shutil.copyfile(f, out_dir / f.name)
    metrics["bytes"] = {name: file_bytes(out_dir / name) for names in metrics["files"].values() for name in names}
    items, gold, source = check_items(folder, task, data_dir)
    say(f"checking the export against transformers on {len(items)} inputs ({source})")
    metrics.update(compare(model, tok, spec, out_dir, list(metrics["files"]), items, gold), check_inputs=source)
    if not metrics["max_abs_diff"]["fp32"] < TOLERANCE:
        raise LuyenError(f"the ONNX graph does not reproduce transformers: max |logit difference| "
                         f"{metrics['max_abs_diff']['fp32']:.3g} >= {TOLERANCE:g}", file=str(folder),
                         fix="export --format merged and serve it with transformers; report the model type")
    return metrics


# --- graphs ---------------------------------------------------------------------------------------------

class _Encoder(torch.nn.Module):
    """A classifier or QA model as a function of its input tensors, returning its logits as a tuple."""

    def __init__(self, model, keys=(), outputs=()):
        super().__init__()
        self.model, self.keys, self.outputs = model, keys, outputs

    def forward(self, *tensors):
        out = self.model(**dict(zip(self.keys, tensors)))
        return tuple(getattr(out, k) for k in self.outputs)


class _Seq2SeqEncoder(_Encoder):
    def forward(self, input_ids, attention_mask):
        return self.model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


class _Seq2SeqDecoder(_Encoder):
    """The decoder and its output layer over given encoder states, without a cache."""

    def forward(self, input_ids, encoder_hidden_states, encoder_attention_mask):
        return self.model(encoder_outputs=(encoder_hidden_states,), attention_mask=encoder_attention_mask,
                          decoder_input_ids=input_ids, use_cache=False).logits


def input_names(model, tokenizer) -> list[str]:
    """input_ids, attention_mask, and token_type_ids when both the model and its tokenizer use them (BERT)."""
    import inspect
    names = ["input_ids", "attention_mask"]
    if "token_type_ids" in inspect.signature(model.forward).parameters and "token_type_ids" in tokenizer.model_input_names:
        names.append("token_type_ids")
    return names


def export_graphs(model, tokenizer, task: str, out_dir: Path) -> list[Path]:
    """The task's graph(s) in out_dir, each checked by onnx.checker."""
    # Sample sizes above 1 and all different: torch.export specialises sizes 0 and 1 and may tie equal ones.
    b, s, t = 2, 7, 5
    ids = torch.randint(5, min(100, model.config.vocab_size), (b, s))
    mask = torch.tensor([[1] * s, [1] * (s - 2) + [0, 0]])  # one padded row
    batch, seq, dec = torch.export.Dim("batch"), torch.export.Dim("sequence"), torch.export.Dim("decoder_sequence")
    if task != "seq2seq":
        names = input_names(model, tokenizer)
        args = (ids, mask, torch.zeros(b, s, dtype=torch.long))[:len(names)]
        path = out_dir / GRAPHS[task][0]
        save_graph(_Encoder(model, names, OUTPUTS[task]), args, names, list(OUTPUTS[task]),
                (tuple({0: batch, 1: seq} for _ in names),), path, model)
        return [path]
    paths = [out_dir / name for name in GRAPHS[task]]
    save_graph(_Seq2SeqEncoder(model), (ids, mask), ["input_ids", "attention_mask"], ["last_hidden_state"],
            ({0: batch, 1: seq}, {0: batch, 1: seq}), paths[0], model)
    hidden = _Seq2SeqEncoder(model)(ids, mask).detach()
    save_graph(_Seq2SeqDecoder(model), (torch.randint(5, 50, (b, t)), hidden, mask),
            ["input_ids", "encoder_hidden_states", "encoder_attention_mask"], ["logits"],
            ({0: batch, 1: dec}, {0: batch, 1: seq}, {0: batch, 1: seq}), paths[1], model)
    return paths


# --- onnxruntime ----------------------------------------------------------------------------------------

def session(path: Path):
    import onnxruntime as ort
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


class OrtGraph:
    """A classifier or QA graph behind the call the task modules make of a transformers head
    (``model(**inputs).logits``), so that their own ``predict`` (post-processing and all) runs it."""

    def __init__(self, path: Path):
        self.session = session(path)
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.outputs = [o.name for o in self.session.get_outputs()]

    def parameters(self):
        return iter([torch.zeros(0)])  # the device the task modules put inputs on: the CPU

    def __call__(self, **batch):
        ids = batch["input_ids"].numpy()
        feed = {n: batch[n].numpy() if n in batch else np.zeros_like(ids) for n in self.inputs}
        return SimpleNamespace(**{k: torch.from_numpy(v) for k, v in zip(self.outputs, self.session.run(None, feed))})


class OrtSeq2Seq:
    """encoder.onnx and decoder.onnx as ``encode`` and ``decode`` (numpy in, numpy out)."""

    def __init__(self, encoder: Path, decoder: Path):
        self.encoder, self.decoder = session(encoder), session(decoder)

    def encode(self, ids, mask):
        return self.encoder.run(None, {"input_ids": ids, "attention_mask": mask})[0]

    def decode(self, seq, hidden, mask):
        return self.decoder.run(None, {"input_ids": seq, "encoder_hidden_states": hidden, "encoder_attention_mask": mask})[0]

    def greedy(self, ids: np.ndarray, mask: np.ndarray, n: int, start: int, eos: int, pad: int) -> list[list[int]]:
        """Plain greedy decoding of a right-padded batch: up to n tokens per row after `start`, ending with EOS
        (the argmax alone: a generation_config's processors, BART's forced EOS, are not applied)."""
        hidden = self.encode(ids, mask)
        seq, done = np.full((len(ids), 1), start, np.int64), np.zeros(len(ids), bool)
        for _ in range(n):
            nxt = np.where(done, pad, self.decode(seq, hidden, mask)[:, -1].argmax(-1)).astype(np.int64)
            seq, done = np.concatenate([seq, nxt[:, None]], 1), done | (nxt == eos)
            if done.all():
                break
        return [r[:r.index(eos) + 1] if eos in r else r for r in (row[1:] for row in seq.tolist())]


class TorchSeq2Seq:
    """transformers' own generate, and its whole forward pass as ``decode`` (of the source ids): the check's
    reference, sharing no code with the graphs or the numpy decoder."""

    def __init__(self, model):
        self.model = model

    @torch.no_grad()
    def decode(self, seq, ids, mask):
        return self.model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                          decoder_input_ids=torch.from_numpy(seq), use_cache=False).logits.numpy()

    @torch.no_grad()
    def greedy(self, ids, mask, n: int, start: int, eos: int, pad: int) -> list[list[int]]:
        from transformers import GenerationConfig
        plain = GenerationConfig(decoder_start_token_id=start, eos_token_id=eos, pad_token_id=pad, max_new_tokens=n,
                                 do_sample=False, num_beams=1)
        saved, self.model.generation_config = self.model.generation_config, plain  # generate merges it in otherwise
        try:
            rows = self.model.generate(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).tolist()
        finally:
            self.model.generation_config = saved
        return [r[1:r.index(eos, 1) + 1] if eos in r[1:] else r[1:] for r in rows]


def encode_sources(tok, spec: dict, texts: list[str]):
    """The sources' ids (prefix added, cut to max_length) as one right-padded batch: ids, mask (numpy)."""
    from luyen.tasks.train import HeadExample, inputs
    rows = [tok(spec["source_prefix"] + t, truncation=True, max_length=spec["max_length"])["input_ids"] for t in texts]
    batch = inputs([HeadExample(np.asarray(r, dtype=np.int64), {}) for r in rows], tok.pad_token_id or 0)
    return batch["input_ids"].numpy(), batch["attention_mask"].numpy()


def generate(backend, model_config, tok, spec: dict, texts: list[str], n: int | None = None) -> list[list[int]]:
    c, out = model_config, []
    for i in range(0, len(texts), BATCH):
        ids, mask = encode_sources(tok, spec, texts[i:i + BATCH])
        out += backend.greedy(ids, mask, n or spec["max_new_tokens"], c.decoder_start_token_id, c.eos_token_id,
                              c.pad_token_id if c.pad_token_id is not None else 0)
    return out


class OrtHead:
    """An exported head (an ``export --format onnx`` folder) in onnxruntime, answering as Predictor.predict."""

    def __init__(self, folder: str | Path, precision: str = "fp32"):
        require_onnx()
        from transformers import AutoConfig, AutoTokenizer
        self.folder, self.spec = Path(folder), read_spec(Path(folder))
        if self.spec is None:
            raise LuyenError("not an exported task head (no luyen_task.json)", file=str(folder),
                             fix="pass the output folder of `luyen export RUN --format onnx`")
        self.task = TASKS[self.spec["task"]]
        self.tokenizer, self.config = AutoTokenizer.from_pretrained(self.folder), AutoConfig.from_pretrained(self.folder)
        paths = [self.folder / (n if precision == "fp32" else int8_name(n)) for n in GRAPHS[self.task.name]]
        self.backend = OrtSeq2Seq(*paths) if self.task.name == "seq2seq" else OrtGraph(paths[0])

    def predict(self, items: list[dict]) -> list[dict]:
        if self.task.name != "seq2seq":
            return self.task.impl().predict(self.backend, self.tokenizer, self.spec, items)
        from luyen.tasks.seq2seq import text_of
        tokens = generate(self.backend, self.config, self.tokenizer, self.spec, [text_of(it) for it in items])
        return [{"summary": self.tokenizer.decode(t, skip_special_tokens=True).strip()} for t in tokens]


# --- the check --------------------------------------------------------------------------------------------

def run_data(folder: Path) -> Path | None:
    """The prepared data folder a head run (RUN/model) trained on, from RUN/manifest.json, if it has a test split."""
    try:
        inputs = json.loads((Path(folder).parent / "manifest.json").read_text(encoding="utf-8"))["inputs"]
        found = [Path(i["path"]).parent for i in inputs if Path(i["path"]).name == "train.jsonl"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return next((d for d in found if (d / "test.jsonl").is_file()), None) if Path(folder).name == "model" else None


ITEM = {"classification": lambda r: ({"text": r["text"]}, r["label"]),  # a test record -> (input, gold)
        "extractive_qa": lambda r: ({"question": r["question"], "context": r["context"]},
                                    [a["text"] for a in r["answers"]] or [""]),  # unanswerable: ""
        "seq2seq": lambda r: ({"text": r["source"]}, r["target"])}


def check_items(folder: Path, task: str, data_dir: Path | None = None) -> tuple[list[dict], list | None, str]:
    """Up to CHECK_EXAMPLES inputs of the run's test split with their gold answers (fixed inputs without
    gold when there is none), and where they came from."""
    from luyen.data.stage import read_split
    data_dir = data_dir or run_data(folder)
    try:
        records = [r for r in read_split(data_dir, "test") if r.get("kind") == KINDS[task]] if data_dir else []
    except (LuyenError, OSError, ValueError):
        records = []
    if records:
        items, gold = zip(*map(ITEM[task], records[:CHECK_EXAMPLES]))
        return list(items), list(gold), f"{len(items)} test records of {data_dir}"
    if task == "extractive_qa":
        return [{"question": q, "context": c} for q, c in QUESTIONS], None, "fixed inputs"
    return [{"text": t} for t in TEXTS], None, "fixed inputs"


def compare(model, tok, spec: dict, out_dir: Path, precisions: list[str], items: list[dict], gold) -> dict:
    """max |logit difference| and agreement of each precision's graph(s) with transformers, and the task's
    score (on gold answers) for transformers and each precision."""
    task = spec["task"]
    m = {"max_abs_diff": {}, "agreement": {}, "score": SCORE[task]}
    check = {"classification": _classification, "extractive_qa": _extractive, "seq2seq": _seq2seq}[task]
    with torch.inference_mode():
        reference, predictions = check(TorchSeq2Seq(model) if task == "seq2seq" else model, model, tok, spec, items, None)
        scores = {"transformers": predictions}
        for precision in precisions:  # the exported folder, read as a user would
            raw, scores[precision] = check(OrtHead(out_dir, precision).backend, model, tok, spec, items, reference)
            m["max_abs_diff"][precision] = float(f"{raw['diff']:.3g}")
            m["agreement"][precision] = round(raw["agree"], 4)
    if gold is not None:
        m[SCORE[task]] = {k: round(_score(task, v, gold), 4) for k, v in scores.items()}
    return m


def _classification(backend, model, tok, spec, items, ref):
    from luyen.tasks.classify import logits
    z = logits(backend, tok, [it["text"] for it in items], spec["max_length"], BATCH).numpy()
    labels = [spec["labels"][i] for i in z.argmax(-1)]
    if ref is None:
        return {"logits": z}, labels
    return {"diff": np.abs(z - ref["logits"]).max(), "agree": float((z.argmax(-1) == ref["logits"].argmax(-1)).mean())}, labels


def _extractive(backend, model, tok, spec, items, ref):
    from luyen.tasks import extract
    from luyen.tasks.train import HeadExample, forward, inputs
    wins = [w for it in items for w in extract.windows(tok, it["question"], it["context"], spec)]
    starts, ends = [], []
    for i in range(0, len(wins), BATCH):
        chunk = wins[i:i + BATCH]
        out = forward(backend, inputs([HeadExample(w["ids"], {}, w["types"]) for w in chunk], tok.pad_token_id or 0),
                      torch.device("cpu"), None)
        starts += [s[:len(w["ids"])].float().numpy() for w, s in zip(chunk, out.start_logits)]
        ends += [e[:len(w["ids"])].float().numpy() for w, e in zip(chunk, out.end_logits)]
    answers = [p["answer"] for p in extract.predict(backend, tok, spec, items)]
    if ref is None:
        return {"start": starts, "end": ends}, answers
    diff = max(max(np.abs(a - b).max(), np.abs(c - d).max()) for a, b, c, d in zip(starts, ref["start"], ends, ref["end"]))
    same = [a.argmax() == b.argmax() and c.argmax() == d.argmax() for a, b, c, d in zip(starts, ref["start"], ends, ref["end"])]
    return {"diff": diff, "agree": float(np.mean(same))}, answers


def _seq2seq(backend, model, tok, spec, items, ref):
    texts = [it["text"] for it in items]
    tokens = generate(backend, model.config, tok, spec, texts)
    summaries = [tok.decode(t, skip_special_tokens=True).strip() for t in tokens]
    if ref is None:
        return {"tokens": tokens}, summaries
    # logits over the reference's own greedy tokens (teacher forcing): both graphs, every position
    start, pad = model.config.decoder_start_token_id, model.config.pad_token_id or 0
    reference, torch_side, diff = ref["tokens"], TorchSeq2Seq(model), 0.0
    for i in range(0, len(texts), BATCH):
        ids, mask = encode_sources(tok, spec, texts[i:i + BATCH])
        rows = [[start] + r for r in reference[i:i + BATCH]]
        seq = np.array([r + [pad] * (max(map(len, rows)) - len(r)) for r in rows], np.int64)
        want = torch_side.decode(seq, ids, mask)
        got = backend.decode(seq, backend.encode(ids, mask), mask)
        diff = max(diff, float(np.abs(got - want).max()))
    return {"diff": diff, "agree": float(np.mean([a == b for a, b in zip(tokens, reference)]))}, summaries


def _score(task: str, predictions: list[str], gold: list) -> float:
    from luyen.evaluate.metrics import exact_match, rouge
    if task == "classification":
        return float(np.mean([p == g for p, g in zip(predictions, gold)]))
    if task == "extractive_qa":
        return float(np.mean([max(exact_match(p, g) for g in golds) for p, golds in zip(predictions, gold)]))
    return rouge(predictions, gold)["rougeL"]
