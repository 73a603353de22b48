import math

import pytest

from luyen.data.formats import RecordError, as_chat, detect, to_records


def chat(user, assistant):
    return [{"kind": "chat", "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]}]


@pytest.mark.parametrize("row,fmt,records", [
    ({"question": "Q?", "answer": "A."}, "qa", chat("Q?", "A.")),
    ({"question": "Q?", "answer": "A.", "context": "C."}, "qa", chat("C.\n\nQ?", "A.")),
    ({"instruction": "Dịch", "input": "hello", "output": "xin chào"}, "alpaca", chat("Dịch\n\nhello", "xin chào")),
    ({"instruction": "Viết", "input": "", "output": "Xong"}, "alpaca", chat("Viết", "Xong")),
    ({"instruction": "Viết", "context": "ctx", "response": "R"}, "alpaca", chat("Viết\n\nctx", "R")),
    ({"input": "I", "output": "O", "context": "C"}, "io", chat("C\n\nI", "O")),
    ({"document": "D", "summary": "S"}, "summary", [{"kind": "pair", "source": "D", "target": "S"}]),
    ({"article": "D", "highlights": "S", "id": "x"}, "summary", [{"kind": "pair", "source": "D", "target": "S"}]),
    ({"text": "T", "label": "refund"}, "labelled", [{"kind": "labelled", "text": "T", "label": "refund"}]),
    ({"sentence": "T", "label": 3}, "labelled", [{"kind": "labelled", "text": "T", "label": "3"}]),
    ({"text": "Raw"}, "text", [{"kind": "text", "text": "Raw"}]),
])
def test_detect_and_map(row, fmt, records):
    assert detect(row) == fmt
    assert to_records(row, {}) == (fmt, records)


def test_openai_and_sharegpt_multiturn():
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "u1"}, {"role": "assistant", "content": "a1"},
            {"role": "user", "content": "u2"}, {"role": "assistant", "content": "a2"}]
    assert to_records({"messages": msgs}, {})[1][0]["messages"] == msgs
    conv = [{"from": "system", "value": "S"}, {"from": "human", "value": "u1"}, {"from": "gpt", "value": "a1"},
            {"from": "human", "value": "u2"}, {"from": "gpt", "value": "a2"}]
    fmt, recs = to_records({"conversations": conv}, {})
    assert fmt == "sharegpt" and recs[0]["messages"] == msgs


def test_squad_flat_hf_layout_and_v2_impossible():
    row = {"context": "Hà Nội là thủ đô của Việt Nam.", "question": "Thủ đô?",
           "answers": {"text": ["Hà Nội"], "answer_start": [0]}}
    assert to_records(row, {})[1][0]["answers"] == [{"text": "Hà Nội", "start": 0}]
    impossible = {"context": "C", "question": "Q", "answers": [], "is_impossible": True}
    assert to_records(impossible, {})[1][0]["answers"] == []
    assert as_chat(to_records(impossible, {})[1][0])[1]["content"] == "(no answer in the context)"


def test_squad_nested_expands_every_question_and_fixes_offsets():
    article = {"title": "T", "paragraphs": [{"context": "Sông Hồng chảy qua Hà Nội.", "qas": [
        {"id": "1", "question": "Sông nào?", "answers": [{"text": "Sông Hồng", "answer_start": 0}]},
        {"id": "2", "question": "Qua đâu?", "answers": [{"text": "Hà Nội", "answer_start": 3}]}]}]}
    fmt, recs = to_records(article, {})
    assert fmt == "squad" and len(recs) == 2
    assert recs[1]["answers"] == [{"text": "Hà Nội", "start": 19}]  # wrong offset re-anchored


def test_column_mapping():
    assert to_records({"cau_hoi": "Q", "tra_loi": "A"}, {"cau_hoi": "question", "tra_loi": "answer"}) == ("qa", chat("Q", "A"))


def test_forced_format_reports_missing_field():
    with pytest.raises(RecordError) as e:
        to_records({"text": "x"}, {}, forced="qa")
    assert e.value.field == "question"


@pytest.mark.parametrize("value,problem", [(None, "null"), (math.nan, "null"), ([1], "wrong_type"),
                                           ({"a": 1}, "wrong_type"), ("  ", "empty"), (True, "wrong_type")])
def test_bad_field_values(value, problem):
    with pytest.raises(RecordError) as e:
        to_records({"question": "Q", "answer": value}, {})
    assert (e.value.field, e.value.problem) == ("answer", problem)


@pytest.mark.parametrize("messages,problem", [
    ([{"role": "user", "content": "a"}], "no_assistant"),
    ([{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}, {"role": "assistant", "content": "c"}],
     "starts_with_assistant"),
    ([{"role": "user", "content": "a"}, {"role": "system", "content": "s"}, {"role": "assistant", "content": "c"}],
     "misplaced_system"),
    ([{"role": "user", "content": "a"}, {"role": "wizard", "content": "b"}], "unknown_role"),
    ([{"role": "user", "content": "a"}, {"role": "assistant", "content": None}], "empty_content"),
    ([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "assistant", "content": "c"}],
     "not_alternating"),
])
def test_chat_role_problems(messages, problem):
    with pytest.raises(RecordError) as e:
        to_records({"messages": messages}, {})
    assert e.value.problem == problem
