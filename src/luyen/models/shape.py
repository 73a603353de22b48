"""The one reader of a model's shape: what its width, depth, vocabulary and context are, whatever its
architecture calls them (GPT-2's n_embd / n_layer / n_positions, T5's d_model, Llama's hidden_size ...).

    config_shape(model.config)  # {'model_type': 'llama', 'hidden': 32, 'layers': 2, 'vocab': 600, 'context': 256}
    model_shape(model)          # the same plus 'params' and 'embed' (counted), for a plain, PEFT or meta model

The training estimate, the memory check, prompt tuning's encoder width, the context check and the
adapter-base check (models.trained) all read shapes here.
"""
from __future__ import annotations

# Each entry: (our key, the config attributes that hold it, first found wins).
NAMES = (
    ("hidden", ("hidden_size", "n_embd", "d_model")),
    ("layers", ("num_hidden_layers", "n_layer", "num_layers")),
    ("vocab", ("vocab_size",)),
    ("context", ("max_position_embeddings", "n_positions")),
)


def config_shape(config) -> dict:
    """model_type, hidden, layers, vocab and context (None where the config has no such field) of a config
    object or its dict; a multimodal config is read through its text_config."""
    c = config if isinstance(config, dict) else config.to_dict()
    text = c.get("text_config") or {}
    inner = text if isinstance(text, dict) and text else c
    shape = {"model_type": c.get("model_type")}
    for key, attrs in NAMES:
        shape[key] = next((inner[a] for a in attrs if inner.get(a) is not None), None)
    return shape


def model_shape(model) -> dict:
    """config_shape of the model plus its parameter count ('params') and input-embedding size ('embed')."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    embed = base.get_input_embeddings()
    return {**config_shape(base.config), "params": sum(p.numel() for p in base.parameters()),
            "embed": embed.weight.numel() if embed is not None else 0}
