"""A general-ability regression check: did fine-tuning make the model forget what it knew?

A small fixed set of multiple-choice items we wrote ourselves (general_items.jsonl, shipped with the
package), half Vietnamese and half English, in four categories: knowledge, reasoning, instruction
following and language. The eval stage scores the base and the fine-tuned model on it and reports
the change.

    items = load_items()
    per_item = score_items(model, tokenizer, items, render=engine.render)   # 1.0 / 0.0 per item
    summary(per_item, items)   # {"accuracy": 0..100, "n": ..., "by_lang": {...}, "by_category": {...}}

Scoring is lm-evaluation-harness's `acc_norm`: every choice is a continuation of the question, its
score is the summed log-probability of its tokens divided by its length in characters, and the
prediction is the best-scoring choice. With `render` (the chat template, generation prompt included,
BOS already in the text) the question is one user turn and the choice is the reply; without it the
context is "Question: ...\\nAnswer:" after the tokenizer's BOS and the continuation is " " + choice.
The model runs with its output layer switched off and logits are computed only at the positions that
predict a choice token, so a 262k vocabulary never becomes a [batch, length, vocab] tensor.
"""
from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from contextlib import nullcontext
from importlib import resources


ITEMS_FILE = "general_items.jsonl"
LANGS = ("vi", "en")
CATEGORIES = ("knowledge", "reasoning", "instruction", "language")


def load_items() -> list[dict]:
    """The packaged items, in file order."""
    text = resources.files("luyen.evaluate").joinpath(ITEMS_FILE).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def plain_context(question: str) -> str:
    return f"Question: {question}\nAnswer:"


def split_continuation(tokenizer, context: str, continuation: str, ctx_ids: list[int] | None = None
                       ) -> tuple[list[int], list[int]]:
    """(context ids, continuation ids), no special tokens added. The continuation's ids are those that
    follow the context's in the encoding of context + continuation; when the tokenizer merges across
    the boundary (the joint encoding does not start with the context's), both are encoded separately."""
    enc = lambda s: tokenizer.encode(s, add_special_tokens=False)  # noqa: E731
    ctx = enc(context) if ctx_ids is None else ctx_ids
    whole = enc(context + continuation)
    if whole[:len(ctx)] == ctx and len(whole) > len(ctx):
        return ctx, whole[len(ctx):]
    return ctx, enc(continuation)


def _requests(tokenizer, items: list[dict], render) -> list[tuple[list[int], list[list[int]]]]:
    """Per item: its context's ids and every choice's continuation ids."""
    bos = tokenizer.bos_token_id
    prefix = [] if render is not None or bos is None else [bos]
    out = []
    for item in items:
        if render is not None:
            context = render([{"role": "user", "content": item["question"]}])
            conts = list(item["choices"])
        else:
            context = plain_context(item["question"])
            conts = [" " + c for c in item["choices"]]
        ctx_ids = tokenizer.encode(context, add_special_tokens=False)
        out.append((prefix + ctx_ids, [split_continuation(tokenizer, context, cont, ctx_ids)[1] for cont in conts]))
    return out


def loglikelihoods(model, requests: list[tuple[list[int], list[list[int]]]], pad_id: int, batch: int = 32
                   ) -> list[list[float]]:
    """Summed log-probability of each continuation given its context, per (context, continuations)
    request; each context runs once for all its continuations (evaluate.likelihood.continuation_nll),
    or with every continuation (example_nll) for a prompt-learning adapter, which nothing may continue
    from a cache. A context too long for the model loses its oldest tokens, so that the longest
    continuation fits."""
    from luyen.evaluate.likelihood import continuation_nll, example_nll
    from luyen.infer.engine import prompt_learning
    from luyen.models.shape import config_shape
    from luyen.train.batches import shifted
    max_len = config_shape(model.config)["context"] if hasattr(model, "config") else None
    contexts, conts = [], []
    for ctx, cs in requests:
        if not all(cs):
            raise ValueError("a choice encodes to no tokens")
        longest = max(len(c) for c in cs)
        if max_len and len(ctx) + longest > max_len:
            ctx = ctx[len(ctx) + longest - max_len:]
        contexts.append(ctx)
        conts.append(cs)
    if prompt_learning(model):
        flat = example_nll(model, [shifted(ctx + c, [False] * len(ctx) + [True] * len(c))
                                   for ctx, cs in zip(contexts, conts) for c in cs], pad_id, batch=batch)
        nll = iter(n for n, _ in flat)
        return [[-next(nll) for _ in cs] for cs in conts]
    return [[-nll for nll in row] for row in continuation_nll(model, contexts, conts, pad_id, batch=batch)]


def choice_scores(model, tokenizer, items: list[dict], *, render: Callable[[list[dict]], str] | None = None,
                  batch: int = 32) -> list[list[float]]:
    """acc_norm scores: per item, per choice, summed log-probability / the choice's length in characters.
    32 sequences a batch (sorted by length, so they pad little): 36.8 s for the 168 items on Gemma-3-270M
    against 47.8 s at 8, the same choice picked for every item (2-core AVX2 EPYC, fp32)."""
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad_id is None:
        pad_id = 0  # padded positions are masked and never scored; any valid id will do
    was_training = model.training
    model.eval()
    try:
        lls = loglikelihoods(model, _requests(tokenizer, items, render), pad_id, batch=batch)
    finally:
        model.train(was_training)
    return [[ll / max(len(c), 1) for ll, c in zip(row, item["choices"])] for item, row in zip(items, lls)]


def score_items(model, tokenizer, items: list[dict], *, render: Callable[[list[dict]], str] | None = None,
                batch: int = 32) -> list[float]:
    """1.0 where the best acc_norm choice is the item's answer, else 0.0 (ties go to the first choice)."""
    out = []
    for item, s in zip(items, choice_scores(model, tokenizer, items, render=render, batch=batch)):
        out.append(1.0 if max(range(len(s)), key=s.__getitem__) == item["answer"] else 0.0)
    return out


def summary(per_item: list[float], items: list[dict]) -> dict:
    """Accuracy in 0..100 overall, per language and per category, with the item counts behind each."""
    if len(per_item) != len(items):
        raise ValueError(f"{len(per_item)} scores for {len(items)} items")
    groups: dict[str, dict[str, list[float]]] = {"by_lang": defaultdict(list), "by_category": defaultdict(list)}
    for s, item in zip(per_item, items):
        groups["by_lang"][item["lang"]].append(s)
        groups["by_category"][item["category"]].append(s)
    acc = lambda xs: 100.0 * sum(xs) / len(xs) if xs else 0.0  # noqa: E731
    out: dict = {"accuracy": acc(per_item), "n": len(items)}
    for key, g in groups.items():
        out[key] = {name: acc(xs) for name, xs in sorted(g.items())}
        out[key.replace("by_", "n_by_")] = {name: len(xs) for name, xs in sorted(g.items())}
    return out


def base_and_tuned(base_engine, engine, base_weights: Callable = nullcontext) -> dict:
    """The check for the base and the fine-tuned model of one run, each through the chat template the
    fine-tuned model uses, and the paired bootstrap of their difference. ``base_weights``: a context in
    which ``base_engine`` answers with the base's weights (an adapter switched off)."""
    from luyen.evaluate.verdict import paired_bootstrap, rounded
    items = load_items()
    with base_weights():
        base = score_items(base_engine.model, base_engine.tok, items, render=base_engine.render)
    tuned = score_items(engine.model, engine.tok, items, render=engine.render)
    c = paired_bootstrap([100 * x for x in tuned], [100 * x for x in base])
    return {"n": len(items), "base": summary(base, items), "tuned": summary(tuned, items), "comparison": rounded(c)}
