"""Fold a LoRA adapter into its base and save a plain transformers folder.

    model, tok = load_trained("runs/demo/train")
    save_merged(merge_adapter(model), tok, Path("out"), provenance={"source": "runs/demo/train"})

The folder carries everything a serving engine needs and nothing luyen-specific to read it:
model.safetensors, the tokenizer with the chat template the model was trained with (luyen's default
is written out when the base had none, so vLLM, llama.cpp and Ollama format chats the same way), a
generation_config.json whose eos ids include the template's end-of-turn token, and luyen-export.json
saying where it came from.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from luyen.errors import LuyenError
from luyen.manifest import atomic_write

PROVENANCE = "luyen-export.json"


def merge_adapter(model, source: str = ""):
    """A PeftModel with its adapter weights added into the base (``merge_and_unload``); others as they are."""
    if not hasattr(model, "peft_config"):
        return model
    config = model.peft_config[model.active_adapter]
    if config.is_prompt_learning:
        raise LuyenError(f"a {config.peft_type.value.lower()} adapter adds virtual tokens, not weights, so there is "
                         "nothing to fold into the base model", file=source,
                         fix="serve it with its base (`luyen serve`), or train with train.method=lora to export")
    from luyen.infer.packed import unpack
    unpack(model)  # peft merges through .data, which a packed copy cannot notice
    return model.merge_and_unload()


def save_merged(model, tokenizer, folder: Path, provenance: dict) -> list[Path]:
    """Write the merged model folder; returns the files written."""
    from luyen.data.template import resolve_chat_template
    from luyen.models.generation import generation_config
    folder = Path(folder)
    template = resolve_chat_template(tokenizer)
    tokenizer.chat_template = template
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    generation_config(tokenizer, template, like=model.generation_config).save_pretrained(folder)
    carry_sentencepiece(tokenizer, Path(str(model.name_or_path)), folder)
    atomic_write(folder / PROVENANCE, json.dumps(provenance, ensure_ascii=False, indent=2) + "\n")
    return sorted(p for p in folder.rglob("*") if p.is_file())


def carry_sentencepiece(tokenizer, model_dir: Path, folder: Path) -> Path | None:
    """Copy the SentencePiece model (tokenizer.model) the tokenizer came from into ``folder``.

    transformers 5 saves only tokenizer.json, but llama.cpp's converter reads a SentencePiece
    vocabulary (scores, byte pieces) from tokenizer.model, and for Gemma it has no other way. The
    file is taken from where the tokenizer was loaded, else from the base model's folder (an adapter
    run saves its tokenizer without it), and only if its pieces are exactly the tokenizer's."""
    for candidate in (getattr(tokenizer, "vocab_file", None), model_dir / "tokenizer.model"):
        if candidate and Path(candidate).is_file() and Path(candidate).name == "tokenizer.model":
            if _same_pieces(Path(candidate), tokenizer):
                shutil.copyfile(candidate, folder / "tokenizer.model")
                return folder / "tokenizer.model"
    return None


def _same_pieces(path: Path, tokenizer) -> bool:
    try:
        from sentencepiece import SentencePieceProcessor
        sp = SentencePieceProcessor(model_file=str(path))
    except (ImportError, OSError, RuntimeError):
        return False
    n = sp.get_piece_size()
    return n <= len(tokenizer) and [sp.id_to_piece(i) for i in range(n)] == tokenizer.convert_ids_to_tokens(list(range(n)))
