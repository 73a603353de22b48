"""`luyen generate` and `luyen chat`: the shared generation engine from the terminal.

    luyen generate --model runs/demo/train --prompt "Học máy là gì?" --max-new-tokens 64
    luyen generate --model runs/demo/train --input prompts.jsonl --output answers.jsonl
    luyen chat runs/demo/train --system "Trả lời ngắn gọn."
    luyen chat runs/demo/train --rag runs/rag         # answers grounded in an index, with sources

Both load the model through ``Engine.load`` (the one engine evaluation and the server use). A prompt
goes through the model's chat template (``--chat``) when the model has one of its own, as every
`luyen train` output does, and is continued as plain text (``--no-chat``) otherwise, as a base model
expects; either can be forced. With ``--rag INDEX`` each question is answered over the index's best
passages (``luyen.rag.augment``), always through the chat template, and the passages the answer
cites are listed (all passages it was given when it cites none); the chat history keeps the
questions as asked, not the passages.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from pydantic import ValidationError
from rich.console import Console
from typing_extensions import Annotated

from luyen.config import GenerateConfig
from luyen.errors import LuyenError, friendly

ROLES = ("system", "user", "assistant")
err = Console(stderr=True, highlight=False)


def _help(name: str) -> str:
    return GenerateConfig.model_fields[name].description


# Generation options shared by both commands; unset ones keep --config's generate section or the defaults.
Temperature = Annotated[Optional[float], typer.Option("--temperature", "-t", help=_help("temperature"))]
TopP = Annotated[Optional[float], typer.Option("--top-p", help=_help("top_p"))]
TopK = Annotated[Optional[int], typer.Option("--top-k", help=_help("top_k"))]
MaxNew = Annotated[Optional[int], typer.Option("--max-new-tokens", "-n", help=_help("max_new_tokens"))]
RepPenalty = Annotated[Optional[float], typer.Option("--repetition-penalty", help=_help("repetition_penalty"))]
NoRepeat = Annotated[Optional[int], typer.Option("--no-repeat-ngram-size", help=_help("no_repeat_ngram_size"))]
Seed = Annotated[Optional[int], typer.Option("--seed", help=_help("seed"))]
Stop = Annotated[Optional[List[str]], typer.Option("--stop", help=_help("stop") + " Repeat for several.")]
BatchSize = Annotated[Optional[int], typer.Option("--batch-size", help=_help("batch_size"))]
ConfigFile = Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config whose generate: section "
                                                                           "sets the defaults.")]
System = Annotated[Optional[str], typer.Option("--system", "-s", help="System message that opens every chat.")]
Rag = Annotated[Optional[Path], typer.Option("--rag", help="Retrieval index (`luyen rag index DOCS --out INDEX`): "
                                             "answer over its best passages and list the ones cited.")]


def generate_config(config: Path | None, **given) -> GenerateConfig:
    """The config file's generate section (or the defaults) with the options the user gave on top."""
    from luyen.config import load_config
    base = load_config(config).generate if config else GenerateConfig()
    values = {**base.model_dump(), **{k: v for k, v in given.items() if v is not None}}
    try:
        return GenerateConfig.model_validate(values)
    except ValidationError as e:
        first = e.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else None
        raise LuyenError(first["msg"], field=name and f"--{name.replace('_', '-')}",
                         fix="see `luyen generate --help` for valid values") from None


def load_engine(model: str):
    from luyen.cli import _quiet
    from luyen.infer.engine import Engine
    _quiet()
    with err.status(f"loading {model}"):
        return Engine.load(model)


def as_messages(prompt: str, system: str | None) -> list[dict]:
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]


def open_index(path: Path | None):
    if path is None:
        return None
    try:
        from luyen.rag import load_index
    except ImportError:
        raise LuyenError("retrieval needs the rag extra", field="--rag", fix="pip install 'luyen[rag]'") from None
    return load_index(path)


def ground(index, messages: list[dict]) -> tuple[list[dict], list]:
    """The chat with its last user turn asking over the index's best passages, and those passages."""
    from luyen.rag import augment
    question = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    hits = index.search(question)
    return augment(messages, hits, index.settings.get("template")), hits


def sources(answer: str, hits) -> list[dict]:
    """The passages the answer cites as [n]."""
    from luyen.rag import cite
    return [{k: c[k] for k in ("n", "label", "source", "position")} for c in cite(answer, hits)]


def show_sources(console, answer: str, hits) -> None:
    """The cited passages one per line; when the answer cites none (small models often do not), the
    passages it was given, so the reader can still check where it came from."""
    cited = sources(answer, hits)
    for c in cited:
        console.print(f"[{c['n']}] {c['label']}", markup=False, style="dim")
    if not cited and hits:
        from luyen.rag import given
        listed = ", ".join(f"[{c['n']}] {c['label']}" for c in given(hits))
        console.print(f"sources (none cited): {listed}", markup=False, style="dim")


@friendly
def generate(
    model: str = typer.Option("gemma3-270m", "--model", "-m", help="A `luyen train` run, a model folder, a .gguf, a preset or a hub id."),
    prompt: Optional[str] = typer.Option(None, "--prompt", "-p", help="Text to answer or continue; the answer goes to stdout."),
    input: Optional[Path] = typer.Option(None, "--input", "-i", help='JSONL of {"prompt": ...} or {"messages": [...]} lines, optional "id".'),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="JSONL written with id, text, tokens, finish_reason (and with --rag the passages cited and given) per input line."),
    chat: Optional[bool] = typer.Option(None, "--chat/--no-chat", help="Wrap prompts in the chat template (default: when the model has its own template)."),
    system: System = None, rag: Rag = None, config: ConfigFile = None, temperature: Temperature = None,
    top_p: TopP = None, top_k: TopK = None, max_new_tokens: MaxNew = None, repetition_penalty: RepPenalty = None,
    no_repeat_ngram_size: NoRepeat = None, seed: Seed = None, stop: Stop = None, batch_size: BatchSize = None,
):
    """Generate from one prompt (--prompt) or a JSONL file of prompts and chats (--input/--output), batched."""
    if (prompt is None) == (input is None):
        raise LuyenError("give either --prompt TEXT or --input FILE.jsonl", fix="e.g. luyen generate --prompt 'Học máy là gì?'")
    if input is not None and output is None:
        raise LuyenError("--input needs --output for the answers", fix="add --output answers.jsonl")
    if input is not None and output.resolve() == input.resolve():
        raise LuyenError("--output would overwrite the input file", file=str(output), fix="write the answers to another file")
    if rag is not None and chat is False:
        raise LuyenError("--rag answers through the chat template", field="--no-chat", fix="leave out --no-chat")
    cfg = generate_config(config, temperature=temperature, top_p=top_p, top_k=top_k, max_new_tokens=max_new_tokens,
                          repetition_penalty=repetition_penalty, no_repeat_ngram_size=no_repeat_ngram_size,
                          seed=seed, stop=stop or None, batch_size=batch_size)
    requests = read_requests(input) if input is not None else None
    index = open_index(rag)
    engine = load_engine(model)
    templated = index is not None or (bool(engine.tok.chat_template) if chat is None else chat)
    if system and not templated:
        raise LuyenError("--system needs the chat template, and this model continues plain text", field="--system",
                         fix="add --chat, or leave out --system")
    if requests is None:
        messages, hits = ground(index, as_messages(prompt, system)) if index else (as_messages(prompt, system), [])
        done = engine.chat(messages, cfg) if templated else engine.generate(prompt, cfg)
        typer.echo(done.text)
        show_sources(err, done.text, hits)
        err.print(f"[dim]{done.completion_tokens} tokens, {done.finish_reason}, {done.seconds:.1f} s[/dim]")
        return
    results = run_requests(engine, requests, cfg, templated, system, index)
    from luyen.manifest import atomic_write
    atomic_write(output, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in results))
    tokens = sum(r["tokens"] for r in results)
    err.print(f"wrote {len(results)} answers ({tokens} tokens) to {output}")


def read_requests(path: Path) -> list[dict]:
    """Every line checked before the model loads: {"prompt": str} or {"messages": [{role, content}]}, optional id."""
    if not path.is_file():
        raise LuyenError("no such file", file=str(path), fix="pass a JSONL file of prompts")
    requests = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                requests.append(parse_request(line, str(path), n))
    if not requests:
        raise LuyenError("no prompts in this file", file=str(path), fix='write one {"prompt": "..."} per line')
    return requests


def parse_request(line: str, file: str, n: int) -> dict:
    fix = 'write {"prompt": "text"} or {"messages": [{"role": "user", "content": "text"}]}'
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise LuyenError(f"not valid JSON ({e.msg} at column {e.colno})", file=file, line=n, fix=fix) from None
    if not isinstance(obj, dict) or ("prompt" in obj) == ("messages" in obj):
        raise LuyenError("each line needs exactly one of 'prompt' or 'messages'", file=file, line=n, fix=fix)
    if "prompt" in obj and not (isinstance(obj["prompt"], str) and obj["prompt"].strip()):
        raise LuyenError("the prompt must be non-empty text", file=file, line=n, field="prompt", fix=fix)
    if "messages" in obj:
        msgs = obj["messages"]
        bad = not isinstance(msgs, list) or not msgs or any(
            not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str) for m in msgs)
        if bad:
            raise LuyenError(f"messages must be a non-empty list of {{role, content}} with role one of {ROLES}",
                             file=file, line=n, field="messages", fix=fix)
    return {"id": obj.get("id", n), **{k: obj[k] for k in ("prompt", "messages") if k in obj}}


def run_requests(engine, requests: list[dict], cfg: GenerateConfig, templated: bool, system: str | None,
                 index=None) -> list[dict]:
    """Chats and plain prompts generated in batches of similar length; results in input order."""
    from rich.progress import Progress
    chats = [i for i, r in enumerate(requests) if "messages" in r or templated]
    plain = sorted(set(range(len(requests))) - set(chats))
    out: list[dict | None] = [None] * len(requests)
    with Progress(console=err, transient=True) as bar:
        task = bar.add_task("generating", total=len(requests))
        for group, is_chat in ((chats, True), (plain, False)):
            inputs = {i: (requests[i].get("messages") or as_messages(requests[i]["prompt"], system)) if is_chat
                      else requests[i]["prompt"] for i in group}
            hits = {}
            for i in group if index is not None else []:
                inputs[i], hits[i] = ground(index, inputs[i])
            order = sorted(group, key=lambda i: len(json.dumps(inputs[i], ensure_ascii=False)))  # less padding
            for start in range(0, len(order), cfg.batch_size):
                chunk = order[start:start + cfg.batch_size]
                batch = [inputs[i] for i in chunk]
                done = engine.chat(batch, cfg) if is_chat else engine.generate(batch, cfg)
                for i, c in zip(chunk, done):
                    out[i] = {"id": requests[i]["id"], "text": c.text, "tokens": c.completion_tokens,
                              "prompt_tokens": c.prompt_tokens, "finish_reason": c.finish_reason}
                    if index is not None:
                        from luyen.rag import given
                        out[i]["sources"], out[i]["retrieved"] = sources(c.text, hits[i]), given(hits[i])
                bar.advance(task, len(chunk))
    return out


@friendly
def chat(
    model: str = typer.Argument("gemma3-270m", help="A `luyen train` run, a model folder, a .gguf, a preset or a hub id."),
    system: System = None, rag: Rag = None, config: ConfigFile = None, temperature: Temperature = None,
    top_p: TopP = None, top_k: TopK = None, max_new_tokens: MaxNew = None, repetition_penalty: RepPenalty = None,
    no_repeat_ngram_size: NoRepeat = None, seed: Seed = None, stop: Stop = None,
):
    """Chat in the terminal with history and the model's chat template: /reset forgets, /exit or Ctrl-D quits."""
    cfg = generate_config(config, temperature=temperature, top_p=top_p, top_k=top_k, max_new_tokens=max_new_tokens,
                          repetition_penalty=repetition_penalty, no_repeat_ngram_size=no_repeat_ngram_size,
                          seed=seed, stop=stop or None)
    index = open_index(rag)
    engine = load_engine(model)
    if index is not None:
        with err.status("loading the retrieval encoder"):
            index.search("warm-up")  # loads the sentence encoder now, not in the middle of the first answer
    try:
        import readline  # noqa: F401  (arrow keys and line history in input())
    except ImportError:
        pass
    Session(engine, cfg, system, index).loop()


class Session:
    """One terminal conversation. The history is re-sent whole each turn (the template renders it);
    the oldest exchanges are dropped when it would not fit the model's context."""

    PROMPT = "you> "

    def __init__(self, engine, cfg: GenerateConfig, system: str | None, index=None):
        self.engine, self.cfg, self.index = engine, engine.settings(cfg), index
        self.opening = [{"role": "system", "content": system}] if system else []
        self.history = list(self.opening)
        self.out = Console(highlight=False)
        self.context = getattr(engine.model.config, "max_position_embeddings", None)

    def loop(self) -> None:
        self.out.print("[dim]/reset forgets the conversation, /exit or Ctrl-D quits[/dim]")
        while True:
            try:
                line = input(self.PROMPT).strip()
            except EOFError:
                self.out.print()
                return
            except KeyboardInterrupt:  # Ctrl-C at the prompt clears the line, as in a shell
                self.out.print()
                continue
            if line in ("/exit", "/quit"):
                return
            if line == "/reset":
                self.history = list(self.opening)
                self.out.print("[dim](conversation cleared)[/dim]")
            elif line.startswith("/"):
                self.out.print("[dim]commands: /reset, /exit[/dim]")
            elif line:
                self.turn(line)

    def turn(self, text: str) -> None:
        self.history.append({"role": "user", "content": text})
        self.fit()
        messages, hits = ground(self.index, self.history) if self.index else (self.history, [])
        try:
            reply = self.engine.chat(messages, self.cfg)
        except KeyboardInterrupt:  # Ctrl-C while generating cancels this turn only
            self.history.pop()
            self.out.print("[dim](cancelled)[/dim]")
            return
        self.history.append({"role": "assistant", "content": reply.text})
        self.out.print(reply.text, markup=False)
        show_sources(self.out, reply.text, hits)
        if reply.finish_reason == "length":
            self.out.print(f"[dim](cut at {reply.completion_tokens} tokens; raise --max-new-tokens)[/dim]")

    def fit(self) -> None:
        if not self.context:
            return
        budget = self.context - self.cfg.max_new_tokens
        while len(self.history) > len(self.opening) + 1 and self.tokens() > budget:
            del self.history[len(self.opening):len(self.opening) + 2]  # the oldest user + assistant turns
            self.out.print("[dim](oldest exchange dropped to fit the model's context)[/dim]")

    def tokens(self) -> int:
        return len(self.engine.tok(self.engine.render(self.history), add_special_tokens=False)["input_ids"])
