"""The data stage on preference (DPO) and feedback (KTO) files: errors with file:line:field, dropped
pairs, per-side lengths, the length-ratio and label-balance findings, and splits that keep a prompt's
near-duplicates together."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from luyen.config import load_config
from luyen.data import stage
from luyen.errors import LuyenError

WORDS = ("học máy mô hình dữ liệu huấn luyện vé hành lý chuyến bay giờ khách hàng đổi hoàn tiền hạng ghế "
         "thời gian chi phí sân ga tàu xe buýt bản đồ thành phố nhà hàng món ăn cà phê trà sữa bánh mì").split()


def user(text):
    return {"role": "user", "content": text}


def bot(text):
    return {"role": "assistant", "content": text}


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def cfg_for(model_dir, *overrides):
    return load_config(None, [f"model.name={model_dir}", *overrides])


def words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def pairs(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [{"prompt": f"Câu hỏi {i}: {words(rng, 6)}?", "chosen": f"Đáp {i}: {words(rng, 5)}.",
             "rejected": f"Sai {i}: {words(rng, 5)}."} for i in range(n)]


def splits_of(out: Path) -> dict[str, list[dict]]:
    return {s: [json.loads(line) for line in open(out / f"{s}.jsonl", encoding="utf-8")] for s in ("train", "val", "test")}


GOOD = {"prompt": "Thủ đô Việt Nam?", "chosen": "Hà Nội.", "rejected": "Huế."}
HH = "\n\nHuman: {}\n\nAssistant: {}"
# (case, bad row, field, part of the message, problem)
BAD = [
    ("chosen_empty", {"prompt": "q", "chosen": "  ", "rejected": "b"}, "chosen", "is empty", "empty_side"),
    ("rejected_content_empty", {"prompt": [user("q")], "chosen": [bot("a")], "rejected": [bot("")]},
     "rejected[0].content", "is empty", "empty_side"),
    ("completion_empty_list", {"prompt": "q", "completion": [], "label": True}, "completion", "is empty", "empty_side"),
    ("hh_empty_answer", {"chosen": HH.format("q", " "), "rejected": HH.format("q", "b")}, "chosen",
     "is empty (turn 2, Assistant)", "empty_side"),
    ("label_not_bool", {"prompt": "q", "completion": "c", "label": "true"}, "label", "expected true or false", "wrong_type"),
    ("preferred_output_not_list", {"input": {"messages": [user("q")]}, "preferred_output": "a",
                                   "non_preferred_output": [bot("b")]}, "preferred_output", "expected a list", "wrong_type"),
    ("input_not_object", {"input": "q", "preferred_output": [bot("a")], "non_preferred_output": [bot("b")]},
     "input", "expected {\"messages\"", "wrong_type"),
    ("prompt_ends_with_assistant", {"prompt": [user("q"), bot("a")], "chosen": "b", "rejected": "c"}, "prompt",
     "does not end with a user turn", "prompt_not_user_last"),
    ("user_turn_in_answer", {"prompt": "q", "chosen": [user("q"), bot("a"), user("và?"), bot("b")], "rejected": "c"},
     "chosen[2].role", "holds a user turn", "user_in_answer"),
    ("user_turn_in_openai_output", {"input": {"messages": [user("q")]}, "preferred_output": [bot("a")],
                                    "non_preferred_output": [bot("b"), user("c")]},
     "non_preferred_output[1].role", "holds a user turn", "user_in_answer"),
    ("two_assistant_turns", {"prompt": "q", "chosen": [bot("a"), bot("b")], "rejected": "c"}, "chosen",
     "2 assistant turns", "not_alternating"),
    ("unknown_role", {"prompt": [{"role": "robot", "content": "q"}], "chosen": "a", "rejected": "b"}, "prompt[0].role",
     "unknown role 'robot'", "unknown_role"),
    ("prompt_mismatch", {"prompt": "q", "chosen": [user("q"), bot("a")], "rejected": [user("khác"), bot("b")]},
     "rejected", "differ from 'prompt'", "prompt_mismatch"),
    ("hh_no_shared_prefix", {"chosen": HH.format("A?", "x"), "rejected": HH.format("B?", "y")}, "rejected",
     "shares no opening user turn", "no_shared_prompt"),
    ("hh_not_a_transcript", {"chosen": "chỉ là văn bản", "rejected": "khác"}, "chosen", "not an HH transcript",
     "bad_transcript"),
    ("missing_rejected", {"prompt": "q", "chosen": "a"}, "rejected", "missing", "missing_field"),
]


@pytest.fixture(scope="module")
def bad_report(tmp_path_factory, tiny_tokenizer_dir):
    src = write_jsonl(tmp_path_factory.mktemp("bad") / "a.jsonl", [GOOD] + [case[1] for case in BAD])
    return stage.check([src], cfg_for(tiny_tokenizer_dir), estimate=False)


@pytest.mark.parametrize("line,case", list(enumerate(BAD, start=2)), ids=[c[0] for c in BAD])
def test_bad_record_names_file_line_and_field(bad_report, line, case):
    _, _, field, message, _ = case
    found = [e for e in bad_report["errors"]["first"] if f"/a.jsonl:{line}: " in e]
    assert len(found) == 1, bad_report["errors"]["first"]
    assert f"field '{field}': " in found[0] and message in found[0] and "Fix:" in found[0], found[0]


def test_bad_records_are_counted_by_problem(bad_report):
    expected = {}
    for case in BAD:
        expected[case[4]] = expected.get(case[4], 0) + 1
    assert bad_report["errors"]["by_problem"] == expected
    assert bad_report["preference"]["empty_sides"] == expected["empty_side"]
    assert not bad_report["usable"]


@pytest.mark.parametrize("bad,expect", [
    (BAD[12][1], "a.jsonl:3: field 'rejected': "),   # prompt mismatch
    (BAD[4][1], "a.jsonl:3: field 'label': "),       # KTO label not a bool
])
def test_prepare_stops_at_the_first_bad_record(tiny_tokenizer_dir, tmp_path, bad, expect):
    src = write_jsonl(tmp_path / "a.jsonl", [GOOD, GOOD | {"chosen": "Hà Nội ạ."}, bad, GOOD])
    with pytest.raises(LuyenError) as e:
        stage.run(cfg_for(tiny_tokenizer_dir), [src], tmp_path / "out", estimate=False)
    assert expect in e.value.render()
    assert not (tmp_path / "out" / "train.jsonl").exists()


def test_every_format_prepares_records_of_the_exact_shape(tiny_tokenizer_dir, tmp_path):
    rows = pairs(20)
    dpo = [{"input": {"messages": [user(r["prompt"])]}, "preferred_output": [bot(r["chosen"])],
            "non_preferred_output": [bot(r["rejected"])]} for r in rows[12:16]]
    hh = [{"chosen": HH.format(r["prompt"], r["chosen"]), "rejected": HH.format(r["prompt"], r["rejected"])}
          for r in rows[16:]]
    src = [write_jsonl(tmp_path / "trl.jsonl", rows[:12]), write_jsonl(tmp_path / "dpo.jsonl", dpo),
           write_jsonl(tmp_path / "hh.jsonl", hh)]
    out = tmp_path / "out"
    stage.run(cfg_for(tiny_tokenizer_dir), src, out, estimate=False)
    report = json.loads((out / "report.json").read_text())
    assert report["records"]["by_kind"] == {"preference": 20}
    assert report["records"]["by_format"] == {"preference": 12, "openai_dpo": 4, "hh": 4}
    recs = [r for s in splits_of(out).values() for r in s]
    assert len(recs) == 20 and all(set(r) == {"kind", "prompt", "chosen", "rejected", "origin"} for r in recs)
    first = next(r for r in recs if r["origin"] == f"{src[2]}:1")
    assert first["prompt"] == [user(rows[16]["prompt"])]
    assert first["chosen"] == [bot(rows[16]["chosen"])] and first["rejected"] == [bot(rows[16]["rejected"])]
    kto = [{"prompt": r["prompt"], "completion": r["chosen"], "label": i % 2 == 0} for i, r in enumerate(rows[:12])]
    stage.run(cfg_for(tiny_tokenizer_dir), [write_jsonl(tmp_path / "kto.jsonl", kto)], tmp_path / "kto", estimate=False)
    recs = [r for s in splits_of(tmp_path / "kto").values() for r in s]
    assert len(recs) == 12 and all(set(r) == {"kind", "prompt", "completion", "label", "origin"} for r in recs)
    assert sorted(r["label"] for r in recs) == [False] * 6 + [True] * 6


def test_chosen_equal_to_rejected_is_dropped_and_counted(tiny_tokenizer_dir, tmp_path):
    same = [{"prompt": "Một cộng một?", "chosen": "Hai.", "rejected": "Hai."},
            {"prompt": "Hai cộng hai?", "chosen": "Bốn  ", "rejected": " Bốn"},            # equal once cleaned
            {"chosen": HH.format("Ba cộng ba?", "Sáu."), "rejected": HH.format("Ba cộng ba?", "Sáu.")}]
    blank = {"prompt": "Bốn cộng bốn?", "chosen": "Tám.", "rejected": "\u200b"}  # empty once cleaned: removed
    src = write_jsonl(tmp_path / "p.jsonl", pairs(20) + same + [blank])
    out = tmp_path / "out"
    stage.run(cfg_for(tiny_tokenizer_dir), [src], out, estimate=False)
    report = json.loads((out / "report.json").read_text())
    assert report["cleaning"]["chosen_equals_rejected"] == 3 and report["cleaning"]["empty_removed"] == 1
    assert report["preference"]["chosen_equals_rejected"] == 3 and report["preference"]["pairs"] == 24
    assert report["records"]["kept"] == report["preference"]["kept"] == 20
    prompts = {r["prompt"][0]["content"] for s in splits_of(out).values() for r in s}
    assert not prompts & {"Một cộng một?", "Hai cộng hai?", "Ba cộng ba?", "Bốn cộng bốn?"}


def test_parallel_workers_give_the_same_outputs(tiny_tokenizer_dir, tmp_path, monkeypatch):
    from luyen.data import pipeline
    rng = random.Random(7)
    rows = pairs(150)
    for r in rows[::10]:  # near-duplicate prompts across worker blocks
        rows.append({"prompt": r["prompt"].replace("?", " nhé?"), "chosen": words(rng, 6), "rejected": words(rng, 6)})
    src = write_jsonl(tmp_path / "p.jsonl", rows + [{"prompt": "q", "completion": "c", "label": "yes"}])
    cfg = cfg_for(tiny_tokenizer_dir, "data.on_error=skip")
    stage.run(cfg, [src], tmp_path / "serial", estimate=False)
    monkeypatch.setattr(pipeline, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(pipeline, "PARALLEL_WORKERS", 2)
    monkeypatch.setattr(pipeline, "BLOCK_BYTES", 3000)  # many small blocks, merged in order
    if pipeline._worker_count([src]) < 2:
        pytest.skip("needs fork and two cores")
    stage.run(cfg, [src], tmp_path / "parallel", estimate=False)
    for name in ("train.jsonl", "val.jsonl", "test.jsonl", "report.json"):
        assert (tmp_path / "parallel" / name).read_bytes() == (tmp_path / "serial" / name).read_bytes(), name


def test_side_lengths_truncation_share_and_length_ratio(tiny_tokenizer_dir, tmp_path):
    from transformers import AutoTokenizer

    from luyen.data.template import resolve_chat_template
    from luyen.data.tokens import TokenCounter
    rng = random.Random(1)
    rows = [{"prompt": [user(f"Câu {i}: {words(rng, 5)}?"), bot(words(rng, 6)), user(words(rng, 4) + "?")],
             "chosen": words(rng, 12 + i), "rejected": words(rng, 4 + i % 3)} for i in range(8)]  # multi-turn prompts
    rows += [{"prompt": [user(f"Câu dài {i}: {words(rng, 5)}?")], "chosen": words(rng, 3), "rejected": words(rng, 200)}
             for i in range(2)]  # only the rejected side is over max_length
    src = write_jsonl(tmp_path / "p.jsonl", rows)
    report = stage.check([src], cfg_for(tiny_tokenizer_dir, "data.max_length=300"), estimate=False)
    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    counter = TokenCounter(tok, resolve_chat_template(tok, None))
    side = {k: counter.measure([{"kind": "chat", "messages": r["prompt"] + [bot(r[k])]} for r in rows])[0]
            for k in ("chosen", "rejected")}
    assert side["rejected"][8:].min() > 300 >= side["chosen"].max()  # the file tests what it means to
    p = report["preference"]
    assert p["tokens"]["chosen"]["max"] == side["chosen"].max() and p["tokens"]["rejected"]["max"] == side["rejected"].max()
    assert p["tokens"]["rejected"]["p50"] == float(sorted(side["rejected"])[4] + sorted(side["rejected"])[5]) / 2
    assert p["over_max_length"] == 2 and p["truncation_share"] == 0.2
    assert report["cleaning"]["too_long"] == 2 and report["records"]["kept"] == p["kept"] == 8
    n = lambda text: len(tok(text, add_special_tokens=False)["input_ids"])  # noqa: E731
    ratios = [n(r["chosen"]) / n(r["rejected"]) for r in rows[:8]]
    assert p["length_ratio"]["mean"] == round(sum(ratios) / 8, 3)
    assert p["length_ratio"]["median"] == round((sorted(ratios)[3] + sorted(ratios)[4]) / 2, 3)
    assert p["length_ratio"]["mean"] > 1.3 and any("longer is better" in w for w in report["warnings"])
    # the targets are the chosen answers only, not the prompt's earlier assistant turns
    targets = sum(n(r["chosen"]) + counter.marker_len for r in rows[:8])
    assert report["tokens"]["loss_token_share"] == round(targets / int(side["chosen"][:8].sum()), 4)


def test_balanced_lengths_give_no_length_warning(tiny_tokenizer_dir, tmp_path):
    report = stage.check([write_jsonl(tmp_path / "p.jsonl", pairs(30))], cfg_for(tiny_tokenizer_dir), estimate=False)
    assert 1 / 1.3 < report["preference"]["length_ratio"]["mean"] < 1.3
    assert not any("longer is" in w for w in report["warnings"])


def test_kto_label_balance(tiny_tokenizer_dir, tmp_path):
    rows = [{"prompt": r["prompt"], "completion": r["chosen"], "label": i >= 18} for i, r in enumerate(pairs(20))]
    report = stage.check([write_jsonl(tmp_path / "k.jsonl", rows)], cfg_for(tiny_tokenizer_dir), estimate=False)
    assert report["records"]["by_kind"] == {"feedback": 20}
    assert report["feedback"] == {"examples": 20, "desirable": 2, "undesirable": 18, "desirable_share": 0.1}
    assert "preference" not in report and "chosen_equals_rejected" not in report["cleaning"]
    assert any("2 of 20 feedback examples are desirable" in w for w in report["warnings"])
    rows = [r | {"label": i % 3 != 0} for i, r in enumerate(rows)]
    report = stage.check([write_jsonl(tmp_path / "k2.jsonl", rows)], cfg_for(tiny_tokenizer_dir), estimate=False)
    assert report["feedback"]["desirable"] == 13 and not any("feedback examples" in w for w in report["warnings"])


def test_near_duplicate_prompts_land_in_one_split(tiny_tokenizer_dir, tmp_path):
    rng = random.Random(3)
    rows, family = [], {}
    for f in range(30):  # 3 pairs per prompt family; the prompts differ in their last word only
        base = words(rng, 40)
        for v in range(3):
            prompt = f"{base} {['một', 'hai', 'ba'][v]}?"
            family[prompt] = f
            rows.append({"prompt": prompt, "chosen": words(rng, 15), "rejected": words(rng, 15)})
    out = tmp_path / "out"
    stage.run(cfg_for(tiny_tokenizer_dir, "data.dedup.near=true"), [write_jsonl(tmp_path / "p.jsonl", rows)], out,
              estimate=False)
    where: dict[int, set] = {}
    for s, recs in splits_of(out).items():
        for r in recs:
            where.setdefault(family[r["prompt"][0]["content"]], set()).add(s)
    assert sum(len(v) for v in where.values()) == 30 and len(where) == 30  # nothing removed, none split
    report = json.loads((out / "report.json").read_text())
    assert report["cleaning"]["near_duplicates"] == 0 and report["split"]["val"] > 0


def test_dedup_keys_on_the_whole_pair(tiny_tokenizer_dir, tmp_path):
    rng = random.Random(5)
    long_prompt = words(rng, 100) + "?"
    chosen = words(rng, 8)
    rows = [{"prompt": long_prompt, "chosen": chosen, "rejected": words(rng, 8)} for _ in range(2)]  # both legitimate
    rows.append(dict(rows[0]))                                                          # an exact copy: goes
    rows.append({"prompt": long_prompt.replace("?", " nhé?"), "chosen": rows[1]["chosen"] + "!",
                 "rejected": rows[1]["rejected"]})                                      # a near copy: goes
    rows += pairs(10)
    report = stage.check([write_jsonl(tmp_path / "p.jsonl", rows)], cfg_for(tiny_tokenizer_dir), estimate=False)
    assert report["cleaning"]["exact_duplicates"] == 1 and report["cleaning"]["near_duplicates"] == 1
    assert report["records"]["kept"] == 12


def test_preference_mixed_with_chat_is_refused(tiny_tokenizer_dir, tmp_path):
    rows = pairs(5) + [{"question": "Hỏi?", "answer": "Đáp."}]
    src = write_jsonl(tmp_path / "mix.jsonl", rows)
    report = stage.check([src], cfg_for(tiny_tokenizer_dir), estimate=False)
    assert any("mixed record kinds (5 preference, 1 chat)" in p for p in report["problems"])
    with pytest.raises(LuyenError, match="mixed record kinds"):
        stage.run(cfg_for(tiny_tokenizer_dir), [src], tmp_path / "out", estimate=False)
