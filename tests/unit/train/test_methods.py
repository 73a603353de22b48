"""Methods are data: one record each, read by the stage, the loop and the estimate, which name none."""
from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest
import torch

from luyen.config import TrainConfig, load_config
from luyen.errors import LuyenError
from luyen.precision import choose
from luyen.train.methods import METHODS

SRC = Path(__file__).resolve().parents[3] / "src" / "luyen"
AMX = frozenset("avx2 avx512f avx512_bf16 amx_tile amx_bf16".split())
AVX2 = frozenset("avx2 fma".split())


def test_the_config_offers_exactly_the_methods_there_are_records_for():
    assert set(typing.get_args(TrainConfig.model_fields["method"].annotation)) == set(METHODS)
    assert all(m.name == name and m.trains and m.lr > 0 for name, m in METHODS.items())


def test_nothing_outside_the_registry_names_a_method():
    names = "|".join(METHODS) + "|pretrain"
    quoted = re.compile(rf"""["']({names})["']""")
    readers = [*(SRC / "train").glob("*.py"), SRC / "models" / "estimate.py", SRC / "data" / "stage.py",
               SRC / "evaluate" / "likelihood.py"]
    for path in readers:
        if path.name == "methods.py":
            continue
        # a preference record's field "prompt" (data.formats) shares its name with the prompt method
        found = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()
                 if quoted.search(re.sub(r"""rec\[["']prompt["']\]""", "", line))]
        assert not found, f"{path.name} names a method: {found}"


@pytest.mark.parametrize("flags,base_dtype", [(AMX, torch.bfloat16), (AVX2, torch.float32)])
def test_trained_base_weights_stay_fp32_and_frozen_ones_compute_in_the_policy_dtype(flags, base_dtype):
    chosen = choose("auto", flags=flags)
    for name in ("full", "freeze"):
        assert METHODS[name].load_kwargs(chosen, torch.device("cpu")) == {"dtype": torch.float32}
    for name in ("lora", "prompt", "ptuning"):
        assert METHODS[name].load_kwargs(chosen, torch.device("cpu")) == {"dtype": base_dtype}


def test_qlora_quantises_its_base_to_nf4():
    pytest.importorskip("bitsandbytes")
    kw = METHODS["qlora"].load_kwargs(choose("auto", flags=AMX), torch.device("cpu"))
    q = kw["quantization_config"]
    assert kw["dtype"] == torch.bfloat16 and q.load_in_4bit and q.bnb_4bit_quant_type == "nf4"
    assert q.bnb_4bit_compute_dtype == torch.bfloat16 and kw["device_map"] == {"": torch.device("cpu")}


def test_soft_prompts_refuse_packing_from_their_record(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    from luyen.train.preflight import check_packing
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    check_packing(model, METHODS["lora"])  # a llama honours restarting positions
    for name in ("prompt", "ptuning"):
        with pytest.raises(LuyenError, match=f"packing cannot be combined with method {name}"):
            check_packing(model, METHODS[name])


@pytest.mark.parametrize("name", ["full", "lora", "prompt", "ptuning", "freeze"])
def test_the_estimates_trainable_parameters_are_close_to_what_the_method_trains(tiny_model_dir, name):
    from transformers import AutoModelForCausalLM

    from luyen.models.shape import model_shape
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    tc = load_config(None, [f"train.method={name}", "train.num_virtual_tokens=4"]).train
    estimated = METHODS[name].trainable(model_shape(model), tc)
    wrapped = METHODS[name].wrap(model, tc, None, None)
    actual = sum(p.numel() for p in wrapped.parameters() if p.requires_grad)
    assert actual / 2 <= estimated <= actual * 2, (estimated, actual)
    assert (name in ("full",)) == METHODS[name].weight_grads
