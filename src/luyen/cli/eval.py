"""`luyen eval`: the fine-tuned model against the base model zero-shot, few-shot and with retrieval.

    luyen eval configs/demo.yaml --model runs/demo/train --data runs/demo/data --out runs/demo/eval --rag runs/demo/rag
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

import luyen.cli.common as common
from luyen.cli.common import comma_list, console, quiet, settings
from luyen.errors import LuyenError, friendly


@friendly
def evaluate(
    words: List[str] = typer.Argument(None, help="[CONFIG.yaml] [key=value ...] (generate.max_new_tokens=64 ...) [MODEL]."),
    model: common.model_option("a `luyen train` output folder, or any model.") = None,
    data: Optional[str] = typer.Option(None, "--data", "-d", help="eval.data: the prepared data folder (its test split is evaluated; default train.data)."),
    out: common.out_option("the folder for metrics.json, samples.jsonl, report.md/html.") = None,
    baselines: Optional[str] = typer.Option(None, "--baselines", help="eval.baselines, comma-separated: zero-shot, few-shot, rag."),
    shots: Optional[int] = typer.Option(None, "--shots", help="eval.shots: training examples shown to the few-shot baseline."),
    rag: Optional[str] = typer.Option(None, "--rag", help="rag.index: a `luyen rag index` folder; adds base and fine-tuned systems with retrieval, and the best passage itself as an answer."),
    limit: Optional[int] = typer.Option(None, "--limit", help="eval.limit: evaluate only the first N test examples."),
    overwrite: common.overwrite_option() = False,
):
    """Compare the fine-tuned model with the base model zero-shot, few-shot and with retrieval on the test split.

    An LLM judge on any OpenAI-compatible endpoint grades answers 1-5 when eval.judge.url is set."""
    quiet()
    from luyen.evaluate.stage import run
    cfg, rest = settings(words, {"eval.data": data, "out": out, "eval.baselines": comma_list(baselines),
                                 "eval.shots": shots, "rag.index": rag, "eval.limit": limit, "overwrite": overwrite,
                                 "model.name": model}, rest="model.name")
    name = cfg.model.name
    data_dir = cfg.eval.data or cfg.train.data
    if not data_dir:
        raise LuyenError("no prepared data given", field="eval.data", fix="pass --data DIR (the --out of `luyen data prepare`)")
    if not cfg.out:
        raise LuyenError("no output folder given", field="out", fix="pass --out DIR")
    manifest = run(cfg, name, data_dir, cfg.out, overwrite=cfg.overwrite, console=console)
    show(Path(cfg.out), manifest["wall_time_s"])


def show(folder: Path, seconds: float) -> None:
    """The report's table and verdict (its samples are in the HTML report)."""
    console.print((folder / "report.md").read_text(encoding="utf-8").split("## Samples")[0], highlight=False)
    console.print(f"wrote {folder}/report.html in {seconds:.0f} s", highlight=False)
