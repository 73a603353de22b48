"""`luyen rag index`: build an index folder from documents, or update one without re-embedding it all.

    run(cfg, ["examples/data/airline_policies/"], Path("runs/rag"))             # build, or sync to these docs
    run(cfg, ["new-policy.md"], Path("runs/rag"), add=True)                       # add or replace documents
    run(cfg, ["hoan-ve.md"], Path("runs/rag"), remove=True)                       # drop documents by name

A plain build on an existing index makes it hold exactly the given documents and reuses the passages
and vectors of every document whose sha256 (and the encoder and chunk settings) did not change;
--add and --remove keep the index's own settings. Only new or changed documents are embedded. faiss
removes and adds vectors by passage id; BM25 statistics span the whole corpus, so the bm25s index
is rebuilt from the stored passages (no embedding, milliseconds for thousands of passages).

The new folder is written beside the old one, `manifest.json` last, then renamed into place: a crash
leaves the previous index (or nothing), never a half-written one.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from luyen.config import RunConfig
from luyen.errors import LuyenError
from luyen.manifest import MANIFEST, Manifest, RunDir, staged
from luyen.rag.chunk import chunk_document
from luyen.rag.documents import Document, read_documents
from luyen.rag.encoder import encoder_name
from luyen.rag.index import STAGE, _faiss, load_index
from luyen.rag.lexical import Lexical, index_terms

_CHUNKING = ("encoder", "chunk_tokens", "overlap_tokens", "text_field")


def run(cfg: RunConfig, docs: list[str | Path], out: Path, *, add: bool = False, remove: bool = False,
        overwrite: bool = False) -> Manifest:
    """Write (or update) the index at `out`; returns its manifest."""
    if add and remove:
        raise LuyenError("--add and --remove together", fix="run one, then the other")
    out, started = Path(out), time.time()
    old = _previous(out, overwrite, required=add or remove)
    settings = dict(old.settings) if old and (add or remove) else cfg.rag.model_dump()
    settings["encoder"] = encoder_name(settings["encoder"])
    if old and any(old.settings[key] != settings[key] for key in _CHUNKING):
        old = None  # other encoder or chunking: nothing can be reused
    kept = dict(old.documents) if old else {}
    skipped: list[dict] = []
    if remove:
        _drop(kept, [str(d) for d in docs], out)
        fresh: list[Document] = []
    else:
        fresh, skipped = read_documents(docs, settings["text_field"])
        if not fresh:
            raise LuyenError(f"no readable document; {len(skipped)} skipped, first: {skipped[0]['error']}"
                             if skipped else "no document given", fix="check the files reported above")
        if not add:
            kept = {s: d for s, d in kept.items() if s in {doc.source for doc in fresh}}
        unchanged = {doc.source for doc in fresh if doc.source in kept and kept[doc.source]["sha256"] == doc.sha256}
        kept = {s: d for s, d in kept.items() if s not in {doc.source for doc in fresh} or s in unchanged}
        fresh = [doc for doc in fresh if doc.source not in unchanged]
    return _write(out, settings, old, kept, fresh, skipped, started)


def _previous(out: Path, overwrite: bool, required: bool):
    """The index at `out` to update, or None; refuses to replace anything that is not one."""
    if required and not (out / MANIFEST).is_file():
        raise LuyenError("no finished index here to update", file=str(out),
                         fix="build it first with `luyen rag index DOCS --out FOLDER`")
    if out.exists() and not out.is_dir():
        raise LuyenError("output path exists and is a file", file=str(out), fix="choose a folder path")
    if overwrite or not out.exists() or not any(out.iterdir()):
        return None
    manifest = out / MANIFEST
    if not manifest.is_file() or json.loads(manifest.read_text(encoding="utf-8")).get("stage") != STAGE:
        raise LuyenError("output folder holds something other than a luyen rag index", file=str(out),
                         fix="choose a new --out folder or pass --overwrite")
    return load_index(out)


def _drop(kept: dict, names: list[str], out: Path) -> None:
    missing = [n for n in names if n not in kept]
    if missing:
        raise LuyenError(f"not in the index: {', '.join(missing)}", file=str(out),
                         fix=f"name documents as the index lists them, e.g. {next(iter(kept), 'doc.md')}")
    for name in names:
        del kept[name]
    if not kept:
        raise LuyenError("that would leave the index empty", file=str(out), fix="delete the folder instead")


def _write(out: Path, settings: dict, old, kept: dict, fresh: list[Document], skipped: list[dict],
           started: float) -> dict:
    encoder = _encoder(settings) if fresh or old is None else None  # removing documents embeds nothing
    keep_ids = {i for d in kept.values() for i in d["ids"]}
    rows = [c for c in old.chunks if c["id"] in keep_ids] if old else []
    next_id = old.manifest["metrics"]["next_id"] if old else 0
    new_rows, documents = [], {s: kept[s] for s in kept}
    for doc in fresh:
        chunks = chunk_document(doc, encoder.count_tokens, settings["chunk_tokens"], settings["overlap_tokens"])
        ids = list(range(next_id, next_id + len(chunks)))
        next_id += len(chunks)
        new_rows += [{"id": i, **{k: v for k, v in vars(c).items() if v is not None}} for i, c in zip(ids, chunks)]
        documents[doc.source] = {"path": str(doc.path), "sha256": doc.sha256, "title": doc.title, "ids": ids}
    about = ({"name": encoder.name, "dim": encoder.dim, "window": encoder.window, "cross_lingual": encoder.cross_lingual}
             if encoder else old.manifest["config"]["encoder"])
    index = _vectors(old, keep_ids, about["dim"])
    if new_rows:
        head_room = encoder.window - settings["chunk_tokens"]
        vectors = encoder.embed([indexed_text(r, head_room) for r in new_rows])
        index.add_with_ids(vectors, np.array([r["id"] for r in new_rows], dtype=np.int64))
    rows += new_rows
    metrics = {"documents": len(documents), "passages": len(rows), "embedded_documents": len(fresh),
               "reused_documents": len(kept), "removed_documents": len(old.documents) - len(kept) if old else 0,
               "skipped": skipped, "next_id": next_id}
    config = {"rag": settings, "encoder": about}
    return _publish(out, rows, documents, index, config, [doc.path for doc in fresh], metrics, started)


def _encoder(settings: dict):
    from luyen.rag.encoder import load_encoder
    encoder = load_encoder(settings["encoder"])
    check_window(settings["chunk_tokens"], encoder.window)
    return encoder


def check_window(chunk_tokens: int, window: int) -> None:
    """Passages must fit the encoder's window, or embedding would silently cut them."""
    if chunk_tokens > window:
        raise LuyenError(f"passages of {chunk_tokens} tokens exceed the encoder's window of {window}",
                         field="rag.chunk_tokens", fix=f"set rag.chunk_tokens={window} or less")


def indexed_text(row: dict, head_room: int) -> str:
    """What is embedded and BM25-indexed: the heading path, then the passage. WordPiece gives at most
    one token per character, so a heading cut to `head_room` characters cannot push the passage out of
    the encoder's window."""
    heading = row.get("heading", "")[:head_room]
    return f"{heading}\n{row['text']}" if heading else row["text"]


def _vectors(old, keep_ids: set[int], dim: int):
    faiss = _faiss()
    if old is None:
        return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    index = old.vectors
    gone = np.array([c["id"] for c in old.chunks if c["id"] not in keep_ids], dtype=np.int64)
    if len(gone):
        index.remove_ids(gone)
    return index


def _publish(out: Path, rows: list[dict], documents: dict, index, config: dict, inputs: list[Path],
             metrics: dict, started: float) -> dict:
    """Write everything into a temp folder beside `out`, manifest last, then swap it into place."""
    with staged(out) as tmp, RunDir(tmp, stage=STAGE, started=started) as run:
        run.write_text("chunks.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        run.write_json("documents.json", documents)
        _faiss().write_index(index, str(run.file("vectors.faiss")))
        head_room = config["encoder"]["window"] - config["rag"]["chunk_tokens"]
        Lexical.build([index_terms(indexed_text(r, head_room)) for r in rows]).save(tmp / "bm25")
        return run.finish(config=config, inputs=inputs, metrics=metrics)
