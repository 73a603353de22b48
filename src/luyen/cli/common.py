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
from typing import Any

from rich.console import Console

from luyen.errors import LuyenError

console = Console()
err = Console(stderr=True, highlight=False)
_OVERRIDE = re.compile(r"^[A-Za-z_][\w]*(\.[\w]+)*=")
_YAML = (".yaml", ".yml")


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


def settings(words: list[str] | None, flags: dict[str, Any] | None = None):
    """(RunConfig, the command's own words): YAML, then key=value words, then the flags that were given
    (None, False and [] mean not given)."""
    from luyen.config import load_config
    w = split_words(words)
    given = {key: value for key, value in (flags or {}).items() if value not in (None, False, [], ())}
    return load_config(w.config, w.overrides, given), w.rest


def comma_list(text: str | None) -> list[str] | None:
    """"zero-shot, few-shot" -> ["zero-shot", "few-shot"]; None stays None (not given)."""
    return None if text is None else [part.strip() for part in text.split(",") if part.strip()]


def one_model(rest: list[str], flag: str | None) -> str | None:
    """A command's MODEL word or its --model flag (not both, at most one word)."""
    if len(rest) > 1 or (rest and flag):
        raise LuyenError(f"one model expected, got {', '.join(rest + ([flag] if flag else []))}",
                         fix="name the model once: as the first word or with --model")
    return rest[0] if rest else flag


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
