"""train.task=seq2seq: a document -> its summary (or any source -> target pair) with an encoder-decoder.

T5, mT5, ViT5 and BART through AutoModelForSeq2SeqLM. The source gets the prefix the model was
pretrained with (T5 family: "summarize: "; train.head.source_prefix overrides) and is cut to
max_length; the target is cut to train.head.target_length and ends with EOS; labels are padded with
-100. The loss is the summed token cross-entropy of the targets, normalised by the step's target
tokens (the loop's exact accumulation, as for a chat model's answers). Generation budget: the
training targets' 95th-percentile length + 50%, saved in the spec.

    predict(model, tokenizer, spec, [{"text": "a long document ..."}]) -> [{"summary": "..."}]
"""
from __future__ import annotations

import math
import re

import numpy as np
import torch

from luyen.errors import LuyenError
from luyen.tasks.train import HeadExample, HeadObjective, Stats, forward, inputs, pad

LR = {"full": 3e-4, "lora": 1e-3, "freeze": 3e-4}  # T5 fine-tunes at 1e-4..1e-3 with AdamW
CUT = "sources cut to max_length"
PREFIX = {"t5": "summarize: ", "mt5": "summarize: ", "umt5": "summarize: "}
IGNORE = -100


def spec(train: list[dict], val: list[dict], cfg, tokenizer, folder) -> dict:
    from transformers import AutoConfig
    model_type = AutoConfig.from_pretrained(folder).model_type
    prefix = cfg.train.head.source_prefix
    lengths = [len(tokenizer(text_target=r["target"])["input_ids"]) for r in train]
    p95 = float(np.percentile(lengths, 95)) if lengths else 64.0
    return {"source_prefix": PREFIX.get(model_type, "") if prefix is None else prefix,
            "target_length": cfg.train.head.target_length,
            "max_new_tokens": int(min(cfg.train.head.target_length, math.ceil(p95 * 1.5)))}


def load(folder, spec: dict, dtype, trust_remote_code: bool = False):
    from transformers import AutoModelForSeq2SeqLM
    return AutoModelForSeq2SeqLM.from_pretrained(folder, dtype=dtype, trust_remote_code=trust_remote_code)


def encode(records: list[dict], tokenizer, spec: dict) -> tuple[list[HeadExample], Stats]:
    stats, out = Stats(records=len(records)), []
    for r in records:
        src = tokenizer(spec["source_prefix"] + r["source"])["input_ids"]
        tgt = tokenizer(text_target=r["target"], truncation=True, max_length=spec["target_length"])["input_ids"]
        if len(src) > spec["max_length"]:
            stats.too_long += 1
            src = src[:spec["max_length"] - 1] + src[-1:]  # keep the closing EOS
        labels = np.asarray(tgt, dtype=np.int64)
        ex = HeadExample(np.asarray(src, dtype=np.int64), {"labels": labels}, n_loss=len(labels))
        out.append(ex)
        stats.add(ex)
    return out, stats


class Objective(HeadObjective):
    """Summed token cross-entropy of the targets (the model shifts them right as decoder inputs)."""

    def collate(self, examples, pad_id: int, packing: bool) -> dict:
        batch = inputs(examples, pad_id)
        batch["labels"] = pad([e.target["labels"] for e in examples], IGNORE)
        return batch

    def loss(self, model, head, batch: dict, chunk: int, device, autocast, state: dict):
        out = forward(model, batch, device, autocast, keys=("input_ids", "attention_mask", "labels"))
        labels = batch["labels"].to(device)
        logits = out.logits.float()
        loss = torch.nn.functional.cross_entropy(logits.view(-1, logits.shape[-1]), labels.view(-1),
                                                 ignore_index=IGNORE, reduction="sum")
        return loss, int((labels != IGNORE).sum()), {}


def after_training(model, spec: dict, val_ex, device, autocast) -> dict:
    return {}


@torch.no_grad()
def predict(model, tokenizer, spec: dict, items: list[dict], batch_size: int = 8, max_new_tokens: int | None = None,
            num_beams: int = 1) -> list[dict]:
    """{"summary"} per {"text": document}, greedy (or beam search), up to the spec's budget."""
    device = next(model.parameters()).device
    texts = [text_of(it) for it in items]
    out = []
    for i in range(0, len(texts), batch_size):
        rows = [tokenizer(spec["source_prefix"] + t, truncation=True, max_length=spec["max_length"])["input_ids"]
                for t in texts[i:i + batch_size]]
        batch = inputs([HeadExample(np.asarray(r, dtype=np.int64), {}) for r in rows], tokenizer.pad_token_id or 0)
        gen = model.generate(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device),
                             max_new_tokens=max_new_tokens or spec["max_new_tokens"], num_beams=num_beams,
                             do_sample=False)
        out += [{"summary": tokenizer.decode(g, skip_special_tokens=True).strip()} for g in gen]
    return out


def text_of(item: dict) -> str:
    text = item.get("text") if isinstance(item, dict) else None
    if not isinstance(text, str) or not text.strip():
        raise LuyenError("each input needs a non-empty 'text' string (the document)", field="text",
                         fix='give {"text": "the document to summarise"}')
    return text


# -- evaluation (tasks.evaluate) ----------------------------------------------------------------------
PRIMARY, SHOWN = "rougeL", ("rouge1", "rouge2", "rougeL", "bleu", "chrf")
PROMPT = "Summarise this document in one or two sentences.\n\n{text}"


def item(r: dict) -> dict:
    return {"text": r["source"]}


def gold(r: dict) -> str:
    return r["target"]


def lead(text: str, n: int = 3) -> str:
    """The first n sentences of a text."""
    sentences = re.split(r"(?<=[.!?…])\s+", text.strip())
    return " ".join(sentences[:n])


TRIVIAL = {"lead-3": lambda test, train, spec: [{"summary": lead(r["source"])} for r in test]}


def decoder(engine, test, train, spec, style, cfg):
    """The chat model summarises (greedy, the head's token budget); a chat run is asked as it was trained."""
    from luyen.data.formats import as_chat
    from luyen.tasks.extract import shots
    def turn(r):
        return [{"role": "user", "content": PROMPT.format(text=r["source"])},
                {"role": "assistant", "content": r["target"]}]
    before = shots(train, cfg.eval.shots, turn) if style == "few-shot" else []
    chats = [as_chat(r)[:-1] if style == "fine-tuned" else before + turn(r)[:1] for r in test]
    out = engine.chat(chats, max_new_tokens=spec["max_new_tokens"], temperature=0.0)
    return [{"summary": c.text.strip()} for c in out]


def metrics(preds: list[dict], gold: list[str], spec: dict) -> tuple[dict, list[float]]:
    """ROUGE-1/2/L, BLEU-4 and chrF; per example: ROUGE-L."""
    from luyen.evaluate.metrics import bleu_chrf, rouge, rouge_l_per_example
    p = [x["summary"] for x in preds]
    return {**rouge(p, gold), **bleu_chrf(p, gold)}, rouge_l_per_example(p, gold)


