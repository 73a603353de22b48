"""Preference tuning (dpo, kto, orpo, simpo) through the training stage on a tiny model: it learns a toy
preference, its reference is the base with the adapter off, accumulation and SIGKILL resume are exact."""
from __future__ import annotations

import json
import random
import signal

import pytest
import torch
from safetensors.torch import load_file

from luyen.config import load_config
from luyen.errors import LuyenError
from luyen.train.stage import run

GOOD = "vé hành lý chuyến bay khách hàng".split()
BAD = "học máy mô hình dữ liệu huấn luyện".split()


def write_pairs(path, n: int, seed: int = 0, kto: bool = False):
    """Toy preferences: the chosen answer uses travel words, the rejected one machine-learning words."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            q = " ".join(rng.choices(GOOD + BAD, k=rng.randint(3, 6))) + f" {i}?"
            good = " ".join(rng.choices(GOOD, k=rng.randint(3, 6))) + "."
            bad = " ".join(rng.choices(BAD, k=rng.randint(3, 6))) + "."
            if kto:
                row = {"prompt": q, "completion": good if i % 2 else bad, "label": bool(i % 2)}
            else:
                row = {"prompt": q, "chosen": good, "rejected": bad}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


@pytest.fixture(scope="module")
def pref_data(tmp_path_factory, tiny_model_dir):
    from conftest import prepare_data
    root = tmp_path_factory.mktemp("pref")
    return prepare_data(tiny_model_dir, root / "data", write_pairs(root / "pairs.jsonl", 160),
                        "data.split.train=0.7", "data.split.val=0.15", "data.split.test=0.15")


@pytest.fixture(scope="module")
def kto_data(tmp_path_factory, tiny_model_dir):
    from conftest import prepare_data
    root = tmp_path_factory.mktemp("kto")
    return prepare_data(tiny_model_dir, root / "data", write_pairs(root / "rated.jsonl", 160, kto=True))


def cfg(model_dir, *extra):
    return load_config(None, [f"model.name={model_dir}", "data.max_length=256", "train.batch_size=8",
                              "train.grad_accum=1", "train.max_steps=24", "train.eval_steps=8", "train.lr=5e-3", *extra])


def rows(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_dpo_learns_a_toy_preference_and_logs_rewards(tmp_path, tiny_model_dir, pref_data):
    out = tmp_path / "dpo"
    m = run(cfg(tiny_model_dir, "train.method=dpo"), pref_data, out)["metrics"]
    pref = m["preference"]
    assert m["method"] == "dpo" and pref["reference"] == "the base, adapter off"
    assert m["answer_tokens"]["p50"] > 3  # the budget comes from the chosen answers' lengths, not the pair count
    assert pref["initial_val"]["reward_accuracy"] < 0.6  # policy = reference: no reward yet
    assert pref["best_val"]["reward_accuracy"] > 0.9 and pref["best_val"]["reward_margin"] > 0
    assert pref["best_val"]["rewards_chosen"] > 0 > pref["best_val"]["rewards_rejected"]
    logged = [r for r in rows(out) if "loss" in r]
    assert {"rewards_chosen", "rewards_rejected", "reward_margin", "reward_accuracy"} <= set(logged[0])
    assert logged[-1]["reward_accuracy"] > logged[0]["reward_accuracy"]
    assert (out / "model" / "adapter_model.safetensors").is_file() and (out / "reference.safetensors").is_file()
    from PIL import Image
    assert Image.open(out / "curves.png").size[0] > 1200  # three panels: loss, rewards, accuracy and margin


def test_the_reference_is_the_base_with_the_adapter_off(tmp_path, tiny_model_dir, pref_data):
    from transformers import AutoModelForCausalLM

    from luyen.data.stage import read_split
    from luyen.data.template import resolve_chat_template
    from luyen.models.trained import load_trained
    from luyen.train.head import output_head, sequence_logps
    from luyen.train.methods import METHODS
    out = tmp_path / "dpo"
    c = cfg(tiny_model_dir, "train.method=dpo", "train.max_steps=8", "train.dtype=float32")  # compared in fp32
    run(c, pref_data, out)
    tuned, tok = load_trained(out)
    objective = METHODS["dpo"].objective(c.train.preference)
    pairs, _ = objective.examples(read_split(pref_data, "train")[:8], tok, resolve_chat_template(tok), 256)
    batch = objective.collate(pairs, tok.pad_token_id, packing=False)
    cpu = torch.device("cpu")
    with torch.no_grad():
        with tuned.disable_adapter():
            off, _ = sequence_logps(tuned, output_head(tuned), batch, 64, cpu)
        on, _ = sequence_logps(tuned, output_head(tuned), batch, 64, cpu)
        base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
        alone, _ = sequence_logps(base, output_head(base), batch, 64, cpu)
    assert torch.allclose(off, alone, atol=1e-4) and not torch.allclose(on, alone, atol=1e-2)
    cached = load_file(str(out / "reference.safetensors"))["train"]  # what training compared against, [pairs, 2]
    assert len(cached) == len(read_split(pref_data, "train"))
    assert torch.allclose(cached[:8].float(), alone.view(2, -1).t().float(), atol=1e-4)


def test_dpo_gradient_accumulation_is_exact(tmp_path, tiny_model_dir, pref_data):
    common = ["train.method=dpo", "train.dtype=float32", "train.lora.dropout=0", "train.max_steps=3", "train.eval_steps=0"]
    a, b = tmp_path / "b8", tmp_path / "b2x4"
    run(cfg(tiny_model_dir, "train.batch_size=8", "train.grad_accum=1", *common), pref_data, a)
    run(cfg(tiny_model_dir, "train.batch_size=2", "train.grad_accum=4", *common), pref_data, b)
    la, lb = ([(r["loss"], r["reward_margin"]) for r in rows(x) if "loss" in r] for x in (a, b))
    assert len(la) == 3 and all(x == pytest.approx(y, abs=2e-6) for x, y in zip(la, lb))  # logged to 6 decimals
    wa = load_file(str(a / "model" / "adapter_model.safetensors"))
    wb = load_file(str(b / "model" / "adapter_model.safetensors"))
    # Adam divides each step by the root of its own squared gradients, so fp32 rounding in a gradient near
    # zero (batches of 8 and of 2 add in other orders) moves a weight by up to ~2e-5 of lr 5e-3 (seen on an
    # AVX2 EPYC); a dropped or misweighted micro-batch moves it by a good part of lr
    assert all(torch.allclose(wa[k], wb[k], atol=1e-4, rtol=1e-3) for k in wa)
    assert any(float(wa[k].abs().max()) > 0 for k in wa if "lora_B" in k)


def test_dpo_resume_after_sigkill_is_exact(tmp_path, tiny_model_dir, pref_data):
    from test_train_cli import start, wait_for_checkpoint
    extra = [f"model.name={tiny_model_dir}", "data.max_length=256", "train.batch_size=4", "train.method=dpo",
             "train.max_steps=40", "train.save_steps=5", "train.lr=5e-3"]
    ref = run(load_config(None, extra), pref_data, tmp_path / "ref")
    out = tmp_path / "killed"
    proc = start(pref_data, out, *extra)
    wait_for_checkpoint(proc, out)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "manifest.json").exists() and (out / "reference.safetensors").is_file()
    killed_at = json.loads((sorted((out / "checkpoints").glob("step-*"))[-1] / "state.json").read_text())["loop"]["step"]
    assert killed_at < 40
    resumed = start(pref_data, out, *extra, resume=True)
    said, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-2000:]
    assert f"resumed from step-{killed_at:06d}" in said + err
    got = json.loads((out / "manifest.json").read_text())["metrics"]
    assert got["final_train_loss"] == pytest.approx(ref["metrics"]["final_train_loss"], rel=1e-4)
    wa = load_file(str(out / "model" / "adapter_model.safetensors"))
    wb = load_file(str(tmp_path / "ref" / "model" / "adapter_model.safetensors"))
    assert all(torch.allclose(wa[k], wb[k], rtol=1e-4, atol=1e-6) for k in wb)


def test_kto_learns_from_rated_answers_and_carries_its_kl_estimate(tmp_path, tiny_model_dir, kto_data):
    out = tmp_path / "kto"
    m = run(cfg(tiny_model_dir, "train.method=kto", "train.preference.undesirable_weight=1.2"), kto_data, out)["metrics"]
    best = m["preference"]["best_val"]
    assert best["rewards_chosen"] > 0 > best["rewards_rejected"]
    logged = [r for r in rows(out) if "loss" in r]
    assert logged[0]["kl"] == 0 and any(r["kl"] > 0 for r in logged)  # z moves with the policy, clamped at 0
    state = json.loads((sorted((out / "checkpoints").glob("step-*"))[-1] / "state.json").read_text())["loop"]
    assert state["objective"]["kl"] == pytest.approx(logged[-1]["kl"], abs=1e-6)
    from luyen.data.stage import read_split  # eval's references are the answers rated good, never the bad ones
    from luyen.evaluate.stage import run as evaluate
    evaluate(load_config(None, ["generate.max_new_tokens=2", "eval.general=false"]), out, kto_data, tmp_path / "eval",
             baselines=["zero-shot"])
    refs = [json.loads(x)["reference"] for x in (tmp_path / "eval" / "samples.jsonl").read_text().splitlines()]
    test = read_split(kto_data, "test")
    good = [r["completion"][0]["content"] for r in test if r["label"]]
    assert sorted(refs) == sorted(good) and len(good) < len(test)


@pytest.mark.parametrize("method,extra", [("orpo", []), ("simpo", ["train.preference.beta=2"])])
def test_reference_free_methods_learn_without_a_reference(tmp_path, tiny_model_dir, pref_data, method, extra):
    out = tmp_path / method
    m = run(cfg(tiny_model_dir, f"train.method={method}", *extra), pref_data, out)["metrics"]
    assert m["preference"]["reference"] == "none" and not (out / "reference.safetensors").exists()
    assert m["preference"]["best_val"]["reward_accuracy"] > 0.9


def test_full_dpo_precomputes_the_reference_and_saves_full_weights(tmp_path, tiny_model_dir, pref_data):
    out = tmp_path / "full"
    m = run(cfg(tiny_model_dir, "train.method=dpo", "train.preference.over=full", "train.lr=1e-3"), pref_data, out)["metrics"]
    assert m["preference"]["reference"] == "the weights before training"
    assert (out / "model" / "model.safetensors").is_file() and not (out / "model" / "adapter_config.json").exists()
    assert m["preference"]["best_val"]["reward_accuracy"] > 0.9


def test_dpo_starts_from_a_finished_sft_run(tmp_path, tiny_model_dir, pref_data):
    from luyen.models.trained import load_trained
    sft = tmp_path / "sft"
    run(cfg(tiny_model_dir, "train.method=lora", "train.max_steps=6"), pref_data, sft)  # SFT on the chosen answers
    from conftest import prepare_data  # `luyen run` prepares the pairs with the SFT run's own tokenizer
    assert (prepare_data(sft, tmp_path / "data", write_pairs(tmp_path / "p.jsonl", 40)) / "manifest.json").is_file()
    out = tmp_path / "dpo"
    m = run(cfg(sft, "train.method=dpo", "train.max_steps=8"), pref_data, out)["metrics"]
    assert m["base_model"] == str(sft)
    config = json.loads((out / "model" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str((sft / "model").resolve())  # the SFT adapter, merged at load
    tuned, _ = load_trained(out)  # the DPO adapter over the SFT run's merged model
    sft_model, _ = load_trained(sft)
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad(), tuned.disable_adapter():
        assert torch.allclose(tuned(ids).logits, sft_model(ids).logits, atol=1e-4)  # the reference is the SFT model


def test_mismatched_data_and_method_are_refused_in_one_line(tmp_path, tiny_model_dir, pref_data, kto_data, tiny_data_dir):
    with pytest.raises(LuyenError, match="holds chat records; this method learns from preference pairs"):
        run(cfg(tiny_model_dir, "train.method=dpo"), tiny_data_dir, tmp_path / "a")
    with pytest.raises(LuyenError, match="holds feedback records"):
        run(cfg(tiny_model_dir, "train.method=dpo"), kto_data, tmp_path / "b")
    with pytest.raises(LuyenError, match="supervised fine-tuning would learn the bad ones"):
        run(cfg(tiny_model_dir, "train.method=lora"), kto_data, tmp_path / "c")


def test_eval_reports_what_preference_tuning_changed_against_the_start(tmp_path, tiny_model_dir, pref_data):
    """luyen eval on the pairs' test split: likelihood and reward accuracies, margins and log-likelihood changes,
    checked against log-probs computed here from the full logits of the tuned model and of the base."""
    import numpy as np
    from transformers import AutoModelForCausalLM

    from luyen.data.stage import read_split
    from luyen.data.template import resolve_chat_template
    from luyen.evaluate.stage import run as evaluate
    from luyen.models.trained import load_trained
    from luyen.train.preference import encode_preferences
    out = tmp_path / "dpo"
    run(cfg(tiny_model_dir, "train.method=dpo", "train.dtype=float32", "train.preference.beta=0.2"), pref_data, out)
    evaluate(load_config(None, ["generate.max_new_tokens=4"]), out, pref_data, tmp_path / "eval", baselines=["zero-shot"])
    got = json.loads((tmp_path / "eval" / "metrics.json").read_text())["preference"]

    tuned, tok = load_trained(out)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    pairs, _ = encode_preferences(read_split(pref_data, "test"), tok, resolve_chat_template(tok), 256, paired=True)

    def logp(model, ex):
        with torch.no_grad():
            logits = model(torch.from_numpy(ex.ids)[None]).logits[0].float().log_softmax(-1)
        t = torch.from_numpy(ex.targets)
        keep = t != -100
        return float(logits[keep].gather(1, t[keep][:, None]).sum())
    lc = np.array([[logp(m, p.chosen), logp(m, p.rejected)] for p in pairs for m in (tuned, base)]).reshape(len(pairs), 2, 2)
    dc, dr = lc[:, 0, 0] - lc[:, 1, 0], lc[:, 0, 1] - lc[:, 1, 1]  # tuned - base, chosen and rejected
    # eval scores in the machine's precision (bf16 on AMX CPUs), the oracle in fp32: log-probs agree to ~0.1%
    assert got["pairs"] == len(pairs) == len(read_split(pref_data, "test")) and got["beta"] == 0.2
    assert got["reward_accuracy"]["diff"] == pytest.approx(np.mean(dc > dr), abs=0.05) and got["reward_accuracy"]["diff"] > 0.9
    assert got["reward_margin"]["diff"] == pytest.approx(0.2 * np.mean(dc - dr), rel=0.01)
    assert got["delta_logp_chosen"]["diff"] == pytest.approx(np.mean(dc), rel=0.01, abs=0.05)
    assert got["delta_logp_rejected"]["diff"] == pytest.approx(np.mean(dr), rel=0.01, abs=0.05)
    assert got["base_likelihood_accuracy"]["diff"] == pytest.approx(np.mean(lc[:, 1, 0] > lc[:, 1, 1]), abs=0.05)
    assert got["tuned_likelihood_accuracy"]["lo"] <= got["tuned_likelihood_accuracy"]["diff"] <= got["tuned_likelihood_accuracy"]["hi"]
    assert "reward accuracy" in (tmp_path / "eval" / "report.md").read_text()


def test_dpo_over_qlora_learns_over_a_4bit_base(tmp_path, pref_data):
    from conftest import make_tiny_model
    wide = make_tiny_model(tmp_path / "wide", hidden=64)  # bitsandbytes' 4-bit CPU kernels need layers >= 64 wide
    out = tmp_path / "qdpo"
    m = run(cfg(wide, "train.method=dpo", "train.preference.over=qlora"), pref_data, out)["metrics"]
    assert m["preference"]["reference"] == "the base, adapter off"
    assert json.loads((out / "model" / "adapter_config.json").read_text())["peft_type"] == "LORA"
    assert m["preference"]["best_val"]["reward_accuracy"] > 0.9


def test_the_memory_check_counts_both_answers_of_a_pair(tmp_path, tiny_model_dir, pref_data, monkeypatch):
    """A batch of 8 pairs holds 16 sequences: the preflight memory estimate must size it so."""
    from transformers import AutoTokenizer

    from luyen.data.stage import read_split
    from luyen.data.template import resolve_chat_template
    from luyen.models import estimate
    from luyen.train.preference import encode_preferences
    seen, real = [], estimate.training_memory
    monkeypatch.setattr(estimate, "training_memory", lambda *a, **kw: seen.append(kw["tokens_per_batch"]) or real(*a, **kw))
    run(cfg(tiny_model_dir, "train.method=dpo", "train.max_steps=1"), pref_data, tmp_path / "dpo")
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    pairs, _ = encode_preferences(read_split(pref_data, "train"), tok, resolve_chat_template(tok), 256, paired=True)
    longest = max(len(side) for p in pairs for side in p.sides())
    assert seen[0] == 8 * 2 * longest
