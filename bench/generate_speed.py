"""Generation speed of the embedded model (Gemma-3-270M) through each runtime luyen exports to.

    python bench/generate_speed.py [--arms transformers-fp32,onnxruntime-fp32,onnxruntime-int8] [--new-tokens 64]
    python bench/generate_speed.py --arms transformers-fp32,transformers-bf16,transformers-int8-dynamic,transformers-int8-weight,llama.cpp-q8_0
    python bench/generate_speed.py --arms luyen-auto,luyen-llama.cpp-q8_0,luyen-transformers,llama.cpp-f16,llama.cpp-q8_0

Every arm greedily continues the same Vietnamese prompts one at a time (batch 1, the interactive
case), producing exactly ``--new-tokens`` tokens (end-of-text ignored, so every arm does the same
work), after one untimed warm-up. All arms are loaded first, then measured in turn for ``--rounds``
rounds, and each arm keeps its fastest round: on a shared machine a burst of load then hurts every
arm alike instead of whichever happened to run during it. Per arm it reports:

* ``first_token_s``: time to first token (prompt processing plus the first new token), median;
* ``decode_tokens_per_s``: the tokens after the first over the time after the first, i.e. the
  steady decoding rate;
* ``tokens_per_s``: all new tokens over the whole time (what a user waiting for the answer sees).

The ``luyen-*`` arms are luyen's own engine as `luyen generate` runs it (``generate.runtime``: auto,
llama.cpp-q8_0 or transformers). Arms are entries of ``ARMS`` (name -> setup function returning a ``generate(prompt, n) -> Timing``
callable), so another runtime is one function. The transformers arms run `generate` with fp32 weights,
bf16 weights, every Linear quantized dynamically to int8 (torch.ao: int8 weights and activations), or
int8 weights only (one scale per row; activations in bf16 where the CPU has it, else fp32). Each
non-fp32 arm reports its agreement with fp32 under ``agreement_with_fp32``, measured as the GGUF
export check measures q8_0 (teacher-forced top-1 and KL on luyen.export.check's prompts). The ONNX arms export the model once into
``--workdir`` with ``luyen.export.onnx.export`` and print that export's own metrics (sizes, greedy
agreement with transformers, perplexity fp32 vs int8) under ``onnx_export``; the llama.cpp arms do the
same with ``luyen.export.gguf.export`` (f16, q8_0, q4_k_m) under ``gguf_export``. Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

PROMPTS = [
    "Thủ đô của Việt Nam là",
    "Học máy là một nhánh của trí tuệ nhân tạo, trong đó",
    "Để đổi vé máy bay, khách hàng cần",
]


@dataclass
class Timing:
    first_token_s: float
    seconds: float
    tokens: int


@dataclass
class Context:
    model_dir: Path  # the embedded model as a transformers folder
    workdir: Path    # exported files are built here once and reused
    threads: int
    info: dict       # arms add what the JSON should carry besides timings (e.g. export metrics)


def transformers_arm(kind: str):
    """transformers' generate in fp32, bf16 weights, or fp32 with every Linear (the 262k-row output layer
    included) quantized dynamically to int8 (torch.ao quantize_dynamic: int8 weights, activations
    quantized per call), or fp32 with every Linear's weight packed once for oneDNN (luyen.infer.packed,
    what luyen's Engine does on a CPU without native bf16)."""
    def setup(ctx: Context) -> Callable[[str, int], Timing]:
        return transformers_generate(ctx, kind)
    return setup


def transformers_generate(ctx: Context, kind: str) -> Callable[[str, int], Timing]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.generation.streamers import BaseStreamer
    torch.set_num_threads(ctx.threads)
    from luyen.precision import choose
    activations = torch.bfloat16 if kind == "bf16" or (kind == "int8-weight" and choose().name == "bf16") else torch.float32
    model = AutoModelForCausalLM.from_pretrained(ctx.model_dir, dtype=activations).eval()
    if kind == "int8-dynamic":
        import warnings
        from torch.ao.quantization import quantize_dynamic
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    elif kind == "int8-weight":
        int8_weights(model, activations)
    elif kind == "fp32-packed":  # what luyen's Engine runs on a CPU without native bf16
        from luyen.infer.packed import pack
        ctx.info["fp32-packed"] = pack(model)
    tok = AutoTokenizer.from_pretrained(ctx.model_dir)
    if kind != "fp32":
        ctx.info.setdefault("agreement_with_fp32", {})[kind] = agreement(ctx, model, tok)

    class FirstToken(BaseStreamer):  # generate() calls put() with the prompt, then once per new token
        def __init__(self):
            self.calls, self.at = 0, None

        def put(self, value):
            self.calls += 1
            if self.calls == 2:
                self.at = time.perf_counter()

        def end(self):
            pass

    def generate(prompt: str, n: int) -> Timing:
        ids = tok(prompt, return_tensors="pt")
        streamer, start = FirstToken(), time.perf_counter()
        with torch.no_grad():
            out = model.generate(**ids, max_new_tokens=n, min_new_tokens=n, do_sample=False, streamer=streamer,
                                 temperature=None, top_p=None, top_k=None)
        return Timing(streamer.at - start, time.perf_counter() - start, out.shape[1] - ids["input_ids"].shape[1])
    return generate


def int8_linear(linear, dtype):
    """``linear`` with its weight in int8, one scale per output row (symmetric, absmax / 127); activations
    stay in ``dtype`` and torch's weight-only int8 kernel (_weight_int8pack_mm) multiplies."""
    import torch

    class Int8WeightLinear(torch.nn.Module):
        def __init__(self):
            super().__init__()
            w = linear.weight.detach().float()
            scale = w.abs().amax(dim=1).clamp(min=1e-8) / 127
            self.register_buffer("weight", torch.round(w / scale[:, None]).clamp(-128, 127).to(torch.int8))
            self.register_buffer("scale", scale.to(dtype))
            self.bias = None if linear.bias is None else torch.nn.Parameter(linear.bias.detach().to(dtype))

        def forward(self, x):
            y = torch._weight_int8pack_mm(x.reshape(-1, x.shape[-1]).to(dtype), self.weight, self.scale)
            y = y.reshape(*x.shape[:-1], -1)
            return (y if self.bias is None else y + self.bias).to(x.dtype)
    return Int8WeightLinear()


def int8_weights(module, dtype) -> None:
    """Every nn.Linear under ``module`` (the tied 262k-row output layer included) -> int8_linear."""
    import torch
    for name, child in module.named_children():
        if isinstance(child, torch.nn.Linear):
            setattr(module, name, int8_linear(child, dtype))
        else:
            int8_weights(child, dtype)


def agreement(ctx: Context, model, tok, n: int = 16) -> dict:
    """The quality cost of ``model`` against fp32 transformers, measured as the GGUF export check does: on
    luyen.export.check's prompts, fp32 decodes greedily; ``model`` reads the same tokens (teacher forced),
    and per step we compare its top token with fp32's and the KL divergence of fp32's distribution from it."""
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM
    from luyen.export.check import PROMPTS, greedy
    reference = AutoModelForCausalLM.from_pretrained(ctx.model_dir, dtype=torch.float32).eval()
    steps = agreed = 0
    kls = []
    for prompt in PROMPTS:
        ids = tok(prompt)["input_ids"]
        tokens, ref_logprobs = greedy(reference, ids, n)
        with torch.no_grad():
            logits = model(torch.tensor([ids + tokens])).logits[0, len(ids) - 1:len(ids) - 1 + len(tokens)]
        logprobs = torch.log_softmax(logits.double(), -1).numpy()
        for ref, got, token in zip(ref_logprobs, logprobs, tokens):
            steps += 1
            agreed += int(got.argmax()) == token
            kls.append(float(np.sum(np.exp(ref) * (ref - got))))
    del reference
    return {"prompts": len(PROMPTS), "tokens_per_prompt": n, "steps": steps, "top1_agreed": agreed,
            "mean_kl": round(float(np.mean(kls)), 6), "max_kl": round(float(np.max(kls)), 6)}


def onnx_files(ctx: Context) -> Path:
    """The embedded model exported once (fp32 + int8) into the workdir; the export's metrics go in the JSON."""
    from luyen.export.onnx import INT8_FILE, export
    out = ctx.workdir / "onnx"
    metrics_file = out / "export-metrics.json"
    if not (out / INT8_FILE).is_file() or not metrics_file.is_file():
        from luyen.manifest import atomic_write
        metrics = export(ctx.model_dir, out, ["int8"], None)
        atomic_write(metrics_file, json.dumps(metrics, indent=2))
    ctx.info["onnx_export"] = json.loads(metrics_file.read_text(encoding="utf-8"))
    return out


def onnxruntime_arm(file_name: str):
    def setup(ctx: Context) -> Callable[[str, int], Timing]:
        from transformers import AutoTokenizer
        from luyen.export.onnx import OrtLM
        folder = onnx_files(ctx)
        lm, tok = OrtLM(folder / file_name, threads=ctx.threads), AutoTokenizer.from_pretrained(folder)

        def generate(prompt: str, n: int) -> Timing:
            run = lm.greedy([tok(prompt)["input_ids"]], n)  # no stop ids: exactly n tokens
            return Timing(run.first_token_s, run.seconds, len(run.tokens[0]))
        return generate
    return setup


def gguf_files(ctx: Context) -> Path:
    """The embedded model exported once to f16, q8_0 and q4_k_m GGUF in the workdir; the export's metrics go in the JSON."""
    from luyen.export.gguf import export
    out = ctx.workdir / "gguf"
    metrics_file = out / "export-metrics.json"
    if not (out / "model-f16.gguf").is_file() or not metrics_file.is_file():
        from luyen.manifest import atomic_write
        metrics = export(ctx.model_dir, out, ["f16", "q8_0", "q4_k_m"], None)
        atomic_write(metrics_file, json.dumps(metrics, indent=2))
    ctx.info["gguf_export"] = json.loads(metrics_file.read_text(encoding="utf-8"))
    return out


def llama_cpp_arm(quant: str):
    def setup(ctx: Context) -> Callable[[str, int], Timing]:
        from llama_cpp import Llama
        from transformers import AutoTokenizer
        llm = Llama(model_path=str(gguf_files(ctx) / f"model-{quant}.gguf"), n_ctx=512, n_threads=ctx.threads,
                    verbose=False)
        tok = AutoTokenizer.from_pretrained(ctx.model_dir)

        def generate(prompt: str, n: int) -> Timing:
            ids, count, first = tok(prompt)["input_ids"], 0, None
            llm.reset()  # no KV prefix reuse from the previous round: every run processes its prompt
            start = time.perf_counter()
            for _ in llm.generate(ids, temp=0.0, top_k=1):  # greedy; end-of-text ignored until n tokens
                count += 1
                first = first if first is not None else time.perf_counter() - start
                if count == n:
                    break
            return Timing(first, time.perf_counter() - start, count)
        return generate
    return setup


def engine_arm(runtime: str):
    """luyen's own engine (``Engine.load(runtime=...)``, what `luyen generate` and `luyen chat` run) through
    its whole path: tokenizer, llama.cpp or transformers, luyen's decoding, decode and stop checks. Its
    end tokens are cleared so it runs to n tokens as the other arms do; the first token's time is a
    separate one-token request. The llama.cpp file is built into luyen's cache on first use."""
    def setup(ctx: Context) -> Callable[[str, int], Timing]:
        from luyen.infer.engine import Engine
        engine = Engine.load(str(ctx.model_dir), runtime=runtime)
        engine.stop_ids = []  # end-of-text ignored, as every arm ignores it
        ctx.info.setdefault("engine_runtime", {})[runtime] = engine.runtime

        def generate(prompt: str, n: int) -> Timing:
            first = engine.generate(prompt, max_new_tokens=1)
            done = engine.generate(prompt, max_new_tokens=n)
            return Timing(first.seconds, done.seconds, done.completion_tokens)
        return generate
    return setup


ARMS: dict[str, Callable[[Context], Callable[[str, int], Timing]]] = {
    "luyen-auto": engine_arm("auto"),
    "luyen-llama.cpp-q8_0": engine_arm("llama.cpp-q8_0"),
    "luyen-transformers": engine_arm("transformers"),
    "transformers-fp32": transformers_arm("fp32"),
    "transformers-fp32-packed": transformers_arm("fp32-packed"),
    "transformers-bf16": transformers_arm("bf16"),
    "transformers-int8-dynamic": transformers_arm("int8-dynamic"),
    "transformers-int8-weight": transformers_arm("int8-weight"),
    "onnxruntime-fp32": onnxruntime_arm("model.onnx"),
    "onnxruntime-int8": onnxruntime_arm("model_int8.onnx"),
    "llama.cpp-f16": llama_cpp_arm("f16"),
    "llama.cpp-q8_0": llama_cpp_arm("q8_0"),
    "llama.cpp-q4_k_m": llama_cpp_arm("q4_k_m"),
}


def measure(generate: Callable[[str, int], Timing], n: int) -> dict:
    runs = [generate(p, n) for p in PROMPTS]
    assert all(r.tokens == n for r in runs), f"an arm produced {[r.tokens for r in runs]} tokens, expected {n}"
    decode = [(r.tokens - 1) / (r.seconds - r.first_token_s) for r in runs]
    return {"first_token_s": round(statistics.median(r.first_token_s for r in runs), 4),
            "decode_tokens_per_s": round(statistics.median(decode), 1),
            "tokens_per_s": round(sum(r.tokens for r in runs) / sum(r.seconds for r in runs), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated, from: {', '.join(ARMS)}")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=Path.home() / ".cache" / "luyen" / "bench" / "generate")
    args = parser.parse_args()
    names = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = [a for a in names if a not in ARMS]
    if unknown:
        sys.exit(f"unknown arms {unknown}; choose from {list(ARMS)}")
    from luyen.models.resolve import resolve_model
    ctx = Context(resolve_model("gemma3-270m"), args.workdir, args.threads, {})
    ctx.workdir.mkdir(parents=True, exist_ok=True)
    result = {"model": "gemma3-270m", "new_tokens": args.new_tokens, "threads": args.threads,
              "prompts": len(PROMPTS), "batch": 1, "arms": {}}
    arms, setup = {}, {}
    for name in names:
        start = time.perf_counter()
        arms[name] = ARMS[name](ctx)
        arms[name](PROMPTS[0], 4)  # warm-up: first calls allocate and pick kernels
        setup[name] = round(time.perf_counter() - start, 1)
    for r in range(args.rounds):
        for name, generate in arms.items():
            m = measure(generate, args.new_tokens)
            print(f"round {r + 1} {name}: {m}", file=sys.stderr, flush=True)
            best = result["arms"].get(name)
            if best is None or m["tokens_per_s"] > best["tokens_per_s"]:
                result["arms"][name] = {**m, "setup_s": setup[name]}
    result["rounds"] = args.rounds
    anchor = result["arms"].get("llama.cpp-q8_0")
    if anchor:  # the anchor, measured in this same run
        result["tokens_per_s_vs_llama_cpp_q8_0"] = {n: round(a["tokens_per_s"] / anchor["tokens_per_s"], 2)
                                                    for n, a in result["arms"].items()}
    result.update(ctx.info)
    from luyen.precision import machine
    result["machine"] = machine()
    print(json.dumps(result, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
