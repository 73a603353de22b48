"""`luyen predict`: a task head (classifier, extractive QA, seq2seq) over a JSONL file of inputs.

    luyen predict --model runs/intents/train --input messages.jsonl --output labels.jsonl
"""
from __future__ import annotations

from pathlib import Path

import typer

from luyen.cli.common import console, quiet
from luyen.errors import friendly


@friendly
def predict(
    model: str = typer.Option(..., "--model", "-m", help="A `luyen train` run of a task head (or its model folder)."),
    input: Path = typer.Option(..., "--input", "-i", help='JSONL inputs: {"text"} (classify, summarise) or {"question", "context"} (extract).'),
    output: Path = typer.Option(..., "--output", "-o", help="JSONL outputs, one per input line (an input's id is kept)."),
    threads: int = typer.Option(0, help="CPU threads; 0 = every core."),
):
    """Label, extract or summarise every line of a JSONL file with a trained task head."""
    from luyen.tasks.predictor import Predictor, predict_file
    quiet()
    p = Predictor.load(model, threads=threads or None)
    done = predict_file(p, input, output)
    console.print(f"wrote {output}: {done['inputs']} {p.name} predictions, {done['ms_per_input']} ms each", highlight=False)
