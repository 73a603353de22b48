"""Learning from preferences in the training loop: pair and feedback examples, their batches, the
objectives (what `Method.objective` builds for dpo, kto, orpo and simpo) and the reference log-probs.

A preference method is the loop of supervised fine-tuning with another objective: the loop asks its
objective for a micro-batch (`collate`) and for that micro-batch's summed loss (`loss`), and divides
the step's sum by the number of pairs in the step (each example's `n_loss` is 1), so gradient
accumulation and several processes give the same update as one batch, as for SFT.

- The chosen and rejected answers of a pair are rows of one batch (one forward for both), their
  prompts masked: logits exist only at answer positions (`head.sequence_logps`), a chunk at a time.
- Batches are length buckets (or packed rows with ``train.packing``), from the same plan as SFT.
- The reference is the model before training: its answer log-probs are computed once, before the first
  step, with the adapter switched off (adapter methods) or from the untouched weights (full fine-tuning),
  and cached in the run folder (`reference.safetensors`), so a second model copy is never held and a
  resumed run reads the same numbers. ORPO and SimPO need no reference.
- KTO's KL estimate z is the policy/reference log-ratio averaged over the previous step's answers
  (clamped at 0, detached, 0 at the first step, where policy and reference agree): one step behind
  rather than the paper's mismatched pairs of the same batch, so it costs no extra forward and keeps
  accumulation and resume exact (it travels in the checkpoint's LoopState).

    objective = method_of(cfg.train).objective(cfg.train.preference)
    examples, stats = objective.examples(records, tokenizer, template, max_length)
    attach_reference(model, examples, objective, ...)     # when objective.needs_reference
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from luyen.errors import LuyenError
from luyen.train import preference_loss
from luyen.train.batches import EncodeStats, Example, collate, shifted
from luyen.train.head import sequence_logps

CACHE = "reference.safetensors"


@dataclass
class Pair:
    """A prompt with its chosen and rejected answer, each encoded whole (targets on the answer only)."""
    chosen: Example
    rejected: Example
    ref: tuple[float, float] = (0.0, 0.0)  # the reference's answer log-probs, once computed

    def __len__(self) -> int:
        return len(self.chosen) + len(self.rejected)

    n_loss = 1  # the loop normalises a step by its pairs

    @property
    def loss_tokens(self) -> int:
        return self.chosen.n_loss + self.rejected.n_loss

    def sides(self) -> list[Example]:
        return [self.chosen, self.rejected]

    @property
    def answer(self) -> Example:  # what the model should say: the answer budget is measured on it
        return self.chosen


@dataclass
class Rated:
    """A prompt with one answer marked desirable (thumbs up) or not (KTO)."""
    answer: Example
    desirable: bool
    ref: tuple[float] = (0.0,)

    def __len__(self) -> int:
        return len(self.answer)

    n_loss = 1

    @property
    def loss_tokens(self) -> int:
        return self.answer.n_loss

    def sides(self) -> list[Example]:
        return [self.answer]


def _answer(tokenizer, template: str, prompt: list[dict], answer: list[dict], marker) -> Example:
    """prompt + answer through the chat template; the loss covers only the answer (one assistant message,
    as the data stage guarantees: never an assistant turn inside the prompt)."""
    from luyen.data.template import encode_chat
    ids, mask = encode_chat(tokenizer, template, prompt + answer, marker, targets="last")
    return shifted(ids, mask)


def encode_preferences(records: list[dict], tokenizer, template: str, max_length: int, paired: bool
                       ) -> tuple[list, EncodeStats]:
    """Preference records as `Pair`s (paired objectives) or `Rated` examples (KTO: a pair gives one
    desirable and one undesirable answer; feedback records their own label)."""
    from luyen.data.template import end_marker
    marker = end_marker(tokenizer, template)
    stats, out = EncodeStats(records=len(records)), []
    for rec in records:
        kind = rec["kind"]
        stats.kinds[kind] = stats.kinds.get(kind, 0) + 1
        if kind not in ("preference", "feedback") or (paired and kind != "preference"):
            need = "preference pairs (prompt/chosen/rejected)" if paired else "preference pairs or rated answers"
            raise LuyenError(f"the training data holds {kind} records; this method learns from {need}",
                             field="train.method", fix="prepare preference data with `luyen data prepare` (formats: "
                             "preference, openai_dpo, hh, kto), or use train.method=lora for supervised data")
        try:
            if kind == "preference":
                c, r = (_answer(tokenizer, template, rec["prompt"], rec[k], marker) for k in ("chosen", "rejected"))
                items = [Pair(c, r)] if paired else [Rated(c, True), Rated(r, False)]
            else:
                items = [Rated(_answer(tokenizer, template, rec["prompt"], rec["completion"], marker), bool(rec["label"]))]
        except ValueError:  # the template drops or rewrites a turn
            stats.no_loss += 1
            continue
        for item in items:
            sides = item.sides()
            if max(len(s) for s in sides) > max_length:
                stats.too_long += 1
            elif min(s.n_loss for s in sides) == 0:
                stats.no_loss += 1
            else:
                out.append(item)
                stats.examples += 1
                stats.tokens += len(item)
                stats.loss_tokens += item.loss_tokens
                stats.longest = max(stats.longest, *(len(s) for s in sides))
    return out, stats


class _Preference:
    """What paired and unpaired objectives share: batches of answers with their sequence ids."""
    needs_reference = True
    paired = True

    def __init__(self, pc):
        self.pc = pc

    def examples(self, records, tokenizer, template, max_length):
        return encode_preferences(records, tokenizer, template, max_length, self.paired)

    def collate(self, examples, pad_id: int, packing: bool) -> dict:
        rows = [s for i in range(len(examples[0].sides())) for e in examples for s in (e.sides()[i],)]
        batch = collate(rows, pad_id, packing)
        if packing:
            seq = np.concatenate([np.full(len(r), i) for i, r in enumerate(rows)])[None]
        else:
            seq = np.broadcast_to(np.arange(len(rows))[:, None], batch["targets"].shape)
        batch["seq"] = torch.from_numpy(np.ascontiguousarray(seq, dtype=np.int64))
        batch["sequences"] = len(rows)
        batch["ref"] = torch.tensor([e.ref[i] for i in range(len(examples[0].sides())) for e in examples],
                                    dtype=torch.float64)
        if not self.paired:
            batch["desirable"] = torch.tensor([e.desirable for e in examples])
        return batch

    def end_step(self, sums: dict, norm: int, state: dict) -> None:
        pass


class Paired(_Preference):
    """dpo, orpo, simpo: pairs; `loss_fn(pc, pr, rc, rr, nc, nr) -> (loss, chosen reward, rejected reward)`."""

    def __init__(self, pc, loss_fn, needs_reference: bool):
        super().__init__(pc)
        self.loss_fn, self.needs_reference = loss_fn, needs_reference

    def loss(self, model, head, batch, chunk, device, autocast, state):
        logp, n = sequence_logps(model, head, batch, chunk, device, autocast)
        logp, n, ref = logp.double(), n.double(), batch["ref"].to(device)
        b = batch["sequences"] // 2
        loss, rc, rr = self.loss_fn(logp[:b], logp[b:], ref[:b], ref[b:], n[:b], n[b:])
        stats = {"rewards_chosen": rc.sum(), "rewards_rejected": rr.sum(), "reward_margin": (rc - rr).sum(),
                 "reward_accuracy": (rc > rr).double().sum(), "logp_chosen": logp[:b].detach().sum(),
                 "logp_rejected": logp[b:].detach().sum()}
        return loss.sum().float(), b, {k: float(v) for k, v in stats.items()}

    @staticmethod
    def summarise(sums: dict, norm: int) -> dict:
        return {k: round(v / max(norm, 1), 6) for k, v in sums.items()}


class Unpaired(_Preference):
    """kto: answers rated desirable or not."""
    paired = False

    def loss(self, model, head, batch, chunk, device, autocast, state):
        pc = self.pc
        logp, _ = sequence_logps(model, head, batch, chunk, device, autocast)
        logp, ref, good = logp.double(), batch["ref"].to(device), batch["desirable"].to(device)
        loss, reward = preference_loss.kto(logp, ref, good, beta=pc.beta, kl=state.get("kl", 0.0),
                                           desirable_weight=pc.desirable_weight, undesirable_weight=pc.undesirable_weight)
        stats = {"rewards_chosen": float(reward[good].sum()), "desirable": float(good.sum()),
                 "rewards_rejected": float(reward[~good].sum()), "undesirable": float((~good).sum()),
                 "log_ratio": float((logp - ref).detach().sum())}
        return loss.sum().float(), len(logp), stats

    def end_step(self, sums: dict, norm: int, state: dict) -> None:
        state["kl"] = max(0.0, sums.get("log_ratio", 0.0) / max(norm, 1))

    @staticmethod
    def summarise(sums: dict, norm: int) -> dict:
        c = sums.get("rewards_chosen", 0.0) / max(sums.get("desirable", 0.0), 1)
        r = sums.get("rewards_rejected", 0.0) / max(sums.get("undesirable", 0.0), 1)
        return {"rewards_chosen": round(c, 6), "rewards_rejected": round(r, 6), "reward_margin": round(c - r, 6),
                "kl": round(max(0.0, sums.get("log_ratio", 0.0) / max(norm, 1)), 6)}


def dpo(pc):
    return Paired(pc, lambda *a: preference_loss.dpo(*a, beta=pc.beta, loss_type=pc.loss_type,
                                                       label_smoothing=pc.label_smoothing, sft_weight=pc.sft_weight),
                  needs_reference=True)


def orpo(pc):
    return Paired(pc, lambda pc_, pr, rc, rr, nc, nr: preference_loss.orpo(pc_, pr, nc, nr, beta=pc.beta),
                  needs_reference=False)


def simpo(pc):
    return Paired(pc, lambda pc_, pr, rc, rr, nc, nr: preference_loss.simpo(
        pc_, pr, nc, nr, beta=pc.beta, gamma=pc.simpo_gamma, label_smoothing=pc.label_smoothing), needs_reference=False)


def kto(pc):
    return Unpaired(pc)


@torch.no_grad()
def attach_reference(model, examples: dict[str, list], objective, *, pad_id: int, batch_size: int, chunk: int,
                     device, autocast, out: Path, console=None) -> int:
    """Set every example's `ref` to the reference's answer log-probs: read from the run folder's cache
    when it holds them for these examples, else computed (adapter off) and cached. Returns the tokens
    run through the model (0 when cached)."""
    from safetensors.torch import load_file, save

    from luyen.manifest import atomic_write
    from luyen.train.head import output_head
    path = out / CACHE
    sizes = {k: len(v) for k, v in examples.items()}
    cached = load_file(path) if path.is_file() else {}
    if all(k in cached and len(cached[k]) == n for k, n in sizes.items()):
        _set(examples, cached)
        return 0
    head, values, tokens = output_head(model), {}, 0
    off = model.disable_adapter() if hasattr(model, "disable_adapter") else nullcontext()
    was_training = model.training
    model.eval()
    with off:
        for split, exs in examples.items():
            got = []
            for s in range(0, len(exs), batch_size):
                batch = objective.collate(exs[s:s + batch_size], pad_id, packing=False)
                logp, _ = sequence_logps(model, head, batch, chunk, device, autocast)
                got.append(logp.double().cpu().view(len(exs[0].sides()), -1).t())
                tokens += int(batch["attention_mask"].sum())
            values[split] = torch.cat(got) if got else torch.zeros((0, 2 if objective.paired else 1), dtype=torch.float64)
            if console is not None:
                console.print(f"train: reference log-probs of {len(exs)} {split} examples computed", highlight=False)
    model.train(was_training)
    atomic_write(path, save({k: v.contiguous() for k, v in values.items()}))
    _set(examples, values)
    return tokens


def _set(examples: dict[str, list], values: dict[str, torch.Tensor]) -> None:
    for split, exs in examples.items():
        for e, v in zip(exs, values[split].tolist()):
            e.ref = tuple(v)

