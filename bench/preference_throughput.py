"""DPO throughput on Gemma-3-270M: TRL's DPOTrainer against `luyen train` with train.method=dpo.

    python bench/preference_throughput.py [--arms trl,luyen,luyen-ckpt,luyen-fp32] [--steps 6] [--pairs 64]

Both arms train the embedded model with the same LoRA (r=8, alpha=32, dropout 0.05 on the attention
and MLP projections, lr 5e-5), DPO sigmoid loss with beta 0.1, 4 pairs per optimiser step, on one fixed
synthetic set of Vietnamese preference pairs in Gemma's turn layout, each arm in a fresh process so peak
RSS is per arm:

* trl: TRL's DPOTrainer with a peft_config (reference = the same model with the adapter disabled, run
  inside every step), fp32 (TRL's CPU default; bf16 autocast is not what its recipes use on CPU);
* luyen: `luyen train` (chosen and rejected in one batch, logits only at answer tokens, length buckets,
  reference log-probs computed once before training with the adapter off, bf16 autocast where the CPU
  has AVX512-BF16); its reference pass is charged to it, pro rata for the pairs the timed steps train on;
* luyen-ckpt: luyen with train.gradient_checkpointing=true (activations recomputed in backward: less memory);
* luyen-fp32: the same with train.dtype=float32, to show what is left without bf16 (only where bf16 is native).

After one untimed warm-up step, `--steps` steps are timed. Useful tokens are the non-pad tokens of both
answers' sequences (prompt included) in the timed steps. Prints one JSON object with the CPU flags, the
matmul peaks measured here, and per arm pairs/s, useful tokens/s, MFU (useful FLOPs as in
bench/train_throughput.py, twice the forward for TRL's reference is not counted as useful) and peak RSS.
Target: luyen >= 2x TRL's pairs/s at no more peak RSS.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from train_throughput import TARGETS, WORDS, StepClock, child, lora_config, luyen_data  # noqa: E402

LR, BETA, PAIRS_PER_STEP = 5e-5, 0.1, 4


def make_pairs(n: int, seed: int = 0) -> list[dict]:
    """Synthetic pairs: a question of 10-20 words, two answers of 25-70 words each."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        q = " ".join(rng.choices(WORDS, k=rng.randint(10, 20))).capitalize() + "?"
        a, b = (" ".join(rng.choices(WORDS, k=rng.randint(25, 70))).capitalize() + "." for _ in range(2))
        out.append({"prompt": q, "chosen": a, "rejected": b})
    return out


def arm_trl(args) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer
    tok = AutoTokenizer.from_pretrained(args.model)
    rows = [{"prompt": f"<bos><start_of_turn>user\n{r['prompt']}<end_of_turn>\n<start_of_turn>model\n",
             "chosen": f"{r['chosen']}<end_of_turn>\n", "rejected": f"{r['rejected']}<end_of_turn>\n"}
            for r in make_pairs(args.pairs)]
    clock, counts = StepClock(), {"useful": 0, "pairs": 0}
    cfg = DPOConfig(output_dir=args.tmp, per_device_train_batch_size=PAIRS_PER_STEP, gradient_accumulation_steps=1,
                    learning_rate=LR, beta=BETA, max_length=512, max_steps=1 + args.steps, logging_steps=1,
                    save_strategy="no", report_to=[], bf16=False, fp16=False, use_cpu=True, seed=0,
                    dataloader_num_workers=0)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    trainer = DPOTrainer(model=model, args=cfg, train_dataset=Dataset.from_list(rows), processing_class=tok,
                         peft_config=lora_config(), callbacks=[clock.callback()])
    step = trainer.training_step

    def counted(model, inputs, *a, **kw):
        if trainer.state.global_step >= 1:
            counts["useful"] += int(inputs["attention_mask"].sum())
            counts["pairs"] += int(inputs["input_ids"].shape[0]) // 2
        return step(model, inputs, *a, **kw)
    trainer.training_step = counted
    out = trainer.train()
    return {"pairs": counts["pairs"], "useful_tokens": counts["useful"], "seconds": clock.t_end - clock.t_warm,
            "final_loss": out.training_loss, "dtype": "float32", "timed_steps": args.steps}


def arm_luyen(args, dtype: str = "auto", extra: tuple = ()) -> dict:
    from luyen.config import load_config
    from luyen.train.stage import run
    cfg = load_config(None, [f"model.name={args.model}", "data.max_length=512", "train.method=dpo",
                             "train.preference.over=lora", f"train.preference.beta={BETA}", "train.lora.r=8",
                             "train.lora.alpha=32", "train.lora.dropout=0.05",
                             f"train.lora.target_modules=[{','.join(TARGETS)}]", f"train.lr={LR}",
                             f"train.batch_size={PAIRS_PER_STEP}", "train.grad_accum=1", f"train.max_steps={1 + args.steps}",
                             "train.warmup_ratio=0", f"train.dtype={dtype}", "train.save_steps=100000",
                             *extra, *args.luyen])
    out = Path(args.tmp) / "run"
    m = run(cfg, Path(args.data), out)["metrics"]
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if '"loss"' in x][1:]
    pairs = len(rows) * PAIRS_PER_STEP
    reference = m["preference"]["reference_seconds"] * pairs / m["examples"]  # its share of the one reference pass
    seconds = sum(r["tokens"] / r["tokens_per_s"] for r in rows) + reference
    return {"pairs": pairs, "useful_tokens": sum(r["tokens"] for r in rows), "seconds": seconds,
            "reference_seconds_charged": round(reference, 2), "final_loss": m["final_train_loss"],
            "dtype": m["precision"], "timed_steps": len(rows)}


ARMS = {"trl": arm_trl, "luyen": arm_luyen, "luyen-fp32": lambda args: arm_luyen(args, "float32"),
        "luyen-ckpt": lambda args: arm_luyen(args, extra=["train.gradient_checkpointing=true"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arms", default="trl,luyen,luyen-ckpt,luyen-fp32")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--pairs", type=int, default=64)
    ap.add_argument("--model", default=str(Path.home() / ".cache" / "luyen" / "models" / "gemma3-270m"))
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--luyen", nargs="*", default=[], help="extra key=value overrides for the luyen arms")
    ap.add_argument("--child", default=None)
    ap.add_argument("--data", default=None)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.child:
        return child(args, ARMS)
    import torch

    from luyen.models.estimate import describe_model, measure_matmul_peak
    from luyen.precision import cpu_has_bf16, machine
    peak32 = measure_matmul_peak(n=2048, repeats=6, dtype=torch.float32)
    native16 = cpu_has_bf16() or torch.cuda.is_available()
    peak16 = measure_matmul_peak(n=2048, repeats=6, dtype=torch.bfloat16) if native16 else None
    arms = [a for a in args.arms.split(",") if native16 or a != "luyen-fp32"]
    shape = describe_model(args.model)
    body = shape["params"] - shape["embed"]
    results = []
    with tempfile.TemporaryDirectory() as root:
        data = luyen_data(make_pairs(args.pairs), args.model, Path(root), "pairs.jsonl")
        for arm in arms:
            cmd = [sys.executable, __file__, "--child", arm, "--data", str(data), "--steps", str(args.steps),
                   "--pairs", str(args.pairs), "--model", args.model, "--threads", str(args.threads),
                   "--luyen", *args.luyen]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
            if line is None:
                results.append({"arm": arm, "error": (proc.stderr or proc.stdout).strip().splitlines()[-3:]})
                continue
            r = {"arm": arm, **json.loads(line[7:])}
            # useful FLOPs: forward + activation-gradient backward over the frozen body (LoRA), output layer
            # only at answer tokens (about half the tokens here): 4 x body + 4 x hidden x vocab x answer share
            flops = r["useful_tokens"] * 4 * (body + 0.5 * shape["hidden"] * shape["vocab"])
            r["pairs_per_s"] = round(r["pairs"] / r["seconds"], 3)
            r["useful_tokens_per_s"] = round(r["useful_tokens"] / r["seconds"], 2)
            r["mfu"] = round(flops / r["seconds"] / (peak16 if r["dtype"] == "bf16" else peak32), 3)
            r["seconds"] = round(r["seconds"], 2)
            results.append(r)
    by = {r["arm"]: r for r in results if "error" not in r}
    ratio = {arm: {"pairs_per_s": round(r["pairs_per_s"] / by["trl"]["pairs_per_s"], 2),
                   "peak_rss": round(r["peak_rss_mb"] / by["trl"]["peak_rss_mb"], 2)}
             for arm, r in by.items() if arm != "trl" and "trl" in by}
    print(json.dumps({"machine": machine(), "matmul_peak_gflops": {"fp32": round(peak32 / 1e9, 1),
                      "bf16": round(peak16 / 1e9, 1) if peak16 else None}, "pairs_per_step": PAIRS_PER_STEP,
                      "timed_steps": args.steps, "arms": results, "luyen_over_trl": ratio,
                      "target": "luyen >= 2x trl pairs/s at <= 1x peak RSS"}, indent=1))


if __name__ == "__main__":
    main()
