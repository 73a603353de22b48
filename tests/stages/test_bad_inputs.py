"""Every bad input ends in one line naming file, line and field with a fix, exit code 2, no
traceback, the input untouched and no output folder that looks complete."""
from __future__ import annotations

import gzip
import hashlib
import json

import pytest
from typer.testing import CliRunner

from luyen.cli import app

GOOD = {"question": "Học máy là gì?", "answer": "Một nhánh của trí tuệ nhân tạo."}


def jsonl(*objs) -> bytes:
    return b"".join(json.dumps(o, ensure_ascii=False).encode() + b"\n" for o in objs)


def good_lines(n: int = 5) -> list[dict]:
    return [{"question": f"Câu hỏi số {i} về học máy?", "answer": f"Câu trả lời số {i}."} for i in range(n)]


# (case id, file name, content, substrings the one-line error must contain)
CASES = [
    ("malformed_json_line", "a.jsonl", jsonl(GOOD) + b'{"question": "x", "answer": \n', ["a.jsonl:2", "not valid JSON"]),
    ("empty_file", "a.jsonl", b"", ["a.jsonl", "empty"]),
    ("whitespace_only", "a.jsonl", b"\n  \n\t\n", ["a.jsonl", "empty"]),
    ("windows_1258", "a.jsonl", "{\"question\": \"Cà phê Đà Lạt?\", \"answer\": \"Ngon.\"}\n".encode("cp1258", errors="ignore"), ["a.jsonl", "not UTF-8", "iconv"]),
    ("latin1_csv", "a.csv", "question,answer\ncafé?,oui à\n".encode("latin-1"), ["a.csv", "not UTF-8"]),
    ("truncated_gzip", "a.jsonl.gz", gzip.compress(jsonl(*good_lines(400)))[:-60], ["a.jsonl.gz", "truncated"]),
    ("not_gzip", "a.jsonl.gz", jsonl(GOOD), ["a.jsonl.gz", "gzip"]),
    ("binary_png", "a.jsonl", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), ["a.jsonl", "binary"]),
    ("missing_answer", "a.jsonl", jsonl(GOOD, {"question": "Thiếu câu trả lời?"}), ["a.jsonl:2", "'answer'", "Fix:"]),
    ("null_answer", "a.jsonl", jsonl(GOOD, {"question": "q?", "answer": None}), ["a.jsonl:2", "'answer'", "null"]),
    ("answer_is_list", "a.jsonl", jsonl(GOOD, {"question": "q?", "answer": ["a", "b"]}), ["a.jsonl:2", "'answer'", "a list"]),
    ("answer_is_object", "a.jsonl", jsonl(GOOD, {"question": "q?", "answer": {"x": {"y": [1]}}}), ["a.jsonl:2", "an object"]),
    ("empty_answer", "a.jsonl", jsonl(GOOD, {"question": "q?", "answer": "   "}), ["a.jsonl:2", "'answer'", "empty"]),
    ("nan_literal", "a.jsonl", jsonl(GOOD) + b'{"question": "q?", "answer": NaN}\n', ["a.jsonl:2", "not valid JSON"]),
    ("record_not_object", "a.jsonl", jsonl(GOOD, ["question", "answer"]), ["a.jsonl:2", "expected a JSON object"]),
    ("unknown_keys", "a.jsonl", jsonl(GOOD, {"foo": "x", "bar": "y"}), ["a.jsonl:2", "cannot tell the format", "data.columns"]),
    ("ragged_csv", "a.csv", "question,answer\nq1,a1\nq2,a2,extra\n".encode(), ["a.csv:3", "3 fields", "header has 2"]),
    ("duplicate_header", "a.csv", "question,question\nq,a\n".encode(), ["a.csv:1", "repeated"]),
    ("unknown_role", "a.jsonl", jsonl({"messages": [{"role": "user", "content": "hi"}, {"role": "robot", "content": "x"}]}),
     ["a.jsonl:1", "messages[1].role", "unknown role"]),
    ("no_assistant", "a.jsonl", jsonl({"messages": [{"role": "user", "content": "hi"}]}), ["a.jsonl:1", "no assistant"]),
    ("empty_content", "a.jsonl", jsonl({"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "x"}]}),
     ["a.jsonl:1", "messages[0].content", "empty"]),
    ("two_user_turns", "a.jsonl", jsonl({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"},
                                                      {"role": "assistant", "content": "c"}]}), ["a.jsonl:1", "in a row"]),
    ("messages_not_list", "a.jsonl", jsonl({"messages": "hello"}), ["a.jsonl:1", "'messages'", "list"]),
    ("sharegpt_bad_from", "a.jsonl", jsonl({"conversations": [{"from": "alien", "value": "x"}, {"from": "gpt", "value": "y"}]}),
     ["a.jsonl:1", "conversations[0].from"]),
    ("ten_mb_record", "a.jsonl", jsonl(GOOD, {"question": "q", "answer": "x" * 10_000_000}), ["a.jsonl:2", "MB", "max_record_bytes"]),
    ("deep_nesting", "a.jsonl", jsonl(GOOD) + b'{"question": "q", "answer": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n",
     ["a.jsonl:2", "JSON"]),
    ("deep_nesting_json", "a.json", b"[" * 200_000 + b"]" * 200_000, ["a.json", "nested too deeply"]),
    ("nul_bytes", "a.jsonl", jsonl(GOOD) + b'{"question": "q\x00", "answer": "a"}\n', ["a.jsonl:2", "NUL"]),
    ("lone_surrogate", "a.jsonl", jsonl(GOOD) + b'{"question": "q\\ud800", "answer": "a"}\n', ["a.jsonl:2", "surrogate"]),
    ("invalid_utf8_mid_file", "a.jsonl", jsonl(*good_lines(3000)) + b'{"question": "\xff\xfe", "answer": "a"}\n',
     ["a.jsonl", "UTF-8"]),
    ("json_scalar", "a.json", b"42", ["a.json", "list of records"]),
    ("json_list_of_strings", "a.json", b'["a", "b"]', ["a.json", "[0]", "expected a JSON object"]),
    ("squad_answer_not_in_context", "a.jsonl",
     jsonl({"context": "Hà Nội là thủ đô.", "question": "Thủ đô?", "answers": [{"text": "Huế", "answer_start": 0}]}),
     ["a.jsonl:1", "answers[0]", "does not occur"]),
    ("mixed_kinds", "a.jsonl", jsonl(GOOD, {"text": "Một đoạn văn bản thô."}), ["mixed record kinds", "data.format"]),
    ("only_duplicates_empty", "a.jsonl", jsonl({"question": "\u200b ", "answer": "x"}), ["no usable records"]),
    ("unsupported_type", "a.xlsx", b"PK\x03\x04", ["a.xlsx", "unsupported file type"]),
    ("corrupt_parquet", "a.parquet", b"PAR1garbage", ["a.parquet", "parquet"]),
]


def _run(args, monkeypatch=None):
    return CliRunner().invoke(app, args, catch_exceptions=False)


def _one_line_error(result) -> str:
    text = result.stderr.strip()
    assert result.exit_code == 2, (result.exit_code, result.output, text)
    assert "Traceback" not in result.output + text
    assert len(text.splitlines()) == 1, text
    return text


@pytest.mark.parametrize("case,name,content,expect", CASES, ids=[c[0] for c in CASES])
def test_bad_input_prepare(case, name, content, expect, tmp_path, tiny_tokenizer_dir):
    src = tmp_path / "in" / name
    src.parent.mkdir()
    src.write_bytes(content)
    before = hashlib.sha256(content).hexdigest()
    out = tmp_path / "out"
    result = _run(["data", "prepare", str(src), "--out", str(out), "--model", str(tiny_tokenizer_dir)])
    line = _one_line_error(result)
    for part in expect:
        assert part in line, (part, line)
    assert hashlib.sha256(src.read_bytes()).hexdigest() == before  # input never modified
    assert not (out / "manifest.json").exists()
    assert not (out / "train.jsonl").exists()


def test_check_lists_every_bad_record_and_exits_2(tmp_path, tiny_tokenizer_dir):
    src = tmp_path / "a.jsonl"
    src.write_bytes(jsonl(*good_lines(10), {"question": "q"}, {"answer": None, "question": "q"}))
    result = _run(["data", "check", str(src), "--model", str(tiny_tokenizer_dir), "--json"])
    assert result.exit_code == 2
    report = json.loads(result.stdout)
    assert report["errors"]["count"] == 2
    assert any(":11:" in e and "'answer'" in e for e in report["errors"]["first"])
    assert any(":12:" in e and "null" in e for e in report["errors"]["first"])


def test_on_error_skip_counts_and_continues(tmp_path, tiny_tokenizer_dir):
    src = tmp_path / "a.jsonl"
    src.write_bytes(jsonl(*good_lines(20)) + b"{broken\n" + jsonl({"question": "q", "answer": None}))
    out = tmp_path / "out"
    result = _run(["data", "prepare", str(src), "--out", str(out), "--model", str(tiny_tokenizer_dir), "data.on_error=skip"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["errors"]["count"] == 2
    assert report["errors"]["by_problem"] == {"unreadable": 1, "null": 1}
    assert sum(1 for s in ("train", "val", "test") for _ in (out / f"{s}.jsonl").open()) == 20


@pytest.mark.parametrize("args,expect", [
    (["data", "prepare", "nope/missing.jsonl", "--out", "OUT"], ["nope/missing.jsonl", "no such file"]),
    (["data", "check", "EMPTYDIR"], ["empty", "no data files"]),
    (["data", "check", "GLOB/*.jsonl"], ["matches no file"]),
    (["data", "check", "GOOD", "data.splitt.train=0.5"], ["unknown config key 'data.splitt'", "did you mean 'data.split'"]),
    (["data", "check", "GOOD", "data.split.train=0.5"], ["must be 1.0"]),
    (["data", "check", "GOOD", "sed=7"], ["unknown config key 'sed'", "did you mean 'seed'"]),  # not "no such file"
    (["data", "check", "GOOD", "BADYAML"], ["not valid YAML"]),  # the config is a positional word
    (["data", "check", "GOOD", "BADYAML", "BADYAML"], ["one config file expected"]),
    (["data", "check", "GOOD", "--model", "gemma3-27Om"], ["did you mean"]),
])
def test_bad_paths_and_config(args, expect, tmp_path, tiny_tokenizer_dir):
    (tmp_path / "empty").mkdir()
    good = tmp_path / "good.jsonl"
    good.write_bytes(jsonl(*good_lines(5)))
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("data:\n  split: [unclosed\n")
    repl = {"OUT": str(tmp_path / "out"), "EMPTYDIR": str(tmp_path / "empty"), "GLOB": str(tmp_path / "zz"),
            "GOOD": str(good), "BADYAML": str(bad_yaml)}
    args = [repl.get(a, a.replace("GLOB", str(tmp_path / "zz"))) for a in args]
    if "--model" not in args:
        args += ["--model", str(tiny_tokenizer_dir)]
    line = _one_line_error(_run(args))
    for part in expect:
        assert part in line, (part, line)


def test_output_folder_holding_another_run_is_refused(tmp_path, tiny_tokenizer_dir):
    src = tmp_path / "a.jsonl"
    src.write_bytes(jsonl(*good_lines(10)))
    out = tmp_path / "out"
    base = ["data", "prepare", str(src), "--out", str(out), "--model", str(tiny_tokenizer_dir)]
    assert _run(base).exit_code == 0
    manifest = (out / "manifest.json").read_bytes()
    line = _one_line_error(_run(base))
    assert "already holds another run" in line and "--overwrite" in line
    assert (out / "manifest.json").read_bytes() == manifest  # the earlier run is untouched
    assert _run(base + ["--overwrite"]).exit_code == 0


def test_output_folder_containing_inputs_is_refused(tmp_path, tiny_tokenizer_dir):
    src = tmp_path / "data" / "a.jsonl"
    src.parent.mkdir()
    src.write_bytes(jsonl(*good_lines(10)))
    line = _one_line_error(_run(["data", "prepare", str(src), "--out", str(tmp_path / "data"), "--overwrite",
                                 "--model", str(tiny_tokenizer_dir)]))
    assert "never overwrites inputs" in line
    assert src.exists()


def test_real_process_prints_no_traceback(tmp_path, tiny_tokenizer_dir):
    import subprocess
    import sys
    src = tmp_path / "a.jsonl"
    src.write_bytes(b'{"question": "x", "answer": \n')
    proc = subprocess.run([sys.executable, "-m", "luyen", "data", "check", str(src), "--model", str(tiny_tokenizer_dir)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "a.jsonl:1" in proc.stdout + proc.stderr


def test_top_level_override_sets_the_split_seed(tmp_path, tiny_tokenizer_dir):
    """`seed=7` (no dot) is an override, as the README shows, not a path."""
    src = tmp_path / "a.jsonl"
    src.write_bytes(jsonl(*good_lines(40)))
    splits = {}
    for seed in ("7", "8"):
        out = tmp_path / f"out{seed}"
        result = _run(["data", "prepare", str(src), "--out", str(out), "--model", str(tiny_tokenizer_dir), f"seed={seed}"])
        assert result.exit_code == 0, result.output
        assert json.loads((out / "manifest.json").read_text())["config"]["seed"] == int(seed)
        splits[seed] = (out / "test.jsonl").read_text()
    assert splits["7"] != splits["8"]
