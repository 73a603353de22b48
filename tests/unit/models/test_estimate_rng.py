"""Measuring the machine for the estimate never moves torch's global RNG: training draws its dropout
masks from it right after, and a resumed run (which restores the RNG) must match an uninterrupted one."""
from __future__ import annotations

import torch

from luyen.models.estimate import measure_matmul_peak, optimizer_rate


def test_measurements_leave_the_global_rng_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    assert measure_matmul_peak(n=64, repeats=2) > 0
    assert optimizer_rate.__wrapped__(n=1000) > 0
    assert torch.equal(torch.get_rng_state(), before)
