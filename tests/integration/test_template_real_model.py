"""The loss mask on the real embedded Gemma tokenizer: every training example's last target is the
end-of-turn marker and nothing after it is a target (with train.train_on_prompt too); answers that
also occur in the turn header ("model", "a", "d") are learned, never the header."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from luyen.data.template import encode_chat, render, resolve_chat_template, stop_token_ids
from luyen.models.resolve import load_tokenizer

pytestmark = pytest.mark.integration
DATA = Path(__file__).resolve().parents[2] / "examples" / "data"


@pytest.fixture(scope="module")
def gemma():
    tok = load_tokenizer("gemma3-270m")
    return tok, resolve_chat_template(tok)


def chats():
    for line in (DATA / "vi_ai_qa.jsonl").read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        yield [{"role": "user", "content": r["question"]}, {"role": "assistant", "content": r["answer"]}]
    for line in (DATA / "airline_chats.jsonl").read_text(encoding="utf-8").splitlines():
        yield json.loads(line)["messages"]


def test_every_example_ends_its_targets_on_end_of_turn_and_nothing_after_is_learned(gemma):
    tok, template = gemma
    end_of_turn = tok.convert_tokens_to_ids("<end_of_turn>")
    assert end_of_turn in stop_token_ids(tok, template)
    n = 0
    for chat in chats():
        ids, mask = encode_chat(tok, template, chat)
        targets = [i for i, m in enumerate(mask) if m]
        assert ids[targets[-1]] == end_of_turn, tok.decode(ids[-8:])
        assert not any(mask[targets[-1] + 1:])  # the newline after it and anything later are context
        turns = sum(m["role"] == "assistant" for m in chat)
        assert sum(ids[i] == end_of_turn for i in targets) == turns  # every assistant turn ends learned
        # train.train_on_prompt: every token before that end is learned too, nothing after it
        whole = encode_chat(tok, template, chat, targets="chat")[1]
        assert whole == [i <= targets[-1] for i in range(len(ids))]
        n += 1
    assert n > 400


@pytest.mark.parametrize("answer", ["a", "d", "model", "user", "<", "Miền Bắc."])
def test_header_words_and_one_letter_answers_are_the_targets(gemma, answer):
    tok, template = gemma
    chat = [{"role": "user", "content": "Trả lời một từ: chữ cái đầu?"}, {"role": "assistant", "content": answer}]
    ids, mask = encode_chat(tok, template, chat)
    first = mask.index(True)
    assert tok.decode(ids[:first]) == render(tok, template, chat[:1], add_generation_prompt=True)
    assert tok.decode([i for i, m in zip(ids, mask) if m]) == answer + "<end_of_turn>"
