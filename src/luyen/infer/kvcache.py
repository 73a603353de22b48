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


def set_states(layer, keys: torch.Tensor, values: torch.Tensor) -> None:
    """Give a cache layer new keys and values (a GrowingLayer keeps as much free room as it had)."""
    if isinstance(layer, GrowingLayer):
        layer._place(keys, values, layer._k.shape[-2] - layer._n)
    else:
        layer.keys, layer.values = keys, values


# Rows per forward pass when many prompts are prefilled (evaluate.likelihood.prefilled_nll, `prefill`). The
# 37 retrieval prompts of the demo (~660 tokens each) with their reference answers, on the 2-core AVX2 EPYC
# in fp32: 92.8 s as one pass, 63.0 s 8 rows at a time, 62.4 s at 4; the elementwise steps (norms, rotary
# embeddings, residual adds) of a 37-row pass run from memory, which moves only ~7.5 GB/s there.
# Generation then decodes all rows together.
PREFILL_ROWS = 8


class Forward:
    """The model with its output layer switched off (final hidden states out), continuing a KV cache:
    the forward pass `prefill` and evaluate.likelihood's scorers share. Position ids go only to forwards
    that take them (bloom's ALiBi reads positions off the attention mask)."""

    def __init__(self, model):
        from luyen.infer.engine import cache_argument, forward_parameters
        from luyen.precision import autocast_for
        from luyen.train.head import output_head
        self.model, self.head = model, output_head(model)
        self.name, self.positions = cache_argument(model), "position_ids" in forward_parameters(model)
        param = next(model.parameters())
        self.device, self.dtype = param.device, autocast_for(param.dtype)

    def __call__(self, ids: torch.Tensor, mask: torch.Tensor, position_ids: torch.Tensor, cache) -> torch.Tensor:
        at = {"position_ids": position_ids.to(self.device)} if self.positions else {}
        with self.head, torch.autocast(self.device.type, dtype=self.dtype or torch.bfloat16,
                                       enabled=self.dtype is not None):
            return self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device), use_cache=True,
                              **{self.name: cache}, **at).logits


def joined(caches: list):
    """One DynamicCache of the rows of several (their layers concatenated along the batch)."""
    from transformers import DynamicCache
    if len(caches) == 1:
        return caches[0]
    layers = zip(*[c.layers for c in caches])
    return DynamicCache([(torch.cat([x.keys for x in layer]), torch.cat([x.values for x in layer])) for layer in layers])


@torch.no_grad()
def prefill(model, ids: torch.Tensor, mask: torch.Tensor):
    """The KV cache of a left-padded batch of prompts less their last token (what `generate` continues
    from), PREFILL_ROWS rows a forward pass, every position kept on every layer (a sliding window is the
    attention mask's job, as in evaluate.likelihood)."""
    from transformers import DynamicCache
    run, caches = Forward(model), []
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    for lo in range(0, ids.shape[0], PREFILL_ROWS):
        part = slice(lo, lo + PREFILL_ROWS)
        cache = DynamicCache()
        run(ids[part, :-1], mask[part, :-1], positions[part, :-1], cache)
        caches.append(cache)
    return joined(caches)
