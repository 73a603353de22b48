"""llama.cpp under the engine: one sequence at a time at llama.cpp's speed, with luyen's decoding rules.

    runner, note = prepare(name, model, tokenizer, "llama.cpp-f16")   # builds the GGUF once, then reuses it
    tokens = runner.run(prompt_ids, cfg, finished=lambda new: ...)      # the new token ids

Why: on a CPU without native bf16 the transformers engine reads 1.07 GB of fp32 weights for every
token of Gemma-3-270M, which caps one stream at ~27 tokens/s on the 2-core AVX2 EPYC (16 measured);
llama.cpp with f16 weights gives 47 there and with q8_0 64 (`python bench/generate_speed.py`).

The model (an adapter folded into its base, as `luyen export --format merged` folds it) goes once
through llama.cpp's converter (f16) and, for q8_0, its quantizer, both from ``luyen.export.gguf``, and
is checked against transformers fp32 the way the GGUF export is (``agreement``). The file lives under
``<cache root>/gguf/<key>-<quant>/`` where ``key`` hashes the loaded weights and the vocabulary, so a
retrained adapter gets a new file and the same model never converts twice; ``gguf.json`` beside it
records the check, or why this model cannot run in llama.cpp (then the engine keeps transformers).

Only the forward pass is llama.cpp's: prompts are tokenised and answers decoded by the model's own
tokenizer, and each step's logits go through the processors the transformers path applies (the
repetition penalty over the answer's own tokens, no-repeat n-grams, then temperature, top-k, top-p and
a draw from torch's generator seeded as the engine seeds it), so every setting means the same on both
paths. Every request starts from an empty KV cache (``luyen.export.gguf.fresh_context`` says why).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
import weakref
from pathlib import Path

import torch

from luyen.config import GenerateConfig
from luyen.errors import LuyenError

QUANT = {"llama.cpp-f16": "f16", "llama.cpp-f16_q8emb": "f16_q8emb", "llama.cpp-q8_0": "q8_0"}
CHECKED = "gguf.json"
MAX_CONTEXT = 8192  # llama.cpp's KV cache is allocated for the whole context up front


def choose(runtime: str, device) -> str | None:
    """The llama.cpp runtime ``runtime`` asks for, or None for transformers. ``auto`` takes llama.cpp f16
    (the same top token as transformers fp32 on 96/96 export-check steps of Gemma-3-270M, mean KL 5e-6)
    on a CPU where the gguf extra is installed; on a GPU transformers is faster."""
    from luyen.export.gguf import require_llama_cpp
    if runtime == "transformers" or (runtime == "auto" and torch.device(device).type != "cpu"):
        return None
    try:
        require_llama_cpp(f"generate.runtime={runtime}", field="generate.runtime",
                          otherwise=", or use generate.runtime=transformers")
    except LuyenError:
        if runtime == "auto":
            return None
        raise
    return "llama.cpp-f16" if runtime == "auto" else runtime


def model_key(model, tokenizer) -> str:
    """A hash of every weight (each shared tensor once) and the vocabulary: what the GGUF is made of."""
    h = hashlib.blake2b(digest_size=12)
    h.update(json.dumps([len(tokenizer), tokenizer.all_special_tokens]).encode())
    seen = set()
    for name, t in sorted(model.state_dict().items()):
        if t.data_ptr() in seen:
            continue
        seen.add(t.data_ptr())
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(memoryview(t.detach().cpu().contiguous().view(torch.uint8).numpy()))
    return h.hexdigest()


def prepare(name: str, model, tokenizer, runtime: str, *, base: str | None = None, trust_remote_code: bool = False,
            cache_dir=None, say=None) -> tuple["LlamaRunner | None", str]:
    """(runner, what was chosen and why) for the model loaded from ``name``; (None, reason) when it stays
    on transformers. The GGUF is built on first use (about a minute for Gemma-3-270M)."""
    from luyen.models.embedded import cache_root
    quant = QUANT[runtime]
    home = cache_root(cache_dir) / "gguf" / f"{model_key(model, tokenizer)}-{quant}"
    if not (home / CHECKED).is_file():
        (say or (lambda _: None))(f"preparing a llama.cpp copy of {name} once ({quant} GGUF, about a minute for "
                                  "a 270M model; generate.runtime=transformers skips it)")
        try:
            build(name, home, quant, base=base, trust_remote_code=trust_remote_code)
        except OSError as e:  # a read-only or full cache: say where, never a traceback
            raise LuyenError(f"cannot write the llama.cpp copy under {home.parent} ({e.strerror or e})",
                             field="generate.runtime", fix="free disk space or set XDG_CACHE_HOME to a writable "
                             "folder, or use generate.runtime=transformers") from None
    info = json.loads((home / CHECKED).read_text(encoding="utf-8"))
    if info.get("refused"):
        return None, f"transformers ({info['refused']})"
    from luyen.export.gguf import describe_agreement
    from luyen.models.shape import config_shape
    runner = LlamaRunner(home / info["file"], min(MAX_CONTEXT, config_shape(model.config)["context"] or MAX_CONTEXT))
    return runner, f"llama.cpp {quant} ({home / info['file']}; {describe_agreement(quant, info['agreement'])})"


def build(name: str, home: Path, quant: str, *, base: str | None = None, trust_remote_code: bool = False) -> None:
    """Fold, convert, quantise and check ``name`` into ``home`` (staged: never half there). A model
    llama.cpp cannot take, or whose file fails the export's agreement check, is recorded as refused."""
    import shutil

    from luyen.export import gguf
    from luyen.export.merged import merge_adapter, save_merged
    from luyen.manifest import atomic_write, staged
    from luyen.models.trained import load_trained
    start = time.perf_counter()
    converter = gguf.converter_dir(lambda _: None)  # a fetch that fails (offline) is not recorded as a refusal
    with staged(home, marker=CHECKED) as tmp:
        info: dict = {"source": str(name), "quant": quant}
        try:
            model, tok = load_trained(name, base=base, dtype=torch.float32, trust_remote_code=trust_remote_code)
            merged = tmp / "merged"
            save_merged(merge_adapter(model, str(name)), tok, merged, provenance={"source": str(name)})
            del model
            f16 = tmp / "model-f16.gguf"
            gguf.convert(converter, merged, f16)
            file = f16 if quant == "f16" else tmp / f"model-{quant}.gguf"
            if quant != "f16":
                gguf.quantize(f16, file, quant)
                f16.unlink()
            info.update(file=file.name, agreement=gguf.agreement(merged, {quant: file})[quant])
            if not info["agreement"]["kept"]:
                info["refused"] = f"llama.cpp's {quant} file failed the agreement check: " + \
                    gguf.describe_agreement(quant, info["agreement"])
            shutil.rmtree(merged)
        except LuyenError as e:
            info["refused"] = f"llama.cpp cannot run it: {e.message}"
        info["seconds"] = round(time.perf_counter() - start, 1)
        atomic_write(tmp / CHECKED, json.dumps(info, ensure_ascii=False, indent=2) + "\n")


def processors(cfg: GenerateConfig, prompt_len: int):
    """The logits processors transformers' `generate` applies for the engine's settings, in its order
    (its own processors, then the engine's repetition penalty, then the sampling warpers)."""
    from transformers import (LogitsProcessorList, NoRepeatNGramLogitsProcessor, TemperatureLogitsWarper,
                              TopKLogitsWarper, TopPLogitsWarper)

    from luyen.infer.engine import answer_penalty
    out = LogitsProcessorList()
    if cfg.no_repeat_ngram_size:
        out.append(NoRepeatNGramLogitsProcessor(cfg.no_repeat_ngram_size))
    out.extend(answer_penalty(cfg, prompt_len))
    if cfg.temperature > 0:
        out.append(TemperatureLogitsWarper(cfg.temperature))
        if cfg.top_k:
            out.append(TopKLogitsWarper(cfg.top_k))
        if cfg.top_p < 1.0:
            out.append(TopPLogitsWarper(cfg.top_p))
    return out


class LlamaRunner:
    def __init__(self, path: Path, n_ctx: int):
        import llama_cpp

        from luyen.export.gguf import silence_llama_cpp
        silence_llama_cpp()
        self.path, self.n_ctx = Path(path), n_ctx
        self.llm = llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_batch=512, n_threads=os.cpu_count() or 1,
                                   logits_all=False, verbose=False)
        self.vocab = self.llm.n_vocab()
        # closed when the runner goes, or at exit while llama_cpp's module is still whole: left to Llama.__del__
        # at interpreter shutdown, it printed "Exception ignored ... TypeError" under every `luyen chat`
        self._close = weakref.finalize(self, self.llm.close)

    def fits(self, tokens: int) -> bool:
        return tokens <= self.n_ctx

    def logits(self):
        import llama_cpp
        import numpy as np
        return np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(self.llm.ctx, -1), shape=(self.vocab,))

    def run(self, ids: list[int], cfg: GenerateConfig, finished) -> list[int]:
        """The new tokens after ``ids`` (at most cfg.max_new_tokens; ``finished(new)`` ends earlier)."""
        from luyen.export.gguf import fresh_context
        fresh_context(self.llm)  # every request evaluated whole, as the server's llama.cpp backend does
        procs, sample = processors(cfg, len(ids)), cfg.temperature > 0
        if sample:
            torch.manual_seed(cfg.seed if cfg.seed is not None else 0)  # as Engine._generate_kwargs seeds
        self.llm.eval(ids)
        new: list[int] = []
        while len(new) < cfg.max_new_tokens:
            logits = self.logits()
            if procs:
                scores = procs(torch.tensor([ids + new]), torch.from_numpy(logits.copy())[None])
                token = int(torch.multinomial(scores.softmax(-1), 1)) if sample else int(scores.argmax())
            else:
                token = int(logits.argmax())
            new.append(token)
            if finished(new) or len(new) == cfg.max_new_tokens:
                break
            self.llm.eval([token])
        return new

    def close(self) -> None:
        self._close()
