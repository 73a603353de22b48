"""train.task=embedding: fine-tune a sentence encoder to retrieve the team's own documents.

    manifest = run(cfg, data_dir="runs/x/data", out_dir="runs/retriever")   # data_dir may be None
    # then: luyen rag index configs/rag.yaml rag.encoder=runs/retriever --out runs/rag-trained

Pairs (train.pairs) come from rag.documents cut exactly as `luyen rag index` cuts them: each passage's
heading and first sentence, the questions train.data's QA records ask (matched to the passage that
holds their answer), questions the writer model writes for each passage and English translations of
them. Pairs near an evaluation query (train.embedding.eval_queries) are dropped, or refused when they
come from the team's own data.

The loss is sentence-transformers' MultipleNegativesRankingLoss (InfoNCE at temperature
train.embedding.temperature): each query against every passage of its batch plus BM25-mined hard
negatives. A batch holds at most one pair per document and a mined negative never comes from a document
of its batch, so no passage that answers a query is ever scored as its negative (retrieval is judged by
document). A batch is train.batch_size x train.grad_accum pairs; with grad_accum > 1 the loss is
CachedMultipleNegativesRankingLoss (GradCache): batch_size rows of a column go through the model at a
time, twice (without gradients for the loss, then with them), so memory follows batch_size while every
query still meets the whole batch's passages. A share of the queries is held out: recall@1/5 and MRR of
their documents among all passages are measured before training and after each epoch, and the best
epoch's weights ship.

Writes OUT/model/ (a sentence-transformers folder: `rag.encoder=OUT` loads it), pairs.jsonl (what it
trained on, by origin), metrics.jsonl, curves.png, run.json and, last, manifest.json.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import random
import time
from pathlib import Path

import numpy as np
import torch

from luyen import precision as precision_policy
from luyen.config import RunConfig
from luyen.errors import LuyenError
from luyen.manifest import Manifest, RunDir
from luyen.train import encoder as encoders
from luyen.train import pairs as make
from luyen.train import runfolder
from luyen.train.logs import MetricsLogger
from luyen.train.methods import METHODS
from luyen.train.optim import optimizer
from luyen.train.preflight import supervised_options_set


def run(cfg: RunConfig, data_dir: str | Path | None = None, out_dir: str | Path | None = None, *,
        resume: bool = False, overwrite: bool = False, console=None) -> Manifest:
    from rich.console import Console
    console = console or Console(stderr=True)
    tc = cfg.train
    if out_dir is None:
        raise LuyenError("no output folder given", fix="pass --out DIR")
    if resume:
        raise LuyenError("a retriever training does not resume (it takes minutes)", field="train.resume",
                         fix="run it again with --overwrite")
    for field, off in supervised_options_set(tc):
        raise LuyenError(f"train.{field} does not apply to a retriever's training", field=f"train.{field}",
                         fix=f"set train.{field}={off} with train.task=embedding")
    if not cfg.rag.documents:
        raise LuyenError("a retriever trains on the documents it will search, and none are given",
                         field="rag.documents", fix="set rag.documents: [folder or files of your documents]")
    out, started = Path(out_dir), time.time()
    chosen = precision_policy.for_training(tc.dtype)
    runfolder.start(out, runfolder.identity(cfg, {"outputs": _data_files(data_dir)}, chosen.name), False, overwrite)
    torch.set_num_threads(tc.threads or os.cpu_count() or 1)
    random.seed(cfg.seed), torch.manual_seed(cfg.seed)

    model, about = encoders.build(cfg)
    rows, train, val, counts = _pairs(cfg, model, data_dir, console)
    if len(train) < 2:
        raise LuyenError(f"only {len(train)} training pairs", field="rag.documents", fix="give more documents or train.data")
    model = encoders.wrap(model, tc)
    lr = tc.lr or METHODS[tc.method].lr
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    console.print(f"train: retriever from {cfg.model.name} ({about['kind']}, {about['pooling']} pooling"
                  f"{', bidirectional' if about['bidirectional'] and about['kind'] == 'decoder' else ''}), "
                  f"{tc.method}, {trainable:,} parameters train; {len(train)} pairs ({len(val)} held out), "
                  f"{len(rows)} passages; precision {chosen.describe()}", highlight=False)
    loop = _Loop(model, rows, train, val, tc, lr, chosen.autocast, cfg.seed, out, console)
    state = loop.run()
    rd = RunDir(out, "train", started=started)
    encoders.save(model, out / "model", {**about, "pairs": counts, "cross_lingual": counts.get("translated", 0) > 0})
    rd.outputs += [str(f.relative_to(out)) for f in sorted((out / "model").rglob("*")) if f.is_file()]
    rd.write_text("pairs.jsonl", "".join(json.dumps({**vars(p), "split": s}, ensure_ascii=False) + "\n"
                                         for s, part in (("train", train), ("val", val)) for p in part))
    rd.outputs += [n for n in ("metrics.jsonl", "curves.png", "run.json") if (out / n).exists()]
    metrics = {"task": "embedding", "method": tc.method, "precision": chosen.name, "encoder": about, "lr": lr,
               "passages": len(rows), "pairs": counts, "train_pairs": len(train), "val_pairs": len(val),
               "params_trainable": trainable, **state, "seconds": round(time.time() - started, 1)}
    inputs = [Path(d) for d in _data_files(data_dir)]
    return rd.finish(config=cfg.model_dump(), inputs=inputs, seed=cfg.seed, metrics=metrics)


def _data_files(data_dir) -> list[str]:
    return [str(Path(data_dir) / "train.jsonl")] if data_dir and (Path(data_dir) / "train.jsonl").is_file() else []


def _pairs(cfg: RunConfig, model, data_dir, console) -> tuple[list[dict], list, list, dict]:
    """The passages, the training and held-out (query, passage) pairs, and their counts by origin and by
    what was dropped. Queries are split before translations and unmarked copies are made from them, so
    a held-out query's English or unmarked twin never trains."""
    from luyen.data.stage import read_split
    from luyen.rag.documents import read_documents
    from luyen.rag.encoder import Encoder
    ec, rag = cfg.train.embedding, cfg.rag
    docs, skipped = read_documents(rag.documents, rag.text_field)
    if not docs:
        raise LuyenError("no readable document" + (f": {skipped[0]['error']}" if skipped else ""), field="rag.documents",
                         fix="point rag.documents at .md, .txt, .html, .pdf or .jsonl files")
    encoder = Encoder(cfg.model.name, model)  # counts tokens and sizes the window as `luyen rag index` will
    rows = make.passages(docs, encoder.count_tokens, rag.chunk_tokens, rag.overlap_tokens, encoder.window)
    evals = make.read_eval_queries(ec.eval_queries)
    if ec.pairs:  # an earlier run's pairs.jsonl, perhaps curated: its split is kept, nothing is written again
        halves, leaked = [], []
        for half in make.read_pairs(ec.pairs, rows):
            clean, dropped = make.check_leakage(half, evals, refuse=False)
            halves.append(clean)
            leaked += dropped
        repeated, write = 0, None
    else:
        pairs = make.fallback_pairs(rows)
        if data_dir:
            qa, _ = make.check_leakage(make.qa_pairs(read_split(Path(data_dir), "train"), rows), evals,
                                       origin_file=str(Path(data_dir) / "train.jsonl"), refuse=True)
            pairs += qa
        if ec.queries:
            own, _ = make.check_leakage(make.labelled_pairs(ec.queries, rows), evals, origin_file=ec.queries[0],
                                        refuse=True)
            pairs += own
        write = _writer(cfg, console) if ec.generate or ec.translate else None
        if ec.generate:
            pairs += make.generated_pairs(rows, write, per_passage=ec.generate)
        pairs, leaked = make.check_leakage(pairs, evals, refuse=False)
        pairs, repeated = make.deduplicate(pairs)
        halves = _split(pairs, ec.val, cfg.seed)
    parts = []
    for part in halves:
        translated, dropped = make.check_leakage(make.translated_pairs(part, write) if write and ec.translate else [],
                                                 evals, refuse=False)
        part = make.deduplicate(part + translated)[0]
        # after deduplication, which compares queries folded and would take these for repeats
        folded, more = make.check_leakage(make.folded_pairs(part) if ec.fold else [], evals, refuse=False)
        parts.append(part + folded)
        leaked += dropped + more
    train, val = parts
    counts = {origin: sum(p.origin == origin for p in train + val) for origin in sorted({p.origin for p in train + val})}
    counts |= {"dropped_leaked": len(leaked), "dropped_repeated": repeated}
    console.print("train: pairs " + ", ".join(f"{k} {v}" for k, v in counts.items()), highlight=False)
    return rows, train, val, counts


def _writer(cfg: RunConfig, console):
    """A batch continuation function over the writer model, one line each: greedy, or sampled (seeded)
    when it writes several questions per passage."""
    from luyen.infer.engine import Engine
    ec = cfg.train.embedding
    console.print(f"train: {ec.writer} writes training questions", highlight=False)
    engine = Engine.load(ec.writer)
    calls = iter(range(1_000_000))

    def write(prompts: list[str]) -> list[str]:
        out, started = [], time.perf_counter()
        for i in range(0, len(prompts), 64):  # a line per 64, so a long writing shows it moves
            out += [c.text for c in engine.generate(prompts[i:i + 64], max_new_tokens=48, stop=["\n"], batch_size=8,
                                                     temperature=0.7 if ec.generate > 1 else 0.0, top_p=0.95,
                                                     seed=cfg.seed + next(calls), repetition_penalty=1.0)]
            console.print(f"train: wrote {len(out)}/{len(prompts)} ({time.perf_counter() - started:.0f} s)",
                          highlight=False)
        return out
    return write


def _split(pairs: list, share: float, seed: int) -> tuple[list, list]:
    """Hold out a share of the queries (every pair of a held-out query, however it is marked)."""
    from luyen.rag.lexical import fold

    def held(p) -> bool:
        h = hashlib.sha256(f"{seed}:{' '.join(fold(p.query.casefold()).split())}".encode()).digest()
        return int.from_bytes(h[:4], "big") / 2 ** 32 < share
    return [p for p in pairs if not held(p)], [p for p in pairs if held(p)]


class _Loop:
    def __init__(self, model, rows, train, val, tc, lr, autocast, seed, out, console):
        from sentence_transformers.base.losses.merged_forward import embed_columns
        from sentence_transformers.sentence_transformer.losses import (
            CachedMultipleNegativesRankingLoss,
            MultipleNegativesRankingLoss,
        )
        self.embed_columns = embed_columns  # the loss's own forward over the columns (query, passage, negatives)
        self.model, self.rows, self.train, self.val, self.tc = model, rows, train, val, tc
        self.autocast, self.seed, self.out, self.console = autocast, seed, out, console
        self.ec = tc.embedding
        # train.grad_accum > 1: GradCache (sentence-transformers' CachedMultipleNegativesRankingLoss), so only
        # train.batch_size rows of one column hold activations at a time while the loss still scores every
        # query against the whole batch of batch_size x grad_accum (exact gradients, one more forward pass)
        self.cached = tc.grad_accum > 1
        self.loss = (CachedMultipleNegativesRankingLoss(_Autocast(model, autocast), scale=1 / self.ec.temperature,
                                                        mini_batch_size=tc.batch_size) if self.cached
                     else MultipleNegativesRankingLoss(model, scale=1 / self.ec.temperature))
        self.passages = [r["indexed"] for r in rows]
        self.sources = [r["source"] for r in rows]
        self.candidates = _mine(rows, train, self.ec.hard_negatives)
        self.batch = tc.batch_size * tc.grad_accum
        self.per_epoch = max(1, len(train) // self.batch)
        self.total = tc.max_steps or max(1, math.ceil(tc.epochs * self.per_epoch))
        self.opt, self.sched = optimizer(model, tc, lr, self.total)
        self.params = [p for p in model.parameters() if p.requires_grad]

    def run(self) -> dict:
        log = MetricsLogger(self.out, enabled=True)
        first = self.evaluate()
        log.log({"step": 0, **{f"val_{k}": v for k, v in first.items()}})
        # with held-out queries the best evaluation's weights ship, the starting ones included
        best_state = [p.detach().clone() for p in self.params] if self.val else None
        best, best_step, step, losses, t0 = first, 0, 0, [], time.perf_counter()
        epoch = 0
        while step < self.total:
            for batch in self.batches(epoch):
                if step >= self.total:
                    break
                began = time.perf_counter()
                loss = self.step(batch)
                step += 1
                losses.append(loss)
                log.log({"step": step, "loss": round(loss, 5), "lr": self.sched.get_last_lr()[0],
                         "seconds": round(time.perf_counter() - began, 3)})
                if step % max(1, self.tc.logging_steps * 10) == 0:
                    self.console.print(f"train: step {step}/{self.total} loss {loss:.4f}", highlight=False)
                if step % self.per_epoch == 0 or step == self.total:
                    now = self.evaluate()
                    log.log({"step": step, **{f"val_{k}": v for k, v in now.items()}})
                    self.console.print(f"train: step {step} held-out recall@5 {now['recall@5']:.3f} MRR "
                                       f"{now['mrr']:.3f} (start {first['recall@5']:.3f} / {first['mrr']:.3f})",
                                       highlight=False)
                    if self.val and now["mrr"] > best["mrr"]:
                        best, best_step = now, step
                        best_state = [p.detach().clone() for p in self.params]
            epoch += 1
        log.close()
        seconds = time.perf_counter() - t0
        if best_state is not None and best_step != step:
            self.console.print(f"train: shipping the weights of step {best_step} (held-out MRR {best['mrr']:.3f})",
                               highlight=False)
            with torch.no_grad():
                for p, v in zip(self.params, best_state):
                    p.copy_(v)
        return {"steps": step, "first_loss": losses[0] if losses else None, "final_loss": losses[-1] if losses else None,
                "initial_val": first, "best_val": best, "shipped_step": best_step, "train_seconds": round(seconds, 1),
                "pairs_per_s": round(step * self.batch / seconds, 2) if seconds else None}

    def batches(self, epoch: int):
        """Batches of distinct documents: a shuffled pass over the pairs, each pair taking the first batch
        that lacks its document."""
        order = list(range(len(self.train)))
        random.Random(self.seed * 1000 + epoch).shuffle(order)
        open_batches: list[list[int]] = []
        for i in order:
            src = self.train[i].source
            home = next((b for b in open_batches if all(self.train[j].source != src for j in b)), None)
            if home is None:
                home = []
                open_batches.append(home)
            home.append(i)
            if len(home) == self.batch:
                open_batches.remove(home)
                yield home
        # a last partial batch is dropped (its in-batch negatives would be few)

    def step(self, batch: list[int]) -> float:
        self.model.train()
        pairs = [self.train[i] for i in batch]
        sources = {p.source for p in pairs}
        columns = [([p.query for p in pairs], self.ec.query_prompt), ([p.passage for p in pairs], self.ec.passage_prompt)]
        for n in range(self.ec.hard_negatives):
            picks = [self._negative(i, sources, n) for i in batch]
            columns.append(([self.passages[r] for r in picks], self.ec.passage_prompt))
        # the prompts go on as `encode` puts them (sentence-transformers' own preprocess), so a search embeds
        # its query exactly as training did
        features = [self.model.preprocess(texts, prompt=prompt) for texts, prompt in columns]
        if self.cached:  # embeds each mini-batch without gradients, then again with them inside backward
            loss = self.loss(features, None)
        else:
            with _autocast(self.autocast):
                embeddings = self.embed_columns(self.model, features)
            # the loss itself in fp32: under CPU bf16 autocast its similarity matrix and logsumexp ran in bf16,
            # whose spacing at a scaled cosine of ~16 is 0.125 (the loss came out in steps of 1/64)
            loss = self.loss.compute_loss_from_embeddings([e.float() for e in embeddings], None)
        loss.backward()
        if self.tc.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(self.params, self.tc.max_grad_norm)
        self.opt.step()
        self.sched.step()
        self.opt.zero_grad(set_to_none=True)
        return float(loss.detach())

    def _negative(self, i: int, sources: set[str], n: int) -> int:
        """The n-th best BM25 passage for pair i from a document outside the batch (a random one if none)."""
        picks = [r for r in self.candidates[i] if self.sources[r] not in sources]
        if n < len(picks):
            return picks[n]
        outside = [r for r in range(len(self.rows)) if self.sources[r] not in sources]
        return random.Random(self.seed + i + n).choice(outside or list(range(len(self.rows))))

    @torch.no_grad()
    def evaluate(self) -> dict:
        """recall@1/5 and MRR of the held-out queries' documents among every passage (empty without them)."""
        if not self.val:
            return {"recall@1": 0.0, "recall@5": 0.0, "mrr": 0.0}
        self.model.eval()
        with _autocast(self.autocast):
            p = self.model.encode(self.passages, prompt=self.ec.passage_prompt, normalize_embeddings=True,
                                  convert_to_tensor=True, batch_size=16).float()
            q = self.model.encode([v.query for v in self.val], prompt=self.ec.query_prompt,
                                  normalize_embeddings=True, convert_to_tensor=True, batch_size=32).float()
        return document_scores((q @ p.T).numpy(), self.sources, [v.source for v in self.val])


def _autocast(dtype):
    """The run's CPU autocast (precision.Precision.autocast: None in fp32, where it is off)."""
    return torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None)


class _Autocast(torch.nn.Module):
    """The encoder under the run's autocast with its embeddings in fp32, for GradCache: both of its forwards
    (the second runs inside backward, outside any autocast of the loop's) embed as the plain step does, and
    the loss between them runs in fp32, as the plain step's does."""

    def __init__(self, model, dtype):
        super().__init__()
        self.encoder, self.dtype = model, dtype

    def __getitem__(self, i):
        return self.encoder[i]

    def forward(self, features: dict) -> dict:
        with _autocast(self.dtype):
            out = self.encoder(features)
        return {**out, "sentence_embedding": out["sentence_embedding"].float()}


def document_scores(similarity: np.ndarray, sources: list[str], wanted: list[str]) -> dict:
    """recall@1/5 and MRR@10 by document (rag.evaluate.scores, as `luyen rag eval` reports them): a
    query's documents ranked by their best passage."""
    from luyen.rag.evaluate import scores
    ranked = [list(dict.fromkeys(sources[r] for r in np.argsort(-row, kind="stable"))) for row in similarity]
    return scores(ranked, [{"relevant": [w]} for w in wanted], (1, 5))


def _mine(rows: list[dict], pairs: list, k: int, depth: int = 30) -> list[list[int]]:
    """For each pair, passages BM25 ranks high for its query from other documents: its hard negatives."""
    if not k:
        return [[] for _ in pairs]
    from luyen.rag.lexical import Lexical, index_terms
    bm25 = Lexical.build([index_terms(r["indexed"]) for r in rows])
    return [[r for r, _ in bm25.rank(p.query, depth) if rows[r]["source"] != p.source] for p in pairs]
