"""The shared generation engine on a tiny model: batching is invisible, stops and limits hold."""
from __future__ import annotations

import pytest
import torch

from luyen.config import GenerateConfig
from luyen.infer.engine import Engine


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    torch.manual_seed(0)
    return Engine(AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32),
                  AutoTokenizer.from_pretrained(tiny_model_dir))  # fp32: exact comparisons below


PROMPTS = ["Học máy", "Hà Nội là thủ đô của Việt Nam và", "The quick brown fox"]


def test_batched_greedy_generation_equals_one_prompt_at_a_time(engine):
    cfg = GenerateConfig(max_new_tokens=12, batch_size=8)
    together = engine.generate(PROMPTS, cfg)
    alone = [engine.generate(p, cfg) for p in PROMPTS]
    assert [c.text for c in together] == [c.text for c in alone]
    assert all(c.completion_tokens <= 12 and c.prompt_tokens > 0 for c in together)
    assert together[1].prompt_tokens > together[0].prompt_tokens


def test_length_limit_stop_strings_and_seeded_sampling(engine):
    long = engine.generate(PROMPTS[0], GenerateConfig(max_new_tokens=5, no_repeat_ngram_size=0))
    assert long.completion_tokens == 5 and long.finish_reason == "length"
    full = engine.generate(PROMPTS[1], GenerateConfig(max_new_tokens=16)).text
    stop = full.strip()[3:6]
    cut = engine.generate(PROMPTS[1], GenerateConfig(max_new_tokens=16, stop=[stop]))
    assert stop not in cut.text and cut.finish_reason == "stop" and full.startswith(cut.text)
    s1 = engine.generate(PROMPTS, GenerateConfig(max_new_tokens=8, temperature=1.0, seed=3))
    s2 = engine.generate(PROMPTS, GenerateConfig(max_new_tokens=8, temperature=1.0, seed=3))
    assert [c.text for c in s1] == [c.text for c in s2]


def test_chat_renders_the_template_with_a_generation_prompt(engine):
    msgs = [{"role": "user", "content": "Xin chào"}]
    prompt = engine.render(msgs)
    assert prompt.endswith("<|im_start|>assistant\n") and "Xin chào" in prompt
    one = engine.chat(msgs, GenerateConfig(max_new_tokens=6))
    many = engine.chat([msgs, msgs], GenerateConfig(max_new_tokens=6))
    assert one.text == many[0].text == many[1].text
    assert engine.tok.eos_token_id in engine.stop_ids


def test_answer_budget_is_the_95th_percentile_plus_half():
    from luyen.infer.engine import answer_budget
    b = answer_budget(list(range(1, 101)))  # p95 of 1..100 is 95; 1.5 x 95 = 142.5 -> 144 (a multiple of 8)
    assert b == {"p50": 50, "p95": 95, "max": 100, "max_new_tokens": 144}
    assert answer_budget([3, 4, 5])["max_new_tokens"] == 32  # never below 32
    assert answer_budget([10] * 19 + [1000])["p95"] == 10    # one outlier does not set the budget


def test_a_trained_run_loads_into_the_engine_with_its_answer_budget(tmp_path, tiny_model_dir, tiny_data_dir):
    import json

    from luyen.config import load_config
    from luyen.infer.engine import answer_budget
    from luyen.train.stage import run
    m = run(load_config(None, [f"model.name={tiny_model_dir}", "data.max_length=256", "train.max_steps=2",
                               "generate.repetition_penalty=1.3"]), tiny_data_dir, tmp_path / "run")
    engine = Engine.load(str(tmp_path / "run"))
    assert hasattr(engine.model, "peft_config")
    assert isinstance(engine.chat([{"role": "user", "content": "vé"}], GenerateConfig(max_new_tokens=4)).text, str)
    # the answers the tiny data trains on: "words ... ." plus the end marker, each its targets
    lengths = []
    from transformers import AutoTokenizer

    from luyen.data.template import encode_chat, resolve_chat_template
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    template = resolve_chat_template(tok)
    for line in open(tiny_data_dir / "train.jsonl", encoding="utf-8"):
        lengths.append(sum(encode_chat(tok, template, json.loads(line)["messages"])[1]))
    expected = answer_budget(lengths)
    assert m["metrics"]["answer_tokens"] == expected
    assert engine.max_new_tokens == expected["max_new_tokens"] != 256
    assert engine.settings(GenerateConfig()).max_new_tokens == expected["max_new_tokens"]
    assert engine.settings(GenerateConfig(max_new_tokens=7)).max_new_tokens == 7  # an explicit value wins
    # the run's repetition penalty travels with the model; `luyen chat MODEL` answers as the run was evaluated
    assert engine.settings().repetition_penalty == 1.3
    assert engine.settings(repetition_penalty=1.0).repetition_penalty == 1.0


@pytest.mark.parametrize("lora", [False, True])
def test_output_layer_sees_contiguous_rows(tiny_model_dir, lora):
    """A sliced, non-contiguous [B, 1, H] input sends torch.matmul down a path that copies the whole
    vocabulary matrix once per row (41 s instead of 30 ms per step on Gemma-3's head)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    if lora:
        model = get_peft_model(model, LoraConfig(r=2, target_modules="all-linear"))
    engine = Engine(model, AutoTokenizer.from_pretrained(tiny_model_dir))
    seen = []
    model.get_output_embeddings().register_forward_pre_hook(lambda _, a: seen.append(a[0].is_contiguous()))
    engine.chat([[{"role": "user", "content": p}] for p in PROMPTS], GenerateConfig(max_new_tokens=3))
    assert seen and all(seen)


def test_repetition_penalty_counts_the_answers_tokens_not_the_prompts(engine):
    """A prompt whose greedy next token already occurs in it: an answer-only penalty leaves that first
    step alone (the answer holds nothing yet), and it still acts once the answer repeats itself."""
    g = torch.Generator().manual_seed(0)
    free = GenerateConfig(max_new_tokens=16, repetition_penalty=1.0)
    harsh = GenerateConfig(max_new_tokens=16, repetition_penalty=1e6)
    prompts = [torch.randint(10, 200, (40,), generator=g).tolist() for _ in range(30)]
    answers = engine.generate_ids(prompts, free).tolist()
    cases = [(p, a) for p, a in zip(prompts, answers) if a[0] in p and len(set(a)) < len(a)]
    assert cases, "no prompt whose greedy answer starts with a prompt token and repeats itself: the test lost its case"
    prompt, plain = cases[0]
    penalised = engine.generate_ids([prompt], harsh)[0].tolist()
    assert penalised[0] == plain[0]  # the prompt's tokens are not penalised
    assert penalised != plain        # the answer's own repeats are


@pytest.mark.parametrize("arch", ["llama", "gemma3_text", "gpt2", "bloom"])
def test_rows_that_finish_leave_the_batch_and_the_others_answer_as_in_one_generate_call(tmp_path, arch):
    """The oracle is transformers' generate run once over the whole batch (every row computed to the
    end); the engine retires finished rows every few steps and continues the rest from the KV cache."""
    from conftest import make_tiny_model
    from transformers import AutoModelForCausalLM, AutoTokenizer
    folder = make_tiny_model(tmp_path / arch, arch=arch)
    tok = AutoTokenizer.from_pretrained(folder)
    engine = Engine(AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32), tok)
    prompts = PROMPTS + ["Khách hàng cần đổi vé máy bay", "hành lý xách tay tối đa bao nhiêu kg"]
    cfg = engine.settings(GenerateConfig(max_new_tokens=40, batch_size=8, repetition_penalty=1.3))

    def oracle():
        tok.padding_side = "left"
        enc = tok(prompts, return_tensors="pt", padding=True)
        tok.padding_side = "right"
        kw = engine._generate_kwargs(cfg, enc["input_ids"].shape[1])
        with torch.no_grad():
            out = engine.model.generate(**enc, **kw)[:, enc["input_ids"].shape[1]:].tolist()
        return [r[:next((j for j, t in enumerate(r) if t in engine.stop_ids), len(r))] for r in out]

    free = oracle()
    # a stop token the first answer reaches early and the second never does, so rows end at different steps
    stop = next(t for t in free[0][2:] if t not in free[1])
    engine.stop_ids = [stop]
    want = oracle()
    assert len(want[0]) < 20 and len(want[1]) == 40, "the rows no longer end apart: the test lost its case"
    sizes, real = [], engine.model.generate
    engine.model.generate = lambda **kw: sizes.append(kw["input_ids"].shape[0]) or real(**kw)
    widths = []  # tokens per row each forward reads: only the first (the prompts) reads more than one
    engine.model.register_forward_pre_hook(lambda _, args, kw: widths.append(kw["input_ids"].shape[1]),
                                           with_kwargs=True)
    got = engine.generate(prompts, cfg)
    assert len(sizes) > 1 and widths[0] > 1 and set(widths[1:]) == {1}  # later stretches continue the cache
    assert [c.text for c in got] == [tok.decode(w, skip_special_tokens=True) for w in want]
    assert [c.completion_tokens for c in got] == [len(w) for w in want]
    assert [c.finish_reason for c in got] == ["stop" if len(w) < 40 else "length" for w in want]
    assert sizes[0] == len(prompts) and min(sizes) < len(prompts)  # finished rows left the batch


@pytest.mark.parametrize("kind", ["prompt", "ptuning", "lora"])
def test_adapters_retire_rows_only_where_a_cache_can_be_continued(tiny_model_dir, kind):
    """peft's prompt-learning adapters prepend their virtual tokens at every generate call, so continuing
    from a cache answered differently: their batches run as one call. A LoRA batch retires rows. Both
    answer as transformers' single call does."""
    import luyen.infer.engine as engine_module
    from peft import LoraConfig, PromptEncoderConfig, PromptTuningConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer
    torch.manual_seed(0)
    conf = {"prompt": PromptTuningConfig(num_virtual_tokens=4, task_type="CAUSAL_LM"),
            "ptuning": PromptEncoderConfig(num_virtual_tokens=4, task_type="CAUSAL_LM", encoder_hidden_size=16),
            "lora": LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False, task_type="CAUSAL_LM")}[kind]
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    engine = Engine(get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32), conf), tok)
    prompts = PROMPTS + ["vé máy bay"]
    free = engine.generate_ids([tok(p)["input_ids"] for p in prompts], engine.settings(max_new_tokens=30)).tolist()
    engine.stop_ids = [next(t for t in free[0][2:] if t not in free[1])]  # rows end apart
    calls, real = [], engine.model.generate
    engine.model.generate = lambda **kw: calls.append(1) or real(**kw)
    got = [c.text for c in engine.generate(prompts, max_new_tokens=30)]
    assert len(calls) == 1 if kind != "lora" else len(calls) > 1
    engine.model.generate = real
    engine_module.RETIRE_EVERY, saved = 10**9, engine_module.RETIRE_EVERY
    try:
        assert got == [c.text for c in engine.generate(prompts, max_new_tokens=30)]
    finally:
        engine_module.RETIRE_EVERY = saved
