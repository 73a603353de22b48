"""The evaluation stage: was fine-tuning worth it? Every system on the same test split, in one report.

    manifest = run(cfg, model="runs/demo/train", data_dir="runs/demo/data", out_dir="runs/demo/eval",
                   baselines=["zero-shot", "few-shot"])

Systems: the base model zero-shot, the base model few-shot (k examples from the training split as
earlier chat turns), and the trained model (a `luyen train` run); all prompted through the chat
template the trained model uses. For an adapter run the base is the same weights with the adapter
switched off, so no second model is loaded. Metrics per system: answer-token perplexity (and
whole-sequence perplexity for the zero-shot prompt), BLEU-4, chrF, ROUGE-1/2/L, exact match and token
F1 (accuracy and macro-F1 for labelled data), mean answer length and latency. Writes metrics.json,
samples.jsonl, report.md, report.html and, last, manifest.json.
"""
from __future__ import annotations

import html
import json
import math
import time
from contextlib import nullcontext
from pathlib import Path

import torch

from luyen.config import RunConfig
from luyen.errors import LuyenError
from luyen.evaluate.metrics import classification_metrics, generation_metrics, perplexity
from luyen.manifest import RunDir, read_manifest

BASELINES = ("zero-shot", "few-shot", "rag")  # rag: the base model with retrieved passages (needs --rag INDEX)
TUNED = "fine-tuned"


def run(cfg: RunConfig, model: str | Path, data_dir: str | Path, out_dir: str | Path, *,
        baselines: list[str] | None = None, shots: int | None = None, limit: int | None = None,
        rag: str | Path | None = None, overwrite: bool = False, console=None) -> dict:
    from rich.console import Console

    from luyen.data.formats import as_chat
    from luyen.data.stage import read_split
    from luyen.evaluate.judge import Judge
    from luyen.infer.engine import Engine
    from luyen.models.trained import load_trained, model_folder
    console = console or Console(stderr=True)
    baselines = list(baselines if baselines is not None else ["zero-shot", "few-shot"])
    shots = cfg.eval.shots if shots is None else shots
    for b in baselines:
        if b not in BASELINES:
            raise LuyenError(f"unknown baseline '{b}'", field="--baselines", fix=f"use some of {', '.join(BASELINES)}")
    if "rag" in baselines and rag is None:
        raise LuyenError("the rag baseline needs a retrieval index", field="--baselines",
                         fix="pass --rag INDEX (built by `luyen rag index DOCS --out INDEX`) or leave out rag")
    index = _load_index(rag) if rag is not None else None
    if index is not None and "rag" not in baselines:
        baselines.append("rag")
    judge = Judge.from_config(cfg.eval.judge)
    data_dir = Path(data_dir)
    read_manifest(data_dir, stage="data")
    test = [r for r in read_split(data_dir, "test") if as_chat(r)]
    if limit:
        test = test[:limit]
    if not test:
        raise LuyenError("the test split has no examples to evaluate", file=str(data_dir / "test.jsonl"),
                         fix="prepare the data with a non-zero data.split.test")
    train = [r for r in read_split(data_dir, "train") if as_chat(r)]
    from luyen.precision import choose
    chosen = choose()
    console.print(f"eval: precision {chosen.describe()}", highlight=False)
    dtype = chosen.dtype
    tuned_model, tok = load_trained(model, dtype=dtype)
    engine = Engine(tuned_model, tok)
    adapter = hasattr(tuned_model, "disable_adapter")
    trained_run = (Path(model) / "manifest.json").is_file() or (model_folder(model) != Path(model))
    base_engine = engine
    if not adapter and trained_run and baselines:
        base_name = read_manifest(Path(model), stage="train")["config"]["model"]["name"]
        base_model, _ = load_trained(base_name, dtype=dtype)
        base_engine = Engine(base_model, tok, engine.template)
    labelled = all(r["kind"] == "labelled" for r in test)
    examples = [_split_chat(as_chat(r)) for r in test]
    shots_chat = [m for r in _shots(train, shots, labelled) for m in as_chat(r)[-2:]] if "few-shot" in baselines else []
    # (name, engine, prompt style, base weights?) for every system, baselines first
    label = {"zero-shot": "zero-shot", "few-shot": "few-shot", "rag": "+ retrieval"}
    systems = []
    if trained_run:
        systems += [(f"base {label[b]}", base_engine, b, True) for b in baselines]
        systems.append((TUNED, engine, "zero-shot", False))
        if index is not None:
            systems.append((f"{TUNED} + retrieval", engine, "rag", False))
    else:
        systems += [(f"model {label[b]}", engine, b, False) for b in baselines]
    if index is not None:
        contexts = [_retrieve(index, cfg, p) for p, _ in examples]
    with RunDir.create(Path(out_dir), stage="eval", overwrite=overwrite) as rd:
        results, answers = {}, {}
        for name, eng, style, base in systems:
            t0 = time.perf_counter()
            off = eng.model.disable_adapter() if base and adapter else nullcontext()
            with off, console.status(f"eval: {name}: perplexity and {len(examples)} answers", spinner="dots"):
                prompts = [_prompt(style, p, shots_chat, contexts[i] if style == "rag" else None, cfg)
                           for i, (p, _) in enumerate(examples)]
                ppl, nll = _perplexities(eng, prompts, [a for _, a in examples], whole=style == "zero-shot")
                outs = eng.chat(prompts, cfg.generate)
            preds = [o.text.strip() for o in outs]
            refs = [a for _, a in examples]
            m = classification_metrics(preds, refs) if labelled else generation_metrics(preds, refs)
            m.update(ppl)
            m["mean_answer_words"] = sum(len(p.split()) for p in preds) / len(preds)
            m["seconds_per_example"] = sum(o.seconds for o in outs) / len(outs) / max(1, min(cfg.generate.batch_size, len(outs)))
            if judge is not None:
                n = min(len(examples), cfg.eval.judge.max_examples)
                with console.status(f"eval: {name}: judge {cfg.eval.judge.model} grading {n} answers"):
                    scores = judge.score([p[-1]["content"] for p, _ in examples[:n]], refs[:n], preds[:n])
                if scores.mean is not None:
                    m["judge"] = scores.mean
                m["judge_unparsed"] = n - scores.parsed
            m["wall_seconds"] = time.perf_counter() - t0
            console.print(f"eval: {name} on {len(examples)} test examples in {m['wall_seconds']:.0f} s", highlight=False)
            results[name], answers[name] = {k: round(v, 4) for k, v in m.items()}, preds
        primary = "accuracy" if labelled else "rougeL"
        verdict = _verdict(results, primary)
        rd.write_json("metrics.json", {"primary": primary, "systems": results, "verdict": verdict,
                                       "examples": len(examples)})
        samples = [{"prompt": p[-1]["content"], "reference": a, **{n: answers[n][i] for n in answers}}
                   for i, (p, a) in enumerate(examples)]
        rd.write_text("samples.jsonl", "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in samples))
        rd.write_text("report.md", _markdown(results, verdict, samples[:5], primary))
        rd.write_text("report.html", _html(results, verdict, samples[:10], primary))
        inputs = [data_dir / "test.jsonl"] + ([Path(model) / "manifest.json"] if (Path(model) / "manifest.json").is_file() else [])
        return rd.finish(config=cfg.model_dump(), inputs=inputs, seed=cfg.seed,
                         metrics={"verdict": verdict, "primary": primary,
                                  **{f"{n}/{k}": v for n, r in results.items() for k, v in r.items()
                                     if k in (primary, "answer_perplexity", "judge")}})


def _load_index(path: str | Path):
    try:
        from luyen.rag import load_index
    except ImportError:
        raise LuyenError("retrieval needs the rag extra", field="--rag", fix="pip install 'luyen[rag]'") from None
    return load_index(path)


def _retrieve(index, cfg: RunConfig, prompt: list[dict]):
    """The index's best passages for the last user turn (k from the index, as `luyen serve --rag` does)."""
    return index.search(prompt[-1]["content"])


def _prompt(style: str, prompt: list[dict], shots_chat: list[dict], hits, cfg: RunConfig) -> list[dict]:
    if style == "few-shot":  # the item's system prompt stays first, where every other system has it
        system = [m for m in prompt[:1] if m["role"] == "system"]
        return system + shots_chat + prompt[len(system):]
    if style == "rag":
        from luyen.rag import augment
        return augment(prompt, hits, cfg.rag.template)
    return prompt


def _shots(train: list[dict], k: int, labelled: bool) -> list[dict]:
    """The first ``k`` training examples; for labelled data, label-balanced (one of each label in turn),
    so the prompt does not teach the majority label."""
    if not labelled:
        return train[:k]
    by_label: dict[str, list[dict]] = {}
    for r in train:
        by_label.setdefault(r["label"], []).append(r)
    picked, depth = [], 0
    while len(picked) < k and any(depth < len(v) for v in by_label.values()):
        picked += [v[depth] for v in by_label.values() if depth < len(v)][:k - len(picked)]
        depth += 1
    return picked


def _split_chat(chat: list[dict]) -> tuple[list[dict], str]:
    """The messages before the last assistant turn, and that turn's text (the reference)."""
    last = max(i for i, m in enumerate(chat) if m["role"] == "assistant")
    return chat[:last], chat[last]["content"]


@torch.no_grad()
def answer_nll(engine, prompts: list[list[dict]], answers: list[str], whole: bool = False,
               batch: int = 8) -> list[tuple[float, int]]:
    """Per example: the summed negative log-likelihood of the reference answer (the final assistant
    turn and its end marker, nothing else: not few-shot answers, not earlier turns) and its token
    count. ``whole``: of every token of the formatted example instead."""
    from luyen.data.template import encode_chat
    from luyen.train.batches import IGNORE, collate, shifted
    from luyen.train.loop import HiddenHead, hidden_states
    from luyen.train.loss import linear_cross_entropy
    head = HiddenHead(engine.model)
    encoded = [encode_chat(engine.tok, engine.template, p + [{"role": "assistant", "content": a}], targets="last")
               for p, a in zip(prompts, answers)]
    examples = [shifted(ids, [True] * len(ids) if whole else mask) for ids, mask in encoded]
    order = sorted(range(len(examples)), key=lambda i: len(examples[i]))  # similar lengths pad little
    out: list[tuple[float, int]] = [(0.0, 0)] * len(examples)
    for i in range(0, len(order), batch):
        rows = order[i:i + batch]
        with engine.autocast():
            hidden, targets = hidden_states(engine.model, head, collate([examples[j] for j in rows], engine.pad_id),
                                            engine.device)
        for r, j in enumerate(rows):
            sel = targets[r] != IGNORE
            nll = linear_cross_entropy(hidden[r][sel], head.weight, head.bias, targets[r][sel], chunk=512,
                                       softcap=head.softcap)
            out[j] = (float(nll), int(sel.sum()))
    return out


def _perplexities(engine, prompts: list[list[dict]], answers: list[str], whole: bool) -> tuple[dict, list]:
    """Token-weighted perplexity of the reference answers (and of whole formatted examples), and the
    per-example answer NLL behind it."""
    per = answer_nll(engine, prompts, answers)
    out = {"answer_perplexity": perplexity(sum(n for n, _ in per), sum(k for _, k in per)),
           "answer_tokens": sum(k for _, k in per)}
    if whole:
        seq = answer_nll(engine, prompts, answers, whole=True)
        out["sequence_perplexity"] = perplexity(sum(n for n, _ in seq), sum(k for _, k in seq))
    return out, per


def _verdict(results: dict, primary: str) -> str:
    """One plain sentence: the best system, by how much, and what to do when fine-tuning did not win."""
    ranked = sorted(results, key=lambda n: results[n][primary], reverse=True)
    best = ranked[0]
    label = "ROUGE-L" if primary == "rougeL" else "accuracy"
    tuned = [n for n in ranked if n.startswith(TUNED)]
    if not tuned:
        return f"Best: {best} with {label} {results[best][primary]:.1f}."
    baselines = [n for n in ranked if not n.startswith(TUNED)]
    if not baselines:
        return f"{TUNED}: {label} {results[TUNED][primary]:.1f} (no baseline was run)."
    rival, mine = baselines[0], tuned[0]
    t, r = results[mine], results[rival]
    gap = t[primary] - r[primary]
    ppl = (f"; answer perplexity {r['answer_perplexity']:.2f} -> {t['answer_perplexity']:.2f}"
           if math.isfinite(t.get("answer_perplexity", math.nan)) else "")
    if gap > 0:
        who = "the fine-tuned model" if mine == TUNED else f"the {mine} system"
        return (f"Fine-tuning was worth it: {who} beats the best baseline ({rival}) by {gap:.1f} "
                f"{label} points ({t[primary]:.1f} vs {r[primary]:.1f}){ppl}.")
    return (f"Fine-tuning did not win: {rival} scores {r[primary]:.1f} {label} against {mine}'s "
            f"{t[primary]:.1f}{ppl}. Suggestion: ship {rival} (it needs no training), or train on more and "
            "cleaner examples, for more epochs, and check the data report for leakage and truncation.")


COLUMNS = [("answer_perplexity", "answer PPL", "{:.2f}"), ("sequence_perplexity", "sequence PPL", "{:.2f}"),
           ("bleu", "BLEU-4", "{:.1f}"), ("chrf", "chrF", "{:.1f}"), ("rouge1", "ROUGE-1", "{:.1f}"),
           ("rouge2", "ROUGE-2", "{:.1f}"), ("rougeL", "ROUGE-L", "{:.1f}"), ("exact_match", "EM", "{:.1f}"),
           ("f1", "F1", "{:.1f}"), ("accuracy", "accuracy", "{:.1f}"), ("macro_f1", "macro-F1", "{:.1f}"),
           ("judge", "judge (1-5)", "{:.2f}"), ("mean_answer_words", "words/answer", "{:.1f}"), ("seconds_per_example", "s/example", "{:.2f}")]


def _cols(results: dict) -> list[tuple[str, str, str]]:
    return [c for c in COLUMNS if any(c[0] in r for r in results.values())]


def _markdown(results: dict, verdict: str, samples: list[dict], primary: str) -> str:
    cols = _cols(results)
    lines = ["# Evaluation", "", verdict, "", "| system | " + " | ".join(c[1] for c in cols) + " |",
             "|---|" + "---|" * len(cols)]
    for name, r in results.items():
        cells = [c[2].format(r[c[0]]) if c[0] in r else "" for c in cols]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "## Samples", ""]
    for s in samples:
        lines.append(f"**Q:** {s['prompt']}  ")
        lines.append(f"**reference:** {s['reference']}  ")
        for name in results:
            lines.append(f"**{name}:** {s[name]}  ")
        lines.append("")
    return "\n".join(lines) + "\n"


def _bars(results: dict, key: str, title: str) -> str:
    """A small inline SVG bar chart (no external resource, no script)."""
    vals = [(n, r[key]) for n, r in results.items() if key in r and math.isfinite(r[key])]
    if not vals:
        return ""
    top = max(v for _, v in vals) or 1.0
    rows = []
    for i, (n, v) in enumerate(vals):
        w = 260 * v / top
        rows.append(f'<text x="0" y="{28 + i * 26}" font-size="12">{html.escape(n)}</text>'
                    f'<rect x="130" y="{16 + i * 26}" width="{w:.1f}" height="16" fill="#4a7bd0"/>'
                    f'<text x="{136 + w:.1f}" y="{28 + i * 26}" font-size="12">{v:.2f}</text>')
    h = 24 + 26 * len(vals)
    return (f'<figure><figcaption>{html.escape(title)}</figcaption><svg xmlns="http://www.w3.org/2000/svg" '
            f'width="460" height="{h}" role="img">{"".join(rows)}</svg></figure>')


def _html(results: dict, verdict: str, samples: list[dict], primary: str) -> str:
    cols = _cols(results)
    head = "".join(f"<th>{html.escape(c[1])}</th>" for c in cols)
    body = "".join("<tr><th>" + html.escape(n) + "</th>" + "".join(
        f"<td>{c[2].format(r[c[0]]) if c[0] in r else ''}</td>" for c in cols) + "</tr>" for n, r in results.items())
    charts = "".join(_bars(results, k, t) for k, t in ((primary, "ROUGE-L" if primary == "rougeL" else "accuracy"),
                                                        ("answer_perplexity", "answer perplexity (lower is better)"),
                                                        ("chrf", "chrF")))
    side = "".join("<tr><td>" + html.escape(s["prompt"]) + "</td><td>" + html.escape(s["reference"]) + "</td>" +
                   "".join(f"<td>{html.escape(s[n])}</td>" for n in results) + "</tr>" for s in samples)
    names = "".join(f"<th>{html.escape(n)}</th>" for n in results)
    return ("<!doctype html><html lang=\"vi\"><head><meta charset=\"utf-8\"><title>luyen evaluation</title>"
            "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}figure{display:inline-block;margin:1em}"
            "</style></head><body><h1>Evaluation</h1>"
            f"<p><strong>{html.escape(verdict)}</strong></p><table><tr><th>system</th>{head}</tr>{body}</table>"
            f"{charts}<h2>Samples</h2><table><tr><th>prompt</th><th>reference</th>{names}</tr>{side}</table>"
            "</body></html>\n")
