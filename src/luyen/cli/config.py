"""`luyen config show`: the resolved configuration tree of a command line, with what each key does."""
from __future__ import annotations

from typing import List

import typer

from luyen.cli.common import console, settings
from luyen.errors import friendly

config_app = typer.Typer(help="Show the configuration tree.", no_args_is_help=True)


@config_app.command("show")
@friendly
def config_show(words: List[str] = typer.Argument(None, help="[CONFIG.yaml] [key=value ...]: the tree they resolve to."),
                keys: bool = typer.Option(True, "--keys/--no-keys", help="Also list every key with its default and meaning.")):
    """Print every config key with its value (and, with --keys, what it does). Every command's flags are
    keys too (--out is out, --data is train.data, ...), so any command line can be shown and saved."""
    import yaml

    from luyen.config import describe
    cfg, rest = settings(words)
    if rest:
        from luyen.errors import LuyenError
        raise LuyenError(f"unexpected words {', '.join(rest)}", fix="write flags as keys: --out X is out=X")
    console.print(yaml.safe_dump(cfg.model_dump(), allow_unicode=True, sort_keys=False), highlight=False, markup=False)
    for key, default, doc in describe() if keys else []:
        console.print(f"[bold]{key}[/bold] (default {default}): {doc}", highlight=False)
