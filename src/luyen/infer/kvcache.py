"""A KV cache that grows in place, for decoding many rows together.

    from luyen.infer.kvcache import with_room
    cache = with_room(cache, 128)   # a transformers DynamicCache, its full-length layers now with 128 free columns

transformers' `DynamicLayer` appends every decoding step with `torch.cat`, which copies the whole
cache into a freshly allocated tensor, and then the attention reads it again: with the demo's 37
retrieval prompts (~700 positions each, 18 layers, keys and values) that is ~1 GB written and read
per step on top of the attention's own read. A `GrowingLayer` keeps keys and values as views of a
buffer with free columns after them; a step writes its one column in place. When the room runs out
it doubles (amortised), so nothing is ever wrong, only slower. Values are bit-identical to
DynamicLayer's (the same tensors, laid out with a wider stride); transformers' layer is the tests'
reference. Sliding-window layers (which trim as they go) are left as they are.
"""
from __future__ import annotations

import torch
from transformers.cache_utils import DynamicLayer


class GrowingLayer(DynamicLayer):
    """A DynamicLayer whose keys/values are views of buffers with free columns after them."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, room: int):
        super().__init__()
        self.device, self.is_initialized = keys.device, True
        self._place(keys, values, room)

    def _place(self, keys: torch.Tensor, values: torch.Tensor, room: int) -> None:
        """New buffers holding ``keys``/``values`` with ``room`` free columns after them."""
        b, h, n, _ = keys.shape
        self._k = keys.new_empty(b, h, n + room, keys.shape[-1])
        self._v = values.new_empty(b, h, n + room, values.shape[-1])
        self._k[:, :, :n] = keys
        self._v[:, :, :n] = values
        self._view(n)

    def _view(self, n: int) -> None:
        self._n, self.keys, self.values = n, self._k[:, :, :n], self._v[:, :, :n]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        n, m = self._n, key_states.shape[-2]
        if n + m > self._k.shape[-2]:  # out of room: twice the length (or what this update needs)
            self._place(self.keys, self.values, max(n, m))
        self._k[:, :, n:n + m] = key_states
        self._v[:, :, n:n + m] = value_states
        self._view(n + m)
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self._n

    def crop(self, tokens_to_remove: int) -> None:
        if tokens_to_remove > 0:  # DynamicLayer's own rule: a negative count is what crop takes
            raise ValueError(f"crop takes a negative number of tokens to remove, not {tokens_to_remove}")
        self._view(max(0, self._n + tokens_to_remove))

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._k, self._v = self._k[indices], self._v[indices]
        self._view(self._n)

    def batch_repeat_interleave(self, repeats: int) -> None:
        self._k = self._k.repeat_interleave(repeats, dim=0)
        self._v = self._v.repeat_interleave(repeats, dim=0)
        self._view(self._n)

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self.batch_select_indices(beam_idx.to(self._k.device))

    def reset(self) -> None:
        self._k = self._v = None
        self._n = 0
        super().reset()


def with_room(cache, room: int):
    """``cache`` (a transformers Cache) with each full-length DynamicLayer holding its states replaced by a
    GrowingLayer with ``room`` free columns; layers already growing get at least that room. Returns the cache."""
    layers = getattr(cache, "layers", None)
    if not layers or room <= 0:
        return cache
    for i, layer in enumerate(layers):
        if isinstance(layer, GrowingLayer):
            if layer._k.shape[-2] - layer._n < room:
                layer._place(layer.keys, layer.values, room)
        elif type(layer) is DynamicLayer and layer.is_initialized and layer.keys is not None \
                and layer.keys.dim() == 4 and layer.keys.numel():
            layers[i] = GrowingLayer(layer.keys, layer.values, room)
    return cache
