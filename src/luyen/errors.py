"""One error type for everything a user can fix.

A LuyenError renders as one line: where (file:line), which field, what is wrong and how to fix it.
The CLI prints that line and exits 2; it never shows a traceback for these.
"""
from __future__ import annotations


class LuyenError(Exception):
    """A problem the user can fix, e.g. ``LuyenError("no 'answer'", file="qa.jsonl", line=3,
    field="answer", fix="add an answer or set data.on_error=skip")``."""

    exit_code = 2

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 field: str | None = None, fix: str | None = None):
        self.message, self.file, self.line, self.field, self.fix = message, file, line, field, fix
        super().__init__(self.render())

    def render(self) -> str:
        where = ""
        if self.file:
            where = f"{self.file}:{self.line}: " if self.line else f"{self.file}: "
        field = f"field '{self.field}': " if self.field else ""
        fix = f" Fix: {self.fix}" if self.fix else ""
        text = f"{where}{field}{self.message}.{fix}".replace("..", ".")
        return " ".join(text.split())  # always one line, whatever the message held


def friendly(fn):
    """CLI commands: a LuyenError ends in one red line and exit code 2, Ctrl-C in 130; never a traceback."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import typer
        from rich.console import Console
        try:
            return fn(*args, **kwargs)
        except LuyenError as e:
            Console(stderr=True).print(f"[red]error:[/red] {e.render()}", highlight=False, soft_wrap=True)
            raise typer.Exit(e.exit_code)
        except KeyboardInterrupt:
            Console(stderr=True).print("interrupted")
            raise typer.Exit(130)
    return wrapper
