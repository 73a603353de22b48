import gzip
import json

import pytest

from luyen.data.load import expand_paths, read_rows
from luyen.errors import LuyenError


def test_expand_folder_glob_and_hidden(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / ".hidden").mkdir()
    for p in ("a.jsonl", "sub/b.csv", "sub/c.jsonl.gz", ".hidden/d.jsonl", "notes.md"):
        (tmp_path / p).write_text("x")
    found = [p.relative_to(tmp_path).as_posix() for p in expand_paths([tmp_path])]
    assert found == ["a.jsonl", "sub/b.csv", "sub/c.jsonl.gz"]
    assert [p.name for p in expand_paths([str(tmp_path / "sub" / "*.csv")])] == ["b.csv"]
    assert len(expand_paths([tmp_path / "a.jsonl", tmp_path / "a.jsonl"])) == 1


def test_txt_paragraphs_keep_their_first_line(tmp_path):
    path = tmp_path / "raw.txt"
    path.write_text("Đoạn một,\ndòng hai.\n\n\nĐoạn hai.\n", encoding="utf-8")
    rows = list(read_rows([path], 10**6))
    assert [(r.line, r.obj["text"]) for r in rows] == [(1, "Đoạn một,\ndòng hai."), (5, "Đoạn hai.")]


def test_json_object_holding_records_and_positions(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"meta": {"v": 1}, "examples": [{"text": "a"}, {"text": "b"}]}))
    rows = list(read_rows([path], 10**6))
    assert [(r.line, r.where, r.obj) for r in rows] == [(None, "examples[0]", {"text": "a"}), (None, "examples[1]", {"text": "b"})]


def test_gzip_jsonl_with_line_numbers(tmp_path):
    path = tmp_path / "d.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write('{"text": "a"}\n\n{"text": "b"}\n')
    assert [(r.line, r.obj) for r in read_rows([path], 10**6)] == [(1, {"text": "a"}), (3, {"text": "b"})]


def test_bad_line_is_a_row_not_an_abort(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a"}\n{oops\n{"text": "c"}\n')
    rows = list(read_rows([path], 10**6))
    assert isinstance(rows[1].obj, LuyenError) and "d.jsonl:2" in rows[1].obj.render()
    assert rows[2].obj == {"text": "c"}


def test_missing_path_is_one_line(tmp_path):
    with pytest.raises(LuyenError) as e:
        expand_paths([tmp_path / "nope.jsonl"])
    assert "no such file" in str(e.value)
