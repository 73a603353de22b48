"""How likely a model finds the target tokens of each example: the one scorer behind answer
perplexity (evaluate.stage) and the general-ability check (evaluate.general).

    nll = example_nll(model, [shifted(ids, mask)], pad_id=0)   # [(summed NLL of the targets, their count)]

It runs the training loss's own pieces (luyen.train): right-padded batches of similar lengths, the
model with its output layer switched off (train.head.output_head, which applies the architecture's
logit post-processing), and logits only at target positions, a chunk at a time; the autocast that
matches the weights' dtype comes from the precision policy (luyen.precision.autocast_for).
"""
from __future__ import annotations

import torch

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
        sel = targets != IGNORE  # every row's targets in one call: the output layer is read once per chunk
        losses = head.loss(hidden[sel], targets[sel], chunk=512, per_token=True)
        counts = sel.sum(1).tolist()
        for j, part, k in zip(rows, torch.split(losses, counts), counts):
            out[j] = (float(part.sum()), int(k))
            if within is not None:
                subset = torch.from_numpy(within[j][examples[j].targets != IGNORE]).to(part.device)
                out[j] = (out[j], (float(part[subset].sum()), int(subset.sum())))
    return out
