"""`luyen serve` end to end: a real uvicorn server on loopback over a tiny model and a LoRA adapter,
driven by the official openai client and by raw HTTP (stdlib), never by a test client."""
from __future__ import annotations

import base64
import http.client
import json
import re
import threading
import time
import urllib.error
import urllib.request

import openai
import pytest
import torch
from openai import OpenAI

from luyen.config import GenerateConfig, ServeConfig
from luyen.errors import LuyenError
from luyen.serve import check, running
from luyen.serve.app import create_app
from luyen.serve.backends import TransformersBackend

HI = [{"role": "user", "content": "Xin chào, bạn khỏe không?"}]


def make_adapter(base_dir, out, seed: int):
    """A LoRA adapter with random (non-zero) weights, so it answers differently from its base."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    peft = get_peft_model(base, LoraConfig(r=4, lora_alpha=64, target_modules="all-linear", init_lora_weights=False))
    peft.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def adapter_dir(tmp_path_factory, tiny_model_dir):
    return make_adapter(tiny_model_dir, tmp_path_factory.mktemp("adapter"), seed=1)


@pytest.fixture(scope="module")
def other_adapter_dir(tmp_path_factory, tiny_model_dir):
    return make_adapter(tiny_model_dir, tmp_path_factory.mktemp("adapter2"), seed=2)


@pytest.fixture(scope="module")
def backend(tiny_model_dir, adapter_dir, other_adapter_dir):
    # fp32, like the engines it is compared with (the default is bf16 on CPUs that multiply it natively)
    return TransformersBackend.load(str(tiny_model_dir), adapters={"tuned": str(adapter_dir),
                                    "other": str(other_adapter_dir)}, dtype=torch.float32)


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    """The base model in the shared engine, loaded on its own: what the server must agree with."""
    from luyen.infer.engine import Engine
    from luyen.models.trained import load_trained
    return Engine(*load_trained(str(tiny_model_dir), dtype=torch.float32))


@pytest.fixture(scope="module")
def server(backend):
    app = create_app(backend, ServeConfig(max_tokens=200, max_body_bytes=20_000, batch_wait_ms=20))
    with running(app) as url:
        yield url, app


@pytest.fixture(scope="module")
def client(server):
    return OpenAI(base_url=server[0] + "/v1", api_key="unused", max_retries=0)


def call(url, method="GET", body=None, headers=None):
    """(status, headers, text) over plain HTTP."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def metric(base_url: str, name: str) -> float:
    text = call(base_url + "/metrics")[2]
    return sum(float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


def test_models_lists_the_base_and_every_adapter(client, tiny_model_dir):
    ids = [m.id for m in client.models.list()]
    assert ids == [str(tiny_model_dir), "tuned", "other"]
    assert client.models.retrieve("tuned").id == "tuned"


def test_chat_plain_and_streaming_agree_with_the_engine(client, engine, tiny_model_dir):
    model = str(tiny_model_dir)
    want = engine.chat(HI, GenerateConfig(max_new_tokens=10))
    stream = client.chat.completions.create(model=model, messages=HI, max_tokens=10, temperature=0,
                                            stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(deltas) == want.text and len(deltas) > 1  # really streamed, token by token
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == want.finish_reason
    assert chunks[-1].usage.completion_tokens == want.completion_tokens
    plain = client.chat.completions.create(model=model, messages=HI, max_tokens=10, temperature=0)
    assert plain.choices[0].message.content == want.text
    assert plain.usage.prompt_tokens == want.prompt_tokens and plain.usage.completion_tokens == want.completion_tokens
    assert plain.usage.total_tokens == plain.usage.prompt_tokens + plain.usage.completion_tokens
    assert plain.choices[0].finish_reason == want.finish_reason


def test_completions_batch_stream_max_tokens_and_stop(client, engine, tiny_model_dir):
    model = str(tiny_model_dir)
    prompts = ["Hà Nội là thủ đô", "The quick brown fox"]
    out = client.completions.create(model=model, prompt=prompts, max_tokens=6, temperature=0)
    want = engine.generate(prompts, GenerateConfig(max_new_tokens=6))
    assert [c.text for c in sorted(out.choices, key=lambda c: c.index)] == [w.text for w in want]
    assert all(c.finish_reason == "length" for c in out.choices) and out.usage.completion_tokens == 12
    text = "".join(c.choices[0].text for c in client.completions.create(
        model=model, prompt=prompts[0], max_tokens=6, temperature=0, stream=True) if c.choices)
    assert text == want[0].text
    full = client.completions.create(model=model, prompt=prompts[0], max_tokens=16, temperature=0).choices[0].text
    stop = full.strip()[2:5]
    cut = client.completions.create(model=model, prompt=prompts[0], max_tokens=16, temperature=0, stop=[stop])
    assert cut.choices[0].finish_reason == "stop" and stop not in cut.choices[0].text
    assert full.startswith(cut.choices[0].text)
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model=model, prompt=prompts[0], max_tokens=16, temperature=0, stop=stop, seed=1, stream=True) if c.choices)
    assert streamed == cut.choices[0].text  # a stop string split across tokens never leaks into the stream


def test_seeded_sampling_is_reproducible_and_top_p_one_token_is_greedy(client, tiny_model_dir):
    model = str(tiny_model_dir)
    ask = dict(model=model, messages=HI, max_tokens=12, temperature=1.5)
    a = client.chat.completions.create(**ask, seed=11).choices[0].message.content
    b = client.chat.completions.create(**ask, seed=11, top_p=0.999999).choices[0].message.content
    c = client.chat.completions.create(**ask, seed=12).choices[0].message.content
    assert a == b and a != c
    greedy = client.chat.completions.create(model=model, messages=HI, max_tokens=12, temperature=0)
    nucleus = client.chat.completions.create(**ask, top_p=1e-6, seed=3)
    assert nucleus.choices[0].message.content == greedy.choices[0].message.content


def test_the_request_model_picks_the_adapter_even_in_mixed_concurrent_traffic(
        server, adapter_dir, other_adapter_dir, engine, tiny_model_dir):
    from luyen.infer.engine import Engine
    from luyen.models.trained import load_trained
    url, _ = server
    engines = {str(tiny_model_dir): engine}
    for name, folder in [("tuned", adapter_dir), ("other", other_adapter_dir)]:
        engines[name] = Engine(*load_trained(str(folder), base=str(tiny_model_dir), dtype=torch.float32))
    asks = [(name, f"câu {i} cho {name}") for i in range(6) for name in engines]
    want = {(m, q): engines[m].chat([{"role": "user", "content": q}], GenerateConfig(max_new_tokens=8)).text
            for m, q in asks}
    assert len({want[a] for a in asks if a[1].startswith("câu 0 ")}) == 3  # three models, three answers
    got = {}

    def ask(m, q):
        body = {"model": m, "messages": [{"role": "user", "content": q}], "max_tokens": 8, "temperature": 0}
        got[(m, q)] = json.loads(call(url + "/v1/chat/completions", "POST", body)[2])["choices"][0]["message"]["content"]

    threads = [threading.Thread(target=ask, args=a) for a in asks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == want
    status, _, text = call(url + "/v1/chat/completions", "POST", {"model": "nope", "messages": HI})
    assert status == 404 and json.loads(text)["error"]["code"] == "model_not_found"


def test_concurrent_requests_are_batched_and_repeats_come_from_the_cache(server, tiny_model_dir):
    url, _ = server
    batches = metric(url, "luyen_batches_total")
    results, errors = {}, []

    def ask(i):
        try:
            body = {"model": str(tiny_model_dir), "max_tokens": 4, "temperature": 0,
                    "messages": [{"role": "user", "content": f"câu hỏi số {i}"}]}
            results[i] = call(url + "/v1/chat/completions", "POST", body)
        except Exception as e:  # noqa: BLE001 - any failure counts
            errors.append(e)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 100 and {r[0] for r in results.values()} == {200}
    used = metric(url, "luyen_batches_total") - batches
    assert used <= 40, f"100 requests took {used} batches: they were not batched"
    hits = metric(url, "luyen_cache_hits_total")
    status, _, again = call(url + "/v1/chat/completions", "POST", {
        "model": str(tiny_model_dir), "max_tokens": 4, "temperature": 0,
        "messages": [{"role": "user", "content": "câu hỏi số 7"}]})
    assert status == 200 and metric(url, "luyen_cache_hits_total") == hits + 1
    first = json.loads(results[7][2])
    assert json.loads(again)["choices"] == first["choices"] and json.loads(again)["usage"] == first["usage"]


def test_a_request_that_arrives_mid_batch_joins_it_and_leaves_first(server, engine, tiny_model_dir):
    """Continuous batching: B arrives while A's long answer is streaming; B joins A's batch at the next
    step (no second batch) and is answered before A ends, with the answer it gets alone."""
    url, _ = server
    host, port = url.removeprefix("http://").split(":")
    long_chat = max(([{"role": "user", "content": f"kể chuyện số {i}"}] for i in range(6)),
                    key=lambda m: engine.chat(m, max_new_tokens=200).completion_tokens)
    assert engine.chat(long_chat, max_new_tokens=200).completion_tokens >= 150, "the test lost its long answer"
    short = [{"role": "user", "content": "vé máy bay"}]
    want = engine.chat(short, max_new_tokens=3).text
    batches = metric(url, "luyen_batches_total")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    conn.request("POST", "/v1/chat/completions", json.dumps({
        "model": str(tiny_model_dir), "max_tokens": 200, "temperature": 0, "stream": True, "messages": long_chat}),
        {"Content-Type": "application/json"})
    resp, done, seen = conn.getresponse(), {}, 0
    while seen < 5:  # A's batch is decoding: five pieces of its answer have arrived
        line = resp.readline()
        assert line, "A ended before B was sent"
        seen += b'"content": "' in line and b'"content": ""' not in line

    def ask():
        done["b"] = call(url + "/v1/chat/completions", "POST", {"model": str(tiny_model_dir), "max_tokens": 3,
                                                               "temperature": 0, "messages": short})
        done["b_at"] = time.monotonic()
    helper = threading.Thread(target=ask)
    helper.start()
    body = resp.read()
    a_at = time.monotonic()
    helper.join()
    conn.close()
    assert body.rstrip().endswith(b"data: [DONE]")
    assert done["b"][0] == 200 and json.loads(done["b"][2])["choices"][0]["message"]["content"] == want
    assert done["b_at"] < a_at, "B waited for A's batch to end"
    assert metric(url, "luyen_batches_total") == batches + 1, "B ran in a batch of its own"


def test_a_client_that_disconnects_mid_stream_frees_its_row(server, tiny_model_dir):
    url, _ = server
    host, port = url.removeprefix("http://").split(":")
    cancelled = metric(url, "luyen_cancelled_total")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    body = {"model": str(tiny_model_dir), "max_tokens": 200, "temperature": 0, "seed": 99, "stream": True,
            "stop": ["\u2063never\u2063"], "messages": [{"role": "user", "content": "kể một câu chuyện dài"}]}
    conn.request("POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200 and resp.readline().startswith(b"data: ")
    conn.sock.close()  # gone mid-stream
    conn.close()
    deadline = time.time() + 20
    while metric(url, "luyen_cancelled_total") == cancelled and time.time() < deadline:
        time.sleep(0.05)
    assert metric(url, "luyen_cancelled_total") == cancelled + 1
    assert metric(url, "luyen_requests_in_flight") == 0


def test_errors_have_openai_shape_and_limits_hold(server, client, tiny_model_dir):
    url, app = server
    model = str(tiny_model_dir)
    cases = {
        "bad json": (call(url + "/v1/chat/completions", "POST", b"{not json"), 400),
        "no messages": (call(url + "/v1/chat/completions", "POST", {"model": model}), 400),
        "max_tokens over limit": (call(url + "/v1/chat/completions", "POST",
                                       {"model": model, "messages": HI, "max_tokens": 201}), 400),
        "prompt too long": (call(url + "/v1/completions", "POST",
                                 {"model": model, "prompt": "Hà Nội " * 300, "max_tokens": 4}), 400),
        "body too large": (call(url + "/v1/completions", "POST",
                                {"model": model, "prompt": "x" * 30_000}), 413),
        "n > 1": (call(url + "/v1/completions", "POST", {"model": model, "prompt": "a", "n": 2}), 400),
        "tools": (call(url + "/v1/chat/completions", "POST", {"model": model, "messages": HI,
                                                              "tools": [{"type": "function"}]}), 400),
        "image": (call(url + "/v1/chat/completions", "POST", {"model": model, "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}]}), 400),
        "unknown route": (call(url + "/v2/nothing"), 404),
    }
    for name, ((status, _, text), want) in cases.items():
        err = json.loads(text)["error"]
        assert status == want, (name, status, text)
        assert err["message"] and err["type"] and "Traceback" not in text, name
    assert json.loads(cases["image"][0][2])["error"]["param"] == "messages.0.content.0.type"
    assert "tools is not supported" in json.loads(cases["tools"][0][2])["error"]["message"]
    prompt_err = json.loads(cases["prompt too long"][0][2])["error"]
    assert prompt_err["code"] == "context_length_exceeded" and prompt_err["param"] == "prompt"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=model, messages=HI, max_tokens=201)


def test_an_internal_error_never_shows_its_trace(server):
    url, app = server

    def boom():
        raise RuntimeError("secret detail /home/user/.ssh/id_rsa")
    app.add_api_route("/boom", boom)
    status, _, text = call(url + "/boom")
    assert status == 500 and json.loads(text)["error"]["type"] == "server_error"
    assert "secret" not in text and "Traceback" not in text and "RuntimeError" not in text


def test_api_keys_cors_and_the_loopback_rule(backend, tiny_model_dir):
    model = str(tiny_model_dir)
    cfg = ServeConfig(api_key="s3cret-key", cors_origins=["http://app.example"])
    with running(create_app(backend, cfg)) as url:
        assert call(url + "/health")[0] == 200
        for route in ["/", "/v1/models", "/metrics"]:
            status, headers, text = call(url + route)
            assert status == 401 and json.loads(text)["error"]["type"] == "authentication_error", route
        assert "Basic" in call(url + "/")[1]["www-authenticate"]  # the browser asks, then the page works
        assert "Basic" in call(url + "/train")[1]["www-authenticate"]  # the training page too
        assert call(url + "/v1/models")[1]["www-authenticate"] == "Bearer"
        basic = base64.b64encode(b"me:s3cret-key").decode()
        assert call(url + "/", headers={"Authorization": f"Basic {basic}"})[0] == 200
        with pytest.raises(openai.AuthenticationError):
            OpenAI(base_url=url + "/v1", api_key="wrong", max_retries=0).models.list()
        good = OpenAI(base_url=url + "/v1", api_key="s3cret-key", max_retries=0)
        text = "".join(c.choices[0].delta.content or "" for c in good.chat.completions.create(
            model=model, messages=HI, max_tokens=3, temperature=0, stream=True) if c.choices)
        assert text
        pre = call(url + "/v1/chat/completions", "OPTIONS", headers={
            "Origin": "http://app.example", "Access-Control-Request-Method": "POST"})
        assert pre[0] == 200 and pre[1]["access-control-allow-origin"] == "http://app.example"
    with running(create_app(backend, ServeConfig())) as url:  # CORS is off unless configured
        status, headers, _ = call(url + "/v1/models", headers={"Origin": "http://evil.example"})
        assert status == 200 and "access-control-allow-origin" not in {k.lower() for k in headers}
    for host in ["0.0.0.0", "192.168.1.5", "example.com", "::"]:
        with pytest.raises(LuyenError, match="api-key"):
            check(ServeConfig(host=host))
        check(ServeConfig(host=host, api_key="k"))
    for host in ["127.0.0.1", "localhost", "::1", "127.0.0.2"]:
        check(ServeConfig(host=host))


def test_cli_refuses_an_open_public_bind_and_a_bad_adapter_spec(tiny_model_dir):
    from typer.testing import CliRunner
    from luyen.cli import app
    runner = CliRunner()
    out = runner.invoke(app, ["serve", str(tiny_model_dir), "--host", "0.0.0.0"])
    assert out.exit_code == 2 and "without an API key" in out.output and "Traceback" not in out.output
    out = runner.invoke(app, ["serve", str(tiny_model_dir), "--adapters", "no-equals-sign"])
    assert out.exit_code == 2 and "NAME=PATH" in out.output
    out = runner.invoke(app, ["serve", str(tiny_model_dir), "--adapters", f"x={tiny_model_dir}"])
    assert out.exit_code == 2 and "not a LoRA adapter" in out.output


def test_luyen_serve_command_starts_a_working_server(tiny_model_dir, adapter_dir):
    import socket
    import subprocess
    import sys
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "luyen", "serve", str(tiny_model_dir), "--port", str(port),
                             "--adapters", f"tuned={adapter_dir}", "--api-key", "0123"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            try:
                if call(url + "/health")[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
        client = OpenAI(base_url=url + "/v1", api_key="0123", max_retries=0)
        assert [m.id for m in client.models.list()] == [str(tiny_model_dir), "tuned"]
        out = client.chat.completions.create(model="tuned", messages=HI, max_tokens=3, temperature=0)
        assert out.usage.completion_tokens <= 3 and out.choices[0].message.content is not None
    finally:
        proc.terminate()
        log = proc.communicate(timeout=30)[0]
    assert "Traceback" not in log, log


RAG_QUESTION = [{"role": "user", "content": "Hành lý xách tay được mang bao nhiêu kg?"}]


@pytest.fixture(scope="module")
def rag_index(tmp_path_factory):
    """An index of two airline policy documents (two keep the build short), k = 2."""
    from pathlib import Path
    from luyen.config import load_config
    from luyen.rag import build_index
    import shutil
    policies = Path(__file__).parents[2] / "examples" / "data" / "airline_policies"
    root = tmp_path_factory.mktemp("rag")
    docs = root / "docs"
    docs.mkdir()
    for name in ("hanh-ly-xach-tay.md", "doi-ve.md"):
        shutil.copy(policies / name, docs)
    build_index(load_config(None, ["rag.k=2"]), [docs], root / "index")
    return root / "index"


def test_rag_grounds_chat_requests_in_the_index(rag_index, tiny_gemma_tokenizer_dir):
    from luyen.infer.engine import Engine
    from luyen.models.trained import load_trained
    from luyen.rag import augment, load_index
    from luyen.serve import load_rag
    question = RAG_QUESTION
    index = load_index(rag_index)
    grounded = augment(question, index.search(question[0]["content"]), index.settings.get("template"))
    assert "hanh-ly-xach-tay.md" in grounded[-1]["content"]
    backend = TransformersBackend.load(str(tiny_gemma_tokenizer_dir), dtype=torch.float32)
    # the passages outgrow the tiny model's 256 positions; rotary positions go on, as `luyen generate --rag` does
    cfg = ServeConfig(max_prompt_tokens=4096)
    with running(create_app(backend, cfg, rag=load_rag(str(rag_index)))) as url:
        client = OpenAI(base_url=url + "/v1", api_key="-", max_retries=0)
        out = client.chat.completions.create(model=str(tiny_gemma_tokenizer_dir), messages=question, max_tokens=6,
                                             temperature=0)
        stream = list(client.chat.completions.create(model=str(tiny_gemma_tokenizer_dir), messages=question,
                                                     max_tokens=6, temperature=0, stream=True))
    # the passages the model was given, numbered as in its prompt, come back beside the answer
    given = [{"n": n, "label": h.label, "source": h.source, "position": h.position, "heading": h.heading}
             for n, h in enumerate(index.search(question[0]["content"]), 1)]
    assert out.model_extra["sources"] == given and given[0]["source"] == "hanh-ly-xach-tay.md"
    assert stream[0].model_extra["sources"] == given
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == out.choices[0].message.content
    engine = Engine(*load_trained(str(tiny_gemma_tokenizer_dir), dtype=torch.float32))
    want = engine.chat(grounded, GenerateConfig(max_new_tokens=6))
    assert out.choices[0].message.content == want.text and out.usage.prompt_tokens == want.prompt_tokens
    assert out.usage.prompt_tokens > engine.chat(question, GenerateConfig(max_new_tokens=1)).prompt_tokens + 50


def test_build_app_grounds_every_chat_in_the_rag_config_index_with_its_template(rag_index, tiny_gemma_tokenizer_dir):
    """`serve(model, cfg, rag)`: rag.index grounds each chat request through luyen.rag.ground with
    rag.template; without an index the same app answers the bare question and lists no sources."""
    from luyen.config import RagConfig
    from luyen.infer.engine import Engine
    from luyen.models.trained import load_trained
    from luyen.rag import given, ground, load_index
    from luyen.serve import build_app
    model, cfg = str(tiny_gemma_tokenizer_dir), ServeConfig(max_prompt_tokens=4096)
    rag = RagConfig(index=str(rag_index), template="Trả lời: {question}\n\nTài liệu:\n{context}")
    grounded, hits = ground(load_index(rag_index), RAG_QUESTION, rag.template)
    assert grounded[-1]["content"].startswith("Trả lời: Hành lý") and hits
    engine = Engine(*load_trained(model, dtype=torch.float32))
    want = engine.chat(grounded, GenerateConfig(max_new_tokens=1)).prompt_tokens
    bare = engine.chat(RAG_QUESTION, GenerateConfig(max_new_tokens=1)).prompt_tokens
    for rag_cfg, tokens, sources in ((rag, want, given(hits)), (RagConfig(), bare, None)):
        with running(build_app(model, cfg, rag_cfg)) as url:
            raw = OpenAI(base_url=url + "/v1", api_key="-", max_retries=0).chat.completions.create(
                model=model, messages=RAG_QUESTION, max_tokens=2, temperature=0)
        assert raw.usage.prompt_tokens == tokens and (raw.model_extra or {}).get("sources") == sources


def test_a_prompt_tuning_adapter_is_answered_by_one_generate_call(tiny_model_dir):
    """peft prepends a prompt-learning adapter's virtual tokens at every forward, so no running batch can
    take its rows: the backend answers them with one `generate` call, as the engine does."""
    from peft import PromptTuningConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from luyen.infer.engine import Engine
    from luyen.serve.scheduler import Row
    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32),
                           PromptTuningConfig(num_virtual_tokens=4, task_type="CAUSAL_LM"))
    engine = Engine(model, AutoTokenizer.from_pretrained(tiny_model_dir))
    backend = TransformersBackend(engine, "prompted")
    prompts = [engine.encode(engine.render([{"role": "user", "content": q}])) for q in ("vé máy bay", "học máy là gì")]
    want = engine.generate_ids(prompts, engine.settings(GenerateConfig(max_new_tokens=12)))
    key, asked = ("prompted", 0.0, 1.0, None, None), []
    rows = [Row(key, p, 12, [], lambda event: None) for p in prompts]
    backend.run(key, rows, join=lambda in_flight: asked.append(in_flight) or [])
    assert not asked  # no rows join a generate call
    for row, w in zip(rows, want.tolist()):
        w = w[:next((j for j, t in enumerate(w) if t in engine.stop_ids), len(w))]
        assert row.ids == w


def test_a_bf16_model_decodes_its_running_batch_under_the_engines_autocast(tiny_model_dir, adapter_dir):
    """Where the engine generates under bf16 autocast (bf16 weights, fp32 adapter weights), the running
    batch's prefill and steps do too, as its `generate` calls did."""
    from luyen.serve.scheduler import Row
    backend = TransformersBackend.load(str(tiny_model_dir), adapters={"tuned": str(adapter_dir)}, dtype=torch.bfloat16)
    assert backend.engine.autocast_dtype == torch.bfloat16
    seen = []
    backend.engine.model.register_forward_pre_hook(lambda *_: seen.append(torch.is_autocast_enabled("cpu")))
    key = ("tuned", 0.0, 1.0, None, None)
    ids = backend.encode("tuned", backend.render("tuned", HI), True)
    row = Row(key, ids, 6, [], lambda event: None)
    backend.run(key, [row], join=lambda in_flight: [])
    assert row.finish and len(seen) >= 2 and all(seen)


def test_the_running_batch_decodes_greedy_rows_through_the_screen_with_a_cache_that_grows_in_place(
        backend, engine, tiny_model_dir, monkeypatch):
    """The server's running batch uses the engine's decoding pieces: greedy rows take the int8-screened
    output layer (luyen.infer.screen) and the KV cache grows in place (kvcache.GrowingLayer), and the
    tokens are the engine's."""
    from luyen.infer.engine import cache_argument
    from luyen.infer.kvcache import GrowingLayer
    from luyen.infer.screen import Screen
    from luyen.serve.scheduler import Row
    screened, growing, real = [], [], Screen.logits
    monkeypatch.setattr(Screen, "logits", lambda self, x: screened.append(x.shape[0]) or real(self, x))

    def look(module, args, kwargs):
        cache = kwargs.get(cache_argument(backend.engine.model))
        growing.append(any(isinstance(layer, GrowingLayer) for layer in getattr(cache, "layers", [])))
    model = str(tiny_model_dir)
    prompts = [backend.encode(model, backend.render(model, [{"role": "user", "content": q}]), True)
               for q in ("vé máy bay", "học máy là gì")]
    want = engine.generate_ids(prompts, engine.settings(GenerateConfig(max_new_tokens=12)))
    key, screened[:] = (model, 0.0, 1.0, None, None), []  # the engine's own answer was screened too
    rows = [Row(key, p, 12, [], lambda event: None) for p in prompts]
    hook = backend.engine.model.register_forward_pre_hook(look, with_kwargs=True)
    try:
        backend.run(key, rows, join=lambda in_flight: [])
    finally:
        hook.remove()
    for row, w in zip(rows, want.tolist()):
        assert row.ids == w[:next((j for j, t in enumerate(w) if t in engine.stop_ids), len(w))]
    assert len(screened) >= 2 and any(growing) and not growing[0]  # the prefill starts a plain cache


def test_every_served_adapter_answers_through_its_merged_copy_and_a_removed_one_frees_it(
        backend, tiny_model_dir, tmp_path):
    """Adapters given at start and added while serving each get packed merged copies (luyen.infer.packed),
    so every adapter decodes as fast as the first; removing one frees its copies."""
    from luyen.infer.packed import _MERGED
    layers = [m for m in backend.engine.model.modules() if hasattr(m, _MERGED)]
    assert layers and all({"tuned", "other"} <= set(getattr(m, _MERGED)) for m in layers)
    backend.add_model("third", str(make_adapter(tiny_model_dir, tmp_path / "third", seed=3)))
    try:
        assert all("third" in getattr(m, _MERGED) for m in layers)
    finally:
        backend.remove_model("third")
    assert not any("third" in getattr(m, _MERGED) for m in layers)
