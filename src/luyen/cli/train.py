"""`luyen train`: fine-tune or pretrain on a prepared data folder.

    luyen train configs/lora.yaml --data runs/demo/data --out runs/demo/train train.lr=1e-4
"""
from __future__ import annotations

from typing import List, Optional

import typer

import luyen.cli.common as common
from luyen.cli.common import console, no_words, quiet, settings
from luyen.errors import LuyenError, friendly


@friendly
def train(
    words: List[str] = typer.Argument(None, help="[CONFIG.yaml] [key=value ...] (train.lr=1e-4 ...)."),
    data: Optional[str] = typer.Option(None, "--data", "-d", help="train.data: the prepared data folder."),
    out: common.out_option("the folder for the trained model and checkpoints.") = None,
    model: common.model_option("the model to start from.") = None,
    resume: bool = typer.Option(False, "--resume", help="train.resume: continue the unfinished run in --out from its last checkpoint."),
    overwrite: common.overwrite_option("replace whatever --out holds.") = False,
    methods: bool = typer.Option(False, "--methods", help="List the training methods and exit."),
):
    """Fine-tune (full, LoRA, QLoRA, prompt, P-tuning, freeze) or pretrain a model on prepared data."""
    if methods:
        from luyen.train.methods import METHODS
        for m in METHODS.values():
            console.print(f"[bold]{m.name:9}[/bold] trains {m.trains}; default lr {m.lr:g}; saved as "
                          f"{'a PEFT adapter' if m.adapter else 'safetensors weights'}", highlight=False)
        return
    quiet()
    from luyen.train.stage import run, summary
    cfg, rest = settings(words, {"train.data": data, "out": out, "model.name": model, "train.resume": resume,
                                 "overwrite": overwrite})
    no_words(rest, "luyen train")
    if not cfg.out:
        raise LuyenError("no output folder given", field="out", fix="pass --out DIR")
    try:
        manifest = run(cfg, cfg.train.data, cfg.out, resume=cfg.train.resume, overwrite=cfg.overwrite, console=console)
    except KeyboardInterrupt as e:
        console.print(f"stopped: {e}. Continue with the same command plus --resume.")
        raise typer.Exit(130)
    if manifest:
        console.print(summary(manifest, cfg.out), highlight=False)
