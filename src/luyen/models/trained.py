"""Load what `luyen train` produced (or any model folder) for inference, evaluation and export.

    model, tokenizer = load_trained("runs/demo/train")         # a run folder, its model/ folder,
    model, tokenizer = load_trained("path/to/adapter", base="gemma3-270m")   # or any model/adapter

An adapter folder names its base in adapter_config.json, and luyen also records the base's shape in
luyen-base.json; an adapter whose base does not match (another architecture, width, depth or
vocabulary) is refused with the reason, instead of failing deep inside peft or, worse, loading.
"""
from __future__ import annotations

import json
from pathlib import Path

from luyen.errors import LuyenError

BASE_INFO = "luyen-base.json"
ADAPTER_KEYS = ("model_type", "hidden", "layers", "vocab")  # what an adapter's weights depend on (not the context)


def base_shape(config) -> dict:
    """The shape (models.shape.config_shape) of a base model config that an adapter's weights depend on.
    ``config``: a config object or its dict."""
    from luyen.models.shape import config_shape
    shape = config_shape(config)
    return {k: shape[k] for k in ADAPTER_KEYS if shape[k] is not None}


def model_folder(path: str | Path) -> Path:
    """A train run folder means its model/ subfolder."""
    p = Path(path).expanduser()
    if (p / "manifest.json").is_file() and (p / "model").is_dir():
        return p / "model"
    return p


def is_adapter(path: str | Path) -> bool:
    return (model_folder(path) / "adapter_config.json").is_file()


def load_trained(path: str | Path, *, base: str | None = None, dtype=None, trust_remote_code: bool = False):
    """(model, tokenizer) in eval mode; an adapter is applied over its base (not merged)."""
    from luyen.models.resolve import load_model, load_tokenizer
    folder = model_folder(path)
    if not (folder / "adapter_config.json").is_file():
        model = load_model(str(folder), dtype=dtype, trust_remote_code=trust_remote_code)
        return model.eval(), load_tokenizer(str(folder), trust_remote_code=trust_remote_code)
    from peft import PeftModel
    adapter_cfg = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
    base_name = base or adapter_cfg.get("base_model_name_or_path")
    if not base_name:
        raise LuyenError("this adapter does not name its base model", file=str(folder),
                         fix="pass the base model it was trained on")
    model = load_base_model(base_name, dtype=dtype, trust_remote_code=trust_remote_code)
    check_adapter_base(folder, model.config, base_name)
    try:
        model = PeftModel.from_pretrained(model, folder)
    except (RuntimeError, ValueError, KeyError) as e:
        raise LuyenError(f"this adapter does not fit base model {base_name}: {str(e).splitlines()[0][:200]}",
                         file=str(folder), fix="pass the base model the adapter was trained on") from None
    if (folder / "generation_config.json").is_file():  # the adapter's own stop tokens and answer budget
        from transformers import GenerationConfig
        model.get_base_model().generation_config = GenerationConfig.from_pretrained(folder)
    if (folder / "tokenizer_config.json").is_file():  # luyen saves the tokenizer + chat template beside the adapter
        from transformers import AutoTokenizer
        return model.eval(), AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)
    return model.eval(), load_tokenizer(base_name, trust_remote_code=trust_remote_code)


def source_folder(name: str | Path | None, *, cache_dir: str | Path | None = None, trust_remote_code: bool = False
                  ) -> Path:
    """The folder whose files make the model ``name``: a `luyen train` run (or adapter folder) as it is, its
    adapter, tokenizer and chat template beside each other (`load_base_model` merges the adapter), else
    the folder `resolve_model` gives."""
    if name is not None and is_adapter(name):
        return model_folder(name)
    from luyen.models.resolve import resolve_model
    return resolve_model(name, cache_dir=cache_dir, trust_remote_code=trust_remote_code)


def load_base_model(name: str | Path, *, dtype=None, trust_remote_code: bool = False, **kwargs):
    """The model ``name`` names as a base to build on: a model as it is, or a run whose adapter is merged
    into its own base (DPO on top of a finished LoRA SFT run: ``model.name=runs/sft/train``). The merged
    model's name_or_path is the run, so an adapter trained on it names the run as its base."""
    from luyen.models.resolve import load_model
    if not is_adapter(name):
        return load_model(str(name), dtype=dtype, trust_remote_code=trust_remote_code, **kwargs)
    if kwargs.get("quantization_config") is not None:
        raise LuyenError("a 4-bit base cannot be built from an adapter run (its adapter must be merged first)",
                         file=str(name), fix="export the run merged (`luyen export RUN --format merged`) and train "
                         "on that folder, or use train.preference.over=lora")
    model, _ = load_trained(name, dtype=dtype, trust_remote_code=trust_remote_code)
    merged = model.merge_and_unload()
    merged.name_or_path = str(Path(name).expanduser().resolve())
    merged.config._name_or_path = merged.name_or_path
    return merged


def check_adapter_base(folder: Path, base_config, base_name: str) -> None:
    info_path = Path(folder) / BASE_INFO
    if not info_path.is_file():
        return
    saved = json.loads(info_path.read_text(encoding="utf-8"))["shape"]
    # written by an older luyen: the config's own field names (hidden_size, n_layer ...), read as ours
    want = saved if {"hidden", "layers", "vocab"} & set(saved) else base_shape(saved)
    have = base_shape(base_config)
    diff = [f"{k} {want[k]} vs {have.get(k)}" for k in want if have.get(k) != want[k]]
    if diff:
        raise LuyenError(f"this adapter was trained on a different base than {base_name} ({'; '.join(diff)})",
                         file=str(folder), fix="pass the base model it was trained on (see luyen-base.json)")
