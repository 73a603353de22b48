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

import json
import math
import time
from contextlib import nullcontext
from pathlib import Path


from luyen.config import RunConfig
from luyen.errors import LuyenError
from luyen.evaluate import report
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
    from luyen.infer.engine import Engine, model_budget
    from luyen.models.trained import load_trained, model_folder
    console = console or Console(stderr=True)
    baselines = list(baselines if baselines is not None else cfg.eval.baselines)  # arguments win over cfg.eval
    shots = cfg.eval.shots if shots is None else shots
    limit = cfg.eval.limit if limit is None else limit
    rag = cfg.rag.index if rag is None else rag
    for b in baselines:
        if b not in BASELINES:
            raise LuyenError(f"unknown baseline '{b}'", field="eval.baselines", fix=f"use some of {', '.join(BASELINES)}")
    if "rag" in baselines and rag is None:
        raise LuyenError("the rag baseline needs a retrieval index", field="eval.baselines",
                         fix="pass --rag INDEX (rag.index; built by `luyen rag index DOCS --out INDEX`) or leave out rag")
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
    budget_from = ("set" if cfg.generate.max_new_tokens else
                   "the model's: its training answers' 95th percentile + 50%" if model_budget(tuned_model) else "default")
    cfg = cfg.model_copy(update={"generate": engine.settings(cfg.generate)})  # every system answers with these
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
    refs = [a for _, a in examples]
    with RunDir.create(Path(out_dir), stage="eval", overwrite=overwrite) as rd:
        results, answers, per = {}, {}, {}
        for name, eng, style, base in systems:
            t0 = time.perf_counter()
            off = eng.model.disable_adapter() if base and adapter else nullcontext()
            with off, console.status(f"eval: {name}: perplexity and {len(examples)} answers", spinner="dots"):
                prompts = [_prompt(style, p, shots_chat, index, cfg) for p, _ in examples]
                m, answers[name], per[name] = _score(eng, prompts, refs, cfg, labelled, whole=style == "zero-shot")
            if judge is not None:
                m.update(_judge(judge, cfg, examples, answers[name], console, name))
            m["wall_seconds"] = time.perf_counter() - t0
            console.print(f"eval: {name} on {len(examples)} test examples in {m['wall_seconds']:.0f} s", highlight=False)
            results[name] = {k: round(v, 4) for k, v in m.items()}
        primary = "accuracy" if labelled else "rougeL"
        comparisons = _comparisons(per) if trained_run else {}
        verdict = _verdict(results, primary, comparisons, len(examples))
        general = None
        if trained_run and cfg.eval.general:
            with console.status("eval: general-ability check, base and fine-tuned", spinner="dots"):
                general = _general(base_engine, engine, adapter)
            console.print(f"eval: {report.general_line(general)}", highlight=False)
        samples = [{"prompt": p[-1]["content"], "reference": a, **{n: answers[n][i] for n in answers}}
                   for i, (p, a) in enumerate(examples)]
        doc = {"results": results, "verdict": verdict, "samples": samples, "primary": primary,
               "comparisons": comparisons, "general": general, "generation": _generation(cfg, budget_from)}
        rd.write_json("metrics.json", {"primary": primary, "systems": results, "verdict": verdict,
                                       "examples": len(examples), "comparisons": comparisons, "general": general,
                                       "generation": doc["generation"]})
        rd.write_text("samples.jsonl", "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in samples))
        rd.write_text("report.md", report.markdown(doc))
        rd.write_text("report.html", report.html(doc))
        inputs = [data_dir / "test.jsonl"] + ([Path(model) / "manifest.json"] if (Path(model) / "manifest.json").is_file() else [])
        return rd.finish(config=cfg.model_dump(), inputs=inputs, seed=cfg.seed,
                         metrics={"verdict": verdict, "primary": primary,
                                  **{f"{n}/{k}": v for n, r in results.items() for k, v in r.items()
                                     if k in (primary, "answer_perplexity", "judge")}})


def _score(eng, prompts: list[list[dict]], refs: list[str], cfg: RunConfig, labelled: bool, whole: bool):
    """One system's metrics, its answers, and its per-example scores for the bootstrap
    ({"primary": 0..100 per example, "nll": per-token answer NLL per example})."""
    from luyen.evaluate.behaviour import behaviour
    from luyen.evaluate.metrics import label_matches, rouge_l_per_example
    ppl, nll = _perplexities(eng, prompts, refs, whole=whole)
    outs = eng.chat(prompts, cfg.generate)
    preds = [o.text.strip() for o in outs]
    m = classification_metrics(preds, refs) if labelled else generation_metrics(preds, refs)
    m.update(ppl)
    m.update(behaviour(preds, refs, [o.finish_reason == "stop" for o in outs]))
    m["mean_answer_words"] = sum(len(p.split()) for p in preds) / len(preds)
    m["seconds_per_example"] = sum(o.seconds for o in outs) / len(outs) / max(1, min(cfg.generate.batch_size, len(outs)))
    primary = [100 * x for x in label_matches(preds, refs)] if labelled else rouge_l_per_example(preds, refs)
    return m, preds, {"primary": primary, "nll": [n / k if k else 0.0 for n, k in nll]}


def _judge(judge, cfg: RunConfig, examples, preds: list[str], console, name: str) -> dict:
    n = min(len(examples), cfg.eval.judge.max_examples)
    with console.status(f"eval: {name}: judge {cfg.eval.judge.model} grading {n} answers"):
        scores = judge.score([p[-1]["content"] for p, _ in examples[:n]], [a for _, a in examples[:n]], preds[:n])
    out = {"judge_unparsed": n - scores.parsed}
    if scores.mean is not None:
        out["judge"] = scores.mean
    return out


def _comparisons(per: dict[str, dict]) -> dict:
    """Paired bootstraps of the fine-tuned model against every baseline: the primary metric and the
    per-token answer NLL (lower is better, flipped so that a positive difference favours fine-tuning)."""
    from luyen.evaluate.verdict import compare
    if TUNED not in per:
        return {}
    keep = [n for n in per if n == TUNED or not n.startswith(TUNED)]
    out = {"primary": compare({n: per[n]["primary"] for n in keep}, TUNED),
           "nll": compare({n: per[n]["nll"] for n in keep}, TUNED, higher_is_better=False)}
    return {k: {n: _rounded(c) for n, c in d.items()} for k, d in out.items()}


def _general(base_engine, engine, adapter: bool) -> dict:
    """The general-ability check: our own multiple-choice items (vi + en) for the base and the fine-tuned
    model in the same run, each through the chat template the fine-tuned model uses."""
    from luyen.evaluate.general import load_items, score_items, summary
    from luyen.evaluate.verdict import paired_bootstrap
    items = load_items()
    with engine.model.disable_adapter() if adapter else nullcontext():
        base = score_items(base_engine.model, base_engine.tok, items, render=base_engine.render)
    tuned = score_items(engine.model, engine.tok, items, render=engine.render)
    c = paired_bootstrap([100 * x for x in tuned], [100 * x for x in base])
    return {"n": len(items), "base": summary(base, items), "tuned": summary(tuned, items),
            "comparison": _rounded(c)}


def _rounded(stats: dict) -> dict:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in stats.items()}


def _generation(cfg: RunConfig, budget_from: str = "set") -> str:
    g = cfg.generate
    how = "greedy" if g.temperature == 0 else f"temperature {g.temperature}, top_p {g.top_p}, seed {g.seed}"
    source = "" if budget_from == "set" else f" ({budget_from})"
    return (f"{how}, max_new_tokens {g.max_new_tokens}{source}, repetition_penalty {g.repetition_penalty}, "
            f"no_repeat_ngram_size {g.no_repeat_ngram_size}; the same for every system")


def _load_index(path: str | Path):
    try:
        from luyen.rag import load_index
    except ImportError:
        raise LuyenError("retrieval needs the rag extra", field="--rag", fix="pip install 'luyen[rag]'") from None
    return load_index(path)


def _prompt(style: str, prompt: list[dict], shots_chat: list[dict], index, cfg: RunConfig) -> list[dict]:
    if style == "few-shot":  # the item's system prompt stays first, where every other system has it
        system = [m for m in prompt[:1] if m["role"] == "system"]
        return system + shots_chat + prompt[len(system):]
    if style == "rag":  # the grounding chat, generate and serve send too (k from the index)
        from luyen.rag import ground
        return ground(index, prompt, cfg.rag.template)[0]
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


def answer_nll(engine, prompts: list[list[dict]], answers: list[str], whole: bool = False,
               batch: int = 8) -> list[tuple[float, int]]:
    """Per example: the summed negative log-likelihood of the reference answer (the final assistant
    turn and its end marker, nothing else: not few-shot answers, not earlier turns) and its token
    count. ``whole``: of every token of the formatted example instead."""
    from luyen.data.template import encode_chat
    from luyen.evaluate.likelihood import example_nll
    from luyen.train.batches import shifted
    encoded = [encode_chat(engine.tok, engine.template, p + [{"role": "assistant", "content": a}], targets="last")
               for p, a in zip(prompts, answers)]
    examples = [shifted(ids, [True] * len(ids) if whole else mask) for ids, mask in encoded]
    return example_nll(engine.model, examples, engine.pad_id, batch=batch)


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


def _verdict(results: dict, primary: str, comparisons: dict, n: int) -> str:
    """The verdict paragraph (luyen.evaluate.verdict): a win only when the paired bootstrap interval
    against the best baseline excludes 0."""
    from luyen.evaluate.verdict import sentence
    label = report.LABELS.get(primary, primary)
    if not comparisons:
        best = max(results, key=lambda name: results[name][primary])
        return f"Best: {best} with {label} {results[best][primary]:.1f} (n={n})."
    means = {name: r[primary] for name, r in results.items()}
    baselines = {name: c for name, c in comparisons["primary"].items() if not name.startswith(TUNED)}
    rival = max(baselines, key=means.get) if baselines else None
    ppl = None
    if rival is not None:
        ppl = {"base": results[rival].get("answer_perplexity", math.nan),
               "tuned": results[TUNED].get("answer_perplexity", math.nan), "comparison": comparisons["nll"][rival]}
    return sentence(means, baselines, TUNED, label, n, ppl=ppl) + _stops(results, [TUNED, rival])


def _stops(results: dict, names: list[str | None]) -> str:
    """' But <system> rarely stops: k/n answers ended on their own.' for each named system under 80%."""
    out = ""
    for name in names:
        r = results.get(name) if name else None
        if r and "stop_rate" in r and r["stop_rate"] < 80:
            out += f" But {name} rarely stops: {r['stopped']:.0f}/{r['answers']:.0f} answers ended on their own."
    return out
