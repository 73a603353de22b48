"""train.task=classification: labelled text -> a label and calibrated probabilities.

An encoder (the shipped all-MiniLM-L6-v2, or BERT/RoBERTa/XLM-R/PhoBERT from the hub) or a decoder
(Gemma-3, Llama: transformers' *ForSequenceClassification reads the last real token) with a new linear
head over the label set of the training split, saved with the model as id2label/label2id. The loss
is the cross-entropy per example (weighted by train.head.class_weights=balanced: n / (classes x count));
the step is normalised by its example count, so accumulation stays exact. After training a single
temperature is fitted on the validation split (Guo et al. 2017, "On Calibration of Modern Neural
Networks") so that predicted probabilities match accuracy; the expected calibration error before and
after is recorded.

    spec = {"labels": ["baggage", "refund", ...], "temperature": 1.31, ...}
    predict(model, tokenizer, spec, [{"text": "Tôi muốn hoàn vé"}]) -> [{"label": "refund", "probabilities": {...}}]
"""
from __future__ import annotations

import math
from collections import Counter

import numpy as np
import torch

from luyen.errors import LuyenError
from luyen.tasks.train import HeadExample, HeadObjective, Stats, forward, inputs

LR = {"full": 5e-5, "lora": 1e-3, "freeze": 2e-4}  # the encoder is small and the head starts from nothing
CUT = "cut to max_length"
ECE_BINS = 15
MIN_CALIBRATION = 30  # validation examples needed to fit a temperature


def spec(train: list[dict], val: list[dict], cfg, tokenizer, folder) -> dict:
    counts = Counter(r["label"] for r in train)
    if len(counts) < 2:
        raise LuyenError(f"classification needs at least two labels; the training split has {sorted(counts)}",
                         field="train.task", fix="label the data with two or more classes")
    unseen = sorted({r["label"] for r in val} - set(counts))
    if unseen:
        raise LuyenError(f"the validation split has labels the training split lacks: {unseen}", field="data.split",
                         fix="add training examples of those labels (the split is stratified: each needs several)")
    labels = sorted(counts)
    weights = None
    if cfg.train.head.class_weights == "balanced":
        n = sum(counts.values())
        weights = [n / (len(labels) * counts[label]) for label in labels]
    return {"labels": labels, "counts": [counts[label] for label in labels], "class_weights": weights,
            "calibrate": cfg.train.head.calibrate}


def load(folder, spec: dict, dtype, trust_remote_code: bool = False):
    from transformers import AutoModelForSequenceClassification
    labels = spec["labels"]
    model = AutoModelForSequenceClassification.from_pretrained(
        folder, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={v: i for i, v in enumerate(labels)},
        dtype=dtype, trust_remote_code=trust_remote_code, ignore_mismatched_sizes=True)
    return _with_pad(model, folder)


def _with_pad(model, folder):
    """A decoder's classifier reads the last token that is not padding: it must know the pad id."""
    if model.config.pad_token_id is None:
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained(folder)
        model.config.pad_token_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    return model


def encode(records: list[dict], tokenizer, spec: dict) -> tuple[list[HeadExample], Stats]:
    index = {label: i for i, label in enumerate(spec["labels"])}
    stats, out = Stats(records=len(records)), []
    for r in records:
        ex = example(tokenizer, r["text"], spec["max_length"], index.get(r["label"], -1))
        out.append(ex)
        stats.add(ex)
        stats.too_long += int(len(ex.ids) == spec["max_length"] and len(tokenizer(r["text"])["input_ids"]) > len(ex.ids))
    return out, stats


def example(tokenizer, text: str, max_length: int, label: int = -1) -> HeadExample:
    """The text's ids cut to max_length (with the tokenizer's special tokens), and its label's index."""
    enc = tokenizer(text, truncation=True, max_length=max_length)
    types = np.asarray(enc["token_type_ids"], dtype=np.int64) if "token_type_ids" in enc else None
    return HeadExample(np.asarray(enc["input_ids"], dtype=np.int64), {"label": label}, types)


class Objective(HeadObjective):
    """Cross-entropy of the label per example (class-weighted when the spec has weights); counts correct."""

    def __init__(self, spec: dict, examples=None):
        w = spec.get("class_weights")
        self.weights = torch.tensor(w, dtype=torch.float32) if w else None

    def collate(self, examples, pad_id: int, packing: bool) -> dict:
        batch = inputs(examples, pad_id)
        batch["labels"] = torch.tensor([e.target["label"] for e in examples])
        return batch

    def loss(self, model, head, batch: dict, chunk: int, device, autocast, state: dict):
        logits = forward(model, batch, device, autocast).logits.float()
        labels = batch["labels"].to(device)
        weight = self.weights.to(device) if self.weights is not None else None
        loss = torch.nn.functional.cross_entropy(logits, labels, weight=weight, reduction="none").sum()
        return loss, len(labels), {"accuracy": float((logits.argmax(-1) == labels).sum())}


@torch.no_grad()
def logits(model, tokenizer, texts: list[str], max_length: int, batch_size: int = 32, device=None, autocast=None
           ) -> torch.Tensor:
    """[N, labels] logits of the texts (float32), in order."""
    device = device or next(model.parameters()).device
    out = []
    for i in range(0, len(texts), batch_size):
        exs = [example(tokenizer, t, max_length) for t in texts[i:i + batch_size]]
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        out.append(forward(model, inputs(exs, pad_id), device, autocast).logits.float().cpu())
    return torch.cat(out) if out else torch.zeros(0, model.config.num_labels)


def after_training(model, spec: dict, val_ex: list[HeadExample], device, autocast) -> dict:
    """The temperature that calibrates the probabilities on the validation split (1.0 without one), and
    the validation ECE before and after."""
    if not val_ex:
        return {"temperature": 1.0}
    batches = [val_ex[i:i + 32] for i in range(0, len(val_ex), 32)]
    with torch.no_grad():
        z = torch.cat([forward(model, inputs(b, model.config.pad_token_id or 0), device, autocast).logits.float().cpu()
                       for b in batches])
    y = torch.tensor([e.target["label"] for e in val_ex])
    # one parameter fitted on a handful of examples overfits them (a tiny run's 9 gave T = 0.02): not below 30
    t = fit_temperature(z, y) if spec["calibrate"] and len(y) >= MIN_CALIBRATION else 1.0
    return {"temperature": t, "val_ece_before": ece(torch.softmax(z, -1).numpy(), y.numpy()),
            "val_ece_after": ece(torch.softmax(z / t, -1).numpy(), y.numpy())}


def fit_temperature(z: torch.Tensor, y: torch.Tensor) -> float:
    """The T > 0 minimising the negative log-likelihood of softmax(z / T) (one parameter, LBFGS on log T)."""
    log_t = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=100)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss
    opt.step(closure)
    t = float(log_t.detach().exp())
    return round(t, 4) if math.isfinite(t) and 0.01 < t < 100 else 1.0


def ece(probs: np.ndarray, gold: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error: the confidence-weighted gap between confidence and accuracy over
    `bins` equal-width confidence bins (Naeini et al. 2015)."""
    if len(gold) == 0:
        return 0.0
    conf, pred = probs.max(1), probs.argmax(1)
    right = (pred == gold).astype(float)
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (conf > lo) & (conf <= hi)
        if sel.any():
            total += sel.mean() * abs(conf[sel].mean() - right[sel].mean())
    return round(float(total), 4)


def predict(model, tokenizer, spec: dict, items: list[dict], batch_size: int = 32) -> list[dict]:
    """{"label", "probabilities": {label: p}} per item ({"text": ...}), probabilities at the fitted temperature."""
    texts = [text_of(it) for it in items]
    z = logits(model, tokenizer, texts, spec["max_length"], batch_size)
    probs = torch.softmax(z / spec.get("temperature", 1.0), -1).numpy()
    labels = spec["labels"]
    return [{"label": labels[int(p.argmax())], "score": round(float(p.max()), 6),
             "probabilities": {label: round(float(v), 6) for label, v in zip(labels, p)}} for p in probs]


def text_of(item: dict) -> str:
    text = item.get("text") if isinstance(item, dict) else None
    if not isinstance(text, str) or not text.strip():
        raise LuyenError("each input needs a non-empty 'text' string", field="text",
                         fix='give {"text": "the message to classify"}')
    return text


# -- evaluation (tasks.evaluate) ----------------------------------------------------------------------
PRIMARY, SHOWN = "accuracy", ("accuracy", "macro_f1", "ece")
PROMPT = ("Classify the message into exactly one of these labels: {labels}.\n\nMessage: {text}\n\n"
          "Answer with the label only.")


def item(r: dict) -> dict:
    return {"text": r["text"]}


def gold(r: dict) -> str:
    return r["label"]


def majority(test, train, spec):
    """The most frequent training label, with the training label frequencies as its probabilities."""
    counts = Counter(r["label"] for r in train)
    top = counts.most_common(1)[0][0]
    probs = {label: counts[label] / len(train) for label in spec["labels"]}
    return [{"label": top, "probabilities": probs} for _ in test]


TRIVIAL = {"majority class": majority}


def decoder(engine, test, train, spec, style, cfg):
    """Each label scored as the answer; the likeliest wins; softmax over the label scores."""
    from luyen.data.formats import as_chat
    from luyen.evaluate.likelihood import example_nll
    from luyen.train.batches import encode
    labels = spec["labels"]
    shots = []
    if style == "few-shot":  # one training example per label, in label order
        for label in labels:
            r = next(r for r in train if r["label"] == label)
            shots += [{"role": "user", "content": PROMPT.format(labels=", ".join(labels), text=r["text"])},
                      {"role": "assistant", "content": label}]
    def ask(r):  # a chat run is asked as it was trained (data.formats.as_chat), a base model by instruction
        if style == "fine-tuned":
            return as_chat(r)[:-1]
        return [{"role": "user", "content": PROMPT.format(labels=", ".join(labels), text=r["text"])}]
    records = [{"kind": "chat", "messages": shots + ask(r) + [{"role": "assistant", "content": label}]}
               for r in test for label in labels]
    examples, _ = encode(records, engine.tok, engine.template, max_length=1 << 16)
    nll = np.array([s for s, _ in example_nll(engine.model, examples, engine.pad_id)]).reshape(len(test), len(labels))
    z = -nll
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    return [{"label": labels[int(row.argmax())], "probabilities": dict(zip(labels, row.round(6).tolist()))} for row in p]


def metrics(preds: list[dict], gold: list[str], spec: dict) -> tuple[dict, list[float]]:
    """Accuracy, macro-F1, per-class precision/recall/F1, the confusion matrix (rows true, columns
    predicted) and ECE when the system gives probabilities; per example: right (100) or wrong (0)."""
    labels = spec["labels"]
    p = [x["label"] for x in preds]
    right = [float(a == b) for a, b in zip(p, gold)]
    per_class, f1s = {}, []
    for label in labels:
        tp = sum(a == label == b for a, b in zip(p, gold))
        fp = sum(a == label != b for a, b in zip(p, gold))
        fn = sum(b == label != a for a, b in zip(p, gold))
        prec, rec = tp / (tp + fp) if tp + fp else 0.0, tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        per_class[label] = {"precision": round(100 * prec, 1), "recall": round(100 * rec, 1), "f1": round(100 * f1, 1),
                            "support": tp + fn}
        if tp + fn:
            f1s.append(f1)
    index = {label: i for i, label in enumerate(labels)}
    confusion = np.zeros((len(labels), len(labels)), dtype=int)
    for a, b in zip(p, gold):
        confusion[index[b], index[a]] += 1
    m = {"accuracy": 100 * float(np.mean(right)), "macro_f1": 100 * float(np.mean(f1s)) if f1s else 0.0,
         "per_class": per_class, "confusion": confusion.tolist()}
    if all("probabilities" in x for x in preds):
        probs = np.array([[x["probabilities"][label] for label in labels] for x in preds])
        m["ece"] = ece(probs, np.array([index[g] for g in gold]))
    return m, [100 * r for r in right]


