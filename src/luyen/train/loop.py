"""The training loop: exact gradient accumulation, answer-only chunked logits, checkpoints, resume.

One optimiser step = `grad_accum` micro-batches on each of `world` processes. The loss of a step is
the sum of token losses divided by the number of loss-bearing tokens in the whole step (all
micro-batches, all processes), known in advance from the batch plan, so accumulation and data
parallelism give the same update as one big batch. The model runs with its output layer switched
off (`head.output_head`: it returns final hidden states) and the loss computes logits only at the
positions that carry loss, a chunk at a time.

With a validation split the model leaves `Trainer.run` holding the weights of the best validation loss
(their checkpoint is written when they are found and kept through rotation), else the last step's;
`LoopState.shipped_step` / `shipped_weights` say which. The loop's state is one `checkpoint.LoopState`,
which checkpoints save and restore whole; when it validates, saves and logs is `train.cadence`'s, and
what it shows is `train.logs.RunLog`'s. A checkpoint is never written with non-finite or
exploded weights (`checkpoint.weight_bound`): that is a divergence, and its error names only a checkpoint
whose weights pass that check.

Processes are launched by torchrun / accelerate; `accelerate.Accelerator` wraps the model for DDP
(gloo on CPU, NCCL on GPUs) or FSDP/DeepSpeed when `accelerate launch` is configured so. Only the
main process writes files.
"""
from __future__ import annotations

import math
import signal
import time
import warnings
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
import torch

from luyen.errors import LuyenError
from luyen.train import checkpoint, neftune
from luyen.train.batches import IGNORE, Example, plan_epoch
from luyen.train.cadence import eval_due, save_due, stop_early
from luyen.train.checkpoint import LoopState
from luyen.train.head import NextToken, output_head
from luyen.train.logs import RunLog
from luyen.train.optim import optimizer


class Diverged(Exception):
    def __init__(self, why: str, step: int):
        super().__init__(why)
        self.step = step


class Trainer:
    def __init__(self, *, model, tokenizer, tc, seed: int, train: list[Example], val: list[Example], out: Path,
                 accelerator, console, lr: float, masker=None, autocast=None, objective=None):
        self.model, self.tok, self.tc, self.seed, self.out = model, tokenizer, tc, seed, out
        # what is minimised: the next-token loss, or a preference loss (train.preference); see NextToken
        self.objective = objective or NextToken()
        self.val_stats: dict = {}  # the objective's statistics at the last validation
        self.train_ex, self.val_ex, self.acc, self.console, self.lr = train, val, accelerator, console, lr
        self.autocast = autocast  # torch.bfloat16 / torch.float16: mixed precision
        self.scaler = torch.amp.GradScaler(accelerator.device.type) if autocast == torch.float16 else None
        self.masker = masker  # masked LM: (input_ids, generator) -> (input_ids, targets)
        self.world, self.rank = accelerator.num_processes, accelerator.process_index
        self.main = accelerator.is_main_process
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
        self.lengths = [len(e) for e in train]
        self.steps_per_epoch = len(self._plan(0))
        if self.steps_per_epoch == 0:
            raise LuyenError("no optimiser step fits the training split", field="train.batch_size")
        self.total = tc.max_steps or max(1, math.ceil(tc.epochs * self.steps_per_epoch))
        self._plans: dict[int, list] = {}
        # a task head (classification, QA, seq2seq) computes its own loss from the model's output
        self.head = output_head(accelerator.unwrap_model(model)) if getattr(self.objective, "lm_head", True) else None
        self.state = LoopState()
        self.ckpt_root = out / "checkpoints"
        self.stop_requested = False
        self.saved_step: int | None = None  # the step of the newest checkpoint this run has on disk

    # -- plan ---------------------------------------------------------------------------------
    def _plan(self, epoch: int) -> list:
        tc = self.tc
        return plan_epoch(self.lengths, batch_size=tc.batch_size, grad_accum=tc.grad_accum, world=self.world,
                          seed=self.seed, epoch=epoch, shuffle=tc.shuffle)

    def plan(self, epoch: int) -> list:
        if epoch not in self._plans:
            self._plans = {epoch: self._plan(epoch)}
        return self._plans[epoch]

    # -- setup --------------------------------------------------------------------------------
    def build_optimizer(self):
        return optimizer(self.model, self.tc, self.lr, self.total)

    # -- the loop -----------------------------------------------------------------------------
    def run(self, resume: Path | None = None) -> LoopState:
        """Train to `total` steps (or early stopping, or Ctrl-C); the model is left holding the weights
        that ship (see the module docstring)."""
        opt, sched = self.build_optimizer()
        self.model, opt = self.acc.prepare(self.model, opt)
        if resume is not None:
            self._resume(resume, opt, sched)
        st, tc = self.state, self.tc
        params = [p for p in self.model.parameters() if p.requires_grad]
        if st.start_weight_max is None:
            st.start_weight_max = self._weights_max(params)
        log = RunLog(self.out, self.console, tc, total=self.total, start=st.step, steps_per_epoch=self.steps_per_epoch,
                     enabled=self.main)
        try:
            with log, self._ctrl_c(), neftune.noisy(self.acc.unwrap_model(self.model), tc.neftune_alpha):
                if st.step == 0 and self.val_ex:  # where validation starts, so the curve shows what training bought
                    st.initial_val = self.evaluate(self.model)
                    st.initial_val_stats = self.val_stats
                    log.validation(0, st.initial_val, **_prefixed("val_", self.val_stats))
                while st.step < self.total and not self.stop_requested and not stop_early(st.bad_evals, tc):
                    t0 = time.perf_counter()
                    loss, n_tok, n_loss, gnorm, stats = self._step(self.model, params, opt)
                    sched.step()
                    seconds = time.perf_counter() - t0
                    st.step, st.tokens, st.loss_tokens = st.step + 1, st.tokens + n_tok, st.loss_tokens + n_loss
                    st.train_seconds, st.last_loss = st.train_seconds + seconds, loss
                    evaluated = eval_due(st.step, tc, total=self.total, steps_per_epoch=self.steps_per_epoch)
                    val, new_best = self._validate() if evaluated and self.val_ex else (None, False)
                    log.step(st.step, loss=loss, lr=sched.get_last_lr()[0], grad_norm=gnorm, tokens=n_tok,
                             seconds=seconds, val=val, **self._ranks(st.step), **stats,
                             **(_prefixed("val_", self.val_stats) if val is not None else {}))
                    if save_due(st.step, tc, evaluated=evaluated, new_best=new_best):
                        self.save(opt)
                if stop_early(st.bad_evals, tc):
                    log.note(f"early stopping: validation loss has not improved for {tc.early_stopping} evaluations "
                             f"(best {st.best_val:.4f} at step {st.best_step})")
                if self.saved_step != st.step:
                    self.save(opt)
        except Diverged as e:
            raise self._diverged(e) from None
        if self.stop_requested:
            raise KeyboardInterrupt(f"saved checkpoint step {st.step}")
        self._ship()
        return st

    def _validate(self) -> tuple[float, bool]:
        """The validation loss now, and whether it is the best so far (which resets early stopping's count)."""
        st = self.state
        val = self.evaluate(self.model)
        if math.isfinite(val) and (st.best_val is None or val < st.best_val - 1e-6):
            st.best_val, st.best_step, st.bad_evals, st.best_val_stats = val, st.step, 0, self.val_stats
            return val, True
        st.bad_evals += 1
        return val, False

    def _ranks(self, step: int) -> dict:
        """With several processes, each one's step: a row shows they stayed in lockstep."""
        return {"world_size": self.world, "rank_steps": self._gather_steps(step)} if self.world > 1 else {}

    @contextmanager
    def _ctrl_c(self):
        previous = signal.getsignal(signal.SIGINT)
        signal.signal(signal.SIGINT, self._on_sigint)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def _resume(self, ckpt: Path, opt, sched) -> None:
        self.state = checkpoint.load(ckpt, self.acc.unwrap_model(self.model), opt, self.scaler)
        self.saved_step = self.state.step
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(self.state.step):
                sched.step()
        if self.main:
            self.console.print(f"resumed from {ckpt.name} (step {self.state.step}/{self.total})")

    def _ship(self) -> None:
        """Leave in the model the weights the stage saves: with a validation split those of the best
        validation loss (reloaded from their checkpoint, which rotation keeps), else the last step's."""
        st = self.state
        st.shipped_step, st.shipped_weights = st.step, "last"
        if not self.val_ex or st.best_step is None:
            return
        best = checkpoint.step_path(self.ckpt_root, st.best_step)
        if st.best_step != st.step and self.main:  # only the main process saves the model
            if not (best / "trainable.safetensors").is_file():
                self.console.print(f"[yellow]warning: the best checkpoint {best.name} is missing; the last step's "
                                   f"weights (step {st.step}) ship instead[/yellow]")
                return
            checkpoint.load_weights(best, self.acc.unwrap_model(self.model))
        st.shipped_step, st.shipped_weights = st.best_step, "best"

    def _diverged(self, e: Diverged) -> LuyenError:
        """The error for a divergence, naming only a checkpoint whose weights are finite and bounded."""
        good = checkpoint.latest_good(self.ckpt_root, self.bound)
        if good is None:
            return LuyenError(f"training diverged at step {e.step}: {e}; no checkpoint with sound weights exists",
                              field="train.lr", fix="lower train.lr (or raise train.warmup_ratio) and start over "
                              "(--overwrite)")
        return LuyenError(f"training diverged at step {e.step}: {e}; the last good checkpoint {good.name} is kept "
                          f"(finite weights, max |w| within {self.bound:.3g})", field="train.lr",
                          fix="lower train.lr (or raise train.warmup_ratio) and start over (--overwrite): a --resume "
                          "with the same settings repeats the same steps")

    @property
    def bound(self) -> float:
        return checkpoint.weight_bound(self.state.start_weight_max or 0.0)

    def _weights_max(self, params) -> float:
        """max |w| over the trainable weights of every process (inf when any is not finite)."""
        big = checkpoint.max_abs(params)
        if self.world > 1:
            t = torch.tensor(big, device=self.acc.device)
            torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
            big = float(t)
        return big

    def _on_sigint(self, signum, frame):
        if self.stop_requested:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.stop_requested = True
        if self.main:
            self.console.print("\nCtrl-C: finishing this step, saving a checkpoint, then stopping (Ctrl-C again to abort)")

    def _step(self, model, params, opt) -> tuple[float, int, int, float, dict]:
        """One optimiser step: this process's micro-batches, their gradients summed (normalised by the
        whole step's loss-bearing tokens, or pairs), clipped and applied. Returns loss, tokens, loss tokens,
        grad norm and the objective's statistics (rewards of a preference objective)."""
        acc = self.acc
        batches, norm = self._micro_batches()
        model.train()
        total_loss = torch.zeros(())
        n_tok = n_loss = 0
        sums: dict[str, float] = {}
        for a, batch in enumerate(batches):
            last = a == len(batches) - 1
            with acc.no_sync(model) if (self.world > 1 and not last) else nullcontext():
                if batch is None:
                    if self.world > 1 and last:  # join the gradient all-reduce with a zero contribution
                        (sum(p.sum() for p in params) * 0.0).backward()
                    continue
                s, k, stats = self.objective.loss(model, self.head, batch, self.tc.logit_chunk, acc.device,
                                                  self.autocast, self.state.objective)
                scaled = s * (self.world / norm)
                acc.backward(self.scaler.scale(scaled) if self.scaler else scaled)
            total_loss += s.detach().float().cpu()
            n_loss += k
            for key, v in stats.items():
                sums[key] = sums.get(key, 0.0) + v
            n_tok += int(batch["attention_mask"].sum()) if "attention_mask" in batch else batch["input_ids"].numel()
        if self.world > 1:
            total_loss = self._all_sum(total_loss)
            n_tok = int(self._all_sum(torch.tensor(float(n_tok))).item())
            n_loss = int(self._all_sum(torch.tensor(float(n_loss))).item())
            sums = self._all_sum_dict(sums)
        loss = float(total_loss) / norm
        self.objective.end_step(sums, norm, self.state.objective)
        stats = self.objective.summarise(sums, norm) if sums else {}
        return loss, n_tok, n_loss, self._update(opt, params, loss), stats

    def _micro_batches(self) -> tuple[list, int]:
        """This process's micro-batches of the current step (None where its share is empty) and the number
        of loss-bearing tokens in the whole step, over every process (known from the plan, or for a masked
        LM counted after masking)."""
        epoch, idx = divmod(self.state.step, self.steps_per_epoch)
        micro_all = self.plan(epoch)[idx]
        batches = []
        for a in range(self.tc.grad_accum):
            mb = micro_all[a * self.world + self.rank]
            batch = self.objective.collate([self.train_ex[i] for i in mb], self.pad_id, self.tc.packing) if mb else None
            if batch is not None and self.masker is not None:
                g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.state.step * 1009 + a * self.world + self.rank)
                batch["input_ids"], batch["targets"] = self.masker(batch["input_ids"], g)
            batches.append(batch)
        if self.masker is None:
            return batches, max(sum(self.train_ex[i].n_loss for mb in micro_all for i in mb), 1)
        local = sum(int((b["targets"] != IGNORE).sum()) for b in batches if b is not None)
        return batches, max(int(self._all_sum(torch.tensor(float(local))).item()), 1)

    def _update(self, opt, params, loss: float) -> float:
        """Clip and apply the summed gradients; returns the gradient norm. A non-finite loss or gradient
        is a divergence (fp16 loss scaling overflows now and then by design: its scaler skips that step)."""
        if self.scaler:
            self.scaler.unscale_(opt)
        gnorm = float(self.acc.clip_grad_norm_(params, self.tc.max_grad_norm or float("inf")))
        if not math.isfinite(loss) or (not math.isfinite(gnorm) and not self.scaler):
            opt.zero_grad(set_to_none=True)
            raise Diverged(f"the loss is {loss}" if not math.isfinite(loss) else f"the gradient norm is {gnorm}",
                           self.state.step + 1)
        if self.scaler:
            self.scaler.step(opt)
            self.scaler.update()
        else:
            opt.step()
        opt.zero_grad(set_to_none=True)
        return gnorm

    def _all_sum(self, t: torch.Tensor) -> torch.Tensor:
        if self.world == 1:
            return t
        t = t.to(self.acc.device)
        torch.distributed.all_reduce(t)
        return t.cpu()

    def _all_sum_dict(self, sums: dict) -> dict:
        keys = sorted(sums)  # every process has the same statistics (one objective)
        total = self._all_sum(torch.tensor([sums[k] for k in keys], dtype=torch.float64))
        return dict(zip(keys, total.tolist()))

    def _gather_steps(self, step: int) -> list[int]:
        out = [torch.zeros((), dtype=torch.long) for _ in range(self.world)]
        torch.distributed.all_gather(out, torch.tensor(step, dtype=torch.long))
        return [int(x) for x in out]

    @torch.no_grad()
    def evaluate(self, model, examples: list[Example] | None = None) -> float:
        """Mean loss over the validation examples, per token (or pair); every process sees them all. The
        objective's statistics over them are left in `val_stats`."""
        examples = self.val_ex if examples is None else examples
        model.eval()
        steps = plan_epoch([len(e) for e in examples], batch_size=self.tc.batch_size, grad_accum=1, world=1,
                           seed=0, epoch=0, shuffle=False)
        total, count, sums = 0.0, 0, {}
        for step in steps:
            for mb in step:
                if not mb:
                    continue
                batch = self.objective.collate([examples[i] for i in mb], self.pad_id, self.tc.packing)
                if self.masker is not None:
                    batch["input_ids"], batch["targets"] = self.masker(batch["input_ids"], torch.Generator().manual_seed(mb[0]))
                s, k, stats = self.objective.loss(model, self.head, batch, self.tc.logit_chunk, self.acc.device,
                                                  self.autocast, self.state.objective)
                total += float(s)
                count += k
                for key, v in stats.items():
                    sums[key] = sums.get(key, 0.0) + v
        model.train()
        self.val_stats = self.objective.summarise(sums, count) if sums else {}
        return total / max(count, 1)

    def save(self, opt) -> None:
        """Checkpoint this step (keeping the last save_total_limit and the best); refuses exploded weights."""
        st = self.state
        big = self._weights_max([p for p in self.model.parameters() if p.requires_grad])  # every process agrees
        if not big <= self.bound:
            raise Diverged(f"the weights exploded (max |w| {big:.3g}, a sound run stays below {self.bound:.3g})", st.step)
        if self.world > 1:
            self.acc.wait_for_everyone()
        if self.main:
            checkpoint.save(self.ckpt_root, model=self.acc.unwrap_model(self.model), optimizer=opt, state=st,
                            keep=self.tc.save_total_limit, protect=st.best_step, bound=self.bound, scaler=self.scaler)
        self.saved_step = st.step
        if self.world > 1:
            self.acc.wait_for_everyone()


def _prefixed(prefix: str, stats: dict) -> dict:
    return {prefix + k: v for k, v in stats.items()}


def seed_everything(seed: int) -> None:
    import random
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
