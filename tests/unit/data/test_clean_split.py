import unicodedata

import numpy as np

from luyen.config import CleanConfig
from luyen.data.clean import fold_whitespace, make_cleaner
from luyen.data.split import assign_splits, cross_split_groups, merge_groups


def test_nfc_makes_decomposed_vietnamese_equal():
    clean = make_cleaner(CleanConfig())
    decomposed = unicodedata.normalize("NFD", "Hòa bình Việt Nam")
    assert decomposed != "Hòa bình Việt Nam"
    assert clean(decomposed) == "Hòa bình Việt Nam"


def test_control_zero_width_and_whitespace():
    clean = make_cleaner(CleanConfig())
    assert clean("  Xin\u200b chào\x07\t\tbạn \ufeff ") == "Xin chào bạn"
    assert clean("dòng 1  \r\n\r\n\r\n\r\n  dòng 2") == "dòng 1\n\ndòng 2"
    assert fold_whitespace("a \n b") == "a\nb"


def test_tone_style_is_applied_when_configured():
    assert make_cleaner(CleanConfig(vietnamese_tone="new"))("hoà bình, khoẻ, thuỷ") == "hòa bình, khỏe, thủy"
    assert make_cleaner(CleanConfig(vietnamese_tone="keep"))("hoà") == "hoà"


def test_split_exact_fractions_and_determinism():
    groups = np.arange(1000)
    a = assign_splits(groups, None, (0.8, 0.1, 0.1), seed=3)
    assert np.bincount(a).tolist() == [800, 100, 100]
    assert np.array_equal(a, assign_splits(groups, None, (0.8, 0.1, 0.1), seed=3))
    assert not np.array_equal(a, assign_splits(groups, None, (0.8, 0.1, 0.1), seed=4))


def test_groups_never_cross_splits():
    groups = np.repeat(np.arange(50), 7)
    split = assign_splits(groups, None, (0.8, 0.1, 0.1), seed=0)
    assert cross_split_groups(groups, split) == 0
    assert cross_split_groups(np.array([0, 0]), np.array([0, 1], dtype=np.int8)) == 1


def test_stratified_split_keeps_label_proportions():
    labels = np.array([0] * 500 + [1] * 300 + [2] * 200)
    split = assign_splits(np.arange(1000), labels, (0.8, 0.1, 0.1), seed=1)
    for lab, n in ((0, 500), (1, 300), (2, 200)):
        assert np.bincount(split[labels == lab], minlength=3).tolist() == [n * 0.8, n * 0.1, n * 0.1]


def test_merge_groups_is_transitive():
    a = np.array([0, 0, 2, 3, 4, 5])
    b = np.array([0, 1, 1, 3, 3, 5])
    assert merge_groups(a, b).tolist() == [0, 0, 0, 3, 3, 5]
