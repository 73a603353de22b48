"""`data check` then `data prepare` on the same files read them once.

    key = scan_key(files, cfg, lambda: tokenizer_folder, estimate)
    keep(key, report, outcome, candidates)           # after `check`'s scan
    hit = find(key)                                  # in `prepare`: (report, keep, split, candidates) or None

Both commands run the same scan (parse, clean, scrub, measure, deduplicate, split); `check` stops at
the report, `prepare` also writes the splits. On 1M short records that scan is ~40 s of each command on
a 2-core AVX2 EPYC. So `check` leaves what it found in the cache, and a `prepare` of the same inputs with
the same configuration writes its files from it: the same split files, byte for byte, since they are
what its own scan would produce (tests compare the two), and the same report, whose training-time
estimate is the one `check` measured (every run measures the machine's matmul peak afresh).

The key is a hash of everything the scan's result depends on: each input's path and contents, the whole
run configuration, the tokenizer's files and the model's config (the report's estimate reads it), and
the source of luyen's data stage itself, so an upgrade never reuses an old scan. Only scans of inputs of
at least MIN_BYTES are kept (below that the scan takes a second), and only the newest KEEP of them
(~the kept records' size each, under ``~/.cache/luyen/scans``). A scan with errors under
data.on_error=fail is not kept: `prepare` must stop at the first error itself. LUYEN_SCAN_CACHE=0 in the
environment keeps and reuses nothing.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

MIN_BYTES = 4 << 20
KEEP = 2
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
                    "chat_template.jinja", "chat_template.json", "vocab.txt", "vocab.json", "merges.txt",
                    "config.json", "generation_config.json")


def root() -> Path:
    from luyen.models.embedded import cache_root
    return cache_root() / "scans"


def scan_key(files: list[Path], cfg, folder, estimate: bool) -> str | None:
    """The cache key of a scan of ``files``, or None when they are too small to be worth keeping.
    ``folder()``: the folder of the tokenizer that measures the data (only asked for large inputs)."""
    if os.environ.get("LUYEN_SCAN_CACHE") == "0" or sum(f.stat().st_size for f in files) < MIN_BYTES:
        return None
    h = hashlib.blake2b(digest_size=20)
    h.update(json.dumps({"config": cfg.model_dump(mode="json"), "estimate": estimate}, sort_keys=True).encode())
    for src in sorted(Path(__file__).parent.glob("*.py")):  # luyen's data stage as it is now
        h.update(src.name.encode() + src.read_bytes())
    folder = Path(folder())
    for name in _TOKENIZER_FILES:
        if (folder / name).is_file():
            h.update(name.encode() + (folder / name).read_bytes())
    for f in files:
        h.update(str(f.resolve()).encode() + b"\0")
        with open(f, "rb") as fh:
            while block := fh.read(1 << 22):
                h.update(block)
    return h.hexdigest()


def keep(key: str | None, report: dict, outcome, candidates: Path, on_error: str) -> None:
    """Keep a finished scan under ``key`` (written to a temporary folder, then renamed into place). The
    ``candidates`` file is moved, not copied: it is the scan's scratch file, which its caller discards."""
    if key is None or (on_error == "fail" and report["errors"]["count"]):
        return
    base = root()
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=base))
    try:
        shutil.move(candidates, tmp / "candidates.jsonl")
        np.savez(tmp / "outcome.npz", keep=outcome.keep, split=outcome.split)
        (tmp / "report.json").write_text(json.dumps(report, ensure_ascii=False), encoding="utf-8")
        shutil.rmtree(base / key, ignore_errors=True)
        tmp.rename(base / key)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    scans = sorted((p for p in base.iterdir() if not p.name.startswith(".")), key=lambda p: p.stat().st_mtime)
    for old in scans[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)


def find(key: str | None):
    """(report, keep, split, candidates path) of a kept scan, or None."""
    folder = root() / key if key else None
    if folder is None or not (folder / "report.json").is_file():
        return None
    with np.load(folder / "outcome.npz") as arrays:
        keep_mask, split = arrays["keep"], arrays["split"]
    return json.loads((folder / "report.json").read_text(encoding="utf-8")), keep_mask, split, folder / "candidates.jsonl"
