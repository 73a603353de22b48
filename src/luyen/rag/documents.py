"""Read documents for retrieval: .txt, .md, .html, .jsonl (one text field, or a chat, per line) and PDF.

    docs, skipped = read_documents(["examples/data/airline_policies/"], text_field="text")
    docs[0].source, docs[0].title, docs[0].sections[0].text   # "bong-sen-vang-club.md", ...
    skipped   # [{"file": "scan.pdf", "error": "scan.pdf: no text layer ..."}] - reported, never indexed

A document is one file; its sections are the units chunks never cross: the whole text of a .txt/.md
file, one page of a PDF, one line of a .jsonl (a line without the text field but with chat "messages",
such as `luyen data prepare`'s train.jsonl, gives its user and assistant turns). A bad file (empty,
binary, not UTF-8, an unreadable or image-only PDF, a .jsonl line with neither text nor a chat) is one
entry in `skipped`, and the rest go on.
"""
from __future__ import annotations

import glob
import json
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from luyen.data.load import sniff_encoding
from luyen.errors import LuyenError
from luyen.manifest import file_sha256

SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".jsonl", ".pdf")
_BLOCKS = ["p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "table",
           "ul", "ol", "dl", "dt", "dd", "pre", "blockquote", "header", "footer", "main", "nav", "aside", "hr"]
_MD_TITLE = re.compile(r"^\s{0,3}#\s+(.+?)\s*#*\s*$", re.MULTILINE)


@dataclass
class Section:
    text: str
    page: int | None = None   # 1-based PDF page
    line: int | None = None   # 1-based .jsonl line


@dataclass
class Document:
    source: str               # the name hits and citations show: the path relative to the folder given
    path: Path
    sha256: str
    title: str
    sections: list[Section] = field(default_factory=list)


def find_documents(specs: list[str | Path]) -> list[tuple[str, Path]]:
    """(source name, path) for files, globs and folders (searched recursively, hidden files skipped).

    Files named directly are kept whatever their type, so an unsupported one is reported, not ignored."""
    if not specs:
        raise LuyenError("no documents given", fix="pass files, globs or folders of .txt/.md/.html/.jsonl/.pdf")
    found: dict[str, Path] = {}
    for spec in map(str, specs):
        if any(c in spec for c in "*?["):
            pairs = [(Path(p).name, Path(p)) for p in sorted(glob.glob(spec, recursive=True)) if Path(p).is_file()]
        elif Path(spec).is_dir():
            root = Path(spec)
            pairs = [(p.relative_to(root).as_posix(), p) for p in sorted(root.rglob("*"))
                     if p.is_file() and p.suffix.lower() in SUFFIXES
                     and not any(part.startswith(".") for part in p.relative_to(root).parts)]
        elif Path(spec).is_file():
            pairs = [(Path(spec).name, Path(spec))]
        else:
            raise LuyenError("no such file or folder", file=spec, fix="check the path")
        if not pairs:
            raise LuyenError(f"no documents found (looked for {', '.join(SUFFIXES)})", file=spec)
        for source, path in pairs:
            if source in found and found[source].resolve() != path.resolve():
                raise LuyenError(f"two documents would both be cited as '{source}' ({found[source]} and {path})",
                                 file=str(path), fix="rename one, or index their parent folder instead")
            found[source] = path
    return list(found.items())


def read_documents(specs: list[str | Path], text_field: str = "text") -> tuple[list[Document], list[dict]]:
    """Every readable document, and one {"file", "error"} per file that was skipped."""
    docs, skipped = [], []
    for source, path in find_documents(specs):
        try:
            docs.append(read_document(path, source, text_field))
        except LuyenError as e:
            skipped.append({"file": str(path), "error": e.render()})
    return docs, skipped


def read_document(path: Path, source: str, text_field: str = "text") -> Document:
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise LuyenError(f"unsupported document type '{suffix or path.name}'", file=str(path),
                         fix=f"convert it to one of {', '.join(SUFFIXES)}")
    try:
        if suffix == ".pdf":
            title, sections = _pdf(path)
        elif suffix == ".jsonl":
            title, sections = path.stem, _jsonl(path, text_field)
        else:
            text = _text(path)
            title, sections = (_html(text) if suffix in (".html", ".htm") else (_md_title(text, path), [Section(text)]))
    except OSError as e:
        raise LuyenError(f"cannot read: {e.strerror or e}", file=str(path)) from None
    sections = [s for s in sections if s.text.strip()]
    if not sections:
        raise LuyenError("the document holds no text", file=str(path), fix="remove it or add text")
    return Document(source, path, file_sha256(path), title or path.stem, sections)


def _text(path: Path) -> str:
    """UTF-8 (BOM or not) or UTF-16/32 with a BOM; empty, binary and other encodings are refused by
    the data loader's sniffer with the iconv command that converts them."""
    encoding = sniff_encoding(path)
    try:
        text = path.read_text(encoding=encoding)
    except UnicodeDecodeError as e:  # the sniffer reads only the first 64 KiB
        raise LuyenError(f"not valid {encoding} at byte {e.start}", file=str(path),
                         fix="convert the file to UTF-8, e.g. iconv -f WINDOWS-1258 -t UTF-8 IN > OUT") from None
    return unicodedata.normalize("NFC", text.replace("\r\n", "\n"))


def _md_title(text: str, path: Path) -> str:
    m = _MD_TITLE.search(text)
    return m.group(1) if m else path.stem


def _html(markup: str) -> tuple[str, list[Section]]:
    """Visible text, one block element per line; the <title> (else the first <h1>) titles it."""
    try:
        from bs4 import BeautifulSoup
    except ImportError:
        raise LuyenError("reading HTML needs beautifulsoup4", fix="pip install 'luyen[rag]'") from None
    soup = BeautifulSoup(markup, "html.parser")
    heading = soup.title or soup.find("h1")
    title = heading.get_text(" ", strip=True) if heading else ""
    for tag in soup(["head", "script", "style", "noscript", "template"]):
        tag.decompose()
    for tag in soup.find_all(_BLOCKS):  # inline tags (<b>, <a>) must not break a sentence
        tag.insert_before("\n")
        tag.insert_after("\n")
    for tag in soup.find_all(["td", "th"]):
        tag.insert_after(" | ")
    lines = (" ".join(line.split()) for line in soup.get_text().splitlines())
    return title, [Section("\n".join(line for line in lines if line))]


def _jsonl(path: Path, text_field: str) -> list[Section]:
    sections = []
    encoding = sniff_encoding(path)
    with open(path, encoding=encoding) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise LuyenError(f"not valid JSON ({e.msg} at column {e.colno})", file=str(path), line=n,
                                 fix="fix the line, or remove it") from None
            except UnicodeDecodeError as e:
                raise LuyenError(f"not valid {encoding} ({e.reason})", file=str(path), line=n,
                                 fix="convert the file to UTF-8") from None
            text = obj.get(text_field) if isinstance(obj, dict) else None
            if text is None and isinstance(obj, dict) and text_field not in obj:
                text = _chat_text(obj.get("messages"))
            if not isinstance(text, str):
                raise LuyenError("no text", file=str(path), line=n, field=text_field,
                                 fix="give every line this field, or set rag.text_field to the field that holds the text")
            sections.append(Section(unicodedata.normalize("NFC", text), line=n))
    return sections


def _chat_text(messages) -> str | None:
    """A chat line ({"messages": [...]}, as `luyen data prepare` writes them, or OpenAI's) as its user and
    assistant turns, one paragraph each: so a prepared train.jsonl indexes as question/answer passages,
    the retrieval baseline over a team's own answers."""
    if not isinstance(messages, list) or not messages:
        return None
    turns = [m.get("content") for m in messages if isinstance(m, dict) and m.get("role") in ("user", "assistant")]
    if not turns or not all(isinstance(t, str) for t in turns):
        return None
    return "\n\n".join(t.strip() for t in turns)


def _pdf(path: Path) -> tuple[str, list[Section]]:
    try:
        from pypdf import PdfReader
    except ImportError:
        raise LuyenError("reading PDF needs pypdf", fix="pip install 'luyen[rag]'") from None
    try:  # pypdf raises many exception types on damaged files; each means "unreadable" here
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):
            raise LuyenError("the PDF is password-protected", file=str(path), fix="save an unprotected copy")
        pages = [Section(unicodedata.normalize("NFC", page.extract_text() or ""), page=i)
                 for i, page in enumerate(reader.pages, 1)]
        title = (reader.metadata.title if reader.metadata else None) or path.stem
    except LuyenError:
        raise
    except Exception as e:  # noqa: BLE001 - third-party parser on untrusted input
        raise LuyenError(f"unreadable PDF ({type(e).__name__}: {e})", file=str(path),
                         fix="re-export or repair the PDF") from None
    if not any(p.text.strip() for p in pages):
        raise LuyenError("the PDF has no text layer (a scan?)", file=str(path), fix="run OCR on it first")
    return str(title), pages
