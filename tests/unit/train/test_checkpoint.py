"""Checkpoints: what an exact resume restores (RNG, fp16 loss scaler), rotation that keeps the best,
and weights that are non-finite or exploded are never written nor recommended."""
from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from safetensors.torch import load_file

from luyen.train import checkpoint
from luyen.train.checkpoint import LoopState


def tiny(seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    model[1].bias.requires_grad_(False)  # frozen weights are not a checkpoint's business
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model(torch.randn(5, 4)).sum().backward()
    opt.step()
    return model, opt


def save(root, model, opt, step, **kw):
    state = kw.pop("state", None) or LoopState(step=step)
    return checkpoint.save(root, model=model, optimizer=opt, state=state, keep=kw.pop("keep", 5), **kw)


def test_the_loop_state_comes_back_whole(tmp_path):
    model, opt = tiny()
    state = LoopState(step=7, best_val=1.25, best_step=5, bad_evals=2, tokens=900, loss_tokens=300, train_seconds=3.5,
                      last_loss=1.5, initial_val=2.0, start_weight_max=0.7, shipped_step=5, shipped_weights="best")
    assert checkpoint.load(save(tmp_path, model, opt, 7, state=state), model, opt) == state
    assert checkpoint.latest(tmp_path).name == "step-000007"


def test_a_field_added_to_the_loop_state_survives_without_touching_checkpoint_code(tmp_path):
    # what a future loop adds (here: a second counter) is carried because the dataclass is saved whole
    Grown = dataclasses.make_dataclass("Grown", [("skipped_steps", int, 0), ("note", str, "")], bases=(LoopState,))
    model, opt = tiny()
    state = Grown(step=4, best_val=0.5, skipped_steps=3, note="after the warm-up")
    back = checkpoint.load(save(tmp_path, model, opt, 4, state=state), model, opt, state_type=Grown)
    assert back == state and back.skipped_steps == 3 and back.note == "after the warm-up"


def test_the_fp16_loss_scaler_comes_back(tmp_path):
    model, opt = tiny()
    scaler = torch.amp.GradScaler("cpu")
    scaler.load_state_dict({**scaler.state_dict(), "scale": 1024.0, "_growth_tracker": 7, "growth_interval": 50})
    ckpt = save(tmp_path, model, opt, 3, scaler=scaler)
    fresh = torch.amp.GradScaler("cpu")
    assert fresh.get_scale() == 65536.0  # the default it would restart from without the checkpoint
    checkpoint.load(ckpt, *tiny(1), fresh)
    got = fresh.state_dict()
    assert got["scale"] == 1024.0 and got["_growth_tracker"] == 7 and got["growth_interval"] == 50
    assert fresh.get_scale() == 1024.0


def test_no_scaler_no_scaler_state(tmp_path):
    model, opt = tiny()
    ckpt = save(tmp_path, model, opt, 1)
    assert "scaler" not in json.loads((ckpt / "state.json").read_text())
    checkpoint.load(ckpt, model, opt, torch.amp.GradScaler("cpu"))  # an old checkpoint: the scaler keeps its default


def test_rng_states_are_saved_per_device_and_restored(tmp_path):
    model, opt = tiny()
    torch.manual_seed(123)
    ckpt = save(tmp_path, model, opt, 1)
    saved = load_file(str(ckpt / "rng.safetensors"))
    cuda = sorted(k for k in saved if k.startswith("cuda."))
    # CUDA's RNG is saved exactly when CUDA is there: one state per visible device
    assert cuda == ([f"cuda.{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else [])
    assert set(saved) == {"torch", *cuda}
    after = torch.rand(4), (torch.rand(4, device="cuda") if torch.cuda.is_available() else None)
    torch.manual_seed(999)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(999)
    checkpoint.load(ckpt, model, opt)
    again = torch.rand(4), (torch.rand(4, device="cuda") if torch.cuda.is_available() else None)
    assert torch.equal(after[0], again[0])
    if torch.cuda.is_available():
        assert torch.equal(after[1], again[1])


def test_weights_and_optimizer_come_back_exactly(tmp_path):
    model, opt = tiny()
    ckpt = save(tmp_path, model, opt, 2)
    other, other_opt = tiny(1)
    checkpoint.load(ckpt, other, other_opt)
    assert all(torch.equal(a, b) for (n, a), (_, b) in zip(model.named_parameters(), other.named_parameters())
               if a.requires_grad)
    sa, sb = opt.state_dict()["state"], other_opt.state_dict()["state"]
    assert all(torch.equal(sa[i][k], sb[i][k]) for i in sa for k in sa[i])


def test_rotation_keeps_the_last_k_and_the_protected_best(tmp_path):
    model, opt = tiny()
    for step in range(1, 6):
        save(tmp_path, model, opt, step, keep=1, protect=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-000002", "step-000005"]
    save(tmp_path, model, opt, 6, keep=2, protect=None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-000005", "step-000006"]


def test_max_abs_and_the_bound():
    assert checkpoint.max_abs([torch.tensor([1.0, -3.0]), torch.zeros(0), torch.tensor([[2.0]])]) == 3.0
    assert checkpoint.max_abs([torch.tensor([1.0, float("nan")])]) == math.inf
    assert checkpoint.max_abs([torch.tensor([-float("inf")])]) == math.inf
    assert checkpoint.weight_bound(0.02) == 1e4 and checkpoint.weight_bound(3.0) == 3e4


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 2e4])
def test_exploded_weights_are_never_written_nor_recommended(tmp_path, bad):
    model, opt = tiny()
    save(tmp_path, model, opt, 1, bound=1e4)
    with torch.no_grad():
        model[0].weight[0, 0] = bad
    with pytest.raises(checkpoint.ExplodedWeights, match="exploded"):
        save(tmp_path, model, opt, 2, bound=1e4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-000001"]  # not even a temporary folder
    save(tmp_path, model, opt, 3)  # as an older luyen (no bound) would have
    assert checkpoint.latest(tmp_path).name == "step-000003"
    assert checkpoint.latest_good(tmp_path, 1e4).name == "step-000001"
    assert checkpoint.latest_good(tmp_path / "none", 1e4) is None


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def fp16_steps(model, opt, scaler, device, steps: range) -> None:
    """fp16 autocast steps with loss scaling and dropout: the result depends on the device's RNG and the scaler."""
    for step in range(steps.start, steps.stop):
        x = torch.randn(8, 16, generator=torch.Generator().manual_seed(step)).to(device)
        with torch.autocast(device, dtype=torch.float16):
            loss = model(x).float().pow(2).mean()
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)


def fp16_setup(device, seed):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.Dropout(0.5), torch.nn.Linear(64, 4)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    # a first scale too large for these gradients in fp16: the scaler skips a few steps, halving it, then grows
    # it every 2 good steps and halves it again at the next overflow; some steps are taken, some skipped
    return model, opt, torch.amp.GradScaler(device, init_scale=2.0 ** 20, growth_interval=2)


@pytest.mark.parametrize("device", DEVICES)
def test_an_fp16_run_resumed_from_a_checkpoint_is_exact(tmp_path, device):
    model, opt, scaler = fp16_setup(device, 0)
    fp16_steps(model, opt, scaler, device, range(0, 12))
    want = {n: p.detach().clone() for n, p in model.named_parameters()}

    model, opt, scaler = fp16_setup(device, 0)
    start = [p.detach().clone() for p in model.parameters()]
    fp16_steps(model, opt, scaler, device, range(0, 6))
    assert scaler.get_scale() < 2.0 ** 20  # overflows happened: the scale the resume must continue from
    assert not any(torch.equal(a, p) for a, p in zip(start, model.parameters()))  # and steps were taken
    ckpt = checkpoint.save(tmp_path, model=model, optimizer=opt, state=LoopState(step=6), keep=1, scaler=scaler)
    model, opt, scaler = fp16_setup(device, 1)  # a new process: other weights, RNG and a default scaler
    if device == "cuda":
        torch.cuda.manual_seed_all(1)
    checkpoint.load(ckpt, model, opt, scaler)
    fp16_steps(model, opt, scaler, device, range(6, 12))
    assert all(torch.equal(p, want[n]) for n, p in model.named_parameters())
