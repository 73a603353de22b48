"""Retrieval-augmented generation: index documents, retrieve passages, cite them in answers.

    from luyen.rag import load_index, augment, cite
    index = load_index("runs/rag")                        # built by `luyen rag index DOCS --out runs/rag`
    hits = index.search("Phí đổi vé Tiết kiệm?", k=5)     # Hit(.text, .source, .position, .score)
    messages = augment([{"role": "user", "content": "Phí đổi vé Tiết kiệm?"}], hits)
    cite(answer, hits)                                    # [{"n": 1, "source": "doi-ve.md", ...}]

Modules: documents (read files), chunk (sentence-aware passages in encoder tokens), encoder (the
sentence encoder), lexical (BM25 over syllables), index (faiss + bm25s, fused search), build (the
`luyen rag index` stage), prompt (ground, augment, cite, given), evaluate (recall@k, MRR), cli.
"""
from luyen.rag.index import Hit, Index, load_index
from luyen.rag.prompt import DEFAULT_TEMPLATE, augment, cite, given, ground

__all__ = ["Hit", "Index", "load_index", "augment", "cite", "given", "ground", "DEFAULT_TEMPLATE", "build_index"]


def build_index(cfg, docs, out, **kw) -> dict:
    """`luyen rag index` from Python: build or update the index folder `out`; returns its manifest."""
    from pathlib import Path
    from luyen.rag.build import run
    return run(cfg, docs, Path(out), **kw)
