"""`luyen rag eval`: recall@k and MRR of dense, BM25 and hybrid retrieval on labelled queries.

    report = evaluate(load_index("runs/rag"), "examples/data/airline_rag_queries.jsonl", ks=(1, 3, 5))
    report["hybrid"]["recall@5"], report["bm25"]["mrr"]

Queries are JSON lines {"query": "...", "relevant": ["hoan-ve.md", ...]}. Retrieval is judged per
document: a method's passage ranking becomes a document ranking (each document at the rank of its
best passage). recall@k is the share of a query's relevant documents among the first k, averaged
over queries; MRR is the mean of 1 / rank of the first relevant document within the first 10 (0 if none).
"""
from __future__ import annotations

import json
from collections.abc import Collection, Iterator
from pathlib import Path

from luyen.errors import LuyenError
from luyen.rag.index import MODES, Index

MRR_DEPTH = 10


def query_lines(path: str | Path, field: str | None = None) -> Iterator[tuple[int, dict]]:
    """(line number, object) of each non-blank line of a queries file ({"query", "relevant", "kind"?})
    whose query is text; `field` names the setting that gave the file, for the error when it is missing."""
    path = Path(path)
    if not path.is_file():
        raise LuyenError("no such queries file", file=str(path), field=field, fix="pass a .jsonl of {query, relevant}")
    for n, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise LuyenError(f"not valid JSON ({e.msg})", file=str(path), line=n, field="query") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("query"), str) or not obj["query"].strip():
            raise LuyenError("no query text", file=str(path), line=n, field="query", fix='write {"query": "...", "relevant": [...]}')
        yield n, obj


def read_queries(path: str | Path, documents: Collection[str], field: str | None = None) -> list[dict]:
    """The queries of a file, each naming only `documents` (an index's, or those training reads)."""
    path, queries = Path(path), []
    for n, obj in query_lines(path, field):
        relevant = obj.get("relevant")
        if not isinstance(relevant, list) or not relevant or not all(isinstance(r, str) for r in relevant):
            raise LuyenError("needs a non-empty list of document names", file=str(path), line=n, field="relevant")
        unknown = [r for r in relevant if r not in documents]
        if unknown:
            raise LuyenError(f"{', '.join(unknown)} is not one of the documents", file=str(path), line=n, field="relevant",
                             fix="name documents as `luyen rag index` listed them (paths relative to the folder indexed)")
        kind = obj.get("kind")
        if kind is not None and not (isinstance(kind, str) and kind.strip()):
            raise LuyenError("kind must be a short label such as paraphrase or english", file=str(path), line=n,
                             field="kind", fix="write a text label or leave the field out")
        queries.append({"query": obj["query"], "relevant": relevant, **({"kind": kind} if kind else {})})
    if not queries:
        raise LuyenError("the queries file holds no query", file=str(path))
    return queries


def document_ranking(index: Index, query: str, mode: str) -> list[str]:
    ranking = index.rank(query, mode, max(index.settings["candidates"], 1))
    return list(dict.fromkeys(index.chunks[row]["source"] for row, _ in ranking))


def scores(ranked: list[list[str]], queries: list[dict], ks: tuple[int, ...]) -> dict[str, float]:
    """recall@k for each k and MRR@10 of document rankings against the labels.

        scores([["a", "b"]], [{"relevant": ["b"]}], (1, 2)) == {"recall@1": 0.0, "recall@2": 1.0, "mrr": 0.5}
    """
    out = {}
    for k in ks:
        out[f"recall@{k}"] = sum(len(set(r[:k]) & set(q["relevant"])) / len(q["relevant"])
                                 for r, q in zip(ranked, queries)) / len(queries)
    out["mrr"] = sum(next((1 / i for i, d in enumerate(r[:MRR_DEPTH], 1) if d in q["relevant"]), 0.0)
                     for r, q in zip(ranked, queries)) / len(queries)
    return {name: round(value, 4) for name, value in out.items()}


def evaluate(index: Index, queries_path: str | Path, ks: tuple[int, ...] = (1, 3, 5),
             modes: tuple[str, ...] = MODES) -> dict:
    """{mode: {recall@k..., mrr}} plus "queries", per-query first-relevant ranks under "ranks" and, when
    queries carry a "kind", {kind: {"queries": n, mode: {...}}} under "by_kind"."""
    queries = read_queries(queries_path, index.documents)
    report: dict = {"queries": len(queries), "ranks": {}}
    if set(modes) & {"dense", "hybrid"}:
        index.embed_queries([q["query"] for q in queries])
    kinds = sorted({q["kind"] for q in queries if "kind" in q})
    if kinds:
        report["by_kind"] = {kind: {"queries": sum(q.get("kind") == kind for q in queries)} for kind in kinds}
    for mode in modes:
        ranked = [document_ranking(index, q["query"], mode) for q in queries]
        report[mode] = scores(ranked, queries, ks)
        report["ranks"][mode] = [next((i for i, d in enumerate(r, 1) if d in q["relevant"]), None)
                                 for r, q in zip(ranked, queries)]
        for kind in kinds:  # the same figures on each kind of query the file labels
            mine = [(r, q) for r, q in zip(ranked, queries) if q.get("kind") == kind]
            report["by_kind"][kind][mode] = scores([r for r, _ in mine], [q for _, q in mine], ks)
    return report
