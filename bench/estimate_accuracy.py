"""How close `luyen train`'s time and memory estimate comes to what the run then takes.

    python bench/estimate_accuracy.py            # three configs on the embedded Gemma-3-270M, ~5 min

Each config trains a few steps on the example Vietnamese QA (prepared once into a temp folder), in
its own process; the train manifest holds the estimate made before the first step and what the run
took (`actual_over_estimate`). Prints one JSON object with the machine it ran on and, per config,
the ratio of actual to estimated step time, whole-loop time and peak memory. Target: every time
ratio within 0.67x-1.5x.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {
    "lora-r8 (the demo's)": ["train.method=lora", "train.batch_size=4", "train.grad_accum=2", "train.max_steps=8",
                             "train.eval_steps=4"],
    "full": ["train.method=full", "train.batch_size=2", "train.grad_accum=2", "train.max_steps=4", "train.eval_steps=0"],
    "lora-r16 checkpointed, batch 8": ["train.method=lora", "train.lora.r=16", "train.batch_size=8", "train.max_steps=4",
                                       "train.gradient_checkpointing=true", "train.eval_steps=2"],
}


def luyen(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "luyen", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"luyen {' '.join(args)} failed: {(done.stderr or done.stdout).strip()[-500:]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(ROOT / "examples" / "data" / "vi_ai_qa.jsonl"))
    args = ap.parse_args()
    from luyen.precision import machine
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        luyen("data", "prepare", args.data, "--out", str(data), "data.max_length=512")
        for name, overrides in CONFIGS.items():
            out = Path(tmp) / name.split()[0]
            luyen("train", str(ROOT / "configs" / "lora.yaml"), "--data", str(data), "--out", str(out), *overrides)
            m = json.loads((out / "manifest.json").read_text())["metrics"]
            results[name] = {"estimate": {k: m["estimate"][k] for k in ("seconds", "train_seconds", "peak_memory_gb",
                                                                       "matmul_peak_gflops", "assumed_efficiency")},
                             "actual": m["actual"], "actual_over_estimate": m["actual_over_estimate"],
                             "precision": m["precision"], "steps": m["steps"]}
            print(json.dumps({name: results[name]}), file=sys.stderr, flush=True)
    ratios = [r["actual_over_estimate"][k] for r in results.values() for k in ("train_seconds", "seconds")]
    print(json.dumps({"bench": "estimate_accuracy", "machine": machine(), "configs": results,
                      "time_ratio_range": [min(ratios), max(ratios)],
                      "within_0.67_1.5": all(0.67 <= r <= 1.5 for r in ratios)}, indent=2))


if __name__ == "__main__":
    main()
