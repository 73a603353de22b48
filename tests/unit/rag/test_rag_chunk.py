"""Sentence splitting and passage packing, against hand-computed spans (word counts stand in for
encoder tokens, so every budget below can be checked by eye)."""
from pathlib import Path

from luyen.rag.chunk import chunk_document, pack, split_sentences
from luyen.rag.documents import Document, Section


def words(texts):
    return [len(t.split()) for t in texts]


def doc(text: str, title: str = "Tiêu đề") -> Document:
    return Document("a.md", Path("a.md"), "0" * 64, title, [Section(text)])


def test_vietnamese_sentences_split_at_capitals_not_inside_numbers():
    text = "Vé đã mua. Đổi vé mất 300.000 VND! Ưu tiên khách già… Ấy là quy định.\n- Mục hai v.v. và hết"
    got = [text[a:b] for a, b in split_sentences(text)]
    assert got == ["Vé đã mua.", "Đổi vé mất 300.000 VND!", "Ưu tiên khách già…", "Ấy là quy định.",
                   "- Mục hai v.v. và hết"]


def test_lines_are_units_and_blank_lines_vanish():
    text = "# Tiêu đề\n\n| a | b |\n|---|---|\n\n  thụt lề  \n"
    assert [text[a:b] for a, b in split_sentences(text)] == ["# Tiêu đề", "| a | b |", "|---|---|", "thụt lề"]


def test_pack_overlaps_whole_units_and_always_advances():
    assert pack([3, 3, 3, 3], budget=6, overlap=3) == [(0, 2), (1, 3), (2, 4)]
    assert pack([3, 3, 3, 3], budget=6, overlap=0) == [(0, 2), (2, 4)]
    assert pack([5, 5, 5], budget=5, overlap=5) == [(0, 1), (1, 2), (2, 3)]  # overlap never stalls
    assert pack([2, 1, 2, 2], budget=4, overlap=0, heads=[False, True, False, False]) == [(0, 1), (1, 3), (3, 4)]


def test_chunks_keep_budget_overlap_source_position_and_offsets():
    sentences = [f"Câu {i} có năm từ." for i in range(12)]  # 5 words each
    d = doc(" ".join(sentences))
    chunks = chunk_document(d, words, chunk_tokens=20, overlap_tokens=5)
    assert [c.position for c in chunks] == list(range(len(chunks)))
    assert all(c.source == "a.md" for c in chunks)
    assert all(len(c.text.split()) <= 20 for c in chunks)
    for c in chunks:
        assert d.sections[0].text[c.start:c.start + len(c.text)] == c.text
    assert chunks[0].text == " ".join(sentences[:4])
    assert chunks[1].text.startswith(sentences[3])  # one 5-word sentence of overlap
    assert chunks[-1].text.endswith(sentences[-1])


def test_long_sentence_is_split_at_spaces_and_a_huge_word_by_characters():
    d = doc("một " * 30 + "x" * 50)
    chunks = chunk_document(d, lambda ts: [max(len(t.split()), len(t) // 10) for t in ts], 10, 0)
    assert all(max(len(c.text.split()), len(c.text) // 10) <= 10 for c in chunks)
    assert "".join(c.text.replace(" ", "") for c in chunks) == "một" * 30 + "x" * 50


def test_heading_path_follows_markdown_sections():
    text = "# Hoàn vé\nMở đầu.\n## Phí\nPhí hoàn một.\n### Nội địa\nNội địa rẻ.\n## Lưu ý\nCuối."
    chunks = chunk_document(doc(text, title="Hoàn vé"), words, chunk_tokens=3, overlap_tokens=0)
    by_text = {c.text.splitlines()[-1]: c.heading for c in chunks}
    assert by_text["Mở đầu."] == "Hoàn vé"
    assert by_text["Nội địa rẻ."] == "Hoàn vé > Phí > Nội địa"
    assert by_text["Cuối."] == "Hoàn vé > Lưu ý"
    assert not any(c.text.endswith(("## Phí", "## Lưu ý")) and len(c.text.splitlines()) > 1 for c in chunks)


def test_sections_are_never_crossed():
    d = Document("f.jsonl", Path("f.jsonl"), "0" * 64, "f", [Section("Một hai ba.", line=1), Section("Bốn năm.", line=3)])
    chunks = chunk_document(d, words, chunk_tokens=50, overlap_tokens=0)
    assert [(c.text, c.line, c.position) for c in chunks] == [("Một hai ba.", 1, 0), ("Bốn năm.", 3, 1)]
