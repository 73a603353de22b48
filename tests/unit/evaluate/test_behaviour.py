"""Behaviour metrics on constructed answers, every value worked out by hand."""
from __future__ import annotations

import math

import pytest

from luyen.evaluate.behaviour import behaviour, copied, language, loops

LOOPING = "Học tự giám sát học hỏi từ dữ liệu. Học tự giám sát học hỏi từ dữ liệu. Học tự giám sát học hỏi."


def test_a_four_word_phrase_three_times_is_a_loop_and_twice_is_not():
    assert loops(LOOPING)  # "học tự giám sát" occurs 3 times
    assert not loops("Học tự giám sát học hỏi. Học tự giám sát là gì?")  # twice only
    assert not loops("a b c a b c a b c")  # a 3-word phrase: shorter than a loop
    assert loops("a b c d a b c d a b c d") and not loops("")


def test_language_tells_vietnamese_from_english():
    assert language("Hà Nội là thủ đô của Việt Nam.") == "vi"
    assert language("Hanoi is the capital of Vietnam, not Hồ Chí Minh City.") == "en"  # 3/43 letters < 5%
    assert language("机器学习") == "other" and language("123 !!") == "other"


def test_behaviour_counts_by_hand():
    answers = [LOOPING, "Miền Bắc.", "The north.", "Hà Nội"]
    refs = ["Học tự giám sát tạo nhãn từ dữ liệu.", "Ở miền Bắc Việt Nam.", "Ở miền Bắc.", "Thủ đô là Hà Nội."]
    b = behaviour(answers, refs, stopped=[False, True, True, True])
    assert b["stop_rate"] == 75.0 and b["stopped"] == 3
    assert b["loop_rate"] == 25.0 and b["looped"] == 1
    # answer words 9 + 9 + 6 + 2 + 2 + 2 = 30; reference words 9 + 5 + 3 + 5 = 22
    assert b["length_ratio"] == pytest.approx(30 / 22)
    assert b["language_match"] == 75.0  # "The north." is English for a Vietnamese reference
    assert math.isnan(behaviour([""], [""], [True])["length_ratio"])
    with pytest.raises(ValueError):
        behaviour(["a"], ["b"], [])


INSTRUCTION = "Answer the question using only the numbered passages below. If they do not hold the answer, say so."


def test_copied_counts_the_words_inside_runs_of_eight_shared_with_the_prompt():
    # the instruction's first 9 words (two overlapping 8-word runs), then 2 of its own: 9 copied of 11
    assert copied("Answer the question using only the numbered passages below and nothing", INSTRUCTION) == 9
    assert copied("answer THE question, using only the numbered passages", INSTRUCTION) == 8  # case, commas: no matter
    assert copied("the question using only the numbered passages", INSTRUCTION) == 0  # 7 words: not a copy
    assert copied("Answer the question using only the listed passages below", INSTRUCTION) == 0  # no 8-word run shared
    assert copied("", INSTRUCTION) == 0 and copied("a b c d e f g h", "") == 0


def test_copy_rate_is_copied_words_over_all_answer_words():
    prompt = INSTRUCTION + "\n[1] Hà Nội là thủ đô của nước Cộng hòa Xã hội chủ nghĩa Việt Nam."
    answers = ["Answer the question using only the numbered passages below. Hà Nội.",   # 9 of 11 copied
               "Thủ đô là Hà Nội là thủ đô của nước Cộng hòa Xã hội",                  # 11 of 14 copied
               "Hà Nội."]                                                               # 0 of 2
    b = behaviour(answers, ["Hà Nội."] * 3, [True] * 3, [prompt] * 3)
    assert b["copy_rate"] == pytest.approx(100 * 20 / 27)
    assert "copy_rate" not in behaviour(answers, ["Hà Nội."] * 3, [True] * 3)  # no prompts, no measure
    with pytest.raises(ValueError, match="2 prompts"):
        behaviour(answers, ["x"] * 3, [True] * 3, [prompt] * 2)
