"""The chunked cross-entropy equals the plain one; batch plans are exact, deterministic and padding-safe."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from luyen.train.batches import IGNORE, Example, collate, plan_epoch, shifted
from luyen.train.loss import linear_cross_entropy, reference_cross_entropy


@pytest.mark.parametrize("softcap", [None, 30.0])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_chunked_cross_entropy_matches_plain_loss_and_gradients(softcap, bias, chunk):
    g = torch.Generator().manual_seed(0)
    h = torch.randn(37, 16, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.randn(50, 16, dtype=torch.float64, generator=g, requires_grad=True)
    b = torch.randn(50, dtype=torch.float64, generator=g, requires_grad=True) if bias else None
    t = torch.randint(0, 50, (37,), generator=g)
    ours = linear_cross_entropy(h, w, b, t, chunk=chunk, softcap=softcap)
    (ours * 0.3).backward()
    mine = [h.grad.clone(), w.grad.clone()] + ([b.grad.clone()] if bias else [])
    for p in (h, w, b):
        if p is not None:
            p.grad = None
    ref = reference_cross_entropy(h, w, b, t, softcap)
    (ref * 0.3).backward()
    theirs = [h.grad, w.grad] + ([b.grad] if bias else [])
    assert torch.allclose(ours, ref)
    for a, c in zip(mine, theirs):
        assert torch.allclose(a, c)


@pytest.mark.parametrize("softcap", [None, 30.0])
@pytest.mark.parametrize("chunk", [1, 64])
def test_replaced_rows_match_the_matrix_with_those_rows_written_in(softcap, chunk):
    """peft's trainable tokens: a frozen matrix, a few trainable rows; loss and gradients as if written in."""
    g = torch.Generator().manual_seed(2)
    h = torch.randn(29, 16, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.randn(50, 16, dtype=torch.float64, generator=g)
    index = torch.tensor([3, 41, 7])
    rows = torch.randn(3, 16, dtype=torch.float64, generator=g, requires_grad=True)
    t = torch.cat([index, torch.randint(0, 50, (26,), generator=g)])  # the replaced rows are targets too
    ours = linear_cross_entropy(h, w, None, t, chunk=chunk, softcap=softcap, rows=(index, rows))
    ours.backward()
    mine = [h.grad.clone(), rows.grad.clone()]
    h.grad = rows.grad = None
    ref = reference_cross_entropy(h, w, None, t, softcap, rows=(index, rows))
    ref.backward()
    assert torch.allclose(ours, ref) and w.grad is None
    assert torch.allclose(mine[0], h.grad) and torch.allclose(mine[1], rows.grad)
    assert not torch.allclose(ours, reference_cross_entropy(h, w, None, t, softcap))  # the rows matter


@pytest.mark.parametrize("bias", [False, True])
def test_fp32_logits_in_vocabulary_blocks_equal_one_product(monkeypatch, bias):
    """fp32 on a CPU multiplies the output layer VOCAB_BLOCK columns at a time (here 8 of 50: six full
    blocks and a partial one); losses and gradients equal the one-product reference."""
    from luyen.train import loss
    monkeypatch.setattr(loss, "VOCAB_BLOCK", 8)
    g = torch.Generator().manual_seed(3)
    h = torch.randn(21, 16, generator=g, requires_grad=True)
    w = torch.randn(50, 16, generator=g)
    b = torch.randn(50, generator=g) if bias else None
    t = torch.randint(0, 50, (21,), generator=g)
    with torch.profiler.profile() as prof:
        ours = linear_cross_entropy(h, w, b, t, chunk=64)
    products = sum(e.count for e in prof.key_averages() if e.key in ("aten::mm", "aten::addmm"))
    assert products == 7 + 1  # seven blocks of logits, then the hidden states' gradient
    ours.backward()
    mine, h.grad = h.grad.clone(), None
    ref = reference_cross_entropy(h, w, b, t)
    ref.backward()
    assert torch.allclose(ours, ref, rtol=1e-5, atol=1e-5) and torch.allclose(mine, h.grad, rtol=1e-5, atol=1e-6)
    assert torch.allclose(loss._logits(h.detach(), w, b), torch.nn.functional.linear(h.detach(), w, b), atol=1e-5)


def test_frozen_output_layer_gets_no_gradient_and_bf16_stays_close():
    g = torch.Generator().manual_seed(1)
    h = torch.randn(20, 32, generator=g, requires_grad=True)
    w = torch.randn(300, 32, generator=g)  # frozen (tied embedding under LoRA)
    t = torch.randint(0, 300, (20,), generator=g)
    loss = linear_cross_entropy(h, w, None, t, chunk=8)
    loss.backward()
    assert w.grad is None and h.grad is not None
    hb = h.detach().bfloat16().requires_grad_()
    lb = linear_cross_entropy(hb, w.bfloat16(), None, t, chunk=8)
    assert lb.dtype == torch.float32 and abs(float(lb) - float(loss)) / float(loss) < 0.02


def test_empty_selection_gives_zero_loss_with_a_graph():
    h = torch.zeros(0, 8, requires_grad=True)
    loss = linear_cross_entropy(h, torch.randn(10, 8), None, torch.zeros(0, dtype=torch.long))
    loss.backward()
    assert float(loss) == 0.0


def test_targets_are_shifted_and_cover_only_masked_tokens():
    ex = shifted([1, 2, 3, 4, 5], [False, False, True, True, True])
    assert ex.targets.tolist() == [IGNORE, 3, 4, 5, IGNORE]
    assert ex.n_loss == 3


def test_padding_never_hides_an_eos_target_even_when_pad_equals_eos():
    eos = 2
    a = shifted([1, 7, 8, eos], [False, False, True, True])
    b = shifted([1, 9, eos], [False, True, True])
    batch = collate([a, b], pad_id=eos)
    t = batch["targets"]
    assert (t[0] == eos).sum() == 1 and (t[1] == eos).sum() == 1  # each example still learns to stop
    assert batch["attention_mask"][1].tolist() == [1, 1, 1, 0]
    assert t[1, 3] == IGNORE  # the pad position itself teaches nothing


def test_packed_batch_restarts_positions():
    a, b = shifted([1, 2, 3], [0, 1, 1]), shifted([4, 5], [0, 1])
    batch = collate([a, b], pad_id=0, packing=True)
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1]]
    assert "attention_mask" not in batch
    assert batch["targets"].tolist() == [[2, 3, IGNORE, 5, IGNORE]]


def test_plan_is_deterministic_complete_and_same_examples_per_step_for_any_accumulation():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 200, size=101).tolist()
    big = plan_epoch(lengths, batch_size=8, grad_accum=1, world=1, seed=3, epoch=1)
    small = plan_epoch(lengths, batch_size=2, grad_accum=4, world=1, seed=3, epoch=1)
    assert big == plan_epoch(lengths, batch_size=8, grad_accum=1, world=1, seed=3, epoch=1)
    assert big != plan_epoch(lengths, batch_size=8, grad_accum=1, world=1, seed=3, epoch=2)
    assert [sorted(sum(s, [])) for s in big] == [sorted(sum(s, [])) for s in small]
    seen = sorted(i for s in big for mb in s for i in mb)
    assert seen == list(range(101))
    assert all(len(mb) <= 2 for s in small for mb in s) and all(len(s) == 4 for s in small)


def test_buckets_waste_little_padding():
    rng = np.random.default_rng(1)
    lengths = rng.integers(20, 400, size=2000).tolist()
    steps = plan_epoch(lengths, batch_size=8, grad_accum=1, world=1, seed=0, epoch=0)
    real = sum(lengths)
    padded = sum(max(lengths[i] for i in mb) * len(mb) for s in steps for mb in s if mb)
    assert real / padded > 0.9


def test_data_parallel_plan_gives_every_rank_a_share():
    lengths = list(range(10, 60))
    steps = plan_epoch(lengths, batch_size=3, grad_accum=2, world=2, seed=0, epoch=0)
    for s in steps:
        assert len(s) == 4
        for rank in (0, 1):
            assert any(s[a * 2 + rank] for a in range(2))


def test_example_length():
    assert len(Example(np.arange(4), np.full(4, IGNORE))) == 4


def test_compiled_fused_softmax_path_for_large_vocabularies_matches_plain_loss():
    from luyen.train import loss as loss_mod
    g = torch.Generator().manual_seed(2)
    vocab = loss_mod.COMPILE_MIN_VOCAB + 17
    h = torch.randn(21, 8, generator=g, requires_grad=True)
    w = torch.randn(vocab, 8, generator=g) * 0.5
    t = torch.randint(0, vocab, (21,), generator=g)
    ours = linear_cross_entropy(h, w, None, t, chunk=8)
    ours.backward()
    assert not loss_mod._compiled.get("failed"), "TorchInductor could not compile the fused softmax here"
    mine = h.grad.clone()
    h.grad = None
    ref = reference_cross_entropy(h, w, None, t)
    ref.backward()
    assert torch.allclose(ours, ref, rtol=1e-5) and torch.allclose(mine, h.grad, atol=1e-5)
