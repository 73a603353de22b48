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
from rich.table import Table
from typing_extensions import Annotated

import luyen.cli.common as common
from luyen.cli.common import console, err, settings, split_words
from luyen.errors import LuyenError, friendly

# The INDEX and QUERIES words of `rag query`, `rag eval` and `rag tune`, declared once
IndexFolder = Annotated[Path, typer.Argument(metavar="INDEX", help="rag.index: the index folder from `luyen rag index`.")]
QueriesFile = Annotated[Path, typer.Argument(help='Labelled queries, JSON lines {"query": ..., "relevant": [file names]}.')]

rag_app = typer.Typer(help="Index documents, retrieve passages for a question, measure retrieval.", no_args_is_help=True)


def _search_settings(words: list[str], flags: dict):
    """(the rag section to search with when the user gave a config or overrides, else None: the
    index's own settings; the command's own words). `flags` (rag.index, rag.k, rag.mode) are the
    command's flags and fixed words, in the tree `luyen config show` prints."""
    w = split_words(words)
    cfg, rest = settings(words, flags)
    return (cfg.rag if w.config or w.overrides else None), rest


@rag_app.command("index")
@friendly
def index(
    words: List[str] = typer.Argument(None, help="[CONFIG.yaml] [key=value ...] (rag.chunk_tokens=120) then files, globs or folders "
                                      "(.txt .md .html .jsonl .pdf; added to rag.documents); with --remove, document names."),
    out: common.out_option("the index folder to write or update.") = None,
    add: bool = typer.Option(False, "--add", help="Add (or replace) these documents; keep the rest of the index."),
    remove: bool = typer.Option(False, "--remove", help="Remove these documents (names as the index lists them)."),
    overwrite: common.overwrite_option("replace whatever --out holds, reusing nothing.") = False,
):
    """Build an index (or sync one to DOCS, re-embedding only changed documents); bad files are listed and skipped."""
    from luyen.rag.build import run
    cfg, _ = settings(words, {"out": out, "overwrite": overwrite}, rest="rag.documents")
    if not cfg.out:
        raise LuyenError("no index folder given", field="out", fix="pass --out DIR")
    manifest = run(cfg, cfg.rag.documents, Path(cfg.out), add=add, remove=remove, overwrite=cfg.overwrite)
    m = manifest["metrics"]
    for skip in m["skipped"]:
        err.print(f"[yellow]skipped[/yellow] {skip['error']}", highlight=False, soft_wrap=True)
    out = cfg.out
    console.print(f"wrote {out}: {m['documents']} documents, {m['passages']} passages ({m['embedded_documents']} "
                  f"documents embedded, {m['reused_documents']} reused, {m['removed_documents']} removed, "
                  f"{len(m['skipped'])} skipped) in {manifest['wall_time_s']:.1f} s", highlight=False)


@rag_app.command("query")
@friendly
def query(
    index_dir: IndexFolder,
    question: str = typer.Argument(..., help="The question."),
    k: Optional[int] = typer.Option(None, "-k", "--k", help="Passages to show (rag.k)."),
    mode: Optional[str] = typer.Option(None, "--mode", help="hybrid, dense or bm25 (rag.mode)."),
    words: List[str] = typer.Argument(None, help="[CONFIG.yaml] [key=value ...]: search settings (rag.dense_weight=0.5 ...); "
                                      "default: the index's own."),
    as_json: bool = typer.Option(False, "--json", help="Print the hits as JSON lines."),
):
    """Show the passages retrieved for a question, best first, with their sources."""
    from luyen.rag.index import load_index
    rag, rest = _search_settings(words, {"rag.index": str(index_dir), "rag.k": k, "rag.mode": mode})
    if rest:
        raise LuyenError(f"unexpected words {', '.join(rest)}", fix="quote the question: luyen rag query INDEX \"...\"")
    hits = load_index(index_dir, rag).search(question, k, mode)
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
    index_dir: IndexFolder,
    queries: QueriesFile,
    words: List[str] = typer.Argument(None, help="[CONFIG.yaml] [key=value ...]: search settings (rag.dense_weight=0.5 ...); "
                                      "default: the index's own."),
    k: int = typer.Option(5, "-k", "--k", help="Largest cut-off for recall@k (1, 3 and k are shown)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
):
    """recall@k and MRR of dense, BM25 and hybrid retrieval on labelled queries, and per kind of query
    when lines carry a "kind" (paraphrase, fact, no-diacritics, english ...)."""
    from luyen.rag.evaluate import MRR_DEPTH
    from luyen.rag.evaluate import evaluate as run_eval
    from luyen.rag.index import load_index
    ks = tuple(sorted({c for c in (1, 3, k) if c <= k}))
    rag, rest = _search_settings(words, {"rag.index": str(index_dir)})
    if rest:
        raise LuyenError(f"unexpected words {', '.join(rest)}", fix="pass INDEX QUERIES.jsonl, then settings")
    index = load_index(index_dir, rag)
    report = run_eval(index, queries, ks)
    tuned = index.manifest.get("tuned")
    if as_json:
        sys.stdout.write(json.dumps({m: v for m, v in report.items() if m != "ranks"}, indent=2) + "\n")
        return
    table = Table(title=f"{report['queries']} queries, judged per document")
    for col in ["method", *[f"recall@{c}" for c in ks], f"MRR@{MRR_DEPTH}"]:
        table.add_column(col, justify="left" if col == "method" else "right")
    rows = [("all", report)] + list(report.get("by_kind", {}).items())
    if len(rows) > 1:
        table.add_column("queries", justify="left")
    for name, part in rows:
        for mode in ("dense", "bm25", "hybrid"):
            cells = [f"{part[mode][f'recall@{c}']:.3f}" for c in ks] + [f"{part[mode]['mrr']:.3f}"]
            table.add_row(mode, *cells, *([f"{name} ({part['queries']})"] if len(rows) > 1 else []))
    console.print(table)
    if tuned and tuned.get("kept"):
        console.print(f"fusion settings kept by `luyen rag tune` on {tuned['queries']} queries: hybrid MRR "
                      f"{tuned['before']['mrr']:.3f} there; a choice would score {tuned['cross_validated']['mrr']:.3f} "
                      "cross-validated", highlight=False)
    elif tuned:
        cv, ins = tuned["cross_validated"], tuned["in_sample"]
        console.print(f"fusion tuned by `luyen rag tune` on {tuned['queries']} queries: hybrid MRR {cv['mrr']:.3f} "
                      f"cross-validated ({ins['mrr']:.3f} in-sample) there", highlight=False)


@rag_app.command("tune")
@friendly
def tune(
    index_dir: IndexFolder,
    queries: QueriesFile,
    folds: int = typer.Option(5, "--folds", help="Cross-validation folds for the held-out figures."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
):
    """Choose the fusion weights (rrf_k, dense_weight) on labelled queries and write them into the index,
    with the in-sample figures and the cross-validated ones to expect on new queries beside them."""
    from luyen.rag.tune import tune as run_tune
    result = run_tune(index_dir, queries, folds)
    if as_json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
        return
    table = Table(title=f"hybrid retrieval, {result['queries']} queries, {result['folds']}-fold cross-validation")
    for col in ("settings", "rrf_k", "dense_weight", "recall@1", "recall@5", "MRR@10"):
        table.add_column(col, justify="left" if col == "settings" else "right")
    before, chosen = result["before"], result["chosen"]
    rows = [("before", before["rrf_k"], before["dense_weight"], before),
            ("chosen, in-sample", chosen["rrf_k"], chosen["dense_weight"], result["in_sample"]),
            ("chosen, cross-validated", chosen["rrf_k"], chosen["dense_weight"], result["cross_validated"])]
    for name, rrf_k, weight, m in rows:
        table.add_row(name, str(rrf_k), f"{weight:g}", *[f"{m[k]:.3f}" if k in m else "" for k in ("recall@1", "recall@5", "mrr")])
    console.print(table)
    if result["kept"]:
        console.print(f"kept rrf_k={before['rrf_k']}, dense_weight={before['dense_weight']:g}: choosing on these queries "
                      f"scores MRR {result['cross_validated']['mrr']:.3f} cross-validated, no better than "
                      f"{before['mrr']:.3f} as they are", highlight=False)
    else:
        console.print(f"wrote rrf_k={chosen['rrf_k']}, dense_weight={chosen['dense_weight']:g} into {index_dir}; expect "
                      "the cross-validated figures on new queries", highlight=False)
