"""A conversation in the terminal (`luyen chat`): history, the model's chat template, optional retrieval.

    Session(engine, cfg, index=load_index("runs/rag")).loop()    # reads input(), prints answers

The history is re-sent whole each turn (the template renders it); the oldest exchanges are dropped
when it would not fit the model's context. With an index, each question is grounded by
`luyen.rag.ground` (the grounding eval, generate and serve use), the history keeps the questions as
asked, not the passages, and the passages the answer cites are listed (all it was given when it
cites none: small models often do not).
"""
from __future__ import annotations

from rich.console import Console

from luyen.config import GenerateConfig


def show_sources(console, answer: str, hits) -> None:
    """The cited passages one per line; when the answer cites none, the passages it was given."""
    from luyen.infer.requests import sources
    cited = sources(answer, hits)
    for c in cited:
        console.print(f"[{c['n']}] {c['label']}", markup=False, style="dim")
    if not cited and hits:
        from luyen.rag import given
        listed = ", ".join(f"[{c['n']}] {c['label']}" for c in given(hits))
        console.print(f"sources (none cited): {listed}", markup=False, style="dim")


class Session:
    PROMPT = "you> "

    def __init__(self, engine, cfg: GenerateConfig, index=None, template: str | None = None):
        self.engine, self.cfg, self.index, self.template = engine, engine.settings(cfg), index, template
        self.opening = [{"role": "system", "content": cfg.system}] if cfg.system else []
        self.history = list(self.opening)
        self.out = Console(highlight=False)
        from luyen.models.shape import config_shape
        self.context = config_shape(engine.model.config)["context"]

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
        from luyen.rag import ground
        self.history.append({"role": "user", "content": text})
        self.fit()
        messages, hits = ground(self.index, self.history, self.template) if self.index else (self.history, [])
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
