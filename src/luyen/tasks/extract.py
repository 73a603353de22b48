"""train.task=extractive_qa: a question and a context -> the span of the context that answers it (SQuAD v1/v2).

The question and the context are encoded as one pair (question first, context truncated only); a
context longer than max_length is cut into windows that share train.head.doc_stride tokens, and each
window is one example. A window's target is the first and last token of the answer, mapped from the
answer's character offsets through the tokenizer's offset mapping; a window that does not hold the
whole answer, and every window of an unanswerable question (SQuAD v2), points at the first token
([CLS]), the "no answer" position. Loss: the mean of the start and end cross-entropies per window.

Prediction follows the reference SQuAD post-processing: over every window of a question, the best
(start, end) pair inside the context with start <= end and at most train.head.max_answer_tokens
tokens, scored by start + end logits; when the data has unanswerable questions, "no answer" wins
when its score (the [CLS] start + end logits, lowest over the windows) beats the best span's.

    predict(model, tokenizer, spec, [{"question": "...", "context": "..."}])
    -> [{"answer": "20 kg", "start": 131, "score": 0.93, "no_answer": 0.02}]
"""
from __future__ import annotations

import numpy as np
import torch

from luyen.errors import LuyenError
from luyen.tasks.train import HeadExample, HeadObjective, Stats, forward, inputs

LR = {"full": 5e-5, "lora": 1e-3, "freeze": 2e-4}
CUT = "extra windows of long contexts"
BEST = 20  # start and end candidates per window (SQuAD's n_best_size)


def spec(train: list[dict], val: list[dict], cfg, tokenizer, folder) -> dict:
    if not getattr(tokenizer, "is_fast", False):
        raise LuyenError("extractive QA needs a fast tokenizer (its character offsets map answers to tokens)",
                         field="model.name", fix="use a model with a tokenizer.json (all-MiniLM-L6-v2, xlm-roberta-base)")
    h = cfg.train.head
    return {"doc_stride": h.doc_stride, "max_answer_tokens": h.max_answer_tokens,
            "unanswerable": any(not r["answers"] for r in train)}


def load(folder, spec: dict, dtype, trust_remote_code: bool = False):
    from transformers import AutoModelForQuestionAnswering
    return AutoModelForQuestionAnswering.from_pretrained(folder, dtype=dtype, trust_remote_code=trust_remote_code)


def windows(tokenizer, question: str, context: str, spec: dict) -> list[dict]:
    """The encoded windows of one (question, context): ids, type ids, offsets and which tokens are context."""
    max_length = spec["max_length"]
    stride = min(spec["doc_stride"], max_length // 2)
    right = tokenizer.padding_side == "right"
    enc = tokenizer(question if right else context, context if right else question,
                    truncation="only_second" if right else "only_first", max_length=max_length, stride=stride,
                    return_overflowing_tokens=True, return_offsets_mapping=True)
    out = []
    for w in range(len(enc["input_ids"])):
        seq = enc.sequence_ids(w)
        ctx = 1 if right else 0
        out.append({"ids": np.asarray(enc["input_ids"][w], dtype=np.int64),
                    "types": np.asarray(enc["token_type_ids"][w], dtype=np.int64) if "token_type_ids" in enc else None,
                    "offsets": enc["offset_mapping"][w], "context": np.asarray([s == ctx for s in seq])})
    return out


def _target(win: dict, answers: list[dict]) -> tuple[int, int]:
    """Token positions of the first answer inside this window; (0, 0) when it is not wholly inside."""
    if not answers:
        return 0, 0
    a = answers[0]
    start_char, end_char = a["start"], a["start"] + len(a["text"])
    idx = np.flatnonzero(win["context"])
    offsets = win["offsets"]
    if offsets[idx[0]][0] > start_char or offsets[idx[-1]][1] < end_char:
        return 0, 0
    start = next(i for i in idx if offsets[i][1] > start_char)
    end = next(i for i in idx[::-1] if offsets[i][0] < end_char)
    return int(start), int(end)


def encode(records: list[dict], tokenizer, spec: dict) -> tuple[list[HeadExample], Stats]:
    stats, out = Stats(records=len(records)), []
    for r in records:
        wins = windows(tokenizer, r["question"], r["context"], spec)
        stats.too_long += len(wins) - 1
        for w in wins:
            start, end = _target(w, r["answers"])
            ex = HeadExample(w["ids"], {"start": start, "end": end}, w["types"])
            out.append(ex)
            stats.add(ex)
    return out, stats


class Objective(HeadObjective):
    """(start cross-entropy + end cross-entropy) / 2 per window; counts windows whose span is exactly right."""

    def collate(self, examples, pad_id: int, packing: bool) -> dict:
        batch = inputs(examples, pad_id)
        batch["start"] = torch.tensor([e.target["start"] for e in examples])
        batch["end"] = torch.tensor([e.target["end"] for e in examples])
        return batch

    def loss(self, model, head, batch: dict, chunk: int, device, autocast, state: dict):
        out = forward(model, batch, device, autocast)
        mask = batch["attention_mask"].to(device) == 0  # padding can never be a boundary
        s = out.start_logits.float().masked_fill(mask, -1e4)
        e = out.end_logits.float().masked_fill(mask, -1e4)
        start, end = batch["start"].to(device), batch["end"].to(device)
        ce = torch.nn.functional.cross_entropy
        loss = (ce(s, start, reduction="none") + ce(e, end, reduction="none")).sum() / 2
        exact = ((s.argmax(-1) == start) & (e.argmax(-1) == end)).sum()
        return loss, len(start), {"span_accuracy": float(exact)}


def after_training(model, spec: dict, val_ex, device, autocast) -> dict:
    return {}


@torch.no_grad()
def predict(model, tokenizer, spec: dict, items: list[dict], batch_size: int = 16) -> list[dict]:
    """The answer span of each {"question", "context"} (empty when "no answer" wins, with unanswerable
    training data), its character start, and softmax probabilities of the span and of "no answer"."""
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    results = []
    for item in items:
        question, context = _fields(item)
        wins = windows(tokenizer, question, context, spec)
        best, null = None, None
        for i in range(0, len(wins), batch_size):
            chunk = wins[i:i + batch_size]
            exs = [HeadExample(w["ids"], {}, w["types"]) for w in chunk]
            out = forward(model, inputs(exs, pad_id), device, None)
            for w, s, e in zip(chunk, out.start_logits.float().cpu(), out.end_logits.float().cpu()):
                s, e = s[:len(w["ids"])], e[:len(w["ids"])]
                ps, pe = torch.log_softmax(s, -1), torch.log_softmax(e, -1)
                here = float(ps[0] + pe[0])  # "no answer" in this window
                null = here if null is None else min(null, here)
                span = _best_span(w, s, e, spec["max_answer_tokens"])
                if span is not None:
                    score = float(ps[span[0]] + pe[span[1]])
                    if best is None or score > best[0]:
                        a, b = w["offsets"][span[0]][0], w["offsets"][span[1]][1]
                        best = (score, a, b)
        results.append(choose(best, null, spec.get("unanswerable", False), context))
    return results


def choose(best: tuple | None, null: float | None, unanswerable: bool, context: str) -> dict:
    """The answer from the best span (log-probability, start char, end char) and the no-answer
    log-probability: no answer when there is no span, or when the model learned unanswerable questions
    (SQuAD v2) and "no answer" is likelier than the best span."""
    no_answer = round(float(np.exp(null)), 6) if null is not None else 0.0
    if best is None or (unanswerable and null is not None and null > best[0]):
        return {"answer": "", "start": -1, "score": 0.0, "no_answer": no_answer}
    score, a, b = best
    return {"answer": context[a:b], "start": int(a), "score": round(float(np.exp(score)), 6), "no_answer": no_answer}


def _best_span(win: dict, s: torch.Tensor, e: torch.Tensor, max_tokens: int) -> tuple[int, int] | None:
    ctx = torch.from_numpy(win["context"])
    s = s.masked_fill(~ctx, -1e9)
    e = e.masked_fill(~ctx, -1e9)
    starts = torch.topk(s, min(BEST, len(s))).indices.tolist()
    ends = torch.topk(e, min(BEST, len(e))).indices.tolist()
    best, top = None, -float("inf")
    for a in starts:
        if not ctx[a]:
            continue
        for b in ends:
            if ctx[b] and a <= b < a + max_tokens and float(s[a] + e[b]) > top:
                best, top = (a, b), float(s[a] + e[b])
    return best


def _fields(item: dict) -> tuple[str, str]:
    if not isinstance(item, dict):
        raise LuyenError("each input must be an object with 'question' and 'context'", field="question",
                         fix='give {"question": "...", "context": "..."}')
    for key in ("question", "context"):
        v = item.get(key)
        if not isinstance(v, str) or not v.strip():
            raise LuyenError(f"each input needs a non-empty '{key}' string", field=key,
                             fix='give {"question": "...", "context": "..."}')
    return item["question"], item["context"]


# -- evaluation (tasks.evaluate) ----------------------------------------------------------------------
PRIMARY, SHOWN = "f1", ("exact_match", "f1", "no_answer_accuracy")
PROMPT = ("Context: {context}\n\nQuestion: {question}\n\nAnswer with the shortest phrase copied from the "
          "context. If the context does not answer the question, answer: unanswerable")
NO_ANSWER = ("unanswerable", "không có", "không rõ", "(no answer")  # the last: as_chat's no-answer reply
TRIVIAL: dict = {}


def item(r: dict) -> dict:
    return {"question": r["question"], "context": r["context"]}


def gold(r: dict) -> list[str]:
    return [a["text"] for a in r["answers"]]


def decoder(engine, test, train, spec, style, cfg):
    """The chat model answers from the context (greedy); "unanswerable" counts as no answer. A chat run
    trained on this data is asked as it was trained (data.formats.as_chat)."""
    from luyen.data.formats import as_chat
    def turn(r):
        answer = r["answers"][0]["text"] if r["answers"] else "unanswerable"
        return [{"role": "user", "content": PROMPT.format(context=r["context"], question=r["question"])},
                {"role": "assistant", "content": answer}]
    before = shots(train, cfg.eval.shots, turn) if style == "few-shot" else []
    chats = [as_chat(r)[:-1] if style == "fine-tuned" else before + turn(r)[:1] for r in test]
    out = engine.chat(chats, max_new_tokens=32, temperature=0.0)
    answers = [c.text.strip().strip(".").strip() for c in out]
    return [{"answer": "" if a.lower().startswith(NO_ANSWER) else a} for a in answers]


def shots(train: list[dict], k: int, fmt) -> list[dict]:
    """The first k training examples as chat turns (the few-shot prompt)."""
    return [m for r in train[:k] for m in fmt(r)]


def metrics(preds: list[dict], gold: list[list[str]], spec: dict) -> tuple[dict, list[float]]:
    """SQuAD exact match and F1 (an unanswerable question is right when the answer is empty), F1 over the
    answerable ones and no-answer accuracy; per example: F1 (0-100)."""
    from luyen.evaluate.metrics import exact_match, token_f1
    ems, f1s = [], []
    for x, refs in zip(preds, gold):
        refs = refs or [""]
        ems.append(max(exact_match(x["answer"], r) if r else float(not x["answer"].strip()) for r in refs))
        f1s.append(max(token_f1(x["answer"], r) if r else float(not x["answer"].strip()) for r in refs))
    has = [i for i, g in enumerate(gold) if g]
    none = [i for i, g in enumerate(gold) if not g]
    m = {"exact_match": 100 * float(np.mean(ems)), "f1": 100 * float(np.mean(f1s)),
         "has_answer_f1": 100 * float(np.mean([f1s[i] for i in has])) if has else None,
         "no_answer_accuracy": 100 * float(np.mean([ems[i] for i in none])) if none else None}
    return m, [100 * f for f in f1s]


