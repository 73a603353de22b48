"""The llama.cpp backend: one .gguf file (e.g. from `luyen export --format gguf`) behind the same
interface as the transformers backend, for CPUs where llama.cpp's quantised kernels are faster.

    backend = LlamaCppBackend.load("runs/demo/export/gguf/model-q8_0.gguf")

Rows decode together, and rows that arrive meanwhile join at the next step (continuous batching:
luyen.infer.gguf.LlamaBatch, one llama.cpp sequence per row in one context, at most SLOTS rows and
their KV cells at once); the scheduler, cache, limits and streaming are the same as with transformers,
and so is sampling (luyen.infer.live's Sampler: temperature, top_p, a generator per row seeded with
the request's seed + the choice's index). Chats
use the template stored in the GGUF (tokenizer.chat_template) when there is one, else luyen's
default for that vocabulary, exactly as luyen.data.template chooses it for transformers models.
"""
from __future__ import annotations

import random

from luyen.data.template import CHATML_EOS_TEMPLATE, GEMMA_TEMPLATE
from luyen.serve.scheduler import Row


class LlamaCppBackend:
    def __init__(self, runner, name: str):
        self.runner, self.name = runner, name
        self.llm = llm = runner.llm
        self.context = runner.n_ctx
        self.bos = self._piece(llm.token_bos())
        self.eos = self._piece(llm.token_eos())
        vocab_has_turns = all(len(self._ids(t)) == 1 for t in ("<start_of_turn>", "<end_of_turn>"))
        source = llm.metadata.get("tokenizer.chat_template") or (GEMMA_TEMPLATE if vocab_has_turns else CHATML_EOS_TEMPLATE)
        self.template = _compile(source)
        self.stop_ids = {llm.token_eos(), *self._end_of_turn(), *self._turn_opener()}

    @classmethod
    def load(cls, path: str, n_ctx: int = 4096) -> "LlamaCppBackend":
        from luyen.infer.gguf import LlamaRunner
        return cls(LlamaRunner(path, n_ctx), str(path))

    def _ids(self, text: str) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def _piece(self, token: int) -> str:
        return self.llm.detokenize([token], special=True).decode("utf-8", errors="replace") if token >= 0 else ""

    def _end_of_turn(self) -> list[int]:
        """The token the template puts right after an assistant turn, when it is a single token."""
        probe = "\u2063probe\u2063"
        text = self._render([{"role": "user", "content": "u"}, {"role": "assistant", "content": probe}], False)
        marker = text[text.rindex(probe) + len(probe):].strip() if probe in text else ""
        ids = self._ids(marker) if marker else []
        return ids if len(ids) == 1 else []

    def _turn_opener(self) -> list[int]:
        """The control token a user turn starts with (Gemma's <start_of_turn>), as luyen.data.template's
        stop_token_ids adds it for transformers: an answer never opens a new turn, so one that does has ended."""
        probe = "\u2063probe\u2063"
        try:
            text = self._render([{"role": "user", "content": probe}], False)
        except Exception:  # noqa: BLE001  (a template may refuse a lone user turn)
            return []
        head = text[:text.find(probe)] if probe in text else ""
        head = head[len(self.bos):] if self.bos and head.startswith(self.bos) else head
        ids = self._ids(head) if head else []
        return [ids[0]] if ids and not self.llm.detokenize([ids[0]]) else []  # a control token has no plain text

    def _render(self, messages: list[dict], add_generation_prompt: bool) -> str:
        return self.template.render(messages=messages, bos_token=self.bos, eos_token=self.eos,
                                    add_generation_prompt=add_generation_prompt)

    def models(self) -> list[str]:
        return [self.name]

    def warmup(self) -> None:
        """llama.cpp is ready once loaded."""

    def render(self, model: str, messages: list[dict]) -> str:
        try:
            return self._render(messages, True)
        except Exception as e:  # the template's own raise_exception, or a broken template
            from luyen.serve.protocol import APIError
            raise APIError(400, f"the chat template refused these messages: {str(e)[:200]}", param="messages") from None

    def encode(self, model: str, text: str, templated: bool) -> list[int]:
        # a rendered chat carries its BOS as text; special=True turns it and the turn markers into their tokens
        return self.llm.tokenize(text.encode("utf-8"), add_bos=not templated, special=True)

    def default_tokens(self, model: str) -> None:
        """A .gguf records no answer budget: requests without max_tokens get serve.default_max_tokens."""
        return None

    def decode(self, ids: list[int]) -> str:
        return self.llm.detokenize(ids).decode("utf-8", errors="replace")

    def run(self, key: tuple, rows: list[Row], join=None) -> None:
        """Generate for ``rows`` and for the rows ``join(rows in flight)`` hands over while they run: each
        step, rows that ended leave (their KV cells freed) and waiting rows join as sequences and cells allow."""
        from luyen.infer.gguf import LlamaBatch
        from luyen.infer.live import Sampler
        _, temperature, top_p, seed = key[:4]
        live, waiting = LlamaBatch(self.runner), list(rows)

        def route(owners, tokens):
            return [not row.push(token, self.decode, self.stop_ids) for row, token in zip(owners, tokens)]
        while True:
            if join is not None:
                waiting += join(len(live) + len(waiting))
            waiting = [r for r in waiting if not r.cancelled]
            if not live and not waiting:
                return
            if len(live):
                live.keep(route(list(live.owners), live.step()))
            fresh = waiting[:live.fitting([len(r.prompt_ids) + r.max_tokens for r in waiting])]
            if fresh:
                waiting = waiting[len(fresh):]
                samplers = [Sampler(temperature=temperature, top_p=top_p,
                                    seed=seed + r.index if seed is not None else random.randrange(2**31)) for r in fresh]
                first = live.admit(fresh, [r.prompt_ids for r in fresh], samplers, [r.max_tokens for r in fresh])
                live.keep([True] * (len(live) - len(fresh)) + route(fresh, first))


def _compile(source: str):
    """A chat template as transformers compiles it: sandboxed Jinja, trimmed blocks, raise_exception()."""
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise ValueError(message)
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.globals["raise_exception"] = raise_exception
    return env.from_string(source)
