"""`luyen export`: a trained model as merged safetensors, GGUF (llama.cpp, Ollama) or ONNX.

    luyen export runs/demo/train --format gguf --quant q8_0,q4_k_m --out runs/demo/export/gguf
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from luyen.errors import friendly


@friendly
def export_command(
    args: List[str] = typer.Argument(..., help="A `luyen train` run folder or any model, then optional CONFIG.yaml "
                                     "and key=value overrides."),
    fmt: str = typer.Option("merged", "--format", "-f", help="merged (safetensors), gguf (llama.cpp, Ollama) or onnx."),
    quant: Optional[str] = typer.Option(None, "--quant", "-q", help="Comma-separated. gguf: f16, q8_0, q4_k_m "
                                        "(default q8_0); onnx: int8."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output folder."),
):
    """Fold the LoRA adapter into its base and export it for vLLM/TGI (merged), llama.cpp/Ollama (gguf) or ONNX."""
    from rich.console import Console

    from luyen.cli import _config, _quiet, split_args
    from luyen.export.stage import run
    _quiet()
    console = Console()
    paths, overrides = split_args(args)
    configs = [p for p in paths if p.endswith((".yaml", ".yml")) and Path(p).is_file()]
    models = [p for p in paths if p not in configs]
    if len(models) != 1 or len(configs) > 1:
        raise typer.BadParameter(f"one model (a run folder or a model) and at most one config expected, got {paths}")
    cfg = _config(Path(configs[0]) if configs else None, overrides)
    quants = [q for q in (quant or "").split(",") if q.strip()] or None
    manifest = run(cfg, models[0], out, fmt=fmt, quant=quants, overwrite=overwrite, console=console)
    files = [f"{name} ({info['bytes'] / 1e6:.1f} MB)" for name, info in manifest["outputs"].items()
             if name.endswith((".gguf", ".onnx", ".safetensors"))]
    console.print(f"wrote {out}: {', '.join(files)} in {manifest['wall_time_s']:.0f} s", highlight=False)
    if fmt == "gguf":
        from luyen.export.gguf import describe_agreement
        for q, a in manifest["metrics"].get("agreement", {}).items():
            console.print(f"  {describe_agreement(q, a)}", highlight=False)
