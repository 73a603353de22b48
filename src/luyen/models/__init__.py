"""Models: resolve a preset, folder, .gguf file or hub id to a local folder; the embedded default.

    from luyen.models import load_model, load_tokenizer, resolve_model
    folder = resolve_model("gemma3-270m")   # ~/.cache/luyen/models/gemma3-270m, converted on first use
"""
from luyen.models.embedded import cache_root, prepare_embedded, prepare_gguf, verify_model_dir
from luyen.models.presets import DEFAULT_MODEL, PRESETS, Preset
from luyen.models.resolve import load_model, load_tokenizer, resolve_model

__all__ = ["DEFAULT_MODEL", "PRESETS", "Preset", "cache_root", "load_model", "load_tokenizer", "prepare_embedded",
           "prepare_gguf", "resolve_model", "verify_model_dir"]
