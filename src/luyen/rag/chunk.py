"""Cut documents into passages of at most N encoder tokens, overlapping, on sentence boundaries.

    chunks = chunk_document(doc, count_tokens, chunk_tokens=200, overlap_tokens=40)
    chunks[3].text, chunks[3].source, chunks[3].position, chunks[3].start   # passage, file, 3, char offset

Tokens are the sentence encoder's (WordPiece for the shipped MiniLM): a passage longer than the
encoder's window is silently truncated when embedded, so that is the budget that must hold. Units are
sentences: every line (a heading, a list item, a table row) is a unit, and a line is split after
., !, ? or an ellipsis followed by a space and an upper-case letter (Vietnamese capitals included:
Đ, Ư, Ấ ...) or a digit, so "300.000 VND" and "v.v. và" stay whole. A passage is the run of whole
units that fits the budget; the next one starts with the previous passage's last units that fit in
`overlap_tokens`. A unit longer than the budget alone is split at spaces (a space-free run of text
longer than the budget is cut by characters).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from luyen.rag.documents import Document

CountTokens = Callable[[list[str]], list[int]]
_SENTENCE_END = re.compile(r"(?:[.!?]+|…)[\"'”’)\]]*\s+")
_OPENERS = "\"'“‘(["
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


@dataclass
class Chunk:
    source: str
    position: int              # index of the chunk in its document
    text: str
    start: int                 # character offset of the text in its section
    page: int | None = None    # PDF page
    line: int | None = None    # .jsonl line
    heading: str = ""          # title and section headings above the chunk, "Hoàn vé > Hủy miễn phí"


def split_sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) character spans of the sentences of `text`, whitespace trimmed.

        text = "Vé đã mua. Đổi vé 300.000 VND!\\n- Mục hai"
        [text[a:b] for a, b in split_sentences(text)] == ["Vé đã mua.", "Đổi vé 300.000 VND!", "- Mục hai"]
    """
    spans = []
    for line in re.finditer(r"[^\n]+", text):
        start = line.start()
        for end in _SENTENCE_END.finditer(text, line.start(), line.end()):
            nxt = text[end.end():end.end() + 1]
            if nxt and (nxt.isupper() or nxt.isdigit() or nxt in _OPENERS):
                spans.append((start, end.end()))
                start = end.end()
        spans.append((start, line.end()))
    return [_trim(text, a, b) for a, b in spans if text[a:b].strip()]


def _trim(text: str, a: int, b: int) -> tuple[int, int]:
    while text[a].isspace():
        a += 1
    while text[b - 1].isspace():
        b -= 1
    return a, b


def pack(lengths: list[int], budget: int, overlap: int, heads: list[bool] | None = None) -> list[tuple[int, int]]:
    """[i, j) unit ranges: greedy runs within `budget`, each next run starting with the previous one's
    last units that fit in `overlap` (always advancing). Units must each fit the budget; a heading
    unit (`heads`) never ends a run that has more than it, so it starts the next one with its text.

        pack([3, 3, 3, 3], budget=6, overlap=3) == [(0, 2), (1, 3), (2, 4)]
        pack([3, 1, 3], budget=5, overlap=0, heads=[False, True, False]) == [(0, 1), (1, 3)]
    """
    ranges, i, n = [], 0, len(lengths)
    heads = heads or [False] * n
    while i < n:
        j, total = i, 0
        while j < n and total + lengths[j] <= budget:
            total += lengths[j]
            j += 1
        j = max(j, i + 1)
        while j < n and j - 1 > i and heads[j - 1]:
            j -= 1
        ranges.append((i, j))
        if j >= n:
            break
        k, back = j, 0
        while k - 1 > i and back + lengths[k - 1] <= overlap:
            back += lengths[k - 1]
            k -= 1
        i = k
    return ranges


def chunk_document(doc: Document, count_tokens: CountTokens, chunk_tokens: int, overlap_tokens: int) -> list[Chunk]:
    """Passages of every section of `doc`, numbered through the document; sections are never crossed."""
    chunks: list[Chunk] = []
    for section in doc.sections:
        units = _units(section.text, count_tokens, chunk_tokens)
        headings = _headings(section.text, [a for a, _, _ in units], doc.title)
        heads = [bool(_HEADING.match(section.text[a:b])) for a, b, _ in units]
        for i, j in pack([n for _, _, n in units], chunk_tokens, overlap_tokens, heads):
            start, end = units[i][0], units[j - 1][1]
            chunks.append(Chunk(doc.source, len(chunks), section.text[start:end], start, section.page, section.line,
                                headings[i]))
    return chunks


def _units(text: str, count_tokens: CountTokens, budget: int) -> list[tuple[int, int, int]]:
    """(start, end, tokens) of every sentence, the ones over budget split at spaces, then by characters."""
    spans = split_sentences(text)
    units = []
    for (a, b), n in zip(spans, count_tokens([text[a:b] for a, b in spans])):
        if n <= budget:
            units.append((a, b, n))
            continue
        words = [(m.start(), m.end()) for m in re.finditer(r"\S+", text[a:b])]
        for (wa, wb), wn in zip(words, count_tokens([text[a + wa:a + wb] for wa, wb in words])):
            if wn <= budget:
                units.append((a + wa, a + wb, wn))
            else:  # WordPiece gives at most one token per character, so `budget` characters fit
                for c in range(a + wa, a + wb, budget):
                    piece = (c, min(c + budget, a + wb))
                    units.append((*piece, count_tokens([text[piece[0]:piece[1]]])[0]))
    return units


def _headings(text: str, starts: list[int], title: str) -> list[str]:
    """For each unit start, the Markdown heading path above it ("Title > Section"), else the title."""
    path: list[tuple[int, str]] = []
    out, heads = [], {m.start(): m for m in re.finditer(r"^#{1,6}\s+.+$", text, re.MULTILINE)}
    for start in starts:
        m = _HEADING.match(heads[start].group()) if start in heads else None
        if m:
            level = len(m.group(1))
            path = [(lvl, name) for lvl, name in path if lvl < level] + [(level, m.group(2))]
        names = [name for _, name in path]
        if not names or names[0] != title:
            names = [title] + names
        out.append(" > ".join(n for n in names if n))
    return out
