"""`luyen chat` on the model `make demo` trained, through a real terminal: asked three of the test
questions, every answer ends on its own (no "(cut at N tokens ...)" note).

This test needs the demo's run (runs/demo, or LUYEN_DEMO_RUN), so `make test` leaves it out
(pyproject's addopts ignore tests/demo) and `make demo` runs it as its last step."""
from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

RUN = Path(os.environ.get("LUYEN_DEMO_RUN", Path(__file__).resolve().parents[2] / "runs" / "demo"))
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "TERM": "dumb", "NO_COLOR": "1"}


def test_the_demo_model_answers_three_test_questions_and_stops_on_its_own():
    import pexpect
    assert (RUN / "train" / "manifest.json").is_file(), f"no demo run at {RUN}: run `make demo` first"
    rows = [json.loads(line) for line in open(RUN / "data" / "test.jsonl", encoding="utf-8")]
    questions = [r["messages"][-2]["content"] for r in rows[:3]]
    child = pexpect.spawn(sys.executable, ["-m", "luyen", "chat", str(RUN / "train")], env=ENV, encoding="utf-8",
                          timeout=300)
    child.expect_exact("you> ")
    for q in questions:
        child.sendline(q)
        child.expect_exact("you> ")
        shown = re.sub(r"\x1b\[[0-9;]*m", "", child.before.replace("\r\n", "\n").split("\n", 1)[1]).strip()
        print(f"Q: {q}\nA: {shown}\n", file=sys.stderr)
        assert shown and "(cut at" not in shown, f"the answer to {q!r} ran to the length limit: {shown[-200:]!r}"
        child.sendline("/reset")  # each question on its own, as the evaluation asks them
        child.expect_exact("you> ")
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
