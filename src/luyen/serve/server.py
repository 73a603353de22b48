"""Load a model (and a RAG index), build the app, and run it: what `luyen serve` and the Python API call.

    from luyen.config import RagConfig, ServeConfig
    serve("runs/demo/train", ServeConfig(port=8000), RagConfig(index="runs/demo/rag"))

    with running(build_app("gemma3-270m", ServeConfig())) as url:   # tests, notebooks
        OpenAI(base_url=url + "/v1", api_key="-").models.list()
"""
from __future__ import annotations

import contextlib
import ipaddress
import sys

from luyen.config import RagConfig, ServeConfig
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


def build_app(model: str, cfg: ServeConfig, rag: RagConfig | None = None):
    """Load the backend named by ``cfg`` and return the FastAPI app; with ``rag.index`` set, every chat
    request is grounded in that index's passages (``rag.template``, else the index's own template).
    A task-head run (classification, extractive QA, seq2seq) gets its own routes (luyen.serve.heads)."""
    try:
        from luyen.serve.app import create_app
    except ImportError as e:
        raise LuyenError(f"serving needs the 'serve' extra ({e.name} is missing)", fix=SERVE_HINT) from None
    from luyen.serve.backends import load_backend
    check(cfg)
    if cfg.backend == "transformers" and _is_head(model):
        return _head_app(model, cfg, rag)
    grounding = load_rag(rag.index, rag.template) if rag is not None and rag.index else None
    return create_app(load_backend(cfg.backend, model, cfg.adapters), cfg, rag=grounding)


def _is_head(model: str) -> bool:
    from luyen.tasks.predictor import head_folder
    return head_folder(model) is not None


def _head_app(model: str, cfg: ServeConfig, rag: RagConfig | None):
    """A task head (classification, extractive QA, seq2seq): its own route, none of a chat model's extras."""
    from luyen.serve.heads import HeadBackend, create_head_app
    if cfg.adapters:
        raise LuyenError("a task head is served alone, without LoRA adapters", field="serve.adapters",
                         fix="serve each run on its own (luyen serve RUN --port ...)")
    if rag is not None and rag.index:
        raise LuyenError("rag.index grounds chat requests; a task head answers none", field="rag.index",
                         fix="drop --rag, or serve a chat model with it")
    return create_head_app(HeadBackend.load(model), cfg)


def load_rag(path: str, template: str | None = None):
    """A function messages -> (messages, sources) for ``create_app``: the grounding every caller shares
    (`luyen.rag.ground`: the index's best passages put into the last user turn), and those passages,
    numbered as the prompt numbers them, for the reply's `sources`."""
    try:
        from luyen.rag import given, ground, load_index
    except ImportError:
        raise LuyenError("serving with an index needs the rag extra", field="rag.index",
                         fix="pip install 'luyen[rag]'") from None
    index = load_index(path)

    def with_context(messages: list[dict]) -> tuple[list[dict], list[dict]]:
        messages, hits = ground(index, messages, template)
        return messages, given(hits)
    return with_context


def serve(model: str, cfg: ServeConfig | None = None, rag: RagConfig | None = None) -> None:
    """Run the server until Ctrl-C."""
    import uvicorn
    cfg = cfg or ServeConfig()
    if cfg.backend != "llamacpp" and not _is_head(model):  # a head says its own precision below
        from luyen.precision import choose
        print(f"serve: precision {choose().describe()}", file=sys.stderr, flush=True)
    app = build_app(model, cfg, rag)
    engine = getattr(app.state.backend, "engine", None)
    if engine is not None:
        print(f"serve: matmuls: {engine.kernels}", file=sys.stderr, flush=True)
    head = getattr(app.state.backend, "predictor", None)
    if head is not None:
        weights = next(head.model.parameters())
        print(f"serve: {head.name} head, {str(weights.dtype).removeprefix('torch.')} on {weights.device}",
              file=sys.stderr, flush=True)
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="info", timeout_graceful_shutdown=5)


@contextlib.contextmanager
def running(app, host: str = "127.0.0.1", port: int = 0):
    """Run ``app`` under uvicorn in a background thread (tests, notebooks); yields its base URL."""
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
