"""Evaluation speed: `luyen eval`'s own code, as luyen runs it and as its engine ran before.

    python bench/eval_speed.py [--baselines zero-shot,few-shot] [--limit 0] [--max-new-tokens 136]
    python bench/eval_speed.py --model runs/demo/train --rag runs/demo/rag --max-new-tokens 0   # the demo's 5 systems

Prepares the demo's data (examples/data/vi_ai_qa.jsonl, the demo config's split) into a scratch
folder with luyen's data stage, then runs the evaluation stage itself (luyen.evaluate.stage.run: answer
perplexities, then every test question answered greedily in one batch of 64 with repetition penalty
1.2, as configs/demo.yaml does) on ``--model`` (default the base Gemma-3-270M) twice: as the engine ran before (the
reference: every Linear through F.linear, luyen.infer.packed switched off, one `generate` call per
batch, so finished rows are computed to the end, and each prompt run twice: once to score the reference
answer, once to answer it, each batch prefilled in one pass; transformers' own KV cache) and as luyen runs it (weights packed once for
oneDNN where the CPU runs fp32, an adapter merged into a packed copy, greedy decoding's output layer
screened in int8 (luyen.infer.screen), a KV cache that grows in place; finished rows leave the batch). ``--max-new-tokens`` defaults to the demo
model's answer budget (its training answers' p95 + 50%), since the base model has none; 0 = the
model's own.

Prints one JSON object: per arm, the wall seconds of each system (the stage's own ``wall_seconds``:
perplexities plus answers) and their sum, and the whole stage's wall time; the ratio reference/luyen
per system; how many answers the two arms wrote identically (greedy decoding: a difference comes only
from the order the matmuls add in and the batch's shape); each system's answer perplexity per arm; and the machine (CPU kind and flags). The
issue's target is the demo's 5 systems in 3 minutes on the AVX2 kind.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def evaluate(cfg, model: str, data: Path, out: Path, baselines: list[str], limit: int, rag: str | None,
             reference: bool) -> dict:
    import luyen.evaluate.systems as systems
    import luyen.infer.engine as engine
    import luyen.infer.kvcache as kvcache
    import luyen.infer.packed as packing
    from rich.console import Console
    from luyen.evaluate.stage import run
    real = packing.pack, engine.RETIRE_EVERY, systems._prefilled, kvcache.with_room, kvcache.PREFILL_ROWS
    if reference:
        kvcache.PREFILL_ROWS = 10**9  # each batch's prompts in one forward pass, inside generate
        packing.pack = lambda model, budget_bytes=None: "plain F.linear (bench reference)"  # so no merge, no screen
        kvcache.with_room = lambda cache, room: cache  # transformers' own cache, copied at every step
        engine.RETIRE_EVERY = 10**9  # one generate call per batch
        systems._prefilled = lambda *args, **kwargs: None  # the reference answers scored, then the prompts answered
    try:
        start = time.perf_counter()
        run(cfg, model, data, out, baselines=baselines, limit=limit, rag=rag, overwrite=True,
            console=Console(stderr=True))
        wall = time.perf_counter() - start
    finally:
        packing.pack, engine.RETIRE_EVERY, systems._prefilled, kvcache.with_room, kvcache.PREFILL_ROWS = real
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text(encoding="utf-8").splitlines()]
    return {"wall_s": round(wall, 1), "metrics": metrics, "samples": samples}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baselines", default="zero-shot,few-shot")
    parser.add_argument("--limit", type=int, default=0, help="first N test questions (0 = all 37)")
    parser.add_argument("--max-new-tokens", type=int, default=136)
    parser.add_argument("--model", default="gemma3-270m", help="a model or a `luyen train` run")
    parser.add_argument("--rag", default=None, help="a `luyen rag index` folder: adds the systems with retrieval")
    args = parser.parse_args()
    from luyen.config import load_config
    from luyen.data.stage import run as prepare
    from luyen.precision import choose, machine
    budget = [f"generate.max_new_tokens={args.max_new_tokens}"] if args.max_new_tokens else []
    cfg = load_config(ROOT / "configs" / "demo.yaml", [*budget, "eval.judge.url=null"])
    baselines = [b for b in args.baselines.split(",") if b]
    result = {"model": args.model, "baselines": baselines, "max_new_tokens": args.max_new_tokens,
              "batch_size": cfg.generate.batch_size, "precision": choose().describe(), "arms": {}}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        prepare(cfg, [ROOT / "examples" / "data" / "vi_ai_qa.jsonl"], data, estimate=False)
        runs = {}
        for arm in ("reference", "luyen"):
            runs[arm] = evaluate(cfg, args.model, data, Path(tmp) / arm, baselines, args.limit, args.rag,
                                 arm == "reference")
            print(f"{arm}: {runs[arm]['wall_s']} s", file=sys.stderr, flush=True)
    for arm, r in runs.items():
        seconds = {name: m["wall_seconds"] for name, m in r["metrics"]["systems"].items()}
        result["arms"][arm] = {"system_seconds": seconds, "systems_total_s": round(sum(seconds.values()), 1),
                               "stage_wall_s": r["wall_s"]}
    ref, fast = runs["reference"], runs["luyen"]
    result["ratio_reference_over_luyen"] = {
        name: round(s / result["arms"]["luyen"]["system_seconds"][name], 2)
        for name, s in result["arms"]["reference"]["system_seconds"].items()}
    pairs = [(a, b) for a, b in zip(ref["samples"], fast["samples"])]
    same = {k: sum(a[k] == b[k] for a, b in pairs) for k in ref["samples"][0] if k not in ("prompt", "reference")}
    result["identical_answers"] = {"of": len(pairs), **same}
    result["answer_perplexity"] = {arm: {name: m["answer_perplexity"] for name, m in r["metrics"]["systems"].items()}
                                   for arm, r in runs.items()}
    result["machine"] = machine()
    print(json.dumps(result, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
