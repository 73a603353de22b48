"""luyen: turn an open language model plus your own data into a specialised model you can trust.

    import luyen
    cfg = luyen.load_config("configs/data.yaml")
    luyen.check(["examples/data/vi_ai_qa.jsonl"], cfg)            # preflight report (dict)
    luyen.prepare(cfg, ["examples/data/vi_ai_qa.jsonl"], "runs/x") # train/val/test + manifest
    luyen.train(cfg, "runs/x", "runs/x-train")                      # trained model + manifest
    luyen.load("runs/x-train").chat([{"role": "user", "content": "Học máy là gì?"}]).text
    luyen.load("runs/intents/train").predict([{"text": "Tôi muốn đổi vé"}])  # a task head: label + probabilities
"""
from luyen.config import RunConfig, load_config
from luyen.errors import LuyenError

__version__ = "0.1.0"
__all__ = ["RunConfig", "load_config", "LuyenError", "check", "prepare", "train", "load"]


def check(inputs, cfg=None, **kw):
    from luyen.data.stage import check as _check
    return _check(inputs, cfg or RunConfig(), **kw)


def prepare(cfg, inputs, out_dir, **kw):
    from pathlib import Path
    from luyen.data.stage import run
    return run(cfg, inputs, Path(out_dir), **kw)


def train(cfg, data_dir, out_dir, **kw):
    from luyen.train.stage import run
    return run(cfg, data_dir, out_dir, **kw)


def load(name, **kw):
    """A trained task head (`.predict([...])`: classification, extractive QA, seq2seq), else a generation
    engine over a trained run, a model folder, an adapter or a preset (`.chat([...])`)."""
    from luyen.tasks.predictor import Predictor, head_folder
    if head_folder(name) is not None:
        return Predictor.load(name, **kw)
    from luyen.infer.engine import Engine
    return Engine.load(str(name), **kw)
