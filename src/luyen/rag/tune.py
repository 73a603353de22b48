"""`luyen rag tune INDEX QUERIES`: fusion weights chosen for this index and encoder on the team's own
labelled queries, and an honest figure for them.

    result = tune(Path("runs/rag"), Path("queries.jsonl"))   # also written into runs/rag/manifest.json

Every (rrf_k, dense_weight) of GRID ranks every query once. The weights kept are the best on all the
queries (by MRR, then recall@5): their in-sample figures flatter them, since they were picked on the
same queries. So the choice is also made k times over, each time on all queries but one fold and
scored on that fold (folds by position, i % k); the pooled held-out figures are what to expect on
new queries. Choosing is worth it only when that held-out MRR beats the index's current settings on
all the queries (figures those settings were not fitted to, unless an earlier tune fitted them):
otherwise the settings are kept ("kept": the choice would most likely do worse on new queries). The
result is written into the index's manifest ("tuned"), and chosen settings into its rag config, which
every later search, eval and `--add` of the index then uses.
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path

from luyen.errors import LuyenError
from luyen.manifest import MANIFEST, atomic_write

GRID = list(itertools.product((5, 10, 20, 60), (0.0, 0.1, 0.2, 0.3, 0.5, 1.0)))  # (rrf_k, dense_weight); bm25 1.0


def tune(folder: Path, queries_path: Path, folds: int = 5, write: bool = True) -> dict:
    from luyen.rag.evaluate import document_ranking, read_queries, scores
    from luyen.rag.index import load_index
    folder = Path(folder)
    index = load_index(folder)
    queries = read_queries(queries_path, index.documents)
    if len(queries) < 2 * folds:
        raise LuyenError(f"{len(queries)} queries are too few for {folds}-fold cross-validation", file=str(queries_path),
                         fix=f"label at least {2 * folds} queries, or pass fewer --folds")
    index.embed_queries([q["query"] for q in queries])
    saved, ranked = dict(index.settings), {}
    for rrf_k, weight in GRID:  # one index, its query vectors embedded once, the fusion settings varied
        index.settings = {**saved, "rrf_k": rrf_k, "dense_weight": weight}
        ranked[rrf_k, weight] = [document_ranking(index, q["query"], "hybrid") for q in queries]
    index.settings = saved

    def score(grid, rows) -> dict:
        return scores([ranked[grid][i] for i in rows], [queries[i] for i in rows], (1, 5))

    def best(rows):
        def rank(g):  # by MRR, then recall@5, then the smaller dense weight
            m = score(g, rows)
            return m["mrr"], m["recall@5"], -g[1]
        return max(GRID, key=rank)

    everyone = list(range(len(queries)))
    chosen = best(everyone)
    held_out: list = [None] * len(queries)
    for fold in range(folds):
        test = [i for i in everyone if i % folds == fold]
        pick = best([i for i in everyone if i % folds != fold])
        for i in test:
            held_out[i] = ranked[pick][i]
    current = (saved["rrf_k"], saved["dense_weight"])
    result = {"queries": len(queries), "folds": folds, "chosen": {"rrf_k": chosen[0], "dense_weight": chosen[1]},
              "in_sample": score(chosen, everyone), "cross_validated": scores(held_out, queries, (1, 5)),
              "before": {"rrf_k": current[0], "dense_weight": current[1],
                         **(score(current, everyone) if current in ranked else {})}}
    result["kept"] = current in ranked and result["cross_validated"]["mrr"] <= result["before"]["mrr"]
    if write:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        if not result["kept"]:
            manifest["config"]["rag"].update(result["chosen"])
        manifest["tuned"] = {**result, "queries_file": str(queries_path)}
        atomic_write(folder / MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=2) + "\n")
    return result
