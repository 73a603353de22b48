"""The precision policy: which dtype luyen computes in on this machine, and why. One home for training,
evaluation, inference, the server and the training estimate, so they never disagree.

    p = choose("auto")        # Precision(name='fp32', reason='this CPU has AVX2 but no AVX512-BF16/AMX ...')
    print(p.describe())       # "float32: this CPU has AVX2 but no AVX512-BF16/AMX: bf16 would be emulated (slow)"
    p.weights(trained=True)   # torch.float32: weights that train keep fp32 (AdamW's small updates survive)
    p.autocast                # None for fp32, else the dtype the forward runs under (torch.autocast)

Machines differ: CPUs with AVX512-BF16 or AMX multiply bf16 natively (measured 685 GFLOP/s against
171 for fp32 on one), while AVX2-only CPUs emulate it (0.3 GFLOP/s measured on an AMD EPYC: never
pick it there). ``auto`` follows the hardware; a forced bf16 on a CPU that emulates it is honoured
with a warning.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

NAMES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16", "fp32": "fp32", "bf16": "bf16", "fp16": "fp16"}
LONG = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


@dataclass(frozen=True)
class Precision:
    name: str                   # "fp32" | "bf16" | "fp16"
    reason: str                 # why, in words a user can check against their machine
    warning: str | None = None  # a forced choice this hardware does badly

    @property
    def dtype(self):
        import torch
        return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[self.name]

    @property
    def long(self) -> str:
        """The torch name of the dtype: "float32", "bfloat16", "float16"."""
        return LONG[self.name]

    @property
    def autocast(self):
        """The dtype the forward runs under (torch.autocast), None in fp32: weights and activations both fp32."""
        return None if self.name == "fp32" else self.dtype

    def weights(self, trained: bool):
        """The dtype weights are held in: the compute dtype for frozen ones, float32 for ones that train,
        because AdamW's updates (~lr x weight) fall below bf16's 8-bit mantissa and would be lost."""
        import torch
        return torch.float32 if trained else self.dtype

    def describe(self) -> str:
        return f"{LONG[self.name]}: {self.reason}"


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as f:
            return frozenset(next((line for line in f if line.startswith("flags")), "").split())
    except OSError:
        return frozenset()


def cpu_has_bf16(flags: frozenset[str] | None = None) -> bool:
    """True on CPUs that multiply bf16 natively (AVX512-BF16 or AMX). ``flags``: another CPU's, for tests."""
    return bool({"avx512_bf16", "amx_bf16"} & (cpu_flags() if flags is None else flags))


def cpu_kind(flags: frozenset[str] | None = None) -> str:
    """The vector units that matter for matmul speed, e.g. 'AMX + AVX512-BF16' or 'AVX2 (no AVX512-BF16/AMX)'."""
    flags = cpu_flags() if flags is None else flags
    if {"amx_bf16", "amx_tile"} <= flags:
        return "AMX + AVX512-BF16" if "avx512_bf16" in flags else "AMX"
    if "avx512_bf16" in flags:
        return "AVX512-BF16"
    best = "AVX512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return f"{best} (no AVX512-BF16/AMX)"


def choose(requested: str = "auto", flags: frozenset[str] | None = None) -> Precision:
    """The precision for ``requested`` (a config dtype: auto, float32, bfloat16, float16, or fp32/bf16/fp16).
    ``flags``: decide for a CPU with these /proc/cpuinfo flags instead of this one (tests of both kinds)."""
    import torch
    cuda = flags is None and torch.cuda.is_available()
    if requested == "auto":
        if cuda:
            gpu = torch.cuda.get_device_name()
            if torch.cuda.is_bf16_supported():
                return Precision("bf16", f"this GPU ({gpu}) computes bf16 natively")
            return Precision("fp32", f"this GPU ({gpu}) has no bf16")
        if cpu_has_bf16(flags):
            return Precision("bf16", f"this CPU has {cpu_kind(flags)}, which multiplies bf16 natively")
        return Precision("fp32", f"this CPU has {cpu_kind(flags)}: bf16 would be emulated (slow)")
    name = NAMES[requested]
    emulated = name == "bf16" and not cuda and not cpu_has_bf16(flags)
    warning = (f"bfloat16 was asked for, but this CPU has {cpu_kind(flags)}: bf16 is emulated there and runs many "
               "times slower than float32 (use dtype auto or float32)") if emulated else None
    return Precision(name, "asked for in the config", warning)


def for_training(requested: str = "auto") -> Precision:
    """`choose`, refusing what training cannot do here: fp16 needs a GPU (its loss scaling and kernels)."""
    from luyen.errors import LuyenError
    chosen = choose(requested)
    if chosen.name == "fp16" and not _cuda():
        raise LuyenError("float16 training needs a GPU", field="train.dtype", fix="use auto, float32 or bfloat16 on a CPU")
    return chosen


def autocast_for(weights_dtype):
    """The autocast dtype for a model whose weights are held in `weights_dtype`: bf16/fp16 weights run
    under autocast of their own dtype (so fp32 adapter weights follow them), fp32 weights never do."""
    import torch
    return weights_dtype if weights_dtype in (torch.bfloat16, torch.float16) else None


def _cuda() -> bool:
    import torch
    return torch.cuda.is_available()


VECTOR_FLAGS = ("avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")


def machine() -> dict:
    """What a benchmark ran on: CPU model, the vector units that decide matmul speed, cores."""
    import os
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    return {"cpu": model, "cpu_kind": cpu_kind(), "bf16_native": cpu_has_bf16(),
            "flags": [f for f in VECTOR_FLAGS if f in cpu_flags()], "cores": os.cpu_count()}
