"""What the server generates with: one base model plus named LoRA adapters, behind one small interface.

    backend = TransformersBackend.load("gemma3-270m", adapters={"support": "runs/demo/train"})
    backend.models()                         # ['gemma3-270m', 'support']
    ids = backend.encode("support", backend.render("support", [{"role": "user", "content": "Chào"}]))
    backend.run(key, rows)                   # one batch, on the scheduler's thread

A request's `model` picks the base or an adapter, as in vLLM's multi-LoRA serving: the base is
loaded once, every adapter is loaded into the same PeftModel, and each batch (batches are grouped by
model) activates its adapter, or runs with adapters disabled for the base.
"""
from __future__ import annotations

import random
import threading
from pathlib import Path

from luyen.config import GenerateConfig
from luyen.errors import LuyenError
from luyen.serve.scheduler import Row, RowRouter

LLAMACPP_HINT = "pip install 'luyen[gguf]' (llama-cpp-python), or use --backend transformers"


class TransformersBackend:
    def __init__(self, engine, base_name: str, adapters: dict[str, str] | None = None):
        """``engine.model`` is a PeftModel holding ``adapters`` ({served name: adapter name}) when there are any."""
        self.engine, self.base_name = engine, base_name
        self.adapters = dict(adapters or {})
        self.full: dict[str, object] = {}  # served name -> Engine of a fully fine-tuned model (a job's result)
        self.removable: set[str] = set()   # models added while serving (fine-tuning jobs), which DELETE may remove
        self.budgets: dict[str, int] = {}  # served adapter -> the answer budget its training recorded
        self.lock = threading.Lock()       # a batch, or a model being added or removed: one at a time
        self.fits: dict[tuple, bool] = {}  # (model object, served name) -> continuous batching possible
        import torch
        self.threads = torch.get_num_threads()  # the scheduler thread's share; the job runner lowers it while training
        from luyen.models.shape import config_shape
        config = getattr(engine.model, "config", None)
        self.context = int((config_shape(config)["context"] if config is not None else None) or 4096)

    @classmethod
    def load(cls, model: str, adapters: dict[str, str] | None = None, dtype=None) -> "TransformersBackend":
        """Load ``model`` (any name `luyen` takes, a trained adapter run too) and each adapter folder over it;
        in bf16 where the hardware multiplies it natively, else fp32 (see luyen.infer.engine)."""
        from luyen.infer.engine import Engine, inference_dtype
        from luyen.models.trained import load_trained
        base, tok = load_trained(model, dtype=dtype or inference_dtype())
        served = {}
        for name, path in (adapters or {}).items():
            base = attach_adapter(base, name, path, model)
            served[name] = name
        backend = cls(Engine(base, tok), model, served)
        backend.budgets = {name: b for name, path in (adapters or {}).items() if (b := adapter_budget(path))}
        return backend

    def models(self) -> list[str]:
        return [self.base_name, *self.adapters, *self.full]

    def add_model(self, name: str, path: str) -> None:
        """Serve a finished `luyen train` run as ``name``: a LoRA run as an adapter over the shared base, a full
        fine-tune as a model of its own. Safe while requests are being answered."""
        from luyen.models.trained import model_folder
        folder = model_folder(path)
        with self.lock:
            if (folder / "adapter_config.json").is_file():
                self.engine.model = attach_adapter(self.engine.model, name, path, self.base_name)
                self.engine.merge_adapters()
                self.adapters[name] = name
                if budget := adapter_budget(path):
                    self.budgets[name] = budget
            else:  # in the precision the base is served in (a server started in fp32 serves its jobs in fp32)
                import torch

                from luyen.infer.engine import Engine
                from luyen.models.trained import load_trained
                self.full[name] = Engine(*load_trained(path, dtype=self.engine.autocast_dtype or torch.float32))
            self.removable.add(name)
            self.fits.clear()

    def remove_model(self, name: str) -> None:
        with self.lock:
            if name in self.adapters:
                peft, adapter = self.engine.model, self.adapters.pop(name)
                if set(peft.peft_config) == {adapter}:  # the last one: back to the plain base
                    self.engine.model = peft.unload()
                else:
                    peft.delete_adapter(adapter)
                    self.engine.merge_adapters()  # frees the deleted adapter's merged copies
            self.full.pop(name, None)
            self.removable.discard(name)
            self.fits.clear()

    def _engine(self, model: str):
        return self.full.get(model, self.engine)

    def default_tokens(self, model: str) -> int | None:
        """max_tokens for a request that sets none: the answer budget the model's training recorded (the 95th
        percentile answer length plus half), None when it recorded none (a base model)."""
        from luyen.infer.engine import model_budget
        if model in self.adapters:
            return self.budgets.get(model)
        return model_budget(self._engine(model).model)

    def warmup(self) -> None:
        """One small padded batch before the first request: torch's first padded-attention call costs
        seconds (measured 2-4 s on the tiny test model) that the first client would otherwise wait."""
        bos = self.engine.encode("", templated=False) or [self.engine.pad_id]
        self.engine.generate_ids([bos, bos * 2], GenerateConfig(max_new_tokens=2))

    def render(self, model: str, messages: list[dict]) -> str:
        try:
            return self._engine(model).render(messages)
        except Exception as e:  # jinja's TemplateError and the template's own raise_exception
            from luyen.serve.protocol import APIError
            raise APIError(400, f"the chat template refused these messages: {str(e)[:200]}", param="messages") from None

    def encode(self, model: str, text: str, templated: bool) -> list[int]:
        return self._engine(model).encode(text, templated)

    def run(self, key: tuple, rows: list[Row], join=None) -> None:
        """Generate for ``rows`` (key = (model, temperature, top_p, seed, ...) as the app groups requests) and
        for the rows ``join(rows in flight)`` hands over while they run: continuous batching (luyen.infer.live),
        where a model's cache allows it, else one `generate` call for ``rows``."""
        import torch
        if torch.get_num_threads() != self.threads:  # per thread under OpenMP, so set here, on the batch's thread
            torch.set_num_threads(self.threads)
        from luyen.infer.live import LiveBatch
        model = key[0]
        with self.lock:
            engine = self._engine(model)
            if (id(engine.model), model) not in self.fits:  # a one-token forward: once per model served
                with self._use(model), engine.autocast():
                    self.fits[(id(engine.model), model)] = LiveBatch.fits(engine.model)
            live = join is not None and self.fits[(id(engine.model), model)]
        if live:
            self._live(key, rows, join, engine)
            return
        model, temperature, top_p, seed = key[:4]
        cfg = GenerateConfig(max_new_tokens=max(r.max_tokens for r in rows), temperature=temperature,
                             top_p=top_p, seed=seed if seed is not None else random.randrange(2**31))
        with self.lock:
            router = RowRouter(rows, lambda ids: engine.tok.decode(ids, skip_special_tokens=True), engine.stop_ids)
            with self._use(model):
                engine.generate_ids([r.prompt_ids for r in rows], cfg, stopping_criteria=[router])
        router.close()

    def _live(self, key: tuple, rows: list[Row], join, engine) -> None:
        """Continuous batching: each step, rows that ended leave and rows that arrived join (after their
        prefill); the repetition penalty is the model's own, as in one `generate` call."""
        from luyen.infer.live import LiveBatch, Sampler
        model, temperature, top_p, seed = key[:4]
        penalty = engine.settings(GenerateConfig()).repetition_penalty
        # the KV cache grows in place, with room for the longest answer asked for; greedy rows decode through
        # the int8-screened output layer (luyen.infer.screen), as `luyen eval` and `luyen generate` do
        live = LiveBatch(engine.model, room=max(r.max_tokens for r in rows))
        waiting, stop_ids = list(rows), set(engine.stop_ids)
        screened = engine.screened(GenerateConfig(temperature=temperature))

        def decode(ids):
            return engine.tok.decode(ids, skip_special_tokens=True)

        def route(owners, tokens):
            return [not row.push(t, decode, stop_ids) for row, t in zip(owners, tokens)]
        while True:
            waiting += join(len(live) + len(waiting))
            waiting = [r for r in waiting if not r.cancelled]
            if not live and not waiting:
                return
            with self.lock:
                if model not in self.models():  # removed while answering (DELETE of a job's model)
                    for row in [*live.owners, *waiting]:
                        row.finish = "error"
                        row.deliver(("error", row.index, f"model '{model}' was removed while answering"))
                    return
                with self._use(model), screened, engine.autocast():  # bf16 weights, fp32 adapters: as generate runs them
                    if len(live):
                        owners = list(live.owners)
                        live.keep(route(owners, live.step()))
                    if waiting:
                        samplers = [Sampler(temperature=temperature, top_p=top_p, repetition_penalty=penalty,
                                            seed=seed + r.index if seed is not None else random.randrange(2**31))
                                    for r in waiting]
                        first = live.admit(waiting, [r.prompt_ids for r in waiting], samplers, engine.pad_id)
                        waiting, joined = [], waiting
                        live.keep([True] * (len(live) - len(joined)) + route(joined, first))

    def _use(self, model: str):
        import contextlib
        peft = self.engine.model
        if not self.adapters or model in self.full:
            return contextlib.nullcontext()
        if model in self.adapters:
            peft.set_adapter(self.adapters[model])
            return contextlib.nullcontext()
        if "default" in peft.peft_config:  # the served model was itself a trained adapter
            peft.set_adapter("default")
            return contextlib.nullcontext()
        return peft.disable_adapter()


def adapter_budget(path: str) -> int | None:
    """max_new_tokens in the generation_config.json `luyen train` saved beside an adapter, if any."""
    import json
    from luyen.models.trained import model_folder
    config = model_folder(path) / "generation_config.json"
    return json.loads(config.read_text(encoding="utf-8")).get("max_new_tokens") if config.is_file() else None


def attach_adapter(model, name: str, path: str, base_name: str):
    """Load the PEFT adapter at ``path`` into ``model`` as ``name`` (wrapping a plain model once)."""
    from peft import PeftModel
    from luyen.models.trained import check_adapter_base, model_folder
    folder = model_folder(path)
    if not (folder / "adapter_config.json").is_file():
        raise LuyenError("not a LoRA adapter (no adapter_config.json)", file=str(folder), field=f"adapters.{name}",
                         fix="pass a `luyen train` run of a LoRA method, or its model/ folder")
    base_cfg = model.get_base_model().config if isinstance(model, PeftModel) else model.config
    check_adapter_base(folder, base_cfg, base_name)
    try:
        if isinstance(model, PeftModel):
            model.load_adapter(str(folder), adapter_name=name)
            return model
        return PeftModel.from_pretrained(model, str(folder), adapter_name=name)
    except (RuntimeError, ValueError, KeyError) as e:
        raise LuyenError(f"this adapter does not fit base model {base_name}: {str(e).splitlines()[0][:200]}",
                         file=str(folder), field=f"adapters.{name}", fix="serve the base it was trained on") from None


def load_backend(kind: str, model: str, adapters: dict[str, str]):
    if kind == "transformers":
        return TransformersBackend.load(model, adapters)
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        raise LuyenError("the llamacpp backend needs llama-cpp-python, which is not installed",
                         field="serve.backend", fix=LLAMACPP_HINT) from None
    if adapters:
        raise LuyenError("the llamacpp backend serves one .gguf file without adapters", field="serve.adapters",
                         fix="merge the adapter first (luyen export), or use --backend transformers")
    if not Path(model).suffix.lower() == ".gguf":
        raise LuyenError("the llamacpp backend needs a .gguf file", file=model, field="serve.backend",
                         fix="export one with `luyen export --format gguf`, or use --backend transformers")
    from luyen.serve.llamacpp import LlamaCppBackend
    return LlamaCppBackend.load(model)
