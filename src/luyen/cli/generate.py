"""`luyen generate` and `luyen chat`: the shared generation engine from the terminal.

    luyen generate --model runs/demo/train --prompt "Học máy là gì?" --max-new-tokens 64
    luyen generate --model runs/demo/train --input prompts.jsonl --out answers.jsonl
    luyen chat runs/demo/train --system "Trả lời ngắn gọn."
    luyen chat runs/demo/train --rag runs/rag         # answers grounded in an index, with sources

Both load the model through ``Engine.load`` (the one engine evaluation and the server use). A prompt
goes through the model's chat template (``--chat``) when the model has one of its own, as every
`luyen train` output does, and is continued as plain text (``--no-chat``) otherwise, as a base model
expects; either can be forced. With ``--rag INDEX`` each question is answered over the index's best
passages (``luyen.rag.ground``), always through the chat template. The batching lives in
``luyen.infer.requests``, the terminal conversation in ``luyen.infer.session``.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from typing_extensions import Annotated

import luyen.cli.common as common
from luyen.cli.common import err, quiet, settings
from luyen.config import GenerateConfig
from luyen.errors import LuyenError, friendly


def _help(name: str) -> str:
    return f"generate.{name}: {GenerateConfig.model_fields[name].description}"


Words = Annotated[Optional[List[str]], typer.Argument(help="[CONFIG.yaml] [key=value ...] [MODEL].")]
Model = common.model_option("a `luyen train` run, a model folder, a .gguf, a preset or a hub id.")
Temperature = Annotated[Optional[float], typer.Option("--temperature", "-t", help=_help("temperature"))]
TopP = Annotated[Optional[float], typer.Option("--top-p", help=_help("top_p"))]
TopK = Annotated[Optional[int], typer.Option("--top-k", help=_help("top_k"))]
MaxNew = Annotated[Optional[int], typer.Option("--max-new-tokens", "-n", help=_help("max_new_tokens"))]
RepPenalty = Annotated[Optional[float], typer.Option("--repetition-penalty", help=_help("repetition_penalty"))]
NoRepeat = Annotated[Optional[int], typer.Option("--no-repeat-ngram-size", help=_help("no_repeat_ngram_size"))]
Seed = Annotated[Optional[int], typer.Option("--seed", help=_help("seed"))]
Stop = Annotated[Optional[List[str]], typer.Option("--stop", help=_help("stop") + " Repeat for several.")]
BatchSize = Annotated[Optional[int], typer.Option("--batch-size", help=_help("batch_size"))]
System = Annotated[Optional[str], typer.Option("--system", "-s", help=_help("system"))]
Runtime = Annotated[Optional[str], typer.Option("--runtime", help=_help("runtime"))]
Rag = Annotated[Optional[str], typer.Option("--rag", help="rag.index: a retrieval index (`luyen rag index DOCS --out INDEX`); "
                                            "answer over its best passages and list the ones cited.")]


def _flags(**given) -> dict:
    return {f"generate.{name}": value for name, value in given.items()}


def load_engine(model: str, runtime: str = "auto"):
    """The engine over ``model``; says what runs it (generate.runtime: llama.cpp or transformers, and why)."""
    from luyen.infer.engine import Engine
    quiet()
    with err.status(f"loading {model}") as status:
        engine = Engine.load(model, runtime=runtime, say=lambda line: status.update(line))
    err.print(f"runtime: {engine.runtime}", style="dim", markup=False)
    return engine


def open_index(path: str | None):
    if path is None:
        return None
    try:
        from luyen.rag import load_index
    except ImportError:
        raise LuyenError("retrieval needs the rag extra", field="rag.index", fix="pip install 'luyen[rag]'") from None
    return load_index(path)


@friendly
def generate(
    words: Words = None, model: Model = None,
    prompt: Optional[str] = typer.Option(None, "--prompt", "-p", help=_help("prompt")),
    input: Optional[str] = typer.Option(None, "--input", "-i", help=_help("input") + ' Lines may carry an "id".'),
    out: common.out_option("the JSONL written with id, text, tokens, finish_reason (and with --rag the passages cited and given) per input line.", "--output") = None,
    chat: Optional[bool] = typer.Option(None, "--chat/--no-chat", help=_help("chat")),
    system: System = None, rag: Rag = None, temperature: Temperature = None,
    top_p: TopP = None, top_k: TopK = None, max_new_tokens: MaxNew = None, repetition_penalty: RepPenalty = None,
    no_repeat_ngram_size: NoRepeat = None, seed: Seed = None, stop: Stop = None, batch_size: BatchSize = None,
    runtime: Runtime = None,
):
    """Generate from one prompt (--prompt) or a JSONL file of prompts and chats (--input/--out), batched."""
    from luyen.infer.requests import (answer, answer_one, chat_templated, check_options, read_requests,
                                      write_answers)
    from luyen.infer.session import show_sources
    flags = _flags(prompt=prompt, input=input, system=system, temperature=temperature, top_p=top_p, top_k=top_k,
                   max_new_tokens=max_new_tokens, repetition_penalty=repetition_penalty,
                   no_repeat_ngram_size=no_repeat_ngram_size, seed=seed, stop=stop, batch_size=batch_size, runtime=runtime)
    cfg, _ = settings(words, {**flags, "generate.chat": chat, "rag.index": rag, "out": out, "model.name": model},
                      rest="model.name")
    name, g = cfg.model.name, cfg.generate
    if chat is False:
        g = g.model_copy(update={"chat": False})  # --no-chat is a choice, not "not given"
    check_options(g, cfg.out, cfg.rag.index)
    requests = read_requests(Path(g.input)) if g.input is not None else None
    index = open_index(cfg.rag.index)
    engine = load_engine(name, g.runtime)
    templated = chat_templated(engine, g, index)
    if requests is None:
        done, hits = answer_one(engine, g, templated, index, cfg.rag.template)
        typer.echo(done.text)
        show_sources(err, done.text, hits)
        err.print(f"[dim]{done.completion_tokens} tokens, {done.finish_reason}, {done.seconds:.1f} s[/dim]")
        return
    from rich.progress import Progress
    with Progress(console=err, transient=True) as bar:
        task = bar.add_task("generating", total=len(requests))
        results = answer(engine, requests, g, templated, index, cfg.rag.template, lambda n: bar.advance(task, n))
    write_answers(Path(cfg.out), results)
    err.print(f"wrote {len(results)} answers ({sum(r['tokens'] for r in results)} tokens) to {cfg.out}")


@friendly
def chat(
    words: Words = None, model: Model = None,
    system: System = None, rag: Rag = None, temperature: Temperature = None,
    top_p: TopP = None, top_k: TopK = None, max_new_tokens: MaxNew = None, repetition_penalty: RepPenalty = None,
    no_repeat_ngram_size: NoRepeat = None, seed: Seed = None, stop: Stop = None, runtime: Runtime = None,
):
    """Chat in the terminal with history and the model's chat template: /reset forgets, /exit or Ctrl-D quits."""
    from luyen.infer.session import Session
    flags = _flags(system=system, temperature=temperature, top_p=top_p, top_k=top_k, max_new_tokens=max_new_tokens,
                   repetition_penalty=repetition_penalty, no_repeat_ngram_size=no_repeat_ngram_size, seed=seed, stop=stop,
                   runtime=runtime)
    cfg, _ = settings(words, {**flags, "rag.index": rag, "model.name": model}, rest="model.name")
    name = cfg.model.name
    index = open_index(cfg.rag.index)
    engine = load_engine(name, cfg.generate.runtime)
    if index is not None:
        with err.status("loading the retrieval encoder"):
            index.search("warm-up")  # loads the sentence encoder now, not in the middle of the first answer
    try:
        import readline  # noqa: F401  (arrow keys and line history in input())
    except ImportError:
        pass
    Session(engine, cfg.generate, index, cfg.rag.template).loop()
