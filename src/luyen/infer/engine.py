"""One generation engine for `luyen generate`, `luyen chat`, evaluation and the server.

    engine = Engine.load("runs/demo/train")             # a train run, a model folder, an adapter or a preset
    engine.chat([{"role": "user", "content": "Học máy là gì?"}]).text
    engine.generate(["Thủ đô của Việt Nam là"], GenerateConfig(max_new_tokens=20))

Prompts are batched with left padding and generated together with one KV cache per batch
(transformers' `generate`); rows that finish leave the batch every RETIRE_EVERY steps instead of being
computed to the end. On a CPU, every Linear's weight is laid out once for oneDNN, in fp32 or, where
the CPU multiplies bf16 natively, bf16 (luyen.infer.packed; `engine.kernels` says what was chosen). Chats are rendered with the chat template the model was trained with
(saved beside it by `luyen train`), and generation stops at the template's end-of-turn token, at EOS,
at `max_new_tokens` or at a stop string, which is cut from the text; `finish_reason` says which.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from luyen.config import GenerateConfig
from luyen.errors import LuyenError


@dataclass
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" (end token or stop string) or "length"
    seconds: float


def _settings(cfg: GenerateConfig | None, settings: dict) -> GenerateConfig:
    """`cfg` (default settings) with keyword overrides, validated; an unknown name is a one-line error."""
    from pydantic import ValidationError
    base = (cfg or GenerateConfig()).model_dump()
    try:
        return GenerateConfig(**{**base, **settings})
    except ValidationError as e:
        err = e.errors()[0]
        name = ".".join(str(x) for x in err["loc"])
        fix = f"use one of {', '.join(GenerateConfig.model_fields)}" if err["type"] == "extra_forbidden" else None
        raise LuyenError(err["msg"], field=f"generate.{name}", fix=fix) from None


DEFAULT_MAX_NEW_TOKENS = 256  # for a model that does not say how long its answers run
RETIRE_EVERY = 8  # decoding steps between checks for finished rows in a batch (Engine._retiring)


def answer_budget(lengths: list[int]) -> dict:
    """The answer-length budget a model trained on answers of these token lengths should generate with:
    the 95th percentile plus 50%, at least 32, rounded up to a multiple of 8. A model that learned to
    stop ends well inside it; one that did not is cut off soon after the answers it saw."""
    import math
    ordered = sorted(lengths) or [DEFAULT_MAX_NEW_TOKENS]
    p95 = ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]
    return {"p50": ordered[(len(ordered) - 1) // 2], "p95": p95, "max": ordered[-1],
            "max_new_tokens": max(32, 8 * math.ceil(1.5 * p95 / 8))}


def answer_penalty(cfg: GenerateConfig, prompt_width: int) -> list:
    """The repetition penalty as a logits processor over the answer's own tokens (the first ``prompt_width``
    columns are the prompt's); [] at 1.0. luyen.infer.live's Sampler (the server's running batch and the
    llama.cpp path) applies the same."""
    from luyen.infer.live import AnswerPenalty
    if cfg.repetition_penalty in (None, 1.0):
        return []
    return [AnswerPenalty(cfg.repetition_penalty, prompt_width)]


def model_budget(model) -> int | None:
    """max_new_tokens from the model's generation config (luyen writes it at training), or None."""
    gen = getattr(model, "generation_config", None)
    return getattr(gen, "max_new_tokens", None) if gen is not None else None


def model_defaults(model) -> dict:
    """The generation settings a model carries (luyen writes them at training), else luyen's defaults."""
    gen = getattr(model, "generation_config", None)
    return {"max_new_tokens": model_budget(model) or DEFAULT_MAX_NEW_TOKENS,
            "repetition_penalty": getattr(gen, "repetition_penalty", None) or 1.0}


def inference_dtype(precision: str = "auto"):
    """bf16 where the hardware multiplies it natively (GPUs, AVX512-BF16/AMX CPUs), else fp32: luyen.precision."""
    from luyen.precision import choose
    return choose(precision).dtype


class Engine:
    def __init__(self, model, tokenizer, template: str | None = None):
        from luyen.data.template import resolve_chat_template, stop_token_ids
        self.model, self.tok = model.eval(), tokenizer
        self.template = template or resolve_chat_template(tokenizer)
        self.stop_ids = stop_token_ids(tokenizer, self.template)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.stop_ids[0]
        self.device = next(model.parameters()).device
        # Weights already in bf16 (Engine.load picks bf16 where the hardware multiplies it natively) run
        # under bf16 autocast so fp32 adapter weights follow; fp32 weights are never autocast, because
        # casting every frozen weight at every decoding step costs more than it saves.
        from luyen.precision import autocast_for
        self.autocast_dtype = autocast_for(next(model.parameters()).dtype)
        # on the CPU every Linear's weight laid out once for oneDNN (luyen.infer.packed): fp32, or bf16 where
        # the CPU multiplies it natively; fp32 adapters' layers are also merged into packed copies of their
        # own, for while that adapter is on
        from luyen.infer.packed import pack
        from luyen.precision import cpu_has_bf16
        self.kernels = "torch default"
        if self.device.type == "cpu" and self.autocast_dtype is None:
            self.kernels = pack(model)
        elif self.device.type == "cpu" and self.autocast_dtype == torch.bfloat16 and cpu_has_bf16():
            self.kernels = pack(model, dtype=torch.bfloat16)
        if merged := self.merge_adapters():
            self.kernels += f"; {merged}"
        from luyen.train.lora import fast_trainable_tokens
        fast_trainable_tokens(model)  # an adapter's trained token rows without a copy of the whole table per step
        self.defaults = model_defaults(model)
        self.runner, self.runtime = None, "transformers"  # Engine.load may put llama.cpp (luyen.infer.gguf) under it
        from luyen.train.head import contiguous_input  # the output layer's one home (train/head.py)
        contiguous_input(model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None)

    def merge_adapters(self) -> str:
        """Packed copies with each LoRA adapter the model holds merged in (luyen.infer.packed.pack_merged),
        where the weights are packed; copies of deleted adapters are freed. Again after adding or deleting one."""
        from luyen.infer.packed import pack_merged
        return pack_merged(self.model) if self.kernels.startswith("oneDNN") else ""

    @property
    def max_new_tokens(self) -> int:
        """The answer budget this model generates with when a request leaves max_new_tokens unset."""
        return self.defaults["max_new_tokens"]

    def settings(self, cfg: GenerateConfig | None = None, **overrides) -> GenerateConfig:
        """`cfg` with keyword overrides, validated; settings left unset (max_new_tokens, repetition_penalty)
        are the model's own."""
        cfg = _settings(cfg, overrides)
        return cfg.model_copy(update={k: v for k, v in self.defaults.items() if getattr(cfg, k) is None})

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.float32,
                              enabled=self.autocast_dtype is not None)

    @classmethod
    def load(cls, name: str, *, base: str | None = None, dtype=None, trust_remote_code: bool = False,
             precision: str = "auto", runtime: str = "transformers", say=None) -> "Engine":
        """``runtime`` (generate.runtime): transformers, llama.cpp-f16, llama.cpp-f16_q8emb, llama.cpp-q8_0 or
        auto (llama.cpp f16 on a CPU with the gguf extra); `engine.runtime` says what was chosen and why."""
        from luyen.infer import gguf
        from luyen.models.trained import load_trained
        model, tok = load_trained(name, base=base, dtype=dtype or inference_dtype(precision),
                                  trust_remote_code=trust_remote_code)
        runner, why = gguf.runner_for(name, model, tok, runtime, base=base, trust_remote_code=trust_remote_code, say=say)
        engine = cls(model, tok)
        engine.runner, engine.runtime = runner, why
        return engine

    def render(self, messages: list[dict]) -> str:
        from luyen.data.template import render
        return render(self.tok, self.template, messages, add_generation_prompt=True)

    def chat(self, conversations: list[dict] | list[list[dict]], cfg: GenerateConfig | None = None, **settings):
        """One chat (a list of messages) -> a Completion; a list of chats -> a list.
        `settings` override `cfg` by name: ``engine.chat(messages, max_new_tokens=64, temperature=0.7)``."""
        single = bool(conversations) and isinstance(conversations[0], dict)
        chats = [conversations] if single else conversations
        out = self._run([self.render(c) for c in chats], self.settings(cfg, **settings), templated=True)
        return out[0] if single else out

    def generate(self, prompts: str | list[str], cfg: GenerateConfig | None = None, **settings):
        """Plain continuation of text prompts (the tokenizer's BOS added); a str gives one Completion.
        `settings` override `cfg` by name: ``engine.generate("Học máy là", max_new_tokens=32)``."""
        single = isinstance(prompts, str)
        out = self._run([prompts] if single else list(prompts), self.settings(cfg, **settings), templated=False)
        return out[0] if single else out

    def _run(self, texts: list[str], cfg: GenerateConfig, templated: bool) -> list[Completion]:
        if self.runner is not None:
            return self._llama(texts, cfg, templated)
        results = []
        for i in range(0, len(texts), cfg.batch_size):
            results += self._batch(texts[i:i + cfg.batch_size], cfg, templated)
        return results

    def encode(self, text: str, templated: bool = True) -> list[int]:
        """Token ids of a prompt: a rendered chat already holds its BOS, plain text gets the tokenizer's."""
        return self.tok(text, add_special_tokens=not templated)["input_ids"]

    def _generate_kwargs(self, cfg: GenerateConfig, prompt_width: int) -> dict:
        """generate()'s arguments for one left-padded batch whose prompts fill its first ``prompt_width``
        columns. The repetition penalty counts the answer's own tokens only, as OpenAI's penalties do:
        transformers' default also penalises every prompt token, which pushed a base model given five
        retrieved Vietnamese passages into other languages (right language 5% at penalty 1.2)."""
        from transformers import LogitsProcessorList
        cfg = self.settings(cfg)  # the server's configs arrive with the model's own settings unset
        sample = cfg.temperature > 0
        kw = dict(max_new_tokens=cfg.max_new_tokens, do_sample=sample, eos_token_id=self.stop_ids,
                  pad_token_id=self.pad_id, logits_processor=LogitsProcessorList(answer_penalty(cfg, prompt_width)),
                  repetition_penalty=1.0,  # not also transformers' own, from the model's generation_config
                  no_repeat_ngram_size=cfg.no_repeat_ngram_size or None)
        if sample:
            kw.update(temperature=cfg.temperature, top_p=cfg.top_p, top_k=cfg.top_k or None)
            torch.manual_seed(cfg.seed if cfg.seed is not None else 0)
        else:
            kw.update(temperature=None, top_p=None, top_k=None)
        return kw

    @torch.no_grad()
    def generate_ids(self, prompts: list[list[int]], cfg: GenerateConfig, stopping_criteria=None) -> torch.Tensor:
        """One batch from token-id prompts (left-padded here, so prompts encoded one by one can share it):
        the new tokens, [rows, steps]. ``stopping_criteria`` may end rows early, each on its own (the
        server's per-row limits, stop strings and disconnected clients); ``cfg.stop`` is not applied."""
        width = max(len(p) for p in prompts)
        ids = torch.tensor([[self.pad_id] * (width - len(p)) + p for p in prompts], device=self.device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=self.device)
        kw = self._generate_kwargs(cfg, width)
        if stopping_criteria is not None:
            from transformers import StoppingCriteriaList
            kw["stopping_criteria"] = StoppingCriteriaList(stopping_criteria)
        with self.screened(cfg), self.autocast():
            out = self.model.generate(input_ids=ids, attention_mask=mask, **kw)
        return out[:, width:]

    @torch.no_grad()
    def _batch(self, texts: list[str], cfg: GenerateConfig, templated: bool) -> list[Completion]:
        tok = self.tok
        side, tok.padding_side = tok.padding_side, "left"
        try:
            enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=not templated)
        finally:
            tok.padding_side = side
        return self.answer(enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device), cfg)

    @torch.no_grad()
    def answer(self, ids: torch.Tensor, mask: torch.Tensor, cfg: GenerateConfig, cache=None,
               spent: float = 0.0) -> list[Completion]:
        """Completions of one left-padded batch of prompts, continuing from ``cache`` when given (the
        prompts' KV cache less their last token, as evaluate.likelihood.prefilled_nll leaves it); ``spent``:
        seconds already spent on the batch (that prefill), added to each completion's."""
        kw = self._generate_kwargs(cfg, ids.shape[1])
        if cfg.stop:
            kw.update(stop_strings=cfg.stop, tokenizer=self.tok)
        start = time.perf_counter()
        new = self._retiring(ids, mask, cfg, kw, cache)
        seconds = time.perf_counter() - start + spent
        return [self._completion(tokens, int(m.sum()), cfg, seconds) for tokens, m in zip(new, mask)]

    def _llama(self, texts: list[str], cfg: GenerateConfig, templated: bool) -> list[Completion]:
        """The prompts through llama.cpp (self.runner), cfg.batch_size rows decoding together, a finished
        row's place taken by the next prompt; a prompt that would not fit its context goes through transformers."""
        ids = [self.encode(text, templated) for text in texts]
        out: list = [None] * len(texts)
        fit = [i for i, p in enumerate(ids) if self.runner.fits(len(p) + cfg.max_new_tokens)]
        done = self.runner.run([ids[i] for i in fit], cfg, lambda tokens: self._finished(tokens, cfg.stop))
        for i, (new, seconds) in zip(fit, done):
            out[i] = self._completion(new, len(ids[i]), cfg, seconds)
        for i in sorted(set(range(len(texts))) - set(fit)):
            out[i] = self._batch([texts[i]], cfg, templated)[0]
        return out

    def _completion(self, tokens: list[int], prompt_tokens: int, cfg: GenerateConfig, seconds: float) -> Completion:
        """A row's new tokens -> its Completion: cut at the first end token or stop string (neither kept)."""
        ended = next((j for j, t in enumerate(tokens) if t in self.stop_ids), None)
        tokens = tokens[:ended] if ended is not None else [t for t in tokens if t != self.pad_id]
        text = self.tok.decode(tokens, skip_special_tokens=True)
        cut = min((text.find(s) for s in cfg.stop if s and s in text), default=-1)
        stopped = ended is not None or cut >= 0
        if cut >= 0:
            text = text[:cut]
        return Completion(text=text, prompt_tokens=prompt_tokens, completion_tokens=len(tokens),
                          finish_reason="stop" if stopped else "length", seconds=seconds)

    def _finished(self, tokens: list[int], stop: list[str]) -> bool:
        return any(t in self.stop_ids for t in tokens) or (
            bool(stop) and any(s and s in self.tok.decode(tokens, skip_special_tokens=True) for s in stop))

    def _retiring(self, ids: torch.Tensor, mask: torch.Tensor, cfg: GenerateConfig, kw: dict, cache=None
                  ) -> list[list[int]]:
        """Each row's new tokens. transformers' `generate` computes a finished row until the whole batch
        ends; here it runs RETIRE_EVERY steps at a time, and rows that finished (an end token or a stop
        string) leave the batch and its KV cache before the next stretch, which continues from the cache.
        The rows left compute exactly what one `generate` call would (tests compare the two); with
        sampling, fewer rows draw from the seeded generator, so samples differ from one call's (still
        reproducible per seed)."""
        with self.screened(cfg):
            return self._stretches(ids, mask, cfg, kw, cache)

    def screened(self, cfg: GenerateConfig):
        """The int8-screened output layer for greedy fp32 decoding on the CPU (luyen.infer.screen), built
        once; a null context where it does not apply or generate.screen is off. Every decoding path takes
        it: `answer`, `generate_ids` and the server's continuous batches."""
        from contextlib import nullcontext
        if not cfg.screen or cfg.temperature > 0 or not self.kernels.startswith("oneDNN"):
            return nullcontext()
        if not hasattr(self, "_screened"):
            from luyen.infer.screen import Screen
            self._screened = Screen.of(self.model)
        return self._screened or nullcontext()

    def _prefills(self) -> bool:
        """Whether many prompts may be prefilled a few rows at a time (kvcache.prefill): not under a
        prompt-learning adapter, and only where luyen can switch the output layer off (train.head.output_head
        decides, as it does for every scorer)."""
        from luyen.train.head import output_head
        if prompt_learning(self.model):
            return False
        try:
            output_head(self.model)
        except LuyenError:
            return False
        return True

    def _stretches(self, ids: torch.Tensor, mask: torch.Tensor, cfg: GenerateConfig, kw: dict, cache=None
                   ) -> list[list[int]]:
        from luyen.infer import kvcache
        rows, new = list(range(ids.shape[0])), [[] for _ in range(ids.shape[0])]
        left, name = cfg.max_new_tokens, cache_argument(self.model)
        if cache is None and ids.shape[0] > kvcache.PREFILL_ROWS and int(mask.sum(1).min()) > 1 and self._prefills():
            cache = kvcache.prefill(self.model, ids, mask)  # many prompts: a few rows a pass, then decoded together
        # peft's prompt-learning adapters prepend virtual tokens at every generate call: continuing
        # from a cache answered differently (tested), so those run as one call
        stretch = RETIRE_EVERY if not prompt_learning(self.model) else left
        while rows and left > 0:
            step = left if len(rows) == 1 else min(left, stretch)
            extra = {name: kvcache.with_room(cache, left)} if cache is not None else {}
            with self.autocast():
                out = self.model.generate(input_ids=ids, attention_mask=mask, **{**kw, "max_new_tokens": step},
                                          return_dict_in_generate=True, **extra)
            produced = out.sequences[:, ids.shape[1]:]
            for r, row in enumerate(rows):
                new[row] += produced[r].tolist()
            left -= produced.shape[1]
            keep = [r for r, row in enumerate(rows) if not self._finished(new[row], cfg.stop)]
            if not keep or left <= 0:
                break
            cache = out.cache if getattr(out, "cache", None) is not None else out.past_key_values
            mask = torch.cat([mask, torch.ones_like(produced)], 1)
            ids = out.sequences
            if len(keep) < len(rows):
                index = torch.tensor(keep, device=ids.device)
                cache.batch_select_indices(index)
                ids, mask, rows = ids[index], mask[index], [rows[r] for r in keep]
        return new


def prompt_learning(model) -> bool:
    """Whether ``model`` carries a peft prompt-learning adapter (prompt or p-tuning), which prepends its
    virtual tokens at every forward call: nothing may continue such a model from a KV cache."""
    return any(c.is_prompt_learning for c in (getattr(model, "peft_config", None) or {}).values())


def forward_parameters(model) -> set[str]:
    """The argument names of the (base) model's forward."""
    import inspect
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return set(inspect.signature(base.forward).parameters)


def cache_argument(model) -> str:
    """What this transformers calls the KV cache argument of forward and generate (5.x renamed
    past_key_values to cache)."""
    return "cache" if "cache" in forward_parameters(model) else "past_key_values"
