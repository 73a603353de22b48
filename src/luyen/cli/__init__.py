"""The `luyen` command: one thin module per command (read words -> run the stage -> print).

    luyen run configs/demo.yaml                        # every stage, skipping what is up to date
    luyen data check examples/data/vi_ai_qa.jsonl
    luyen train configs/lora.yaml --data runs/x/data --out runs/x/train train.lr=1e-4

Imports go one way: this module imports the command modules, they import `common` (a leaf) and the
stages they call; no stage imports the CLI. Each command module imports its heavy libraries when it
runs, so `luyen --help` stays fast.
"""
from __future__ import annotations

import typer

from luyen.cli.config import config_app
from luyen.cli.data import data_app
from luyen.cli.eval import evaluate
from luyen.cli.export import export_command
from luyen.cli.generate import chat, generate
from luyen.cli.models import models_app
from luyen.cli.predict import predict
from luyen.cli.rag import rag_app
from luyen.cli.run import run
from luyen.cli.serve import serve_command
from luyen.cli.train import train

app = typer.Typer(help="luyen: check your data, fine-tune an open model, prove it got better, ship it.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
_WORDS = {"allow_extra_args": True}
app.command("run", context_settings=_WORDS)(run)
app.add_typer(data_app, name="data")
app.command("train", context_settings=_WORDS)(train)
app.command("eval", context_settings=_WORDS)(evaluate)
app.command("export", context_settings=_WORDS)(export_command)
app.add_typer(rag_app, name="rag")
app.command("generate", context_settings=_WORDS)(generate)
app.command("chat", context_settings=_WORDS)(chat)
app.command("predict")(predict)
app.command("serve", context_settings=_WORDS)(serve_command)
app.add_typer(models_app, name="models", help="Prepare the embedded model, list presets and cached models.")
app.add_typer(config_app, name="config")


def main() -> None:
    app()


__all__ = ["app", "main"]
