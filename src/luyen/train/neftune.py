"""NEFTune (Jain et al. 2023, "NEFTune: Noisy Embeddings Improve Instruction Finetuning"): uniform noise
on the input embeddings while training, train.neftune_alpha its scale.

    with noisy(model, alpha=5.0):    # the training loop; noise only while the model is in training mode
        ...

transformers' own hook (integrations.neftune) adds noise drawn from U(-m, m), m = alpha / sqrt(length x
width), to an embedding's output when the module is in training mode, so validation sees clean
embeddings. It is put on every module that embeds input tokens: transformers' activate_neftune hooks
only get_input_embeddings(), which an encoder-decoder such as T5 (transformers 5) does not run (its
encoder and decoder hold their own modules, tied by weight), so there it would add nothing.
"""
from __future__ import annotations

from contextlib import contextmanager


def input_embeddings(model) -> list:
    """The modules that embed `model`'s input tokens (a peft model's base model's): its input embeddings
    and, for an encoder-decoder, its encoder's and decoder's."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    found = [base.get_input_embeddings()]
    if getattr(base.config, "is_encoder_decoder", False):
        found += [part().get_input_embeddings() for part in (base.get_encoder, base.get_decoder)]
    return list({id(m): m for m in found}.values())


@contextmanager
def noisy(model, alpha: float):
    """Noise on `model`'s input embeddings for the duration; nothing when alpha is 0. The hooks go when
    it ends, so nothing after it (saving, evaluation, export) is noised."""
    if not alpha:
        yield
        return
    from transformers.integrations.neftune import neftune_post_forward_hook
    modules = input_embeddings(model)
    handles = []
    for m in modules:
        m.neftune_noise_alpha = alpha
        handles.append(m.register_forward_hook(neftune_post_forward_hook))
    try:
        yield
    finally:
        for m, handle in zip(modules, handles):
            handle.remove()
            del m.neftune_noise_alpha
