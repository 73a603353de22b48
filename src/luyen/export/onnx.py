"""ONNX export with past key values, INT8 dynamic quantisation, and a small onnxruntime generator.

    metrics = export(Path("runs/demo/export/merged"), Path("runs/demo/export/onnx"), ["int8"], console)
    lm = OrtLM("runs/demo/export/onnx/model.onnx")
    lm.greedy([tok("Thủ đô của Việt Nam là")["input_ids"]], max_new_tokens=20).tokens

The graph is the causal LM as a function of flat tensors, the layout optimum and transformers.js use:
inputs ``input_ids [b, s]``, ``attention_mask [b, past+s]``, ``position_ids [b, s]`` and
``past_key_values.{i}.key|value [b, kv_heads, past, head_dim]``; outputs ``logits [b, s, vocab]`` and
``present.{i}.key|value``. The first step passes empty (past = 0) caches. optimum-onnx needs
transformers < 4.58, so the graph comes from ``torch.onnx.export`` (the dynamo exporter) of a wrapper
that rebuilds a ``DynamicCache`` from those tensors; the export is then checked against transformers
(greedy tokens and perplexity) and those checks are returned as metrics for the manifest.
"""
from __future__ import annotations

import logging
import math
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from luyen.errors import LuyenError
from luyen.export.check import PROMPTS, greedy

INSTALL_HINT = "pip install 'luyen[onnx]'"
MODEL_FILE, INT8_FILE = "model.onnx", "model_int8.onnx"
# Fixed texts for the perplexity check (Vietnamese and English, like our users); the greedy check
# decodes luyen.export.check.PROMPTS.
TEXTS = [
    "Hà Nội là thủ đô của nước Cộng hòa Xã hội chủ nghĩa Việt Nam, nằm ở đồng bằng sông Hồng.",
    "Học máy là một nhánh của trí tuệ nhân tạo, nghiên cứu cách để máy tính học từ dữ liệu.",
    "Machine learning is a branch of artificial intelligence that learns patterns from data.",
    "The quick brown fox jumps over the lazy dog while the cat sleeps in the warm sun.",
]
EXTERNAL_DATA_BYTES = 512 << 20  # weights beyond this go to model.onnx.data (protobuf caps a file at 2 GB)
# Linear layers left in fp32 by the int8 export. The MLP's output projection reads the gated product,
# whose outliers (max/rms 28-159 on Gemma-3-270M, against at most 37 elsewhere) per-tensor activation
# quantisation cannot represent: with it in int8 perplexity on TEXTS went 15.0 -> 21.1; with it in
# fp32, 16.0, for 16% more bytes (513 vs 442 MB). The name is the Llama-family one (Llama, Gemma,
# Qwen, Mistral, Phi-3); other architectures are quantised whole.
KEEP_FP32 = ("mlp.down_proj",)


def require_onnx():
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as e:
        raise LuyenError(f"ONNX export needs {e.name}", fix=INSTALL_HINT) from None


def export(merged_dir: Path, out_dir: Path, quant: list[str], console=None) -> dict:
    """Export ``merged_dir`` (a plain transformers model folder with its tokenizer) to ``out_dir``:
    model.onnx (+ model.onnx.data), model_int8.onnx when ``"int8" in quant``, config and tokenizer.
    Returns sizes, greedy agreement with transformers, tokens/s and perplexity per precision."""
    require_onnx()
    from transformers import AutoModelForCausalLM, AutoTokenizer
    unknown = sorted(set(quant) - {"int8"})
    if unknown:
        raise LuyenError(f"unknown ONNX quantisation {unknown}", field="export.quant", fix="use 'int8' or nothing")
    say = console.print if console is not None else (lambda *a, **k: None)
    merged_dir, out_dir = Path(merged_dir), Path(out_dir)
    model = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32, use_safetensors=True).eval()
    tok = AutoTokenizer.from_pretrained(merged_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # out_dir is the export stage's staged folder (RunDir.create): it appears only once every file is
    # written and checked, so the files are written in it directly
    say(f"exporting {merged_dir} to ONNX with past key values")
    start = time.perf_counter()
    export_graph(model, out_dir / MODEL_FILE)
    metrics = {"export_s": round(time.perf_counter() - start, 1)}
    files = {"fp32": out_dir / MODEL_FILE}
    if "int8" in quant:
        say("quantising to INT8 (dynamic, per channel)")
        metrics["int8_fp32_matmuls"] = quantize_int8(out_dir / MODEL_FILE, out_dir / INT8_FILE)
        files["int8"] = out_dir / INT8_FILE
    tok.save_pretrained(out_dir)
    model.config.save_pretrained(out_dir)
    if model.generation_config is not None:
        model.generation_config.save_pretrained(out_dir)
    say("checking the export against transformers (greedy tokens, perplexity, speed)")
    metrics.update(compare(model, tok, files))
    return metrics


class WithPast(torch.nn.Module):
    """The causal LM as a function of flat tensors, for torch.onnx.export (see the module docstring)."""

    def __init__(self, lm):
        super().__init__()
        self.lm = lm

    def forward(self, input_ids, attention_mask, position_ids, *past):
        from transformers import DynamicCache
        cache = DynamicCache()
        for i in range(len(past) // 2):
            cache.update(past[2 * i], past[2 * i + 1], i)
        # The cache goes 4th by position: transformers renamed that argument (past_key_values -> cache)
        # within 5.x; the model extends it in place, so it is also where the present keys/values are read.
        logits = self.lm(input_ids, attention_mask, position_ids, cache, use_cache=True).logits
        return (logits, *[t for layer in cache.layers for t in (layer.keys, layer.values)])


def cache_shapes(model) -> list[tuple[int, int]]:
    """(kv_heads, head_dim) of each layer's key and value, read from one real forward pass, so the
    graph's cache layout is whatever the architecture's attention really stores."""
    from transformers import DynamicCache
    cache = DynamicCache()
    with torch.no_grad():
        model(torch.tensor([[1, 2]]), None, None, cache, use_cache=True)
    return [(t.shape[1], t.shape[3]) for layer in cache.layers for t in (layer.keys, layer.values)]


def export_graph(model, path: Path) -> None:
    """torch.onnx.export (dynamo) with batch, sequence and past length dynamic; verified by onnx.checker."""
    shapes = cache_shapes(model)
    layers = len(shapes) // 2
    # Sample sizes above 1 everywhere: torch.export specialises dimensions of size 0 and 1.
    b, s, p = 2, 3, 4
    args = (torch.randint(3, 30, (b, s)), torch.ones(b, p + s, dtype=torch.long),
            torch.arange(p, p + s).expand(b, s).contiguous(),
            *[torch.zeros(b, h, p, d) for h, d in shapes])
    batch, seq, past, total = (torch.export.Dim(n) for n in ("batch", "sequence", "past_sequence", "total_sequence"))
    dynamic = ({0: batch, 1: seq}, {0: batch, 1: total}, {0: batch, 1: seq}, tuple({0: batch, 2: past} for _ in shapes))
    names = [f"past_key_values.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]
    outputs = ["logits"] + [n.replace("past_key_values", "present") for n in names]
    save_graph(WithPast(model), args, ["input_ids", "attention_mask", "position_ids", *names], outputs, dynamic,
               path, model)


def save_graph(module, args, inputs: list[str], outputs: list[str], dynamic, path: Path, model) -> None:
    """torch.onnx.export (dynamo, opset 18) of ``module`` on sample ``args`` with ``dynamic`` shapes, saved to
    ``path`` (weights as external data when ``model``'s pass 2 GB) and verified by onnx.checker. The causal
    LM's graph (export_graph) and the task heads' graphs (luyen.tasks.onnx) all go through here."""
    import onnx
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    quiet = logging.getLogger("torch.onnx")
    level, quiet.level = quiet.level, logging.ERROR
    try:  # the exporter's progress lines and its warnings about unused axis names are not the user's
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(module.eval(), args, input_names=inputs, output_names=outputs,
                                        dynamic_shapes=dynamic, dynamo=True, opset_version=18, verbose=False)
    finally:
        quiet.level = level
    program.save(str(path), external_data=weights > EXTERNAL_DATA_BYTES)
    onnx.checker.check_model(str(path))  # by path: works with external data


def quantize_int8(src: Path, dst: Path) -> int:
    """INT8 weights, one scale per output channel, for the MatMuls and the embedding Gather; activations
    are quantised at run time (onnxruntime's dynamic quantisation). Returns how many MatMuls stay fp32.

    Weights use 7 bits (``reduce_range``): onnxruntime's int8 kernels on CPUs without VNNI (AVX2-only
    machines) multiply u8 activations by s8 weights into 16-bit sums that saturate with full 8-bit
    weights, as onnxruntime's own documentation warns for per-channel mode. Measured on a 2-core AVX2
    EPYC: a tiny seq2seq head's int8 logits were off by up to 1.89 (a third of its greedy tokens kept)
    with 8 bits. The file is exported once and may run on either kind, so 7 bits everywhere.

    A tied output layer reads the embedding matrix through a Transpose, which quantize_dynamic does not
    look through: the int8 model would dequantise and transpose the whole [vocab, hidden] matrix at
    every step (half the fp32 speed on Gemma-3). So the transposed weight is folded into its own
    initializer first, in a temporary copy; model.onnx itself stays tied."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    with tempfile.TemporaryDirectory(prefix=".int8-", dir=dst.parent) as tmp:
        folded = Path(tmp) / "folded.onnx"
        fold_transposed_weights(src, folded)
        graph = onnx.load(str(folded), load_external_data=False).graph
        keep = [n.name for n in graph.node if n.op_type == "MatMul" and any(k in _scope(n) for k in KEEP_FP32)]
        root = logging.getLogger()
        level, root.level = root.level, logging.ERROR  # its advice to run shape pre-processing is for CNNs
        try:
            quantize_dynamic(str(folded), str(dst), weight_type=QuantType.QInt8, per_channel=True,
                             reduce_range=True, op_types_to_quantize=["MatMul", "Gather"], nodes_to_exclude=keep,
                             use_external_data_format=file_bytes(folded) > 6 * EXTERNAL_DATA_BYTES)
        finally:
            root.level = level
    return len(keep)


def _scope(node) -> str:
    """The module path torch.onnx records for a node (e.g. 'lm.model.layers.0.mlp.down_proj')."""
    return next((p.value for p in node.metadata_props if p.key == "pkg.torch.onnx.name_scopes"), "")


def fold_transposed_weights(src: Path, dst: Path) -> int:
    """Replace each Transpose of a weight that feeds only MatMuls by the transposed weight; returns how many."""
    import onnx
    from onnx import numpy_helper
    model = onnx.load(str(src))
    weights = {w.name: w for w in model.graph.initializer}
    readers: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    folded = 0
    for node in list(model.graph.node):
        out = node.output[0] if node.output else None
        if node.op_type != "Transpose" or node.input[0] not in weights or not all(
                r.op_type == "MatMul" and list(r.input).index(out) == 1 for r in readers.get(out, [])):
            continue
        perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
        array = numpy_helper.to_array(weights[node.input[0]]).transpose(perm)
        model.graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(array), out))
        model.graph.node.remove(node)
        folded += 1
    onnx.save(model, str(dst), save_as_external_data=True, location=dst.name + ".data")
    return folded


def file_bytes(onnx_path: Path) -> int:
    """The model file plus its external data file (``torch.onnx`` names it ``<model>.data``)."""
    data = onnx_path.with_name(onnx_path.name + ".data")
    return onnx_path.stat().st_size + (data.stat().st_size if data.is_file() else 0)


@dataclass
class Greedy:
    tokens: list[list[int]]
    first_token_s: float  # prompt processing + the first new token
    seconds: float


class OrtLM:
    """A causal LM exported by ``export`` running in onnxruntime on the CPU."""

    def __init__(self, path: str | Path, threads: int | None = None):
        require_onnx()
        import onnxruntime as ort
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.past = [(i.name, i.shape[1], i.shape[3]) for i in self.session.get_inputs()
                     if i.name.startswith("past_key_values.")]

    def forward(self, ids: np.ndarray, mask: np.ndarray, cache: list[np.ndarray] | None = None):
        """Logits [b, s, vocab] and the new cache; positions follow the mask (left padding)."""
        b = ids.shape[0]
        if cache is None:
            cache = [np.zeros((b, h, 0, d), np.float32) for _, h, d in self.past]
        positions = np.maximum(mask.cumsum(-1) - 1, 0)[:, -ids.shape[1]:]
        feed = {"input_ids": ids, "attention_mask": mask, "position_ids": positions}
        feed.update({name: t for (name, _, _), t in zip(self.past, cache)})
        logits, *present = self.session.run(None, feed)
        return logits, present

    def greedy(self, prompts: list[list[int]], max_new_tokens: int, stop_ids=(), pad_id: int = 0) -> Greedy:
        """Greedy decoding of token-id prompts in one left-padded batch; a row ends at a stop id (kept out)."""
        start = time.perf_counter()
        width = max(len(p) for p in prompts)
        ids = np.array([[pad_id] * (width - len(p)) + list(p) for p in prompts], np.int64)
        mask = np.array([[0] * (width - len(p)) + [1] * len(p) for p in prompts], np.int64)
        out, done, cache, first = [[] for _ in prompts], [False] * len(prompts), None, 0.0
        for step in range(max_new_tokens):
            logits, cache = self.forward(ids, mask, cache)
            nxt = logits[:, -1].argmax(-1)
            first = first or time.perf_counter() - start
            for row, t in enumerate(nxt.tolist()):
                done[row] = done[row] or t in stop_ids
                if not done[row]:
                    out[row].append(t)
            if all(done):
                break
            ids, mask = nxt[:, None].astype(np.int64), np.concatenate([mask, np.ones((len(prompts), 1), np.int64)], 1)
        return Greedy(out, first, time.perf_counter() - start)

    def nll(self, ids: list[int]) -> tuple[float, int]:
        """Summed negative log-likelihood of ids[1:] given their prefixes, and the count of predicted tokens."""
        x = np.array([ids], np.int64)
        logits, _ = self.forward(x, np.ones_like(x))
        logits = logits[0, :-1].astype(np.float64)
        logz = np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1)) + logits.max(-1)
        return float((logz - logits[np.arange(len(ids) - 1), ids[1:]]).sum()), len(ids) - 1


def hf_perplexity(model, token_lists: list[list[int]]) -> float:
    total, count = 0.0, 0
    with torch.no_grad():
        for ids in token_lists:
            x = torch.tensor([ids])
            loss = model(input_ids=x, labels=x).loss.item()
            total, count = total + loss * (len(ids) - 1), count + len(ids) - 1
    return math.exp(total / count)


def agreement(a: list[list[int]], b: list[list[int]]) -> float:
    """Mean share of each reference sequence reproduced before the first differing token (1.0 = identical)."""
    shares = []
    for x, y in zip(a, b):
        same = next((i for i, (u, v) in enumerate(zip(x, y)) if u != v), min(len(x), len(y)))
        shares.append(1.0 if x == y else same / max(len(x), len(y), 1))
    return round(sum(shares) / len(shares), 4)


def compare(model, tok, files: dict[str, Path], new_tokens: int = 24) -> dict:
    """Sizes, greedy agreement with transformers, tokens/s and perplexity for each exported file."""
    stop = [tok.eos_token_id] if tok.eos_token_id is not None else []
    prompts = [tok(p)["input_ids"] for p in PROMPTS]
    texts = [tok(t)["input_ids"] for t in TEXTS]
    reference = [greedy(model, p, new_tokens, stop)[0] for p in prompts]
    m = {"bytes": {}, "greedy_agreement": {}, "tokens_per_s": {}, "perplexity": {"transformers": hf_perplexity(model, texts)}}
    for name, path in files.items():
        lm = OrtLM(path)
        lm.greedy(prompts[:1], 2)  # warm-up: the first run allocates
        run = [lm.greedy([p], new_tokens, stop) for p in prompts]
        produced = sum(len(r.tokens[0]) for r in run)
        nll = [lm.nll(ids) for ids in texts]
        m["bytes"][name] = file_bytes(path)
        m["greedy_agreement"][name] = agreement(reference, [r.tokens[0] for r in run])
        m["tokens_per_s"][name] = round(produced / sum(r.seconds for r in run), 1)
        m["perplexity"][name] = math.exp(sum(n for n, _ in nll) / sum(c for _, c in nll))
        del lm
    m["perplexity"] = {k: round(v, 4) for k, v in m["perplexity"].items()}
    m["greedy_tokens_match"] = m["greedy_agreement"]["fp32"] == 1.0
    return m
