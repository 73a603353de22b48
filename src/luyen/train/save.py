"""The trained model's folder, as every later stage reads it.

    save_model(model, tokenizer, template, run / "model", rd, max_new_tokens=136, repetition_penalty=1.1)

It holds the weights in the format the method produces (a PEFT adapter with the base it fits, or a
safetensors model), the tokenizer with the chat template it was trained with, and a
`generation_config.json` carrying what generation needs from training: the stop tokens, the answer
budget and the run's repetition penalty. Written to a temp folder and renamed into place.
"""
from __future__ import annotations

import json
from pathlib import Path

from luyen.manifest import RunDir, atomic_write, staged


def method_is_adapter(model) -> bool:
    return hasattr(model, "peft_config")


def save_model(model, tokenizer, template: str | None, folder: Path, rd: RunDir, *,
               max_new_tokens: int | None = None, repetition_penalty: float | None = None) -> None:
    """The trained model in the format its method produces, in a staged folder (whole or not at all)."""
    with staged(folder) as tmp:
        _write(model, tokenizer, template, tmp, max_new_tokens, repetition_penalty)
    rd.outputs += [str(f.relative_to(rd.path)) for f in sorted(folder.rglob("*")) if f.is_file()]


def _write(model, tokenizer, template: str | None, tmp: Path, max_new_tokens, repetition_penalty) -> None:
    from luyen.models.generation import generation_config
    model.save_pretrained(tmp, safe_serialization=True)
    if template is not None:
        tokenizer.chat_template = template
    tokenizer.save_pretrained(tmp)
    if template is None:  # a masked LM: no chat, no generation
        return
    # the stops, and the run's generate settings, travel with the model
    generation_config(tokenizer, template, max_new_tokens=max_new_tokens,
                      repetition_penalty=repetition_penalty).save_pretrained(tmp)
    if method_is_adapter(model):
        from luyen.models.trained import BASE_INFO, base_shape
        base = model.get_base_model()
        atomic_write(tmp / BASE_INFO, json.dumps({"base": str(getattr(base, "name_or_path", "")),
                                                  "shape": base_shape(base.config)}, indent=1) + "\n")
