"""The matmul work an evaluation cannot avoid, and the time it needs at a machine's measured peak.

    python bench/eval_floor.py                       # the demo: runs/demo (after `make demo`), configs/demo.yaml
    python bench/eval_floor.py --run runs/x --config configs/x.yaml

Issue 20 asks for the demo's evaluation (37 questions, 5 systems, perplexities and the general-ability
check) in 3 minutes on the 2-core AVX2-only EPYC, whose fp32 matmul peak measures ~170 GFLOP/s. This
counts, from the run's own prompts, references and answers, the FLOPs of the weight products no
implementation can skip: every position of every prompt and reference answer through the body (2 x body
parameters each: prompt prefill, reference scoring), the output layer at every scored reference token
(2 x vocabulary x hidden), every generated token through the body (its output layer is left out: greedy
decoding screens it in int8), and the general-ability check's positions for both models (the output
layer only at choice tokens). Attention, norms and activations are left out, so the figure is a floor.
Dividing by a peak gives the seconds the evaluation would take at 100% of it: at the AVX2 anchor that
is the least any fp32 implementation can take there.

Prints one JSON object: per system its prompt, reference and answer tokens and GFLOP; the total; the
fp32 (and, where the CPU multiplies it natively, bf16) matmul peak measured here (luyen.models.estimate)
and the floor in seconds at each and at the AVX2 anchor; the run's evaluation wall time from its
manifest with the share of the floor it reached; and the machine.

Recorded 2026-12-06 on the AMX Xeon for runs/demo (the README table's run): 27.1 TFLOP, of which the
two retrieval systems 13.8 (their prompts are 22,944 tokens each against 829 zero-shot) and the
general-ability check 3.7. The body count agrees with torch's FlopCounterMode within 0.1% on a
256-token Gemma-3-270M prefill (51.67 against 51.70 GFLOP). At the AVX2 anchor's 170 GFLOP/s that is
159 s of pure matmul at 100% of peak: the 3-minute target would need 88% of the peak sustained through
the whole stage, where the stage's best fp32 products ran at ~74% of it (README profile) and the
whole stage took 431 s (37% of peak). It cannot be met in fp32 on that machine without less work
(shorter retrieval prompts, no general check, a shared few-shot prefix) or lower-precision
arithmetic in the scoring passes. Here (fp32 peak 455.5 GFLOP/s, bf16 3,119) the floor is 59 s in
fp32 and 8.7 s in bf16, and the bf16 stage took 130 s: 7% of its floor, so on AMX the stage is bound
by everything but the products (99 s, 9%, once bf16 weights were packed for oneDNN the same day).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from demo_budget import AVX2_FP32_GFLOPS  # the AVX2 EPYC's fp32 matmul peak, one home (bench/ is on the path)

ROOT = Path(__file__).resolve().parents[1]


def weights(model_dir: Path) -> tuple[int, int]:
    """(body parameters, output-layer parameters) of the model, counted on the meta device."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_dir))
    out, table = model.get_output_embeddings().weight, model.get_input_embeddings().weight
    total = sum(p.numel() for p in model.parameters())  # a tied output layer is counted once, with the table
    lookups = 0 if table is out else table.numel()      # an untied token table is a lookup, not a product
    return total - out.numel() - lookups, out.numel()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", default=str(ROOT / "runs" / "demo"), help="a `luyen run` folder with data, rag, train and eval")
    ap.add_argument("--config", default=str(ROOT / "configs" / "demo.yaml"))
    args = ap.parse_args()
    from transformers import AutoTokenizer

    from luyen.config import load_config
    from luyen.data.template import render, resolve_chat_template
    from luyen.evaluate import general
    from luyen.evaluate.stage import _baselines
    from luyen.evaluate.systems import _LABEL, TestSet
    from luyen.models.estimate import measure_matmul_peak
    from luyen.models.trained import source_folder
    from luyen.precision import cpu_has_bf16, machine
    run = Path(args.run)
    cfg = load_config(args.config, [])
    rag = run / "rag" if (run / "rag" / "manifest.json").is_file() else None
    baselines, index = _baselines(cfg, None, rag)
    test = TestSet.read(run / "data", cfg.eval.limit, cfg.eval.shots, index, few_shot="few-shot" in baselines)
    tok = AutoTokenizer.from_pretrained(run / "train" / "model")
    template = resolve_chat_template(tok)

    def tokens(text: str) -> int:
        return len(tok(text, add_special_tokens=False)["input_ids"])

    def prompt(messages: list[dict]) -> str:  # as Engine.render gives it: the trained template, generation prompt on
        return render(tok, template, messages, add_generation_prompt=True)

    body, vocab = weights(source_folder(cfg.model.name))
    samples = [json.loads(line) for line in open(run / "eval" / "samples.jsonl", encoding="utf-8")]
    refs = sum(tokens(r) + 1 for r in test.refs)  # + the end-of-turn marker each reference is scored with
    systems = {}
    for name in samples[0]:
        if name in ("prompt", "reference", "retrieved passage"):
            continue
        style = next((s for s, label in _LABEL.items() if name.endswith(label)), "zero-shot")  # "fine-tuned": zero-shot
        prompts = sum(tokens(prompt(p)) for p in test.prompts(style, cfg))
        answers = sum(tokens(s[name]) for s in samples)
        systems[name] = {"prompt_tokens": prompts, "reference_tokens": refs, "answer_tokens": answers,
                         "gflop": round((2 * body * (prompts + refs + answers) + 2 * vocab * refs) / 1e9)}
    if cfg.eval.general:
        requests = general._requests(tok, general.load_items(), prompt)
        positions = sum(len(ctx) + sum(map(len, cs)) for ctx, cs in requests)
        scored = sum(sum(map(len, cs)) for _, cs in requests)
        systems["general check, both models"] = {"positions": 2 * positions,
                                                  "gflop": round(2 * (2 * body * positions + 2 * vocab * scored) / 1e9)}
    total = sum(s["gflop"] for s in systems.values())
    peaks = {"fp32": measure_matmul_peak() / 1e9}
    if cpu_has_bf16():
        import torch
        peaks["bf16"] = measure_matmul_peak(dtype=torch.bfloat16) / 1e9
    wall = json.loads((run / "eval" / "manifest.json").read_text(encoding="utf-8")).get("wall_time_s")
    print(json.dumps({
        "machine": machine(), "run": str(run), "body_params": body, "output_params": vocab, "systems": systems,
        "total_gflop": total,
        "peak_gflops_here": {k: round(v, 1) for k, v in peaks.items()},
        "floor_seconds_here": {k: round(total / v, 1) for k, v in peaks.items()},
        "floor_seconds_at_avx2_anchor": round(total / AVX2_FP32_GFLOPS, 1),
        "eval_wall_seconds": wall,
        "eval_share_of_floor_here": {k: round(total / v / wall, 3) for k, v in peaks.items()} if wall else None,
    }, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
