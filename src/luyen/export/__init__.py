"""Export a trained model for the engines that serve it at scale.

    luyen export runs/demo/train --format merged --out runs/demo/export/merged
    luyen export runs/demo/train --format gguf --quant q8_0,q4_k_m --out runs/demo/export/gguf

* merged: a LoRA adapter folded into its base; safetensors, tokenizer with its chat template,
  generation config (vLLM, TGI, transformers load it as is);
* gguf: llama.cpp's own converter and quantizer (f16, f16_q8emb, q8_0, q4_k_m) plus an Ollama Modelfile;
* onnx: see luyen.export.onnx.
"""
from __future__ import annotations

FORMATS = ("merged", "gguf", "onnx")
