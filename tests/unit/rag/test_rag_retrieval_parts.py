"""BM25 over syllables, reciprocal rank fusion and the retrieval metrics, against hand-computed values."""
import pytest

from luyen.rag.evaluate import scores
from luyen.rag.index import Hit, fuse
from luyen.rag.lexical import Lexical, fold, index_terms, syllables


def test_syllables_fold_case_tone_style_and_keep_numbers():
    assert syllables("Hành lý XÁCH TAY 7kg, phí 300.000 VND") == ["hành", "lý", "xách", "tay", "7", "kg", "phí",
                                                                  "300.000", "vnd"]
    assert syllables("Hoà bình, thuỷ thủ") == syllables("hòa bình, thủy thủ")  # old and new tone placement
    assert syllables("Hoa\u0300 bi\u0300nh") == syllables("Hoà bình")           # decomposed input (NFD)


def test_bm25_ranks_the_passage_holding_the_rare_terms_and_skips_non_matches():
    passages = ["hành lý xách tay tối đa 7 kg", "hành lý ký gửi 20 kg", "vận chuyển thú cưng mèo chó",
                "suất ăn trên máy bay"]
    bm25 = Lexical.build([syllables(p) for p in passages])
    ranked = bm25.rank("mang mèo lên máy bay", n=10)
    assert sorted(row for row, _ in ranked) == [2, 3] and ranked[0][1] > ranked[1][1] > 0
    assert [row for row, _ in bm25.rank("con mèo", n=10)] == [2]
    assert bm25.rank("xách tay", 1)[0][0] == 0
    assert bm25.rank("không có từ nào khớp zzz", 5) == []


def test_bm25_survives_a_save_and_load(tmp_path):
    bm25 = Lexical.build([syllables(p) for p in ["một hai", "ba bốn", "năm sáu"]])
    bm25.save(tmp_path / "bm25")
    assert Lexical.load(tmp_path / "bm25").rank("bốn", 3) == bm25.rank("bốn", 3)


def test_reciprocal_rank_fusion_by_hand():
    dense = [(7, 0.9), (3, 0.5)]
    lexical = [(3, 12.0), (9, 4.0)]
    fused = dict(fuse([dense, lexical], [1.0, 1.0], 60))
    assert fused[3] == pytest.approx(1 / 62 + 1 / 61)
    assert fused[7] == pytest.approx(1 / 61) and fused[9] == pytest.approx(1 / 62)
    assert [i for i, _ in fuse([dense, lexical], [1.0, 1.0], 60)] == [3, 7, 9]
    # a low dense weight lets BM25's order win unless dense agrees
    assert [i for i, _ in fuse([dense, lexical], [0.2, 1.0], 10)] == [3, 9, 7]


def test_recall_at_k_and_mrr_by_hand():
    ranked = [["a", "b", "c"], ["x", "y", "b"], ["q"]]
    queries = [{"relevant": ["b"]}, {"relevant": ["b", "x"]}, {"relevant": ["z"]}]
    got = scores(ranked, queries, (1, 3))
    assert got["recall@1"] == pytest.approx((0 + 0.5 + 0) / 3, abs=1e-4)
    assert got["recall@3"] == pytest.approx((1 + 1 + 0) / 3, abs=1e-4)
    assert got["mrr"] == pytest.approx((1 / 2 + 1 + 0) / 3, abs=1e-4)


def test_hit_label_names_page_or_line():
    assert Hit("t", "a.md", 0, 1.0).label == "a.md"
    assert Hit("t", "g.pdf", 2, 1.0, page=3).label == "g.pdf p. 3"
    assert Hit("t", "f.jsonl", 0, 1.0, line=12).label == "f.jsonl line 12"


def test_fold_drops_tone_and_vowel_marks_and_d_stroke():
    assert fold("hòa") == fold("hoà") == fold("hoa") == "hoa"
    assert [fold(t) for t in syllables("Đường BAY quốc tế, hành lý 7kg")] == ["duong", "bay", "quoc", "te", "hanh",
                                                                             "ly", "7", "kg"]


def test_a_query_without_marks_finds_the_marked_passage():
    bm25 = Lexical.build([index_terms(p) for p in ["Hành lý xách tay tối đa 7 kg.", "Đổi vé mất phí.", "Hoàn vé."]])
    assert bm25.rank("hanh ly xach tay toi da bao nhieu kg", 3)[0][0] == 0
    assert bm25.rank("doi ve", 3)[0][0] == 1


def test_folding_never_outranks_an_exact_match_that_exists():
    """hòa (peace, reconcile) and hoa (flower) fold alike; a passage full of "hoa" must not beat the one
    holding the "hòa" the user typed, however often it repeats the folded form."""
    passages = ["hoa hoa hoa hoa hoa hoa hoa hoa",                      # many folded matches, no exact one
                "lý do hòa giải được nêu ở đây cùng rất nhiều từ khác nữa trong một đoạn dài",  # one exact, long
                "hoa hồng đỏ", "vé máy bay"]
    bm25 = Lexical.build([index_terms(p) for p in passages])
    for query in ("hòa", "hoà", "HÒA giải"):  # either tone style, any case
        ranked = [row for row, _ in bm25.rank(query, 4)]
        assert ranked[0] == 1 and set(ranked) == {0, 1, 2}, (query, ranked)
    ranked = [row for row, _ in bm25.rank("hoa hồng", 4)]
    assert ranked[:2] == [2, 0] and ranked[2] == 1  # exact "hoa" passages first, the folded-only one after
    assert [row for row, _ in bm25.rank("hoa", 4)][0] in (0, 2)  # typed bare: an exact "hoa" wins the tie


def test_an_english_question_is_not_folded_into_vietnamese():
    """"can my dog" holds no mark, but it is English: folding would match cần (need) and mỹ."""
    bm25 = Lexical.build([index_terms(p) for p in ["Tôi cần mang theo đồ Mỹ", "a dog or a cat", "vé máy bay"]])
    assert [row for row, _ in bm25.rank("Can I bring my small dog on the plane?", 3)] == [1]
    assert [row for row, _ in bm25.rank("toi can mang", 3)][0] == 0  # Vietnamese typed bare still is
