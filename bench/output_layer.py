"""The output layer in one decoding step: Gemma-3's [262144 x 640] fp32 matrix times a few rows.

    python bench/output_layer.py [--rows 1,8,16,37,64] [--repeats 8]

In a batched decoding step every row multiplies the whole output matrix (0.34 GFLOP per row). Alone,
on a 2-core AVX2 CPU in fp32, that product takes about half of a 37-row step's time, though repacking
it inside the engine changed the step far less (see the README). Times it four ways on random weights of
that shape, per row count: `F.linear` (what nn.Linear does), `W @ x.T` (the same product with the
big matrix on the left), and the oneDNN prepacked copy luyen.infer.packed makes (`pack_linear`, its
layout chosen for 1 row, as the engine packs it), one laid out for 32 rows, and the int8 screen greedy
decoding uses (luyen.infer.screen: fbgemm int8 product, each row's 64 best candidates recomputed in
fp32; its GFLOP/s count the fp32 work it replaces). Prints one JSON object: per way and row count the
best milliseconds of ``--repeats`` and GFLOP/s, the fp32 peak of a square matmul measured at start
(luyen.models.estimate) and each way's share of it, whether each way equals `F.linear` (max abs
difference; for the screen also whether every row's best token is F.linear's), and the machine (CPU
kind and flags).
"""
from __future__ import annotations

import argparse
import json
import time

VOCAB, HIDDEN = 262144, 640


def best_ms(fn, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", default="1,8,16,37,64")
    ap.add_argument("--repeats", type=int, default=8)
    args = ap.parse_args()
    import torch
    import torch.nn.functional as F

    from luyen.models.estimate import measure_matmul_peak
    from luyen.precision import machine
    peak = measure_matmul_peak()
    g = torch.Generator().manual_seed(0)
    w = torch.randn(VOCAB, HIDDEN, generator=g) * 0.02
    # the call luyen.infer.pack_linear makes (rows hint 1), and one laid out for 32 rows
    packed = {hint: torch.ops.mkldnn._reorder_linear_weight(w, hint) for hint in (1, 32)}
    ways = {
        "F.linear": lambda x: F.linear(x, w),
        "W @ x.T": lambda x: (w @ x.t()).t(),
        "packed for 1 row": lambda x: torch.ops.mkldnn._linear_pointwise(x, packed[1], None, "none", [], ""),
        "packed for 32 rows": lambda x: torch.ops.mkldnn._linear_pointwise(x, packed[32], None, "none", [], ""),
    }
    from luyen.infer.screen import Screen, supported
    if supported() is None:
        layer = torch.nn.Linear(HIDDEN, VOCAB, bias=False).requires_grad_(False)
        layer.weight.copy_(w)
        ways["int8 screen, top 64 in fp32"] = Screen(layer).logits
    out = {"shape": [VOCAB, HIDDEN], "fp32_square_peak_gflops": round(peak / 1e9, 1), "ways": {}}
    with torch.no_grad():
        for rows in [int(r) for r in args.rows.split(",")]:
            x = torch.randn(rows, HIDDEN, generator=g)
            want = F.linear(x, w)
            for name, fn in ways.items():
                ms = best_ms(lambda: fn(x), args.repeats)
                gflops = 2 * rows * HIDDEN * VOCAB / ms / 1e6
                out["ways"].setdefault(name, {})[rows] = {
                    "ms": round(ms, 1), "gflops": round(gflops, 1), "share_of_peak": round(gflops * 1e9 / peak, 2),
                    "max_abs_diff": float((fn(x) - want).abs().max()),
                    "best_token_same_rows": int((fn(x).argmax(-1) == want.argmax(-1)).sum())}
    out["machine"] = machine()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
