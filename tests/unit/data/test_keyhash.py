import random
import unicodedata

import numpy as np

from luyen.data.keyhash import reference_word_hashes, text_key, word_hashes

VIETNAMESE = ["Hãng hàng không cho phép mỗi hành khách mang theo một kiện hành lý xách tay tối đa bảy kg.",
              "ĐỔI VÉ – HOÀN TIỀN: “Quý khách vui lòng liên hệ tổng đài 1900-1100!”", "hòa", "hoa", "Hòa"]


def assert_same(texts: list[str]) -> None:
    fast, ref = word_hashes(texts), reference_word_hashes(texts)
    for name, a, b in zip(("words", "bounds", "exact"), fast, ref):
        assert a.dtype == b.dtype and np.array_equal(a, b), name


def test_fast_path_equals_the_reference_on_varied_text():
    rng = random.Random(7)
    pool = ([chr(c) for c in range(0x20, 0x7F)] + list(" \t\n\r\x0b\x0c\x1c\x1f\x85\xa0\u2028\u3000\u200a")
            + list("“”‘’…–—«»¿¡·、。！？・") + ["\u0301", "\u0323", "\U0001F600", "\U0001F1FB\U0001F1F3", "\U00010100"]
            + ["\ud800", "\udfff", "ß", "İ", "ﬁ", "Đ", "ố", "ệ", "漢字", "ข้าว"] + ["a", "hòa", "Việt"] * 10)
    texts = ["".join(rng.choices(pool, k=rng.randint(0, 15))) for _ in range(2000)]
    texts += VIETNAMESE + [unicodedata.normalize("NFD", t) for t in VIETNAMESE]  # combining marks
    texts += ["", " ", "?!…", "\U0001F600", "a\U0001F600b", "x" * 5000]
    assert_same(texts)                     # one chunk
    for t in texts[:300] + texts[-16:]:    # one text at a time
        assert_same([t])
    assert_same([])


def test_nul_inside_texts_stays_inside_its_word():
    # The fast path joins a chunk's texts with NUL; texts that hold NUL themselves go alone.
    texts = ["a\x00b c", "a", "\x00", "b", "Hòa\x00bình", "", "\x00\x00 x"]
    assert_same(texts)
    assert word_hashes(texts)[1].tolist() == [0, 2, 3, 4, 5, 6, 6, 8]
    assert_same(["a\x00b"])


def test_every_code_point_splits_as_text_key_does():
    # The hand-written UTF-8 decoder against Python's: each BMP code point (lone surrogates
    # included) between two letters, and a 4-byte one for every first three bytes, which the
    # decoder reads as if they began a 3-byte character.
    cps = list(range(1, 0x10000)) + list(range(0x10000, 0x110000, 64)) + [0x1F600, 0x10FFFF]
    texts = [" ".join(f"a{chr(c)}b" for c in cps[i:i + 256]) for i in range(0, len(cps), 256)]
    assert_same(texts)


def test_equal_keys_give_equal_exact_hashes_and_different_keys_differ():
    texts = ["Xin chào, bạn!", "xin   chào bạn", "XIN CHÀO… BẠN?", "xin chào", "chào xin bạn", "xin chao ban"]
    exact = word_hashes(texts)[2].tolist()
    assert exact[0] == exact[1] == exact[2]
    assert len({exact[0], *exact[3:]}) == 4
    assert text_key(texts[2]) == "xin chào bạn"
