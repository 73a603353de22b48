"""`luyen config show`: the resolved configuration tree of a command line, with what each key does."""
from __future__ import annotations

from typing import List

import typer

from luyen.cli.common import console, settings
from luyen.errors import LuyenError, friendly

config_app = typer.Typer(help="Show the configuration tree.", no_args_is_help=True)


@config_app.command("show", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@friendly
def config_show(words: List[str] = typer.Argument(None, help="[CONFIG.yaml] [key=value ...], or a whole command line "
                                                  "after its command name: `luyen config show train x.yaml --out y`."),
                keys: bool = typer.Option(False, "--keys", help="Also list every key with its default and meaning.")):
    """Print the config tree a command line resolves to. Every flag is a key (--out is out, --data is
    train.data, ...), so any command line can be shown, and saved as YAML."""
    import yaml

    from luyen.cli.common import SHOW_ONLY, Shown
    from luyen.config import describe
    words = list(words or [])
    if words and words[0] in _commands():
        from luyen.cli import app
        SHOW_ONLY["on"] = True
        try:
            code = app(args=words, standalone_mode=False)  # the command's own errors come back as its exit code
        except Shown:
            return
        finally:
            SHOW_ONLY["on"] = False
        raise typer.Exit(code or 0)
    cfg, rest = settings(words)
    if rest:
        raise LuyenError(f"unexpected words {', '.join(rest)}", fix="put the command first: luyen config show train ...")
    console.print(yaml.safe_dump(cfg.model_dump(), allow_unicode=True, sort_keys=False), highlight=False, markup=False)
    for key, default, doc in describe() if keys else []:
        console.print(f"[bold]{key}[/bold] (default {default}): {doc}", highlight=False)


def _commands() -> set[str]:
    from luyen.cli import app
    return {c.name for c in app.registered_commands} | {g.name for g in app.registered_groups} - {"config"}
