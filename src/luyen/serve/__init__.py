"""Serve a model over OpenAI's API, with a chat page: `luyen serve MODEL`.

    from luyen.config import RagConfig, ServeConfig
    from luyen.serve import serve
    serve("runs/demo/train", ServeConfig(port=8000, adapters={"support": "runs/support/train"}),
          RagConfig(index="runs/demo/rag"))   # rag: optional; grounds every chat request in the index

Then any OpenAI client works unchanged: ``OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="-")``.
A task-head run is served the same way: a classifier answers POST /v1/classify, an extractive QA model
POST /v1/extract, a seq2seq model OpenAI's /v1/completions (see luyen.serve.heads).
"""
from luyen.serve.server import SERVE_HINT, build_app, check, is_loopback, load_rag, running, serve

__all__ = ["SERVE_HINT", "build_app", "check", "is_loopback", "load_rag", "running", "serve"]
