"""A retrieval index on disk, and search over it: dense (faiss), BM25 (bm25s), or both fused.

    index = load_index("runs/rag")
    for hit in index.search("hành lý xách tay bao nhiêu kg", k=3):
        print(hit.label, hit.score, hit.text[:60])

The folder holds:
    vectors.faiss    faiss IndexIDMap2 over a flat inner-product index: unit-length passage embeddings
                     (so scores are cosines) under stable passage ids; add/remove by id
    bm25/            the bm25s index over the passages' syllables (row i = line i of chunks.jsonl)
    chunks.jsonl     one passage per line: id, source, position, start, page/line, heading, text
    documents.json   per document: path, sha256, title, passage ids
    manifest.json    written last: encoder, chunk settings, inputs with hashes, counts, skipped files

Hybrid ranking is reciprocal rank fusion (Cormack et al., 2009): each passage scores
sum(weight / (rrf_k + rank)) over the two rankings it appears in. A question in another language than
the documents (`Lexical.kind` "foreign": no Vietnamese marks, mostly words the corpus lacks even
folded) is ranked by the dense encoder alone when the encoder was trained cross-lingually (a retriever
run with translated questions): BM25 could only add noise to it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from luyen.errors import LuyenError
from luyen.manifest import MANIFEST, read_manifest
from luyen.rag.lexical import Lexical

STAGE = "rag-index"
MODES = ("hybrid", "dense", "bm25")


@dataclass
class Hit:
    text: str
    source: str                # file name, relative to the folder that was indexed
    position: int              # passage number within its document
    score: float               # cosine (dense), BM25 score (bm25) or fused RRF score (hybrid)
    page: int | None = None    # PDF page
    line: int | None = None    # .jsonl line
    heading: str = ""          # document title and section headings above the passage
    start: int = 0             # character offset in its page/line/file

    @property
    def label(self) -> str:
        """What a citation shows: "hoan-ve.md", "guide.pdf p. 3", "faq.jsonl line 12"."""
        where = f" p. {self.page}" if self.page else f" line {self.line}" if self.line else ""
        return self.source + where


def _faiss():
    try:
        import faiss
    except ImportError:
        raise LuyenError("the vector index needs faiss", fix="pip install 'luyen[rag]'") from None
    return faiss


class Index:
    """A finished index folder, loaded. The encoder loads on the first dense or hybrid search."""

    def __init__(self, path: Path, manifest: dict, chunks: list[dict], documents: dict, vectors, lexical: Lexical):
        self.path, self.manifest, self.chunks, self.documents = path, manifest, chunks, documents
        self.vectors, self.lexical = vectors, lexical
        self.settings: dict = manifest["config"]["rag"]
        self.row_of = {c["id"]: row for row, c in enumerate(chunks)}
        self._embedded: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.chunks)

    def search(self, query: str, k: int | None = None, mode: str | None = None) -> list[Hit]:
        """The best `k` passages for `query` (default rag.k and rag.mode of the index)."""
        k = k or self.settings["k"]
        mode = mode or self.settings["mode"]
        return [self.hit(row, score) for row, score in self.rank(query, mode, k)]

    def rank(self, query: str, mode: str, n: int) -> list[tuple[int, float]]:
        """(passage row, score) best first, at most `n`."""
        if mode not in MODES:
            raise LuyenError(f"unknown retrieval mode '{mode}'", field="rag.mode", fix=f"use one of {', '.join(MODES)}")
        if not query.strip() or not self.chunks:
            return []
        depth = max(n, self.settings["candidates"])
        if mode == "bm25":
            return self.lexical.rank(query, n)
        dense = self.dense(query, depth if mode == "hybrid" else n)
        if mode == "dense":
            return dense
        bm25_weight = self.settings["bm25_weight"]
        if self.manifest["config"]["encoder"].get("cross_lingual") and self.lexical.kind(query) == "foreign":
            bm25_weight = 0.0  # BM25 over the documents' language cannot match it; the encoder was trained to
        return fuse([dense, self.lexical.rank(query, depth)],
                    [self.settings["dense_weight"], bm25_weight], self.settings["rrf_k"])[:n]

    def dense(self, query: str, n: int) -> list[tuple[int, float]]:
        if query not in self._embedded:
            self.embed_queries([query])
        vector = self._embedded[query][None, :]
        scores, ids = self.vectors.search(vector, min(n, len(self.chunks)))
        return [(self.row_of[int(i)], float(s)) for s, i in zip(scores[0], ids[0]) if i >= 0]

    def embed_queries(self, queries: list[str]) -> None:
        """Embed queries in one batch (several times faster than one by one) for the dense searches
        that follow; evaluation calls this once for all its queries."""
        from luyen.rag.encoder import load_encoder
        if len(self._embedded) > 4096:
            self._embedded.clear()
        vectors = load_encoder(self.manifest["config"]["encoder"]["name"]).embed(queries, role="query")
        self._embedded.update(zip(queries, vectors))

    def hit(self, row: int, score: float) -> Hit:
        c = self.chunks[row]
        return Hit(c["text"], c["source"], c["position"], score, c.get("page"), c.get("line"), c.get("heading", ""),
                   c.get("start", 0))


def fuse(rankings: list[list[tuple[int, float]]], weights: list[float], rrf_k: int) -> list[tuple[int, float]]:
    """Reciprocal rank fusion of rankings of (item, score); ties keep the first ranking's order.

        fuse([[(7, .9), (3, .5)], [(3, 12.0)]], [1, 1], 60)[0][0] == 3   # 1/62 + 1/61 beats 1/61
    """
    scores: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights):
        for rank, (item, _) in enumerate(ranking, 1):
            scores[item] = scores.get(item, 0.0) + weight / (rrf_k + rank)
    return sorted(scores.items(), key=lambda kv: -kv[1])


def load_index(path: str | Path, rag=None) -> Index:
    """Open a folder written by `luyen rag index` (refused while unfinished: no manifest).

    `rag` (a RagConfig) overrides the search settings stored in the index (k, mode, fusion weights,
    candidates, template); the encoder and chunking always stay the index's own."""
    path = Path(path)
    if not path.is_dir():
        raise LuyenError("no such index folder", file=str(path), fix="build it with `luyen rag index DOCS --out FOLDER`")
    manifest = read_manifest(path, STAGE)
    chunks = [json.loads(line) for line in (path / "chunks.jsonl").read_text(encoding="utf-8").splitlines() if line]
    documents = json.loads((path / "documents.json").read_text(encoding="utf-8"))
    vectors = _faiss().read_index(str(path / "vectors.faiss"))
    if vectors.ntotal != len(chunks):
        raise LuyenError(f"vectors.faiss holds {vectors.ntotal} vectors for {len(chunks)} passages", file=str(path),
                         fix="rebuild the index with `luyen rag index`")
    if rag is not None:
        search = rag.model_dump(include={"k", "mode", "rrf_k", "dense_weight", "bm25_weight", "candidates", "template"})
        manifest = {**manifest, "config": {**manifest["config"], "rag": {**manifest["config"]["rag"], **search}}}
    return Index(path, manifest, chunks, documents, vectors, Lexical.load(path / "bm25"))


def is_index(path: Path) -> bool:
    return (Path(path) / MANIFEST).is_file() and (Path(path) / "chunks.jsonl").is_file()
