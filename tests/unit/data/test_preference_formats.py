"""Preference data formats (TRL, OpenAI DPO, Anthropic HH, KTO) map into the preference and feedback kinds."""
import pytest

from luyen.data.formats import RecordError, as_chat, detect, map_texts, prompt_text, record_texts, to_records


def user(text):
    return {"role": "user", "content": text}


def bot(text):
    return {"role": "assistant", "content": text}


def system(text):
    return {"role": "system", "content": text}


def pref(prompt, chosen, rejected):
    return [{"kind": "preference", "prompt": prompt, "chosen": [bot(chosen)], "rejected": [bot(rejected)]}]


HH_CHOSEN = "\n\nHuman: Xin chào\n\nAssistant: Chào bạn!\n\nHuman: Thủ đô Việt Nam?\n\nAssistant: Hà Nội."
HH_REJECTED = "\n\nHuman: Xin chào\n\nAssistant: Chào bạn!\n\nHuman: Thủ đô Việt Nam?\n\nAssistant: Không biết."
MULTI = [user("Xin chào"), bot("Chào bạn!"), user("Thủ đô Việt Nam?")]


@pytest.mark.parametrize("row,fmt,records", [
    # TRL standard form: strings
    ({"prompt": "2+2?", "chosen": "4", "rejected": "5"}, "preference", pref([user("2+2?")], "4", "5")),
    ({"prompt": "2+2?", "chosen": "4", "rejected": "5", "system": "Ngắn gọn."}, "preference",
     pref([system("Ngắn gọn."), user("2+2?")], "4", "5")),
    # TRL conversational: answer-only sides, and sides holding the whole chat (prefix stripped)
    ({"prompt": MULTI, "chosen": [bot("Hà Nội.")], "rejected": [bot("Không biết.")]}, "preference",
     pref(MULTI, "Hà Nội.", "Không biết.")),
    ({"prompt": MULTI, "chosen": MULTI + [bot("Hà Nội.")], "rejected": MULTI + [bot("Không biết.")]}, "preference",
     pref(MULTI, "Hà Nội.", "Không biết.")),
    ({"prompt": "Hỏi?", "chosen": [user("Hỏi?"), bot("Đáp.")], "rejected": [bot("Sai.")], "system": "S"}, "preference",
     pref([system("S"), user("Hỏi?")], "Đáp.", "Sai.")),
    ({"prompt": [user("Hỏi?")], "chosen": [system("S"), user("Hỏi?"), bot("Đáp.")], "rejected": [bot("Sai.")],
      "system": "S"}, "preference", pref([system("S"), user("Hỏi?")], "Đáp.", "Sai.")),
    # OpenAI DPO fine-tuning JSONL (tools etc. ignored)
    ({"input": {"messages": [system("S"), user("Hỏi?")], "tools": [], "parallel_tool_calls": True},
      "preferred_output": [bot("Đáp.")], "non_preferred_output": [bot("Sai.")]}, "openai_dpo",
     pref([system("S"), user("Hỏi?")], "Đáp.", "Sai.")),
    # Anthropic HH-RLHF: whole transcripts as strings or as messages; the shared turns are the prompt
    ({"chosen": HH_CHOSEN, "rejected": HH_REJECTED}, "hh", pref(MULTI, "Hà Nội.", "Không biết.")),
    ({"chosen": MULTI + [bot("Hà Nội.")], "rejected": MULTI + [bot("Không biết.")]}, "hh",
     pref(MULTI, "Hà Nội.", "Không biết.")),
    # the shared prefix stops at the last shared user turn even when the answers start alike
    ({"chosen": "Human: Hỏi?\n\nAssistant: Đáp", "rejected": "Human: Hỏi?\n\nAssistant: Đáp đúng"}, "hh",
     pref([user("Hỏi?")], "Đáp", "Đáp đúng")),
    # KTO: unpaired thumbs up/down
    ({"prompt": "Hỏi?", "completion": "Đáp.", "label": True}, "kto",
     [{"kind": "feedback", "prompt": [user("Hỏi?")], "completion": [bot("Đáp.")], "label": True}]),
    ({"prompt": MULTI, "completion": [bot("Sai.")], "label": False}, "kto",
     [{"kind": "feedback", "prompt": MULTI, "completion": [bot("Sai.")], "label": False}]),
    ({"prompt": [user("Hỏi?")], "completion": [user("Hỏi?"), bot("Đáp.")], "label": False}, "kto",
     [{"kind": "feedback", "prompt": [user("Hỏi?")], "completion": [bot("Đáp.")], "label": False}]),
])
def test_detect_and_map(row, fmt, records):
    assert detect(row) == fmt
    assert to_records(row, {}) == (fmt, records)


def test_forced_preference_without_prompt_takes_the_shared_prefix():
    """TRL's implicit-prompt form (chosen/rejected whole chats, no prompt) under data.format=preference."""
    row = {"chosen": MULTI + [bot("Hà Nội.")], "rejected": MULTI + [bot("Không biết.")]}
    assert to_records(row, {}, "preference") == ("preference", pref(MULTI, "Hà Nội.", "Không biết."))


def test_column_mapping_reaches_the_preference_formats():
    row = {"cau_hoi": "Hỏi?", "tot": "Đáp.", "xau": "Sai."}
    assert to_records(row, {"cau_hoi": "prompt", "tot": "chosen", "xau": "rejected"}) == (
        "preference", pref([user("Hỏi?")], "Đáp.", "Sai."))


def test_record_helpers_cover_every_text():
    _, (p,) = to_records({"prompt": MULTI, "chosen": [bot("Đáp.")], "rejected": [bot("Sai.")], "system": "S"}, {})
    assert record_texts(p) == ["S", "Xin chào", "Chào bạn!", "Thủ đô Việt Nam?", "Đáp.", "Sai."]
    assert prompt_text(p) == "S\nXin chào\nThủ đô Việt Nam?"
    assert as_chat(p) == p["prompt"] + [bot("Đáp.")]
    map_texts(p, str.upper)
    assert record_texts(p) == ["S", "XIN CHÀO", "CHÀO BẠN!", "THỦ ĐÔ VIỆT NAM?", "ĐÁP.", "SAI."]
    _, (f,) = to_records({"prompt": "Hỏi?", "completion": "Đáp.", "label": False}, {})
    assert record_texts(f) == ["Hỏi?", "Đáp."] and prompt_text(f) == "Hỏi?"
    assert as_chat(f) == [user("Hỏi?"), bot("Đáp.")]


@pytest.mark.parametrize("row,field,problem", [
    ({"prompt": "q", "completion": "c", "label": "true"}, "label", "wrong_type"),
    ({"prompt": "q", "completion": "c", "label": 1}, "label", "wrong_type"),
    ({"prompt": "q", "completion": "c", "label": None}, "label", "null"),
    ({"prompt": "q", "chosen": "a"}, "rejected", "missing_field"),
    ({"prompt": "q", "completion": "c"}, "label", "missing_field"),
    ({"prompt": "q", "chosen": "a", "rejected": "b", "system": "S1"} | {"prompt": [system("S2"), user("q")]},
     "system", "misplaced_system"),
])
def test_bad_rows(row, field, problem):
    with pytest.raises(RecordError) as e:
        to_records(row, {})
    assert (e.value.field, e.value.problem) == (field, problem)
