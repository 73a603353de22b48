"""The int8-screened output layer (luyen.infer.screen) against its reference, the fp32 product: every
row's best token and its candidates' logits are fp32's; the engine uses it only for greedy decoding and
puts the layer back afterwards."""
from __future__ import annotations

import pytest
import torch

from luyen.infer import screen
from luyen.infer.engine import Engine

pytestmark = pytest.mark.skipif(screen.supported() is not None, reason="this torch has no fbgemm")


def _head(vocab: int = 4096, hidden: int = 64, bias: bool = False) -> torch.nn.Linear:
    torch.manual_seed(0)
    layer = torch.nn.Linear(hidden, vocab, bias=bias)
    with torch.no_grad():
        layer.weight.normal_(0, 0.03)
    return layer.requires_grad_(False)


@pytest.mark.parametrize("bias", [False, True])
def test_candidates_carry_fp32_logits_and_the_best_token_is_fp32_s(bias):
    layer = _head(bias=bias)
    s = screen.Screen(layer)
    torch.manual_seed(1)
    x = torch.randn(37, 64) * 3
    want = torch.nn.functional.linear(x, layer.weight, layer.bias)
    got = s.logits(x)
    assert torch.equal(got.argmax(-1), want.argmax(-1))
    top = want.topk(8, -1).indices  # the fp32 leaders are candidates, so they carry fp32 values
    torch.testing.assert_close(got.gather(1, top), want.gather(1, top), rtol=1e-5, atol=1e-5)
    rest = (got - want).abs()
    assert 0 < rest.max() < 0.1  # elsewhere int8: close, not equal
    assert s.logits(x[:, None, :]).shape == (37, 1, 4096)  # [rows, positions, vocab] as a model passes it


def test_the_engine_screens_greedy_decoding_only_and_restores_the_layer(tiny_model_dir, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    engine = Engine(AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32), tok)
    layer = engine.model.get_output_embeddings()
    packed_forward = vars(layer)["forward"]  # luyen.infer.packed's
    calls = []
    real = screen.Screen.logits
    monkeypatch.setattr(screen.Screen, "logits", lambda self, x: calls.append(x.shape) or real(self, x))
    prompts = ["Học máy", "Hà Nội là thủ đô của Việt Nam và", "The quick brown fox"]
    screened = [c.text for c in engine.generate(prompts, max_new_tokens=16)]
    assert calls and all(shape[-2] == 1 for shape in calls if len(shape) == 3)  # one position per row per step
    assert vars(layer)["forward"] is packed_forward
    n = len(calls)
    assert screened == [c.text for c in engine.generate(prompts, max_new_tokens=16, screen=False)]
    engine.generate(prompts, max_new_tokens=4, temperature=0.8)  # sampling: fp32 tail probabilities
    assert len(calls) == n and vars(layer)["forward"] is packed_forward


def test_no_screen_where_it_cannot_gain(monkeypatch):
    class Tiny(torch.nn.Module):
        def __init__(self, vocab):
            super().__init__()
            self.head = torch.nn.Linear(8, vocab)

        def get_output_embeddings(self):
            return self.head
    assert screen.Screen.of(Tiny(screen.MIN_ROWS - 1)) is None
    assert screen.Screen.of(Tiny(screen.MIN_ROWS)) is not None
    assert screen.Screen.of(Tiny(screen.MIN_ROWS).to(torch.bfloat16)) is None
    monkeypatch.setattr(screen, "supported", lambda: "a torch without the int8 kernels")  # fp32 then, no error
    assert screen.Screen.of(Tiny(screen.MIN_ROWS)) is None
