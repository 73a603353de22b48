"""Preference losses against numbers worked out by hand, and the per-token chunked cross-entropy they
are built on against the plain one, gradients included under per-row upstream weights."""
from __future__ import annotations

import pytest
import torch

from luyen.train import preference_loss as pl
from luyen.train.loss import linear_token_losses, reference_cross_entropy

T = lambda *v: torch.tensor(v, dtype=torch.float64)  # noqa: E731

# pc -10, pr -12 (policy), rc = rr = -11 (reference): chosen log-ratio +1, rejected -1, h = 2
PC, PR, RC, RR, NC, NR = T(-10.0), T(-12.0), T(-11.0), T(-11.0), T(4.0), T(5.0)


@pytest.mark.parametrize("kw,want", [
    ({}, 0.5981388693815918),                                   # log(1 + e^-0.2)
    ({"label_smoothing": 0.1}, 0.6181388693815918),             # 0.9 log(1 + e^-0.2) + 0.1 log(1 + e^0.2)
    ({"loss_type": "hinge"}, 0.8),                              # max(0, 1 - 0.1 x 2)
    ({"loss_type": "ipo"}, 20.7025),                            # (0.25 + 0.2 - 1 / 0.2)^2, log-ratios per token
    ({"sft_weight": 0.5}, 0.5981388693815918 + 0.5 * 10 / 4),   # + RPO's NLL of the chosen answer per token
])
def test_dpo_losses_equal_hand_computations(kw, want):
    loss, chosen, rejected = pl.dpo(PC, PR, RC, RR, NC, NR, beta=0.1, **kw)
    assert float(loss) == pytest.approx(want, rel=1e-9)
    assert float(chosen) == pytest.approx(0.1) and float(rejected) == pytest.approx(-0.1)


def test_kto_loss_equals_hand_computation():
    # log-ratios +1 (desirable) and -1 (undesirable), KL estimate 0.5, beta 0.1
    loss, reward = pl.kto(T(-10.0, -12.0), T(-11.0, -11.0), torch.tensor([True, False]), beta=0.1, kl=0.5,
                          desirable_weight=2.0, undesirable_weight=1.0)
    assert loss.tolist() == pytest.approx([2 * 0.48750260351578967, 0.4625701546562504], rel=1e-9)
    assert reward.tolist() == pytest.approx([0.1, -0.1])


def test_orpo_loss_equals_hand_computation():
    # mean log-probs -0.5 and -1: log odds 0.5 - (log(1 - e^-0.5) - log(1 - e^-1)) = 0.97408
    loss, chosen, rejected = pl.orpo(T(-2.0), T(-4.0), T(4.0), T(4.0), beta=0.1)
    assert float(loss) == pytest.approx(0.5320299785237537, rel=1e-9)
    assert float(chosen) == pytest.approx(-0.05) and float(rejected) == pytest.approx(-0.1)


def test_simpo_loss_equals_hand_computation():
    loss, _, _ = pl.simpo(T(-2.0), T(-4.0), T(4.0), T(4.0), beta=2.0, gamma=0.5)  # 2 x 0.5 - 0.5 = 0.5
    assert float(loss) == pytest.approx(0.4740769841801067, rel=1e-9)


def test_dpo_gradient_pushes_chosen_up_and_rejected_down():
    pc, pr = T(-10.0).requires_grad_(), T(-12.0).requires_grad_()
    pl.dpo(pc, pr, RC, RR, NC, NR, beta=0.1)[0].backward()
    assert float(pc.grad) < 0 < float(pr.grad)  # descending the loss raises pc and lowers pr


@pytest.mark.parametrize("softcap", [None, 30.0])
@pytest.mark.parametrize("weight_trains,bias", [(False, False), (True, False), (True, True)])
@pytest.mark.parametrize("chunk", [1, 16])
def test_token_losses_match_plain_cross_entropy_under_per_row_weights(softcap, weight_trains, bias, chunk):
    g = torch.Generator().manual_seed(3)
    h = torch.randn(29, 16, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.randn(50, 16, dtype=torch.float64, generator=g, requires_grad=weight_trains)
    b = torch.randn(50, dtype=torch.float64, generator=g, requires_grad=True) if bias else None
    t = torch.randint(0, 50, (29,), generator=g)
    upstream = torch.randn(29, dtype=torch.float64, generator=g)  # a preference loss weighs rows differently
    ours = linear_token_losses(h, w, b, t, chunk=chunk, softcap=softcap)
    (ours * upstream).sum().backward()
    params = [p for p in (h, w, b) if p is not None and p.requires_grad]
    mine = [p.grad.clone() for p in params]
    for p in params:
        p.grad = None
    ref = reference_cross_entropy(h, w, b, t, softcap, reduction="none")
    (ref * upstream).sum().backward()
    assert ours.shape == (29,) and torch.allclose(ours, ref)
    for a, p in zip(mine, params):
        assert torch.allclose(a, p.grad)


def test_token_losses_with_replaced_rows_match_the_matrix_with_those_rows_written_in():
    g = torch.Generator().manual_seed(4)
    h = torch.randn(23, 16, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.randn(50, 16, dtype=torch.float64, generator=g)
    index = torch.tensor([3, 41, 7])
    rows = torch.randn(3, 16, dtype=torch.float64, generator=g, requires_grad=True)
    t = torch.cat([index, torch.randint(0, 50, (20,), generator=g)])
    upstream = torch.randn(23, dtype=torch.float64, generator=g)
    ours = linear_token_losses(h, w, None, t, chunk=5, rows=(index, rows))
    (ours * upstream).sum().backward()
    mine = [h.grad.clone(), rows.grad.clone()]
    h.grad = rows.grad = None
    ref = reference_cross_entropy(h, w, None, t, rows=(index, rows), reduction="none")
    (ref * upstream).sum().backward()
    assert torch.allclose(ours, ref) and torch.allclose(mine[0], h.grad) and torch.allclose(mine[1], rows.grad)
