"""Text cleaning applied to every text field of every record, in place.

NFC first (so a decomposed "hòa" typed on a Mac equals the composed one), then control and
zero-width characters out, whitespace folded, and optionally one Vietnamese tone-mark style.

    clean_text("  Ho\u0300a\u200b  bi\u0300nh ") == "Hòa bình"
"""
from __future__ import annotations

import re
import unicodedata
from typing import Callable

from luyen.config import CleanConfig

# C0/C1 controls except \t \n, zero-width and bidi controls, BOM. Kept out of training text because
# they are invisible in review yet change tokenisation.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\ufffe]")
_ODD_SPACE = re.compile(r"[^\S ]")  # whitespace other than " ": one class, so `re` scans it fast
_SPACES = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n{3,}")
_LINE_EDGES = re.compile(r" ?\n ?")


def make_cleaner(cfg: CleanConfig) -> Callable[[str], str]:
    tone = None
    if cfg.vietnamese_tone != "keep":
        from luyen.data.vietnamese import normalize_tone_marks
        style = cfg.vietnamese_tone
        tone = lambda s: normalize_tone_marks(s, style)  # noqa: E731

    def clean(text: str) -> str:
        if cfg.nfc and not unicodedata.is_normalized("NFC", text):
            text = unicodedata.normalize("NFC", text)
        if cfg.strip_control and _CONTROL.search(text):
            text = _CONTROL.sub("", text)
        if cfg.fold_whitespace and _untidy(text):
            text = fold_whitespace(text.replace("\r\n", "\n").replace("\r", "\n"))
        if tone is not None:
            text = tone(text)
        return text

    return clean


def _untidy(text: str) -> bool:
    """Whether folding could change the text (most clean text: no), i.e. whether it has leading,
    trailing or doubled whitespace or any whitespace but " "; 3x faster than one regex saying so."""
    return text[:1] == " " or text[-1:] == " " or "  " in text or _ODD_SPACE.search(text) is not None


def fold_whitespace(text: str) -> str:
    if "\n" not in text:
        return " ".join(text.split())
    text = _LINE_EDGES.sub("\n", _SPACES.sub(" ", text))
    return _BLANK_LINES.sub("\n\n", text).strip()


def is_empty(rec: dict) -> bool:
    kind = rec["kind"]
    if kind == "chat":
        return any(not m["content"] for m in rec["messages"] if m["role"] != "system")
    if kind in ("text", "labelled"):
        return not rec["text"] or (kind == "labelled" and not rec["label"])
    if kind == "pair":
        return not rec["source"] or not rec["target"]
    return not rec["context"] or not rec["question"] or any(a["start"] < 0 for a in rec["answers"])
