"""`luyen serve RUN` of a task head: a real uvicorn server on loopback for each tiny trained head
(classification, extractive QA, seq2seq), called over plain HTTP (stdlib) and with the official openai
client; answers must equal `Predictor.load(RUN).predict`, and every bad request gets OpenAI's error shape."""
from __future__ import annotations

import contextlib
import http.client
import json
import threading
import time
import urllib.error
import urllib.request

import openai
import pytest
from openai import OpenAI

from luyen.config import RagConfig, ServeConfig
from luyen.errors import LuyenError
from luyen.serve import build_app, running
from luyen.serve.heads import create_head_app
from luyen.tasks.predictor import MAX_ITEMS, Predictor

TEXTS = ["Tôi muốn hoàn tiền vé đã hủy", "vali ký gửi được bao nhiêu kg", "quầy làm thủ tục mở lúc mấy giờ",
         "hoàn tiền", "hành lý ký gửi kg vali hạng ghế"]
CONTEXT = "Chuyến bay đổi giờ. Hành lý xách tay tối đa 12 kg mỗi khách. Khách hàng hoàn tiền vé."
QUESTION = "Hành lý xách tay tối đa bao nhiêu?"
DOCS = ["học máy mô hình dữ liệu huấn luyện. vé hành lý chuyến bay giờ khách hàng đổi.",
        "hoàn tiền hạng ghế thời gian. chi phí vé đổi giờ chuyến bay."]
LIMIT = 50_000  # serve.max_body_bytes of the test servers (MAX_ITEMS + 1 short inputs fit)


@pytest.fixture(scope="module")
def servers(tiny_head_runs):
    """{task: (base url, app)}: one server per head run, built as `luyen serve RUN` builds it."""
    cfg = ServeConfig(max_body_bytes=LIMIT, max_tokens=64)
    with contextlib.ExitStack() as stack:
        out = {}
        for task, run in tiny_head_runs.items():
            app = build_app(str(run), cfg)
            out[task] = (stack.enter_context(running(app)), app)
        yield out


def call(url, method="GET", body=None, headers=None, timeout=60):
    """(status, parsed JSON or text) over plain HTTP."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, text = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    try:
        return status, json.loads(text)
    except json.JSONDecodeError:
        return status, text


def error(result, status: int, param=..., code=...) -> dict:
    """The error of a reply that must be OpenAI's error shape with this status (and param, code)."""
    got, body = result
    assert got == status, (got, body)
    assert isinstance(body, dict) and set(body) == {"error"}, body
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"] and err["type"], err
    assert "Traceback" not in err["message"]
    if param is not ...:
        assert err["param"] == param, err
    if code is not ...:
        assert err["code"] == code, err
    return err


def test_classify_one_and_many_equal_the_predictor(servers, tiny_head_runs):
    url, _ = servers["classification"]
    run = str(tiny_head_runs["classification"])
    want = Predictor.load(run).predict([{"text": t} for t in TEXTS])
    status, many = call(url + "/v1/classify", "POST", {"model": run, "input": TEXTS})
    assert status == 200 and many["object"] == "list" and many["model"] == run
    assert [d["index"] for d in many["data"]] == list(range(len(TEXTS)))
    assert all(d["object"] == "classification" for d in many["data"])
    assert [{k: d[k] for k in ("label", "score", "probabilities")} for d in many["data"]] == want
    assert len({d["label"] for d in many["data"]}) > 1  # the tiny model tells the labels apart
    assert many["usage"]["input_tokens"] > len(TEXTS)
    status, one = call(url + "/v1/classify", "POST", {"input": TEXTS[2]})  # a bare string; model optional
    assert status == 200 and len(one["data"]) == 1 and one["model"] == run
    assert one["data"][0]["label"] == want[2]["label"]
    assert one["data"][0]["probabilities"] == pytest.approx(want[2]["probabilities"], abs=1e-5)
    assert one["usage"]["input_tokens"] < many["usage"]["input_tokens"]


def test_extract_one_and_many_answer_spans_of_their_context(servers, tiny_head_runs):
    url, _ = servers["extractive_qa"]
    run = str(tiny_head_runs["extractive_qa"])
    items = [{"question": QUESTION, "context": CONTEXT},
             {"question": QUESTION, "context": "Giờ bay đổi. Hành lý xách tay tối đa 7 kg mỗi khách. Vé rẻ."}]
    want = Predictor.load(run).predict(items)
    status, one = call(url + "/v1/extract", "POST", {"model": run, **items[0]})
    assert status == 200 and one["object"] == "list" and one["model"] == run
    d = one["data"][0]
    assert d["object"] == "extraction" and d["index"] == 0
    assert {k: d[k] for k in ("answer", "start", "score", "no_answer")} == want[0]
    assert d["answer"] and CONTEXT[d["start"]:d["start"] + len(d["answer"])] == d["answer"]
    status, many = call(url + "/v1/extract", "POST", {"inputs": items})
    assert status == 200 and [x["index"] for x in many["data"]] == [0, 1]
    assert [{k: x[k] for k in ("answer", "start", "score", "no_answer")} for x in many["data"]] == want
    for item, x in zip(items, many["data"]):
        assert item["context"][x["start"]:x["start"] + len(x["answer"])] == x["answer"]


def test_seq2seq_answers_the_openai_clients_completions(servers, tiny_head_runs):
    url, app = servers["seq2seq"]
    run = str(tiny_head_runs["seq2seq"])
    client = OpenAI(base_url=url + "/v1", api_key="-", max_retries=0)
    p = Predictor.load(run)
    want = p.predict([{"text": d} for d in DOCS])
    out = client.completions.create(model=run, prompt=DOCS)
    assert out.object == "text_completion" and out.model == run
    assert [c.text for c in sorted(out.choices, key=lambda c: c.index)] == [w["summary"] for w in want]
    budget = p.spec["max_new_tokens"]
    assert out.usage.prompt_tokens > 10 and out.usage.completion_tokens <= 2 * budget
    assert out.usage.total_tokens == out.usage.prompt_tokens + out.usage.completion_tokens
    short = client.completions.create(model=run, prompt=DOCS[0], max_tokens=3)
    assert short.choices[0].finish_reason == "length" and short.usage.completion_tokens == 3
    assert short.choices[0].text == p.predict([{"text": DOCS[0]}], max_new_tokens=3)[0]["summary"]
    chunks = list(client.completions.create(model=run, prompt=DOCS[0], max_tokens=3, stream=True,
                                            stream_options={"include_usage": True}))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == short.choices[0].text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].usage.completion_tokens == 3
    full = out.choices[0].text if out.choices[0].index == 0 else out.choices[1].text
    stop = full.strip()[2:4]
    cut = client.completions.create(model=run, prompt=DOCS[0], stop=[stop])
    assert cut.choices[0].finish_reason == "stop" and cut.choices[0].text == full[:full.index(stop)]
    echo = client.completions.create(model=run, prompt=DOCS[0], max_tokens=3, echo=True)
    assert echo.choices[0].text == DOCS[0] + short.choices[0].text
    # a model that ends its answer itself: make a token it generates early an end-of-sequence token
    model = app.state.backend.predictor.model
    enc = p.tokenizer(p.spec["source_prefix"] + DOCS[0], return_tensors="pt")
    ids = model.generate(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], max_new_tokens=8,
                         do_sample=False)[0, 1:].tolist()  # [0]: the decoder's start token
    k = next(i for i in range(1, len(ids)) if ids[i] not in ids[:i])  # its first new token after the first
    original = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = [original, ids[k]]
    try:
        ended = client.completions.create(model=run, prompt=DOCS[0], max_tokens=10)
        assert ended.choices[0].finish_reason == "stop" and ended.usage.completion_tokens == k + 1
    finally:
        model.generation_config.eos_token_id = original


def test_models_and_health_name_the_task(servers, tiny_head_runs):
    for task, (url, _) in servers.items():
        run = str(tiny_head_runs[task])
        status, health = call(url + "/health")
        assert status == 200 and health["status"] == "ok" and health["models"] == [run]
        status, models = call(url + "/v1/models")
        assert status == 200 and [(m["id"], m["task"]) for m in models["data"]] == [(run, task)]
    url = servers["seq2seq"][0]
    card = OpenAI(base_url=url + "/v1", api_key="-", max_retries=0).models.retrieve(
        str(tiny_head_runs["seq2seq"]))
    assert card.model_extra["task"] == "seq2seq"


def test_bad_inputs_are_400s_that_name_the_field(servers):
    url = servers["classification"][0] + "/v1/classify"
    error(call(url, "POST", {"text": "hoàn tiền"}), 400, "input")  # the wrong field
    error(call(url, "POST", {"input": 5}), 400, "input")
    error(call(url, "POST", {"input": ["hoàn tiền", 3]}), 400, "input.1")
    error(call(url, "POST", {"input": "   "}), 400, "input")
    error(call(url, "POST", {"input": ["hoàn tiền", ""]}), 400, "input.1")
    error(call(url, "POST", {"input": []}), 400, "input")
    error(call(url, "POST", {"input": ["a"] * (MAX_ITEMS + 1)}), 400, "input", "too_many_inputs")
    error(call(url, "POST", b"{not json"), 400)
    error(call(url, "POST", {"model": "nope", "input": "a"}), 404, "model", "model_not_found")
    url = servers["extractive_qa"][0] + "/v1/extract"
    error(call(url, "POST", {"question": QUESTION}), 400, "context")
    error(call(url, "POST", {"context": CONTEXT}), 400, "question")
    error(call(url, "POST", {"question": QUESTION, "context": ""}), 400, "context")
    error(call(url, "POST", {"inputs": [{"question": QUESTION, "context": CONTEXT}, {"question": QUESTION}]}),
          400, "inputs.1.context")
    error(call(url, "POST", {"inputs": [{"question": " ", "context": CONTEXT}]}), 400, "inputs.0.question")
    error(call(url, "POST", {"inputs": []}), 400, "inputs")
    both = {"question": QUESTION, "context": CONTEXT, "inputs": [{"question": "q", "context": "c"}]}
    assert "not both" in error(call(url, "POST", both), 400, "inputs")["message"]
    error(call(url, "POST", {"inputs": [{"question": "q", "context": "c"}] * (MAX_ITEMS + 1)}),
          400, "inputs", "too_many_inputs")
    base, app = servers["seq2seq"]
    model = app.state.backend.name
    url = base + "/v1/completions"
    error(call(url, "POST", {"model": model, "prompt": ""}), 400, "prompt")
    error(call(url, "POST", {"model": model, "prompt": [DOCS[0], " "]}), 400, "prompt.1")
    error(call(url, "POST", {"model": model, "prompt": DOCS[0], "max_tokens": 65}), 400, "max_tokens")
    error(call(url, "POST", {"prompt": DOCS[0]}), 400, "model")
    client = OpenAI(base_url=base + "/v1", api_key="-", max_retries=0)
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model=model, prompt=["x"] * (MAX_ITEMS + 1))


def test_bodies_over_the_limit_are_413_with_or_without_a_length(servers):
    for task, (url, _) in servers.items():
        route = {"classification": "/v1/classify", "extractive_qa": "/v1/extract", "seq2seq": "/v1/completions"}[task]
        big = {"model": "m", "input": "x" * LIMIT, "question": "q", "context": "x" * LIMIT, "prompt": "x" * LIMIT}
        error(call(url + route, "POST", big), 413, code="body_too_large")
    # chunked: no Content-Length for the front door to refuse; the route must stop reading at the limit
    host, port = servers["classification"][0].removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    parts = [b'{"input": "', *[b"x" * 1000] * (LIMIT // 1000 + 5), b'"}']
    conn.request("POST", "/v1/classify", body=iter(parts), encode_chunked=True,
                 headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
    resp = conn.getresponse()
    error((resp.status, json.loads(resp.read())), 413, code="body_too_large")
    conn.close()


def test_routes_of_another_task_answer_404_naming_route_and_task(servers, tiny_head_runs, tiny_model_dir):
    bodies = {"/v1/chat/completions": {"model": "m", "messages": [{"role": "user", "content": "chào"}]},
              "/v1/completions": {"model": "m", "prompt": "chào"}, "/v1/classify": {"input": "chào"},
              "/v1/extract": {"question": "q", "context": "c"}, "/v1/embeddings": {"model": "m", "input": "chào"}}
    own = {"classification": "/v1/classify", "extractive_qa": "/v1/extract", "seq2seq": "/v1/completions"}
    for task, (url, _) in servers.items():
        for route, body in bodies.items():
            if route == own[task]:
                continue
            err = error(call(url + route, "POST", body), 404, "model")
            assert route in err["message"] and task in err["message"] and own[task] in err["message"], err
        err = error(call(url + "/"), 404)  # no chat page for a head
        assert task in err["message"]
    with pytest.raises(openai.NotFoundError, match="classification"):
        OpenAI(base_url=servers["classification"][0] + "/v1", api_key="-", max_retries=0).chat.completions.create(
            model=str(tiny_head_runs["classification"]), messages=[{"role": "user", "content": "chào"}])
    # and a chat model asked to classify says what it is
    with running(build_app(str(tiny_model_dir), ServeConfig())) as url:
        err = error(call(url + "/v1/classify", "POST", {"input": "chào"}), 404, "model")
        assert "/v1/classify" in err["message"] and "chat" in err["message"]


def test_the_api_key_guards_every_head_route_but_health(servers):
    backend = servers["classification"][1].state.backend
    with running(create_head_app(backend, ServeConfig(api_key="s3cret", max_body_bytes=LIMIT))) as url:
        assert call(url + "/health")[0] == 200
        for route, body in [("/v1/classify", {"input": "hoàn tiền"}), ("/v1/models", None)]:
            error(call(url + route, "POST" if body else "GET", body), 401, code="invalid_api_key")
            error(call(url + route, "POST" if body else "GET", body, {"Authorization": "Bearer wrong"}), 401)
            assert call(url + route, "POST" if body else "GET", body, {"Authorization": "Bearer s3cret"})[0] == 200


def test_inference_runs_off_the_event_loop_one_request_at_a_time(servers, monkeypatch):
    url, app = servers["classification"]
    predictor = app.state.backend.predictor
    original, entered, release = predictor.predict, threading.Semaphore(0), threading.Event()
    active, peak = [0], [0]

    def slow(items, **kw):
        active[0] += 1
        peak[0] = max(peak[0], active[0])
        entered.release()
        try:
            release.wait(30)
            return original(items, **kw)
        finally:
            active[0] -= 1
    monkeypatch.setattr(predictor, "predict", slow)
    results = []
    threads = [threading.Thread(target=lambda i=i: results.append(call(url + "/v1/classify", "POST",
                                                                       {"input": TEXTS[i]})[0])) for i in range(2)]
    try:
        threads[0].start()
        assert entered.acquire(timeout=20)  # the first request is inside the model
        threads[1].start()
        started = time.perf_counter()
        assert call(url + "/health", timeout=5)[0] == 200  # the event loop is free while the model works
        assert time.perf_counter() - started < 2
        assert not entered.acquire(timeout=0.5)  # the second waits for the lock
    finally:
        release.set()
        for t in threads:
            t.join(30)
    assert results == [200, 200] and peak[0] == 1


def test_build_app_refuses_adapters_and_rag_for_a_head(tiny_head_runs):
    run = str(tiny_head_runs["classification"])
    with pytest.raises(LuyenError, match="adapters"):
        build_app(run, ServeConfig(adapters={"x": run}))
    with pytest.raises(LuyenError, match="rag.index"):
        build_app(run, ServeConfig(), RagConfig(index="somewhere"))


def test_luyen_serve_command_serves_a_head_run(tiny_head_runs):
    import socket
    import subprocess
    import sys
    run = str(tiny_head_runs["classification"])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "luyen", "serve", "--model", run, "--port", str(port),
                             "--api-key", "k3y"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            try:
                if call(url + "/health", timeout=5)[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
        status, out = call(url + "/v1/classify", "POST", {"input": TEXTS}, {"Authorization": "Bearer k3y"})
        assert status == 200 and len(out["data"]) == len(TEXTS) and out["model"] == run
    finally:
        proc.terminate()
        log = proc.communicate(timeout=30)[0]
    assert "Traceback" not in log and "serve: classification head" in log, log
