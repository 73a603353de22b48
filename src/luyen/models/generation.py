"""The generation_config.json a model folder carries, written the same way by training and export.

    generation_config(tokenizer, template, max_new_tokens=136, repetition_penalty=1.2).save_pretrained(folder)
    generation_config(tokenizer, template, like=model.generation_config).save_pretrained(merged)

Its eos ids are the template's stop tokens (EOS, the end-of-turn token, the token that opens a new
turn), so vLLM, TGI and transformers' own `generate` stop where the model was trained to stop.
"""
from __future__ import annotations


def generation_config(tokenizer, template: str, like=None, **settings):
    """A transformers GenerationConfig: ``like``'s fields (a GenerationConfig to start from; none = the
    defaults), the template's stop ids as eos (one id or a list), pad (the tokenizer's, else the first
    stop id) and bos, then ``settings`` (e.g. max_new_tokens, repetition_penalty) as given."""
    from transformers import GenerationConfig

    from luyen.data.template import stop_token_ids
    stops = stop_token_ids(tokenizer, template)
    fields = {"pad_token_id": tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (stops or [None])[0],
              "bos_token_id": tokenizer.bos_token_id, **settings}
    if stops:
        fields["eos_token_id"] = stops if len(stops) > 1 else stops[0]
    if like is None:
        return GenerationConfig(**fields)
    gen = GenerationConfig.from_dict(like.to_dict())
    for name, value in fields.items():
        setattr(gen, name, value)
    return gen
