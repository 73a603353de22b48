"""What every command shares: its words, its config, quiet libraries, consoles. A leaf: it imports
no other CLI module.

Every command reads its words the same way: `luyen COMMAND [CONFIG.yaml] [key=value ...] [words]
[--flags]`. A word ending in .yaml/.yml that names a file is the config; a key=value word that names
no existing file is an override; the rest are the command's own (data files, documents, a model).
Every flag is a config field (its help says which), set after the YAML and the overrides, typed as
given, so a command line can always be written down as a YAML file.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from typing_extensions import Annotated

from luyen.errors import LuyenError

console = Console()
err = Console(stderr=True, highlight=False)
_OVERRIDE = re.compile(r"^[A-Za-z_][\w]*(\.[\w]+)*=")
_YAML = (".yaml", ".yml")


def model_option(what: str):
    """--model/-m: model.name, the model the command works with, in every command."""
    return Annotated[Optional[str], typer.Option("--model", "-m", help=f"model.name: {what}")]


def out_option(what: str, *extra: str):
    """--out/-o: out, where the command writes, in every command."""
    return Annotated[Optional[str], typer.Option("--out", *extra, "-o", help=f"out: {what}")]


def overwrite_option(what: str = "replace an existing output folder."):
    return Annotated[bool, typer.Option("--overwrite", help=f"overwrite: {what}")]


@dataclass
class Words:
    config: Path | None
    overrides: list[str]
    rest: list[str]


def split_words(words: list[str] | None) -> Words:
    """The config file, the overrides and the command's own words, in their order."""
    words = list(words or [])
    configs = [w for w in words if w.lower().endswith(_YAML) and not _OVERRIDE.match(w)]
    if len(configs) > 1:
        raise LuyenError(f"one config file expected, got {', '.join(configs)}", fix="merge them into one YAML file")
    overrides = [w for w in words if _OVERRIDE.match(w) and not Path(w).exists()]
    rest = [w for w in words if w not in configs and w not in overrides]
    return Words(Path(configs[0]) if configs else None, overrides, rest)


class Shown(Exception):
    """Raised by `settings` under `luyen config show COMMAND ...`: the command stops before any work."""


SHOW_ONLY = {"on": False}


def settings(words: list[str] | None, flags: dict[str, Any] | None = None, rest: str | None = None):
    """(RunConfig, the words left over): YAML, then key=value words, then the flags that were given
    (None, False and [] mean not given). `rest` names the key the command's own words set: a list key
    (data.files, rag.documents) gets them appended, a single key (model.name) takes one word, so the
    tree is the whole command line. Under `luyen config show COMMAND ...` it prints that tree instead
    and stops the command."""
    from luyen.config import load_config
    w = split_words(words)
    given = {key: value for key, value in (flags or {}).items() if value not in (None, False, [], ())}
    cfg = load_config(w.config, w.overrides, given)
    left = w.rest
    if rest and left:
        cfg, left = _take(cfg, w, given, rest), []
    if SHOW_ONLY["on"]:
        import yaml
        console.print(yaml.safe_dump(cfg.model_dump(), allow_unicode=True, sort_keys=False), highlight=False, markup=False)
        raise Shown()
    return cfg, left


def _take(cfg, w: Words, given: dict, key: str):
    """The config with the command's own words set into `key`."""
    from luyen.config import load_config
    node = cfg
    for part in key.split("."):
        node = getattr(node, part)
    if isinstance(node, list):
        value: Any = [*node, *w.rest]
    elif len(w.rest) > 1 or key in given:
        raise LuyenError(f"one {key} expected, got {', '.join(w.rest + ([given[key]] if key in given else []))}",
                         fix=f"name it once: as a word or with its flag ({key})")
    else:
        value = w.rest[0]
    return load_config(w.config, w.overrides, {**given, key: value})


def comma_list(text: str | None) -> list[str] | None:
    """"zero-shot, few-shot" -> ["zero-shot", "few-shot"]; None stays None (not given)."""
    return None if text is None else [part.strip() for part in text.split(",") if part.strip()]


def no_words(rest: list[str], what: str) -> None:
    if rest:
        raise LuyenError(f"unexpected word{'s' * (len(rest) > 1)} {', '.join(rest)}",
                         fix=f"{what} takes CONFIG.yaml, key=value overrides and --flags")


def quiet() -> None:
    """bitsandbytes offers to fetch a CPU kernel from the hub (luyen never does); transformers warns
    about a name peft still uses. Neither is the user's to act on."""
    import logging
    import warnings
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
