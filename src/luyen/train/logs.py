"""What a training run shows while it runs: metrics.jsonl (continued across resumes), TensorBoard
events, curves.png, and a progress bar (plain lines when not on a terminal). Kept out of the loop so
train/loop.py is the loop.

    logger = MetricsLogger(out, enabled=True)
    logger.log({"step": 1, "loss": 2.3})
    plot_curves(out / "metrics.jsonl", out / "curves.png")
"""
from __future__ import annotations

import json
import time
from pathlib import Path


class MetricsLogger:
    """metrics.jsonl (appended, so a resumed run continues it), TensorBoard events, and a PNG of the curves."""

    def __init__(self, out: Path, enabled: bool, start_step: int = 0):
        self.enabled, self.path = enabled, out / "metrics.jsonl"
        self.tb = None
        if not enabled:
            return
        if self.path.exists():  # drop rows a killed run logged after its last checkpoint
            rows = [r for r in _read_jsonl(self.path) if r["step"] <= start_step] if start_step else []
            self.path.write_text("".join(json.dumps(r) + "\n" for r in rows))
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


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line cut by a kill
    return rows


def plot_curves(metrics: Path, png: Path) -> None:
    """Train and validation loss and perplexity against step, written atomically."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    rows = _read_jsonl(metrics)
    if not rows:
        return
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, key, label in ((axes[0], "loss", "loss"), (axes[1], "perplexity", "perplexity")):
        tr = [(r["step"], r[key]) for r in rows if key in r]
        va = [(r["step"], r[f"val_{key}"]) for r in rows if f"val_{key}" in r]
        if tr:
            ax.plot(*zip(*tr), label=f"train {label}", lw=1)
        if va:
            ax.plot(*zip(*va), "o-", label=f"validation {label}")
        ax.set_xlabel("step")
        ax.set_title(label)
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
