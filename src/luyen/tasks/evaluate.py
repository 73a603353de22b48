"""Evaluating a task head against the routes a team could take instead, on the same test split.

    manifest = run(cfg, model="runs/intents/train", data_dir="runs/intents/data", out_dir="runs/intents/eval")

Systems: the trained head; a trivial baseline (classification: the majority class, with the training
label frequencies as its probabilities; seq2seq: the document's first three sentences, "lead-3");
and the chat-model route, eval.decoder: a base decoder (gemma3-270m) zero-shot and few-shot, or a chat
model `luyen train` fine-tuned on the same data (eval.decoder=runs/x-chat/train), asked as it was trained. The decoder classifies by likelihood: every label is scored as its answer to the prompt and
the likeliest wins, so it always names a label and its scores give probabilities (softmax over
labels); its few-shot prompt shows one training example per label. For extractive QA and seq2seq it
generates (greedy). Every system's latency per example is measured here, on this machine; the head's
also one example at a time (what a request waits).

Metrics: classification accuracy, macro-F1, per-class precision/recall/F1, confusion matrix and
expected calibration error; extractive QA exact match and F1 (SQuAD's normalisation; unanswerable
questions are right when the answer is empty) and no-answer accuracy; seq2seq ROUGE-1/2/L, BLEU-4 and
chrF. The verdict compares the head with the best other system on the primary metric by a paired
bootstrap (evaluate.verdict). Writes metrics.json, samples.jsonl, report.md, report.html, manifest.json.
"""
from __future__ import annotations

import html
import json
import time
from pathlib import Path

import numpy as np

from luyen.errors import LuyenError
from luyen.manifest import Manifest, RunDir

HEAD = "fine-tuned head"


def run(cfg, model, data_dir, out_dir, *, limit: int | None = None, overwrite: bool = False, console=None) -> Manifest:
    from rich.console import Console

    from luyen.data.stage import read_split
    from luyen.tasks.predictor import Predictor
    console = console or Console(stderr=True)
    data_dir = Path(data_dir)
    head = Predictor.load(model)
    task, impl = head.name, head.task.impl()
    kind = head.task.kinds[0]
    test = read_split(data_dir, "test")
    limit = cfg.eval.limit if limit is None else limit
    test = test[:limit] if limit else test
    if not test:
        raise LuyenError("the test split is empty", file=str(data_dir / "test.jsonl"), fix="prepare data with a test split")
    if {r["kind"] for r in test} != {kind}:
        raise LuyenError(f"a {task} model is evaluated on {kind} records", file=str(data_dir / "test.jsonl"),
                         fix="pass the data folder the model was trained on")
    train = read_split(data_dir, "train")
    gold = [impl.gold(r) for r in test]
    items = [impl.item(r) for r in test]
    with RunDir.create(Path(out_dir), stage="eval", overwrite=overwrite) as rd:
        outputs = {HEAD: _timed(lambda: head.predict(items), len(test))}
        outputs[HEAD]["ms_single"] = _single_ms(head, items[:20])
        console.print(f"eval: {HEAD} on {len(test)} examples, {outputs[HEAD]['ms']:.1f} ms each", highlight=False)
        for name, fn in impl.TRIVIAL.items():
            outputs[name] = _timed(lambda fn=fn: fn(test, train, head.spec), len(test))
        chat_run = _chat_run(cfg.eval.decoder)  # the chat-model route trained on this data: asked as trained
        styles = ["fine-tuned"] if chat_run else [s for s in ("zero-shot", "few-shot") if s in cfg.eval.baselines]
        if styles:
            from luyen.infer.engine import Engine
            with console.status(f"eval: loading {cfg.eval.decoder}"):
                engine = Engine.load(cfg.eval.decoder)
            for style in styles:
                name = f"{cfg.eval.decoder} (chat model, fine-tuned)" if chat_run else f"{Path(cfg.eval.decoder).name} {style}"
                with console.status(f"eval: {name} on {len(test)} examples"):
                    outputs[name] = _timed(lambda s=style: impl.decoder(engine, test, train, head.spec, s, cfg), len(test))
                console.print(f"eval: {name}: {outputs[name]['ms']:.0f} ms each", highlight=False)
        doc = findings(impl, task, outputs, gold, items, head.spec)
        doc["decoder"] = cfg.eval.decoder
        for line in markdown(doc).splitlines()[2:4]:
            console.print(f"eval: {line}", highlight=False)
        rd.write_json("metrics.json", {k: v for k, v in doc.items() if k != "samples"})
        rd.write_text("samples.jsonl", "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in doc["samples"]))
        rd.write_text("report.md", markdown(doc))
        rd.write_text("report.html", to_html(doc))
        inputs = [data_dir / "test.jsonl"] + ([Path(model) / "manifest.json"] if (Path(model) / "manifest.json").is_file() else [])
        metrics = {"task": task, "verdict": doc["verdict"], "primary": doc["primary"],
                   **{f"{n}/{doc['primary']}": r[doc["primary"]] for n, r in doc["systems"].items()}}
        return rd.finish(config=cfg.model_dump(), inputs=inputs, seed=cfg.seed, metrics=metrics)


def _chat_run(name: str) -> bool:
    """Whether eval.decoder is a `luyen train` run of a chat model (not a base model, not a head)."""
    from luyen.tasks import read_spec
    folder = Path(name)
    return (folder / "manifest.json").is_file() and (folder / "model").is_dir() and read_spec(folder / "model") is None


def _timed(fn, n: int) -> dict:
    t0 = time.perf_counter()
    preds = fn()
    return {"predictions": preds, "ms": 1000 * (time.perf_counter() - t0) / max(n, 1)}


def _single_ms(head, items: list[dict]) -> float:
    """Median milliseconds of one example alone (after one warm-up call)."""
    head.predict(items[:1])
    times = []
    for it in items:
        t0 = time.perf_counter()
        head.predict([it])
        times.append(1000 * (time.perf_counter() - t0))
    return round(float(np.median(times)), 2)


def findings(impl, task: str, outputs: dict, gold: list, items: list[dict], spec: dict) -> dict:
    """Every system's metrics, the head against the best other system (paired bootstrap) and the verdict."""
    from luyen.evaluate.verdict import compare
    systems, per = {}, {}
    for name, out in outputs.items():
        m, s = impl.metrics(out["predictions"], gold, spec)
        m["ms_per_example"] = round(out["ms"], 2)
        if "ms_single" in out:
            m["ms_single"] = out["ms_single"]
        systems[name], per[name] = m, s
    comparisons = compare(per, HEAD) if len(per) > 1 else {}
    samples = [{"input": it, "reference": gold[i], **{n: outputs[n]["predictions"][i] for n in outputs}}
               for i, it in enumerate(items)]
    doc = {"task": task, "primary": impl.PRIMARY, "shown": list(impl.SHOWN), "examples": len(items), "systems": systems,
           "comparisons": comparisons,
           "samples": samples, "temperature": spec.get("temperature")}
    doc["verdict"] = verdict(doc)
    return doc


def verdict(doc: dict) -> str:
    s, c, primary = doc["systems"], doc["comparisons"], doc["primary"]
    mine = s[HEAD]
    if not c:
        return f"the {HEAD} scores {primary} {mine[primary]:.1f} on {doc['examples']} test examples (no baseline)"
    best = max(c, key=lambda n: s[n][primary])
    r = c[best]
    sig = "significant" if r["significant"] else "not significant"
    word = ("beats" if r["diff"] > 0 else "is worse than") if r["significant"] else "is not significantly different from"
    return (f"the {HEAD} {word} {best} on {primary}: {mine[primary]:.1f} vs {s[best][primary]:.1f} "
            f"({r['diff']:+.1f}, 95% CI {r['lo']:+.1f} to {r['hi']:+.1f}, {sig}, n={doc['examples']}); "
            f"{mine['ms_per_example']:.1f} ms per example ({mine.get('ms_single', 0):.1f} ms alone) vs "
            f"{s[best]['ms_per_example']:.1f} ms")


def _table(doc: dict) -> tuple[list[str], list[list[str]]]:
    cols = doc["shown"] + ["ms_per_example"]
    rows = []
    for name, m in doc["systems"].items():
        c = doc["comparisons"].get(name)
        ci = f" ({-c['diff']:+.1f}, CI {-c['hi']:+.1f}..{-c['lo']:+.1f})" if c else ""
        rows.append([name] + [("—" if m.get(k) is None else f"{m[k]:.3f}" if k == "ece" else f"{m[k]:.1f}")
                              + (ci if k == doc["primary"] else "") for k in cols])
    return ["system"] + cols, rows


def markdown(doc: dict) -> str:
    head, rows = _table(doc)
    lines = [f"# Evaluation: {doc['task']} ({doc['examples']} test examples)", "",
             f"Verdict: {doc['verdict']}.", "Baselines beside the head: intervals are each system minus the head, "
             "95% paired bootstrap.", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    if doc["task"] == "classification":
        m = doc["systems"][HEAD]
        lines += ["", f"Calibration: temperature {doc.get('temperature')}; expected calibration error {m.get('ece')}.",
                  "", "| label | precision | recall | F1 | support |", "|---|---|---|---|---|"]
        lines += [f"| {k} | {v['precision']} | {v['recall']} | {v['f1']} | {v['support']} |" for k, v in m["per_class"].items()]
    return "\n".join(lines) + "\n"


def to_html(doc: dict) -> str:
    e = html.escape
    head, rows = _table(doc)
    table = "<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>" + "".join(
        "<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rows) + "</table>"
    extra = ""
    if doc["task"] == "classification":
        m = doc["systems"][HEAD]
        labels = list(m["per_class"])
        extra = ("<h2>Confusion matrix (rows: true label, columns: predicted)</h2><table id='confusion'><tr><th></th>"
                 + "".join(f"<th>{e(label)}</th>" for label in labels) + "</tr>" + "".join(
                     f"<tr><th>{e(label)}</th>" + "".join(f"<td>{n}</td>" for n in row) + "</tr>"
                     for label, row in zip(labels, m["confusion"])) + "</table>"
                 + "<h2>Per class</h2><table><tr><th>label</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>"
                 + "".join(f"<tr><td>{e(k)}</td><td>{v['precision']}</td><td>{v['recall']}</td><td>{v['f1']}</td>"
                           f"<td>{v['support']}</td></tr>" for k, v in m["per_class"].items()) + "</table>")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>luyen eval: {e(doc['task'])}</title><style>"
            "body{font-family:sans-serif;max-width:60em;margin:2em auto}td,th{border:1px solid #ccc;padding:.3em .6em}"
            "table{border-collapse:collapse;margin:1em 0}</style></head><body>"
            f"<h1>Evaluation: {e(doc['task'])}, {doc['examples']} test examples</h1><p><b>Verdict:</b> {e(doc['verdict'])}.</p>"
            f"{table}{extra}</body></html>\n")
