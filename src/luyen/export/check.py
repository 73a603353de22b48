"""What the export checks share: the fixed prompts and transformers' reference greedy decode.

    tokens, logprobs = greedy(model, tok(PROMPTS[0])["input_ids"], 16)
    margin(logprobs[0])   # how far transformers' top token beat the runner-up at the first step, in nats

The GGUF check feeds these tokens to llama.cpp and compares its top token wherever ``margin`` is
decisive; the ONNX check decodes the same prompts in onnxruntime and compares token for token.
"""
from __future__ import annotations

# Vietnamese and English, like our users.
PROMPTS = ["Thủ đô của Việt Nam là", "Học máy là", "The capital of France is", "Xin chào, tôi tên là",
           "Hướng dẫn nấu phở bò:", "Python is a programming language that"]


def greedy(model, prompt_ids: list[int], n: int, stop_ids=()) -> tuple[list[int], list]:
    """transformers' greedy continuation of ``prompt_ids``: up to ``n`` tokens, ending before the first of
    ``stop_ids``, and per step the full log-softmax (numpy, float64).

    Plain argmax over the logits, as the exported runtimes' checks decode: nothing from the model's
    generation_config (a trained model's repetition penalty, its eos ids) changes it."""
    import torch
    out, logprobs = [], []
    with torch.no_grad():
        for _ in range(n):  # the whole sequence each step: a few short prompts, no cache API to track
            logits = model(torch.tensor([prompt_ids + out]), use_cache=False, logits_to_keep=1).logits[0, -1]
            lp = torch.log_softmax(logits.double(), -1)
            if int(lp.argmax()) in stop_ids:
                break
            out.append(int(lp.argmax()))
            logprobs.append(lp.numpy())
    return out, logprobs


def margin(logprobs) -> float:
    """The top-1 log-prob minus the top-2 log-prob of one step."""
    import numpy as np
    top2 = np.partition(logprobs, -2)[-2:]
    return float(top2[1] - top2[0])
