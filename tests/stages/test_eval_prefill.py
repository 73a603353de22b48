"""Evaluation runs each prompt once for its reference answer's score and for its own answer
(evaluate.likelihood.prefilled_nll): the scores and the answers must be those of the two separate paths."""
from __future__ import annotations

import pytest

from luyen.config import GenerateConfig, load_config
from luyen.evaluate.systems import _prefilled, answer_nll
from luyen.infer.engine import Engine
from tests.conftest import make_tiny_tokenizer

QUESTIONS = ["Học máy là gì?", "Vì sao dữ liệu cần được làm sạch trước khi huấn luyện mô hình ngôn ngữ lớn?",
             "Mạng nơ-ron học như thế nào?", ("Một câu hỏi dài hơn về tập kiểm tra, tập huấn luyện và cách chia dữ "
                                               "liệu sao cho công bằng giữa các nhãn?"), "LoRA là gì?"]
ANSWERS = ["Học máy là cách máy học từ dữ liệu.", "Vì dữ liệu bẩn làm mô hình học sai.", "Nó điều chỉnh trọng số.",
           "Chia ngẫu nhiên theo nhãn.", "Một cách tinh chỉnh ít tham số."]


def _engine(tmp_path, arch: str, **extra) -> Engine:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM
    tok = make_tiny_tokenizer(tmp_path, gemma_markers=True)
    config = AutoConfig.for_model(arch, vocab_size=len(tok), hidden_size=32, intermediate_size=64, head_dim=8,
                                  num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                  max_position_embeddings=256, pad_token_id=tok.pad_token_id,
                                  eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id, **extra)
    torch.manual_seed(0)
    return Engine(AutoModelForCausalLM.from_config(config), tok)


@pytest.mark.parametrize("arch,extra", [
    ("gemma3_text", {"sliding_window": 6, "layer_types": ["sliding_attention", "full_attention"]}),  # prompts > window
    ("llama", {}),
    ("gpt2", {"n_embd": 32, "n_layer": 2, "n_head": 4}),  # learned absolute positions
    ("bloom", {"n_layer": 2, "n_head": 4}),  # ALiBi: no position ids at all
])
@pytest.mark.parametrize("whole", [False, True])
@pytest.mark.parametrize("rows,passes", [(8, 2), (2, 3)])  # rows a prefill pass; 2: caches of passes joined
def test_one_pass_scores_and_answers_as_the_two_separate_paths_do(tmp_path, monkeypatch, arch, extra, whole, rows,
                                                                  passes):
    from luyen.infer import kvcache
    monkeypatch.setattr(kvcache, "PREFILL_ROWS", rows)
    engine = _engine(tmp_path, arch, **extra)
    prompts = [[{"role": "user", "content": q}] for q in QUESTIONS]
    cfg = load_config(None, ["generate.max_new_tokens=12", "generate.batch_size=3", "generate.repetition_penalty=1.2"])
    wide = []  # forward passes over more than one position: a prompt's prefill (generate's steps are one wide)
    hook = engine.model.register_forward_hook(lambda m, args, kw, out: wide.append(kw["input_ids"].shape[1] > 1),
                                              with_kwargs=True)
    try:
        together = _prefilled(engine, prompts, ANSWERS, cfg, whole)
    finally:
        hook.remove()
    assert together is not None  # the Gemma layout's prompt is how its scored example begins
    scores, outs, _ = together
    assert sum(wide) == passes  # five prompts in batches of three: each pass scores and prefills
    apart = answer_nll(engine, prompts, ANSWERS, whole=whole)
    flat = lambda s: [x for pair in s for x in (pair if not whole else (*pair[0], *pair[1]))]
    assert flat(scores) == pytest.approx(flat(apart), rel=1e-5)
    chats = engine.chat(prompts, GenerateConfig(**cfg.generate.model_dump()))
    assert [o.text for o in outs] == [c.text for c in chats]
    assert [o.completion_tokens for o in outs] == [c.completion_tokens for c in chats]
    assert [o.prompt_tokens for o in outs] == [c.prompt_tokens for c in chats]


def test_answering_is_not_charged_for_scoring_the_reference_answers(tmp_path, monkeypatch):
    """The eval table's s/example is answering time: of a pass that scores the references and prefills the
    prompts, only the prompts' share of the positions. A pass made 2 s slower adds 2 s x that share."""
    import time

    from luyen.evaluate import likelihood
    engine = _engine(tmp_path, "llama")
    prompts = [[{"role": "user", "content": q}] for q in QUESTIONS]
    cfg = load_config(None, ["generate.max_new_tokens=4", "generate.batch_size=8"])
    plain = _prefilled(engine, prompts, ANSWERS, cfg, whole=False)[2]
    real = likelihood.prefilled_nll
    monkeypatch.setattr(likelihood, "prefilled_nll", lambda *a, **k: time.sleep(2.0) or real(*a, **k))
    slowed = _prefilled(engine, prompts, ANSWERS, cfg, whole=False)[2]
    starts = [len(engine.encode(engine.render(p))) for p in prompts]
    whole = [len(engine.encode(engine.render(p))) + len(engine.encode(a)) for p, a in zip(prompts, ANSWERS)]
    share = sum(starts) / sum(whole)
    assert 0.3 < share < 0.8  # far enough from 1 that charging the whole pass would show
    assert slowed - plain == pytest.approx(2.0 * share, abs=0.35)


def test_prompts_that_do_not_begin_their_scored_example_take_the_two_passes(tmp_path):
    engine = _engine(tmp_path, "llama")
    engine.render = lambda messages: "<bos>" + messages[-1]["content"]  # not how encode_chat formats the example
    prompts = [[{"role": "user", "content": q}] for q in QUESTIONS[:2]]
    assert _prefilled(engine, prompts, ANSWERS[:2], load_config(None), whole=False) is None


def test_without_keeping_the_cache_the_scores_are_the_same_and_no_cache_is_built(tmp_path, monkeypatch):
    """keep_cache=False (llama.cpp answers): the same scores, no cache cut back or joined."""
    from luyen.data.template import encode_chat
    from luyen.evaluate.likelihood import prefilled_nll
    from luyen.infer import kvcache
    from luyen.train.batches import shifted
    monkeypatch.setattr(kvcache, "PREFILL_ROWS", 2)
    engine = _engine(tmp_path, "llama")
    prompts = [[{"role": "user", "content": q}] for q in QUESTIONS]
    examples = [shifted(*encode_chat(engine.tok, engine.template, p + [{"role": "assistant", "content": a}], targets="last"))
                for p, a in zip(prompts, ANSWERS)]
    lengths = [len(engine.encode(engine.render(p))) for p in prompts]
    joins = []
    monkeypatch.setattr(kvcache, "joined", lambda caches, join=kvcache.joined: joins.append(len(caches)) or join(caches))
    kept = prefilled_nll(engine.model, examples, lengths, engine.pad_id)
    dropped = prefilled_nll(engine.model, examples, lengths, engine.pad_id, keep_cache=False)
    assert dropped[0] == kept[0] and dropped[3] is None and kept[3].get_seq_length() == max(lengths) - 1
    assert joins == [3]  # only the kept run joined its three passes' caches
