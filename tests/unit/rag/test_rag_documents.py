"""Reading documents: every supported type, and every kind of bad file reported by name and skipped."""
from pathlib import Path

import pytest

from luyen.errors import LuyenError
from luyen.rag.documents import find_documents, read_document, read_documents


def text_pdf(path: Path, lines: list[str]) -> Path:
    """A one-page PDF whose text layer holds `lines` (Helvetica, ASCII), with a correct xref."""
    stream = "BT /F1 12 Tf 72 720 Td " + " ".join(f"({t}) Tj 0 -16 Td" for t in lines) + " ET"
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
               "/Resources << /Font << /F1 5 0 R >> >> >>",
               f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream",
               "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out, offsets = b"%PDF-1.4\n", []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{n} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    path.write_bytes(out)
    return path


def test_each_type_reads_into_sections(tmp_path):
    (tmp_path / "a.md").write_text("# Hoàn vé\n\nHoàn vé là việc hủy.", encoding="utf-8")
    (tmp_path / "b.txt").write_text("\ufeffVăn bản thường.", encoding="utf-8")
    (tmp_path / "c.html").write_text("<html><head><title>Hành lý</title><style>p{}</style></head><body>"
                                     "<h1>Hành lý</h1><p>Xách <b>tay</b> 7 kg.</p><script>x=1</script>"
                                     "<table><tr><td>Tiết kiệm</td><td>7 kg</td></tr></table></body></html>",
                                     encoding="utf-8")
    (tmp_path / "d.jsonl").write_text('{"text": "Dòng một."}\n\n{"text": "Dòng ba.", "id": 3}\n', encoding="utf-8")
    text_pdf(tmp_path / "e.pdf", ["Baggage allowance is 7 kg.", "Pets travel in the hold."])
    docs, skipped = read_documents([tmp_path])
    by = {d.source: d for d in docs}
    assert skipped == [] and sorted(by) == ["a.md", "b.txt", "c.html", "d.jsonl", "e.pdf"]
    assert by["a.md"].title == "Hoàn vé" and by["b.txt"].sections[0].text == "Văn bản thường."
    html = by["c.html"].sections[0].text
    assert by["c.html"].title == "Hành lý" and "Xách tay 7 kg." in html.splitlines()
    assert "x=1" not in html and "p{}" not in html and "Tiết kiệm | 7 kg" in html
    assert [(s.text, s.line) for s in by["d.jsonl"].sections] == [("Dòng một.", 1), ("Dòng ba.", 3)]
    pdf = by["e.pdf"].sections
    assert pdf[0].page == 1 and "Baggage allowance is 7 kg." in pdf[0].text and "Pets" in pdf[0].text
    assert len(by["a.md"].sha256) == 64


@pytest.mark.parametrize("name, data, says", [
    ("empty.md", b"   \n", "empty"),
    ("binary.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
    ("legacy.md", "Phí hành lý xách tay là bao nhiêu".encode("latin-1"), "not UTF-8"),
    ("broken.pdf", b"%PDF-1.4\nthis is not a pdf body at all", "unreadable PDF"),
    ("notes.docx", b"PK\x03\x04", "unsupported document type"),
    ("bad.jsonl", b'{"text": "ok"}\n{"body": "no text field"}\n', "bad.jsonl:2: field 'text'"),
    ("badjson.jsonl", b'{"text": "ok"}\n{"text": \n', "not valid JSON"),
    ("badchat.jsonl", b'{"messages": [{"role": "user", "content": null}]}\n', "badchat.jsonl:1: field 'text'"),
])
def test_bad_files_are_one_line_errors_naming_the_file(tmp_path, name, data, says):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(LuyenError) as e:
        read_document(path, name)
    assert says in e.value.render() and name in e.value.render() and "\n" not in e.value.render()


def test_image_only_pdf_asks_for_ocr(tmp_path):
    from pypdf import PdfWriter
    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    with open(tmp_path / "scan.pdf", "wb") as f:
        writer.write(f)
    with pytest.raises(LuyenError, match="no text layer"):
        read_document(tmp_path / "scan.pdf", "scan.pdf")


def test_bad_files_are_skipped_and_the_rest_read(tmp_path):
    (tmp_path / "good.md").write_text("Nội dung tốt.", encoding="utf-8")
    (tmp_path / "empty.txt").write_bytes(b"")
    docs, skipped = read_documents([tmp_path])
    assert [d.source for d in docs] == ["good.md"]
    assert [s["file"] for s in skipped] == [str(tmp_path / "empty.txt")] and "empty" in skipped[0]["error"]


def test_sources_are_relative_to_the_folder_and_collisions_refused(tmp_path):
    for sub in ("x", "y"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "same.md").write_text("a", encoding="utf-8")
    (tmp_path / ".hidden.md").write_text("a", encoding="utf-8")
    (tmp_path / "data.csv").write_text("a", encoding="utf-8")  # not a document type: folders skip it
    assert [s for s, _ in find_documents([tmp_path])] == ["x/same.md", "y/same.md"]
    with pytest.raises(LuyenError, match="both be cited as 'same.md'"):
        find_documents([tmp_path / "x" / "same.md", tmp_path / "y" / "same.md"])
    with pytest.raises(LuyenError, match="no such file"):
        find_documents([tmp_path / "missing"])


def test_prepared_chat_lines_index_as_their_turns(tmp_path):
    """`luyen data prepare`'s train.jsonl (chat records) reads as question-and-answer passages, one per
    line, system prompts left out: the retrieval baseline over a team's own answers."""
    import json
    lines = [{"kind": "chat", "messages": [{"role": "system", "content": "Ngắn gọn."},
                                           {"role": "user", "content": "Học máy là gì?"},
                                           {"role": "assistant", "content": "Là cách máy học từ dữ liệu."}]},
             {"kind": "chat", "messages": [{"role": "user", "content": "Overfitting?"},
                                           {"role": "assistant", "content": "Học thuộc dữ liệu huấn luyện."}]}]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines), encoding="utf-8")
    doc = read_document(path, "train.jsonl")
    assert [(s.text, s.line) for s in doc.sections] == [
        ("Học máy là gì?\n\nLà cách máy học từ dữ liệu.", 1), ("Overfitting?\n\nHọc thuộc dữ liệu huấn luyện.", 2)]
