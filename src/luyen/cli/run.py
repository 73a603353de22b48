"""`luyen run CONFIG.yaml`: every stage of the config, skipping the ones that are up to date.

    luyen run configs/demo.yaml                      # data -> rag -> train -> eval -> export into runs/demo/
    luyen run configs/demo.yaml train.lr=5e-4        # redoes train, eval and export only
    luyen run configs/demo.yaml --from eval          # redoes eval and export
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

import luyen.cli.common as common
from luyen.cli.common import console, no_words, quiet, settings
from luyen.errors import friendly


@friendly
def run(
    words: List[str] = typer.Argument(..., help="CONFIG.yaml then key=value overrides."),
    start: Optional[str] = typer.Option(None, "--from", help="Redo this stage and every later one (data, rag, train, eval, export)."),
    out: common.out_option("the run folder (default runs/<name>).") = None,
    model: common.model_option("the model to start from.") = None,
    overwrite: common.overwrite_option("use a folder that holds files luyen did not write.") = False,
):
    """Run data -> train -> eval -> export (and the rag index when rag.documents is set) into runs/<name>/<stage>/.

    A stage whose config, inputs and luyen version are unchanged is skipped; a training that was
    stopped resumes from its last checkpoint."""
    quiet()
    from luyen import pipeline
    cfg, rest = settings(words, {"out": out, "model.name": model, "overwrite": overwrite})
    no_words(rest, "luyen run")
    try:
        outcome = pipeline.run(cfg, start=start, console=console)
    except KeyboardInterrupt:
        console.print("stopped. Run the same command again to continue (training resumes from its last checkpoint).")
        raise typer.Exit(130)
    root = pipeline.folder(cfg)
    for name, what in outcome.items():
        if what != "skipped" and name in SHOW:
            SHOW[name](root / name)
    summary = ", ".join(f"{name} {what}" for name, what in outcome.items())
    console.print(f"run: done ({summary}) in {root}", highlight=False)


def _data(folder: Path) -> None:
    from luyen.data.report import render_report
    render_report(json.loads((folder / "report.json").read_text(encoding="utf-8")), console)


def _eval(folder: Path) -> None:
    from luyen.cli.eval import show
    show(folder, json.loads((folder / "manifest.json").read_text(encoding="utf-8"))["wall_time_s"])


def _export(folder: Path) -> None:
    from luyen.cli.export import show
    show(json.loads((folder / "manifest.json").read_text(encoding="utf-8")), folder)


SHOW = {"data": _data, "eval": _eval, "export": _export}  # what a user reads after each stage that ran
