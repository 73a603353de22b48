"""augment() puts numbered passages into the last user turn; cite() reads the [n] back."""
import pytest

from luyen.errors import LuyenError
from luyen.rag import DEFAULT_TEMPLATE, Hit, augment, cite

HITS = [Hit("Phí đổi vé Tiết kiệm là 350.000 VND.", "doi-ve.md", 2, 0.9, heading="Đổi vé > Phí"),
        Hit("Hoàn vé trước 3 giờ.", "hoan-ve.md", 0, 0.5),
        Hit("Trang ba.", "guide.pdf", 4, 0.1, page=3)]


def test_augment_numbers_passages_in_the_last_user_turn_and_copies():
    messages = [{"role": "system", "content": "Bạn là trợ lý."}, {"role": "user", "content": "Chào"},
                {"role": "assistant", "content": "Chào bạn"}, {"role": "user", "content": "Phí đổi vé {x}?"}]
    out = augment(messages, HITS)
    assert messages[-1]["content"] == "Phí đổi vé {x}?"  # the input is not modified
    assert out[:3] == messages[:3]
    content = out[-1]["content"]
    assert "[1] doi-ve.md (Đổi vé > Phí)\nPhí đổi vé Tiết kiệm là 350.000 VND." in content
    assert "[2] hoan-ve.md\nHoàn vé trước 3 giờ." in content and "[3] guide.pdf p. 3\nTrang ba." in content
    assert content.index("[1]") < content.index("[2]") < content.index("[3]")
    assert content.endswith("Question: Phí đổi vé {x}?") and "cite" in content


def test_template_overrides_the_wording_and_must_hold_both_placeholders():
    out = augment([{"role": "user", "content": "Hỏi?"}], HITS[:1], "Tài liệu:\n{context}\nHỏi: {question} {json}")
    assert out[0]["content"] == "Tài liệu:\n[1] doi-ve.md (Đổi vé > Phí)\nPhí đổi vé Tiết kiệm là 350.000 VND.\nHỏi: Hỏi? {json}"
    with pytest.raises(LuyenError, match="rag.template"):
        augment([{"role": "user", "content": "Hỏi?"}], HITS, "no placeholders")
    with pytest.raises(LuyenError, match="no user message"):
        augment([{"role": "system", "content": "x"}], HITS)


def test_augment_reads_content_parts_and_says_when_nothing_was_found():
    out = augment([{"role": "user", "content": [{"type": "text", "text": "Câu hỏi"}]}], [])
    assert "(no passage was found)" in out[0]["content"] and out[0]["content"].endswith("Question: Câu hỏi")
    assert "{context}" in DEFAULT_TEMPLATE and "{question}" in DEFAULT_TEMPLATE


def test_cite_returns_each_valid_source_once_in_order():
    got = cite("Phí là 350.000 VND [1]. Hoàn trước 3 giờ [2, 1]; xem thêm [7] và [3][2].", HITS)
    assert [(c["n"], c["source"], c["label"]) for c in got] == [(1, "doi-ve.md", "doi-ve.md"), (2, "hoan-ve.md", "hoan-ve.md"),
                                                                (3, "guide.pdf", "guide.pdf p. 3")]
    assert got[0]["position"] == 2 and got[0]["text"] == HITS[0].text
    assert cite("Không có nguồn.", HITS) == [] and cite("", []) == []
