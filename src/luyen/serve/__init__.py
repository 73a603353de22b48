"""Serve a model over OpenAI's API, with a chat page: `luyen serve MODEL`.

    from luyen.config import ServeConfig
    from luyen.serve import serve
    serve("runs/demo/train", ServeConfig(port=8000, adapters={"support": "runs/support/train"}))

Then any OpenAI client works unchanged: ``OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="-")``.
"""
from __future__ import annotations

import contextlib
import ipaddress
import sys

from luyen.config import ServeConfig
from luyen.errors import LuyenError

SERVE_HINT = "pip install 'luyen[serve]'"


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


def check(cfg: ServeConfig) -> None:
    """Refuse to expose an open server: any address but loopback needs an API key."""
    if not is_loopback(cfg.host) and not cfg.api_key:
        raise LuyenError(f"refusing to listen on {cfg.host} without an API key: anyone who can reach it could "
                         "use the model", field="serve.api_key",
                         fix="pass --api-key KEY (clients send 'Authorization: Bearer KEY'), or --host 127.0.0.1")


def build_app(model: str, cfg: ServeConfig):
    """Load the backend (and RAG index) named by ``cfg`` and return the FastAPI app."""
    try:
        from luyen.serve.app import create_app
    except ImportError as e:
        raise LuyenError(f"serving needs the 'serve' extra ({e.name} is missing)", fix=SERVE_HINT) from None
    from luyen.serve.backends import load_backend
    check(cfg)
    rag = load_rag(cfg.rag) if cfg.rag else None
    return create_app(load_backend(cfg.backend, model, cfg.adapters), cfg, rag=rag)


def load_rag(path: str):
    """A function messages -> (messages, sources) that puts the index's best passages for the last user
    turn into it (`luyen.rag.augment`, with the index's own k and prompt template) and lists them,
    numbered as the prompt numbers them, for the reply's `sources`."""
    try:
        from luyen.rag import augment, given, load_index
    except ImportError:
        raise LuyenError("--rag needs the rag extra", field="serve.rag", fix="pip install 'luyen[rag]'") from None
    index = load_index(path)

    def with_context(messages: list[dict]) -> tuple[list[dict], list[dict]]:
        query = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        if not query.strip():
            return messages, []
        hits = index.search(query)
        return augment(messages, hits, index.settings.get("template")), given(hits)
    return with_context


def serve(model: str, cfg: ServeConfig | None = None) -> None:
    """Run the server until Ctrl-C."""
    import uvicorn
    cfg = cfg or ServeConfig()
    if cfg.backend != "llamacpp":
        from luyen.precision import choose
        print(f"serve: precision {choose().describe()}", file=sys.stderr, flush=True)
    app = build_app(model, cfg)
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="info", timeout_graceful_shutdown=5)


@contextlib.contextmanager
def running(app, host: str = "127.0.0.1", port: int = 0):
    """Run ``app`` under uvicorn in a background thread (tests, notebooks); yields its base URL.

        with running(build_app("gemma3-270m", ServeConfig())) as url:
            OpenAI(base_url=url + "/v1", api_key="-").models.list()
    """
    import threading
    import time

    import uvicorn
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                           timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, name="luyen-uvicorn", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise LuyenError(f"the server could not start on {host}:{port}", fix="pick another --port")
        time.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
