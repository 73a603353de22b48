"""The training stage end to end on tiny random models: outputs, exactness, failure handling."""
from __future__ import annotations

import errno
import json
import math

import pytest
import torch
from safetensors.torch import load_file

from luyen.config import load_config
from luyen.errors import LuyenError
from luyen.train import checkpoint
from luyen.train.stage import run


def cfg(model_dir, *extra):
    return load_config(None, [f"model.name={model_dir}", "data.max_length=256", "train.batch_size=4",
                              "train.max_steps=6", *extra])


def rows(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_lora_run_writes_a_peft_adapter_tokenizer_metrics_curves_and_manifest(tmp_path, tiny_model_dir, tiny_data_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer
    out = tmp_path / "run"
    manifest = run(cfg(tiny_model_dir, "train.eval_steps=3", "train.lr=5e-3"), tiny_data_dir, out)
    m = manifest["metrics"]
    assert m["steps"] == 6 and math.isfinite(m["final_train_loss"]) and m["best_val_loss"] is not None
    assert manifest["wall_time_s"] >= m["actual"]["loop_seconds"]  # the whole stage, not the writing of its files
    model_dir = out / "model"
    assert (model_dir / "adapter_model.safetensors").is_file() and (model_dir / "adapter_config.json").is_file()
    assert not [p for p in out.rglob("*") if p.suffix in (".bin", ".pt", ".pth", ".pkl")]  # no pickle anywhere
    tok = AutoTokenizer.from_pretrained(model_dir)
    assert tok.chat_template and "<|im_start|>" in tok.chat_template
    gen = json.loads((model_dir / "generation_config.json").read_text())
    assert gen["eos_token_id"] == tok.eos_token_id or tok.eos_token_id in gen["eos_token_id"]
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    ids = torch.tensor([[5, 6, 7, 8]])
    before = base(ids).logits
    tuned = PeftModel.from_pretrained(base, model_dir)
    assert not torch.allclose(before, tuned(ids).logits)
    r = rows(out)
    assert [x["step"] for x in r] == [0, 1, 2, 3, 4, 5, 6]
    assert "loss" not in r[0] and r[0]["val_loss"] == pytest.approx(m["initial_val_loss"], rel=1e-5)
    assert {"loss", "perplexity", "lr", "grad_norm", "tokens_per_s"} <= set(r[1])
    assert [x["step"] for x in r if "val_loss" in x] == [0, 3, 6]
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert json.loads((out / "manifest.json").read_text())["stage"] == "train"
    assert "model/adapter_model.safetensors" in manifest["outputs"]


def test_the_peak_memory_in_the_manifest_is_the_stages_own(tmp_path, tiny_model_dir, tiny_data_dir):
    """`luyen run` trains in the process that prepared the data and built the index: a peak reached before
    the stage (here 1.5 GB, touched and freed) is not the training's."""
    import numpy as np

    from luyen.models.estimate import peak_memory_gb
    big = np.ones(int(1.5e9) // 8)
    del big
    before = peak_memory_gb()
    m = run(cfg(tiny_model_dir, "train.max_steps=2"), tiny_data_dir, tmp_path / "run")["metrics"]
    assert 0 < m["actual"]["peak_rss_gb"] < before - 1.0, (m["actual"], before)


def test_full_fine_tuning_saves_safetensors_weights_that_reload(tmp_path, tiny_model_dir, tiny_data_dir):
    from transformers import AutoModelForCausalLM
    out = tmp_path / "full"
    run(cfg(tiny_model_dir, "train.method=full", "train.lr=1e-3", "train.max_steps=3"), tiny_data_dir, out)
    assert (out / "model" / "model.safetensors").is_file()
    tuned = AutoModelForCausalLM.from_pretrained(out / "model")
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    changed = [n for (n, a), (_, b) in zip(tuned.named_parameters(), base.named_parameters()) if not torch.equal(a, b)]
    assert changed


def test_gradient_accumulation_is_exact(tmp_path, tiny_model_dir, tiny_data_dir):
    common = ["train.dtype=float32", "train.lora.dropout=0", "train.max_steps=3", "train.lr=1e-2"]
    a, b = tmp_path / "b8", tmp_path / "b2x4"
    run(cfg(tiny_model_dir, "train.batch_size=8", "train.grad_accum=1", *common), tiny_data_dir, a)
    run(cfg(tiny_model_dir, "train.batch_size=2", "train.grad_accum=4", *common), tiny_data_dir, b)
    la, lb = [r["loss"] for r in rows(a) if "loss" in r], [r["loss"] for r in rows(b) if "loss" in r]
    assert all(abs(x - y) / x < 1e-5 for x, y in zip(la, lb)) and len(la) == 3
    wa = load_file(str(a / "model" / "adapter_model.safetensors"))
    wb = load_file(str(b / "model" / "adapter_model.safetensors"))
    assert wa.keys() == wb.keys()
    assert all(torch.allclose(wa[k], wb[k], atol=1e-6, rtol=1e-4) for k in wa)
    assert any(float(wa[k].abs().max()) > 0 for k in wa if "lora_B" in k)  # the update happened


@pytest.mark.parametrize("arch_fixture", ["tiny_model_dir", "tiny_gemma_tokenizer_dir"])
def test_a_packed_example_has_the_same_loss_as_alone(request, arch_fixture):
    from transformers import AutoModelForCausalLM

    from luyen.train.batches import IGNORE, collate, shifted
    from luyen.train.head import HiddenHead, loss_sum
    model = AutoModelForCausalLM.from_pretrained(request.getfixturevalue(arch_fixture), dtype=torch.float32).eval()
    head = HiddenHead(model)
    g = torch.Generator().manual_seed(0)
    exs = []
    for n in (9, 14, 6):
        ids = torch.randint(6, 300, (n,), generator=g).tolist()
        exs.append(shifted(ids, [i >= n // 2 for i in range(n)]))
    cpu = torch.device("cpu")
    with torch.no_grad():
        alone = [float(loss_sum(model, head, collate([e], 0), 64, cpu)[0]) for e in exs]
        packed = collate(exs, 0, packing=True)
        for i in range(len(exs)):
            only = dict(packed)
            start = sum(len(e) for e in exs[:i])
            keep = torch.full_like(packed["targets"], IGNORE)
            keep[0, start:start + len(exs[i])] = packed["targets"][0, start:start + len(exs[i])]
            only["targets"] = keep
            assert float(loss_sum(model, head, only, 64, cpu)[0]) == pytest.approx(alone[i], rel=1e-5)
        padded = collate(exs, 0)
        assert float(loss_sum(model, head, padded, 64, cpu)[0]) == pytest.approx(sum(alone), rel=1e-5)


def test_packing_trains_exactly_like_padding(tmp_path, tiny_model_dir, tiny_data_dir):
    # Each packed example attends only to itself and predicts its own next tokens, so a packed run follows the
    # padded run step for step. Measured (8 full fine-tuning steps, lr 5e-3): step 0's validation loss and step 1's
    # loss equal bit for bit, later steps within 2e-5 (summation order), validation falls 6.14 -> 5.27. Packed
    # examples that see each other (positions not restarting) are 1e-4 off at step 0 and 1e-3 at step 3;
    # targets shifted by one position 2e-3 at step 0 and 3e-2 later (and the loss falls faster: the model copies).
    common = ["train.method=full", "train.lr=5e-3", "train.max_steps=8", "train.eval_steps=4", "train.dtype=float32"]
    m = run(cfg(tiny_model_dir, "train.packing=true", *common), tiny_data_dir, tmp_path / "p")["metrics"]
    run(cfg(tiny_model_dir, "train.packing=false", *common), tiny_data_dir, tmp_path / "pad")
    packed, padded = rows(tmp_path / "p"), rows(tmp_path / "pad")
    assert m["best_val_loss"] < m["initial_val_loss"] - 0.5 and packed[-1]["loss"] < packed[1]["loss"] - 0.5
    assert [r["step"] for r in packed] == [r["step"] for r in padded] == list(range(9))
    for a, b in zip(packed, padded):
        for key in ("loss", "val_loss"):
            if key in b:
                assert a[key] == pytest.approx(b[key], rel=1e-5 if a["step"] <= 1 else 1e-4), (a["step"], key)


def recording_saves(monkeypatch):
    """Record every trainable-weights file a checkpoint writes, by step, as it is written."""
    real, written = checkpoint.save_file, {}

    def record(tensors, path, *a, **k):
        if path.endswith("trainable.safetensors"):  # .../.step-000002.<random>.tmp/trainable.safetensors
            written[int(path.split("step-")[1][:6])] = {n: t.clone() for n, t in tensors.items()}
        return real(tensors, path, *a, **k)

    monkeypatch.setattr(checkpoint, "save_file", record)
    return written


def sound(weights: dict) -> bool:
    """Finite and of the tiny model's scale (its weights start below 1 and a sound run moves them little)."""
    return all(torch.isfinite(w).all() and float(w.abs().max()) < 100 for w in weights.values())


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(tmp_path, tiny_model_dir, tiny_data_dir,
                                                                                 monkeypatch):
    written = recording_saves(monkeypatch)
    blowup = ["train.method=full", "train.lr=1e20", "train.max_grad_norm=0", "train.save_steps=1", "train.dtype=float32"]
    # lr 1e20 from the first step: step 1's weights are ~1e20; they are not saved and no checkpoint is recommended
    out = tmp_path / "nan"
    with pytest.raises(LuyenError, match=r"diverged at step 1: the weights exploded .*no checkpoint with sound weights "
                                         r"exists.*lower train.lr"):
        run(cfg(tiny_model_dir, *blowup, "train.warmup_ratio=0"), tiny_data_dir, out)
    assert written == {} and not list(out.glob("checkpoints/step-*")) and not (out / "manifest.json").exists()
    # a warmup whose first step has lr 0: step 1 is sound and saved, step 2 blows up and is refused
    out = tmp_path / "warm"
    with pytest.raises(LuyenError, match=r"diverged at step 2: the weights exploded .*step-000001 is kept") as e:
        run(cfg(tiny_model_dir, *blowup, "train.warmup_ratio=0.5"), tiny_data_dir, out)
    recommended = out / "checkpoints" / str(e.value).split("checkpoint ")[1].split()[0]
    assert recommended.name == "step-000001" and list(written) == [1]
    weights = load_file(str(recommended / "trainable.safetensors"))
    assert sound(weights) and weights.keys() == written[1].keys()
    assert all(torch.equal(weights[n], written[1][n]) for n in weights)  # as saved before the blow-up
    assert all(sound(load_file(str(c / "trainable.safetensors"))) for c in (out / "checkpoints").glob("step-*"))
    assert not (out / "manifest.json").exists()


def adapter_as_trainable(model_dir) -> dict:
    """A saved PEFT adapter under the names the model's trainable parameters (and checkpoints) carry."""
    return {n.replace(".weight", ".default.weight"): t
            for n, t in load_file(str(model_dir / "adapter_model.safetensors")).items()}


def test_early_stopping_ships_the_best_weights_and_keeps_their_checkpoint(tmp_path, tiny_model_dir, tiny_data_dir,
                                                                          monkeypatch):
    from luyen.train.loop import Trainer
    states = []
    real_run = Trainer.run
    monkeypatch.setattr(Trainer, "run", lambda self, resume=None: states.append(real_run(self, resume)) or states[-1])
    out = tmp_path / "best"
    # a huge constant lr: validation improves, then gets worse; checkpoints only where validation improves (the
    # schedule never saves) and at the end, keeping 1 + the best
    m = run(cfg(tiny_model_dir, "train.max_steps=40", "train.eval_steps=1", "train.early_stopping=2", "train.lr=0.5",
                "train.scheduler=constant", "train.warmup_ratio=0", "train.save_steps=1000",
                "train.save_total_limit=1"), tiny_data_dir, out)["metrics"]
    best, last = m["best_step"], m["steps"]
    vals = {r["step"]: r["val_loss"] for r in rows(out) if "val_loss" in r and r["step"] > 0}
    assert last < 40 and best == last - 2 and vals[best] == min(vals.values()) < vals[last]
    assert states[0].shipped_step == best and states[0].shipped_weights == "best"
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [f"step-{best:06d}", f"step-{last:06d}"]
    shipped = adapter_as_trainable(out / "model")
    at = {s: load_file(str(out / "checkpoints" / f"step-{s:06d}" / "trainable.safetensors")) for s in (best, last)}
    assert shipped.keys() == at[best].keys()
    assert all(torch.equal(shipped[n], at[best][n]) for n in shipped)
    assert not all(torch.equal(shipped[n], at[last][n]) for n in shipped)


def test_without_validation_the_last_weights_ship(tmp_path, tiny_model_dir, monkeypatch):
    from conftest import prepare_data, write_short_qa

    from luyen.train.loop import Trainer
    data = prepare_data(tiny_model_dir, tmp_path / "data", write_short_qa(tmp_path / "qa.jsonl", n=40),
                        "data.split.train=0.9", "data.split.val=0", "data.split.test=0.1")
    states = []
    real_run = Trainer.run
    monkeypatch.setattr(Trainer, "run", lambda self, resume=None: states.append(real_run(self, resume)) or states[-1])
    out = tmp_path / "noval"
    m = run(cfg(tiny_model_dir, "train.max_steps=3", "train.lr=5e-3", "train.save_steps=1"), data, out)["metrics"]
    assert m["best_step"] is None and states[0].shipped_step == 3 and states[0].shipped_weights == "last"
    last = load_file(str(out / "checkpoints" / "step-000003" / "trainable.safetensors"))
    shipped = adapter_as_trainable(out / "model")
    assert shipped.keys() == last.keys() and all(torch.equal(shipped[n], last[n]) for n in last)


def test_a_full_disk_during_a_save_keeps_the_previous_checkpoint(tmp_path, tiny_model_dir, tiny_data_dir, monkeypatch):
    out = tmp_path / "full_disk"
    real = checkpoint.save_file
    calls = {"n": 0}

    def failing(tensors, path, *a, **k):
        calls["n"] += 1
        if calls["n"] > 3:  # the second checkpoint's first file: the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(tensors, path, *a, **k)

    monkeypatch.setattr(checkpoint, "save_file", failing)
    c = cfg(tiny_model_dir, "train.save_steps=2", "train.max_steps=6")
    with pytest.raises(LuyenError, match="disk is full; the previous checkpoint step-000002 is intact"):
        run(c, tiny_data_dir, out)
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step-000002"]  # no half-written folder
    monkeypatch.setattr(checkpoint, "save_file", real)
    m = run(c, tiny_data_dir, out, resume=True)
    assert m["metrics"]["steps"] == 6


def test_output_folder_rules(tmp_path, tiny_model_dir, tiny_data_dir):
    out = tmp_path / "rules"
    c = cfg(tiny_model_dir, "train.max_steps=2")
    run(c, tiny_data_dir, out)
    with pytest.raises(LuyenError, match="holds a finished run"):
        run(c, tiny_data_dir, out)
    (out / "manifest.json").unlink()
    with pytest.raises(LuyenError, match="holds an unfinished run.*--resume"):
        run(c, tiny_data_dir, out)
    with pytest.raises(LuyenError, match="holds a different run"):
        run(cfg(tiny_model_dir, "train.max_steps=2", "train.lr=0.1"), tiny_data_dir, out, resume=True)
    m = run(cfg(tiny_model_dir, "train.max_steps=2", "train.lr=0.1"), tiny_data_dir, out, overwrite=True)
    assert m["metrics"]["lr"] == 0.1
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(LuyenError, match="not a luyen training run"):
        run(c, tiny_data_dir, other)
    assert (other / "notes.txt").read_text() == "mine"


def test_early_stopping_and_schedulers(tmp_path, tiny_model_dir, tiny_data_dir):
    out = tmp_path / "es"
    m = run(cfg(tiny_model_dir, "train.max_steps=40", "train.eval_steps=1", "train.early_stopping=1",
                "train.lr=0.5", "train.scheduler=constant", "train.warmup_ratio=0"), tiny_data_dir, out)
    assert m["metrics"]["steps"] < 40  # a huge constant lr stops improving quickly
    lrs = [r["lr"] for r in rows(out) if "lr" in r]
    assert len(set(lrs)) == 1
    out2 = tmp_path / "cos"
    run(cfg(tiny_model_dir, "train.max_steps=10", "train.scheduler=cosine", "train.warmup_ratio=0.2"), tiny_data_dir, out2)
    lrs = [r["lr"] for r in rows(out2) if "lr" in r]
    assert lrs[0] < lrs[1] and lrs[-1] < lrs[2]


def test_a_trained_adapter_loads_over_its_base_and_is_refused_over_another(tmp_path, tiny_model_dir, tiny_data_dir):
    from conftest import make_tiny_model

    from luyen.models.trained import load_trained
    out = tmp_path / "adapter"
    run(cfg(tiny_model_dir, "train.max_steps=2"), tiny_data_dir, out)
    model, tok = load_trained(out)
    assert hasattr(model, "peft_config") and tok.chat_template
    other = make_tiny_model(tmp_path / "gpt2", arch="gpt2")
    with pytest.raises(LuyenError, match=r"trained on a different base .*model_type llama vs gpt2"):
        load_trained(out, base=str(other))


def test_pickle_only_model_folders_are_refused(tmp_path, tiny_model_dir):
    import shutil

    from luyen.models.resolve import load_model
    folder = tmp_path / "pickled"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    with pytest.raises(LuyenError, match="only pickle weights"):
        load_model(str(folder))


def test_a_run_whose_examples_carry_no_loss_fails_before_training(tmp_path, tiny_model_dir, tiny_data_dir):
    user_only = "{% for m in messages %}{% if m['role'] == 'user' %}{{ m['content'] }}{% endif %}{% endfor %}"
    c = cfg(tiny_model_dir)
    c.model.chat_template = user_only
    with pytest.raises(LuyenError, match=r"train.jsonl: \d+ of \d+ training examples have no loss-bearing token"):
        run(c, tiny_data_dir, tmp_path / "noloss")
    assert not (tmp_path / "noloss" / "checkpoints").exists()


def test_a_run_that_cannot_fit_in_memory_fails_before_training(tmp_path, tiny_model_dir, tiny_data_dir, monkeypatch):
    from luyen.train import preflight
    monkeypatch.setattr(preflight, "free_memory", lambda device: 1_000_000)
    with pytest.raises(LuyenError, match=r"needs about .* GB of (GPU )?memory but 0.0 GB is free.*gradient_checkpointing"):
        run(cfg(tiny_model_dir), tiny_data_dir, tmp_path / "oom")
    assert not (tmp_path / "oom" / "checkpoints").exists()


def test_continued_pretraining_on_raw_text(tmp_path, tiny_model_dir):
    from conftest import prepare_data
    src = tmp_path / "corpus.txt"
    src.write_text("\n\n".join(f"Đoạn văn số {i} nói về học máy và dữ liệu huấn luyện." for i in range(60)),
                   encoding="utf-8")
    data = prepare_data(tiny_model_dir, tmp_path / "data", src)
    out = tmp_path / "cpt"
    m = run(load_config(None, [f"model.name={tiny_model_dir}", "data.max_length=64", "train.method=full",
                               "train.batch_size=2", "train.max_steps=6", "train.lr=1e-3"]), data, out)
    assert m["metrics"]["lr"] == 1e-3 and (out / "model" / "model.safetensors").is_file()
    assert m["metrics"]["loss_tokens"] > 0.9 * m["metrics"]["train_tokens"]  # raw text: (almost) every token is a target


def test_multi_turn_chats_learn_every_assistant_turn_and_its_end(tiny_model_dir):
    from transformers import AutoTokenizer

    from luyen.data.template import resolve_chat_template
    from luyen.train.batches import IGNORE, encode
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    chat = {"kind": "chat", "messages": [{"role": "system", "content": "Be brief."},
                                         {"role": "user", "content": "hello"}, {"role": "assistant", "content": "one"},
                                         {"role": "user", "content": "again"}, {"role": "assistant", "content": "two"}]}
    (ex,), stats = encode([chat], tok, resolve_chat_template(tok), 256)
    learned = [t for t in ex.targets.tolist() if t != IGNORE]
    text = tok.decode(learned)
    assert "one" in text and "two" in text and "hello" not in text and "again" not in text
    assert learned.count(tok.eos_token_id) == 2  # each assistant turn ends with EOS, and EOS is learned
    assert stats.no_loss == 0


def test_gradient_checkpointing_and_keep_last_k_checkpoints(tmp_path, tiny_model_dir, tiny_data_dir):
    out = tmp_path / "gc"
    m = run(cfg(tiny_model_dir, "train.gradient_checkpointing=true", "train.save_steps=1", "train.save_total_limit=2",
                "train.max_steps=5"), tiny_data_dir, out)
    assert math.isfinite(m["metrics"]["final_train_loss"])
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-000004", "step-000005"]
