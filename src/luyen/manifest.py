"""The run-directory contract: outputs written atomically, ``manifest.json`` written last.

A stage directory without a manifest is incomplete, and every stage refuses it as input:

    with RunDir.create(out, stage="data", overwrite=False) as run:
        run.write_text("report.json", text)
        run.finish(config=cfg.model_dump(), inputs=paths, metrics={...})

`luyen run` (luyen.pipeline) runs each stage inside ``fingerprinted(fp)``: the stage's RunDir then
records ``fp`` (a hash of the stage's config sections, its input manifests and luyen's version) in
its manifest, and ``RunDir.plan`` decides from it whether the next run skips, resumes or redoes it.
"""
from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Literal, TypedDict

from luyen.errors import LuyenError

MANIFEST = "manifest.json"
RUN_MARKER = "run.json"  # what an unfinished, resumable stage computes (RunDir.resume_or_start)
Plan = Literal["skip", "resume", "fresh"]
_FINGERPRINT: contextvars.ContextVar[str | None] = contextvars.ContextVar("luyen_stage_fingerprint", default=None)


class Manifest(TypedDict, total=False):
    """What every stage's manifest.json holds (stage functions return it)."""
    stage: str
    created: str
    wall_time_s: float
    seed: int | None
    config: dict[str, Any]
    inputs: list[dict[str, Any]]          # {path, sha256, bytes} of every file the stage read
    outputs: dict[str, dict[str, Any]]    # file name -> {sha256, bytes}
    metrics: dict[str, Any]
    versions: dict[str, str]
    fingerprint: str | None               # set when `luyen run` ran the stage


@contextlib.contextmanager
def fingerprinted(fp: str) -> Iterator[None]:
    """Every manifest finished inside this block records `fp` as its fingerprint."""
    token = _FINGERPRINT.set(fp)
    try:
        yield
    finally:
        _FINGERPRINT.reset(token)


def fingerprint(parts: dict[str, Any]) -> str:
    """A stable hash of what a stage computes from (JSON of `parts`, keys sorted)."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:20]


_LIBS = ("luyen", "torch", "transformers", "tokenizers", "peft", "accelerate", "numpy", "pydantic")


def _umask() -> int:
    """The process umask (read once: setting it is the only way to read it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _umask()
_FILE_MODE = 0o666 & ~_UMASK  # the mode open() gives a new file


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write to a temp file in the same folder, fsync, then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fchmod(f.fileno(), _FILE_MODE)  # mkstemp makes 0600; a run's files are as readable as any other
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def staged(dest: Path, *, durable: bool = False, marker: str = MANIFEST) -> Iterator[Path]:
    """A folder written in full beside `dest`, then renamed into place: readers see the old folder or the
    new one, never half of one. An old `dest` is moved aside (its `marker` file, the manifest, removed
    first, so a half-deleted folder never looks complete) and deleted after. Leftovers of a killed
    process are `.NAME.*.tmp` and `.NAME.*.old` beside `dest`. On an error the temp folder goes and `dest` stays.

        with staged(out / "model") as tmp:
            model.save_pretrained(tmp)

    `durable` fsyncs every file and both folders, so a power cut cannot leave a renamed but empty folder
    (checkpoints). The one temp-then-rename for folders in luyen; single files use `atomic_write`."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    os.chmod(tmp, 0o777 & ~_UMASK)  # mkdtemp makes it private; outputs are ordinary folders
    try:
        yield tmp
        if durable:
            for f in [*(p for p in tmp.rglob("*") if p.is_file()), tmp]:
                _fsync(f)
        if dest.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".old", dir=dest.parent))
            (dest / marker).unlink(missing_ok=True)
            os.replace(dest, trash / dest.name)
            os.replace(tmp, dest)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, dest)
        if durable:
            _fsync(dest.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _LIBS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def read_manifest(run_dir: Path, stage: str | None = None) -> Manifest:
    """Load a finished stage's manifest; refuse a directory that has none (an unfinished run)."""
    path = Path(run_dir) / MANIFEST
    if not path.is_file():
        raise LuyenError("no manifest.json: this run directory is incomplete or not a luyen run",
                         file=str(run_dir), fix="re-run the stage that produces it")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if stage and manifest.get("stage") != stage:
        raise LuyenError(f"this is a '{manifest.get('stage')}' run, expected a '{stage}' run", file=str(run_dir),
                         fix=f"pass the output directory of `luyen {stage}`")
    return manifest


@dataclass
class RunDir:
    """An output directory being written. Files go into ``path``; the manifest marks completion."""

    path: Path
    stage: str
    started: float = field(default_factory=time.time)
    outputs: list[str] = field(default_factory=list)

    @classmethod
    @contextlib.contextmanager
    def create(cls, out: Path, stage: str, overwrite: bool = False) -> Iterator[RunDir]:
        """A stage's output folder, written beside `out` and swapped into place whole when the block ends
        (`staged`): a failed or interrupted run leaves the earlier run as it was, never half of each."""
        out = Path(out)
        cls.check(out, overwrite)
        with staged(out) as tmp, cls(tmp, stage) as rd:
            yield rd

    @staticmethod
    def check(out: Path, overwrite: bool = False) -> None:
        """Refuse an output folder that holds anything unless `overwrite` (before minutes of loading)."""
        out = Path(out)
        if out.exists() and not out.is_dir():
            raise LuyenError("output path exists and is a file", file=str(out), fix="choose a folder path")
        if out.is_dir() and any(out.iterdir()) and not overwrite:
            what = "another run" if (out / MANIFEST).exists() else "files"
            raise LuyenError(f"output folder already holds {what}", file=str(out),
                             fix="choose a new --out folder or pass --overwrite")

    @classmethod
    def resume_or_start(cls, out: Path, stage: str, identity: dict, *, resume: bool, overwrite: bool,
                        check=None) -> tuple[RunDir, bool]:
        """A folder a stage fills in place over many steps (training: checkpoints), and whether this call
        resumes it. `run.json` (written first) holds `identity`, what the run computes; a folder is resumed
        only with `resume` and the same identity (`check(earlier)` may refuse more), restarted only with
        `overwrite`, and a finished one (a manifest) never."""
        out, marker = Path(out), Path(out) / RUN_MARKER
        if out.exists() and not out.is_dir():
            raise LuyenError("output path exists and is a file", file=str(out), fix="choose a folder path")
        busy = out.is_dir() and any(out.iterdir())
        if busy and overwrite:
            (out / MANIFEST).unlink(missing_ok=True)  # first: a half-deleted run must never look complete
            shutil.rmtree(out)
            busy = False
        if not busy:
            out.mkdir(parents=True, exist_ok=True)
            atomic_write(marker, json.dumps(identity) + "\n")
            return cls(out, stage), False
        if (out / MANIFEST).exists():
            raise LuyenError("this output folder holds a finished run", file=str(out),
                             fix="choose a new --out folder or pass --overwrite")
        if not marker.exists():
            raise LuyenError(f"this output folder holds files that are not a luyen {stage} run", file=str(out),
                             fix="choose a new --out folder or pass --overwrite")
        earlier = json.loads(marker.read_text(encoding="utf-8"))
        if check is not None:
            check(earlier)
        if earlier.get("id") != identity["id"]:
            raise LuyenError("this output folder holds a different run (other config or data)", file=str(out),
                             fix="resume with the same config and data, choose a new --out folder, or pass --overwrite")
        if not resume:
            raise LuyenError("this output folder holds an unfinished run", file=str(out),
                             fix="pass --resume to continue it, or --overwrite to start again")
        return cls(out, stage), True

    @staticmethod
    def plan(out: Path, fp: str, *, started: str | None = None, resumable: bool = False) -> Plan:
        """What `luyen run` does with a stage folder: "skip" when its manifest's fingerprint is `fp`,
        "resume" when it is unfinished (no manifest) and was started with the same fingerprint
        (`started`) by a stage that can resume, else "fresh" (the stage rewrites it)."""
        out = Path(out)
        if (out / MANIFEST).is_file():
            try:
                done = json.loads((out / MANIFEST).read_text(encoding="utf-8")).get("fingerprint")
            except (json.JSONDecodeError, UnicodeDecodeError):
                done = None
            return "skip" if done == fp else "fresh"
        if resumable and started == fp and out.is_dir() and any(out.iterdir()):
            return "resume"
        return "fresh"

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:  # leave no half-written output looking complete
            (self.path / MANIFEST).unlink(missing_ok=True)
            for name in self.outputs:
                (self.path / name).unlink(missing_ok=True)

    def file(self, name: str) -> Path:
        self.outputs.append(name)
        return self.path / name

    def write_text(self, name: str, text: str) -> Path:
        path = self.file(name)
        atomic_write(path, text)
        return path

    def write_json(self, name: str, obj: Any) -> Path:
        return self.write_text(name, json.dumps(obj, ensure_ascii=False, indent=2) + "\n")

    def finish(self, *, config: dict, inputs: list[Path], metrics: dict | None = None,
               seed: int | None = None) -> Manifest:
        manifest: Manifest = {
            "stage": self.stage,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "wall_time_s": round(time.time() - self.started, 3),
            "seed": seed,
            "config": config,
            "inputs": [{"path": str(p), "sha256": file_sha256(p), "bytes": p.stat().st_size} for p in inputs],
            "outputs": {name: {"sha256": file_sha256(self.path / name), "bytes": (self.path / name).stat().st_size}
                        for name in self.outputs},
            "metrics": metrics or {},
            "versions": library_versions(),
            "fingerprint": _FINGERPRINT.get(),
        }
        atomic_write(self.path / MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=2) + "\n")
        return manifest
