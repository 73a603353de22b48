"""`luyen data check` and `luyen data prepare`.

    luyen data check examples/data/vi_ai_qa.jsonl
    luyen data prepare configs/demo.yaml --out runs/demo/data data.split.seed=7
"""
from __future__ import annotations

import json
import sys
from typing import List, Optional

import typer

import luyen.cli.common as common
from luyen.cli.common import console, settings
from luyen.errors import LuyenError, friendly

data_app = typer.Typer(help="Check, clean, scrub and split a team's data files.", no_args_is_help=True)
WORDS = "[CONFIG.yaml] [key=value ...] then data files, globs or folders (added to data.files)."


def _files(cfg) -> list[str]:
    files = cfg.data.files
    if not files:
        raise LuyenError("no data files given", field="data.files", fix="pass a data file, a glob or a folder")
    return files


@data_app.command("check")
@friendly
def data_check(
    words: List[str] = typer.Argument(..., help=WORDS),
    model: common.model_option("the model whose tokenizer and chat template measure lengths.") = None,
    max_length: Optional[int] = typer.Option(None, "--max-length", help="data.max_length: token budget per example."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
):
    """Preflight report: exit 0 when the data is usable for training, 2 when it is not."""
    from luyen.data.report import render_report
    from luyen.data.stage import check
    cfg, _ = settings(words, {"model.name": model, "data.max_length": max_length}, rest="data.files")
    report = check(_files(cfg), cfg)
    if as_json:
        sys.stdout.write(json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    else:
        render_report(report, console)
    raise typer.Exit(0 if report["usable"] else 2)


@data_app.command("prepare")
@friendly
def data_prepare(
    words: List[str] = typer.Argument(..., help=WORDS),
    out: common.out_option("the folder for train/val/test.jsonl, report.json, manifest.json.") = None,
    model: common.model_option("the model whose tokenizer measures lengths.") = None,
    overwrite: common.overwrite_option() = False,
):
    """Clean, deduplicate, scrub and split the data into a run directory."""
    from pathlib import Path

    from luyen.data.report import render_report
    from luyen.data.stage import run
    cfg, _ = settings(words, {"model.name": model, "out": out, "overwrite": overwrite}, rest="data.files")
    if not cfg.out:
        raise LuyenError("no output folder given", field="out", fix="pass --out DIR")
    out_dir = Path(cfg.out)
    manifest = run(cfg, _files(cfg), out_dir, overwrite=cfg.overwrite)
    render_report(json.loads((out_dir / "report.json").read_text(encoding="utf-8")), console)
    m = manifest["metrics"]
    console.print(f"wrote {out_dir}/{{train,val,test}}.jsonl: {m['train']} / {m['val']} / {m['test']} records "
                  f"in {manifest['wall_time_s']:.1f} s")
