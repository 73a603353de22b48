"""Retrieval quality and speed on the shipped airline policies and their 63 labelled queries.

    python bench/rag_quality.py [--docs examples/data/airline_policies] [--queries examples/data/airline_rag_queries.jsonl]

Prints one JSON object: index build seconds and passages; recall@1/3/5 and MRR@10 (judged per
document) for dense, BM25 and hybrid with luyen's default fusion (rrf_k 10, dense weight 0.2) and
with textbook equal-weight RRF (rrf_k 60, weights 1/1); hybrid with the default fusion under 2-fold
cross-validation of (rrf_k, dense weight) on odd/even queries, which says how much of the default's
edge is fitted to these queries; and the median search latency per mode.

    python bench/rag_quality.py --scale 10000    # also: build time, size and search latency p50/p95 per
                                                 # mode at 28 documents and at 10,000 generated passages
    python bench/rag_quality.py --encoder runs/retriever --scale 10000   # the same for a trained encoder

The generated passages recombine sentences of the policies (seeded), so BM25 and the encoder see
realistic text; every timed search embeds a fresh query (no cached vector).
"""
from __future__ import annotations

import argparse
import itertools
import json
import statistics
import tempfile
import time
from pathlib import Path

from luyen.config import RagConfig, RunConfig
from luyen.rag import build_index, load_index
from luyen.rag.evaluate import document_ranking, evaluate, read_queries, scores

ROOT = Path(__file__).resolve().parents[1] / "examples" / "data"
GRID = list(itertools.product((5, 10, 20, 60), (0.1, 0.2, 0.3, 0.5, 1.0)))


def cross_validated(folder: Path, queries_path: Path) -> dict:
    """Pick (rrf_k, dense_weight) on one half of the queries by MRR, score it on the other half."""
    queries = read_queries(queries_path, load_index(folder).documents)
    ranked = {}
    for rrf_k, weight in GRID:
        index = load_index(folder, RagConfig(rrf_k=rrf_k, dense_weight=weight))
        index.embed_queries([q["query"] for q in queries])
        ranked[rrf_k, weight] = [document_ranking(index, q["query"], "hybrid") for q in queries]
    bm25 = [document_ranking(load_index(folder), q["query"], "bm25") for q in queries]
    out = {}
    for fold in (0, 1):
        train = [i for i in range(len(queries)) if i % 2 == fold]
        test = [i for i in range(len(queries)) if i % 2 != fold]
        def on(rows, idx):
            return scores([rows[i] for i in idx], [queries[i] for i in idx], (5,))
        best = max(GRID, key=lambda g: (on(ranked[g], train)["mrr"], on(ranked[g], train)["recall@5"]))
        out[f"fold{fold}"] = {"chosen": {"rrf_k": best[0], "dense_weight": best[1]},
                              "hybrid_test": on(ranked[best], test), "bm25_test": on(bm25, test)}
    return out


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def search_latency(folder: Path, queries: list[str]) -> dict:
    """p50 and p95 milliseconds of one search per query and mode, each query embedded afresh."""
    index = load_index(folder)
    index.search("warm-up", 5)  # loads the encoder
    out = {}
    for mode in ("bm25", "dense", "hybrid"):
        times = []
        for q in queries:
            index._embedded.clear()
            t = time.perf_counter()
            index.search(q, 5, mode)
            times.append((time.perf_counter() - t) * 1000)
        times.sort()
        out[mode] = {"p50_ms": round(statistics.median(times), 2), "p95_ms": round(times[int(0.95 * (len(times) - 1))], 2)}
    return out


def generated_corpus(docs: Path, passages: int, out: Path, seed: int = 0) -> Path:
    """`passages` lines of recombined policy sentences, 100 per .jsonl document."""
    import random
    import re
    rng = random.Random(seed)
    sentences = [s.strip() for p in sorted(docs.glob("*.md")) for s in re.split(r"(?<=[.!?])\s+", p.read_text())
                 if len(s.split()) >= 5 and not s.lstrip().startswith(("#", "|"))]
    out.mkdir(parents=True, exist_ok=True)
    for start in range(0, passages, 100):
        lines = [json.dumps({"text": " ".join(rng.sample(sentences, 4))}, ensure_ascii=False)
                 for _ in range(min(100, passages - start))]
        (out / f"gen-{start // 100:04d}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def scale_report(docs: Path, queries_path: Path, passages: int, tmp: Path, cfg: RunConfig) -> dict:
    queries = [json.loads(line)["query"] for line in queries_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    out = {}
    for name, source in (("policies", docs), (f"{passages}_generated", None)):
        if source is None:
            source = generated_corpus(docs, passages, tmp / "generated")
        folder = tmp / f"index-{name}"
        started = time.perf_counter()
        manifest = build_index(cfg, [source], folder)
        out[name] = {"passages": manifest["metrics"]["passages"], "build_s": round(time.perf_counter() - started, 1),
                     "bytes": folder_bytes(folder), "search": search_latency(folder, queries)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=Path, default=ROOT / "airline_policies")
    parser.add_argument("--queries", type=Path, default=ROOT / "airline_rag_queries.jsonl")
    parser.add_argument("--scale", type=int, default=0, help="Also time build, size and search at this many generated passages.")
    parser.add_argument("--encoder", default="all-MiniLM-L6-v2", help="rag.encoder: the shipped one or a trained retriever run.")
    args = parser.parse_args()
    cfg = RunConfig.model_validate({"rag": {"encoder": args.encoder}})
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "index"
        started = time.perf_counter()
        manifest = build_index(cfg, [args.docs], folder)
        build_s = time.perf_counter() - started
        default = evaluate(load_index(folder), args.queries)
        equal = evaluate(load_index(folder, RagConfig(rrf_k=60, dense_weight=1.0)), args.queries, modes=("hybrid",))
        index = load_index(folder)
        latency = {}
        for mode in ("bm25", "dense", "hybrid"):
            times = []
            for q in ("hành lý xách tay 7kg", "mang mèo lên máy bay được không", "phí đổi vé quốc tế"):
                t = time.perf_counter()
                index.search(q + f" {mode}", 5, mode)  # a new string each time: no cached query vector
                times.append(time.perf_counter() - t)
            latency[mode] = round(statistics.median(times) * 1000, 1)
        report = {
            "encoder": manifest["config"]["encoder"],
            "documents": manifest["metrics"]["documents"], "passages": manifest["metrics"]["passages"],
            "build_s": round(build_s, 1), "queries": default["queries"],
            "default_fusion": {m: default[m] for m in ("dense", "bm25", "hybrid")},
            "equal_weight_rrf60_hybrid": equal["hybrid"],
            "cross_validated_hybrid": cross_validated(folder, args.queries),
            "search_ms_median": latency,
        }
        if args.scale:
            report["scale"] = scale_report(args.docs, args.queries, args.scale, Path(tmp), cfg)
    from luyen.precision import machine
    print(json.dumps({"machine": machine(), **report}, indent=2))


if __name__ == "__main__":
    main()
