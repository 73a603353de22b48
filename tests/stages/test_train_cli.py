"""`luyen train` as a user runs it: killed and resumed, interrupted, misconfigured, data-parallel."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from luyen.config import load_config
from luyen.train.stage import run

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


def overrides(model_dir, *extra):
    return [f"model.name={model_dir}", "data.max_length=256", "train.batch_size=4", *extra]


def start(data, out, *extra, resume=False):
    cmd = [sys.executable, "-m", "luyen", "train", "--data", str(data), "--out", str(out), *extra]
    return subprocess.Popen(cmd + (["--resume"] if resume else []), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ENV)


def wait_for_checkpoint(proc, out, timeout=120):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if list((out / "checkpoints").glob("step-*")) if (out / "checkpoints").exists() else []:
            return
        if proc.poll() is not None:
            raise AssertionError(f"training ended before a checkpoint: {proc.stderr.read()[-2000:]}")
        time.sleep(0.005)
    raise AssertionError("no checkpoint appeared")


@pytest.mark.parametrize("noise", [[], ["train.neftune_alpha=5"]], ids=["plain", "neftune"])
def test_resume_after_sigkill_gives_the_same_loss_and_weights(tmp_path, tiny_model_dir, tiny_data_dir, noise):
    # with NEFTune the noise comes from the CPU RNG, which a checkpoint restores: the resume stays exact
    extra = overrides(tiny_model_dir, "train.max_steps=60", "train.save_steps=5", "train.lr=5e-3", *noise)
    ref = run(load_config(None, extra), tiny_data_dir, tmp_path / "ref")
    out = tmp_path / "killed"
    proc = start(tiny_data_dir, out, *extra)
    wait_for_checkpoint(proc, out)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "manifest.json").exists()
    killed_at = json.loads((sorted((out / "checkpoints").glob("step-*"))[-1] / "state.json").read_text())["loop"]["step"]
    assert killed_at < 60
    resumed = start(tiny_data_dir, out, *extra, resume=True)
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-2000:]
    got = json.loads((out / "manifest.json").read_text())["metrics"]
    want = ref["metrics"]["final_train_loss"]
    assert abs(got["final_train_loss"] - want) / want < 1e-4
    wa = load_file(str(out / "model" / "adapter_model.safetensors"))
    wb = load_file(str(tmp_path / "ref" / "model" / "adapter_model.safetensors"))
    assert all(torch.allclose(wa[k], wb[k], rtol=1e-4, atol=1e-6) for k in wb)
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(0, 61))  # the log continues without gaps or repeats


def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(tmp_path, tiny_model_dir, tiny_data_dir):
    extra = overrides(tiny_model_dir, "train.max_steps=100000", "train.save_steps=3")
    out = tmp_path / "interrupted"
    proc = start(tiny_data_dir, out, *extra)
    wait_for_checkpoint(proc, out)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-2000:]
    assert "--resume" in stdout + stderr and "Traceback" not in stderr
    last = sorted((out / "checkpoints").glob("step-*"))[-1]
    assert json.loads((last / "state.json").read_text())["loop"]["step"] >= 3
    assert not (out / "manifest.json").exists()


@pytest.mark.parametrize("extra,needle", [
    (["train.batch_size=1000"], "train.batch_size"),
    (["train.max_length=100000"], "beyond the model's context of 256 tokens"),
    (["train.lora.target_modules=[nope_proj]"], "target module(s) ['nope_proj'] do not exist"),
    (["train.lr_typo=1"], "did you mean"),
    (["train.method=sgd"], "train.method"),
])
def test_impossible_settings_fail_before_training_in_one_line(tmp_path, tiny_model_dir, tiny_data_dir, extra, needle):
    out = tmp_path / "bad"
    proc = start(tiny_data_dir, out, *overrides(tiny_model_dir, *extra))
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2
    lines = [x for x in stderr.splitlines() if x.startswith("error:")]
    assert len(lines) == 1 and needle in lines[0], stderr[-1500:]
    assert "Traceback" not in stderr
    assert not (out / "checkpoints").exists()


def test_missing_or_unfinished_data_is_refused(tmp_path, tiny_model_dir, tiny_data_dir):
    half = tmp_path / "half"
    shutil.copytree(tiny_data_dir, half)
    (half / "manifest.json").unlink()
    for data in (half, tmp_path / "nowhere"):
        proc = start(data, tmp_path / "o", *overrides(tiny_model_dir))
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 2 and "manifest.json" in stderr and "Traceback" not in stderr


def test_torchrun_two_processes_train_with_ddp_and_only_rank0_writes(tmp_path, tiny_model_dir, tiny_data_dir):
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    out = tmp_path / "ddp"
    cmd = [torchrun, "--nproc_per_node=2", "--master_port=29531", "-m", "luyen", "train", "--data", str(tiny_data_dir),
           "--out", str(out), *overrides(tiny_model_dir, "train.max_steps=4", "train.batch_size=2", "train.save_steps=2")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**ENV, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [0, 1, 2, 3, 4]  # one writer: no duplicated rows
    assert all(m["world_size"] == 2 and m["rank_steps"] == [m["step"]] * 2 for m in metrics[1:])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["metrics"]["world_size"] == 2
    names = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert names == ["step-000002", "step-000004"]
    assert not [p for p in out.rglob("*") if p.name.endswith((".tmp", ".old"))]  # no staged temp or trash folder left
