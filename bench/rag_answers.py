"""The answer side of a retriever change: the same model, the same questions, two indexes.

    luyen eval -m gemma3-270m --data runs/airline-all/data --rag runs/rag-minilm eval.baselines=[rag] \
        eval.general=false --limit 100 --out runs/answers-minilm        # and again --rag runs/rag-trained
    python bench/rag_answers.py runs/answers-minilm runs/answers-trained --indexes runs/rag-minilm runs/rag-trained

Prints one JSON object: for each eval folder, mean ROUGE-L and chrF of the "model + retrieval" answers
against the reference answers; the paired difference (second minus first) with its 95% bootstrap
interval (luyen's own paired bootstrap, the honest-verdict one); and, with --indexes, how often each
index puts the document holding the reference answer among its top 5 for the question (the document
found by BM25 over the answer, as train.pairs.qa_pairs finds it: a silver label).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

SYSTEM = "model + retrieval"


def answers(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "samples.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]


def per_example(rows: list[dict]) -> dict[str, list[float]]:
    from sacrebleu.metrics import CHRF

    from luyen.evaluate.metrics import rouge_l_per_example
    preds, refs = [r[SYSTEM] for r in rows], [r["reference"] for r in rows]
    chrf = CHRF()
    return {"rouge_l": rouge_l_per_example(preds, refs),  # already 0-100
            "chrf": [chrf.sentence_score(p, [r]).score for p, r in zip(preds, refs)]}


def answer_found(index_dir: Path, rows: list[dict], k: int = 5) -> dict:
    """Share of questions whose answer's document (silver: BM25 over the answer) the index ranks in its top k."""
    from luyen.rag import load_index
    from luyen.rag.evaluate import document_ranking
    from luyen.train.pairs import qa_pairs
    index = load_index(index_dir)
    rows_like = [{**c, "indexed": c["text"]} for c in index.chunks]
    records = [{"kind": "chat", "messages": [{"role": "user", "content": r["prompt"]},
                                             {"role": "assistant", "content": r["reference"]}]} for r in rows]
    labelled = qa_pairs(records, rows_like)
    index.embed_queries([p.query for p in labelled])
    hits = [p.source in document_ranking(index, p.query, index.settings["mode"])[:k] for p in labelled]
    return {"questions": len(labelled), f"answer_document_in_top{k}": round(sum(hits) / max(len(hits), 1), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--indexes", nargs=2, type=Path, help="The two indexes the evaluations used, in order.")
    args = parser.parse_args()
    from luyen.evaluate.verdict import paired_bootstrap, rounded
    a, b = answers(args.before), answers(args.after)
    if [r["prompt"] for r in a] != [r["prompt"] for r in b]:
        raise SystemExit("the two evaluations answered different questions")
    sa, sb = per_example(a), per_example(b)
    report = {"questions": len(a), "before": str(args.before), "after": str(args.after)}
    for metric in ("rouge_l", "chrf"):
        report[metric] = {"before": round(sum(sa[metric]) / len(a), 2), "after": round(sum(sb[metric]) / len(b), 2),
                          "after_minus_before": rounded(paired_bootstrap(sb[metric], sa[metric]))}
    if args.indexes:
        report["retrieval"] = {str(i): answer_found(i, a) for i in args.indexes}
    from luyen.precision import machine
    print(json.dumps({"machine": machine(), **report}, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
