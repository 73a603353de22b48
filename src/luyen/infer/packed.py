"""fp32 matmuls with their weights laid out once, for CPU inference.

    from luyen.infer.packed import pack
    summary = pack(model)    # "oneDNN prepacked: 127 fp32 linears (1.07 GB)" or why not

`nn.Linear` hands its weight to the BLAS on every call, which lays it out again ("packs" it) each
time. For a small model's wide output layer that costs more than the multiply itself: measured on a
2-core AMD EPYC (AVX2, fp32), Gemma-3-270M's
262k-row output layer took 50 ms at one row and 228 ms at 37 rows through `F.linear`, and 23 ms and
110 ms with its weight packed once for oneDNN; the body's 640x2048 projections gain 1.6x at 37 rows.
`pack` does for every fp32 `nn.Linear` on the CPU what TorchInductor's freezing pass does
(`torch.ops.mkldnn._reorder_linear_weight`, then `_linear_pointwise` per call), without compiling.

`F.linear` stays the reference: a packed layer falls back to it whenever its input is not fp32
(autocast), when gradients are on, or when its weight was replaced or changed in place by a tracked
operation since packing; tests compare the two. A change through `.data` (peft's merge writes
`weight.data += delta`) is invisible to torch's version counter: `unpack` first, as
`luyen.export.merged.merge_adapter` does.
The packed copies are plain attributes, not buffers, so `state_dict` and saving never see them; they
cost a second copy of each weight, so `pack` skips a model whose copy would not fit in a quarter of
the memory that is free.
"""
from __future__ import annotations

import types

import torch
import torch.nn.functional as F

_ATTR = "_luyen_packed"


def supported() -> str | None:
    """Why packing cannot run here, or None when it can."""
    if not torch.backends.mkldnn.is_available():
        return "this torch build has no oneDNN"
    if not hasattr(torch.ops.mkldnn, "_reorder_linear_weight"):
        return "this torch has no oneDNN weight prepacking"
    return None


def _stamp(weight: torch.Tensor) -> tuple:
    return weight.data_ptr(), weight._version


def _packed_forward(self, x: torch.Tensor) -> torch.Tensor:
    weight, packed = self.weight, getattr(self, _ATTR)
    if x.dtype != torch.float32 or (torch.is_grad_enabled() and (weight.requires_grad or x.requires_grad)) \
            or packed[1] != _stamp(weight) or x.device.type != "cpu":
        return F.linear(x, weight, self.bias)
    flat = x.reshape(-1, x.shape[-1]).contiguous()
    if flat.shape[0] == 0:
        return F.linear(x, weight, self.bias)
    y = torch.ops.mkldnn._linear_pointwise(flat, packed[0], self.bias, "none", [], "")
    return y.reshape(*x.shape[:-1], y.shape[-1])


def packable(module: torch.nn.Module) -> bool:
    w = getattr(module, "weight", None)
    return (type(module) is torch.nn.Linear and isinstance(w, torch.Tensor) and w.dtype == torch.float32
            and w.device.type == "cpu" and w.dim() == 2 and not hasattr(module, _ATTR)
            and (module.bias is None or module.bias.dtype == torch.float32))


def pack_linear(module: torch.nn.Linear, rows_hint: int = 1) -> None:
    """Pack one Linear's weight and route its forward through the packed copy."""
    with torch.no_grad():
        packed = torch.ops.mkldnn._reorder_linear_weight(module.weight.detach(), rows_hint)
    setattr(module, _ATTR, (packed, _stamp(module.weight)))
    module.forward = types.MethodType(_packed_forward, module)


def unpack(model: torch.nn.Module) -> None:
    """Undo `pack`: every Linear multiplies through F.linear again and the copies are freed."""
    for module in model.modules():
        if hasattr(module, _ATTR):
            delattr(module, _ATTR)
            del module.forward  # the class's own forward again


def pack(model: torch.nn.Module, budget_bytes: int | None = None) -> str:
    """Pack every fp32 CPU `nn.Linear` in `model` (LoRA layers' base layers included; LoRA's own small
    matrices stay as they are); with gradients on, they multiply through F.linear as before. Returns a one-line summary of what it did or why not."""
    why = supported()
    if why:
        return f"plain F.linear ({why})"
    # an adapter's own small matrices (peft's lora_A/lora_B/...) are left to F.linear: packing gains nothing there
    layers = [m for name, m in model.named_modules()
              if packable(m) and ".lora_" not in f".{name}"]
    if not layers:
        return "plain F.linear (no fp32 linear on the CPU)"
    size = sum(m.weight.numel() * 4 for m in layers)
    if budget_bytes is None:
        import psutil
        budget_bytes = psutil.virtual_memory().available // 4
    if size > budget_bytes:
        return f"plain F.linear (a packed copy of {size / 1e9:.2f} GB would not fit in a quarter of free memory)"
    for m in layers:
        pack_linear(m)
    return f"oneDNN prepacked fp32 matmuls: {len(layers)} linears ({size / 1e9:.2f} GB copy)"
