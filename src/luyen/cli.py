"""The `luyen` command: one subcommand per stage, each calling that stage's run().

    luyen data check examples/data/vi_ai_qa.jsonl
    luyen data prepare examples/data/vi_ai_qa.jsonl --out runs/demo/data data.split.seed=7
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from luyen.errors import friendly

app = typer.Typer(help="luyen: check your data, fine-tune an open model, prove it got better, ship it.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
data_app = typer.Typer(help="Check, clean, scrub and split a team's data files.", no_args_is_help=True)
config_app = typer.Typer(help="Show the configuration tree.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(config_app, name="config")
console = Console()
_OVERRIDE = re.compile(r"^[A-Za-z_][\w]*(\.[\w]+)*=")


def _models_app():
    from luyen.models.cli import models_app
    return models_app


app.add_typer(_models_app(), name="models", help="Prepare the embedded model, list presets and cached models.")
from luyen.rag.cli import rag_app  # noqa: E402  (light: typer and numpy; the encoder and indexes load on use)
app.add_typer(rag_app, name="rag")
from luyen.serve.cli import serve_command  # noqa: E402  (light: typer only; the server loads on use)
app.command("serve")(serve_command)
from luyen.export.cli import export_command  # noqa: E402  (light: typer only; the exporters load on use)
app.command("export")(export_command)
from luyen.infer import cli as _infer_cli  # noqa: E402  (light: typer and pydantic; the engine loads on use)
app.command("generate")(_infer_cli.generate)
app.command("chat")(_infer_cli.chat)


def split_args(args: list[str]) -> tuple[list[str], list[str]]:
    """Positional words are paths unless they look like overrides (seed=7, data.split.test=0.2) and
    name no existing file; a misspelt key then gets the config's own "did you mean" error."""
    paths = [a for a in args if not _OVERRIDE.match(a) or Path(a).exists()]
    return paths, [a for a in args if a not in paths]


def _quiet() -> None:
    """bitsandbytes offers to fetch a CPU kernel from the hub (luyen never does); transformers warns
    about a name peft still uses. Neither is the user's to act on."""
    import logging
    import warnings
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)


def _config(config: Optional[Path], overrides: list[str]):
    from luyen.config import load_config
    return load_config(config, overrides)


@data_app.command("check")
@friendly
def data_check(
    paths: List[str] = typer.Argument(..., help="Data files, globs or folders; key=value words override config."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model whose tokenizer and chat template measure lengths."),
    max_length: Optional[int] = typer.Option(None, "--max-length", help="Token budget per example (data.max_length)."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML config file."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
):
    """Preflight report: exit 0 when the data is usable for training, 2 when it is not."""
    from luyen.data.report import render_report
    from luyen.data.stage import check
    files, overrides = split_args(paths)
    overrides += [f"model.name={model}"] * bool(model) + [f"data.max_length={max_length}"] * bool(max_length)
    report = check(files, _config(config, overrides))
    if as_json:
        sys.stdout.write(json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    else:
        render_report(report, console)
    raise typer.Exit(0 if report["usable"] else 2)


@data_app.command("prepare")
@friendly
def data_prepare(
    paths: List[str] = typer.Argument(..., help="Data files, globs or folders; key=value words override config."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder for train/val/test.jsonl, report.json, manifest.json."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML config file."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model whose tokenizer measures lengths."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output folder."),
):
    """Clean, deduplicate, scrub and split the data into a run directory."""
    from luyen.data.report import render_report
    from luyen.data.stage import run
    files, overrides = split_args(paths)
    overrides += [f"model.name={model}"] * bool(model)
    manifest = run(_config(config, overrides), files, out, overwrite=overwrite)
    render_report(json.loads((out / "report.json").read_text(encoding="utf-8")), console)
    m = manifest["metrics"]
    console.print(f"wrote {out}/{{train,val,test}}.jsonl: {m['train']} / {m['val']} / {m['test']} records "
                  f"in {manifest['wall_time_s']:.1f} s")


@app.command("train", context_settings={"allow_extra_args": True})
@friendly
def train(
    args: List[str] = typer.Argument(None, help="CONFIG.yaml, then key=value overrides (train.lr=1e-4 ...)."),
    data: Optional[Path] = typer.Option(None, "--data", "-d", help="Prepared data folder (train.data)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder for the trained model and checkpoints."),
    resume: bool = typer.Option(False, "--resume", help="Continue the unfinished run in --out from its last checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace whatever --out holds."),
    methods: bool = typer.Option(False, "--methods", help="List the training methods and exit."),
):
    """Fine-tune (full, LoRA, QLoRA, prompt, P-tuning, freeze) or pretrain a model on prepared data."""
    from luyen.train.methods import METHODS
    if methods:
        for m in METHODS.values():
            console.print(f"[bold]{m.name:9}[/bold] trains {m.trains}; default lr {m.lr:g}; saved as "
                          f"{'a PEFT adapter' if m.adapter else 'safetensors weights'}", highlight=False)
        return
    _quiet()
    from luyen.train.stage import run
    files, overrides = split_args(args or [])
    if len(files) > 1:
        raise typer.BadParameter(f"one config file expected, got {files}")
    cfg = _config(Path(files[0]) if files else None, overrides)
    try:
        manifest = run(cfg, data, out, resume=resume, overwrite=overwrite, console=console)
    except KeyboardInterrupt as e:
        console.print(f"stopped: {e}. Continue with the same command plus --resume.")
        raise typer.Exit(130)
    if manifest:
        m = manifest["metrics"]
        best = f", best validation loss {m['best_val_loss']:.4f}" if m.get("best_val_loss") is not None else ""
        console.print(f"wrote {out}/model ({m['method']}): {m['steps']} steps, final train loss "
                      f"{m['final_train_loss']:.4f}{best}, {m['tokens_per_s']:.0f} tokens/s", highlight=False)


@app.command("eval", context_settings={"allow_extra_args": True})
@friendly
def evaluate(
    args: List[str] = typer.Argument(None, help="Optional CONFIG.yaml, then key=value overrides (generate.max_new_tokens=64 ...)."),
    model: str = typer.Option(..., "--model", "-m", help="A `luyen train` output folder, or any model."),
    data: Path = typer.Option(..., "--data", "-d", help="Prepared data folder (its test split is evaluated)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder for metrics.json, samples.jsonl, report.md/html."),
    baselines: str = typer.Option("zero-shot,few-shot", "--baselines", help="Comma-separated: zero-shot, few-shot, rag."),
    shots: Optional[int] = typer.Option(None, "--shots", help="Training examples shown to the few-shot baseline (default eval.shots, 3)."),
    rag: Optional[Path] = typer.Option(None, "--rag", help="A `luyen rag index` folder: adds base and fine-tuned systems with retrieval."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Evaluate only the first N test examples."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output folder."),
):
    """Compare the fine-tuned model with the base model zero-shot, few-shot and with retrieval on the test split.

    An LLM judge on any OpenAI-compatible endpoint grades answers 1-5 when eval.judge.url is set."""
    _quiet()
    from luyen.evaluate.stage import run
    files, overrides = split_args(args or [])
    cfg = _config(Path(files[0]) if files else None, overrides)
    names = [b.strip() for b in baselines.split(",") if b.strip()]
    manifest = run(cfg, model, data, out, baselines=names, shots=shots, limit=limit, rag=rag,
                   overwrite=overwrite, console=console)
    console.print((out / "report.md").read_text(encoding="utf-8").split("## Samples")[0], highlight=False)
    console.print(f"wrote {out}/report.html in {manifest['wall_time_s']:.0f} s", highlight=False)


@config_app.command("show")
@friendly
def config_show(config: Optional[Path] = typer.Argument(None, help="YAML config file to resolve."),
                overrides: List[str] = typer.Argument(None, help="key=value overrides.")):
    """Print every config key with its value and what it does."""
    import yaml
    from luyen.config import describe
    cfg = _config(config, overrides or [])
    console.print(yaml.safe_dump(cfg.model_dump(), allow_unicode=True, sort_keys=False))
    for key, default, doc in describe():
        console.print(f"[bold]{key}[/bold] (default {default}): {doc}", highlight=False)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
