"""Does generate.runtime change what the user gets? Every test question of a run, answered greedily by
each runtime, one chat at a time (as `luyen chat` asks) or, with --batch-size N, all in one call that
decodes N at a time (as `luyen generate --input` and evaluation ask), compared with the first runtime.

    python bench/runtime_agreement.py [--run runs/demo/train] [--data runs/demo/data] [--runtimes transformers,llama.cpp-f16,llama.cpp-q8_0] [--batch-size 1]

The model's own settings apply (its answer budget and repetition penalty, from generation_config.json).
Per runtime: seconds and tokens/s over all questions (with the speed ratio against transformers from the
same run), answers identical to transformers' (count), the mean share of each answer's tokens before it
first parts from transformers', ROUGE-L against the reference answers, and the paired bootstrap 95%
interval of its ROUGE-L minus transformers' (luyen.evaluate.verdict). The first runtime is the
reference. A llama.cpp runtime builds its GGUF into luyen's cache on first use (not timed here: the
seconds are the answers' only). Prints one JSON object, with the CPU it ran on.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def prefix_share(a: list[int], b: list[int]) -> float:
    """The share of the longer answer's tokens before the two first differ."""
    n = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return n / max(len(a), len(b), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", default="runs/demo/train")
    parser.add_argument("--data", type=Path, default=Path("runs/demo/data"))
    parser.add_argument("--runtimes", default="transformers,llama.cpp-f16,llama.cpp-q8_0")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=1, help="1: one chat per call; N: one call, N rows at a time")
    args = parser.parse_args()
    from luyen.evaluate.metrics import rouge_l_per_example
    from luyen.evaluate.verdict import paired_bootstrap
    from luyen.infer.engine import Engine
    from luyen.precision import machine
    rows = [json.loads(line) for line in open(args.data / "test.jsonl", encoding="utf-8")][:args.limit]
    chats = [r["messages"][:-1] for r in rows]
    references = [r["messages"][-1]["content"] for r in rows]
    out: dict = {"run": args.run, "questions": len(chats), "batch_size": args.batch_size, "runtimes": {}}
    reference = None
    for runtime in [r.strip() for r in args.runtimes.split(",") if r.strip()]:
        engine = Engine.load(args.run, runtime=runtime)
        engine.chat(chats[0], max_new_tokens=2)  # warm-up
        start = time.perf_counter()
        answers = ([engine.chat(c) for c in chats] if args.batch_size == 1 else
                   engine.chat(chats, batch_size=args.batch_size))
        seconds = time.perf_counter() - start
        ids = [engine.tok(a.text, add_special_tokens=False)["input_ids"] for a in answers]
        scores = rouge_l_per_example([a.text for a in answers], references)
        tokens = sum(a.completion_tokens for a in answers)
        result = {"engine": engine.runtime, "seconds": round(seconds, 1), "tokens": tokens,
                  "tokens_per_s": round(tokens / seconds, 1), "stopped": sum(a.finish_reason == "stop" for a in answers),
                  "rouge_l": round(sum(scores) / len(scores), 2)}  # per-example scores are in points
        if reference is None:
            reference = {"texts": [a.text for a in answers], "ids": ids, "scores": scores, "seconds": seconds}
        else:
            ci = paired_bootstrap(scores, reference["scores"])
            result.update(speed_vs_reference=round(reference["seconds"] / seconds, 2),
                          identical=sum(a.text == b for a, b in zip(answers, reference["texts"])),
                          mean_prefix_share=round(sum(map(prefix_share, ids, reference["ids"])) / len(ids), 3),
                          rouge_l_minus_reference={k: round(ci[k], 2) for k in ("diff", "lo", "hi")})
        out["runtimes"][runtime] = result
        print(f"{runtime}: {result}", file=sys.stderr, flush=True)
        if engine.runner is not None:
            engine.runner.close()
        del engine
    out["machine"] = machine()
    print(json.dumps(out, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
