"""ONNX export on tiny llama and Gemma-3 models: onnxruntime reproduces transformers token for token."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import make_tiny_model

from luyen.errors import LuyenError
from luyen.export.check import greedy
from luyen.export.onnx import INT8_FILE, MODEL_FILE, OrtLM, export

PROMPTS = ["Học máy", "Hà Nội là thủ đô của Việt Nam và", "The quick brown fox jumps"]


@pytest.fixture(scope="module", params=["llama", "gemma3_text"])
def exported(request, tmp_path_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    root = tmp_path_factory.mktemp(f"onnx_{request.param}")
    model_dir = make_tiny_model(root / "model", arch=request.param, gemma_markers=request.param != "llama")
    metrics = export(model_dir, root / "onnx", ["int8"], None)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(model_dir), root / "onnx", metrics


def test_onnxruntime_greedy_tokens_equal_transformers(exported):
    model, tok, out, metrics = exported
    prompts = [tok(p)["input_ids"] for p in PROMPTS]
    reference = [greedy(model, p, 16)[0] for p in prompts]
    lm = OrtLM(out / MODEL_FILE)
    batched = lm.greedy(prompts, 16, pad_id=tok.pad_token_id).tokens  # one left-padded batch
    alone = [lm.greedy([p], 16).tokens[0] for p in prompts]
    assert batched == alone == reference
    assert all(len(t) == 16 for t in reference)
    assert metrics["greedy_agreement"]["fp32"] == 1.0 and metrics["greedy_tokens_match"] is True


def test_logits_through_the_cache_match_transformers(exported):
    """Prefill part of a prompt, then feed the rest through past key values: same logits as one pass."""
    model, tok, out, _ = exported
    ids = tok(PROMPTS[1])["input_ids"]
    with torch.no_grad():
        want = model(torch.tensor([ids])).logits[0].numpy()
    lm = OrtLM(out / MODEL_FILE)
    x = np.array([ids], np.int64)
    first, cache = lm.forward(x[:, :4], np.ones((1, 4), np.int64))
    rest, present = lm.forward(x[:, 4:], np.ones_like(x), cache)
    np.testing.assert_allclose(np.concatenate([first[0], rest[0]]), want, atol=1e-4)
    assert present[0].shape[2] == len(ids)  # the cache grew by the new tokens


def test_int8_is_smaller_and_close_in_quality(exported):
    _, _, out, m = exported
    assert (out / INT8_FILE).stat().st_size == m["bytes"]["int8"] < m["bytes"]["fp32"]
    ppl = m["perplexity"]
    assert ppl["fp32"] == pytest.approx(ppl["transformers"], rel=1e-4)
    assert ppl["int8"] == pytest.approx(ppl["fp32"], rel=0.05)
    assert m["tokens_per_s"]["fp32"] > 0 and m["tokens_per_s"]["int8"] > 0
    assert 0 <= m["greedy_agreement"]["int8"] <= 1
    json.dumps(m)  # goes into the manifest as it is


def test_output_folder_holds_a_loadable_model_and_no_temp_files(exported):
    import onnx
    from transformers import AutoConfig, AutoTokenizer
    _, tok, out, _ = exported
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []
    graph = onnx.load(str(out / MODEL_FILE), load_external_data=False).graph
    names = [i.name for i in graph.input]
    assert names[:3] == ["input_ids", "attention_mask", "position_ids"] and "past_key_values.0.key" in names
    assert "present.0.value" in [o.name for o in graph.output]
    assert AutoTokenizer.from_pretrained(out)("Học máy")["input_ids"] == tok("Học máy")["input_ids"]
    assert AutoConfig.from_pretrained(out).num_hidden_layers == 2


def test_unknown_quantisation_is_refused_before_any_work(tmp_path, tiny_model_dir):
    with pytest.raises(LuyenError, match="int4"):
        export(tiny_model_dir, tmp_path / "onnx", ["int4"], None)
    assert not (tmp_path / "onnx").exists()


def test_int8_quantises_every_linear_layer_including_a_tied_output_layer(exported):
    """Gemma ties its output layer to the embedding (read through a Transpose): that weight must be
    folded and quantised too, not dequantised and transposed again at every step."""
    import onnx
    model, _, out, metrics = exported
    graph = onnx.load(str(out / INT8_FILE)).graph
    ops = [n.op_type for n in graph.node]
    linears = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    kept = [n for n in linears if n.endswith("mlp.down_proj")]  # outlier-heavy input: left in fp32
    assert len(kept) == 2 and metrics["int8_fp32_matmuls"] == 2
    assert ops.count("MatMulInteger") == len(linears) - len(kept)  # the rest, the output layer included
    assert model.config.tie_word_embeddings == (model.config.model_type == "gemma3_text")
    made_by = {o: n.op_type for n in graph.node for o in n.output}
    assert not [n for n in graph.node if n.op_type == "Transpose" and made_by.get(n.input[0]) == "DequantizeLinear"]
