"""`luyen generate` and `luyen chat` as a user runs them, on a tiny model; chat through a real pseudo-terminal."""
from __future__ import annotations

import json
import os
import re
import sys

import pytest
import torch
from typer.testing import CliRunner

from luyen.cli import app
from luyen.config import GenerateConfig
from luyen.infer.engine import Engine

runner = CliRunner()
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "TERM": "dumb", "NO_COLOR": "1"}


@pytest.fixture(scope="module")
def engine(tiny_gemma_tokenizer_dir):
    """The same model the CLI loads, through the Python API, to tell what each command should have printed."""
    import luyen
    engine = luyen.load(tiny_gemma_tokenizer_dir, dtype=torch.float32)
    assert isinstance(engine, Engine)
    return engine


def cli(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def test_one_prompt_prints_the_engines_completion(tiny_gemma_tokenizer_dir, engine):
    code, out, _ = cli("generate", "--model", tiny_gemma_tokenizer_dir, "--prompt", "Hà Nội là", "-n", "8", "--no-chat")
    assert code == 0
    assert out == engine.generate("Hà Nội là", GenerateConfig(max_new_tokens=8)).text + "\n"
    code, out, _ = cli("generate", "--model", tiny_gemma_tokenizer_dir, "--prompt", "Hà Nội là", "-n", "8", "--chat",
                       "--system", "Ngắn gọn.")
    msgs = [{"role": "system", "content": "Ngắn gọn."}, {"role": "user", "content": "Hà Nội là"}]
    assert code == 0 and out == engine.chat(msgs, GenerateConfig(max_new_tokens=8)).text + "\n"


def test_sampling_options_and_seed_reach_the_engine(tiny_gemma_tokenizer_dir, engine):
    args = ["generate", "--model", tiny_gemma_tokenizer_dir, "--prompt", "Học máy", "--no-chat", "-n", "10",
            "--temperature", "1.3", "--top-p", "0.9", "--top-k", "50", "--repetition-penalty", "1.2",
            "--no-repeat-ngram-size", "2"]
    cfg = GenerateConfig(max_new_tokens=10, temperature=1.3, top_p=0.9, top_k=50, repetition_penalty=1.2,
                         no_repeat_ngram_size=2, seed=7)
    first, second = cli(*args, "--seed", "7")[1], cli(*args, "--seed", "7")[1]
    assert first == second == engine.generate("Học máy", cfg).text + "\n"
    assert cli(*args, "--seed", "8")[1] != first or cli(*args, "--seed", "9")[1] != first


def test_stop_string_cuts_the_answer(tiny_gemma_tokenizer_dir, engine):
    full = engine.generate("Hà Nội là", GenerateConfig(max_new_tokens=16)).text
    stop = full.strip()[2:5]
    code, out, _ = cli("generate", "--model", tiny_gemma_tokenizer_dir, "--prompt", "Hà Nội là", "-n", "16",
                       "--no-chat", "--stop", stop)
    assert code == 0 and stop not in out and full.startswith(out.rstrip("\n"))


def test_batch_file_answers_every_line_in_order(tmp_path, tiny_gemma_tokenizer_dir, engine):
    lines = [{"id": "a", "prompt": "Hà Nội là thủ đô của Việt Nam và"},
             {"messages": [{"role": "user", "content": "Xin chào"}]},
             {"id": 7, "prompt": "Học máy"}]
    src = tmp_path / "prompts.jsonl"
    src.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n\n", encoding="utf-8")
    before = src.read_bytes()
    code, _, err = cli("generate", "--model", tiny_gemma_tokenizer_dir, "--input", src, "--output",
                       tmp_path / "out.jsonl", "-n", "6", "--batch-size", "2", "--chat")
    assert code == 0, err
    rows = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == ["a", 2, 7]  # a line without an id is known by its line number
    cfg = GenerateConfig(max_new_tokens=6)
    want = engine.chat([[{"role": "user", "content": lines[0]["prompt"]}], lines[1]["messages"],
                        [{"role": "user", "content": "Học máy"}]], cfg)
    assert [r["text"] for r in rows] == [c.text for c in want]
    assert [r["tokens"] for r in rows] == [c.completion_tokens for c in want]
    assert all(r["finish_reason"] in ("stop", "length") and r["prompt_tokens"] > 0 for r in rows)
    assert src.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl", "prompts.jsonl"]


@pytest.mark.parametrize("line, says", [
    ('{"prompt": "ok"}\n{"prompt": ', "prompts.jsonl:2: not valid JSON"),
    ('{"text": "no prompt"}', "prompts.jsonl:1: each line needs exactly one of 'prompt' or 'messages'"),
    ('{"prompt": "a"}\n{"messages": [{"role": "bot", "content": "x"}]}', "prompts.jsonl:2: field 'messages'"),
    ('{"prompt": ""}', "prompts.jsonl:1: field 'prompt': the prompt must be non-empty"),
])
def test_bad_batch_lines_fail_in_one_line_with_file_and_line(tmp_path, tiny_gemma_tokenizer_dir, line, says):
    (tmp_path / "prompts.jsonl").write_text(line, encoding="utf-8")
    code, out, err = cli("generate", "--model", tiny_gemma_tokenizer_dir, "--input", tmp_path / "prompts.jsonl",
                         "--output", tmp_path / "out.jsonl")
    assert code == 2 and says in " ".join(err.split()) and "Traceback" not in err
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.parametrize("args, says", [
    (["--prompt", "x", "--input", "p.jsonl"], "give either --prompt TEXT or --input FILE.jsonl"),
    (["--input", "p.jsonl"], "--input needs --out"),
    (["--prompt", "x", "--top-p", "1.5"], "field 'generate.top_p'"),
    (["--prompt", "x", "--model", "/no/such/model"], "no such model folder"),
    (["--prompt", "x", "--no-chat", "--system", "Ngắn gọn."], "--system needs the chat template"),
])
def test_bad_options_are_one_line_errors(tiny_gemma_tokenizer_dir, args, says):
    code, _, err = cli("generate", "--model", tiny_gemma_tokenizer_dir, *args)
    assert code == 2 and says in " ".join(err.split()) and "Traceback" not in err


def test_chat_in_a_real_terminal_keeps_history_resets_and_exits_on_ctrl_d(tiny_gemma_tokenizer_dir, engine):
    import pexpect
    child = pexpect.spawn(sys.executable, ["-m", "luyen", "chat", str(tiny_gemma_tokenizer_dir), "-n", "6",
                                           "--system", "Ngắn gọn."], env=ENV, encoding="utf-8", timeout=90)
    cfg = GenerateConfig(max_new_tokens=6)
    system = [{"role": "system", "content": "Ngắn gọn."}]

    def say(text: str) -> str:
        child.sendline(text)
        child.expect_exact("you> ")
        shown = child.before.replace("\r\n", "\n").split("\n", 1)[1]  # drop the echoed input line
        return re.sub(r"\x1b\[[0-9;]*m", "", shown).strip()

    child.expect_exact("you> ")
    first = say("Xin chào")
    history = system + [{"role": "user", "content": "Xin chào"}]
    reply = engine.chat(history, cfg)
    assert first.split("\n(cut at")[0] == reply.text.strip()
    second = say("Hà Nội là thủ đô")
    history += [{"role": "assistant", "content": reply.text}, {"role": "user", "content": "Hà Nội là thủ đô"}]
    assert second.split("\n(cut at")[0] == engine.chat(history, cfg).text.strip()  # the answer saw the history
    assert "conversation cleared" in say("/reset")
    fresh = say("Hà Nội là thủ đô")
    assert fresh.split("\n(cut at")[0] == engine.chat(system + [{"role": "user", "content": "Hà Nội là thủ đô"}],
                                                      cfg).text.strip()
    assert fresh != second  # the same question without the earlier exchange gets another answer
    child.sendeof()  # Ctrl-D
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0 and "Traceback" not in (child.before or "")


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory):
    """A real retrieval index over four of the example airline policies (two passages per question)."""
    from pathlib import Path
    from luyen.config import load_config
    from luyen.rag import build_index
    out = tmp_path_factory.mktemp("rag") / "index"
    folder = Path(__file__).parents[2] / "examples" / "data" / "airline_policies"
    docs = [folder / f"{name}.md" for name in ("hanh-ly-xach-tay", "hanh-ly-ky-gui", "doi-ve", "hoan-ve")]
    build_index(load_config(None, ["rag.k=2"]), docs, out)
    return out


def grounded(index_dir, messages):
    from luyen.rag import augment, load_index
    index = load_index(index_dir)
    return augment(messages, index.search(messages[-1]["content"]), index.settings.get("template"))


QUESTION = "Hành lý xách tay được mang bao nhiêu kg?"


def test_rag_answers_over_the_index_passages(tmp_path, tiny_gemma_tokenizer_dir, engine, index_dir):
    code, out, err = cli("generate", "--model", tiny_gemma_tokenizer_dir, "--prompt", QUESTION, "-n", "6",
                         "--rag", index_dir)
    msgs = grounded(index_dir, [{"role": "user", "content": QUESTION}])
    assert "hanh-ly-xach-tay.md" in msgs[-1]["content"]  # the passage the question is about was put in the prompt
    assert code == 0, err
    assert out == engine.chat(msgs, GenerateConfig(max_new_tokens=6)).text + "\n"
    # a random model cites nothing, so the passages it was given are listed for the reader to check
    assert "sources (none cited): [1] hanh-ly-xach-tay.md" in " ".join(err.split())
    src = tmp_path / "q.jsonl"
    src.write_text(json.dumps({"id": "q", "prompt": QUESTION}, ensure_ascii=False) + "\n", encoding="utf-8")
    code, _, err = cli("generate", "--model", tiny_gemma_tokenizer_dir, "--input", src, "--output",
                       tmp_path / "a.jsonl", "-n", "6", "--rag", index_dir)
    row = json.loads((tmp_path / "a.jsonl").read_text(encoding="utf-8"))
    assert code == 0 and row["text"] + "\n" == out and row["sources"] == []  # a random model cites nothing
    assert [r["n"] for r in row["retrieved"]] == [1, 2] and row["retrieved"][0]["source"] == "hanh-ly-xach-tay.md"
    code, _, err = cli("generate", "--model", tiny_gemma_tokenizer_dir, "--prompt", "x", "--no-chat", "--rag", index_dir)
    assert code == 2 and "--rag answers through the chat template" in err


def test_rag_chat_keeps_the_plain_questions_in_its_history(tiny_gemma_tokenizer_dir, engine, index_dir):
    import pexpect
    child = pexpect.spawn(sys.executable, ["-m", "luyen", "chat", str(tiny_gemma_tokenizer_dir), "-n", "6",
                                           "--rag", str(index_dir)], env=ENV, encoding="utf-8", timeout=90)
    cfg = GenerateConfig(max_new_tokens=6)
    child.expect_exact("you> ")
    history = []
    for question in (QUESTION, "Phí đổi vé là bao nhiêu?"):
        child.sendline(question)
        child.expect_exact("you> ")
        shown = re.sub(r"\x1b\[[0-9;]*m", "", child.before.replace("\r\n", "\n")).split("\n(cut at")[0]
        history.append({"role": "user", "content": question})
        reply = engine.chat(grounded(index_dir, history), cfg)
        # transformers may warn above the reply that the passages exceed the tiny model's 256 positions;
        # below it the passages it was given (a random model cites none)
        answer, _, listed = shown.rpartition("sources (none cited): ")
        assert answer.strip().endswith(reply.text.strip()) and listed.startswith("[1] ")
        history.append({"role": "assistant", "content": reply.text})
    child.sendline("/exit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_python_api_takes_settings_by_name(engine):
    """luyen.load(M).generate(text, max_new_tokens=...) as the README shows; a misspelt setting is one clear error."""
    from luyen.errors import LuyenError
    by_name = engine.generate("Hà Nội là", max_new_tokens=5)
    assert by_name.text == engine.generate("Hà Nội là", GenerateConfig(max_new_tokens=5)).text
    assert by_name.completion_tokens <= 5
    msgs = [{"role": "user", "content": "Xin chào"}]
    assert engine.chat(msgs, GenerateConfig(max_new_tokens=20), max_new_tokens=3).completion_tokens <= 3
    with pytest.raises(LuyenError, match=r"generate\.max_tokens.*max_new_tokens"):
        engine.generate("Hà Nội là", max_tokens=5)
    with pytest.raises(LuyenError, match=r"generate\.temperature"):
        engine.chat(msgs, temperature=-1)
