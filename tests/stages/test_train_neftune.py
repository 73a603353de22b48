"""NEFTune (train.neftune_alpha) through the training stage on a tiny model: noise reaches the training
steps, never validation, and is gone from the model that ships; preference and retriever runs refuse it."""
from __future__ import annotations

import json

import pytest
import torch

from luyen.config import load_config
from luyen.errors import LuyenError
from luyen.train.stage import run


def cfg(model_dir, *extra):
    return load_config(None, [f"model.name={model_dir}", "data.max_length=256", "train.batch_size=4",
                              "train.max_steps=3", "train.eval_steps=3", "train.lr=5e-3", *extra])


def rows(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("method", ["lora", "full"])
def test_noise_changes_training_steps_but_not_validation_and_leaves_with_the_loop(tmp_path, tiny_model_dir,
                                                                                  tiny_data_dir, method, monkeypatch):
    from luyen.train import loop
    kept = []  # the model each run trains, to look at its embeddings after the loop
    trainer_run = loop.Trainer.run

    def run_and_keep(self, *a, **kw):
        kept.append(self.acc.unwrap_model(self.model))
        return trainer_run(self, *a, **kw)
    monkeypatch.setattr(loop.Trainer, "run", run_and_keep)
    run(cfg(tiny_model_dir, f"train.method={method}"), tiny_data_dir, tmp_path / "clean")
    run(cfg(tiny_model_dir, f"train.method={method}", "train.neftune_alpha=5"), tiny_data_dir, tmp_path / "noisy")
    clean, noisy = rows(tmp_path / "clean"), rows(tmp_path / "noisy")
    # step 0's validation runs in eval mode: identical; the first training step's loss sees the noise
    assert noisy[0]["val_loss"] == clean[0]["val_loss"]
    assert noisy[1]["loss"] != pytest.approx(clean[1]["loss"], rel=1e-6, abs=0)
    embeddings = kept[1].get_input_embeddings()
    assert not embeddings._forward_hooks and not hasattr(embeddings, "neftune_noise_alpha")
    kept[1].train()  # no hook left: even in training mode the embeddings come out clean
    ids = torch.tensor([[5, 6, 7]])
    assert torch.equal(embeddings(ids), embeddings(ids))


def test_the_noise_is_uniform_of_the_documented_size_in_training_steps_only(tmp_path, tiny_model_dir, tiny_data_dir,
                                                                          monkeypatch):
    import transformers.integrations.neftune as neftune
    seen = []  # (the embeddings' output, what the hook made of it, training mode) per forward pass
    hook = neftune.neftune_post_forward_hook

    def spy(module, args, output):
        noised = hook(module, args, output)
        seen.append((output.detach().clone(), noised.detach().clone(), module.training))
        return noised
    monkeypatch.setattr(neftune, "neftune_post_forward_hook", spy)
    run(cfg(tiny_model_dir, "train.method=full", "train.neftune_alpha=5"), tiny_data_dir, tmp_path / "run")
    training = [(clean, noised) for clean, noised, mode in seen if mode]
    assert training and len(training) < len(seen)  # the validation passes went through the hook too
    for clean, noised in training:
        bound = 5 / (noised.shape[1] * noised.shape[2]) ** 0.5
        gap = (noised - clean).abs()
        assert 0.5 * bound < gap.max() <= bound * 1.0001
    assert all(torch.equal(clean, noised) for clean, noised, mode in seen if not mode)


def test_preference_and_retriever_runs_refuse_it(tmp_path, tiny_model_dir, tiny_data_dir):
    with pytest.raises(LuyenError, match="neftune_alpha cannot be combined with method dpo"):
        run(cfg(tiny_model_dir, "train.method=dpo", "train.neftune_alpha=5"), tiny_data_dir, tmp_path / "dpo")
    assert not (tmp_path / "dpo").exists()
    with pytest.raises(LuyenError, match="does not apply to a retriever"):
        run(cfg(tiny_model_dir, "train.task=embedding", "train.neftune_alpha=5", "rag.documents=[x]"), None,
            tmp_path / "emb")


@pytest.mark.parametrize("task,arch", [("classification", "bert"), ("seq2seq", "t5")])
def test_head_training_is_noised_too(tmp_path, tiny_head_models, tiny_head_data, task, arch):
    def train(out, *extra):
        run(load_config(None, [f"model.name={tiny_head_models[arch]}", "data.max_length=256", "train.method=lora",
                               "train.batch_size=8", "train.max_steps=2", "train.eval_steps=2", *extra]),
            tiny_head_data[task], out)
        return rows(out)
    clean, noisy = train(tmp_path / "clean"), train(tmp_path / "noisy", "train.neftune_alpha=5")
    assert noisy[0]["val_loss"] == clean[0]["val_loss"]
    assert noisy[1]["loss"] != pytest.approx(clean[1]["loss"], rel=1e-6, abs=0)
