"""`luyen rag ...`: index documents, query the index, measure retrieval.

    luyen rag index examples/data/airline_policies/ --out runs/rag
    luyen rag index new-policy.md --out runs/rag --add          # embed only the new document
    luyen rag index hoan-ve.md --out runs/rag --remove
    luyen rag query runs/rag "Phí đổi vé Tiết kiệm chặng quốc tế?" -k 3
    luyen rag eval runs/rag examples/data/airline_rag_queries.jsonl
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from luyen.errors import friendly

rag_app = typer.Typer(help="Index documents, retrieve passages for a question, measure retrieval.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)
CONFIG_HELP = "YAML config file whose rag: section sets the search (default: the settings the index was built with)."


def _config(config: Optional[Path], overrides: list[str]):
    from luyen.config import load_config
    return load_config(config, overrides)


def _search_settings(config: Optional[Path], overrides: Optional[list[str]]):
    """The rag section to search with when the user gave one; else None: the index's own settings."""
    return _config(config, overrides or []).rag if config or overrides else None


def _split(args: list[str]) -> tuple[list[str], list[str]]:
    from luyen.cli import split_args
    return split_args(args)


@rag_app.command("index")
@friendly
def index(
    docs: List[str] = typer.Argument(..., help="Files, globs or folders (.txt .md .html .jsonl .pdf); with --remove, document names. key=value words override config (rag.chunk_tokens=120)."),
    out: Path = typer.Option(..., "--out", "-o", help="Index folder to write or update."),
    add: bool = typer.Option(False, "--add", help="Add (or replace) these documents; keep the rest of the index."),
    remove: bool = typer.Option(False, "--remove", help="Remove these documents (names as the index lists them)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace whatever --out holds, reusing nothing."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML config file (its rag: section)."),
):
    """Build an index (or sync one to DOCS, re-embedding only changed documents); bad files are listed and skipped."""
    from luyen.rag.build import run
    files, overrides = _split(docs)
    manifest = run(_config(config, overrides), files, out, add=add, remove=remove, overwrite=overwrite)
    m = manifest["metrics"]
    for skip in m["skipped"]:
        err.print(f"[yellow]skipped[/yellow] {skip['error']}", highlight=False, soft_wrap=True)
    console.print(f"wrote {out}: {m['documents']} documents, {m['passages']} passages ({m['embedded_documents']} "
                  f"documents embedded, {m['reused_documents']} reused, {m['removed_documents']} removed, "
                  f"{len(m['skipped'])} skipped) in {manifest['wall_time_s']:.1f} s", highlight=False)


@rag_app.command("query")
@friendly
def query(
    index_dir: Path = typer.Argument(..., metavar="INDEX", help="Index folder from `luyen rag index`."),
    question: str = typer.Argument(..., help="The question."),
    k: Optional[int] = typer.Option(None, "-k", "--k", help="Passages to show (rag.k)."),
    mode: Optional[str] = typer.Option(None, "--mode", help="hybrid, dense or bm25 (rag.mode)."),
    overrides: List[str] = typer.Argument(None, help="key=value search settings (rag.dense_weight=0.5 ...)."),
    as_json: bool = typer.Option(False, "--json", help="Print the hits as JSON lines."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help=CONFIG_HELP),
):
    """Show the passages retrieved for a question, best first, with their sources."""
    from luyen.rag.index import load_index
    hits = load_index(index_dir, _search_settings(config, overrides)).search(question, k, mode)
    if as_json:
        sys.stdout.write("".join(json.dumps({**vars(h), "label": h.label}, ensure_ascii=False) + "\n" for h in hits))
        return
    if not hits:
        console.print("no passage matches")
    for n, hit in enumerate(hits, 1):
        console.print(f"[bold][{n}] {hit.label}[/bold] passage {hit.position}, score {hit.score:.4f}"
                      + (f" - {hit.heading}" if hit.heading else ""), highlight=False)
        console.print(hit.text, highlight=False, markup=False)
        console.print()


@rag_app.command("eval")
@friendly
def evaluate(
    index_dir: Path = typer.Argument(..., metavar="INDEX", help="Index folder from `luyen rag index`."),
    queries: Path = typer.Argument(..., help='Labelled queries, JSON lines {"query": ..., "relevant": [file names]}.'),
    overrides: List[str] = typer.Argument(None, help="key=value search settings (rag.dense_weight=0.5 ...)."),
    k: int = typer.Option(5, "-k", "--k", help="Largest cut-off for recall@k (1, 3 and k are shown)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help=CONFIG_HELP),
):
    """recall@k and MRR of dense, BM25 and hybrid retrieval on labelled queries."""
    from luyen.rag.evaluate import MRR_DEPTH, evaluate as run_eval
    from luyen.rag.index import load_index
    ks = tuple(sorted({c for c in (1, 3, k) if c <= k}))
    report = run_eval(load_index(index_dir, _search_settings(config, overrides)), queries, ks)
    if as_json:
        sys.stdout.write(json.dumps({m: v for m, v in report.items() if m != "ranks"}, indent=2) + "\n")
        return
    table = Table(title=f"{report['queries']} queries, judged per document")
    for col in ["method", *[f"recall@{c}" for c in ks], f"MRR@{MRR_DEPTH}"]:
        table.add_column(col, justify="left" if col == "method" else "right")
    for mode in ("dense", "bm25", "hybrid"):
        table.add_row(mode, *[f"{report[mode][f'recall@{c}']:.3f}" for c in ks], f"{report[mode]['mrr']:.3f}")
    console.print(table)
