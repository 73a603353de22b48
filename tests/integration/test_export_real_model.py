"""GGUF export of the embedded Gemma-3-270M keeps the export's promise on both machine kinds: fed
transformers' fp32 greedy continuation, llama.cpp picks the same token wherever transformers' top-2
margin is decisive, and the mean KL divergence stays small. Exact free-running equality is not
promised: at near-ties the token depends on each runtime's rounding and each CPU's kernels (on the
AVX2 kind the q8_0 file parted from fp32 at token 3 of "Thủ đô của Việt Nam là")."""
from __future__ import annotations

import numpy as np
import pytest

from luyen.config import load_config
from luyen.export import check, gguf
from luyen.export.stage import run

pytestmark = pytest.mark.integration
PROMPTS = ["Thủ đô của Việt Nam là", "Học máy là một nhánh của", "The capital of France is", "Bánh mì Việt Nam có"]
N = 16


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("gemma_gguf") / "gguf"
    return out, run(load_config(None, []), "gemma3-270m", out, fmt="gguf", quant=["f16", "q8_0", "q4_k_m"])


def test_embedded_model_gguf_keeps_the_export_promise(exported):
    import torch

    from luyen.models.resolve import load_model, load_tokenizer
    out, manifest = exported
    tok = load_tokenizer("gemma3-270m")
    model = load_model("gemma3-270m", dtype=torch.float32).eval()  # the original weights, not the exported folder
    prompts = [tok(p)["input_ids"] for p in PROMPTS]
    reference = [check.greedy(model, ids, N) for ids in prompts]
    for quant in ("f16", "q8_0", "q4_k_m"):
        llm = gguf.load(out / f"model-{quant}.gguf")
        try:
            decisive = agreed = 0
            kls = []
            for text, ids, (tokens, hf) in zip(PROMPTS, prompts, reference):
                assert llm.tokenize(text.encode(), add_bos=True) == ids  # llama.cpp reads Gemma's vocabulary right
                cpp = gguf.teacher_forced(llm, ids, tokens)
                for step, (p, q) in enumerate(zip(hf, cpp)):
                    top2 = np.sort(p)[-2:]
                    if top2[1] - top2[0] >= gguf.DECISIVE_MARGIN[quant]:
                        decisive += 1
                        agreed += int(np.argmax(q)) == tokens[step]
                    kls.append(float((np.exp(p) * (p - q)).sum()))
        finally:
            llm.close()
        steps = len(PROMPTS) * N
        assert decisive >= steps // 10, (quant, decisive)  # the promise is not vacuous on these prompts
        assert agreed == decisive, (quant, agreed, decisive)
        assert np.mean(kls) <= gguf.MAX_MEAN_KL[quant], (quant, np.mean(kls))
        a = manifest["metrics"]["agreement"][quant]  # the export's own check measured the same and says so
        assert a["kept"] and a["same_tokenization"] and a["decisive_agreed"] == a["decisive"] > 0, (quant, a)


def test_embedded_model_modelfile_uses_gemma_turns(exported):
    out, _ = exported
    text = (out / "Modelfile").read_text()
    assert "FROM ./model-f16.gguf" in text and "<start_of_turn>model\n" in text
    assert 'PARAMETER stop "<end_of_turn>"' in text
