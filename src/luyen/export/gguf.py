"""GGUF export through llama.cpp's own converter and quantizer, checked against transformers.

    metrics = export(Path("merged"), Path("runs/demo/export/gguf"), ["q8_0", "q4_k_m"], console)
    greedy_tokens("runs/demo/export/gguf/model-q8_0.gguf", prompt_ids, 8)

The merged folder goes through ``convert_hf_to_gguf.py`` to an f16 file, which
``llama_model_quantize`` (llama.cpp's quantizer, the function behind ``llama-quantize``, reached
through llama-cpp-python's ctypes bindings) turns into q8_0 and q4_k_m. The converter is not part
of the installed llama_cpp package: it ships in llama-cpp-python's source distribution, so luyen
fetches that source distribution of the installed version once, through pip, and keeps only the
converter (``convert_hf_to_gguf.py``, ``conversion/`` and the matching ``gguf-py``) under
``~/.cache/luyen/llama.cpp/<version>``. Converter and runtime thus always come from the same
llama.cpp commit.

Every file written is then loaded in llama.cpp and fed transformers' fp32 greedy continuation of
fixed prompts; its top token must equal transformers' wherever transformers' own top-2 margin is
decisive (``compare_steps``), and the measure goes into the manifest. Exact free-running equality is
not promised: at near-ties which token wins depends on each runtime's rounding and each CPU's kernels. Beside the files an Ollama
Modelfile is written: ``ollama create mymodel -f Modelfile``.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
import time
from importlib import metadata
from pathlib import Path

from luyen.errors import LuyenError
from luyen.export.check import PROMPTS, greedy, margin
from luyen.manifest import staged

INSTALL_HINT = "pip install 'luyen[gguf]'"
# f16 straight from the converter; the others through llama.cpp's quantizer. f16_q8emb keeps f16 weights but
# stores the token table (which Gemma ties to the output layer: 168M of Gemma-3-270M's 268M weights) in q8_0
QUANTS = ("f16", "f16_q8emb", "q8_0", "q4_k_m")
DEFAULT_QUANTS = ["q8_0"]
CONVERTER_FILES = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/gguf/")
CHECK_TOKENS = 16  # per prompt of luyen.export.check.PROMPTS
# The export's promise (see compare_steps): fed transformers' fp32 greedy continuation, llama.cpp picks
# the same top token at every step where transformers' top-1 beats its top-2 by at least this many
# nats, and the mean KL divergence stays under MAX_MEAN_KL. Measured on the embedded Gemma-3-270M
# (96 teacher-forced steps, llama.cpp built for AVX2 as `make` builds it): the error in the top-2
# margin was at most 0.024 nats for f16, 0.89 for q8_0 (its dot products also quantise activations
# to 8 bits) and 0.74 for q4_k_m; every flip seen was at a margin under 0.16; mean KL 1e-5, 0.008, 0.01.
# f16_q8emb's output layer computes as q8_0's (8-bit activations too), so it keeps q8_0's promise (measured:
# 92/96 top-1, 31/31 decisive, mean KL 0.0009, as bf16 weights give in transformers: 92/96, 0.0010).
DECISIVE_MARGIN = {"f16": 0.25, "f16_q8emb": 1.5, "q8_0": 1.5, "q4_k_m": 3.0}
MAX_MEAN_KL = {"f16": 0.005, "f16_q8emb": 0.05, "q8_0": 0.05, "q4_k_m": 0.15}
_SILENT = None  # llama.cpp's log callback, kept alive for as long as llama.cpp may call it


def export(merged_dir: Path, out_dir: Path, quant: list[str], console=None) -> dict:
    """Write ``model-<quant>.gguf`` for each quant and a Modelfile into ``out_dir``; return the metrics."""
    quant = check_quants(quant)
    require_llama_cpp()
    say = console.print if console is not None else (lambda *a, **k: None)
    merged_dir, out_dir = Path(merged_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    converter = converter_dir(say)
    metrics: dict = {"llama_cpp_python": metadata.version("llama-cpp-python"), "files": {}}
    # out_dir is the export stage's staged folder (RunDir.create): it appears only once every file is
    # written and checked, so files are built in it directly
    f16 = out_dir / "model-f16.gguf"
    start = time.perf_counter()
    say(f"gguf: converting {merged_dir} with llama.cpp's convert_hf_to_gguf.py")
    convert(converter, merged_dir, f16)
    metrics["convert_s"] = round(time.perf_counter() - start, 1)
    built = {}
    for q in quant:
        start = time.perf_counter()
        if q != "f16":
            say(f"gguf: quantising to {q}")
            quantize(f16, out_dir / f"model-{q}.gguf", q)
        built[q] = out_dir / f"model-{q}.gguf"
        metrics["files"][q] = {"file": built[q].name, "bytes": built[q].stat().st_size,
                               "seconds": round(time.perf_counter() - start, 1)}
    if "f16" not in quant:
        f16.unlink()  # only the intermediate of the quantisations asked for
    say(f"gguf: checking greedy tokens of {', '.join(quant)} against transformers")
    start = time.perf_counter()
    metrics["agreement"] = agreement(merged_dir, built)
    metrics["check_s"] = round(time.perf_counter() - start, 1)
    for q, a in metrics["agreement"].items():
        if not a["kept"]:
            say(f"[yellow]gguf: warning: {describe_agreement(q, a)}[/]")
    metrics["modelfiles"] = write_modelfiles(merged_dir, out_dir, [metrics["files"][q]["file"] for q in quant])
    return metrics


def check_quants(quant: list[str] | None) -> list[str]:
    quant = list(dict.fromkeys(q.strip().lower() for q in (quant or DEFAULT_QUANTS) if q.strip()))
    unknown = [q for q in quant if q not in QUANTS]
    if unknown:
        raise LuyenError(f"unknown GGUF quantisation {', '.join(unknown)}", field="--quant",
                         fix=f"use some of {', '.join(QUANTS)}")
    return quant


def require_llama_cpp(what: str = "GGUF export", field: str | None = None, otherwise: str = "") -> None:
    """llama_cpp (the runtime and quantizer) and the converter's libraries, or a one-line install hint
    saying ``what`` needs them (and ``otherwise``, what to do instead)."""
    missing = []
    for module in ("llama_cpp", "sentencepiece", "gguf"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise LuyenError(f"{what} needs {', '.join(missing)} (llama.cpp's converter and runtime)", field=field,
                         fix=f"{INSTALL_HINT} (builds llama-cpp-python from source once, about 5 minutes){otherwise}")


def converter_dir(say=print, cache: Path | None = None) -> Path:
    """llama.cpp's converter matching the installed llama-cpp-python, fetched once from its source distribution."""
    from luyen.models.embedded import cache_root
    version = metadata.version("llama-cpp-python")
    home = (cache or cache_root() / "llama.cpp") / version
    if (home / "convert_hf_to_gguf.py").is_file():
        return home
    say(f"gguf: fetching llama.cpp's converter from the llama-cpp-python {version} source distribution (once)")
    with tempfile.TemporaryDirectory(prefix="luyen-sdist-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", "llama-cpp-python", "--quiet",
               f"llama-cpp-python=={version}", "-d", tmp]
        done = subprocess.run(cmd, capture_output=True, text=True)
        sdists = list(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
        if not sdists:
            last = (done.stderr.strip().splitlines() or ["no file downloaded"])[-1]
            raise LuyenError(f"cannot fetch the llama-cpp-python {version} source distribution for llama.cpp's "
                             f"converter: {last[:200]}",
                             fix=f"connect to PyPI once, or extract vendor/llama.cpp/{{{','.join(CONVERTER_FILES)}}} "
                             f"from that source distribution into {home}")
        extract_converter(sdists[0], home)
    return home


def extract_converter(sdist: Path, dest: Path) -> None:
    """Copy the converter's files out of the source distribution into a staged folder (never half there)."""
    with tarfile.open(sdist) as tar, staged(dest) as build:
        prefix = tar.getnames()[0].split("/")[0] + "/vendor/llama.cpp/"
        members = [m for m in tar.getmembers() if m.isfile() and m.name.startswith(prefix)
                   and m.name[len(prefix):].startswith(CONVERTER_FILES)]
        for m in members:
            m.name = m.name[len(prefix):]
        tar.extractall(build, members=members, filter="data")
        if not (build / "convert_hf_to_gguf.py").is_file():
            raise LuyenError("this llama-cpp-python source distribution has no vendor/llama.cpp/convert_hf_to_gguf.py",
                             file=str(sdist), fix="install a llama-cpp-python release that ships it (0.3.x)")


def convert(converter: Path, merged_dir: Path, out_file: Path) -> None:
    """``convert_hf_to_gguf.py merged_dir --outtype f16`` in a child process; its last error line on failure."""
    cmd = [sys.executable, str(converter / "convert_hf_to_gguf.py"), str(merged_dir), "--outfile", str(out_file),
           "--outtype", "f16"]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    if done.returncode != 0 or not out_file.is_file():
        lines = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith(" ")]
        reason = lines[-1] if lines else f"exit code {done.returncode}"
        raise LuyenError(f"llama.cpp's converter failed: {reason[:300]}", file=str(merged_dir),
                         fix="llama.cpp supports this model's architecture and tokenizer only if its converter "
                         "knows them; export --format merged or onnx instead")


def quantize(src: Path, dst: Path, quant: str) -> None:
    """llama.cpp's quantizer (``llama_model_quantize``), all cores."""
    import ctypes

    import llama_cpp
    ftype = {"q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0, "q4_k_m": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M,
             "f16_q8emb": llama_cpp.LLAMA_FTYPE_MOSTLY_F16}[quant]
    silence_llama_cpp()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    if quant == "f16_q8emb":  # llama-quantize --token-embedding-type q8_0 --output-tensor-type q8_0
        params.token_embedding_type = params.output_tensor_type = llama_cpp.GGML_TYPE_Q8_0
    params.nthread = os.cpu_count() or 1
    if llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params)) != 0:
        raise LuyenError(f"llama.cpp could not quantise to {quant}", file=str(src), fix="try another --quant")


def silence_llama_cpp() -> None:
    """llama.cpp logs every tensor it quantises, and its loader prints notes even with verbose=False."""
    import llama_cpp
    global _SILENT
    if _SILENT is None:
        _SILENT = llama_cpp.llama_log_callback(lambda level, text, data: None)
        llama_cpp.llama_log_set(_SILENT, None)


def load(path: Path, n_ctx: int = 128):
    """A llama_cpp.Llama on ``path`` that keeps every position's logits (for checks), all cores, quiet."""
    import llama_cpp
    silence_llama_cpp()
    return llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_threads=os.cpu_count() or 1, logits_all=True, verbose=False)


def greedy_tokens(llm, prompt_ids: list[int], n: int) -> list[int]:
    """Plain argmax decoding (no sampler) of ``n`` tokens after ``prompt_ids``."""
    import numpy as np
    llm.reset()
    llm.eval(prompt_ids)
    out = []
    for _ in range(n):
        out.append(int(np.argmax(llm.scores[llm.n_tokens - 1])))
        llm.eval([out[-1]])
    return out


def teacher_forced(llm, prompt_ids: list[int], reference: list[int]):
    """llama.cpp's log-softmax at each step when fed the reference continuation (one evaluation, so a
    step where the two runtimes part does not change what the later steps are compared on)."""
    import numpy as np
    llm.reset()
    llm.eval(prompt_ids + reference[:-1])
    start = len(prompt_ids) - 1
    scores = np.asarray(llm.scores[start:start + len(reference)], dtype=np.float64)
    return scores - _logsumexp(scores)


def compare_steps(hf_logprobs, cpp_logprobs, decisive: float, max_mean_kl: float) -> dict:
    """The agreement measure the export promises and records, over all steps of all prompts:

    * ``decisive``: steps where transformers' top-1 log-prob beats its top-2 by at least ``decisive``
      nats; ``decisive_agreed``: of those, steps where llama.cpp's top token is the same. The promise
      is that they are equal. Below that margin the two runtimes' rounding (which differs with each
      CPU's kernels) may pick either token, so free-running greedy text may part there and equality
      of whole continuations is not promised.
    * ``top1_agreed`` of ``steps`` overall, and the KL divergence KL(transformers || llama.cpp) per
      step (mean and max, nats), the measure llama.cpp's own ``perplexity --kl-divergence`` reports;
      the promise also bounds the mean by ``max_mean_kl``."""
    import numpy as np
    steps = decisive_n = decisive_ok = top1 = 0
    kls = []
    for p, q in zip(hf_logprobs, cpp_logprobs):
        same = int(np.argmax(p)) == int(np.argmax(q))
        steps, top1 = steps + 1, top1 + same
        if margin(p) >= decisive:
            decisive_n, decisive_ok = decisive_n + 1, decisive_ok + same
        kls.append(float(np.sum(np.exp(p) * (p - q))))
    mean_kl = float(np.mean(kls)) if kls else 0.0
    return {"steps": steps, "top1_agreed": top1, "decisive_margin": decisive, "decisive": decisive_n,
            "decisive_agreed": decisive_ok, "mean_kl": round(mean_kl, 6), "max_kl": round(max(kls, default=0.0), 6),
            "max_mean_kl": max_mean_kl, "kept": decisive_ok == decisive_n and mean_kl <= max_mean_kl}


def agreement(merged_dir: Path, files: dict[str, Path], prompts: list[str] = PROMPTS, n: int = CHECK_TOKENS) -> dict:
    """Per file: whether llama.cpp tokenises the prompts as transformers does, and the teacher-forced
    agreement of ``compare_steps`` on transformers' fp32 greedy continuation of each prompt."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(merged_dir)
    model = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32, use_safetensors=True).eval()
    prompt_ids = [tok(p)["input_ids"] for p in prompts]
    reference = [greedy(model, ids, n) for ids in prompt_ids]
    del model
    result = {}
    for q, path in files.items():
        llm = load(path)
        same_ids = all(llm.tokenize(p.encode(), add_bos=bool(ids) and ids[0] == tok.bos_token_id) == ids
                       for p, ids in zip(prompts, prompt_ids))
        cpp = [teacher_forced(llm, ids, tokens) for ids, (tokens, _) in zip(prompt_ids, reference)]
        llm.close()
        result[q] = {"same_tokenization": same_ids, "prompts": len(prompts), "tokens_per_prompt": n,
                     **compare_steps([lp for _, lps in reference for lp in lps], [s for c in cpp for s in c],
                                     DECISIVE_MARGIN[q], MAX_MEAN_KL[q])}
        result[q]["kept"] = result[q]["kept"] and same_ids
    return result


def describe_agreement(quant: str, a: dict) -> str:
    """One line for the terminal: what the check promises and whether this file kept it."""
    kept = "kept" if a["kept"] else "NOT kept"
    tokens = "" if a["same_tokenization"] else "; llama.cpp tokenises the prompts differently"
    return (f"{quant}: same top token as transformers fp32 on {a['decisive_agreed']}/{a['decisive']} decisive steps "
            f"(top-2 margin >= {a['decisive_margin']} nats; {a['top1_agreed']}/{a['steps']} of all steps), "
            f"mean KL {a['mean_kl']:.4f} nats (at most {a['max_mean_kl']}): promise {kept}{tokens}")


def _logsumexp(x):
    import numpy as np
    m = x.max(-1, keepdims=True)
    return m + np.log(np.exp(x - m).sum(-1, keepdims=True))


# --- Ollama Modelfile -------------------------------------------------------------------------------
_MARK = {"system": "\u2063S\u2063", "user": "\u2063U\u2063", "assistant": "\u2063A\u2063"}


def chat_affixes(tok, template: str) -> dict | None:
    """The text each role's turn starts and ends with, read off the chat template by rendering marker
    contents; None when the template is not a plain sequence of turns (then Ollama uses its own)."""
    from luyen.data.template import render
    bos = tok.bos_token or ""

    def text(roles: str, gen: bool) -> str:
        out = render(tok, template, [{"role": r, "content": _MARK[r]} for r in roles.split()], add_generation_prompt=gen)
        return out[len(bos):] if bos and out.startswith(bos) else out  # llama.cpp and Ollama add BOS themselves
    try:  # templates raise anything (TemplateError, ValueError, their own raise_exception)
        one, gen, two = text("user", False), text("user", True), text("user assistant", False)
    except Exception:  # noqa: BLE001
        return None
    if one.count(_MARK["user"]) != 1 or not two.startswith(one) or two.count(_MARK["assistant"]) != 1:
        return None
    p_u, s_u = one.split(_MARK["user"])
    p_a, s_a = two[len(one):].split(_MARK["assistant"])
    if gen != one + p_a:
        return None
    a = {"user": (p_u, s_u), "assistant": (p_a, s_a), "system": None, "system_sep": None}
    try:
        sys_text = text("system user", True)
    except Exception:  # noqa: BLE001  (a template without system turns)
        return a
    if sys_text.startswith(p_u + _MARK["system"]) and _MARK["user"] in sys_text:  # folded into the first user turn
        a["system_sep"] = sys_text[len(p_u + _MARK["system"]):sys_text.index(_MARK["user"])]
    elif sys_text.endswith(gen) and sys_text[:-len(gen)].count(_MARK["system"]) == 1:
        a["system"] = tuple(sys_text[:-len(gen)].split(_MARK["system"]))
    return a


def ollama_template(a: dict) -> str:
    """A Go template (Ollama's TEMPLATE) that lays out .Messages exactly as the chat template does."""
    (p_u, s_u), (p_a, s_a) = a["user"], a["assistant"]
    head, system = "", ""
    if a["system"]:
        system = f'{{{{ if eq .Role "system" }}}}{a["system"][0]}{{{{ .Content }}}}{a["system"][1]}{{{{ else }}}}'
    if a["system_sep"] is not None:  # Gemma: system text opens the first user turn
        head = '{{ $system := "" }}{{ range .Messages }}{{ if eq .Role "system" }}{{ $system = .Content }}{{ end }}{{ end }}'
        user = (f'{p_u}{{{{ if $system }}}}{{{{ $system }}}}{a["system_sep"]}{{{{ $system = "" }}}}{{{{ end }}}}'
                f'{{{{ .Content }}}}{s_u}')
    else:
        user = f"{p_u}{{{{ .Content }}}}{s_u}"
    return (head + '{{ range $i, $m := .Messages }}{{ $last := eq (len (slice $.Messages $i)) 1 }}' + system +
            f'{{{{ if eq .Role "user" }}}}{user}{{{{ if $last }}}}{p_a}{{{{ end }}}}'
            f'{{{{ else if eq .Role "assistant" }}}}{p_a}{{{{ .Content }}}}{{{{ if not $last }}}}{s_a}{{{{ end }}}}'
            "{{ end }}" + ("{{ end }}" if system else "") + "{{ end }}")


def modelfile_text(gguf_name: str, tok, template: str) -> str:
    affixes = chat_affixes(tok, template)
    lines = ["# ollama create NAME -f {this file}; written by luyen export", f"FROM ./{gguf_name}"]
    stops = []
    if affixes is not None and not any('"""' in s or "{{" in s for pair in (affixes["user"], affixes["assistant"])
                                       for s in pair):
        lines.append(f'TEMPLATE """{ollama_template(affixes)}"""')
        stops.append(affixes["assistant"][1].strip())
    else:
        lines.append("# the chat template is not a plain sequence of turns: Ollama reads the one inside the GGUF")
    stops.append(tok.eos_token or "")
    for stop in dict.fromkeys(s for s in stops if s):
        lines.append(f'PARAMETER stop "{stop}"')
    return "\n".join(lines) + "\n"


def write_modelfiles(merged_dir: Path, out_dir: Path, gguf_names: list[str]) -> list[str]:
    """``Modelfile`` for the first file, ``Modelfile.<quant>`` for the others; returns their names."""
    from transformers import AutoTokenizer

    from luyen.data.template import resolve_chat_template
    from luyen.manifest import atomic_write
    tok = AutoTokenizer.from_pretrained(merged_dir)
    template = resolve_chat_template(tok)
    names = []
    for i, gguf_name in enumerate(gguf_names):
        name = "Modelfile" if i == 0 else f"Modelfile.{gguf_name.removeprefix('model-').removesuffix('.gguf')}"
        atomic_write(out_dir / name, modelfile_text(gguf_name, tok, template))
        names.append(name)
    return names
