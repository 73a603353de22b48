"""The LLM judge against a real OpenAI-compatible HTTP server on loopback whose replies hold a rating.

The server is stdlib http.server in a thread: it answers POST /v1/chat/completions in OpenAI's response
shape and records every request (headers and JSON body), so the tests see what the judge really sent and
that the ratings it reports are the ones parsed from the replies.
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from luyen.config import load_config
from luyen.evaluate.judge import Judge
from luyen.evaluate.stage import run

RATED = "The answer matches the reference. Rating: 4"
MAX_BODY = 1_000_000


class StubJudge:
    """What the server saw and how it answers: `reply(prompt) -> str` picks the reply to each request."""

    def __init__(self):
        self.requests: list[dict] = []
        self.replies: list[str] = []
        self.lock = threading.Lock()
        self.reply = lambda prompt: RATED
        self.url = ""

    def prompts(self) -> list[str]:
        return [r["body"]["messages"][-1]["content"] for r in self.requests]


def _handler(stub: StubJudge):
    class Handler(BaseHTTPRequestHandler):
        timeout = 10  # a stalled client cannot hold a handler thread for longer

        def _send(self, status: int, payload: dict):
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            size = int(self.headers.get("Content-Length") or 0)
            if size > MAX_BODY:
                return self._send(413, {"error": {"message": "too large", "type": "invalid_request_error"}})
            body = json.loads(self.rfile.read(size) or b"{}")
            if self.path != "/v1/chat/completions":
                return self._send(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})
            content = stub.reply(body["messages"][-1]["content"])
            with stub.lock:
                stub.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
                stub.replies.append(content)
            self._send(200, {
                "id": f"chatcmpl-{len(stub.requests)}", "object": "chat.completion", "created": 0,
                "model": body.get("model", ""),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                             "finish_reason": "stop", "logprobs": None}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}})

        def log_message(self, *args):  # keep test output clean
            pass

    return Handler


@pytest.fixture
def judge_server(monkeypatch):
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)  # loopback, never through a proxy
    stub = StubJudge()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(stub))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    stub.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _check_sent(stub: StubJudge, questions, references, answers, model: str, key: str):
    """Every (question, reference, answer) went out in its own request, with the model name and the key."""
    assert len(stub.requests) == len(answers)
    prompts = stub.prompts()
    for q, r, a in zip(questions, references, answers):
        assert sum(q in p and r in p and a in p for p in prompts) == 1, (q, r, a)
    for req in stub.requests:
        assert req["path"] == "/v1/chat/completions"
        assert req["headers"]["authorization"] == f"Bearer {key}"
        assert req["body"]["model"] == model and req["body"]["temperature"] == 0


QUESTIONS = [f"Câu hỏi {i}: phí đổi vé hạng {h} là bao nhiêu?" for i, h in enumerate(["Phổ thông", "Thương gia",
                                                                                     "Tiết kiệm", "Linh hoạt", "Nhất"])]
REFERENCES = [f"Phí đổi vé là {100 * (i + 1)} nghìn đồng (đáp án {i})." for i in range(5)]
ANSWERS = [f"Khoảng {100 * (i + 1)} nghìn đồng, trả lời số {i}." for i in range(5)]


def test_judge_sends_every_answer_and_parses_the_rating(judge_server):
    judge = Judge(judge_server.url + "/v1", "judge-model-x", api_key="sk-test-123", timeout=10, concurrency=3)
    scores = judge.score(QUESTIONS, REFERENCES, ANSWERS)
    _check_sent(judge_server, QUESTIONS, REFERENCES, ANSWERS, "judge-model-x", "sk-test-123")
    assert scores.replies == [RATED] * 5
    assert scores.ratings == [4] * 5 and scores.parsed == 5 and scores.mean == 4.0


def test_judge_counts_replies_without_a_rating_and_never_guesses(judge_server, monkeypatch):
    def reply(prompt):
        if "Câu hỏi 1:" in prompt or "Câu hỏi 3:" in prompt:
            return "The answer misses 2 of the 3 fees; hard to say."  # a digit, but no rating
        if "Câu hỏi 4:" in prompt:
            return "Partly right.\nRating: [[2]]"
        return RATED
    judge_server.reply = reply
    monkeypatch.setenv("LUYEN_TEST_JUDGE_KEY", "sk-from-env")
    cfg = load_config(None, [f"eval.judge.url={judge_server.url}/v1", "eval.judge.model=grader",
                             "eval.judge.api_key_env=LUYEN_TEST_JUDGE_KEY", "eval.judge.timeout=10"])
    scores = Judge.from_config(cfg.eval.judge).score(QUESTIONS, REFERENCES, ANSWERS)
    _check_sent(judge_server, QUESTIONS, REFERENCES, ANSWERS, "grader", "sk-from-env")
    assert scores.ratings == [4, None, 4, None, 2]  # in the order of the answers, whatever order they were served
    assert scores.parsed == 3 and len(ANSWERS) - scores.parsed == 2
    assert scores.mean == pytest.approx(10 / 3)  # (4 + 4 + 2) / 3: the unparsed are left out, not scored 0


def _judged(out, stub: StubJudge, systems: list[str], n: int):
    """The first n test examples of every system went to the judge, each in a request of its own."""
    samples = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert len(stub.requests) == n * len(systems)
    prompts = stub.prompts()
    for name in systems:
        for s in samples[:n]:
            assert any(s["prompt"] in p and s["reference"] in p and s[name] in p for p in prompts), (name, s)
    return samples


def test_eval_stage_records_the_judge_mean(tmp_path, tiny_run, tiny_data_dir, judge_server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-e2e")  # eval.judge.api_key_env's default
    cfg = load_config(None, [f"eval.judge.url={judge_server.url}/v1", "eval.judge.model=stub",
                             "eval.judge.max_examples=2", "eval.judge.pairwise=false", "generate.max_new_tokens=3"])
    out = tmp_path / "eval"
    run(cfg, tiny_run, tiny_data_dir, out, baselines=["zero-shot"], limit=3)
    systems = json.loads((out / "metrics.json").read_text())["systems"]
    assert list(systems) == ["base zero-shot", "fine-tuned"]
    for r in systems.values():
        assert r["judge"] == 4.0 and r["judge_unparsed"] == 0
    _judged(out, judge_server, list(systems), 2)
    assert {req["body"]["model"] for req in judge_server.requests} == {"stub"}
    assert {req["headers"]["authorization"] for req in judge_server.requests} == {"Bearer sk-e2e"}


def test_eval_stage_counts_unparsed_judge_replies(tmp_path, tiny_run, tiny_data_dir, judge_server, monkeypatch):
    from luyen.data.formats import as_chat
    from luyen.data.stage import read_split
    monkeypatch.setenv("OPENAI_API_KEY", "sk-e2e")
    first = [m for m in as_chat(read_split(tiny_data_dir, "test")[0]) if m["role"] == "user"][-1]["content"]
    judge_server.reply = lambda prompt: "I cannot judge this one." if first in prompt else RATED
    cfg = load_config(None, [f"eval.judge.url={judge_server.url}/v1", "eval.judge.model=stub",
                             "eval.judge.max_examples=2", "eval.judge.pairwise=false", "generate.max_new_tokens=3"])
    out = tmp_path / "eval"
    run(cfg, tiny_run, tiny_data_dir, out, baselines=["zero-shot"], limit=3)
    systems = json.loads((out / "metrics.json").read_text())["systems"]
    samples = _judged(out, judge_server, list(systems), 2)
    assert samples[0]["prompt"] == first
    assert judge_server.replies.count(RATED) == 2 and len(judge_server.replies) == 4  # one rated, one not, per system
    for r in systems.values():
        assert r["judge"] == 4.0 and r["judge_unparsed"] == 1


def test_pairwise_judge_asks_both_orders_so_position_bias_cancels(tmp_path, tiny_run, tiny_data_dir, judge_server,
                                                                   monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-e2e")
    cfg = load_config(None, [f"eval.judge.url={judge_server.url}/v1", "eval.judge.max_examples=3",
                             "generate.max_new_tokens=6"])
    judge_server.reply = lambda prompt: "A reads better. [[A]]" if "[Answer A]" in prompt else RATED  # always the first
    out = tmp_path / "biased"
    run(cfg, tiny_run, tiny_data_dir, out, baselines=["zero-shot"], limit=3)
    pair = json.loads((out / "metrics.json").read_text())["pairwise"]
    assert pair["against"] == "base zero-shot" and pair["n"] == 3 and pair["ties_or_order_flips"] == 3
    assert pair["win_rate"]["diff"] == 0.5 and pair["wins"] == pair["losses"] == 0
    asked = [p for p in judge_server.prompts() if "[Answer A]" in p]
    samples = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    for s in samples:  # every question went out twice, the fine-tuned answer once as A and once as B
        tuned, base = s["fine-tuned"], s["base zero-shot"]
        assert tuned != base
        ab = [p for p in asked if s["prompt"] in p]
        assert len(ab) == 2 and {p.index(tuned) < p.index(base) for p in ab} == {True, False}

    def prefers_tuned(prompt):  # a judge that knows the fine-tuned answers and always picks them
        if "[Answer A]" not in prompt:
            return RATED
        a = prompt.split("[Answer A]")[1].split("[Answer B]")[0]
        return "[[A]]" if any(s["fine-tuned"] in a for s in samples) else "[[B]]"
    judge_server.reply = prefers_tuned
    out = tmp_path / "fair"
    run(cfg, tiny_run, tiny_data_dir, out, baselines=["zero-shot"], limit=3)
    pair = json.loads((out / "metrics.json").read_text())["pairwise"]
    assert pair["wins"] == 3 and pair["win_rate"]["diff"] == 1.0
    assert "win rate 100%" in (out / "report.md").read_text()
