"""llama.cpp under the engine: rows decoded together at llama.cpp's speed, with luyen's decoding rules.

    runner, note = prepare(name, model, tokenizer, "llama.cpp-f16")   # builds the GGUF once, then reuses it
    done = runner.run(prompts_ids, cfg, finished=lambda new: ...)       # [(new token ids, seconds)]

Why: on a CPU without native bf16 the transformers engine reads 1.07 GB of fp32 weights for every
token of Gemma-3-270M, which caps one stream at ~27 tokens/s on the 2-core AVX2 EPYC (16 measured);
llama.cpp with f16 weights gives 47 there and with q8_0 64 (`python bench/generate_speed.py`).

The model (an adapter folded into its base, as `luyen export --format merged` folds it) goes once
through llama.cpp's converter (f16) and, for q8_0, its quantizer, both from ``luyen.export.gguf``, and
is checked against transformers fp32 the way the GGUF export is (``agreement``). The file lives under
``<cache root>/gguf/<key>-<quant>/`` where ``key`` hashes the loaded weights and the vocabulary, so a
retrained adapter gets a new file and the same model never converts twice; ``gguf.json`` beside it
records the check, or why this model cannot run in llama.cpp (then the engine keeps transformers).

Several prompts decode together (``LlamaBatch``, continuous batching: one llama.cpp sequence per row in
one context, one llama_decode per step, a finished row's place taken by the next prompt): the weights
are read once per step for every row, which is what makes a batch faster than its rows one by one.
Only the forward pass is llama.cpp's: prompts are tokenised and answers decoded by the model's own
tokenizer, and each row's logits go through luyen.infer.live's Sampler, the rules the transformers
path applies (the repetition penalty over the answer's own tokens, no-repeat n-grams, then
temperature, top-k, top-p and a draw from the row's own generator), so every setting means the same
on both paths. Every prompt is evaluated whole (LlamaBatch says why).
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


def runner_for(name: str, model, tokenizer, runtime: str, *, base: str | None = None, trust_remote_code: bool = False,
               say=None) -> tuple["LlamaRunner | None", str]:
    """(runner, what runs the model and why) for ``runtime`` (generate.runtime's choices): (None,
    "transformers ...") where it stays on transformers. ``auto`` falls back to transformers, saying why,
    where llama.cpp cannot be used; a runtime asked for by name is a one-line error instead."""
    chosen = choose(runtime, next(model.parameters()).device)
    if chosen is None:
        return None, "transformers"
    try:
        return prepare(name, model, tokenizer, chosen, base=base, trust_remote_code=trust_remote_code, say=say)
    except LuyenError as e:
        if runtime != "auto":
            raise
        return None, f"transformers (llama.cpp: {e.message})"


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


SLOTS = 16  # rows one llama.cpp context decodes side by side (serve.max_batch_size's default)
CELLS = 16384  # KV cells they share (kv_unified); ~300 MB of f16 keys and values for Gemma-3-270M
CHUNK = 2048  # tokens per llama_decode call (llama.cpp splits it into ubatches of 512)


class LlamaRunner:
    """The GGUF loaded once: llama.cpp's model, and one context whose KV cache holds up to SLOTS sequences
    side by side, so that the rows of a batch decode together, one llama_decode per step (LlamaBatch)."""

    def __init__(self, path: Path, n_ctx: int, slots: int = SLOTS, cells: int = CELLS):
        import llama_cpp

        from luyen.export.gguf import silence_llama_cpp
        silence_llama_cpp()
        self.path, self.n_ctx, self.slots, self.cells = Path(path), n_ctx, slots, max(cells, n_ctx)
        threads = os.cpu_count() or 1
        # the model and its vocabulary; Llama's own context goes unused, so it is kept small
        self.llm = llama_cpp.Llama(model_path=str(path), n_ctx=64, n_batch=64, n_threads=threads, verbose=False)
        params = llama_cpp.llama_context_default_params()
        params.n_ctx, params.n_batch, params.n_ubatch = self.cells, CHUNK, 512
        params.n_seq_max, params.kv_unified, params.swa_full = slots, True, True
        params.n_threads = params.n_threads_batch = threads
        params.no_perf = True
        # flash attention stays llama.cpp's default (auto: on for CPUs, as llama-server runs): 16 rows of
        # Gemma-3-270M f16 decoded at 157 tokens/s with it and 130 without on the 2-core AVX2 EPYC.
        # llama-cpp-python's Llama turns it off unless asked (flash_attn=True), and rounds differently then.
        self.ctx = llama_cpp.llama_init_from_model(self.llm.model, params)
        if not self.ctx:
            self.llm.close()
            raise LuyenError(f"llama.cpp could not make a context of {self.cells} cells for {path}",
                             field="generate.runtime", fix="use generate.runtime=transformers")
        self.batch = llama_cpp.llama_batch_init(CHUNK, 0, 1)
        self.vocab = self.llm.n_vocab()
        # freed when the runner goes, or at exit while llama_cpp's module is still whole: left to Llama.__del__
        # at interpreter shutdown, it printed "Exception ignored ... TypeError" under every `luyen chat`
        self._close = weakref.finalize(self, _free, self.ctx, self.batch, self.llm)

    def fits(self, tokens: int) -> bool:
        """Whether one row of ``tokens`` (prompt + answer budget) fits this runner's context."""
        return tokens <= self.n_ctx

    def run(self, prompts: list[list[int]], cfg: GenerateConfig, finished, width: int | None = None):
        """Each prompt's new tokens and seconds, [(tokens, seconds)], at most ``width`` rows (cfg.batch_size)
        decoding together: a row that ends (``finished(new)``, or cfg.max_new_tokens) leaves and the next
        prompt takes its place. Every row samples from its own generator seeded with cfg.seed (0 unset), as
        the transformers path seeds a batch of one, so an answer does not depend on what shares its batch."""
        from luyen.infer.live import Sampler
        width = max(1, min(width or cfg.batch_size, self.slots))
        out: list = [None] * len(prompts)
        todo = list(range(len(prompts)))
        live = LlamaBatch(self)
        started: dict[int, float] = {}
        while todo or len(live):
            fresh = todo[:live.fitting([len(prompts[i]) + cfg.max_new_tokens for i in todo], width)]
            todo = todo[len(fresh):]
            owners = list(live.owners)
            if owners:
                live.step()
            if fresh:
                for i in fresh:
                    started[i] = time.perf_counter()
                samplers = [Sampler(temperature=cfg.temperature, top_p=cfg.top_p, top_k=cfg.top_k or 0,
                                    repetition_penalty=cfg.repetition_penalty or 1.0,
                                    no_repeat_ngram_size=cfg.no_repeat_ngram_size or 0,
                                    seed=cfg.seed if cfg.seed is not None else 0) for _ in fresh]
                live.admit(fresh, [prompts[i] for i in fresh], samplers, [cfg.max_new_tokens] * len(fresh))
                owners += fresh
            keep = []
            for i, answer in zip(owners, live.answers):
                done = finished(answer) or len(answer) >= cfg.max_new_tokens
                if done:
                    out[i] = (list(answer), time.perf_counter() - started[i])
                keep.append(not done)
            live.keep(keep)
        return out

    def close(self) -> None:
        self._close()


def _free(ctx, batch, llm) -> None:
    import llama_cpp
    llama_cpp.llama_batch_free(batch)
    llama_cpp.llama_free(ctx)
    llm.close()


class LlamaBatch:
    """Rows decoding together in a runner's context, with the interface of luyen.infer.live.LiveBatch
    (admit, step, keep, owners): each row is a llama.cpp sequence of its own, and a row that leaves frees
    its sequence's cells at once. Each step's logits go through the row's Sampler (the repetition
    penalty over the answer's own tokens, no-repeat n-grams, temperature, top-k, top-p and a draw from
    the row's own generator), the rules the transformers path applies, so a setting means the same on
    both. A sequence's prompt is evaluated whole, never continued from a cached prefix of an earlier
    request as llama-cpp-python's own `generate` does: the rest of the prompt was then evaluated in another
    batch shape (one token instead of the whole prompt), which llama.cpp computes with other kernels and
    rounding, and the same greedy request gave two answers depending on what came before it ("Xin chào!
    mendatanguser ..." after a fresh start, "... You can see the model in" after the same request)."""

    def __init__(self, runner: LlamaRunner):
        import llama_cpp
        self.runner, self.lib = runner, llama_cpp
        self.memory = llama_cpp.llama_get_memory(runner.ctx)
        self.lib.llama_memory_clear(self.memory, True)
        self.owners: list = []
        self.samplers: list = []
        self.prompts: list[list[int]] = []
        self.answers: list[list[int]] = []
        self.seqs: list[int] = []      # each row's llama.cpp sequence
        self.reserved: list[int] = []  # cells each row may come to use
        self.free = list(range(runner.slots))[::-1]

    def __len__(self) -> int:
        return len(self.owners)

    def fitting(self, needs: list[int], width: int | None = None) -> int:
        """How many of these rows (in order; the KV cells each may come to use: prompt + answer budget)
        can join now: a free sequence each, at most ``width`` rows in all, and cells for every row's budget."""
        limit, used, n = min(width or self.runner.slots, self.runner.slots) - len(self), sum(self.reserved), 0
        for need in needs:
            if n >= limit or used + need > self.runner.cells:
                break
            n, used = n + 1, used + need
        return n

    def _decode(self, entries: list[tuple[int, int, int, bool]]) -> list:
        """Evaluate (token, position, sequence, wanted) entries in CHUNK-sized calls; the logits of the
        wanted ones, in order (each call overwrites the last one's logits, so they are read in between)."""
        import numpy as np
        lib, batch, vocab, out = self.lib, self.runner.batch, self.runner.vocab, []
        for at in range(0, len(entries), CHUNK):
            chunk = entries[at:at + CHUNK]
            for i, (token, pos, seq, wanted) in enumerate(chunk):
                batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = token, pos, 1, wanted
                batch.seq_id[i][0] = seq
            batch.n_tokens = len(chunk)
            rc = lib.llama_decode(self.runner.ctx, batch)
            if rc != 0:
                raise RuntimeError(f"llama_decode returned {rc} for {len(chunk)} tokens in {len(self)} rows")
            out += [np.ctypeslib.as_array(lib.llama_get_logits_ith(self.runner.ctx, i), shape=(vocab,)).copy()
                    for i, entry in enumerate(chunk) if entry[3]]
        return out

    def _pick(self, logits: list, rows) -> list[int]:
        return [int(scores.argmax()) if self.samplers[r].plain else
                self.samplers[r].pick(torch.from_numpy(scores), self.prompts[r], self.answers[r])
                for scores, r in zip(logits, rows)]

    def admit(self, owners: list, prompts: list[list[int]], samplers: list, budgets: list[int]) -> list[int]:
        """Prefill these prompts together and join them to the batch; returns each one's first new token.
        ``budgets``: the answer tokens each may generate (what ``fitting`` counts)."""
        seqs = [self.free.pop() for _ in prompts]
        entries = []
        for seq, prompt in zip(seqs, prompts):  # a sequence's cells were freed when its last row left (keep)
            entries += [(token, pos, seq, pos == len(prompt) - 1) for pos, token in enumerate(prompt)]
        start = len(self.owners)
        self.owners += owners
        self.samplers += samplers
        self.prompts += [list(p) for p in prompts]
        self.answers += [[] for _ in prompts]
        self.seqs += seqs
        self.reserved += [len(p) + b for p, b in zip(prompts, budgets)]
        first = self._pick(self._decode(entries), range(start, len(self.owners)))
        for r, token in zip(range(start, len(self.owners)), first):
            self.answers[r].append(token)
        return first

    def step(self) -> list[int]:
        """One decoding step for every row: each row's next token, in owners order."""
        entries = [(answer[-1], len(prompt) + len(answer) - 1, seq, True)
                   for prompt, answer, seq in zip(self.prompts, self.answers, self.seqs)]
        tokens = self._pick(self._decode(entries), range(len(self.owners)))
        for answer, token in zip(self.answers, tokens):
            answer.append(token)
        return tokens

    def keep(self, which: list[bool]) -> None:
        """Rows marked False leave the batch; their sequences' cells are freed."""
        for r in [r for r, k in enumerate(which) if not k]:
            self.lib.llama_memory_seq_rm(self.memory, self.seqs[r], -1, -1)
            self.free.append(self.seqs[r])
        index = [r for r, k in enumerate(which) if k]
        for name in ("owners", "samplers", "prompts", "answers", "seqs", "reserved"):
            setattr(self, name, [getattr(self, name)[r] for r in index])
