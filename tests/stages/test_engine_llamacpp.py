"""generate.runtime: the engine over llama.cpp (luyen.infer.gguf) answers as the engine over transformers
does, on a tiny model that memorised its corpus (wide margins, so f16 rounding cannot honestly flip a token)."""
from __future__ import annotations

import json
import sys

import pytest
import torch

from conftest import SPM_SENTENCES, make_spm_model
from luyen.config import GenerateConfig
from luyen.errors import LuyenError
from luyen.infer import gguf
from luyen.infer.engine import Engine

pytest.importorskip("llama_cpp", reason="the gguf extra (llama-cpp-python) is not installed")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A fresh luyen cache for the GGUFs, sharing the real one's llama.cpp converter (fetched once from PyPI)."""
    from luyen.models.embedded import cache_root
    real = cache_root() / "llama.cpp"
    real.mkdir(parents=True, exist_ok=True)
    root = tmp_path_factory.mktemp("xdg")
    (root / "luyen").mkdir()
    (root / "luyen" / "llama.cpp").symlink_to(real)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(root))
        yield root / "luyen"


@pytest.fixture(scope="module")
def spm_model(tmp_path_factory):
    return make_spm_model(tmp_path_factory.mktemp("spm") / "model", "gemma3_text")


@pytest.fixture(scope="module")
def engines(cache, spm_model):
    fast = Engine.load(str(spm_model), dtype=torch.float32, runtime="llama.cpp-f16")
    slow = Engine.load(str(spm_model), dtype=torch.float32, runtime="transformers")
    return fast, slow


def prompts(engine) -> list[str]:
    """The first two words of each memorised sentence: the model knows how each goes on."""
    return [" ".join(s.split()[:2]) for s in SPM_SENTENCES]


def test_llama_cpp_runs_the_model_and_says_so(engines, cache):
    fast, slow = engines
    assert fast.runner is not None and slow.runner is None and slow.runtime == "transformers"
    assert fast.runtime.startswith("llama.cpp f16 (") and "promise kept" in fast.runtime
    [home] = list((cache / "gguf").iterdir())
    info = json.loads((home / "gguf.json").read_text())
    assert info["quant"] == "f16" and info["agreement"]["kept"] and (home / info["file"]).is_file()
    assert not (home / "merged").exists()  # the folded safetensors were only the converter's input


@pytest.mark.parametrize("settings", [
    {},  # greedy
    {"repetition_penalty": 1.5, "no_repeat_ngram_size": 2},
    {"temperature": 0.7, "top_k": 5, "top_p": 0.9, "seed": 3},
    {"temperature": 4.0, "seed": 3},  # flat enough that the draws, not the argmax, decide: the same seeded draws
], ids=["greedy", "penalties", "sampling", "hot-sampling"])
def test_llama_cpp_answers_as_transformers_does(engines, settings):
    fast, slow = engines
    cfg = GenerateConfig(max_new_tokens=10, **settings)
    got, want = fast.generate(prompts(fast), cfg), slow.generate(prompts(slow), cfg.model_copy(update={"batch_size": 1}))
    assert [c.text for c in got] == [c.text for c in want]
    assert [c.finish_reason for c in got] == [c.finish_reason for c in want]
    assert [c.completion_tokens for c in got] == [c.completion_tokens for c in want]
    assert len(set(c.text for c in got)) > 1 and all(c.text for c in got)


def test_settings_change_llama_cpps_answers_as_they_change_transformers(engines):
    fast, _ = engines
    plain = [c.text for c in fast.generate(prompts(fast), max_new_tokens=10)]
    penalised = [c.text for c in fast.generate(prompts(fast), max_new_tokens=10, no_repeat_ngram_size=1,
                                               repetition_penalty=3.0)]
    assert plain != penalised  # the processors run on the llama.cpp path, not only on transformers'
    hot = [[c.text for c in fast.generate(prompts(fast), max_new_tokens=10, temperature=4.0, seed=s)] for s in (3, 4)]
    assert hot[0] != hot[1]  # the seed decides the draws


def test_the_repetition_penalty_counts_the_answers_tokens_only():
    """As the transformers path (Engine._generate_kwargs): the llama.cpp rows' Sampler penalises the answer's
    tokens, not the prompt's. Token 8 (the answer's) leads token 5 (the prompt's) before the penalty."""
    from luyen.infer.live import Sampler
    scores = torch.zeros(10)
    scores[5], scores[8] = 1.0, 1.2
    assert Sampler(repetition_penalty=2.0).pick(scores.clone(), prompt=[5, 6, 7], answer=[8]) == 5  # 8 -> 0.6
    assert Sampler().pick(scores.clone(), prompt=[5, 6, 7], answer=[8]) == 8


@pytest.fixture
def decodes(engines, monkeypatch):
    """The rows in each llama_decode call of a step or an admission (how many decoded together)."""
    calls = []
    real = gguf.LlamaBatch._decode
    monkeypatch.setattr(gguf.LlamaBatch, "_decode", lambda self, entries: (calls.append(sum(e[3] for e in entries)),
                                                                            real(self, entries))[1])
    return calls


def test_rows_decode_together_and_a_finished_rows_place_is_taken(engines, decodes):
    """Eight prompts, three rows at a time: each row's answer is what it gives alone, the rows shared their
    steps, and a row that ended freed its sequence's KV cells for the next prompt (a stale cache would
    change the answers of the prompts that reuse a sequence)."""
    fast, slow = engines
    many = prompts(fast) * 2
    want = [c.text for c in slow.generate(many, max_new_tokens=12, batch_size=1)]
    assert [c.text for c in fast.generate(many, max_new_tokens=12, batch_size=3)] == want
    assert max(decodes) == 3 and len(decodes) < sum(1 + 12 for _ in many) / 2
    decodes.clear()
    assert [c.text for c in fast.generate(many, max_new_tokens=12, batch_size=1)] == want
    assert max(decodes) == 1


def test_rows_wait_for_kv_cells_when_the_context_is_full(engines, decodes):
    fast, slow = engines
    many = prompts(fast)
    want = [c.text for c in slow.generate(many, max_new_tokens=8, batch_size=1)]
    longest = max(len(fast.encode(p, templated=False)) for p in many) + 8
    cells = fast.runner.cells
    fast.runner.cells = longest + 1  # room for one row at a time
    try:
        got = [c.text for c in fast.generate(many, max_new_tokens=8, batch_size=8)]
    finally:
        fast.runner.cells = cells
    assert got == want and max(decodes) == 1


def test_a_stop_string_is_cut_and_ends_the_answer(engines):
    fast, slow = engines
    text = slow.generate(prompts(slow)[0], max_new_tokens=10).text
    stop = text.split()[1]
    got = fast.generate(prompts(fast)[0], max_new_tokens=10, stop=[stop])
    assert stop not in got.text and got.finish_reason == "stop" and got.text == text[:text.index(stop)]


def test_a_prompt_longer_than_llama_cpps_context_goes_through_transformers(engines):
    fast, slow = engines
    n_ctx = fast.runner.n_ctx
    fast.runner.n_ctx = 4
    try:
        got = fast.generate(prompts(fast)[:2], max_new_tokens=6)
    finally:
        fast.runner.n_ctx = n_ctx
    assert [c.text for c in got] == [c.text for c in slow.generate(prompts(slow)[:2], max_new_tokens=6)]


def test_the_gguf_is_built_once_per_weights(engines, cache, spm_model, monkeypatch):
    fast, _ = engines
    built = []
    real_build = gguf.build
    monkeypatch.setattr(gguf, "build", lambda *a, **k: (built.append(a[0]), real_build(*a, **k)))
    again = Engine.load(str(spm_model), dtype=torch.float32, runtime="llama.cpp-f16")
    assert built == [] and again.runner.path == fast.runner.path  # the same weights: the cached file
    model = again.model
    with torch.no_grad():
        model.get_input_embeddings().weight[5, 0] += 1.0  # other weights, another key
    assert gguf.model_key(model, again.tok) != gguf.model_key(fast.model, fast.tok)


def test_auto_without_llama_cpp_stays_on_transformers_and_explicit_names_the_install(monkeypatch, spm_model, cache):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # as if llama-cpp-python were not installed
    assert gguf.choose("auto", "cpu") is None
    with pytest.raises(LuyenError, match=r"pip install 'luyen\[gguf\]'"):
        gguf.choose("llama.cpp-q8_0", "cpu")
    engine = Engine.load(str(spm_model), dtype=torch.float32, runtime="auto")
    assert engine.runner is None and engine.runtime == "transformers"


def test_auto_on_a_gpu_stays_on_transformers():
    assert gguf.choose("auto", "cuda") is None and gguf.choose("transformers", "cpu") is None
    assert gguf.choose("auto", "cpu") == "llama.cpp-f16"


def test_a_model_llama_cpp_cannot_take_is_recorded_and_served_by_transformers(cache, tiny_gemma_tokenizer_dir, monkeypatch):
    engine = Engine.load(str(tiny_gemma_tokenizer_dir), dtype=torch.float32, runtime="auto")
    assert engine.runner is None and engine.runtime.startswith("transformers (llama.cpp cannot run it: ")
    assert engine.chat([{"role": "user", "content": "Xin chào"}], max_new_tokens=4).prompt_tokens > 0
    built = []
    monkeypatch.setattr(gguf, "build", lambda *a, **k: built.append(a))
    again = Engine.load(str(tiny_gemma_tokenizer_dir), dtype=torch.float32, runtime="auto")
    assert built == [] and again.runtime == engine.runtime  # the refusal is remembered, not retried per load


def test_the_cli_says_which_runtime_it_chose(cache, spm_model, engines):
    from typer.testing import CliRunner

    from luyen.cli import app
    _, slow = engines
    prompt = prompts(slow)[1]
    res = CliRunner().invoke(app, ["generate", "--model", str(spm_model), "--prompt", prompt, "-n", "8", "--no-chat",
                                   "--runtime", "llama.cpp-f16"])
    assert res.exit_code == 0, res.output
    assert res.stdout == slow.generate(prompt, max_new_tokens=8).text + "\n"
    assert "runtime: llama.cpp f16 (" in " ".join(res.stderr.split())


def test_a_script_holding_the_engine_exits_cleanly(cache, spm_model, engines):
    """A user's script keeps the engine in a global until the interpreter ends: llama.cpp's model must be
    closed while its module is still whole (left to Llama.__del__ at shutdown, the script ended with
    "Exception ignored ... TypeError: 'NoneType' object is not callable" on stderr)."""
    import os
    import subprocess
    _, slow = engines
    prompt = prompts(slow)[2]
    script = ("import torch; from luyen.infer.engine import Engine\n"
              f"engine = Engine.load({str(spm_model)!r}, dtype=torch.float32, runtime='llama.cpp-f16')\n"
              f"print(engine.generate({prompt!r}, max_new_tokens=6).text)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "XDG_CACHE_HOME": str(cache.parent), "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == slow.generate(prompt, max_new_tokens=6).text + "\n"
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr[-2000:]


def test_a_cache_it_cannot_write_is_a_clear_error_or_a_fallback(tmp_path, monkeypatch, spm_model, cache):
    root = tmp_path / "xdg"
    (root / "luyen").mkdir(parents=True)
    (root / "luyen" / "llama.cpp").symlink_to(cache / "llama.cpp")  # the converter, as in `cache`
    (root / "luyen" / "gguf").write_text("a file where the GGUF folder should go")
    monkeypatch.setenv("XDG_CACHE_HOME", str(root))
    with pytest.raises(LuyenError, match=r"cannot write the llama.cpp copy under .*gguf.*XDG_CACHE_HOME"):
        Engine.load(str(spm_model), dtype=torch.float32, runtime="llama.cpp-f16")
    engine = Engine.load(str(spm_model), dtype=torch.float32, runtime="auto")
    assert engine.runner is None and engine.runtime.startswith("transformers (llama.cpp: cannot write the llama.cpp copy")


def test_the_servers_llama_cpp_backend_lets_late_requests_join_the_running_batch(engines, decodes):
    """`luyen serve --backend llamacpp`: rows that arrive while a batch runs join it at its next step (the
    scheduler's join), and every row answers as it does alone."""
    from luyen.serve.llamacpp import LlamaCppBackend
    from luyen.serve.scheduler import Row
    fast, _ = engines
    backend = LlamaCppBackend.load(str(fast.runner.path), n_ctx=256)
    ids = [backend.encode(backend.name, p, templated=False) for p in prompts(fast)]

    def row(i):
        return Row(key=(backend.name, 0.0, 1.0, None), prompt_ids=ids[i], max_tokens=8, stop=[], deliver=lambda e: None)
    alone = []
    for i in range(len(ids)):
        one = row(i)
        backend.run(one.key, [one])
        alone.append(one.ids)
    decodes.clear()
    first, late, handed = [row(i) for i in range(3)], [row(i) for i in range(3, len(ids))], []

    def join(in_flight):
        if decodes and not handed:  # after the first rows' prefill: the rest arrive mid-batch
            handed.append(in_flight)
            return late
        return []
    backend.run(first[0].key, list(first), join)
    assert handed == [3] and [r.ids for r in first + late] == alone and len({tuple(a) for a in alone}) > 1
    assert max(decodes) == len(ids) and all(r.finish in ("stop", "length") for r in first + late)


@pytest.fixture(scope="module")
def spm_run(cache, spm_model, tiny_data_dir, tmp_path_factory):
    """A LoRA `luyen train` run over the sentencepiece model (one llama.cpp can convert)."""
    from luyen.config import load_config
    from luyen.train.stage import run
    out = tmp_path_factory.mktemp("spm_run") / "train"
    run(load_config(None, [f"model.name={spm_model}", "data.max_length=256", "train.max_steps=12", "train.lr=1e-2"]),
        tiny_data_dir, out)
    return out


def test_eval_answers_through_llama_cpp_with_a_gguf_of_each_model(cache, spm_model, spm_run, tiny_data_dir, tmp_path,
                                                                   monkeypatch):
    """eval.runtime=llama.cpp-f16: the base systems answer from the base's GGUF and the fine-tuned one from the
    adapter folded into it (the same files `luyen chat` uses), in the same batches as through Engine; the
    report says so, and perplexities stay transformers' (equal to a transformers-runtime evaluation's: the
    same prefilled batches score them, so under bf16 too)."""
    from luyen.config import load_config
    from luyen.evaluate import likelihood
    from luyen.evaluate.stage import run
    settings = ["generate.max_new_tokens=8", "eval.general=false"]
    prefill, passes = likelihood.prefilled_nll, []
    monkeypatch.setattr(likelihood, "prefilled_nll", lambda *a, **kw: passes.append(kw["keep_cache"]) or prefill(*a, **kw))
    run(load_config(None, [*settings, "eval.runtime=llama.cpp-f16"]), spm_run, tiny_data_dir, tmp_path / "fast", limit=6,
        baselines=["zero-shot"])
    assert passes and not any(passes)  # scored as the transformers runtime scores; no cache kept for llama.cpp
    run(load_config(None, settings), spm_run, tiny_data_dir, tmp_path / "slow", limit=6, baselines=["zero-shot"])
    fast, slow = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("fast", "slow"))
    assert "answers by llama.cpp f16 (a GGUF of each model" in fast["generation"]
    from luyen.precision import choose
    assert slow["generation"].endswith(f"answers by transformers in {choose().long} (oneDNN prepacked "
                                       f"{choose().name} matmuls)")
    for name in ("base zero-shot", "fine-tuned"):
        assert fast["systems"][name]["answer_perplexity"] == slow["systems"][name]["answer_perplexity"]
    from luyen.evaluate.systems import TestSet
    from luyen.models.trained import load_trained
    samples = [json.loads(x) for x in (tmp_path / "fast" / "samples.jsonl").read_text().splitlines()]
    chats = [p for p, _ in TestSet.read(tiny_data_dir, 6, 0).examples]
    tuned = Engine.load(str(spm_run), runtime="llama.cpp-f16")
    base = Engine(load_trained(str(spm_model))[0], tuned.tok, tuned.template)  # as eval prompts the base
    base.runner, _ = gguf.runner_for(str(spm_model), base.model, base.tok, "llama.cpp-f16")
    want_tuned = [c.text.strip() for c in tuned.chat(chats, max_new_tokens=8)]
    want_base = [c.text.strip() for c in base.chat(chats, max_new_tokens=8)]
    assert [s["fine-tuned"] for s in samples] == want_tuned and [s["base zero-shot"] for s in samples] == want_base
    assert want_tuned != want_base  # the adapter changed the answers: which GGUF answered is visible


def test_the_servers_llama_cpp_backend_samples_reproducibly_per_seed(engines):
    """A seeded request samples the same answer again (each choice from its own generator, seed + index),
    whatever shares its batch; another seed samples another."""
    from luyen.serve.llamacpp import LlamaCppBackend
    from luyen.serve.scheduler import Row
    fast, _ = engines
    backend = LlamaCppBackend.load(str(fast.runner.path), n_ctx=256)
    ids = [backend.encode(backend.name, p, templated=False) for p in prompts(fast)]

    def sampled(seed: int, others: int) -> list[int]:
        key = (backend.name, 4.0, 1.0, seed)
        rows = [Row(key=key, prompt_ids=ids[i], max_tokens=10, stop=[], deliver=lambda e: None) for i in range(1 + others)]
        backend.run(key, rows)
        return rows[0].ids
    assert sampled(7, 0) == sampled(7, 4) and sampled(7, 0) != sampled(8, 0)
