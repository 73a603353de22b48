"""example_nll, the scorer behind answer perplexity, against the plain computation (whole logits)."""
from __future__ import annotations

import random

import torch

from luyen.evaluate.likelihood import example_nll
from luyen.train.batches import shifted


def _plain(model, example) -> tuple[float, int]:
    ids = torch.tensor(example.ids)[None]
    targets = torch.tensor(example.targets)
    with torch.no_grad():
        logprobs = torch.log_softmax(model(ids).logits[0].double(), -1)
    sel = targets != -100
    return float(-logprobs[sel].gather(1, targets[sel][:, None]).sum()), int(sel.sum())


def test_example_nll_equals_whole_logits_per_example(tiny_model_dir, monkeypatch):
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    assert all(p.requires_grad for p in model.parameters())  # as evaluation loads it
    rng = random.Random(0)
    examples = []
    for n in (5, 17, 9, 30, 3, 12, 21):  # lengths that make padded, mixed batches of 3
        ids = [rng.randrange(5, 200) for _ in range(n)]
        mask = [i >= n // 2 for i in range(n)]  # the second half is "the answer"
        examples.append(shifted(ids, mask))
    got = example_nll(model, examples, pad_id=0, batch=3)
    for (nll, k), ex in zip(got, examples):
        want_nll, want_k = _plain(model, ex)
        assert k == want_k and abs(nll - want_nll) < 1e-3 * max(1.0, want_nll), (nll, want_nll)


def test_the_fused_loss_does_no_gradient_work_when_gradients_are_off(monkeypatch):
    """Under no_grad an autograd Function still sees which inputs require gradients: scoring with a model
    whose weights require them zeroed and filled a weight-sized gradient per call."""
    import luyen.train.loss as loss
    needs = []
    real = loss._chunk_rows
    monkeypatch.setattr(loss, "_chunk_rows", lambda *a: needs.append(a[-1]) or real(*a))
    hidden, weight = torch.randn(6, 8), torch.randn(50, 8, requires_grad=True)
    targets = torch.randint(0, 50, (6,))
    with torch.no_grad():
        off = loss.linear_cross_entropy(hidden, weight, None, targets)
    assert needs == [False]
    on = loss.linear_cross_entropy(hidden, weight, None, targets)
    assert needs == [False, True] and on.requires_grad  # with gradients on, they are computed as before
    torch.testing.assert_close(off, on.detach())
