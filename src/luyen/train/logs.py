"""What a training run shows while it runs: metrics.jsonl (continued across resumes), TensorBoard
events, curves.png, a progress bar (plain lines when not on a terminal) and console notes. Kept out of
the loop so train/loop.py is the loop: it hands `RunLog` numbers, RunLog decides what they look like.

    with RunLog(out, console, tc, total=100, start=0, steps_per_epoch=25, enabled=True) as log:
        log.validation(0, 2.31)
        log.step(1, loss=2.3, lr=1e-4, grad_norm=0.9, tokens=512, seconds=0.4)
    plot_curves(out / "metrics.jsonl", out / "curves.png")
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

from luyen.train.cadence import log_due


class RunLog:
    """Everything the training loop reports: metrics rows (MetricsLogger), the progress bar (Progress)
    and notes on the console. Only the process with ``enabled`` writes or prints."""

    def __init__(self, out: Path, console, tc, *, total: int, start: int, steps_per_epoch: int, enabled: bool):
        self.console, self.tc, self.total, self.per_epoch, self.enabled = console, tc, total, steps_per_epoch, enabled
        self.metrics = MetricsLogger(out, enabled=enabled, start_step=start)
        self.progress = Progress(console, total, start, enabled=enabled)

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        self.progress.__exit__(*exc)
        self.metrics.close()

    def validation(self, step: int, val: float, **extra) -> None:
        """A validation row on its own (step 0: where training starts from)."""
        self.metrics.log({"step": step, **_val(val), **extra})

    def step(self, step: int, *, loss: float, lr: float, grad_norm: float, tokens: int, seconds: float,
             val: float | None = None, **extra) -> None:
        """One optimiser step: the progress bar, and its metrics row when the logging cadence says so."""
        row = {"step": step, "epoch": round(step / self.per_epoch, 4), "loss": round(loss, 6),
               "perplexity": round(math.exp(min(loss, 50)), 4), "lr": lr, "grad_norm": round(grad_norm, 6),
               "tokens": tokens, "tokens_per_s": round(tokens / seconds, 2), "total_steps": self.total, **extra, **(_val(val) if val is not None else {})}
        self.progress.update(step, loss, tokens / seconds)
        if log_due(step, self.tc, total=self.total, validated=val is not None):
            self.metrics.log(row)

    def note(self, text: str) -> None:
        if self.enabled:
            self.console.print(text, highlight=False)


def _val(val: float) -> dict:
    return {"val_loss": round(val, 6), "val_perplexity": round(math.exp(min(val, 50)), 4)}


class MetricsLogger:
    """metrics.jsonl (appended, so a resumed run continues it), TensorBoard events, and a PNG of the curves."""

    def __init__(self, out: Path, enabled: bool, start_step: int = 0):
        self.enabled, self.path = enabled, out / "metrics.jsonl"
        self.tb = None
        if not enabled:
            return
        if self.path.exists():  # drop rows a killed run logged after its last checkpoint
            rows = [r for r in read_jsonl(self.path) if r["step"] <= start_step] if start_step else []
            from luyen.manifest import atomic_write  # a kill now leaves the old log whole, never half of it
            atomic_write(self.path, "".join(json.dumps(r) + "\n" for r in rows))
        try:
            from torch.utils.tensorboard import SummaryWriter
            self.tb = SummaryWriter(str(out / "tensorboard"), purge_step=start_step + 1 if start_step else None)
        except ImportError:
            self.tb = None
        self.file = open(self.path, "a", encoding="utf-8")

    def log(self, row: dict) -> None:
        if not self.enabled:
            return
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()
        if self.tb is not None:
            for k, v in row.items():
                if k != "step" and isinstance(v, (int, float)):
                    self.tb.add_scalar(k.replace("val_", "val/") if k.startswith("val_") else f"train/{k}", v, row["step"])
        if "val_loss" in row:
            plot_curves(self.path, self.path.parent / "curves.png")

    def close(self) -> None:
        if self.enabled:
            self.file.close()
            if self.tb is not None:
                self.tb.close()
            if self.path.exists():
                plot_curves(self.path, self.path.parent / "curves.png")


def read_jsonl(path: Path) -> list[dict]:
    """The rows of a metrics file, up to a last line still being written (or cut by a kill); none if absent."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line cut by a kill
    return rows


def plot_curves(metrics: Path, png: Path) -> None:
    """Train and validation loss and perplexity (a preference objective: rewards of the chosen and rejected
    answers, reward accuracy and margin) against step, written atomically."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    rows = read_jsonl(metrics)
    if not rows:
        return
    rewards = any("rewards_chosen" in r for r in rows)  # a preference objective: its rewards instead of perplexity
    fig, axes = plt.subplots(1, 3 if rewards else 2, figsize=(15 if rewards else 10, 3.6))
    panels = ((axes[0], "loss", "loss"), (axes[1], "perplexity", "perplexity")) if not rewards else \
        ((axes[0], "loss", "loss"), (axes[1], "rewards_chosen", "reward, chosen"),
         (axes[1], "rewards_rejected", "reward, rejected"), (axes[2], "reward_accuracy", "reward accuracy"),
         (axes[2], "reward_margin", "reward margin"))
    for ax, key, label in panels:
        tr = [(r["step"], r[key]) for r in rows if key in r]
        va = [(r["step"], r[f"val_{key}"]) for r in rows if f"val_{key}" in r]
        if tr:
            ax.plot(*zip(*tr), label=f"train {label}", lw=1)
        if va:
            ax.plot(*zip(*va), "o-", label=f"validation {label}")
        ax.set_xlabel("step")
        ax.set_title(label if not rewards or key == "loss" else "rewards" if "rewards" in key else "accuracy, margin")
        if key == "perplexity":
            ax.set_yscale("log")
        ax.legend()
    fig.tight_layout()
    tmp = png.with_name(f".{png.name}.tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    tmp.replace(png)


class Progress:
    """A rich progress bar with loss, tokens/s and ETA; plain lines when not on a terminal."""

    def __init__(self, console, total: int, start: int, enabled: bool):
        self.console, self.total, self.enabled = console, total, enabled
        self.start, self.bar, self.every = start, None, max(1, total // 10)
        self.t0 = time.perf_counter()

    def __enter__(self):
        if self.enabled and self.console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn, TimeRemainingColumn
            self.bar = RichProgress(TextColumn("train"), BarColumn(), MofNCompleteColumn(),
                                    TextColumn("loss {task.fields[loss]:.4f}  {task.fields[tps]:.0f} tok/s"),
                                    TimeRemainingColumn(), console=self.console)
            self.bar.start()
            self.task = self.bar.add_task("train", total=self.total, completed=self.start, loss=float("nan"), tps=0.0)
        return self

    def update(self, step: int, loss: float, tps: float) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(self.task, completed=step, loss=loss, tps=tps)
        elif step % self.every == 0 or step == self.total:
            done = step - self.start
            eta = (time.perf_counter() - self.t0) / max(done, 1) * (self.total - step)
            self.console.print(f"step {step}/{self.total}  loss {loss:.4f}  {tps:.0f} tok/s  eta {eta:.0f}s",
                               highlight=False)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()
