"""Greedy decoding's output layer in int8, its best candidates rescored in fp32.

    screen = Screen.of(model)            # None where it does not apply (see `Screen.of`)
    with screen:                         # inside: the output layer answers through the screen
        model.generate(..., do_sample=False)

A small model's output layer is most of a batched decoding step on a CPU without native bf16:
Gemma-3-270M's 262,144 x 640 product is 2.5x its whole body. Greedy decoding needs only the best
token, so the screen multiplies in int8 (fbgemm's dynamic-activation kernel, one scale per output
row, activations at 7 bits so AVX2's 16-bit sums cannot saturate) and then recomputes in fp32 the
TOP candidates of each row from the layer's own weights, writing them over their int8 values.
Every token that can win therefore carries its fp32 logit: the choice differs from the fp32 layer's
only if the fp32 winner is not among the int8 TOP or two candidates tie within the rounding of
another summation order. The int8 logits themselves are coarse: over 1,190 positions of the demo's
test answers (Gemma-3-270M with the demo adapter) they were off by up to 2.9 (its final norm leaves a
few large channels, and fbgemm scales activations per tensor), yet the fp32 winner never ranked below
9th among them, well inside the 64 rescored, and every position's best token was fp32's. Logit processors (the repetition penalty, banned n-grams) see
the full vector, and a token they push down is rescored only if it was a candidate. Sampling keeps
the fp32 layer: its tail probabilities would move. The fp32 product (`luyen.infer.packed`) is the
reference; `bench/output_layer.py` times both and `bench/eval_speed.py` counts answers that changed.
"""
from __future__ import annotations

import types

import torch

TOP = 64  # candidates per row rescored in fp32
MIN_ROWS = 4 * TOP  # a smaller output layer gains nothing from screening
# rows per int8 call: on the AVX2 EPYC fbgemm multiplied 37 rows by Gemma-3's head in 90 ms in one call and in
# 61 ms in calls of 16 (64 rows: 172 vs 126 ms); each call also scales its own activations, a little finer
ROWS_PER_CALL = 16


def supported() -> str | None:
    """Why int8 screening cannot run here, or None."""
    if "fbgemm" not in torch.backends.quantized.supported_engines and "x86" not in torch.backends.quantized.supported_engines:
        return "this torch build has no fbgemm"
    if not all(hasattr(torch.ops.quantized, op) for op in ("linear_dynamic", "linear_prepack")) \
            or not hasattr(torch, "_make_per_channel_quantized_tensor"):
        return "this torch has no fbgemm dynamic int8 linear (torch marks it deprecated)"
    return None


def quantize_rows(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 per output row: (int8 values, fp32 scales) with weight ~= values * scales[:, None]."""
    scale = (weight.abs().amax(1) / 127).clamp(min=torch.finfo(torch.float32).tiny)
    return torch.clamp(torch.round(weight / scale[:, None]), -127, 127).to(torch.int8), scale


class Screen:
    """The int8 copy of one output layer and the context that routes its forward through it."""

    def __init__(self, layer: torch.nn.Linear):
        import warnings
        self.layer = layer
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch marks its quantized-tensor constructors deprecated
            values, scale = quantize_rows(layer.weight.detach())
            zero = torch.zeros(len(scale), dtype=torch.long)
            q = torch._make_per_channel_quantized_tensor(values, scale.double(), zero, 0)
            self.packed = torch.ops.quantized.linear_prepack(q, None)
        self.stamp = (layer.weight.data_ptr(), layer.weight._version)
        self._saved = None

    @classmethod
    def of(cls, model) -> "Screen | None":
        """A screen for ``model``'s output layer: an fp32 CPU nn.Linear (under peft's wrappers) of at least
        MIN_ROWS rows, on a torch with fbgemm; else None."""
        if supported():
            return None
        layer = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        for _ in range(4):  # peft's wrappers: a trainable-tokens wrapper holds a layer that holds the Linear
            inner = getattr(layer, "base_layer", None) or getattr(layer, "token_adapter", None)
            if inner is None:
                break
            layer = inner
        if not isinstance(layer, torch.nn.Linear) or layer.weight.dtype != torch.float32 \
                or layer.weight.device.type != "cpu" or layer.out_features < MIN_ROWS:
            return None
        return cls(layer)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The layer's output for ``x``: int8 everywhere, fp32 for each row's TOP int8 candidates."""
        layer = self.layer
        flat = x.reshape(-1, x.shape[-1]).contiguous()
        if flat.shape[0] == 0:
            return torch.nn.functional.linear(x, layer.weight, layer.bias)
        out = torch.cat([torch.ops.quantized.linear_dynamic(flat[i:i + ROWS_PER_CALL], self.packed, True)
                         for i in range(0, flat.shape[0], ROWS_PER_CALL)])
        if layer.bias is not None:
            out += layer.bias
        top = out.topk(TOP, dim=-1, sorted=False).indices
        exact = torch.einsum("nd,nkd->nk", flat, layer.weight[top])
        if layer.bias is not None:
            exact += layer.bias[top]
        out.scatter_(1, top, exact)
        return out.reshape(*x.shape[:-1], out.shape[-1])

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        layer = self.layer
        if x.dtype != torch.float32 or torch.is_grad_enabled() or (layer.weight.data_ptr(), layer.weight._version) \
                != self.stamp:
            return (self._saved or type(layer).forward.__get__(layer))(x)
        return self.logits(x)

    def __enter__(self):
        own = vars(self.layer).get("forward")  # luyen.infer.packed's, or None for the class's own
        self._saved = own
        self.layer.forward = types.MethodType(lambda _, x: self._forward(x), self.layer)
        return self

    def __exit__(self, *exc):
        if self._saved is not None:
            self.layer.forward = self._saved
        else:
            vars(self.layer).pop("forward", None)
        self._saved = None
        return False
