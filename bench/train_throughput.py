"""LoRA fine-tuning throughput on Gemma-3-270M: the article recipe, TRL with packing, and luyen.

    python bench/train_throughput.py [--arms article,trl,luyen,luyen-fp32] [--steps 4] [--records 96]

Every arm trains the embedded model with the same LoRA (r=8, alpha=32, dropout 0.05 on q/k/v/o and
gate/up/down projections, lr 2e-4) on one fixed synthetic Vietnamese QA set formatted in Gemma's
turn layout, each in its own fresh process so peak RSS is per arm:

* article: transformers Trainer + peft, every example padded to max_length 512, batch 2 x
  accumulation 8, fp32, loss on every non-pad token (the recipe of the popular articles);
* trl: TRL SFTTrainer, packing to 512, completion-only loss, batch 2, fp32 (TRL refuses bf16 here);
* luyen: `luyen train` itself (length buckets, logits only at answer tokens, fused softmax, bf16
  autocast when the CPU has AVX512-BF16), batch 4 x accumulation 2;
* luyen-fp32: the same with train.dtype=float32, to show what is left without bf16.

After one untimed warm-up optimiser step, `--steps` steps are timed (the article arm, ~170 s per
step, times `--article-steps`). Useful tokens are the non-pad tokens processed in the timed steps.
Useful FLOPs = useful_tokens x 4 x body_params + loss_tokens x 4 x hidden x vocab (LoRA: forward plus
the activation-gradient backward over the frozen body; the output layer counted only where a loss
needs it), and `mfu` is their rate over the matmul peak measured here at start in the arm's dtype
(fp32 or bf16). Prints one JSON object. Target: luyen >= 3x TRL's useful tokens/s at no more peak RSS.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
LR = 2e-4
WORDS = ("học máy mô hình dữ liệu huấn luyện tham số kết quả đánh giá mạng nơ-ron trí tuệ nhân tạo câu hỏi trả lời "
         "thời gian chi phí khách hàng chuyến bay hành lý vé đổi hoàn tiền hạng ghế ngồi giúp tôi bạn có thể được "
         "không như thế nào bao nhiêu khi nào tại sao ở đâu cảm ơn rất nhiều của cho với và là một những các").split()


def make_dataset(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        q = " ".join(rng.choices(WORDS, k=rng.randint(10, 20))).capitalize() + "?"
        a = " ".join(rng.choices(WORDS, k=rng.randint(25, 70))).capitalize() + "."
        out.append({"question": q, "answer": a})
    return out


def gemma_text(r: dict) -> tuple[str, str]:
    prompt = f"<bos><start_of_turn>user\n{r['question']}<end_of_turn>\n<start_of_turn>model\n"
    return prompt, f"{r['answer']}<end_of_turn>\n"


def lora_config():
    from peft import LoraConfig
    return LoraConfig(task_type="CAUSAL_LM", r=8, lora_alpha=32, lora_dropout=0.05, target_modules=TARGETS)


class StepClock:
    """A TrainerCallback that times optimiser steps 2..N and counts the tokens of their micro-batches."""

    def __init__(self):
        self.t_warm = self.t_end = None
        self.step = 0

    def callback(self):
        from transformers import TrainerCallback
        clock = self

        class CB(TrainerCallback):
            def on_step_end(self, args, state, control, **kw):
                clock.step = state.global_step
                if state.global_step == 1:
                    clock.t_warm = time.perf_counter()
                clock.t_end = time.perf_counter()
        return CB()


def count_trained_tokens(trainer, counts: dict) -> None:
    """Count the micro-batches each timed optimiser step trains on, as they reach `training_step`.

    Counting in the collator would be off by one micro-batch: accelerate's data loader collates one batch ahead,
    so the first batch of step 2 is built during the warm-up step and one batch after the last step is built
    but never trained. `state.global_step` is the number of finished steps, so >= 1 means after the warm-up.
    Useful tokens are the non-pad inputs (attention_mask, or input_ids != pad when TRL's padding-free packing
    sends no mask); loss tokens are the positions with a target after HF's one-token shift.
    """
    step = trainer.training_step

    def wrapped(model, inputs, *a, **kw):
        if trainer.state.global_step >= 1:
            mask = inputs.get("attention_mask")
            counts["useful"] += int(mask.sum()) if mask is not None else int((inputs["input_ids"] != counts["pad"]).sum())
            counts["loss"] += int((inputs["labels"][..., 1:] != -100).sum())
        return step(model, inputs, *a, **kw)
    trainer.training_step = wrapped


def arm_article(args) -> dict:
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments
    tok = AutoTokenizer.from_pretrained(args.model)
    tok.padding_side = "right"  # the tokenizer's default is left; training recipes pad on the right
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32), lora_config())
    rows = []
    for r in make_dataset(args.records):
        p, a = gemma_text(r)
        enc = tok(p + a, add_special_tokens=False, padding="max_length", max_length=512, truncation=True)
        enc["labels"] = [t if m else -100 for t, m in zip(enc["input_ids"], enc["attention_mask"])]
        rows.append(enc)
    clock, counts = StepClock(), {"useful": 0, "loss": 0, "pad": tok.pad_token_id}

    def collate(features):
        return {k: torch.tensor([f[k] for f in features]) for k in ("input_ids", "attention_mask", "labels")}
    steps = 1 + args.article_steps
    targs = TrainingArguments(output_dir=args.tmp, per_device_train_batch_size=2, gradient_accumulation_steps=8,
                              learning_rate=LR, max_steps=steps, logging_steps=1, save_strategy="no", report_to=[],
                              use_cpu=True, bf16=False, fp16=False, dataloader_num_workers=0, seed=0)
    trainer = Trainer(model=model, args=targs, train_dataset=rows, data_collator=collate, callbacks=[clock.callback()])
    count_trained_tokens(trainer, counts)
    out = trainer.train()
    return {"useful_tokens": counts["useful"], "loss_tokens": counts["loss"], "seconds": clock.t_end - clock.t_warm,
            "final_loss": out.training_loss, "dtype": "float32", "timed_steps": args.article_steps}


def arm_trl(args) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer
    tok = AutoTokenizer.from_pretrained(args.model)
    # Tokenised here, as prompt/completion ids with a completion mask, so TRL trains on exactly the tokens the
    # other arms do: given text, TRL 1.16 tokenises with add_special_tokens=True (a second <bos> after ours) and
    # appends <eos> to every completion. TRL still packs these rows and applies completion_only_loss to them.
    rows = []
    for r in make_dataset(args.records):
        p, a = gemma_text(r)
        ids, n = tok(p + a, add_special_tokens=False)["input_ids"], len(tok(p, add_special_tokens=False)["input_ids"])
        rows.append({"input_ids": ids, "completion_mask": [0] * n + [1] * (len(ids) - n)})
    ds = Dataset.from_list(rows)
    clock, counts = StepClock(), {"useful": 0, "loss": 0, "pad": tok.pad_token_id}
    cfg = SFTConfig(output_dir=args.tmp, packing=True, max_length=512, per_device_train_batch_size=2,
                    gradient_accumulation_steps=1, learning_rate=LR, max_steps=1 + args.steps, logging_steps=1,
                    save_strategy="no", report_to=[], bf16=False, fp16=False, use_cpu=True, seed=0,
                    completion_only_loss=True, dataloader_num_workers=0)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    trainer = SFTTrainer(model=model, args=cfg, train_dataset=ds, processing_class=tok, peft_config=lora_config(),
                         callbacks=[clock.callback()])
    count_trained_tokens(trainer, counts)
    out = trainer.train()
    return {"useful_tokens": counts["useful"], "loss_tokens": counts["loss"], "seconds": clock.t_end - clock.t_warm,
            "final_loss": out.training_loss, "dtype": "float32", "timed_steps": args.steps}


def arm_luyen(args, dtype: str = "auto") -> dict:
    from luyen.config import load_config
    from luyen.train.stage import run
    cfg = load_config(None, [f"model.name={args.model}", "data.max_length=512", "train.method=lora",
                             "train.lora.r=8", "train.lora.alpha=32", "train.lora.dropout=0.05",
                             f"train.lora.target_modules=[{','.join(TARGETS)}]", f"train.lr={LR}",
                             "train.batch_size=4", "train.grad_accum=2", f"train.max_steps={1 + args.steps}",
                             "train.warmup_ratio=0", f"train.dtype={dtype}", "train.save_steps=100000"])
    out = Path(args.tmp) / "run"
    m = run(cfg, Path(args.data), out)["metrics"]
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if '"loss"' in x][1:]
    useful = sum(r["tokens"] for r in rows)
    seconds = sum(r["tokens"] / r["tokens_per_s"] for r in rows)
    return {"useful_tokens": useful, "loss_tokens": None, "seconds": seconds, "final_loss": m["final_train_loss"],
            "dtype": m["precision"], "timed_steps": len(rows)}


ARMS = {"article": arm_article, "trl": arm_trl, "luyen": arm_luyen,
        "luyen-fp32": lambda args: arm_luyen(args, "float32")}


def child(args, arms: dict | None = None) -> None:
    """Run arm `args.child` (of `arms`, default ARMS) in this fresh process and print its RESULT line."""
    import torch
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        args.tmp = tmp
        result = (arms or ARMS)[args.child](args)
    from luyen.models.estimate import peak_memory_gb  # VmHWM: see its docstring
    result["peak_rss_mb"] = round(peak_memory_gb() * 1e9 / 2**20, 1)
    print("RESULT " + json.dumps(result))


def luyen_data(rows: list[dict], model: str, root: Path, name: str) -> Path:
    """`rows` as a luyen data folder under `root`, all in the train split."""
    from luyen.config import load_config
    from luyen.data.stage import run
    src = root / name
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    cfg = load_config(None, [f"model.name={model}", "data.max_length=512", "data.dedup.near=false",
                             "data.split.train=1.0", "data.split.val=0.0", "data.split.test=0.0"])
    run(cfg, [src], root / "data", estimate=False)
    return root / "data"


def prepare_luyen_data(args, root: Path) -> Path:
    """The same records as a luyen data folder (all in the train split)."""
    return luyen_data(make_dataset(args.records), args.model, root, "qa.jsonl")


def loss_tokens_luyen(args, data: Path) -> float:
    """Answer-token share of luyen's examples (its metrics log counts all tokens, not loss tokens)."""
    from luyen.data.template import resolve_chat_template
    from luyen.data.stage import read_split
    from luyen.models.resolve import load_tokenizer
    from luyen.train.batches import encode
    tok = load_tokenizer(args.model)
    _, stats = encode(read_split(data, "train"), tok, resolve_chat_template(tok), 512)
    return stats.loss_tokens / stats.tokens


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arms", default="article,trl,luyen,luyen-fp32")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--article-steps", type=int, default=1)
    ap.add_argument("--records", type=int, default=96)
    ap.add_argument("--model", default=str(Path.home() / ".cache" / "luyen" / "models" / "gemma3-270m"))
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--child", default=None)
    ap.add_argument("--data", default=None)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.child:
        return child(args)
    import torch

    from luyen.models.estimate import describe_model, measure_matmul_peak
    from luyen.precision import cpu_has_bf16, machine
    peak32 = measure_matmul_peak(n=2048, repeats=6, dtype=torch.float32)
    # bf16 only where the CPU multiplies it natively: emulated bf16 (AVX2-only CPUs) measured 0.3 GFLOP/s,
    # so its peak took minutes to measure and `luyen train` never picks it there (dtype auto = fp32).
    native16 = cpu_has_bf16() or torch.cuda.is_available()
    peak16 = measure_matmul_peak(n=2048, repeats=6, dtype=torch.bfloat16) if native16 else None
    arms = [a for a in args.arms.split(",") if native16 or a != "luyen-fp32"]  # without bf16, luyen is fp32
    shape = describe_model(args.model)
    body = shape["params"] - shape["embed"]
    results = []
    with tempfile.TemporaryDirectory() as root:
        data = prepare_luyen_data(args, Path(root))
        share = loss_tokens_luyen(args, data)
        for arm in arms:
            cmd = [sys.executable, __file__, "--child", arm, "--data", str(data), "--steps", str(args.steps),
                   "--article-steps", str(args.article_steps), "--records", str(args.records), "--model", args.model,
                   "--threads", str(args.threads)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
            if line is None:
                results.append({"arm": arm, "error": (proc.stderr or proc.stdout).strip().splitlines()[-1:]})
                continue
            r = {"arm": arm, **json.loads(line[7:])}
            if r["loss_tokens"] is None:
                r["loss_tokens"] = round(r["useful_tokens"] * share)
            flops = r["useful_tokens"] * 4 * body + r["loss_tokens"] * 4 * shape["hidden"] * shape["vocab"]
            r["useful_tokens_per_s"] = round(r["useful_tokens"] / r["seconds"], 2)
            r["mfu"] = round(flops / r["seconds"] / (peak16 if r["dtype"] == "bf16" else peak32), 3)
            r["seconds"] = round(r["seconds"], 2)
            results.append(r)
            print(json.dumps(r), file=sys.stderr, flush=True)
    by = {r["arm"]: r for r in results if "useful_tokens_per_s" in r}
    report = {"machine": {**machine(), "threads": args.threads, "matmul_peak_gflops_fp32": round(peak32 / 1e9, 1),
                          "matmul_peak_gflops_bf16": round(peak16 / 1e9, 1) if peak16 else "skipped: bf16 is emulated here"},
              "model": args.model, "records": args.records, "arms": results}
    if "trl" in by:
        for name in ("luyen", "luyen-fp32", "article"):
            if name in by:
                report[f"speedup_{name}_vs_trl"] = round(by[name]["useful_tokens_per_s"] / by["trl"]["useful_tokens_per_s"], 2)
                report[f"rss_{name}_vs_trl"] = round(by[name]["peak_rss_mb"] / by["trl"]["peak_rss_mb"], 2)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
