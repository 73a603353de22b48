"""GGUF export of the embedded Gemma-3-270M: llama.cpp decodes greedily like transformers in fp32 (f16 and
q8_0 token for token, q4_k_m from the same first token)."""
from __future__ import annotations

import pytest

from luyen.config import load_config
from luyen.export import gguf
from luyen.export.stage import run

pytestmark = pytest.mark.integration
PROMPTS = ["Thủ đô của Việt Nam là", "Học máy là một nhánh của", "The capital of France is"]
N = 8


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("gemma_gguf") / "gguf"
    return out, run(load_config(None, []), "gemma3-270m", out, fmt="gguf", quant=["f16", "q8_0", "q4_k_m"])


def test_embedded_model_gguf_decodes_like_transformers_fp32(exported):
    import torch

    from luyen.models.resolve import load_model, load_tokenizer
    out, manifest = exported
    tok = load_tokenizer("gemma3-270m")
    model = load_model("gemma3-270m", dtype=torch.float32).eval()  # the original weights, not the exported folder
    prompts = [tok(p)["input_ids"] for p in PROMPTS]
    reference = [gguf.hf_greedy(model, ids, N)[0] for ids in prompts]
    for quant in ("f16", "q8_0"):
        llm = gguf.load(out / f"model-{quant}.gguf")
        try:
            for text, ids, want in zip(PROMPTS, prompts, reference):
                assert llm.tokenize(text.encode(), add_bos=True) == ids  # llama.cpp reads Gemma's vocabulary right
                assert gguf.greedy_tokens(llm, ids, N) == want, (quant, text, tok.decode(want))
        finally:
            llm.close()
    for quant in ("f16", "q8_0"):  # the export's own check says the same
        a = manifest["metrics"]["agreement"][quant]
        assert a["same_tokenization"] and a["first_tokens_matched"] == [a["of"]] * 3
    # 4-bit weights move the logits enough that greedy paths may part after a few tokens, never at the first
    llm = gguf.load(out / "model-q4_k_m.gguf")
    try:
        for text, ids, want in zip(PROMPTS, prompts, reference):
            got = gguf.greedy_tokens(llm, ids, N)
            assert got[:1] == want[:1], ("q4_k_m", text, tok.decode(got), tok.decode(want))
    finally:
        llm.close()
    assert manifest["metrics"]["agreement"]["q4_k_m"]["same_tokenization"]


def test_embedded_model_modelfile_uses_gemma_turns(exported):
    out, _ = exported
    text = (out / "Modelfile").read_text()
    assert "FROM ./model-f16.gguf" in text and "<start_of_turn>model\n" in text
    assert 'PARAMETER stop "<end_of_turn>"' in text
