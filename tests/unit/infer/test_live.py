"""Continuous batching (luyen.infer.live): rows that join a running batch at different steps, and leave
it at different steps, decode exactly what each decodes alone through transformers' `generate`."""
from __future__ import annotations

import pytest
import torch

from luyen.infer.live import LiveBatch, Sampler

PROMPTS = ["Học máy là gì", "vé", "Khách hàng cần đổi vé máy bay sang ngày khác thì làm sao",
           "hành lý xách tay tối đa bao nhiêu kg", "dữ liệu huấn luyện", "mô hình"]
JOIN_AT = [0, 0, 3, 7, 7, 12]  # the step each prompt arrives at


def tiny(tmp_path, arch: str):
    """A tiny random model; gemma3's has a 6-token sliding window on its first layer, shorter than the
    longer prompts, so the joined cache must keep that window's columns right."""
    from conftest import make_tiny_model
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    folder = make_tiny_model(tmp_path / arch, arch=arch)
    config = AutoConfig.from_pretrained(folder)
    if arch == "gemma3_text":
        config.sliding_window, config.layer_types = 6, ["sliding_attention", "full_attention"]
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config).eval(), AutoTokenizer.from_pretrained(folder)


def alone(model, ids: list[int], n: int, penalty: float, eos: int) -> list[int]:
    """The oracle: one prompt through generate, greedy, the repetition penalty on the answer's tokens."""
    from transformers import LogitsProcessorList, RepetitionPenaltyLogitsProcessor
    with torch.no_grad():
        out = model.generate(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             max_new_tokens=n, do_sample=False, eos_token_id=eos, pad_token_id=eos,
                             logits_processor=LogitsProcessorList(
                                 [RepetitionPenaltyLogitsProcessor(penalty, prompt_ignore_length=len(ids))]),
                             repetition_penalty=1.0, temperature=None, top_p=None, top_k=None)
    return out[0, len(ids):].tolist()


def run_live(live: LiveBatch, prompts: list[list[int]], lengths: list[int], samplers, join_at, pad: int, check=None):
    """Drive a LiveBatch: prompt i joins at step join_at[i] and leaves after lengths[i] tokens."""
    got = {i: [] for i in range(len(prompts))}
    step = 0
    while step <= max(join_at) or len(live):
        if len(live):
            for owner, token in zip(live.owners, live.step()):
                got[owner].append(token)
        arriving = [i for i, at in enumerate(join_at) if at == step]
        if arriving:
            first = live.admit(arriving, [prompts[i] for i in arriving], [samplers[i] for i in arriving], pad)
            for i, token in zip(arriving, first):
                got[i].append(token)
        if len(live):
            live.keep([len(got[o]) < lengths[o] for o in live.owners])
            if check and len(live):
                check(live)
        step += 1
    return [got[i] for i in range(len(prompts))]


def growing(live: LiveBatch) -> bool:
    from luyen.infer.kvcache import GrowingLayer
    return any(isinstance(layer, GrowingLayer) for layer in live.cache.layers)


# room 3: the cache grows in place and runs out of room (doubling) while rows join, leave and are cut
@pytest.mark.parametrize("room", [0, 3])
@pytest.mark.parametrize("arch", ["llama", "gemma3_text", "gpt2", "bloom"])
def test_rows_joining_and_leaving_decode_what_each_decodes_alone(tmp_path, arch, room):
    model, tok = tiny(tmp_path, arch)
    assert LiveBatch.fits(model)
    prompts = [tok(p)["input_ids"] for p in PROMPTS]
    want = [alone(model, p, 10 + 3 * i, 1.3, tok.eos_token_id) for i, p in enumerate(prompts)]
    assert len({len(w) for w in want}) > 2, "the rows no longer end apart: the test lost its case"
    if arch == "gemma3_text":
        assert max(len(p) + len(w) for p, w in zip(prompts, want)) > 2 * model.config.sliding_window

    def check(live):  # the batch keeps no column that no row uses; with room, its full-length layers grow in place
        assert bool(live.mask[:, 0].any())
        assert growing(live) == (room > 0)

    got = run_live(LiveBatch(model, room=room), prompts, [len(w) for w in want],
                   [Sampler(repetition_penalty=1.3) for _ in prompts], JOIN_AT, tok.pad_token_id, check)
    assert got == want


def test_a_seeded_row_samples_the_same_tokens_whatever_shares_its_batch(tmp_path):
    model, tok = tiny(tmp_path, "llama")
    prompts = [tok(p)["input_ids"] for p in PROMPTS[:4]]

    def sampled(seed, join_at, others):
        samplers = [Sampler(temperature=1.0, top_p=0.9, seed=seed)] + [Sampler(temperature=1.0) for _ in range(others)]
        return run_live(LiveBatch(model), prompts[:1 + others], [12] * (1 + others), samplers, join_at,
                        tok.pad_token_id)[0]

    lone = sampled(7, [0], 0)
    assert sampled(7, [2, 0, 0, 5], 3) == lone      # joined late, beside rows that sample from their own seeds
    assert sampled(8, [0], 0) != lone               # and the seed matters


def test_lora_fits_and_prompt_learning_does_not(tiny_model_dir):
    """peft's prompt-learning adapters prepend virtual tokens at every call, so no cache can be joined."""
    from peft import LoraConfig, PromptTuningConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    torch.manual_seed(0)
    lora = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32),
                          LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False, task_type="CAUSAL_LM"))
    prompts = [tok(p)["input_ids"] for p in PROMPTS[:3]]
    want = [alone(lora, p, 12, 1.0, tok.eos_token_id) for p in prompts]
    assert LiveBatch.fits(lora)
    assert run_live(LiveBatch(lora), prompts, [len(w) for w in want], [Sampler() for _ in prompts], [0, 2, 4],
                    tok.pad_token_id) == want
    prompt = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32),
                            PromptTuningConfig(num_virtual_tokens=4, task_type="CAUSAL_LM"))
    assert not LiveBatch.fits(prompt)


@pytest.mark.parametrize("width", [0, 3])
def test_answer_penalty_equals_transformers_repetition_penalty(width):
    """The in-place penalty gives transformers' processor's values bit for bit: repeated tokens, negative
    and positive logits, a prompt that is not penalised."""
    from transformers import RepetitionPenaltyLogitsProcessor
    from luyen.infer.live import AnswerPenalty
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(4, 50, generator=g) * 3
    ids = torch.randint(0, 50, (4, 9), generator=g)
    ids[:, -1] = ids[:, -2]  # a token answered twice is penalised once
    want = RepetitionPenaltyLogitsProcessor(1.3, prompt_ignore_length=width)(ids, scores.clone())
    got = AnswerPenalty(1.3, width)(ids, scores.clone())
    assert torch.equal(got, want) and not torch.equal(got, scores)
    assert torch.equal(AnswerPenalty(1.3, 9)(ids, scores.clone()), scores)  # nothing answered yet
