"""The general-ability check: the shipped items are well-formed, and acc_norm scoring equals a slow,
obviously-correct reference (one unbatched forward pass per choice) on tiny local models."""
from __future__ import annotations

import copy
import re
import tomllib
import unicodedata
from collections import Counter
from pathlib import Path

import pytest
import torch

from luyen.evaluate.general import (CATEGORIES, LANGS, choice_scores, load_items, plain_context, score_items,
                                    split_continuation, summary)

ROOT = Path(__file__).resolve().parents[3]
VI_MARKS = re.compile(r"[àáảãạăằắẳẵặâầấẩẫậèéẻẽẹêềếểễệìíỉĩịòóỏõọôồốổỗộơờớởỡợùúủũụưừứửữựỳýỷỹỵđ]", re.I)


# ---------------------------------------------------------------- the item file

def test_items_file_is_valid():
    items = load_items()
    n = len(items)
    assert n >= 150
    ids = [it["id"] for it in items]
    assert len(set(ids)) == n, [i for i, c in Counter(ids).items() if c > 1]
    for it in items:
        assert set(it) == {"id", "lang", "category", "question", "choices", "answer"}, it["id"]
        assert it["lang"] in LANGS and it["category"] in CATEGORIES, it["id"]
        assert it["id"].startswith(it["lang"] + "-"), it["id"]
        assert isinstance(it["question"], str) and it["question"].strip(), it["id"]
        ch = it["choices"]
        assert 3 <= len(ch) <= 4, it["id"]
        assert all(isinstance(c, str) and c.strip() == c and c for c in ch), it["id"]
        assert len(set(ch)) == len(ch), it["id"]  # exactly one right: no duplicated choice
        assert type(it["answer"]) is int and 0 <= it["answer"] < len(ch), it["id"]
        for text in [it["question"], *ch]:
            assert unicodedata.normalize("NFC", text) == text, it["id"]  # composed diacritics, as typed
        if it["lang"] == "vi":
            assert VI_MARKS.search(it["question"]), it["id"]  # Vietnamese written with its diacritics
    langs = Counter(it["lang"] for it in items)
    assert all(langs[lang] >= 0.4 * n for lang in LANGS), langs
    cells = Counter((it["lang"], it["category"]) for it in items)
    assert all(cells[(lang, cat)] >= 15 for lang in LANGS for cat in CATEGORIES), cells
    # Answer positions balanced: each index within 25% of what a uniform placement would give.
    got = Counter(it["answer"] for it in items)
    for pos in range(4):
        expected = sum(1 / len(it["choices"]) for it in items if len(it["choices"]) > pos)
        assert abs(got[pos] - expected) <= 0.25 * expected, (pos, got, expected)


def test_items_ship_in_the_wheel():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    globs = cfg["tool"]["setuptools"]["package-data"]["luyen"]
    assert any(Path("evaluate/general_items.jsonl").match(g.replace("**/", "")) for g in globs), globs


# ---------------------------------------------------------------- tiny models

def _load(model_dir, softcap=None):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    if softcap:
        model.config.final_logit_softcapping = softcap  # exercises the capped-logit path
    return model.eval(), AutoTokenizer.from_pretrained(model_dir)


def _chat_render(tok):
    from luyen.data.template import render, resolve_chat_template
    template = resolve_chat_template(tok)
    return lambda messages: render(tok, template, messages, add_generation_prompt=True)


# Choices of very different token lengths (so padding lands in every batch), Vietnamese and English,
# and one context that merges with its continuation ("Hà Nộ" + "i").
ITEMS = [
    {"id": "t1", "lang": "vi", "category": "knowledge", "question": "Hà Nội là thủ đô của nước nào?",
     "choices": ["Việt Nam", "Pháp", "một đất nước rất xa ở phía bên kia của trái đất", "Lào"], "answer": 0},
    {"id": "t2", "lang": "en", "category": "reasoning", "question": "The quick brown fox jumps over the lazy what?",
     "choices": ["dog", "cat that sleeps all day long in the sun", "x"], "answer": 0},
    {"id": "t3", "lang": "en", "category": "language", "question": "Fine-tuning adapts a pretrained model to your?",
     "choices": ["data", "d", "Machine learning is a branch of artificial intelligence.", "ok"], "answer": 2},
    {"id": "t4", "lang": "vi", "category": "instruction", "question": "Hà Nộ",
     "choices": ["i", "i là thủ đô", "à"], "answer": 1},
]


def _reference(model, tok, items, render, virtual: int = 0):
    """Per item, per choice: one unbatched, unpadded forward pass; summed log-softmax by a plain loop,
    divided by the choice's length in characters. ``virtual``: positions a prompt-learning adapter puts
    before the input."""
    out = []
    for it in items:
        if render:
            context, conts, prefix = render([{"role": "user", "content": it["question"]}]), it["choices"], []
        else:
            context, conts, prefix = plain_context(it["question"]), [" " + c for c in it["choices"]], [tok.bos_token_id]
        row = []
        for choice, cont in zip(it["choices"], conts):
            ctx = tok.encode(context, add_special_tokens=False)
            whole = tok.encode(context + cont, add_special_tokens=False)
            cont_ids = whole[len(ctx):] if whole[:len(ctx)] == ctx else tok.encode(cont, add_special_tokens=False)
            ids = prefix + ctx + cont_ids
            with torch.no_grad():
                logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), dim=-1)
            total = 0.0
            for j, t in enumerate(cont_ids):
                total += float(logp[virtual + len(prefix) + len(ctx) - 1 + j, t])
            row.append(total / len(choice))
        out.append(row)
    return out


@pytest.fixture(scope="module", params=["llama", "gemma", "gemma-window"])
def tiny(request, tiny_model_dir, tiny_gemma_tokenizer_dir):
    if request.param == "llama":
        return _load(tiny_model_dir)
    model, tok = _load(tiny_gemma_tokenizer_dir, softcap=0.3)  # below the logits' spread, so the cap bites
    if request.param == "gemma-window":  # a sliding window shorter than the questions: the choices run from
        from transformers import AutoModelForCausalLM  # a cache of the question, and must see only the window
        config = copy.deepcopy(model.config)
        config.sliding_window, config.layer_types = 4, ["sliding_attention", "full_attention"]
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(config).eval()
    return model, tok


@pytest.mark.parametrize("chat", [False, True], ids=["plain", "chat"])
def test_scores_equal_the_slow_reference(tiny, chat):
    model, tok = tiny
    render = _chat_render(tok) if chat else None
    items = ITEMS + load_items()[::20]  # and some real items (both languages, all categories)
    want = _reference(model, tok, items, render)
    for batch in (3, 64):  # small batches mix items and lengths; one batch pads everything together
        got = choice_scores(model, tok, items, render=render, batch=batch)
        assert [len(r) for r in got] == [len(r) for r in want]
        for g, w, it in zip(got, want, items):
            assert g == pytest.approx(w, abs=2e-4), it["id"]
    expected = [1.0 if max(range(len(w)), key=w.__getitem__) == it["answer"] else 0.0 for w, it in zip(want, items)]
    assert score_items(model, tok, items, render=render, batch=3) == expected


def test_the_boundary_merge_is_guarded(tiny_model_dir):
    _, tok = _load(tiny_model_dir)
    enc = lambda s: tok.encode(s, add_special_tokens=False)  # noqa: E731
    assert enc("Hà Nộ" + "i")[:len(enc("Hà Nộ"))] != enc("Hà Nộ")  # this tokenizer does merge here
    assert split_continuation(tok, "Hà Nộ", "i") == (enc("Hà Nộ"), enc("i"))
    ctx, cont = split_continuation(tok, "Answer:", " Paris")
    assert ctx + cont == enc("Answer: Paris") and ctx == enc("Answer:")


def test_a_peft_model_is_scored_through_its_adapter(tiny_model_dir):
    peft = pytest.importorskip("peft")
    model, tok = _load(tiny_model_dir)
    base = choice_scores(model, tok, ITEMS, batch=3)
    torch.manual_seed(1)
    lora = peft.get_peft_model(copy.deepcopy(model), peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj"],
                                                                     init_lora_weights=False))
    got = choice_scores(lora, tok, ITEMS, batch=3)
    for g, w in zip(got, _reference(lora, tok, ITEMS, None)):
        assert g == pytest.approx(w, abs=2e-4)
    assert max(abs(a - b) for g, w in zip(got, base) for a, b in zip(g, w)) > 1e-3  # the adapter counts
    with lora.disable_adapter():
        assert choice_scores(lora, tok, ITEMS, batch=3) == [pytest.approx(b, abs=1e-5) for b in base]


def test_a_prompt_learning_adapter_is_scored_after_its_virtual_tokens(tiny_model_dir):
    """peft's prompt tuning prepends its virtual tokens at every forward call, so no choice may continue
    from a cached question: each choice is scored with its question, after the virtual tokens."""
    peft = pytest.importorskip("peft")
    model, tok = _load(tiny_model_dir)
    torch.manual_seed(1)
    tuned = peft.get_peft_model(copy.deepcopy(model), peft.PromptTuningConfig(task_type="CAUSAL_LM",
                                                                              num_virtual_tokens=3))
    got = choice_scores(tuned, tok, ITEMS, batch=3)
    for g, w in zip(got, _reference(tuned, tok, ITEMS, None, virtual=3)):
        assert g == pytest.approx(w, abs=2e-4)
    assert max(abs(a - b) for g, w in zip(got, choice_scores(model, tok, ITEMS, batch=3)) for a, b in zip(g, w)) > 1e-3


# ---------------------------------------------------------------- a model that cheats

def test_a_model_that_prefers_one_answer_gets_exactly_the_items_it_favours(tiny_model_dir):
    model, tok = _load(tiny_model_dir)
    favoured = " Hà Nội"  # a plain-text continuation
    fav_ids = set(split_continuation(tok, "Answer:", favoured)[1])
    # Output layer with zero weights and a bias: the same distribution at every position, all mass on
    # the favoured choice's tokens.
    head = torch.nn.Linear(model.config.hidden_size, model.config.vocab_size, bias=True)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(-20.0)
        head.bias[list(fav_ids)] = 20.0
    model.lm_head = head
    items = [
        {"id": "right", "lang": "vi", "category": "knowledge", "question": "Thủ đô của Việt Nam là thành phố nào?",
         "choices": ["Paris", "Hà Nội", "Tokyo", "London"], "answer": 1},
        {"id": "wrong", "lang": "en", "category": "knowledge", "question": "What is the capital of France?",
         "choices": ["Hà Nội", "Paris", "Tokyo", "London"], "answer": 1},
        {"id": "last", "lang": "en", "category": "language", "question": "Which city?",
         "choices": ["Lyon", "Nice", "Hà Nội"], "answer": 2},
    ]
    for it in items:  # every other choice has a token the model does not favour
        for c in it["choices"]:
            if c != "Hà Nội":
                assert set(split_continuation(tok, "Answer:", " " + c)[1]) - fav_ids, c
    per_item = score_items(model, tok, items, batch=2)
    assert per_item == [1.0, 0.0, 1.0]
    s = summary(per_item, items)
    assert s["accuracy"] == pytest.approx(200 / 3)
    assert s["by_lang"] == {"en": 50.0, "vi": 100.0} and s["n_by_lang"] == {"en": 2, "vi": 1}
    assert s["by_category"] == {"knowledge": 50.0, "language": 100.0} and s["n"] == 3


def test_scoring_runs_in_eval_mode_and_restores_training(tiny_model_dir):
    model, tok = _load(tiny_model_dir)
    seen = []
    model.register_forward_pre_hook(lambda m, args: seen.append(m.training))
    model.train()
    score_items(model, tok, ITEMS[:1])
    assert seen == [False, False] and model.training  # the question's pass, then its choices' from its cache


def test_summary_counts_and_checks_lengths():
    items = [{"lang": "vi", "category": "reasoning"}, {"lang": "vi", "category": "reasoning"},
             {"lang": "en", "category": "instruction"}, {"lang": "en", "category": "reasoning"}]
    s = summary([1.0, 0.0, 1.0, 1.0], items)
    assert s["accuracy"] == 75.0 and s["n"] == 4
    assert s["by_lang"] == {"en": 100.0, "vi": 50.0}
    assert s["by_category"] == {"instruction": 100.0, "reasoning": pytest.approx(200 / 3)}
    with pytest.raises(ValueError):
        summary([1.0], items)
