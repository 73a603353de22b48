"""The precision policy decides from the CPU's flags and says why: both machine kinds, without either machine."""
from __future__ import annotations

import pytest
import torch

from luyen.errors import LuyenError
from luyen.precision import autocast_for, choose, cpu_kind, for_training, machine

AVX2_EPYC = frozenset("fpu sse2 avx avx2 fma f16c bmi2 sha_ni".split())
AMX_XEON = frozenset("fpu sse2 avx avx2 fma f16c avx512f avx512_vnni avx512_bf16 amx_tile amx_int8 amx_bf16".split())


def test_auto_is_fp32_on_an_avx2_cpu_and_bf16_where_it_is_native():
    p = choose("auto", flags=AVX2_EPYC)
    assert p.name == "fp32" and p.dtype == torch.float32 and p.warning is None
    assert p.describe() == "float32: this CPU has AVX2 (no AVX512-BF16/AMX): bf16 would be emulated (slow)"
    q = choose("auto", flags=AMX_XEON)
    assert q.name == "bf16" and q.dtype == torch.bfloat16
    assert q.describe() == "bfloat16: this CPU has AMX + AVX512-BF16, which multiplies bf16 natively"
    assert cpu_kind(frozenset({"avx512f", "avx2"})) == "AVX512 (no AVX512-BF16/AMX)"


def test_forced_bf16_on_an_emulating_cpu_is_honoured_with_a_warning():
    p = choose("bfloat16", flags=AVX2_EPYC)
    assert p.name == "bf16" and "emulated" in p.warning and "AVX2" in p.warning
    assert choose("bfloat16", flags=AMX_XEON).warning is None
    assert choose("float32", flags=AMX_XEON).name == "fp32" and choose("fp16", flags=AVX2_EPYC).name == "fp16"


def test_machine_report_names_this_cpu():
    m = machine()
    assert m["cores"] >= 1 and isinstance(m["bf16_native"], bool) and set(m["flags"]) <= set(AMX_XEON | AVX2_EPYC)


def test_weights_that_train_stay_fp32_frozen_ones_take_the_compute_dtype_and_autocast_follows():
    bf16, fp32 = choose("auto", flags=AMX_XEON), choose("auto", flags=AVX2_EPYC)
    assert bf16.weights(trained=True) == torch.float32 and bf16.weights(trained=False) == torch.bfloat16
    assert fp32.weights(trained=True) == fp32.weights(trained=False) == torch.float32
    assert bf16.autocast == torch.bfloat16 and fp32.autocast is None and bf16.long == "bfloat16"
    assert autocast_for(torch.bfloat16) == torch.bfloat16 and autocast_for(torch.float32) is None


def test_fp16_training_without_a_gpu_is_refused_in_one_line(monkeypatch):
    from luyen import precision
    monkeypatch.setattr(precision, "_cuda", lambda: False)
    with pytest.raises(LuyenError, match="float16 training needs a GPU") as e:
        for_training("float16")
    assert "\n" not in str(e.value)
    assert for_training("float32").name == "fp32"
