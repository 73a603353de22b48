"""The evaluation stage: was fine-tuning worth it? Every system on the same test split, in one report.

    manifest = run(cfg, model="runs/demo/train", data_dir="runs/demo/data", out_dir="runs/demo/eval",
                   baselines=["zero-shot", "few-shot"])

Read the test split and load the models -> score every system (systems.py: the base model zero-shot,
few-shot and with retrieved passages, the trained model plain and with passages) -> compare the
trained model with the best baseline (verdict.py: paired bootstraps) and check its general ability
(general.py) -> write metrics.json, samples.jsonl, report.md, report.html (report.py) and, last,
manifest.json. Metrics per system: answer-token perplexity (and whole-sequence perplexity for the
zero-shot prompt), BLEU-4, chrF, ROUGE-1/2/L, exact match and token F1 (accuracy and macro-F1 for
labelled data), stops, loops, length, language, mean answer length and latency.
"""
from __future__ import annotations

import json
from pathlib import Path

from luyen.config import RunConfig
from luyen.errors import LuyenError
from luyen.evaluate import report
from luyen.evaluate.systems import BASELINES, TUNED, Engines, TestSet, load_engines, score, systems, with_passage
from luyen.manifest import Manifest, RunDir


def run(cfg: RunConfig, model: str | Path, data_dir: str | Path, out_dir: str | Path, *,
        baselines: list[str] | None = None, shots: int | None = None, limit: int | None = None,
        rag: str | Path | None = None, overwrite: bool = False, console=None) -> Manifest:
    """Evaluate ``model`` on the test split of ``data_dir`` into ``out_dir``. Arguments left None come
    from cfg.eval (baselines, shots, limit) and cfg.rag.index (rag); returns the manifest."""
    from rich.console import Console

    from luyen.evaluate.judge import Judge
    from luyen.tasks.predictor import head_folder
    console = console or Console(stderr=True)
    if head_folder(model) is not None:  # a task head: against a trivial baseline and the chat-model route
        from luyen.tasks import evaluate as head_eval
        if baselines is not None:
            cfg = cfg.model_copy(update={"eval": cfg.eval.model_copy(update={"baselines": baselines})})
        return head_eval.run(cfg, model, data_dir, out_dir, limit=limit, overwrite=overwrite, console=console)
    baselines, index = _baselines(cfg, baselines, rag)
    judge = Judge.from_config(cfg.eval.judge)
    data_dir = Path(data_dir)
    test = TestSet.read(data_dir, cfg.eval.limit if limit is None else limit, cfg.eval.shots if shots is None else shots,
                        index, few_shot="few-shot" in baselines)
    engines = load_engines(model, baselines, cfg, console)
    cfg = cfg.model_copy(update={"generate": engines.tuned.settings(cfg.generate)})  # every system answers with these
    with RunDir.create(Path(out_dir), stage="eval", overwrite=overwrite) as rd:
        scored = {s.name: score(s, test, cfg, judge, console) for s in systems(engines, baselines, index is not None)}
        if index is not None and not test.labelled:
            scored = with_passage(scored, test, index, cfg)
        doc = _findings(scored, test, engines, cfg, console, judge, data_dir, model)
        _write(rd, doc)
        inputs = [data_dir / "test.jsonl"]
        if (Path(model) / "manifest.json").is_file():
            inputs.append(Path(model) / "manifest.json")
        return rd.finish(config=cfg.model_dump(), inputs=inputs, seed=cfg.seed, metrics=_headline(doc))


def _baselines(cfg: RunConfig, baselines: list[str] | None, rag: str | Path | None) -> tuple[list[str], object]:
    """The baselines to score (arguments win over cfg.eval; "rag" added when there is an index) and the index."""
    baselines = list(baselines if baselines is not None else cfg.eval.baselines)
    rag = cfg.rag.index if rag is None else rag
    for b in baselines:
        if b not in BASELINES:
            raise LuyenError(f"unknown baseline '{b}'", field="eval.baselines", fix=f"use some of {', '.join(BASELINES)}")
    if "rag" in baselines and rag is None:
        raise LuyenError("the rag baseline needs a retrieval index", field="eval.baselines",
                         fix="pass --rag INDEX (rag.index; built by `luyen rag index DOCS --out INDEX`) or leave out rag")
    if rag is None:
        return baselines, None
    try:
        from luyen.rag import load_index
    except ImportError:
        raise LuyenError("retrieval needs the rag extra", field="--rag", fix="pip install 'luyen[rag]'") from None
    if "rag" not in baselines:  # an index is given: the base with retrieval is a baseline too
        baselines.append("rag")
    return baselines, load_index(rag)


def _findings(scored: dict, test: TestSet, engines: Engines, cfg: RunConfig, console, judge=None, data_dir=None,
              model=None) -> dict:
    """What the report says: every system's metrics and answers, the comparisons and the verdict, and of
    a trained run the general-ability check, the preference test split's accuracies (preference data)
    and the judge's pairwise win rate against the base (with a judge)."""
    from luyen.evaluate.general import base_and_tuned
    from luyen.evaluate.verdict import against_baselines
    results = {name: m for name, (m, _, _) in scored.items()}
    primary = "accuracy" if test.labelled else "rougeL"
    comparisons = against_baselines({name: per for name, (_, _, per) in scored.items()}, TUNED) if engines.trained_run else {}
    general = None
    if engines.trained_run and cfg.eval.general:
        with console.status("eval: general-ability check, base and fine-tuned", spinner="dots"):
            general = base_and_tuned(engines.base, engines.tuned, engines.base_weights)
        console.print(f"eval: {report.general_line(general)}", highlight=False)
    preference = _preference(engines, data_dir, model, cfg, console) if engines.trained_run and data_dir else None
    pairwise = (_pairwise(scored, test, judge, cfg, console) if engines.trained_run and judge is not None
                and cfg.eval.judge.pairwise else None)
    samples = [{"prompt": p[-1]["content"], "reference": a, **{name: s[1][i] for name, s in scored.items()}}
               for i, (p, a) in enumerate(test.examples)]
    return {"results": results, "verdict": report.verdict(results, primary, comparisons, len(test.examples)),
            "samples": samples, "primary": primary, "comparisons": comparisons, "general": general,
            "generation": report.generation_line(cfg.generate, engines.budget_from, engines.runtime()),
            "preference": preference, "pairwise": pairwise}


def _preference(engines: Engines, data_dir, model, cfg: RunConfig, console) -> dict | None:
    """The preference test split scored by the base and the tuned model (None without preference pairs)."""
    from luyen.evaluate.preference import lines, preference_section
    from luyen.manifest import read_manifest
    beta = cfg.train.preference.beta
    if (Path(model) / "manifest.json").is_file():  # the beta the run trained with
        beta = read_manifest(Path(model), stage="train")["config"]["train"].get("preference", {}).get("beta", beta)
    with console.status("eval: preference test split, base and tuned", spinner="dots"):
        section = preference_section(engines, Path(data_dir), beta=beta)
    for line in lines(section) if section else []:
        console.print(f"eval: {line}", highlight=False)
    return section


def _pairwise(scored: dict, test: TestSet, judge, cfg: RunConfig, console) -> dict | None:
    """The judge's pairwise verdicts, fine-tuned against the base zero-shot, in both orders."""
    from luyen.evaluate.preference import pairwise_win_rate
    base = next((name for name in scored if name.startswith("base") and "zero-shot" in name), None)
    if base is None or TUNED not in scored:
        return None
    n = min(len(test.examples), cfg.eval.judge.max_examples)
    with console.status(f"eval: judge {cfg.eval.judge.model} comparing {TUNED} with {base} on {n} questions, both orders"):
        out = pairwise_win_rate(judge, [p[-1]["content"] for p, _ in test.examples[:n]], test.refs[:n],
                                scored[TUNED][1][:n], scored[base][1][:n])
    console.print(f"eval: {report.pairwise_line(out, base)}", highlight=False)
    return {"against": base, **out}


def _write(rd: RunDir, doc: dict) -> None:
    rd.write_json("metrics.json", {"primary": doc["primary"], "systems": doc["results"], "verdict": doc["verdict"],
                                   "examples": len(doc["samples"]), "comparisons": doc["comparisons"],
                                   "general": doc["general"], "generation": doc["generation"],
                                   "preference": doc["preference"], "pairwise": doc["pairwise"]})
    rd.write_text("samples.jsonl", "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in doc["samples"]))
    rd.write_text("report.md", report.markdown(doc))
    rd.write_text("report.html", report.html(doc))


def _headline(doc: dict) -> dict:
    """The manifest's metrics: the verdict, and each system's primary metric, answer perplexity and judge rating."""
    keep = (doc["primary"], "answer_perplexity", "judge")
    return {"verdict": doc["verdict"], "primary": doc["primary"],
            **{f"{n}/{k}": v for n, r in doc["results"].items() for k, v in r.items() if k in keep}}
