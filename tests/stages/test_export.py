"""The export stage on tiny models: merged safetensors equal the adapter model; GGUF files load in
llama.cpp and decode greedily like transformers; bad inputs end in one line and no manifest."""
from __future__ import annotations

import json
import sys

import pytest
import torch

from conftest import SPM_SENTENCES as SENTENCES, make_spm_model
from luyen.config import load_config
from luyen.errors import LuyenError
from luyen.export.stage import run

def cfg(model_dir, *extra):
    return load_config(None, [f"model.name={model_dir}", "data.max_length=256", "train.batch_size=4",
                              "train.max_steps=3", "train.lr=5e-3", *extra])


# --- merged ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, tiny_model_dir, tiny_data_dir):
    from luyen.train.stage import run as train
    out = tmp_path_factory.mktemp("export_lora") / "run"
    train(cfg(tiny_model_dir), tiny_data_dir, out)
    return out


def test_merged_model_gives_the_adapter_models_logits(tmp_path, lora_run, tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from luyen.models.trained import load_trained
    out = tmp_path / "merged"
    manifest = run(cfg(tiny_model_dir), lora_run, out, fmt="merged")
    assert manifest["stage"] == "export" and manifest["metrics"]["merged_adapter"] is True
    assert {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json",
            "luyen-export.json"} <= set(manifest["outputs"])
    assert not (out / "adapter_config.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(out).eval()
    adapter, _ = load_trained(lora_run)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    ids = torch.tensor([[2, 40, 41, 42, 43, 44, 45, 46], [2, 7, 8, 9, 10, 11, 12, 13]])
    with torch.no_grad():
        want, got, before = adapter(ids).logits, merged(ids).logits, base(ids).logits
    assert not torch.allclose(before, want, atol=1e-4)  # the adapter matters, so equality below means something
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.chat_template == AutoTokenizer.from_pretrained(lora_run / "model").chat_template
    gen = json.loads((out / "generation_config.json").read_text())
    assert tok.eos_token_id in (gen["eos_token_id"] if isinstance(gen["eos_token_id"], list) else [gen["eos_token_id"]])
    assert json.loads((out / "luyen-export.json").read_text())["source"] == str(lora_run)


def test_merged_export_of_a_plain_model_writes_luyens_default_chat_template(tmp_path, tiny_model_dir):
    from transformers import AutoTokenizer
    run(cfg(tiny_model_dir), tiny_model_dir, tmp_path / "m", fmt="merged")
    assert "<|im_start|>" in AutoTokenizer.from_pretrained(tmp_path / "m").chat_template


# --- bad inputs -------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt, quant, source, message", [
    ("merged", None, "no/such/run", "no such model folder"),
    ("tflite", None, None, "unknown export format 'tflite'"),
    ("gguf", ["q3_xx"], None, "unknown GGUF quantisation q3_xx"),
    ("merged", ["q8_0"], None, "merged safetensors are not quantised"),
])
def test_bad_inputs_are_one_line_errors_and_leave_no_output(tmp_path, tiny_model_dir, fmt, quant, source, message):
    with pytest.raises(LuyenError, match=message) as e:
        run(cfg(tiny_model_dir), source or tiny_model_dir, tmp_path / "out", fmt=fmt, quant=quant)
    assert "\n" not in str(e.value) and not (tmp_path / "out").exists()


def test_an_unfinished_train_run_is_refused(tmp_path, lora_run, tiny_model_dir):
    import shutil
    half = tmp_path / "half"
    shutil.copytree(lora_run, half)
    (half / "manifest.json").unlink()
    with pytest.raises(LuyenError, match="incomplete"):
        run(cfg(tiny_model_dir), half, tmp_path / "out", fmt="merged")


def test_an_existing_export_is_kept_unless_overwrite(tmp_path, tiny_model_dir):
    out = tmp_path / "m"
    first = run(cfg(tiny_model_dir), tiny_model_dir, out, fmt="merged")
    with pytest.raises(LuyenError, match="already holds another run"):
        run(cfg(tiny_model_dir), tiny_model_dir, out, fmt="merged")
    assert json.loads((out / "manifest.json").read_text()) == first
    assert run(cfg(tiny_model_dir), tiny_model_dir, out, fmt="merged", overwrite=True)["stage"] == "export"


def test_a_prompt_tuning_adapter_has_nothing_to_merge(tmp_path, tiny_model_dir, tiny_data_dir):
    from luyen.train.stage import run as train
    train(cfg(tiny_model_dir, "train.method=prompt", "train.max_steps=1"), tiny_data_dir, tmp_path / "prompt")
    with pytest.raises(LuyenError, match="prompt_tuning adapter adds virtual tokens"):
        run(cfg(tiny_model_dir), tmp_path / "prompt", tmp_path / "out", fmt="gguf")
    assert not (tmp_path / "out").exists()


def test_missing_gguf_extra_names_the_install_command(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # as if llama-cpp-python were not installed
    with pytest.raises(LuyenError, match=r"pip install 'luyen\[gguf\]'"):
        run(cfg(tiny_model_dir), tiny_model_dir, tmp_path / "out", fmt="gguf")
    assert not (tmp_path / "out").exists()


def test_cli_prints_one_line_and_exits_2(tmp_path, tiny_model_dir):
    from typer.testing import CliRunner

    from luyen.cli import app
    res = CliRunner().invoke(app, ["export", str(tiny_model_dir), "--format", "gguf", "--quant", "q2", "--out",
                                   str(tmp_path / "o")])
    assert res.exit_code == 2 and "unknown GGUF quantisation q2" in res.output and "Traceback" not in res.output


# --- GGUF -------------------------------------------------------------------------------------------

QUANT_FILE_TYPES = {"f16": 1, "f16_q8emb": 1, "q8_0": 7, "q4_k_m": 15}  # llama_ftype, as general.file_type records it


@pytest.fixture(scope="module", params=["llama", "gemma3_text"])
def gguf_export(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"gguf_{request.param}")
    model_dir = make_spm_model(root / "model", request.param)
    out = root / "gguf"
    manifest = run(cfg(model_dir), model_dir, out, fmt="gguf", quant=["f16", "f16_q8emb", "q8_0", "q4_k_m"])
    return request.param, model_dir, out, manifest


def test_gguf_files_load_in_llama_cpp_and_decode_greedily_like_transformers(gguf_export):
    import numpy as np
    from gguf import GGUFReader
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from luyen.export import gguf
    from luyen.export.check import greedy, margin
    arch, model_dir, out, _ = gguf_export
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    # prompts: <bos> + the first two tokens of each memorised sentence; the model knows how each goes on
    prompts = [tok(s)["input_ids"][:3] for s in SENTENCES]
    reference = [greedy(model, ids, 6) for ids in prompts]
    assert min(margin(lp) for _, lps in reference for lp in lps) > 2.0  # top-1 wins by > 2 logits: the criterion is fair
    for quant, file_type in QUANT_FILE_TYPES.items():
        path = out / f"model-{quant}.gguf"
        fields = GGUFReader(path).fields
        assert fields["general.architecture"].contents() == ("gemma3" if arch.startswith("gemma") else "llama")
        assert fields["general.file_type"].contents() == file_type
        types = {t.name: t.tensor_type.name for t in GGUFReader(path).tensors}
        if quant == "f16_q8emb":  # the token table (and an untied output layer) in q8_0, every other matrix f16
            tables = {n for n in types if n.startswith(("token_embd.", "output."))}
            assert {types[n] for n in tables} == {"Q8_0"} and "token_embd.weight" in tables
            assert {t for n, t in types.items() if n not in tables and n.endswith("_q.weight")} == {"F16"}
        llm = gguf.load(path)
        try:
            assert llm.tokenize(SENTENCES[1].encode(), add_bos=True) == tok(SENTENCES[1])["input_ids"]
            for ids, (want, _) in zip(prompts, reference):
                assert gguf.greedy_tokens(llm, ids, 6) == want, (quant, tok.decode(ids))
            if quant == "f16":  # half-precision weights: the same logits up to rounding
                llm.reset()
                llm.eval(prompts[0] + reference[0][0])
                with torch.no_grad():
                    hf = model(torch.tensor([prompts[0] + reference[0][0]])).logits[0].numpy()
                assert np.abs(llm.scores[:len(hf)] - hf).max() < 0.1
        finally:
            llm.close()


def test_gguf_manifest_lists_the_files_and_the_agreement_check(gguf_export):
    _, _, out, manifest = gguf_export
    assert json.loads((out / "manifest.json").read_text()) == manifest and manifest["stage"] == "export"
    names = {"model-f16.gguf", "model-f16_q8emb.gguf", "model-q8_0.gguf", "model-q4_k_m.gguf", "Modelfile",
             "Modelfile.f16_q8emb", "Modelfile.q8_0", "Modelfile.q4_k_m"}
    assert set(manifest["outputs"]) == names and {p.name for p in out.iterdir()} == names | {"manifest.json"}
    m = manifest["metrics"]
    assert m["format"] == "gguf" and m["quant"] == ["f16", "f16_q8emb", "q8_0", "q4_k_m"]
    sizes = [manifest["outputs"][f"model-{q}.gguf"]["bytes"] for q in ("f16", "f16_q8emb", "q8_0", "q4_k_m")]
    assert sizes == sorted(sizes, reverse=True)  # each quantisation is smaller
    for quant in ("f16", "f16_q8emb", "q8_0", "q4_k_m"):
        a = m["agreement"][quant]
        assert a["steps"] == a["prompts"] * a["tokens_per_prompt"] == 6 * 16 and a["same_tokenization"] is True
        assert 0 <= a["decisive_agreed"] <= a["decisive"] <= a["steps"] and a["mean_kl"] <= a["max_kl"]
        assert a["kept"] == (a["decisive_agreed"] == a["decisive"] and a["mean_kl"] <= a["max_mean_kl"])
    assert m["agreement"]["f16"]["kept"]  # half-precision weights keep the promise on any model


def test_modelfile_lays_out_the_chat_template_turns(gguf_export):
    arch, _, out, _ = gguf_export
    text = (out / "Modelfile").read_text()
    assert text.splitlines()[1] == "FROM ./model-f16.gguf" and (out / "model-f16.gguf").is_file()
    assert "FROM ./model-q4_k_m.gguf" in (out / "Modelfile.q4_k_m").read_text()
    if arch.startswith("gemma"):  # luyen's Gemma layout: system text opens the first user turn
        assert '<start_of_turn>user\n{{ if $system }}{{ $system }}\n\n{{ $system = "" }}{{ end }}' \
               '{{ .Content }}<end_of_turn>\n{{ if $last }}<start_of_turn>model\n{{ end }}' in text
        assert 'PARAMETER stop "<end_of_turn>"' in text
    else:  # ChatML turns ending in EOS
        assert '{{ if eq .Role "system" }}<|im_start|>system\n{{ .Content }}<eos>\n' in text
        assert '<|im_start|>user\n{{ .Content }}<eos>\n{{ if $last }}<|im_start|>assistant\n{{ end }}' in text
        assert 'PARAMETER stop "<eos>"' in text


def test_a_tokenizer_llama_cpp_does_not_know_fails_in_one_line_without_a_manifest(tmp_path, tiny_gemma_tokenizer_dir):
    # a BPE vocabulary trained here: llama.cpp's converter recognises BPE pre-tokenizers by a hash of known models
    with pytest.raises(LuyenError, match="llama.cpp's converter failed: .*pre-tokenizer") as e:
        run(cfg(tiny_gemma_tokenizer_dir), tiny_gemma_tokenizer_dir, tmp_path / "out", fmt="gguf", quant=["q8_0"])
    assert "\n" not in str(e.value) and str(e.value).startswith(f"{tiny_gemma_tokenizer_dir}: ")
    assert not (tmp_path / "out" / "manifest.json").exists() and not list((tmp_path / "out").glob("*.gguf"))


def test_only_the_converter_is_kept_from_the_source_distribution(tmp_path):
    import tarfile

    from luyen.export.gguf import converter_dir, extract_converter
    sdist = tmp_path / "llama_cpp_python-9.9.9.tar.gz"
    with tarfile.open(sdist, "w:gz") as tar:  # the real converter, laid out as in llama-cpp-python's sdist
        tar.add(converter_dir(), arcname="llama_cpp_python-9.9.9/vendor/llama.cpp")
        (tmp_path / "ggml.c").write_text("int main() { return 0; }")
        tar.add(tmp_path / "ggml.c", arcname="llama_cpp_python-9.9.9/vendor/llama.cpp/ggml/src/ggml.c")
    extract_converter(sdist, tmp_path / "conv")
    assert sorted(p.name for p in (tmp_path / "conv").iterdir()) == ["conversion", "convert_hf_to_gguf.py", "gguf-py"]
    assert (tmp_path / "conv" / "gguf-py" / "gguf" / "gguf_writer.py").is_file()
    empty = tmp_path / "llama_cpp_python-0.0.1.tar.gz"
    with tarfile.open(empty, "w:gz") as tar:
        tar.add(tmp_path / "ggml.c", arcname="llama_cpp_python-0.0.1/vendor/llama.cpp/ggml.c")
    with pytest.raises(LuyenError, match="has no vendor/llama.cpp/convert_hf_to_gguf.py"):
        extract_converter(empty, tmp_path / "conv2")
    assert not (tmp_path / "conv2").exists()
