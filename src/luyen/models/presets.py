"""Named models a user can pick with ``model.name=...``: the embedded default and a few hub models.

The shape columns come from each model's config.json; `Preset.shape` gives them in the keys the
estimate reads (models.shape.model_shape), before any weights are downloaded:

    from luyen.models.presets import PRESETS
    PRESETS["qwen2.5-0.5b-instruct"].source   # 'Qwen/Qwen2.5-0.5B-Instruct'
"""
from __future__ import annotations

from dataclasses import dataclass

EMBEDDED = "embedded"  # `source` of the model shipped as a pip package (no download, works offline)
DEFAULT_MODEL = "gemma3-270m"


@dataclass(frozen=True)
class Preset:
    name: str
    source: str        # EMBEDDED or a Hugging Face hub id
    params: float      # total parameters, embeddings included
    hidden: int        # hidden_size
    layers: int        # num_hidden_layers
    vocab: int         # vocab_size (rows of the embedding / LM head)
    context: int       # max_position_embeddings
    instruct: bool     # instruction-tuned, ships a chat template
    gated: bool = False  # the hub asks users to accept a licence and log in first

    @property
    def embedded(self) -> bool:
        return self.source == EMBEDDED

    @property
    def embed_params(self) -> int:
        """Embedding parameters (the LM head is tied to them in every preset here)."""
        return self.vocab * self.hidden

    @property
    def shape(self) -> dict:
        """The shape in the keys of models.shape.model_shape, before any file of the model is on disk."""
        return {"params": self.params, "embed": self.embed_params, "hidden": self.hidden, "layers": self.layers,
                "vocab": self.vocab, "context": self.context}


PRESETS: dict[str, Preset] = {p.name: p for p in [
    Preset("gemma3-270m", EMBEDDED, 268e6, 640, 18, 262_144, 32_768, instruct=False),
    Preset("gemma3-270m-it", "google/gemma-3-270m-it", 268e6, 640, 18, 262_144, 32_768, instruct=True, gated=True),
    Preset("smollm2-135m-instruct", "HuggingFaceTB/SmolLM2-135M-Instruct", 135e6, 576, 30, 49_152, 8_192,
           instruct=True),
    Preset("smollm2-360m-instruct", "HuggingFaceTB/SmolLM2-360M-Instruct", 362e6, 960, 32, 49_152, 8_192,
           instruct=True),
    Preset("qwen2.5-0.5b-instruct", "Qwen/Qwen2.5-0.5B-Instruct", 494e6, 896, 24, 151_936, 32_768, instruct=True),
    Preset("qwen2.5-1.5b-instruct", "Qwen/Qwen2.5-1.5B-Instruct", 1.54e9, 1536, 28, 151_936, 32_768, instruct=True),
    Preset("gemma3-1b-it", "google/gemma-3-1b-it", 1.0e9, 1152, 26, 262_144, 32_768, instruct=True, gated=True),
    Preset("llama3.2-1b-instruct", "meta-llama/Llama-3.2-1B-Instruct", 1.24e9, 2048, 16, 128_256, 131_072,
           instruct=True, gated=True),
]}
