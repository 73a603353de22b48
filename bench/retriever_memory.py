"""Memory and time of a retriever's training step (configs/retriever.yaml: Gemma-3-270M as an encoder,
LoRA r16, 16 pairs a batch, each with its passage and a BM25-mined negative) per way of fitting the batch:

    python bench/retriever_memory.py --pairs runs/retriever/pairs.jsonl [--arms 16x1,4x4,16x1-ckpt] [--steps 4]

An arm BxA trains batches of B x A pairs with train.batch_size=B, train.grad_accum=A: A > 1 is GradCache
(B rows of a column through the model at a time, twice); "-ckpt" adds train.gradient_checkpointing. Every
arm trains on the same pairs (an earlier run's pairs.jsonl, so no questions are written) from the same
seed, in a fresh process so its peak RSS is its own. The first step is a warm-up; the others are timed
from the run's own metrics.jsonl. Prints one JSON object: the CPU, per arm seconds a step, peak RSS
(VmHWM) and the losses of the steps (arms that see the same batches should agree up to rounding), and
each arm's time and memory against the first arm's.

Recorded 2026-12-06 on the 2-core AMX Xeon (bf16 autocast), `--pairs` the 1,453 pairs of the last-token
run in the README, `--arms 16x1,4x4,16x1-ckpt --steps 4`, with LoRA's dropout through luyen's FastDropout:

| arm | s/step | peak RSS | time / 16x1 | memory / 16x1 |
|---|---|---|---|---|
| 16x1 (the recipe: one forward per column kind) | 14.4 | 16.8 GB | 1.00 | 1.00 |
| 4x4 (GradCache) | 27.9 | 4.4 GB | 1.95 | 0.26 |
| 16x1-ckpt (gradient checkpointing) | 26.2 | 7.2 GB | 1.82 | 0.43 |

The same day, before the encoder's LoRA used FastDropout (torch's bernoulli_: 55% of a forward's time
in a profile), the arms took 16.1, 30.8 and 32.1 s a step at 15.6, 4.7 and 4.9 GB, and 8x2 (GradCache)
35.2 s at 6.5 GB: peaks move by a GB or two between runs (the allocator), times by ~10%. Both ways cut
memory to a third or less for about twice the time. GradCache's own gain is the batch: its memory
follows train.batch_size, so 16 x 8 (128 pairs, each query against 256 passages) fits where one forward
of them would not. Losses of arms with the same batches agree to bf16 rounding (the first step 3.489
plain and with checkpointing, 3.484 GradCache).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child(args) -> None:
    from luyen.config import load_config
    from luyen.models.estimate import peak_memory_gb
    from luyen.train.stage import run
    batch, accum = args.child.removesuffix("-ckpt").split("x")
    overrides = [f"train.embedding.pairs={Path(args.pairs).resolve()}", f"train.batch_size={batch}",
                 f"train.grad_accum={accum}", f"train.max_steps={args.steps}",
                 f"train.gradient_checkpointing={str(args.child.endswith('-ckpt')).lower()}"]
    with tempfile.TemporaryDirectory() as tmp:
        m = run(load_config(str(ROOT / "configs" / "retriever.yaml"), overrides), None, Path(tmp) / "out")["metrics"]
        with open(Path(tmp) / "out" / "metrics.jsonl", encoding="utf-8") as f:
            rows = [json.loads(line) for line in f]
    steps = [r for r in rows if "loss" in r]
    timed = [r["seconds"] for r in steps[1:]]
    print("RESULT " + json.dumps({"precision": m["precision"], "steps_timed": len(timed),
                                  "seconds_per_step": round(sum(timed) / len(timed), 2),
                                  "losses": [r["loss"] for r in steps], "peak_rss_mb": round(peak_memory_gb() * 1e9 / 2**20)}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", required=True, help="an earlier retriever run's pairs.jsonl")
    ap.add_argument("--arms", default="16x1,4x4,16x1-ckpt")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--child", default=None)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.child:
        return child(args)
    from luyen.precision import machine
    results = {}
    for arm in args.arms.split(","):
        proc = subprocess.run([sys.executable, __file__, "--child", arm, "--pairs", args.pairs, "--steps",
                               str(args.steps)], capture_output=True, text=True, check=False)
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        results[arm] = json.loads(line[7:]) if line else {"error": (proc.stderr or proc.stdout).strip().splitlines()[-3:]}
        print(json.dumps({arm: results[arm]}), file=sys.stderr, flush=True)
    first = next(iter(results.values()))
    for r in results.values():
        if "error" not in r and "error" not in first:
            r["time_vs_first"] = round(r["seconds_per_step"] / first["seconds_per_step"], 2)
            r["memory_vs_first"] = round(r["peak_rss_mb"] / first["peak_rss_mb"], 2)
    print(json.dumps({"machine": machine(), "arms": results}, indent=1))


if __name__ == "__main__":
    main()
