"""`luyen export`: a trained model as merged safetensors, GGUF (llama.cpp, Ollama) or ONNX.

    luyen export runs/demo/train --format gguf --quant q8_0,q4_k_m --out runs/demo/export/gguf
"""
from __future__ import annotations

from typing import List, Optional

import typer

import luyen.cli.common as common
from luyen.cli.common import comma_list, console, quiet, settings
from luyen.errors import LuyenError, friendly


@friendly
def export_command(
    words: List[str] = typer.Argument(None, help="[MODEL] [CONFIG.yaml] [key=value ...]: MODEL is a `luyen train` run folder or any model."),
    model: common.model_option("the run or model to export.") = None,
    fmt: Optional[str] = typer.Option(None, "--format", "-f", help="export.format: merged (safetensors), gguf (llama.cpp, Ollama) or onnx."),
    quant: Optional[str] = typer.Option(None, "--quant", "-q", help="export.quant, comma-separated. gguf: f16, f16_q8emb, q8_0, q4_k_m "
                                        "(default q8_0); onnx: int8."),
    out: common.out_option("the output folder.") = None,
    overwrite: common.overwrite_option() = False,
):
    """Fold the LoRA adapter into its base and export it for vLLM/TGI (merged), llama.cpp/Ollama (gguf) or ONNX."""
    from luyen.export.stage import run
    quiet()
    cfg, rest = settings(words, {"export.format": fmt, "export.quant": comma_list(quant), "out": out,
                                 "overwrite": overwrite, "model.name": model}, rest="model.name")
    name = cfg.model.name
    if not cfg.out:
        raise LuyenError("no output folder given", field="out", fix="pass --out DIR")
    e = cfg.export
    manifest = run(cfg, name, cfg.out, fmt=e.format, quant=e.quant or None, overwrite=cfg.overwrite, console=console)
    show(manifest, cfg.out)


def show(manifest: dict, folder) -> None:
    """The exported files and, for GGUF, how closely each file's greedy answers agree with transformers'."""
    files = [f"{name} ({info['bytes'] / 1e6:.1f} MB)" for name, info in manifest["outputs"].items()
             if name.endswith((".gguf", ".onnx", ".safetensors"))]
    console.print(f"wrote {folder}: {', '.join(files)} in {manifest['wall_time_s']:.0f} s", highlight=False)
    m = manifest["metrics"]
    for precision, diff in m.get("max_abs_diff", {}).items() if m.get("head") else ():
        score = m.get(m["score"], {})
        console.print(f"  {precision}: agreement with transformers {m['agreement'][precision]:.0%}, max |logit "
                      f"difference| {diff:.2g}" + (f"; {m['score']} {score[precision]:.4g} (transformers "
                      f"{score['transformers']:.4g})" if precision in score else ""), highlight=False)
    if manifest["config"]["export"]["format"] == "gguf":
        from luyen.export.gguf import describe_agreement
        for q, a in manifest["metrics"].get("agreement", {}).items():
            console.print(f"  {describe_agreement(q, a)}", highlight=False)
