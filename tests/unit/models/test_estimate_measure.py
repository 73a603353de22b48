"""Measuring the machine for the estimate never moves torch's global RNG: training draws its dropout
masks from it right after, and a resumed run (which restores the RNG) must match an uninterrupted one.
And a moment of contention on a shared machine does not become its matmul peak, and the peak memory reads
right where /proc is missing."""
from __future__ import annotations

import torch

from luyen.models.estimate import measure_matmul_peak, optimizer_rate


def test_measurements_leave_the_global_rng_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    assert measure_matmul_peak(n=64, repeats=2) > 0
    assert optimizer_rate.__wrapped__(n=1000) > 0
    assert torch.equal(torch.get_rng_state(), before)


def test_a_busy_moment_does_not_set_the_peak(monkeypatch):
    """A shared machine's neighbour can slow every matmul of a 60 ms window; the peak is the best over at
    least `min_seconds`, so the first 0.2 s of slow runs here do not decide it."""
    import time

    import luyen.models.estimate as est
    real, began = torch.mm, time.perf_counter()

    def contended(a, b):
        if time.perf_counter() - began < 0.2:
            time.sleep(0.005)
        return real(a, b)

    monkeypatch.setattr(torch, "mm", contended)
    slow = 2 * 128 ** 3 / 0.005  # what a run of the busy window can reach at best
    assert est.measure_matmul_peak(n=128, repeats=10, min_seconds=0.5) > 10 * slow


def test_without_proc_the_peak_comes_from_ru_maxrss_in_its_platforms_unit(monkeypatch):
    """macOS has no /proc and gives ru_maxrss in bytes; Linux in KiB."""
    import builtins
    import resource
    import sys
    from types import SimpleNamespace

    from luyen.models.estimate import peak_memory_gb
    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda f, *a, **k: (_ for _ in ()).throw(FileNotFoundError(f))
                        if str(f).startswith("/proc/") else real_open(f, *a, **k))
    monkeypatch.setattr(resource, "getrusage", lambda who: SimpleNamespace(ru_maxrss=2_000_000))
    monkeypatch.setattr(sys, "platform", "darwin")
    assert peak_memory_gb() == 0.002
    monkeypatch.setattr(sys, "platform", "linux")
    assert peak_memory_gb() == 2_000_000 * 1024 / 1e9
