"""Read a team's data files into rows, streaming, with a position for every row.

    for row in read_rows(expand_paths(["data/"]), max_record_bytes=1_000_000):
        row.file, row.line, row.obj   # "qa.jsonl", 17, {"question": ..., "answer": ...}

Supported: .jsonl, .json (a list, or an object holding the records), .csv, .tsv, .parquet, .txt
(one paragraph per row), each also gzip-compressed (.gz) except parquet. UTF-8 with or without BOM
and UTF-16/32 with BOM are read; any other encoding is detected and refused with the iconv command
that converts it, because guessing a legacy Vietnamese encoding silently garbles the text.
"""
from __future__ import annotations

import codecs
import csv
import glob
import gzip
import io
import json
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import orjson

from luyen.errors import LuyenError

SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".parquet", ".txt")
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
_RECORD_KEYS = ("data", "records", "examples", "rows", "items", "train")
csv.field_size_limit(sys.maxsize)


@dataclass(slots=True)
class Row:
    file: str
    line: int | None  # 1-based line (jsonl/csv/txt) or row number (parquet); None inside a .json document
    obj: Any
    where: str = ""   # extra position inside a .json document, e.g. "[17]"


def data_suffix(path: Path) -> str:
    name = path.name.lower()
    name = name[:-3] if name.endswith(".gz") else name
    return next((s for s in SUFFIXES if name.endswith(s)), "")


def expand_paths(specs: list[str | Path]) -> list[Path]:
    """Files, globs and folders (searched recursively) -> a sorted, de-duplicated list of data files."""
    if not specs:
        raise LuyenError("no input given", fix="pass a data file, a glob or a folder")
    found: list[Path] = []
    for spec in map(str, specs):
        if any(c in spec for c in "*?["):
            matches = [Path(p) for p in sorted(glob.glob(spec, recursive=True)) if Path(p).is_file()]
            if not matches:
                raise LuyenError("the glob matches no file", file=spec, fix="check the pattern (quote it in the shell)")
            found += matches
        elif Path(spec).is_dir():
            files = sorted(p for p in Path(spec).rglob("*") if p.is_file() and data_suffix(p)
                           and not any(part.startswith(".") for part in p.relative_to(spec).parts))
            if not files:
                raise LuyenError(f"folder holds no data files ({', '.join(SUFFIXES)}, optionally .gz)", file=spec)
            found += files
        elif Path(spec).is_file():
            found.append(Path(spec))
        else:
            raise LuyenError("no such file or folder", file=spec, fix="check the path")
    for path in found:
        if not data_suffix(path):
            raise LuyenError(f"unsupported file type; use one of {', '.join(SUFFIXES)} (optionally .gz)", file=str(path))
    return list(dict.fromkeys(found))


def read_rows(files: list[Path], max_record_bytes: int) -> Iterator[Row]:
    for path in files:
        reader = {".jsonl": _jsonl, ".json": _json, ".csv": _csv, ".tsv": _csv, ".parquet": _parquet,
                  ".txt": _txt}[data_suffix(path)]
        yield from _guard(path, reader(path, max_record_bytes))


def _guard(path: Path, rows: Iterator[Row]) -> Iterator[Row]:
    """Turn low-level failures of a reader into one-line errors that name the file."""
    line = 0
    try:
        for row in rows:
            line = row.line or line
            yield row
    except (EOFError, zlib.error) as e:
        raise LuyenError(f"the gzip file is truncated or corrupt after line {line} ({e})", file=str(path),
                         fix="re-create or re-download the file") from None
    except gzip.BadGzipFile:
        raise LuyenError("not a gzip file despite the .gz name", file=str(path), fix="rename or re-compress it") from None
    except UnicodeDecodeError as e:
        raise LuyenError(f"invalid UTF-8 after line {line} ({e.reason} at byte {e.start})", file=str(path),
                         fix="convert the file to UTF-8, e.g. iconv -f WINDOWS-1258 -t UTF-8") from None
    except OSError as e:
        raise LuyenError(f"cannot read: {e.strerror or e}", file=str(path)) from None


def _open_binary(path: Path) -> io.BufferedIOBase:
    raw = gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")
    return io.BufferedReader(raw) if not isinstance(raw, io.BufferedReader) else raw


def sniff_encoding(path: Path) -> str:
    """'utf-8', 'utf-8-sig', 'utf-16' or 'utf-32', else a LuyenError naming the detected encoding."""
    with _open_binary(path) as f:
        head = f.read(65536)
    if not head.strip():
        raise LuyenError("the file is empty", file=str(path), fix="remove it or add records")
    for bom, name in _BOMS:
        if head.startswith(bom):
            return name
    nul = head.find(b"\x00")
    if nul >= 0 and b"\n" in head[:nul]:  # text lines before it: a stray NUL in a text file, so name its line
        raise LuyenError("the line holds NUL bytes (binary data)", file=str(path),
                         line=head.count(b"\n", 0, nul) + 1, fix="remove the binary data from that line")
    if nul >= 0:
        raise LuyenError("this looks like a binary file (NUL bytes), not text data", file=str(path),
                         fix="pass a .jsonl/.json/.csv/.tsv/.parquet/.txt file")
    try:
        head.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as e:
        if e.start > len(head) - 4:  # a multi-byte character cut by the 64 KiB window
            return "utf-8"
        from charset_normalizer import from_bytes
        best = from_bytes(head).best()
        guess = best.encoding if best else "unknown"
        raise LuyenError(f"not UTF-8 (byte {e.start} is invalid; looks like {guess})", file=str(path),
                         fix=f"convert it: iconv -f {guess.upper().replace('_', '-')} -t UTF-8 IN > OUT") from None


def _text_lines(path: Path) -> Iterator[tuple[int, str]]:
    encoding = sniff_encoding(path)
    with io.TextIOWrapper(_open_binary(path), encoding=encoding, errors="strict", newline="") as f:
        for n, text in enumerate(f, 1):
            yield n, text


def _check_size(path: Path, n: int | None, size: int, limit: int) -> None:
    if size > limit:
        raise LuyenError(f"record is {size / 1e6:.1f} MB, over data.max_record_bytes={limit}", file=str(path),
                         line=n, fix="split the record or raise data.max_record_bytes")


def _jsonl(path: Path, limit: int) -> Iterator[Row]:
    encoding = sniff_encoding(path)
    if encoding != "utf-8" and encoding != "utf-8-sig":
        for n, text in _text_lines(path):
            if text.strip():
                try:
                    yield Row(str(path), n, _loads(path, n, text.encode("utf-8", "surrogatepass")))
                except LuyenError as e:
                    yield Row(str(path), n, e)
        return
    with _open_binary(path) as f:
        yield from jsonl_rows(path, enumerate(f, 1), limit)


def jsonl_rows(path: Path, lines: Iterable[tuple[int, bytes]], limit: int) -> Iterator[Row]:
    """Rows of numbered raw lines (each with its newline) of a UTF-8 .jsonl file, as `read_rows`
    yields them; the data stage's worker processes parse blocks of lines with this."""
    name = str(path)
    for n, line in lines:
        if n == 1 and line.startswith(codecs.BOM_UTF8):
            line = line[3:]
        if not line.strip():
            continue
        try:
            if len(line) > limit:
                _check_size(path, n, len(line), limit)
            yield Row(name, n, _loads(path, n, line))
        except LuyenError as e:  # one bad line: the pipeline fails or skips it, per data.on_error
            yield Row(name, n, e)


def jsonl_blocks(path: Path, size: int = 1 << 20) -> Iterator[tuple[int, bytes]]:
    """(number of its first line, block) for consecutive blocks of whole lines of an uncompressed
    .jsonl file, about `size` bytes each; read errors name the file as `read_rows` does."""
    first = 1
    try:
        with open(path, "rb") as f:
            while block := f.read(size):
                if not block.endswith(b"\n"):
                    block += f.readline()
                yield first, block
                first += block.count(b"\n")
    except OSError as e:
        raise LuyenError(f"cannot read: {e.strerror or e}", file=str(path)) from None


def _loads(path: Path, n: int | None, data: bytes) -> Any:
    if b"\x00" in data:
        raise LuyenError("the line holds NUL bytes (binary data)", file=str(path), line=n, fix="remove binary data")
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as e:
        msg = str(e).split(":", 1)[0]
        if "surrogate" in str(e) or "UTF-8" in str(e):
            msg = "text is not valid UTF-8 (lone surrogate or broken byte sequence)"
        elif "recursion" in str(e):
            msg = "JSON nested too deeply"
        raise LuyenError(f"not valid JSON: {msg}", file=str(path), line=n,
                         fix="one JSON object per line; check quotes, commas and brackets") from None


def _json(path: Path, limit: int) -> Iterator[Row]:
    encoding = sniff_encoding(path)
    with _open_binary(path) as f:
        data = f.read()
    text = data.decode(encoding)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise LuyenError(f"not valid JSON: {e.msg}", file=str(path), line=e.lineno, fix="fix the JSON syntax") from None
    except RecursionError:
        raise LuyenError("JSON nested too deeply", file=str(path), fix="flatten the records") from None
    items, key = _records_of(doc)
    if items is None:
        raise LuyenError("a .json file must hold a list of records or an object with one (e.g. {\"data\": [...]})",
                         file=str(path), fix="wrap the records in a list, or use .jsonl")
    for i, item in enumerate(items):
        yield Row(str(path), None, item, where=f"{key}[{i}]")


def _records_of(doc: Any) -> tuple[list | None, str]:
    if isinstance(doc, list):
        return doc, ""
    if isinstance(doc, dict):
        for key in _RECORD_KEYS:
            if isinstance(doc.get(key), list):
                return doc[key], key
        lists = [k for k, v in doc.items() if isinstance(v, list) and v and isinstance(v[0], dict)]
        if len(lists) == 1:
            return doc[lists[0]], lists[0]
        return [doc], ""  # a single record
    return None, ""


def _csv(path: Path, limit: int) -> Iterator[Row]:
    delimiter = "\t" if data_suffix(path) == ".tsv" else ","
    encoding = sniff_encoding(path)
    with io.TextIOWrapper(_open_binary(path), encoding=encoding, errors="strict", newline="") as f:
        reader = csv.reader(f, delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            raise LuyenError("the file is empty", file=str(path)) from None
        header = [h.strip() for h in header]
        if len(set(header)) != len(header) or not all(header):
            raise LuyenError(f"header has empty or repeated column names: {header}", file=str(path), line=1,
                             fix="give every column a unique name")
        start = reader.line_num + 1
        try:
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    start = reader.line_num + 1
                    continue
                try:
                    yield Row(str(path), start, _csv_record(path, start, header, row, delimiter, limit))
                except LuyenError as e:
                    yield Row(str(path), start, e)
                start = reader.line_num + 1
        except csv.Error as e:
            raise LuyenError(f"malformed CSV ({e})", file=str(path), line=reader.line_num,
                             fix="check quoting on this line") from None


def _csv_record(path: Path, n: int, header: list[str], row: list[str], delimiter: str, limit: int) -> dict:
    if len(row) != len(header):
        raise LuyenError(f"row has {len(row)} fields but the header has {len(header)}", file=str(path), line=n,
                         fix=f"quote fields that contain '{delimiter}' or newlines")
    if "\x00" in "".join(row):
        raise LuyenError("the row holds NUL bytes (binary data)", file=str(path), line=n, fix="remove binary data")
    _check_size(path, n, sum(map(len, row)), limit)
    return dict(zip(header, row))


def _parquet(path: Path, limit: int) -> Iterator[Row]:
    import pyarrow as pa
    import pyarrow.parquet as pq
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise LuyenError(f"not a readable parquet file ({str(e).splitlines()[0]})", file=str(path)) from None
    n = 0
    for batch in pf.iter_batches(batch_size=8192):
        for rec in batch.to_pylist():
            n += 1
            yield Row(str(path), n, rec)
    if n == 0:
        raise LuyenError("the file has no rows", file=str(path))


def _txt(path: Path, limit: int) -> Iterator[Row]:
    """Raw text: one record per paragraph (blank-line separated), for pretraining."""
    para: list[str] = []
    first = 0
    for n, line in _text_lines(path):
        if line.strip():
            para.append(line.rstrip("\r\n"))
            first = first or n
            continue
        if para:
            yield _paragraph(path, first, para, limit)
            para, first = [], 0
    if para:
        yield _paragraph(path, first, para, limit)


def _paragraph(path: Path, first: int, lines: list[str], limit: int) -> Row:
    text = "\n".join(lines)
    try:
        _check_size(path, first, len(text), limit)
    except LuyenError as e:
        return Row(str(path), first, e)
    return Row(str(path), first, {"text": text})
