"""Continuous batching: a batch of rows that decode together, which rows join and leave at any step.

    live = LiveBatch(engine.model)
    first = live.admit(["a", "b"], [[2, 17, 9], [2, 5]], [Sampler(), Sampler(temperature=0.7, seed=1)])
    tokens = live.step()          # one new token per row, in live.owners order
    live.keep([True, False])      # row "b" ended: it leaves the batch and its KV cache

transformers' `generate` takes a batch and runs it until its slowest row ends: a request that arrives
meanwhile waits for the whole batch, and a finished row is computed to the end. Here a row's prompt is
prefilled on its own (with the other newcomers), its KV cache is joined to the running batch's, and
from then on it decodes in the batch's steps; a row that ends leaves at once. This is what vLLM and
TGI call continuous batching; transformers has one too (`generate_batch`, `init_continuous_batching`),
built on a paged cache and CUDA graphs, with no per-request repetition penalty or seed and one model
per manager, where luyen's server switches LoRA adapters per batch and applies the model's trained
repetition penalty. So this one works on transformers' own `DynamicCache`, and its reference is
`generate` itself: tests check that rows joining at different steps decode exactly what each decodes
alone through `model.generate`.

The joined cache is left-padded as a left-padded `generate` batch is: each row's tokens end at the
batch's last column, columns before a row's first token are masked out, and positions are counted per
row. Layers that keep a sliding window (Gemma-3's local layers) keep their last window - 1 columns.
When rows leave, columns no remaining row uses are cut from the front, so a batch that runs for hours
does not grow. Only `DynamicLayer` and `DynamicSlidingWindowLayer` caches are joined: `LiveBatch.fits`
says whether a model uses only those (the server falls back to one `generate` per batch otherwise).
``LiveBatch(model, room=N)`` keeps the full-length layers as `luyen.infer.kvcache.GrowingLayer`s with N
free columns, so a step writes its keys and values in place instead of copying the whole cache
(transformers' layers, room 0, are the tests' reference); joining and cutting columns copy it once.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import torch

from luyen.infer.kvcache import set_states, with_room


class AnswerPenalty:
    """transformers' RepetitionPenaltyLogitsProcessor over the tokens after the first ``prompt_width``
    columns (the answer's own), applied in place: a logit of a token already answered is divided by the
    penalty (multiplied when negative). transformers' processor pads the scores to vocab + 1 columns and
    scatters into a copy, three passes over a [rows, 262k] matrix per step: ~45 ms of a ~275 ms step for
    the demo's 37 rows on the 2-core AVX2 EPYC. The scores `generate` hands its processors are already its
    own float copy (transformers' processors such as NoRepeatNGram write them in place too). transformers'
    processor is the tests' reference: the same values, bit for bit."""

    def __init__(self, penalty: float, prompt_width: int = 0):
        if not penalty > 0:
            raise ValueError(f"the repetition penalty must be > 0, not {penalty}")
        self.penalty, self.width = float(penalty), prompt_width

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        ids = input_ids[:, self.width:]
        if ids.shape[1]:
            picked = scores.gather(1, ids)
            scores.scatter_(1, ids, torch.where(picked < 0, picked * self.penalty, picked / self.penalty))
        return scores


@dataclass
class Sampler:
    """How one row picks its next token, as `generate` would with these settings: the repetition penalty
    over the answer's own tokens (see Engine._generate_kwargs), no repeated n-grams over prompt and
    answer, then temperature, top-k and top-p, and a draw from the row's own generator, so a seeded
    row samples the same tokens whatever shares its batch. temperature 0 = greedy."""
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    seed: int | None = None
    generator: torch.Generator | None = field(default=None, repr=False)

    def __post_init__(self):
        from transformers import (LogitsProcessorList, NoRepeatNGramLogitsProcessor, TemperatureLogitsWarper,
                                  TopKLogitsWarper, TopPLogitsWarper)
        self.penalty = AnswerPenalty(self.repetition_penalty) if self.repetition_penalty != 1.0 else None
        self.ngrams = NoRepeatNGramLogitsProcessor(self.no_repeat_ngram_size) if self.no_repeat_ngram_size else None
        warpers = []
        if self.temperature > 0:
            warpers.append(TemperatureLogitsWarper(float(self.temperature)))
            if self.top_k:
                warpers.append(TopKLogitsWarper(int(self.top_k)))
            if self.top_p < 1.0:
                warpers.append(TopPLogitsWarper(float(self.top_p)))
            if self.generator is None:
                self.generator = torch.Generator()
                self.generator.manual_seed(self.seed if self.seed is not None else torch.seed())
        self.warpers = LogitsProcessorList(warpers)

    @property
    def plain(self) -> bool:
        """Greedy with nothing to apply: the batch's argmax serves this row."""
        return self.temperature <= 0 and self.penalty is None and self.ngrams is None

    def pick(self, scores: torch.Tensor, prompt: list[int], answer: list[int]) -> int:
        scores = scores.to(torch.float32, copy=True)[None]  # the processors write in place; the caller's stays
        if self.penalty is not None and answer:
            scores = self.penalty(torch.tensor([answer]), scores)
        if self.ngrams is not None:
            scores = self.ngrams(torch.tensor([prompt + answer]), scores)
        if self.temperature <= 0:
            return int(scores.argmax(-1))
        probs = torch.softmax(self.warpers(torch.tensor([prompt + answer]), scores), -1)
        return int(torch.multinomial(probs[0], 1, generator=self.generator))


def _layers(cache) -> list:
    return list(getattr(cache, "layers", []))


class LiveBatch:
    def __init__(self, model, room: int = 0):
        self.model, self.room = model, room
        self.owners: list = []            # whatever the caller keys its rows by, in batch order
        self.samplers: list[Sampler] = []
        self.prompts: list[list[int]] = []
        self.answers: list[list[int]] = []
        self.cache, self.mask, self.last, self.pos = None, None, None, None
        core = model.get_base_model() if hasattr(model, "get_base_model") else model
        params = inspect.signature(core.forward).parameters
        self.cache_arg = "cache" if "cache" in params else "past_key_values"
        self.positions = "position_ids" in params

    def __len__(self) -> int:
        return len(self.owners)

    @staticmethod
    def fits(model) -> bool:
        """Whether this model's cache is one LiveBatch can join (tried on a one-token forward)."""
        from transformers.cache_utils import DynamicLayer, DynamicSlidingWindowLayer

        from luyen.infer.engine import prompt_learning
        if prompt_learning(model):
            return False  # peft prepends virtual tokens at every call
        try:
            live = LiveBatch(model)
            device = next(model.parameters()).device
            with torch.no_grad():
                cache = live._forward(torch.zeros(1, 1, dtype=torch.long, device=device),
                                      torch.ones(1, 1, dtype=torch.long, device=device), None, torch.zeros(1, 1, dtype=torch.long, device=device))[1]
        except Exception:  # an architecture that takes these arguments differently: generate() it is
            return False
        return bool(_layers(cache)) and all(type(x) in (DynamicLayer, DynamicSlidingWindowLayer) for x in _layers(cache))

    def _forward(self, ids, mask, cache, pos):
        from transformers import DynamicCache
        if cache is None:
            config = self.model.get_base_model().config if hasattr(self.model, "get_base_model") else self.model.config
            cache = DynamicCache(config=config)
        kw = {self.cache_arg: cache, "position_ids": pos} if self.positions else {self.cache_arg: cache}
        out = self.model(input_ids=ids, attention_mask=mask, use_cache=True, logits_to_keep=1, **kw)
        return out.logits[:, -1], getattr(out, self.cache_arg, None) or cache

    def _pick(self, logits: torch.Tensor, rows: range) -> list[int]:
        greedy = logits.argmax(-1).tolist()
        return [greedy[i] if self.samplers[r].plain else
                self.samplers[r].pick(logits[i], self.prompts[r], self.answers[r]) for i, r in enumerate(rows)]

    @torch.no_grad()
    def admit(self, owners: list, prompts: list[list[int]], samplers: list[Sampler], pad_id: int = 0) -> list[int]:
        """Prefill these prompts together and join them to the batch; returns each one's first new token."""
        device = next(self.model.parameters()).device
        width = max(len(p) for p in prompts)
        ids = torch.tensor([[pad_id] * (width - len(p)) + p for p in prompts], device=device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        logits, cache = self._forward(ids, mask, None, pos)
        start = len(self.owners)
        self.owners += owners
        self.samplers += samplers
        self.prompts += [list(p) for p in prompts]
        self.answers += [[] for _ in prompts]
        first = self._pick(logits, range(start, start + len(prompts)))
        last = torch.tensor(first, device=device)[:, None]
        rows_pos = torch.tensor([len(p) for p in prompts], device=device)[:, None]
        if self.cache is None:
            self.cache, self.mask, self.last, self.pos = cache, mask, last, rows_pos
        else:
            self._join(cache, mask)
            self.last, self.pos = torch.cat([self.last, last]), torch.cat([self.pos, rows_pos])
        with_room(self.cache, self.room)
        for r, token in zip(range(start, len(self.owners)), first):
            self.answers[r].append(token)
        return first

    def _join(self, cache, mask) -> None:
        """Append another batch's cache and mask, left-padding the shorter to the longer's columns."""
        width = max(self.mask.shape[1], mask.shape[1])
        for mine, theirs in zip(_layers(self.cache), _layers(cache)):
            for layer, cols in ((mine, self.mask.shape[1]), (theirs, mask.shape[1])):
                _pad_front(layer, width - cols, width)
            set_states(mine, torch.cat([mine.keys, theirs.keys]), torch.cat([mine.values, theirs.values]))
        self.mask = torch.cat([_pad_mask(self.mask, width), _pad_mask(mask, width)])

    @torch.no_grad()
    def step(self) -> list[int]:
        """One decoding step for every row: each row's next token, in owners order."""
        self.mask = torch.cat([self.mask, torch.ones_like(self.last)], 1)
        logits, self.cache = self._forward(self.last, self.mask, self.cache, self.pos)
        tokens = self._pick(logits, range(len(self.owners)))
        for answer, token in zip(self.answers, tokens):
            answer.append(token)
        self.last = torch.tensor(tokens, device=self.last.device)[:, None]
        self.pos = self.pos + 1
        return tokens

    def keep(self, which: list[bool]) -> None:
        """Rows marked False leave the batch (their cache rows are dropped, unused front columns cut)."""
        if all(which):
            return
        index = [i for i, k in enumerate(which) if k]
        for name in ("owners", "samplers", "prompts", "answers"):
            setattr(self, name, [getattr(self, name)[i] for i in index])
        if not index:
            self.cache, self.mask, self.last, self.pos = None, None, None, None
            return
        rows = torch.tensor(index, device=self.mask.device)
        self.cache.batch_select_indices(rows)
        self.mask, self.last, self.pos = self.mask[rows], self.last[rows], self.pos[rows]
        used = self.mask.any(0).nonzero()
        cut = int(used[0]) if len(used) else 0
        if cut:
            width = self.mask.shape[1]
            for layer in _layers(self.cache):
                _cut_front(layer, cut, width)
            self.mask = self.mask[:, cut:]


def _pad_mask(mask: torch.Tensor, width: int) -> torch.Tensor:
    return torch.cat([mask.new_zeros(mask.shape[0], width - mask.shape[1]), mask], 1)


def _kept(layer, width: int) -> int:
    """Columns a layer holds for a batch ``width`` columns long (a sliding window keeps window - 1)."""
    window = getattr(layer, "sliding_window", None)
    return min(width, window - 1) if window else width


def _pad_front(layer, extra: int, width: int) -> None:
    """Make ``layer`` hold a batch ``extra`` columns longer at the front (all masked out)."""
    if getattr(layer, "sliding_window", None):
        layer.cumulative_length = width
    need = _kept(layer, width) - layer.keys.shape[-2]
    if need > 0:
        zeros = layer.keys.new_zeros(*layer.keys.shape[:2], need, layer.keys.shape[-1])
        set_states(layer, torch.cat([zeros, layer.keys], -2),
                   torch.cat([layer.values.new_zeros(*layer.values.shape[:2], need, layer.values.shape[-1]),
                              layer.values], -2))


def _cut_front(layer, cut: int, width: int) -> None:
    """Drop the first ``cut`` of ``width`` columns (ones no row uses) from ``layer``."""
    held = layer.keys.shape[-2]
    drop = max(0, cut - (width - held))  # the held columns are the last ``held`` of the batch's
    if drop:
        set_states(layer, layer.keys[..., drop:, :], layer.values[..., drop:, :])
    if getattr(layer, "sliding_window", None):
        layer.cumulative_length = width - cut
