"""The output head: the loss through the switched-off output layer equals the model's own logits'
loss, whatever the architecture does to its logits; an architecture it does not know is refused."""
from __future__ import annotations

import pytest
import torch

from luyen.errors import LuyenError
from luyen.train.batches import IGNORE, collate, shifted
from luyen.train.head import LOGIT_POSTPROCESS, loss_sum, output_head

BOS, EOS, PAD = 1, 2, 0


def tiny(arch: str, **extra):
    from transformers import AutoConfig, AutoModelForCausalLM
    config = AutoConfig.for_model(arch, vocab_size=120, hidden_size=32, intermediate_size=64, head_dim=8,
                                  num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                  max_position_embeddings=64, bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD,
                                  **extra)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).eval()
    with torch.no_grad():  # logits of a trained model's size (~5, not a random init's ~0.1): a softcap of 3 bites
        model.get_output_embeddings().weight.mul_(50)
    return model


def batch():
    g = torch.Generator().manual_seed(1)
    exs = [shifted(torch.randint(3, 120, (n,), generator=g).tolist(), [i >= 3 for i in range(n)]) for n in (11, 7)]
    return collate(exs, pad_id=PAD)


def logits_loss(model, b) -> torch.Tensor:
    """The reference: cross-entropy of the model's own .logits (its post-processing included)."""
    inputs = {k: v for k, v in b.items() if k != "targets"}
    with torch.no_grad():
        logits = model(**inputs, use_cache=False).logits.float()
    return torch.nn.functional.cross_entropy(logits.flatten(0, 1), b["targets"].flatten(), ignore_index=IGNORE,
                                             reduction="sum")


# gemma3 soft-caps its logits (a cap of 3 bites hard on logits of ~5), cohere scales
# them, granite divides them; llama leaves them alone
@pytest.mark.parametrize("arch,extra", [("gemma3_text", {"final_logit_softcapping": 3.0}), ("cohere", {"logit_scale": 0.25}),
                                        ("granite", {"logits_scaling": 4.0}), ("llama", {})])
def test_the_head_gives_the_loss_of_the_models_own_logits(arch, extra):
    model, b = tiny(arch, **extra), batch()
    want = logits_loss(model, b)
    head = output_head(model)
    with torch.no_grad():
        got, n = loss_sum(model, head, b, chunk=8, device=torch.device("cpu"))
    assert n == int((b["targets"] != IGNORE).sum())
    assert float(got) == pytest.approx(float(want), rel=1e-5)
    # the model is left as it was: the same post-processing and output layer outside `with head:`
    assert float(logits_loss(model, b)) == pytest.approx(float(want), rel=1e-6)


def test_the_softcap_matters_so_the_test_above_can_fail():
    capped, plain = tiny("gemma3_text", final_logit_softcapping=3.0), tiny("gemma3_text", final_logit_softcapping=None)
    b = batch()
    assert abs(float(logits_loss(capped, b)) - float(logits_loss(plain, b))) > 1.0


def test_an_architecture_whose_logit_post_processing_is_unknown_is_refused():
    model = tiny("gpt_bigcode")
    assert "gpt_bigcode" not in LOGIT_POSTPROCESS
    with pytest.raises(LuyenError, match="model type 'gpt_bigcode'") as e:
        output_head(model)
    assert "\n" not in str(e.value)


def test_every_architecture_luyen_trains_is_known():
    for arch in ("gpt2", "llama", "mistral", "bloom", "phi3", "gpt_neox", "qwen2", "gemma3_text", "gemma2", "bert"):
        assert arch in LOGIT_POSTPROCESS


def test_the_output_layer_gets_a_contiguous_input_once():
    model = tiny("llama")
    output_head(model)
    output_head(model)  # a second engine or scorer on the same model adds no second hook
    layer = model.get_output_embeddings()
    assert len(layer._forward_pre_hooks) == 1
    seen = []
    layer.register_forward_hook(lambda mod, args, out: seen.append(args[0].is_contiguous()))
    hidden = torch.randn(2, 5, 32)[:, -1:, :]  # what the first decoding step hands the layer
    assert not hidden.is_contiguous()
    layer(hidden)
    assert seen == [True]
