"""A task-head classifier against the chat-model route, on examples/data/support_intents.csv (8 intents).

    python bench/classify_speed.py [--steps 12] [--decoder gemma3-270m]

Arms, one after another in this process (threads: every core):
* head: the shipped all-MiniLM-L6-v2 with a classification head (`luyen train` train.task=classification,
  LoRA as configs/classify.yaml), `--steps` optimiser steps of 16 examples;
* head in onnxruntime: the same head exported (`luyen export --format onnx --quant int8`), fp32 and int8;
* decoder: the chat-model route on the same split: Gemma-3-270M LoRA-trained as a chat model (labels as
  answers, `--steps` steps of 16 examples), and at inference the base decoder scoring all 8 labels by
  likelihood (what `luyen eval` runs as its zero-shot baseline).
Prints one JSON object: CPU kind and flags, the fp32 (and bf16) matmul peak measured here, training
examples/s of each arm and their ratio, and inference latency per example (one at a time, median, and
batched) of the head and the decoder route, with their ratio. Target (issue 18): the head answers one
message in <= 5 ms here.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def train_arm(cfg_words: list[str], data: Path, out: Path) -> dict:
    from luyen.config import load_config
    from luyen.train.stage import run
    t0 = time.perf_counter()
    m = run(load_config(None, cfg_words), data, out)["metrics"]
    return {"examples_per_s": round(m["steps"] * 16 / m["train_seconds"], 2), "train_seconds": m["train_seconds"],
            "wall_seconds": round(time.perf_counter() - t0, 1), "steps": m["steps"]}


def latency(fn, items: list, single: int = 30) -> dict:
    fn(items[:1])  # warm-up
    times = []
    for it in items[:single]:
        t0 = time.perf_counter()
        fn([it])
        times.append(1000 * (time.perf_counter() - t0))
    t0 = time.perf_counter()
    fn(items)
    return {"ms_single_median": round(statistics.median(times), 2),
            "ms_batched": round(1000 * (time.perf_counter() - t0) / len(items), 2), "examples": len(items)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--decoder", default="gemma3-270m")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from luyen.config import load_config
    from luyen.data.stage import read_split, run as prepare
    from luyen.models.estimate import measure_matmul_peak
    from luyen.precision import cpu_has_bf16, machine
    from luyen.tasks import classify
    from luyen.tasks.predictor import Predictor
    peak32 = measure_matmul_peak(n=2048, repeats=6, dtype=torch.float32)
    peak16 = measure_matmul_peak(n=2048, repeats=6, dtype=torch.bfloat16) if cpu_has_bf16() else None
    common = ["train.batch_size=16", "train.grad_accum=1", f"train.max_steps={args.steps}", "train.eval_steps=0"]
    with tempfile.TemporaryDirectory() as root:
        root = Path(root)
        src = ROOT / "examples" / "data" / "support_intents.csv"
        head_data, dec_data = root / "head_data", root / "dec_data"
        prepare(load_config(None, ["model.name=all-MiniLM-L6-v2"]), [src], head_data, estimate=False)
        prepare(load_config(None, [f"model.name={args.decoder}"]), [src], dec_data, estimate=False)
        head = train_arm(["model.name=all-MiniLM-L6-v2", "train.method=lora", "train.lr=2e-3", *common], head_data,
                         root / "head")
        decoder = train_arm([f"model.name={args.decoder}", "train.task=causal", "train.method=lora", *common], dec_data,
                            root / "decoder")
        test = read_split(head_data, "test")
        predictor = Predictor.load(root / "head")
        head_lat = latency(lambda items: predictor.predict([{"text": r["text"]} for r in items]), test)
        from luyen.export.stage import run as export
        from luyen.tasks.onnx import OrtHead
        export(load_config(None, []), root / "head", root / "onnx", fmt="onnx", quant=["int8"])
        onnx_lat = {}
        for precision in ("fp32", "int8"):
            ort = OrtHead(root / "onnx", precision)
            onnx_lat[precision] = latency(lambda items: ort.predict([{"text": r["text"]} for r in items]), test)
        from luyen.infer.engine import Engine
        engine = Engine.load(args.decoder)
        spec = {"labels": predictor.spec["labels"]}
        cfg = load_config(None, [])
        dec_lat = latency(lambda items: classify.decoder(engine, items, items, spec, "zero-shot", cfg), test, single=10)
    print(json.dumps({
        "machine": machine(), "threads": torch.get_num_threads(),
        "matmul_peak_gflops": {"fp32": round(peak32 / 1e9, 1), "bf16": round(peak16 / 1e9, 1) if peak16 else None},
        "train": {"head_minilm_lora": head, "decoder_lora": decoder,
                  "head_over_decoder_examples_per_s": round(head["examples_per_s"] / decoder["examples_per_s"], 1)},
        "inference": {"head": head_lat, "head_onnxruntime": onnx_lat, "decoder_zero_shot_8_labels": dec_lat,
                      "decoder_over_head_ms_single": round(dec_lat["ms_single_median"] / head_lat["ms_single_median"], 1)},
        "target": "head <= 5 ms per message, one at a time"}, indent=1))


if __name__ == "__main__":
    main()
