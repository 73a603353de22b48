"""`luyen serve MODEL`: the OpenAI-compatible server and chat page.

    luyen serve runs/demo/train --port 8000
    luyen serve gemma3-270m --adapters support=runs/support/train --api-key "$KEY" --host 0.0.0.0
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

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
    model: str = typer.Argument(..., help="Model to serve: a `luyen train` run, a folder, a .gguf, a preset or hub id."),
    backend: Optional[str] = typer.Option(None, "--backend", help="transformers (batched, adapters) or llamacpp (.gguf)."),
    adapters: List[str] = typer.Option([], "--adapters", help="NAME=PATH: a LoRA adapter a request picks with model=NAME (repeatable)."),
    rag: Optional[str] = typer.Option(None, "--rag", help="RAG index folder: retrieved passages are added to chat requests."),
    host: Optional[str] = typer.Option(None, "--host", help="Address to bind (default 127.0.0.1; others need --api-key)."),
    port: Optional[int] = typer.Option(None, "--port", help="TCP port (default 8000)."),
    api_key: Optional[str] = typer.Option(None, "--api-key", help="Require 'Authorization: Bearer KEY' on every route but /health."),
    cors: List[str] = typer.Option([], "--cors-origin", help="Allow browser calls from this origin (repeatable); CORS is off by default."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML config file (its serve: section)."),
    overrides: List[str] = typer.Option([], "--set", help="serve.key=value overrides, e.g. --set serve.max_batch_size=32."),
):
    """Serve MODEL over OpenAI's API (/v1/chat/completions, /v1/completions) with a chat page at /."""
    from pydantic import ValidationError

    from luyen.config import load_config
    from luyen.serve import serve
    cfg = load_config(config, overrides).serve
    given = {"backend": backend, "rag": rag, "host": host, "port": port, "api_key": api_key}
    try:  # set as typed, not through YAML parsing (a key "0123" or host "::1" stays a string)
        for name, value in given.items():
            if value is not None:
                setattr(cfg, name, value)
    except ValidationError as e:
        raise LuyenError(e.errors()[0]["msg"], field=f"serve.{e.errors()[0]['loc'][0]}") from None
    if adapters:
        cfg.adapters = {**cfg.adapters, **_adapters(adapters)}
    if cors:
        cfg.cors_origins = [*cfg.cors_origins, *cors]
    serve(model, cfg)
