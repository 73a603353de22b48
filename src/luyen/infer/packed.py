"""CPU inference matmuls with their weights laid out once: fp32, and bf16 where the CPU multiplies it.

    from luyen.infer.packed import pack
    summary = pack(model)    # "oneDNN prepacked fp32 matmuls: 127 linears (1.07 GB copy)" or why not
    summary = pack(model, dtype=torch.bfloat16)   # a bf16 model on an AVX512-BF16/AMX CPU

`nn.Linear` hands its weight to the BLAS on every call, which lays it out again ("packs" it) each
time. For a small model's wide output layer that costs more than the multiply itself: measured on a
2-core AMD EPYC (AVX2, fp32), Gemma-3-270M's
262k-row output layer took 50 ms at one row and 228 ms at 37 rows through `F.linear`, and 23 ms and
110 ms with its weight packed once for oneDNN; the body's 640x2048 projections gain 1.6x at 37 rows.
`pack` does for every fp32 `nn.Linear` on the CPU what TorchInductor's freezing pass does
(`torch.ops.mkldnn._reorder_linear_weight`, then `_linear_pointwise` per call), without compiling.

bf16 weights on a CPU with native bf16 (AVX512-BF16/AMX, where luyen.precision runs inference in bf16)
gain the same way: on a 2-core AMX Xeon the output layer took 20.6 ms at 37 rows and 14.9 ms at one
through `F.linear`, 16.2 and 8.2 ms packed as `pack` lays it out (for one row; laid out for 8 rows, 37
took 10.6 ms and one the same 8.2, a layout not adopted yet: it would part greedy answers again); one
transformers stream of the demo model went from 17.2
to 21.4 tokens/s and the demo's evaluation stage from 130 to 99 s. Each product is bf16 with fp32
accumulation either way, but oneDNN's packed kernel sums in another order, so a greedy answer can part
from the unpacked one at a near-tie. Both are as close to fp32: teacher-forced on the demo's 2,860
reference tokens, mean KL 0.00096 packed and 0.00098 unpacked, the same top token 2,798 and 2,809 times.

`F.linear` stays the reference: a packed layer falls back to it whenever its input's dtype is not its
weight's, autocast would compute in another dtype, gradients are on, or its weight was replaced or
changed in place by a tracked operation since packing; tests compare the two. A change through `.data` (peft's merge writes
`weight.data += delta`) is invisible to torch's version counter: `unpack` first, as
`luyen.export.merged.merge_adapter` does.
The packed copies are plain attributes, not buffers, so `state_dict` and saving never see them; they
cost a second copy of each weight, so `pack` skips a model whose copy would not fit in a quarter of
the memory that is free.

`pack_merged` does the same for a LoRA adapter's layers with the adapter merged in (W + scale * B @ A,
peft's own `get_delta_weight`; for DoRA, m * (W + ΔW) / ||W + ΔW|| row by row, as peft's merge and
forward compute it), one copy per adapter the model holds (the server switches adapters per
batch): while an adapter is on, such a layer is one packed product instead of the base product, two
small ones, a scaling and an addition (on the demo adapter, all seven projections of every layer);
switched off (`disable_adapter()`, the base answering in an evaluation) it is the base product as
before. It falls back to peft's forward whenever that could differ: gradients on, several adapters
active, mixed-batch adapter names, LoRA bias, another LoRA variant than DoRA, or the adapter's (DoRA's
magnitudes too) or base weights changed since merging. DoRA gains most: peft recomputes its weight
norm, a pass over the whole weight, on every forward. peft's unmerged forward is the tests' reference;
the two differ only by rounding.
"""
from __future__ import annotations

import types

import torch
import torch.nn.functional as F

_ATTR = "_luyen_packed"
_MERGED = "_luyen_packed_merged"


def supported(dtype: torch.dtype = torch.float32) -> str | None:
    """Why packing ``dtype`` weights cannot run here, or None when it can."""
    if not torch.backends.mkldnn.is_available():
        return "this torch build has no oneDNN"
    if not hasattr(torch.ops.mkldnn, "_reorder_linear_weight"):
        return "this torch has no oneDNN weight prepacking"
    if dtype != torch.float32:
        try:  # oneDNN's bf16 products need AVX512 (or AVX-NE-CONVERT): torch refuses them elsewhere
            w = torch.ops.mkldnn._reorder_linear_weight(torch.zeros(2, 2, dtype=dtype), 1)
            torch.ops.mkldnn._linear_pointwise(torch.zeros(1, 2, dtype=dtype), w, None, "none", [], "")
        except RuntimeError:
            return f"oneDNN has no {str(dtype).removeprefix('torch.')} products on this CPU"
    return None


def _stamp(weight: torch.Tensor) -> tuple:
    return weight.data_ptr(), weight._version


def _packed_forward(self, x: torch.Tensor) -> torch.Tensor:
    weight, packed = self.weight, getattr(self, _ATTR)
    if x.dtype != weight.dtype or (torch.is_grad_enabled() and (weight.requires_grad or x.requires_grad)) \
            or packed[1] != _stamp(weight) or x.device.type != "cpu" \
            or (torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") != weight.dtype):
        return F.linear(x, weight, self.bias)
    flat = x.reshape(-1, x.shape[-1]).contiguous()
    if flat.shape[0] == 0:
        return F.linear(x, weight, self.bias)
    y = torch.ops.mkldnn._linear_pointwise(flat, packed[0], self.bias, "none", [], "")
    return y.reshape(*x.shape[:-1], y.shape[-1])


def packable(module: torch.nn.Module, dtype: torch.dtype = torch.float32) -> bool:
    w = getattr(module, "weight", None)
    return (type(module) is torch.nn.Linear and isinstance(w, torch.Tensor) and w.dtype == dtype
            and w.device.type == "cpu" and w.dim() == 2 and not hasattr(module, _ATTR)
            and (module.bias is None or module.bias.dtype == dtype))


def pack_linear(module: torch.nn.Linear, rows_hint: int = 1) -> None:
    """Pack one Linear's weight and route its forward through the packed copy."""
    with torch.no_grad():
        packed = torch.ops.mkldnn._reorder_linear_weight(module.weight.detach(), rows_hint)
    setattr(module, _ATTR, (packed, _stamp(module.weight)))
    module.forward = types.MethodType(_packed_forward, module)


def unpack(model: torch.nn.Module) -> None:
    """Undo `pack` and `pack_merged`: every layer multiplies through its class's forward again and the
    copies are freed."""
    for module in model.modules():
        for attr in (_ATTR, _MERGED):
            if hasattr(module, attr):
                delattr(module, attr)
                if "forward" in vars(module):
                    del module.forward  # the class's own forward again


def _fits(size: int, budget_bytes: int | None) -> bool:
    """Whether a copy of ``size`` bytes fits the budget: by default a quarter of the memory free now."""
    if budget_bytes is None:
        import psutil
        budget_bytes = psutil.virtual_memory().available // 4
    return size <= budget_bytes


def pack(model: torch.nn.Module, budget_bytes: int | None = None, dtype: torch.dtype = torch.float32) -> str:
    """Pack every CPU `nn.Linear` in `model` whose weight is ``dtype`` (LoRA layers' base layers included;
    LoRA's own small matrices stay as they are); with gradients on, they multiply through F.linear as
    before. Returns a one-line summary of what it did or why not."""
    from luyen.precision import NAMES
    name = NAMES.get(str(dtype).removeprefix("torch."), str(dtype))  # "fp32", "bf16": the precision policy's words
    why = supported(dtype)
    if why:
        return f"plain F.linear ({why})"
    # an adapter's own small matrices (peft's lora_A/lora_B/...) are left to F.linear: packing gains nothing there
    layers = [m for layer, m in model.named_modules()
              if packable(m, dtype) and ".lora_" not in f".{layer}"]
    if not layers:
        return f"plain F.linear (no {name} linear on the CPU)"
    size = sum(m.weight.numel() * m.weight.element_size() for m in layers)
    if not _fits(size, budget_bytes):
        return f"plain F.linear (a packed copy of {size / 1e9:.2f} GB would not fit in a quarter of free memory)"
    for m in layers:
        pack_linear(m)
    return f"oneDNN prepacked {name} matmuls: {len(layers)} linears ({size / 1e9:.2f} GB copy)"


def _lora_stamp(layer, adapter: str) -> tuple:
    dora = getattr(layer, "lora_magnitude_vector", {})
    return (_stamp(layer.get_base_layer().weight), _stamp(layer.lora_A[adapter].weight),
            _stamp(layer.lora_B[adapter].weight), float(layer.scaling[adapter]),
            _stamp(dora[adapter].weight) if adapter in dora else None)


def _merged_forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    active = list(self.active_adapters)
    packed, stamp = getattr(self, _MERGED).get(active[0], (None, None)) if len(active) == 1 else (None, None)
    if (packed is None or self.disable_adapters or self.merged or args or kwargs or x.dtype != torch.float32
            or x.device.type != "cpu" or torch.is_grad_enabled() or _lora_stamp(self, active[0]) != stamp):
        return type(self).forward(self, x, *args, **kwargs)
    flat = x.reshape(-1, x.shape[-1]).contiguous()
    if flat.shape[0] == 0:
        return type(self).forward(self, x, *args, **kwargs)
    y = torch.ops.mkldnn._linear_pointwise(flat, packed, self.get_base_layer().bias, "none", [], "")
    return y.reshape(*x.shape[:-1], y.shape[-1])


def _mergeable(module) -> list[str]:
    """The plain-LoRA and DoRA adapters of a peft LoRA Linear over an fp32 CPU Linear that have no merged copy yet."""
    from peft.tuners.lora.layer import Linear as LoraLinear
    base = module.get_base_layer() if type(module) is LoraLinear else None
    if base is None or module.merged or type(base) is not torch.nn.Linear or base.weight.dtype != torch.float32 \
            or base.weight.device.type != "cpu":
        return []
    from peft.tuners.lora.variants import DoraLinearVariant
    done, variants = getattr(module, _MERGED, {}), getattr(module, "lora_variant", {})
    return [a for a in module.lora_A if a not in done and not getattr(module, "lora_bias", {}).get(a)
            and (a not in variants or isinstance(variants[a], DoraLinearVariant))]


def pack_merged(model: torch.nn.Module, budget_bytes: int | None = None) -> str:
    """For each LoRA Linear of ``model`` and each of its adapters, a packed copy of its weight with that
    adapter merged in, used while that adapter alone is on and gradients are off (see the module's
    docstring); copies of adapters the model no longer holds are freed. Call it again after adding or
    deleting an adapter (the server does). Returns a one-line summary ("" when there was nothing to merge)."""
    if supported():
        return ""
    for m in model.modules():  # adapters deleted since: their copies go
        if (merged := getattr(m, _MERGED, None)) is not None:
            for gone in [a for a in merged if a not in m.lora_A]:
                del merged[gone]
    work = [(m, a) for m in model.modules() for a in _mergeable(m)]
    if not work:
        return ""
    size = sum(m.get_base_layer().weight.numel() * 4 for m, _ in work)
    adapters = sorted({a for _, a in work})
    if not _fits(size, budget_bytes):
        return (f"adapter {', '.join(adapters)} left unmerged (a merged copy of {size / 1e9:.2f} GB would not fit in "
                f"a quarter of free memory)")
    with torch.no_grad():
        for m, adapter in work:
            weight = m.get_base_layer().weight + m.get_delta_weight(adapter)
            if adapter in getattr(m, "lora_magnitude_vector", {}):  # DoRA: each row rescaled to its learnt magnitude
                weight = (m.lora_magnitude_vector[adapter].weight / torch.linalg.norm(weight, dim=1)).view(-1, 1) * weight
            if not hasattr(m, _MERGED):
                setattr(m, _MERGED, {})
            getattr(m, _MERGED)[adapter] = (torch.ops.mkldnn._reorder_linear_weight(weight, 1), _lora_stamp(m, adapter))
            m.forward = types.MethodType(_merged_forward, m)
    layers = len({id(m) for m, _ in work})
    return f"adapter {', '.join(adapters)} merged into packed copies of its {layers} linears ({size / 1e9:.2f} GB)"
