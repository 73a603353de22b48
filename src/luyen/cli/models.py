"""`luyen models ...`: prepare the embedded model and see which models are ready on this machine.

    luyen models prepare              # convert the embedded Gemma-3-270M once (about 1-2 minutes)
    luyen models prepare --verify     # and re-hash every file against luyen-model.json
    luyen models list
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer
from rich.table import Column, Table

from luyen.cli.common import console
from luyen.errors import friendly
from luyen.models.embedded import (
    RECORD,
    cache_root,
    check_model_dir,
    prepare_embedded,
    prepare_gguf,
    read_record,
    verify_model_dir,
)
from luyen.models.presets import DEFAULT_MODEL, PRESETS

models_app = typer.Typer(help="Prepare the embedded model, list presets and cached models.", no_args_is_help=True)
CACHE_HELP = "Cache root for converted models (default $XDG_CACHE_HOME/luyen, else ~/.cache/luyen)."


@models_app.command("prepare")
@friendly
def prepare(
    model: str = typer.Argument(DEFAULT_MODEL, help="Preset, .gguf file, hub id (org/name) or model folder."),
    force: bool = typer.Option(False, "--force", help="Convert again even if a finished folder exists (embedded, .gguf)."),
    verify: bool = typer.Option(False, "--verify", help="Re-hash every file against luyen-model.json."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help=CACHE_HELP),
):
    """Make a model ready for offline use: convert the embedded model (or a .gguf) once, or fetch a hub model."""
    from luyen.models.resolve import resolve_model
    started = time.perf_counter()
    preset = PRESETS.get(model)
    if preset is not None and preset.embedded:
        folder = prepare_embedded(cache_dir, force=force)
    elif model.lower().endswith(".gguf"):
        folder = prepare_gguf(model, cache_dir, force=force)
    else:  # a hub model or a local folder: nothing to convert
        folder = resolve_model(model, cache_dir=cache_dir)
    checked = ""
    if verify and (folder / RECORD).is_file():
        verify_model_dir(folder)
        checked = ", every file's sha256 verified"
    elif verify:
        checked = ", not converted by luyen so nothing to verify"
    console.print(f"{folder} ({_size(folder) / 1e9:.2f} GB{checked}, {time.perf_counter() - started:.1f} s)",
                  highlight=False, soft_wrap=True)


@models_app.command("list")
@friendly
def list_models(cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help=CACHE_HELP)):
    """Show the presets and converted GGUF files, and which are ready on this machine (path and size)."""
    from luyen.models.resolve import cached_hub_snapshot
    root = cache_root(cache_dir) / "models"
    table = Table(Column("name", style="bold", no_wrap=True), Column("source", overflow="fold"),
                  Column("params", no_wrap=True), Column("context", no_wrap=True),
                  Column("on this machine", overflow="fold", ratio=1))
    for p in PRESETS.values():
        if p.embedded:
            problem = check_model_dir(root / p.name)
            local = _where(root / p.name) if problem is None else f"[yellow]{problem}[/yellow]; converts on first use"
        else:
            folder = cached_hub_snapshot(p.source)
            local = _where(folder) if folder else "[dim]not downloaded[/dim]" + (" (gated)" * p.gated)
        table.add_row(p.name, "embedded" if p.embedded else p.source, _count(p.params), f"{p.context:,}", local)
    for folder in sorted(root.glob("gguf-*")) if root.is_dir() else []:
        source = (read_record(folder) or {}).get("source", {})
        problem = check_model_dir(folder)
        table.add_row(source.get("file", folder.name), source.get("path", "?"), "", "",
                      _where(folder) if problem is None else f"[yellow]{problem}[/yellow]: {folder}")
    console.print(table)


def _where(folder: Path) -> str:
    return f"{_size(folder) / 1e9:.2f} GB  {folder}"


def _count(params: float) -> str:
    return f"{params / 1e9:.2f}B" if params >= 1e9 else f"{params / 1e6:.0f}M"


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())
