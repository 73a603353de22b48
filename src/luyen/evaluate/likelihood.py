"""How likely a model finds the target tokens of each example: the scorers behind answer perplexity
(evaluate.systems) and the general-ability check (evaluate.general).

    nll = example_nll(model, [shifted(ids, mask)], pad_id=0)   # [(summed NLL of the targets, their count)]
    nll, ids, mask, cache = prefilled_nll(model, examples, prompt_lengths, pad_id=0)  # and the prompts' cache
    lls = continuation_nll(model, [question_ids], [[choice_ids, ...]], pad_id=0)      # a question run once

They run the training loss's own pieces (luyen.train): the model with its output layer switched off
(train.head.output_head, which applies the architecture's logit post-processing) and logits only at
target positions, a chunk at a time; the autocast that matches the weights' dtype comes from the
precision policy (luyen.precision.autocast_for). `example_nll` runs right-padded batches of similar
lengths; the other two run a shared part once and keep its KV cache: the prompt an answer is then
generated from (evaluation scores the reference and answers the same prompt), or the question every
choice of a multiple-choice item follows. Their caches keep every position on every layer (a sliding
window is applied by the attention mask), and tests hold all three to `example_nll`'s values.
"""
from __future__ import annotations

import torch

from luyen.infer import kvcache
from luyen.train.batches import IGNORE, Example, collate


@torch.no_grad()
def example_nll(model, examples: list[Example], pad_id: int, batch: int = 8, within: list | None = None) -> list:
    """Per example, in order: the summed negative log-likelihood of its targets and how many there are.
    ``within``: per example a bool array over its positions, a subset of its targets; each entry is then
    ((nll, count) of every target, (nll, count) of the subset), both from the one forward pass (evaluation's
    zero-shot systems score the answer and the whole example on the same tokens)."""
    from luyen.precision import autocast_for
    from luyen.train.head import hidden_states, output_head
    head = output_head(model)
    param = next(model.parameters())
    autocast = autocast_for(param.dtype)
    order = sorted(range(len(examples)), key=lambda i: len(examples[i]))  # similar lengths pad little
    out: list = [(0.0, 0)] * len(examples)
    for i in range(0, len(order), batch):
        rows = order[i:i + batch]
        hidden, targets = hidden_states(model, head, collate([examples[j] for j in rows], pad_id), param.device,
                                        autocast)
        _row_nll(head, hidden, targets, rows, examples, within, out)
    return out


def _row_nll(head, hidden, targets, rows: list[int], examples: list[Example], within, out: list) -> None:
    """Each row's summed NLL over its targets (and over its ``within`` subset) into out[row]."""
    sel = targets != IGNORE  # every row's targets in one call: the output layer is read once per chunk
    losses = head.loss(hidden[sel], targets[sel], chunk=512, per_token=True)
    counts = sel.sum(1).tolist()
    for j, part, k in zip(rows, torch.split(losses, counts), counts):
        out[j] = (float(part.sum()), int(k))
        if within is not None:
            subset = torch.from_numpy(within[j][examples[j].targets != IGNORE]).to(part.device)
            out[j] = (out[j], (float(part[subset].sum()), int(subset.sum())))


@torch.no_grad()
def prefilled_nll(model, examples: list[Example], prompt_lengths: list[int], pad_id: int, within: list | None = None,
                  keep_cache: bool = True):
    """`example_nll` for one batch of examples that each begin with a prompt to be answered next, from
    the forward pass that also leaves the prompts' KV cache for `generate`: the prompts left-padded so
    that they all end in the same column, the rest of each example after them (right-padded), and the
    cache then cut back to the prompts less their last token (what `generate` continues from). Returns
    (the NLLs, input_ids [B, W] and attention_mask [B, W] of the left-padded prompts, the cache).
    Evaluation scores the reference answer and then answers the same prompt: this runs the prompt once
    instead of twice, kvcache.PREFILL_ROWS rows a pass.

    The cache keeps every position on every layer (sliding-window layers too: their window is applied
    by the attention mask), because it is cut back after the reference answer was run through it.
    ``keep_cache=False`` (another runtime answers): each pass's cache is dropped and None returned for it."""
    from transformers import DynamicCache
    run = kvcache.Forward(model)
    width = max(prompt_lengths)
    tail = max(len(e) - n for e, n in zip(examples, prompt_lengths))
    rows = len(examples)
    ids = torch.full((rows, width + tail), pad_id, dtype=torch.long)
    targets = torch.full((rows, width + tail), IGNORE, dtype=torch.long)
    mask = torch.zeros((rows, width + tail), dtype=torch.long)
    for r, (e, n) in enumerate(zip(examples, prompt_lengths)):
        start = width - n
        ids[r, start:start + len(e)] = torch.from_numpy(e.ids)
        targets[r, start:start + len(e)] = torch.from_numpy(e.targets)
        mask[r, start:start + len(e)] = 1
    ids, targets, mask = (t.to(run.device) for t in (ids, targets, mask))
    position_ids = (mask.cumsum(1) - 1).clamp(min=0)
    out: list = [(0.0, 0)] * rows
    caches = []
    step = kvcache.PREFILL_ROWS
    for lo in range(0, rows, step):  # a few rows a pass: their activations stay in the CPU's cache
        part = slice(lo, lo + step)
        cache = DynamicCache()
        hidden = run(ids[part], mask[part], position_ids[part], cache)
        _row_nll(run.head, hidden, targets[part], list(range(lo, min(lo + step, rows))), examples, within,
                 out)
        if keep_cache:
            cache.crop(-(tail + 1))
            caches.append(cache)
    return out, ids[:, :width], mask[:, :width], kvcache.joined(caches) if keep_cache else None


@torch.no_grad()
def continuation_nll(model, contexts: list[list[int]], continuations: list[list[list[int]]], pad_id: int,
                     batch: int = 32) -> list[list[float]]:
    """Per context, per continuation: the summed NLL of the continuation's tokens after the context (as
    `example_nll` scores context + continuation with the continuation as targets), each context run once
    for all its continuations: the contexts left-padded to one width with a KV cache, the cache row of
    each context repeated for its continuations, and those run after it (right-padded). Multiple-choice
    scoring (evaluate.general) asks this of every item: ~4 short choices after a longer question."""
    from transformers import DynamicCache
    run = kvcache.Forward(model)
    device = run.device
    order = sorted(range(len(contexts)), key=lambda i: len(contexts[i]))
    out: list = [None] * len(contexts)
    for start in range(0, len(order), batch):
        items = order[start:start + batch]
        width = max(len(contexts[i]) for i in items)
        ids = torch.tensor([[pad_id] * (width - len(contexts[i])) + contexts[i] for i in items])
        mask = torch.tensor([[0] * (width - len(contexts[i])) + [1] * len(contexts[i]) for i in items])
        pairs = [(r, c) for r, i in enumerate(items) for c in continuations[i]]  # (row of its context, tokens)
        rows = torch.tensor([r for r, _ in pairs])
        length = max(len(c) for _, c in pairs)
        cont = torch.tensor([c + [pad_id] * (length - len(c)) for _, c in pairs])
        cont_mask = torch.tensor([[1] * len(c) + [0] * (length - len(c)) for _, c in pairs])
        cache = DynamicCache()  # every position kept on every layer; a sliding window is the mask's job
        last = run(ids, mask, (mask.cumsum(1) - 1).clamp(min=0), cache)[:, -1]
        cache.batch_select_indices(rows.to(device))
        hidden = run(cont, torch.cat([mask[rows], cont_mask], 1), mask.sum(1)[rows, None] + torch.arange(length),
                     cache)
        # the context's last position predicts a continuation's first token, its own positions the rest
        hidden = torch.cat([last[rows.to(device)][:, None], hidden[:, :-1]], 1)
        sel = cont_mask.bool().to(device)
        losses = run.head.loss(hidden[sel], cont.to(device)[sel], chunk=512, per_token=True)
        sums = iter(part.sum().item() for part in torch.split(losses, cont_mask.sum(1).tolist()))
        for i in items:
            out[i] = [next(sums) for _ in continuations[i]]
    return out
