"""Behaviour metrics on constructed answers, every value worked out by hand."""
from __future__ import annotations

import math

import pytest

from luyen.evaluate.behaviour import behaviour, language, loops

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
