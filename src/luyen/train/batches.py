"""From prepared records to training batches: token ids, shifted targets, length buckets or packing.

Every example is encoded once through `luyen.data.template` (the chat template the model keeps), so
the loss covers each assistant turn and its end marker and nothing else. Targets are shifted here
(`targets[i]` is the token predicted at position `i`, -100 where nothing is learned), so padding and
packing never need to know about loss masks, and padding can never hide an EOS target: padded
positions are excluded by position, not by token id.

The batch plan is a pure function of (seed, epoch): a resumed run replays exactly the same batches.
Examples of one optimiser step are chosen first (batch_size x grad_accum x world examples of
similar length), then cut into micro-batches, so `batch 8 x accum 1` and `batch 2 x accum 4` see
the same examples in every step and give the same update.

    examples, stats = encode(records, tokenizer, template, max_length=1024)
    steps = plan_epoch([len(e) for e in examples], batch_size=8, grad_accum=1, world=1, seed=42, epoch=0)
    batch = collate([examples[i] for i in steps[0][0]], pad_id=0)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from luyen.data.formats import as_chat
from luyen.data.template import encode_chat, end_marker, stop_token_ids

IGNORE = -100
SORT_WINDOW = 32  # steps whose examples are sorted by length together (more = less padding, less randomness)


@dataclass
class Example:
    ids: np.ndarray       # int64 token ids
    targets: np.ndarray   # int64, shifted; IGNORE where no loss

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def n_loss(self) -> int:
        return int((self.targets != IGNORE).sum())

    @property
    def loss_tokens(self) -> int:  # the tokens whose logits the loss computes (a pair: both answers')
        return self.n_loss

    @property
    def answer(self) -> "Example":  # the answer the model should give (a preference pair: its chosen one)
        return self


@dataclass
class EncodeStats:
    records: int = 0
    examples: int = 0
    too_long: int = 0
    no_loss: int = 0
    tokens: int = 0
    loss_tokens: int = 0
    longest: int = 0
    no_stop: int = 0      # chat examples whose last target is not a stop token (the model would never learn to stop)
    kinds: dict = field(default_factory=dict)


def shifted(ids: list[int], mask: list[bool]) -> Example:
    ids_a = np.asarray(ids, dtype=np.int64)
    targets = np.full(len(ids_a), IGNORE, dtype=np.int64)
    if len(ids_a) > 1:
        keep = np.asarray(mask[1:], dtype=bool)
        targets[:-1] = np.where(keep, ids_a[1:], IGNORE)
    return Example(ids_a, targets)


def encode(records: list[dict], tokenizer, template: str, max_length: int, text_block: int | None = None,
           prompt: bool = False) -> tuple[list[Example], EncodeStats]:
    """Chat-like records through the chat template; raw text as EOS-separated blocks of `text_block` tokens.
    ``prompt``: a chat's prompt tokens are targets too, not only its answers (train.train_on_prompt)."""
    stats, out, marker, stops = EncodeStats(records=len(records)), [], None, None
    texts = []
    for rec in records:
        stats.kinds[rec["kind"]] = stats.kinds.get(rec["kind"], 0) + 1
        chat = as_chat(rec)
        if chat is None:
            texts.append(rec["text"])
            continue
        if marker is None:
            marker, stops = end_marker(tokenizer, template), set(stop_token_ids(tokenizer, template))
        try:
            ids, mask = encode_chat(tokenizer, template, chat, marker, targets="chat" if prompt else "all")
        except ValueError:  # the template drops or rewrites a turn: nothing can be learned from it
            stats.no_loss += 1
            continue
        last = max((i for i, m in enumerate(mask) if m), default=None)
        stats.no_stop += last is not None and ids[last] not in stops
        _add(out, stats, shifted(ids, mask), max_length)
    if texts:
        for block in text_blocks(texts, tokenizer, text_block or max_length):
            _add(out, stats, shifted(block, [True] * len(block)), max_length)
    return out, stats


def _add(out: list[Example], stats: EncodeStats, ex: Example, max_length: int) -> None:
    if len(ex) > max_length:
        stats.too_long += 1
        return
    n = ex.n_loss
    if n == 0:
        stats.no_loss += 1
        return
    out.append(ex)
    stats.examples += 1
    stats.tokens += len(ex)
    stats.loss_tokens += n
    stats.longest = max(stats.longest, len(ex))


def wrap_masked(examples: list[Example], tokenizer) -> list[Example]:
    """[CLS] block [SEP] for masked LM; targets are drawn per batch by the masker (placeholders here)."""
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    out = []
    for e in examples:
        ids = np.concatenate([[cls], e.ids, [sep]]).astype(np.int64)
        out.append(Example(ids, ids.copy()))
    return out


def text_blocks(texts: list[str], tokenizer, block: int) -> list[list[int]]:
    """Documents joined with EOS (BOS first when the tokenizer has one) and cut into `block`-token pieces."""
    enc = tokenizer(texts, add_special_tokens=False, return_attention_mask=False)["input_ids"]
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    stream: list[int] = []
    for ids in enc:
        stream.extend(ids + ([eos] if eos is not None else []))
    lead = [bos] if bos is not None and bos != eos else []
    step = block - len(lead)
    return [lead + stream[i:i + step] for i in range(0, len(stream), step) if len(stream[i:i + step]) > 1]


def plan_epoch(lengths: list[int], *, batch_size: int, grad_accum: int, world: int, seed: int, epoch: int,
               shuffle: bool = True) -> list[list[list[int]]]:
    """steps[s][k] = example indices of micro-batch k of optimiser step s (k = accum_index * world + rank)."""
    n = len(lengths)
    group = batch_size * grad_accum * world
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(n) if shuffle else np.arange(n)
    lengths_a = np.asarray(lengths)
    steps = []
    window = group * SORT_WINDOW
    for w in range(0, n, window):
        chunk = order[w:w + window]
        chunk = chunk[np.argsort(-lengths_a[chunk], kind="stable")]
        for g in range(0, len(chunk), group):
            steps.append(chunk[g:g + group])
    if world > 1 and steps and len(steps[-1]) < world:
        steps.pop()  # every rank needs at least one example per step
    if shuffle:
        steps = [steps[i] for i in rng.permutation(len(steps))]
    return [_micro_batches(s, batch_size, grad_accum, world) for s in steps]


def _micro_batches(step: np.ndarray, batch_size: int, grad_accum: int, world: int) -> list[list[int]]:
    """Split one step's examples (sorted by length) into grad_accum x world micro-batches of similar length."""
    per = -(-len(step) // (grad_accum * world))
    per = min(per, batch_size)
    micro = [step[i:i + per].tolist() for i in range(0, len(step), per)]
    micro += [[] for _ in range(grad_accum * world - len(micro))]
    return micro


def collate(examples: list[Example], pad_id: int, packing: bool = False) -> dict[str, torch.Tensor]:
    """Right-padded [B, L] batch with an attention mask, or one packed row with restarting position ids."""
    if packing:
        ids = torch.from_numpy(np.concatenate([e.ids for e in examples]))[None]
        targets = torch.from_numpy(np.concatenate([e.targets for e in examples]))[None]
        pos = torch.from_numpy(np.concatenate([np.arange(len(e)) for e in examples]))[None]
        return {"input_ids": ids, "position_ids": pos, "targets": targets}
    width = max(len(e) for e in examples)
    ids = np.full((len(examples), width), pad_id, dtype=np.int64)
    targets = np.full((len(examples), width), IGNORE, dtype=np.int64)
    mask = np.zeros((len(examples), width), dtype=np.int64)
    for i, e in enumerate(examples):
        ids[i, :len(e)], targets[i, :len(e)], mask[i, :len(e)] = e.ids, e.targets, 1
    return {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask),
            "targets": torch.from_numpy(targets)}
