"""`luyen serve MODEL`: the OpenAI-compatible server and chat page (or a task head's API).

    luyen serve runs/demo/train --port 8000
    luyen serve --model runs/intents/train       # a task head: POST /v1/classify, /v1/extract or /v1/completions
    luyen serve gemma3-270m --adapters support=runs/support/train --api-key "$KEY" --host 0.0.0.0
    luyen serve runs/demo/train configs/serve.yaml serve.max_batch_size=32
    luyen serve gemma3-270m --state-dir runs/server    # + OpenAI's fine-tuning API and the training page at /train
"""
from __future__ import annotations

from typing import List, Optional

import typer

import luyen.cli.common as common
from luyen.cli.common import quiet, settings
from luyen.errors import LuyenError, friendly


def _adapters(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise LuyenError(f"--adapters '{item}' is not NAME=PATH", field="serve.adapters",
                             fix="write e.g. --adapters support=runs/support/train")
        out[name] = path
    return out


@friendly
def serve_command(
    words: List[str] = typer.Argument(None, help="[MODEL] [CONFIG.yaml] [key=value ...] (serve.max_batch_size=32 ...): MODEL is "
                                      "a `luyen train` run (a task head too), a folder, a .gguf, a preset or hub id."),
    model: common.model_option("the model to serve.") = None,
    backend: Optional[str] = typer.Option(None, "--backend", help="serve.backend: transformers (batched, adapters) or llamacpp (.gguf)."),
    adapters: List[str] = typer.Option([], "--adapters", help="serve.adapters: NAME=PATH, a LoRA adapter a request picks with model=NAME (repeatable)."),
    rag: Optional[str] = typer.Option(None, "--rag", help="rag.index: retrieved passages are added to chat requests."),
    host: Optional[str] = typer.Option(None, "--host", help="serve.host: address to bind (default 127.0.0.1; others need --api-key)."),
    port: Optional[int] = typer.Option(None, "--port", help="serve.port: TCP port (default 8000)."),
    api_key: Optional[str] = typer.Option(None, "--api-key", help="serve.api_key: require 'Authorization: Bearer KEY' on every route but /health."),
    cors: List[str] = typer.Option([], "--cors-origin", help="serve.cors_origins: allow browser calls from this origin (repeatable); CORS is off by default."),
    state_dir: Optional[str] = typer.Option(None, "--state-dir", help="serve.state_dir: turn on OpenAI's fine-tuning API and the training page (/train), keeping files and jobs here (e.g. runs/server)."),
):
    """Serve MODEL over OpenAI's API (/v1/chat/completions, /v1/completions) with a chat page at /;
    a task head answers POST /v1/classify (classification), /v1/extract (extractive QA) or /v1/completions (seq2seq)."""
    from luyen.serve import serve
    quiet()
    flags = {"serve.backend": backend, "rag.index": rag, "serve.host": host, "serve.port": port, "serve.api_key": api_key,
             "model.name": model, "serve.adapters": _adapters(adapters) or None, "serve.cors_origins": cors,
             "serve.state_dir": state_dir}
    cfg, _ = settings(words, flags, rest="model.name")
    name = cfg.model.name
    serve(name, cfg.serve, cfg.rag)
