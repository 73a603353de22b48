from transformers import AutoTokenizer

from luyen.data.template import (CHATML_EOS_TEMPLATE, GEMMA_TEMPLATE, encode_chat, end_marker, render, resolve_chat_template,
                                 stop_token_ids)
from luyen.data.tokens import TokenCounter

CHAT = [{"role": "system", "content": "Bạn là trợ lý."}, {"role": "user", "content": "Hà Nội ở đâu?"},
        {"role": "assistant", "content": "Miền Bắc."}, {"role": "user", "content": "Còn Huế?"},
        {"role": "assistant", "content": "Miền Trung."}]


def targets(tok, ids, mask):
    return tok.decode([i for i, m in zip(ids, mask) if m])


def test_default_template_for_plain_vocab_ends_turns_with_eos(tiny_tokenizer_dir):
    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    template = resolve_chat_template(tok)
    assert template == CHATML_EOS_TEMPLATE
    assert end_marker(tok, template) == "<eos>"
    ids, mask = encode_chat(tok, template, CHAT)
    # every assistant turn of the multi-turn chat is a target, each ending with EOS; nothing else is
    assert targets(tok, ids, mask) == "Miền Bắc.<eos>Miền Trung.<eos>"
    assert stop_token_ids(tok, template) == [tok.eos_token_id]


def test_gemma_markers_get_gemma_layout(tiny_gemma_tokenizer_dir):
    tok = AutoTokenizer.from_pretrained(tiny_gemma_tokenizer_dir)
    template = resolve_chat_template(tok)
    assert template == GEMMA_TEMPLATE
    ids, mask = encode_chat(tok, template, CHAT)
    assert targets(tok, ids, mask) == "Miền Bắc.<end_of_turn>Miền Trung.<end_of_turn>"
    # an answer ends at <end_of_turn>, EOS, or where the model opens a new turn instead
    assert stop_token_ids(tok, template) == [tok.eos_token_id, *tok.convert_tokens_to_ids(["<end_of_turn>", "<start_of_turn>"])]
    assert tok.decode(ids).startswith("<bos><start_of_turn>user\nBạn là trợ lý.\n\nHà Nội ở đâu?")


def test_tokenizer_template_and_override_win(tiny_tokenizer_dir, tmp_path):
    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}{{ eos_token }}{% endfor %}"
    assert resolve_chat_template(tok) == tok.chat_template
    path = tmp_path / "t.jinja"
    path.write_text("{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}{% endfor %}")
    assert resolve_chat_template(tok, str(path)).startswith("{% for m in messages %}[")


def test_fast_length_estimate_matches_exact_encoding(tiny_gemma_tokenizer_dir):
    tok = AutoTokenizer.from_pretrained(tiny_gemma_tokenizer_dir)
    counter = TokenCounter(tok, resolve_chat_template(tok))
    records = [{"kind": "chat", "messages": CHAT}, {"kind": "text", "text": "Học máy là gì?"}]
    total, loss = counter.measure(records)
    ids, mask = encode_chat(tok, counter.template, CHAT)
    assert abs(int(total[0]) - len(ids)) <= 2
    assert int(loss[0]) == sum(mask)
    assert counter.checks.n == 1 and not counter.checks.round_trip_failures and counter.checks.no_stop_token == 0
    assert int(total[1]) == int(loss[1]) == len(tok.encode("Học máy là gì?", add_special_tokens=False)) + 1


HEADER_WORDS = {"gemma": ["a", "d", "m", "model", "user", "t", "n"], "chatml": ["a", "t", "s", "assistant", "user", "im"]}


def test_answers_that_also_occur_in_the_turn_header_are_found_after_it(tiny_gemma_tokenizer_dir, tiny_tokenizer_dir):
    """The answer is searched for only after its turn's rendered prefix: one-letter answers and answers
    equal to a header word ("model", "assistant") are the targets, never a piece of the header."""
    for layout, folder in (("gemma", tiny_gemma_tokenizer_dir), ("chatml", tiny_tokenizer_dir)):
        tok = AutoTokenizer.from_pretrained(folder)
        template = resolve_chat_template(tok)
        end = end_marker(tok, template)
        for answer in HEADER_WORDS[layout]:
            chat = [{"role": "user", "content": "Trả lời một từ."}, {"role": "assistant", "content": answer}]
            ids, mask = encode_chat(tok, template, chat)
            assert targets(tok, ids, mask) == answer + end, (layout, answer)
            text = tok.decode(ids)
            first = next(i for i, m in enumerate(mask) if m)
            # everything before the first target is the rendered prompt with its generation header
            assert tok.decode(ids[:first]) == render(tok, template, chat[:1], add_generation_prompt=True), (layout, answer)
            assert text.endswith(answer + end + "\n")
        multi = [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"},
                 {"role": "user", "content": "a"}, {"role": "assistant", "content": "a"}]
        ids, mask = encode_chat(tok, template, multi)
        assert targets(tok, ids, mask) == ("a" + end) * 2, layout
        ids, mask = encode_chat(tok, template, multi, targets="last")
        assert targets(tok, ids, mask) == "a" + end, layout  # evaluation scores only the final answer
        last = max(i for i, m in enumerate(mask) if m)
        assert tok.decode(ids[:last + 1]) == render(tok, template, multi).rstrip("\n")


LLAMA2_STYLE = ("{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}[INST] {{ m['content'] }} [/INST]"
                "{% else %} {{ m['content'] }} {{ eos_token }}{% endif %}{% endfor %}")


def test_an_end_marker_after_whitespace_is_learned(tiny_tokenizer_dir):
    """Llama-2 style templates write `content + ' ' + eos`: the EOS is still a target."""
    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    assert end_marker(tok, LLAMA2_STYLE) == "<eos>"
    ids, mask = encode_chat(tok, LLAMA2_STYLE, CHAT[1:3])
    assert targets(tok, ids, mask).endswith("Miền Bắc. <eos>") and ids[max(i for i, m in enumerate(mask) if m)] == tok.eos_token_id


def test_train_on_prompt_targets_the_whole_chat_up_to_the_last_end_marker(tiny_tokenizer_dir, tiny_gemma_tokenizer_dir):
    """targets="chat" (train.train_on_prompt): the system text, questions and turn headers are learned
    too, the chat's last target is still the final answer's end marker, and what follows it is not."""
    for folder, end, tail in ((tiny_gemma_tokenizer_dir, "<end_of_turn>", "\n"), (tiny_tokenizer_dir, "<eos>", "\n")):
        tok = AutoTokenizer.from_pretrained(folder)
        template = resolve_chat_template(tok)
        ids, mask = encode_chat(tok, template, CHAT, targets="chat")
        text = render(tok, template, CHAT)
        assert text.endswith("Miền Trung." + end + tail)
        # every token is a target but the trailing newline (BOS too: `shifted` never makes position 0 a target)
        assert targets(tok, ids, mask) == text[:-len(tail)]
        assert mask[-1] is False and all(mask[:-1])
        # answers alone are unchanged by the option's existence
        assert targets(tok, *encode_chat(tok, template, CHAT)) == f"Miền Bắc.{end}Miền Trung.{end}"
