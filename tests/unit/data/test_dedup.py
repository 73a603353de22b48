import json
import os
import random
import subprocess
import sys
import textwrap

import numpy as np

from luyen.data.dedup import Deduper, key_hashes, lsh_params
from luyen.data.keyhash import text_key

LETTERS = "abcdeghiklmnopqrstuvxyàáạảãâầấậơờớợưừứựđêềếệôồốộ"
VOCAB = sorted({"".join(random.Random(i).choices(LETTERS, k=1 + i % 6)) for i in range(4000)})


def sentence(rng: random.Random, n: int) -> list[str]:
    return [rng.choice(VOCAB) for _ in range(n)]


def replace_one(rng: random.Random, words: list[str]) -> list[str]:
    out = list(words)
    at = rng.randrange(len(out))
    out[at] = rng.choice([w for w in VOCAB[:50] if w != out[at]])
    return out


def bigram_jaccard(a: list[str], b: list[str]) -> float:
    x, y = set(zip(a, a[1:])), set(zip(b, b[1:]))
    return len(x & y) / len(x | y)


def dedup(texts: list[str], batch: int | None = None, **kw):
    d = Deduper(**kw)
    batch = batch or max(1, len(texts))
    for lo in range(0, len(texts), batch):
        d.add(texts[lo:lo + batch])
    return d.finish()


THIRTY = ("Hãng hàng không cho phép mỗi hành khách mang theo một kiện hành lý xách tay tối đa bảy "
          "kilôgam và một túi nhỏ đựng máy tính lên máy bay")


def test_text_key_folds_case_punctuation_and_space_but_keeps_diacritics():
    assert text_key("  Hòa-bình,  THẾ GIỚI! ") == "hòa bình thế giới"
    assert text_key("“Xin chào”… bạn?\n\tKhỏe không") == "xin chào bạn khỏe không"
    assert text_key("hòa") != text_key("hoa")
    assert text_key("STRASSE") == text_key("straße")  # casefold, not lower
    assert text_key("1 + 1 = 2 $") == "1 + 1 = 2 $"  # symbols are not punctuation
    assert text_key("?!…") == ""


def test_exact_duplicates_ignore_case_punctuation_and_whitespace():
    texts = ["Hello, World!", "hello world", "HELLO   world...", "Hello World, again", "hòa bình", "hoa binh", "Hòa  bình!"]
    r = dedup(texts)
    assert r.exact_of.tolist() == [-1, 0, 0, -1, -1, -1, 4]
    assert r.n_exact == 3
    assert r.cluster.tolist()[:3] == [0, 0, 0]
    assert not r.near_removed.any()


def test_batch_path_splits_words_exactly_like_text_key():
    # Every punctuation/whitespace character text_key removes, mixed with letters, symbols,
    # combining marks, emoji, lone surrogates and NUL: equal keys must be exact duplicates and
    # different keys must not.
    rng = random.Random(5)
    pool = ([chr(c) for c in range(0x21, 0x7F)] + list(" \t\n\r\x0b\x0c\x1c\x1f\x00\x85\xa0\u2028\u3000\u200a")
            + list("“”‘’…–—«»¿¡·、。！？・") + ["\u0301", "\U0001F600", "\U00010100", "\ud800", "ß", "İ", "Đ", "ố"]
            + ["a", "b", "hòa", "hoa"] * 20)
    texts = ["".join(rng.choices(pool, k=rng.randint(0, 12))) for _ in range(3000)]
    texts += [text_key(t) for t in texts]
    first: dict[str, int] = {}
    expected = [first.setdefault(text_key(t), i) for i, t in enumerate(texts)]
    expected = [-1 if f == i else f for i, f in enumerate(expected)]
    assert dedup(texts).exact_of.tolist() == expected
    assert dedup(texts, batch=1).exact_of.tolist() == expected
    by_hash: dict[int, int] = {}
    assert [by_hash.setdefault(h, i) for i, h in enumerate(key_hashes(texts).tolist())] == \
        [i if e < 0 else e for i, e in enumerate(expected)]


def test_one_changed_word_in_thirty_is_a_near_duplicate():
    words = THIRTY.split()
    assert len(words) == 30
    changed = words[:13] + ["hai"] + words[14:]  # 'lý' -> 'hai': 27 of 31 bigrams shared, J = 0.87
    r = dedup([THIRTY, " ".join(changed)])
    assert r.exact_of.tolist() == [-1, -1]
    assert r.cluster.tolist() == [0, 0]
    assert r.near_removed.tolist() == [False, True]
    assert r.n_near == 1


def test_unrelated_texts_are_not_near_duplicates():
    other = ("Mô hình ngôn ngữ được tinh chỉnh trên dữ liệu của đội để trả lời câu hỏi về chính sách "
             "hoàn tiền và đổi vé của hãng trong mùa cao điểm cuối năm")
    r = dedup([THIRTY, other])
    assert r.cluster.tolist() == [0, 1]
    assert not r.near_removed.any()


def test_template_texts_below_the_threshold_stay_apart():
    # Pairs share 8-9 of 13-14 bigrams (Jaccard 0.57-0.69): many of them, none a near duplicate.
    texts = [f"Tin nhắn số {i} về chủ đề {lab} với nội dung riêng {i * 31}"
             for lab, n in (("refund", 100), ("baggage", 50)) for i in range(n)]
    r = dedup(texts)
    assert r.n_exact == r.n_near == 0
    assert r.cluster.tolist() == list(range(150))


def test_clusters_are_transitive_labelled_by_first_record_and_follow_exact_duplicates():
    rng = random.Random(1)
    a = sentence(rng, 60)
    b = a[:10] + ["x1"] + a[11:40] + ["x2"] + a[41:]    # 2 words changed: J(a, b) = 55/63
    c = b[:20] + ["x3"] + b[21:50] + ["x4"] + b[51:]    # 2 more: J(b, c) = 55/63, J(a, c) = 51/67
    assert bigram_jaccard(a, c) < 0.8 <= min(bigram_jaccard(a, b), bigram_jaccard(b, c))
    texts = [" ".join(sentence(rng, 30)), " ".join(a), " ".join(b), " ".join(c), " ".join(b).upper(), " ".join(a) + "!"]
    r = dedup(texts)
    assert r.exact_of.tolist() == [-1, -1, -1, -1, 2, 1]
    assert r.cluster.tolist() == [0, 1, 1, 1, 1, 1]  # c joins a's cluster through b
    assert r.near_removed.tolist() == [False, False, True, True, False, False]


def test_results_do_not_depend_on_batch_size():
    rng = random.Random(2)
    texts = []
    for _ in range(60):
        words = sentence(rng, rng.randint(1, 35))
        texts += [" ".join(words), " ".join(replace_one(rng, words)), " ".join(words).title()]
    runs = [dedup(texts, batch) for batch in (1, 7, None)]
    for r in runs[1:]:
        for field in ("exact_of", "cluster", "near_removed"):
            assert np.array_equal(getattr(r, field), getattr(runs[0], field))
    assert runs[0].n_near > 0 and runs[0].n_exact > 0


def test_same_results_in_processes_with_different_hash_seeds():
    # The raw hashes too: results alone could agree by luck while hashes differ per process.
    code = textwrap.dedent("""
        import json
        from luyen.data.dedup import Deduper
        d = Deduper()
        d.add(["Xin chào bạn, hôm nay thế nào?", "xin chào bạn hôm nay thế nào",
               "một hai ba bốn năm sáu bảy tám", "một hai ba bốn năm sáu bảy chín", "khác hẳn"])
        d.add(["Một hai ba bốn năm sáu bảy tám!"])
        r = d.finish()
        print(json.dumps([r.exact_of.tolist(), r.cluster.tolist(), r.near_removed.tolist(),
                          d._hashes.column(0).tolist(), d._hashes.column(2).tolist()]))
    """)
    outputs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        outputs.append(json.loads(run.stdout))
    assert outputs[0] == outputs[1]
    assert outputs[0][0] == [-1, 0, -1, -1, -1, 2]


def test_near_off_finds_exact_duplicates_only():
    changed = THIRTY.replace("bảy", "tám")
    r = dedup([THIRTY, changed, THIRTY.upper()], near=False)
    assert r.exact_of.tolist() == [-1, -1, 0]
    assert r.cluster.tolist() == [0, 1, 0]
    assert not r.near_removed.any()


def test_empty_inputs_and_texts_without_words():
    r = Deduper().finish()
    assert len(r.exact_of) == len(r.cluster) == len(r.near_removed) == 0
    r = dedup(["", "?!", "a", "…"])
    assert r.exact_of.tolist() == [-1, 0, -1, 0]
    assert r.cluster.tolist() == [0, 0, 2, 0]
    assert not r.near_removed.any()


def test_long_texts_are_chunked_without_changing_results():
    rng = random.Random(3)
    long_text = " ".join(sentence(rng, 60_000))
    texts = ["ngắn", long_text, long_text.replace(" ", "  ", 1), " ".join(replace_one(rng, long_text.split()))]
    r = dedup(texts)
    assert r.exact_of.tolist() == [-1, -1, 1, -1]
    assert r.near_removed.tolist() == [False, False, False, True]


def test_recall_and_false_positives_on_synthetic_data():
    rng = random.Random(4)
    texts = []
    for _ in range(200):
        words = sentence(rng, rng.randint(26, 34))
        texts += [" ".join(words), " ".join(replace_one(rng, words))]
    r = dedup(texts, batch=100)
    assert r.near_removed[1::2].mean() >= 0.9
    assert not r.near_removed[0::2].any()

    distinct = [" ".join(sentence(rng, rng.randint(25, 40))) for _ in range(2000)]
    r = dedup(distinct)
    assert (r.cluster != np.arange(len(distinct))).sum() < 20


def test_bands_and_rows_match_datasketch_optimal_param():
    # Values published for datasketch's _optimal_param (text-dedup's docstring examples).
    assert lsh_params(0.75, 256, 0.5, 0.5) == (21, 12)
    assert lsh_params(0.75, 256, 0.1, 0.9) == (28, 9)
    assert lsh_params(0.8, 64) == (9, 7)
    d = Deduper(threshold=0.8, num_perm=64)
    assert (d.bands, d.rows) == (9, 7)
