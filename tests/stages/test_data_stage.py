"""The data stage end to end on small files: outputs, manifest, report, determinism."""
from __future__ import annotations

import codecs
import csv
import gzip
import json
import unicodedata
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from luyen.config import load_config
from luyen.data import stage
from luyen.manifest import read_manifest


def qa_rows(n: int, prefix: str = "") -> list[dict]:
    topics = ["học máy", "mạng nơ-ron", "dữ liệu", "đánh giá", "tối ưu", "tokenizer", "LoRA", "lượng tử hoá"]
    return [{"question": f"{prefix}Câu {i}: {topics[i % 8]} dùng để làm gì trong dự án số {i * 7 + 3}?",
             "answer": f"{topics[(i + 3) % 8].capitalize()} giúp mô hình số {i} học tốt hơn với chi phí {i * 13} đồng."}
            for i in range(n)]


def write_jsonl(path: Path, rows: list[dict], opener=open) -> Path:
    with opener(path, "wt", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return path


def cfg_for(model_dir, *overrides):
    return load_config(None, [f"model.name={model_dir}", *overrides])


@pytest.fixture()
def every_file_type(tmp_path) -> Path:
    d = tmp_path / "in"
    d.mkdir()
    rows = qa_rows(70)
    write_jsonl(d / "a.jsonl", rows[:10])
    write_jsonl(d / "b.jsonl.gz", rows[10:20], opener=gzip.open)
    (d / "c.json").write_text(json.dumps(rows[20:30], ensure_ascii=False), encoding="utf-8")
    (d / "d.json").write_text(json.dumps({"version": 1, "data": rows[30:35]}, ensure_ascii=False), encoding="utf-8")
    for name, delim, part in (("e.csv", ",", rows[35:45]), ("f.tsv", "\t", rows[45:50])):
        with open(d / name, "w", encoding="utf-8", newline="") as f:
            w = csv.DictWriter(f, ["question", "answer"], delimiter=delim)
            w.writeheader()
            w.writerows(part)
    pq.write_table(pa.Table.from_pylist(rows[50:60]), d / "g.parquet")
    (d / "h.jsonl").write_bytes(codecs.BOM_UTF8 + "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows[60:65]).encode())
    (d / "i.jsonl").write_bytes("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows[65:70]).encode("utf-16"))
    return d


def test_every_file_type_from_a_folder(every_file_type, tiny_tokenizer_dir, tmp_path):
    report = stage.check([every_file_type], cfg_for(tiny_tokenizer_dir))
    assert report["usable"], report["problems"]
    assert report["records"]["rows_read"] == 70 and report["records"]["kept"] == 70
    assert report["records"]["by_format"] == {"qa": 70}
    assert len(report["records"]["per_file"]) == 9


def test_prepare_writes_splits_report_and_manifest_last(tiny_tokenizer_dir, tmp_path):
    src = write_jsonl(tmp_path / "qa.jsonl", qa_rows(200))
    out = tmp_path / "out"
    manifest = stage.run(cfg_for(tiny_tokenizer_dir), [src], out)
    names = {p.name for p in out.iterdir()}
    assert names == {"train.jsonl", "val.jsonl", "test.jsonl", "report.json", "manifest.json"}
    assert read_manifest(out, "data") == json.loads((out / "manifest.json").read_text())
    # manifest written last: its mtime is the newest
    assert (out / "manifest.json").stat().st_mtime_ns >= max(p.stat().st_mtime_ns for p in out.iterdir())
    counts = {s: sum(1 for _ in open(out / f"{s}.jsonl")) for s in ("train", "val", "test")}
    assert sum(counts.values()) == manifest["metrics"]["train"] + manifest["metrics"]["val"] + manifest["metrics"]["test"]
    assert counts["train"] == round(0.8 * sum(counts.values())) and counts["val"] >= 19
    assert manifest["inputs"][0]["sha256"]
    assert set(manifest["outputs"]) == {"train.jsonl", "val.jsonl", "test.jsonl", "report.json"}
    rec = json.loads(open(out / "train.jsonl").readline())
    assert rec["kind"] == "chat" and rec["messages"][1]["role"] == "assistant" and rec["origin"].startswith(str(src))


def test_same_seed_same_split_other_seed_differs(tiny_tokenizer_dir, tmp_path):
    src = write_jsonl(tmp_path / "qa.jsonl", qa_rows(100))
    outs = []
    for i, seed in enumerate((1, 1, 2)):
        stage.run(cfg_for(tiny_tokenizer_dir, f"seed={seed}"), [src], tmp_path / f"o{i}")
        outs.append((tmp_path / f"o{i}" / "test.jsonl").read_bytes())
    assert outs[0] == outs[1] and outs[0] != outs[2]


def test_duplicates_removed_and_near_duplicates_never_cross_splits(tiny_tokenizer_dir, tmp_path):
    rows = qa_rows(100)
    dup = [dict(r) for r in rows[:10]]                                   # exact copies
    near = [{"question": r["question"], "answer": r["answer"].replace("học", "HỌC", 1) + " Thêm một từ."}
            for r in rows[10:20]]                                        # same prompt, edited answer
    src = write_jsonl(tmp_path / "qa.jsonl", rows + dup + near)
    cfg = cfg_for(tiny_tokenizer_dir, "data.dedup.near=false")
    report = stage.check([src], cfg)
    assert report["cleaning"]["exact_duplicates"] == 10
    out = tmp_path / "out"
    stage.run(cfg, [src], out)
    where = {}
    for s in ("train", "val", "test"):
        for line in open(out / f"{s}.jsonl", encoding="utf-8"):
            q = json.loads(line)["messages"][0]["content"]
            where.setdefault(q, set()).add(s)
    assert all(len(v) == 1 for v in where.values())  # a prompt never appears in two splits
    assert report["split"]["leakage"] == {"near_duplicate_groups_across_splits": 0, "eval_prompts_also_in_train": 0}


def test_labelled_data_is_stratified(tiny_tokenizer_dir, tmp_path):
    rows = [{"text": f"Tin nhắn số {i} về chủ đề {lab} với nội dung riêng {i * 31}", "label": lab}
            for lab, n in (("refund", 100), ("baggage", 50)) for i in range(n)]
    src = write_jsonl(tmp_path / "intents.jsonl", rows)
    report = stage.check([src], cfg_for(tiny_tokenizer_dir))
    assert report["labels"] == {"refund": {"train": 80, "val": 10, "test": 10},
                                "baggage": {"train": 40, "val": 5, "test": 5}}


def test_cleaning_scrubbing_and_language_mix(tiny_tokenizer_dir, tmp_path):
    rows = qa_rows(20) + [
        {"question": unicodedata.normalize("NFD", "Hòa bình là gì?"), "answer": "Là không có chiến tranh."},
        {"question": "What is my key?", "answer": "It is sk-proj-abcdefghijklmnopqrstuvwxyz0123456789ABCD, write to an@example.com"},
        {"question": "\u200b", "answer": "rỗng"},
    ]
    src = write_jsonl(tmp_path / "qa.jsonl", rows)
    out = tmp_path / "out"
    stage.run(cfg_for(tiny_tokenizer_dir), [src], out)
    report = json.loads((out / "report.json").read_text())
    assert report["cleaning"]["empty_removed"] == 1
    assert report["scrub"]["found"].get("email") == 1 and report["scrub"]["records_redacted"] == 1
    text = "".join((out / f"{s}.jsonl").read_text(encoding="utf-8") for s in ("train", "val", "test"))
    assert "an@example.com" not in text and "sk-proj-" not in text and "<EMAIL>" in text
    assert "Hòa bình là gì?" in text  # NFC
    assert report["language"]["vi"] == 21 and report["language"]["en"] == 1
    stage.run(cfg_for(tiny_tokenizer_dir, "data.scrub.pii=drop"), [src], tmp_path / "out2", overwrite=True)
    assert json.loads((tmp_path / "out2" / "report.json").read_text())["scrub"]["records_dropped"] == 1


def test_token_report_with_template_and_max_length(tiny_gemma_tokenizer_dir, tmp_path):
    chats = [{"messages": [{"role": "system", "content": "Bạn là trợ lý."}, {"role": "user", "content": f"Xin chào {i}"},
                           {"role": "assistant", "content": "Chào bạn! " * (1 + i % 5)}, {"role": "user", "content": "Cảm ơn"},
                           {"role": "assistant", "content": f"Không có gì, lần {i}."}]} for i in range(50)]
    src = write_jsonl(tmp_path / "chats.jsonl", chats)
    report = stage.check([src], cfg_for(tiny_gemma_tokenizer_dir, "data.max_length=85"))
    tok, tpl = report["tokens"], report["template"]
    assert tok["chat_template"] == "luyen default" and tpl["end_marker"] == "<end_of_turn>"
    assert tpl["round_trip_ok"] == tpl["checked_exactly"] == 50 and tpl["targets_without_stop_token"] == 0
    assert 0 < tok["loss_token_share"] < 1
    assert tok["all"]["min"] <= tok["all"]["p50"] <= tok["all"]["p95"] <= tok["all"]["max"]
    assert tok["over_max_length"] == report["cleaning"]["too_long"] > 0
    assert tpl["length_estimate_mean_abs_error"] <= 1


def test_mixed_formats_of_one_kind_are_reported(tiny_tokenizer_dir, tmp_path):
    rows = qa_rows(10) + [{"instruction": f"Viết câu số {i}", "output": f"Đây là câu số {i}."} for i in range(5)]
    src = write_jsonl(tmp_path / "mix.jsonl", rows)
    report = stage.check([src], cfg_for(tiny_tokenizer_dir))
    assert report["records"]["by_format"] == {"qa": 10, "alpaca": 5}
    assert any("mixes formats" in w for w in report["warnings"])


def test_estimate_uses_the_model(tiny_model_dir, tmp_path):
    src = write_jsonl(tmp_path / "qa.jsonl", qa_rows(50))
    est = stage.check([src], cfg_for(tiny_model_dir, "train.method=full"))["estimate"]
    assert est["method"] == "full" and est["seconds"] > 0 and est["peak_memory_gb"] > 0
    assert est["trainable_params"] > 0 and est["matmul_peak_gflops"] > 0


def _messy_inputs(tmp_path: Path) -> list[Path]:
    """Two .jsonl files (with bad lines, duplicates, PII, a BOM) around a .csv read in-process."""
    rows = qa_rows(300)
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    lines[5:5] = ['{"question": "thiếu dấu ngoặc"', '[1, 2]', '{"question": "Hỏi?", "answer": null}', ""]
    lines += [json.dumps(r, ensure_ascii=False) for r in rows[:20]]  # exact duplicates
    lines += [json.dumps({"question": "Liên hệ ai?", "answer": f"Gọi 0912 345 {i:03d} hoặc an{i}@example.com"},
                         ensure_ascii=False) for i in range(5)]
    a = tmp_path / "a.jsonl"
    a.write_bytes(codecs.BOM_UTF8 + ("\n".join(lines) + "\n").encode())
    b = tmp_path / "b.csv"
    with open(b, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, ["question", "answer"])
        w.writeheader()
        w.writerows(qa_rows(30, prefix="csv "))
    c = write_jsonl(tmp_path / "c.jsonl", qa_rows(200, prefix="C ") + [{"question": "x"}] + rows[100:110])
    return [a, b, c]


def _outputs(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.name != "manifest.json"}


def test_parallel_workers_give_byte_identical_outputs(tiny_tokenizer_dir, tmp_path, monkeypatch):
    from luyen.data import pipeline
    inputs = _messy_inputs(tmp_path)
    cfg = cfg_for(tiny_tokenizer_dir, "data.on_error=skip")
    monkeypatch.setattr(pipeline, "PARALLEL_MIN_BYTES", 1 << 40)
    assert pipeline._worker_count(inputs) == 0
    stage.run(cfg, inputs, tmp_path / "serial", estimate=False)
    serial_check = stage.check(inputs, cfg, estimate=False)
    monkeypatch.setattr(pipeline, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(pipeline, "PARALLEL_WORKERS", 2)
    monkeypatch.setattr(pipeline, "BLOCK_BYTES", 2000)  # many small blocks, merged in order
    if pipeline._worker_count(inputs) < 2:
        pytest.skip("needs fork and two cores")
    sent = []
    real = pipeline._tasks
    monkeypatch.setattr(pipeline, "_tasks", lambda files: (sent.append(t) or t for t in real(files)))
    stage.run(cfg, inputs, tmp_path / "parallel", estimate=False)
    assert sum(isinstance(t, tuple) for t in sent) > 10  # blocks went to the workers; b.csv did not
    assert _outputs(tmp_path / "parallel") == _outputs(tmp_path / "serial")
    assert stage.check(inputs, cfg, estimate=False) == serial_check
    report = json.loads((tmp_path / "parallel" / "report.json").read_text())
    assert report["errors"]["count"] == 4 and report["cleaning"]["exact_duplicates"] == 30 + 4  # 4: same after redaction
    assert report["records"]["rows_read"] == 300 + 3 + 20 + 5 + 30 + 200 + 1 + 10  # the blank line is no row


def test_parallel_workers_fail_on_the_first_bad_record(tiny_tokenizer_dir, tmp_path, monkeypatch):
    from luyen.data import pipeline
    from luyen.errors import LuyenError
    inputs = _messy_inputs(tmp_path)
    errors = []
    for min_bytes in (1 << 40, 0):
        monkeypatch.setattr(pipeline, "PARALLEL_MIN_BYTES", min_bytes)
        monkeypatch.setattr(pipeline, "BLOCK_BYTES", 2000)
        with pytest.raises(LuyenError) as e:
            stage.run(cfg_for(tiny_tokenizer_dir), inputs, tmp_path / f"o{min_bytes}", estimate=False)
        errors.append(e.value.render())
    assert errors[0] == errors[1] and "a.jsonl:6:" in errors[0]


def test_prepare_after_check_writes_the_same_bytes_from_its_scan(tiny_tokenizer_dir, tmp_path, monkeypatch):
    """`data check` keeps its scan (luyen.data.scans); `data prepare` of the same files and configuration
    writes from it, byte for byte what its own scan writes, and scans again when anything changed."""
    from luyen.data import scans
    from luyen.errors import LuyenError
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(scans, "MIN_BYTES", 0)
    inputs = _messy_inputs(tmp_path)
    cfg = cfg_for(tiny_tokenizer_dir, "data.on_error=skip")
    stage.run(cfg, inputs, tmp_path / "fresh")  # nothing kept yet: its own scan
    calls, real = [], stage._scan
    monkeypatch.setattr(stage, "_scan", lambda *a, **k: calls.append(1) or real(*a, **k))
    stage.check(inputs, cfg)
    assert len(calls) == 1
    stage.run(cfg, inputs, tmp_path / "after_check")
    assert len(calls) == 1, "prepare scanned again"
    assert _outputs(tmp_path / "after_check") == _outputs(tmp_path / "fresh")
    # anything else scans again: another seed, or one more record in an input
    stage.run(cfg_for(tiny_tokenizer_dir, "data.on_error=skip", "seed=7"), inputs, tmp_path / "seed7")
    assert len(calls) == 2
    with open(inputs[0], "a", encoding="utf-8") as f:
        f.write(json.dumps({"question": "một câu hỏi mới?", "answer": "một câu trả lời mới."}, ensure_ascii=False) + "\n")
    stage.run(cfg, inputs, tmp_path / "changed")
    assert len(calls) == 3 and _outputs(tmp_path / "changed") != _outputs(tmp_path / "fresh")
    # under on_error=fail a scan with errors is not kept: prepare stops at the first bad record itself
    strict = cfg_for(tiny_tokenizer_dir)
    assert stage.check(inputs, strict)["errors"]["count"] > 0
    with pytest.raises(LuyenError, match="a.jsonl:6:"):
        stage.run(strict, inputs, tmp_path / "strict")
    stage.check(inputs, cfg_for(tiny_tokenizer_dir, "data.on_error=skip", "seed=8"))
    stage.check(inputs, cfg_for(tiny_tokenizer_dir, "data.on_error=skip", "seed=9"))
    assert len([p for p in scans.root().iterdir() if not p.name.startswith(".")]) == scans.KEEP
    monkeypatch.setenv("LUYEN_SCAN_CACHE", "0")  # the user's off switch: seed 9 was just checked, yet it scans
    before = len(calls)
    stage.run(cfg_for(tiny_tokenizer_dir, "data.on_error=skip", "seed=9"), inputs, tmp_path / "off")
    assert len(calls) == before + 1
