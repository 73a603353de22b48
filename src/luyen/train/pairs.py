"""(query, passage) pairs for training a retriever on a team's own documents, none of them an eval query.

    docs, _ = read_documents(["examples/data/airline_policies/"])
    rows = passages(docs, encoder.count_tokens, chunk_tokens=200, overlap_tokens=40, window=254)
    pairs = fallback_pairs(rows) + qa_pairs(records, rows) + generated_pairs(rows, write)
    pairs, dropped = deduplicate(pairs + translated_pairs(pairs, write, limit=500))
    clean, leaks = check_leakage(pairs, read_eval_queries(["queries.jsonl"]), refuse=False)

Passages are the rows `luyen rag index` makes, holding the text it embeds (`indexed_text`: heading path,
then passage), so the encoder trains on exactly what it will index. Queries have five origins:
"heading" (the most specific heading above a passage), "first-sentence" (a passage's first sentence,
the passage kept whole), "qa" (the team's questions, the passage found by BM25 on their answer),
"generated" (a base LM's few-shot question about the passage), "translated" (English versions) and
"labelled" (the team's own labelled queries, in `luyen rag eval`'s format); "folded" copies are the
Vietnamese ones typed without tone marks.
Queries are compared folded (`fold`: no tone marks, đ as d), so "hanh ly xach tay" repeats "Hành lý
xách tay?" both for deduplication and for leakage into the eval queries.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator

from luyen.errors import LuyenError
from luyen.rag.build import check_window, indexed_text
from luyen.rag.chunk import CountTokens, chunk_document, split_sentences
from luyen.rag.documents import Document
from luyen.rag.lexical import Lexical, fold, index_terms, syllables

Write = Callable[[list[str]], list[str]]  # prompts -> continuations, one each
MIN_WORDS, MAX_WORDS = 3, 40
LEAK_THRESHOLD = 0.8
EVAL_FIELD = "train.embedding.eval_queries"
_LIST_MARK = re.compile(r"^(?:[-*+•]|\d+[.)])\s+")
# question and function syllables: sharing only these with a passage does not make a question about it
_FUNCTION = set("có không là gì nào bao nhiêu mấy được của và cho thì tôi mình bạn khi nếu thế sao như ở đâu ai "
                "cần phải đến từ với trong những các một hay hoặc này đó vậy nhé ạ".split())

QUESTION_PROMPT = """Đoạn văn: Thư viện mở cửa từ 8 giờ đến 20 giờ các ngày trong tuần, riêng Chủ nhật đóng cửa lúc 17 giờ. Bạn đọc cần xuất trình thẻ thư viện khi vào phòng đọc.
Câu hỏi: Chủ nhật thư viện đóng cửa lúc mấy giờ?

Đoạn văn: Khách hàng được đổi sản phẩm trong vòng 30 ngày kể từ ngày mua nếu sản phẩm còn nguyên tem và hóa đơn. Sản phẩm mua trong đợt giảm giá không được đổi.
Câu hỏi: hàng mua lúc giảm giá có đổi được không

Đoạn văn: Hóa đơn tiền điện được gửi qua tin nhắn vào ngày 5 hằng tháng. Khách hàng thanh toán chậm quá 15 ngày sẽ bị tạm ngừng cấp điện sau khi được thông báo.
Câu hỏi: Trả tiền điện muộn thì có bị cắt điện không?

Đoạn văn: {passage}
Câu hỏi:"""

TRANSLATE_PROMPT = """Vietnamese: Chủ nhật thư viện đóng cửa lúc mấy giờ?
English: What time does the library close on Sunday?

Vietnamese: hàng mua lúc giảm giá có đổi được không
English: can I exchange items bought on sale

Vietnamese: Trả tiền điện muộn thì có bị cắt điện không?
English: Will my power be cut off if I pay the electricity bill late?

Vietnamese: {query}
English:"""


@dataclass(frozen=True)
class Pair:
    query: str
    passage: str   # the indexed text of a passage (indexed_text of its chunk row)
    source: str    # the document the passage comes from ("hoan-ve.md"): in-batch and mined negatives never share it
    origin: str    # "heading" | "first-sentence" | "qa" | "generated" | "translated"


def passages(docs: list[Document], count_tokens: CountTokens, chunk_tokens: int, overlap_tokens: int,
             window: int) -> list[dict]:
    """Chunk rows as `luyen rag index` makes them for a new index, each with the text it embeds under "indexed"."""
    check_window(chunk_tokens, window)
    rows: list[dict] = []
    for doc in docs:
        for chunk in chunk_document(doc, count_tokens, chunk_tokens, overlap_tokens):
            row = {"id": len(rows), **{k: v for k, v in vars(chunk).items() if v is not None}}
            rows.append({**row, "indexed": indexed_text(row, window - chunk_tokens)})
    return rows


def fallback_pairs(rows: list[dict]) -> list[Pair]:
    """Queries that need no model: heading -> the first passage under it, and first sentence -> its passage
    when the passage holds more sentences than that one."""
    pairs = _heading_pairs(rows)
    for row in rows:
        sentences = _sentences(row["text"])
        if len(sentences) > 1 and _fits(sentences[0]):
            pairs.append(Pair(sentences[0], row["indexed"], row["source"], "first-sentence"))
    return pairs


def _heading_pairs(rows: list[dict]) -> list[Pair]:
    """Each heading path once per document, its last heading as the query. A heading other documents use
    too ("Lưu ý") or of one syllable ("Vàng") would point at several documents or none: it gets the title
    ("Hoàn vé: Lưu ý"). A title that is only the file's name ("hoan-ve", a .txt without a title) is no query."""
    owners: dict[str, set[str]] = {}
    for row in rows:
        owners.setdefault(_key(row.get("heading", "").split(" > ")[-1]), set()).add(row["source"])
    pairs, seen = [], set()
    for row in rows:
        path = row.get("heading", "")
        if not path or (row["source"], path) in seen or not _sentences(row["text"]):
            continue
        seen.add((row["source"], path))
        parts = path.split(" > ")
        title, last = parts[0], parts[-1]
        if len(parts) == 1:
            query = "" if title == Path(row["source"]).stem else title
        else:
            vague = len(owners[_key(last)]) > 1 or len(syllables(last)) < 2
            query = f"{title}: {last}" if vague else last
        if query:
            pairs.append(Pair(query, row["indexed"], row["source"], "heading"))
    return pairs


def _sentences(text: str) -> list[str]:
    """The sentences of a passage that read as prose: headings and table rows left out, list marks dropped."""
    units = (text[a:b] for a, b in split_sentences(text))
    return [_LIST_MARK.sub("", u) for u in units if not u.startswith(("#", "|"))]


def qa_pairs(records: list[dict], rows: list[dict]) -> list[Pair]:
    """Each chat or extractive record's question -> the passage BM25 ranks first for its answer (an
    extractive record's context). Skipped: records whose best passage holds under a third of the answer's
    syllables other than question words (every answer of airline_qa.csv holds over 45%), so an answer
    such as "Không." or one about something no document covers is not paired with a passage at random."""
    if not rows:
        return []
    bm25 = Lexical.build([index_terms(row["indexed"]) for row in rows])
    pairs = []
    for question, answer in _questions(records):
        hits, wanted = bm25.rank(answer, 1), _content(answer)
        row = rows[hits[0][0]] if hits else {"indexed": ""}
        if question.strip() and wanted and 3 * len(wanted & _content(row["indexed"])) >= len(wanted):
            pairs.append(Pair(question.strip(), row["indexed"], row["source"], "qa"))
    return pairs


def labelled_pairs(paths: list[str | Path], rows: list[dict]) -> list[Pair]:
    """The team's labelled queries (.jsonl lines {"query", "relevant": [document names]}, the format
    `luyen rag eval` scores): each query -> in each relevant document, the passage BM25 ranks first for
    it, or the document's first passage when no syllable matches (a question in another language)."""
    from luyen.rag.evaluate import read_queries
    by_source: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        by_source.setdefault(row["source"], []).append(i)
    bm25 = Lexical.build([index_terms(row["indexed"]) for row in rows]) if rows else None
    pairs = []
    for path in paths:
        for query in read_queries(path, by_source, field="train.embedding.queries"):
            ranked = [r for r, _ in bm25.rank(query["query"], len(rows))]
            for doc in query["relevant"]:
                mine = set(by_source[doc])
                best = next((r for r in ranked if r in mine), by_source[doc][0])
                pairs.append(Pair(query["query"].strip(), rows[best]["indexed"], doc, "labelled"))
    return pairs


def read_pairs(path: str | Path, rows: list[dict]) -> tuple[list[Pair], list[Pair]]:
    """(train, held-out) pairs of a pairs.jsonl a retriever run wrote (and a person may have edited): lines
    {"query", "passage", "source", "origin", "split": "train" | "val"}. Each passage must still be one the
    documents give, cut the same way, or the encoder would train on text the index never holds."""
    path, known = Path(path), {row["indexed"]: row["source"] for row in rows}
    halves: dict[str, list[Pair]] = {"train": [], "val": []}
    from luyen.rag.evaluate import query_lines
    for n, obj in query_lines(path, "train.embedding.pairs"):
        for name in ("passage", "source", "origin"):
            if not isinstance(obj.get(name), str) or not obj[name]:
                raise LuyenError(f"no {name}", file=str(path), line=n, field=name,
                                 fix="write the lines a retriever run writes to pairs.jsonl")
        if obj.get("split", "train") not in halves:
            raise LuyenError(f"split '{obj['split']}' is neither train nor val", file=str(path), line=n, field="split",
                             fix="use train or val")
        if known.get(obj["passage"]) != obj["source"]:
            raise LuyenError("this passage is not one rag.documents give now", file=str(path), line=n, field="passage",
                             fix="use the same rag.documents and rag.chunk_tokens/overlap_tokens as the run that wrote "
                             "these pairs, or unset train.embedding.pairs to write new ones")
        halves[obj.get("split", "train")].append(Pair(obj["query"].strip(), obj["passage"], obj["source"], obj["origin"]))
    return halves["train"], halves["val"]


def _questions(records: list[dict]) -> Iterator[tuple[str, str]]:
    """(question, answer): a chat's first user turn and the assistant turn right after it; an extractive
    record's question and context. Other kinds hold no question."""
    for record in records:
        if record.get("kind") == "extractive":
            yield record["question"], record["context"]
        elif record.get("kind") == "chat":
            turns = [m for m in record["messages"] if m["role"] != "system"]
            first = next((i for i, m in enumerate(turns) if m["role"] == "user"), None)
            if first is not None and first + 1 < len(turns) and turns[first + 1]["role"] == "assistant":
                yield turns[first]["content"], turns[first + 1]["content"]


def generated_pairs(rows: list[dict], write: Write, per_passage: int = 1) -> list[Pair]:
    """Questions a base LM writes about each passage (QUESTION_PROMPT), kept when they look like one:
    MIN_WORDS..MAX_WORDS words, not copied from the passage or the prompt's examples, and sharing a
    syllable other than a question word with the passage (folded), which off-topic output does not."""
    jobs = [row for row in rows for _ in range(per_passage)]
    outputs = write([QUESTION_PROMPT.replace("{passage}", row["indexed"]) for row in jobs]) if jobs else []
    examples = f" {_key(QUESTION_PROMPT.split('{passage}')[0])} "
    pairs = []
    for row, text in zip(jobs, outputs, strict=True):
        question = _first_line(text)
        key = f" {_key(question)} "
        on_topic = _content(question) & _content(row["indexed"])
        if _fits(question) and key not in f" {_key(row['indexed'])} " and key not in examples and on_topic:
            pairs.append(Pair(question, row["indexed"], row["source"], "generated"))
    return pairs


def translated_pairs(pairs: list[Pair], write: Write, limit: int | None = None) -> list[Pair]:
    """English versions of the Vietnamese queries (at most `limit`, spread evenly over `pairs`), same
    passage and source, kept when mostly ASCII letters, MIN_WORDS..MAX_WORDS words, and not the
    Vietnamese echoed back (half or more of its folded syllables)."""
    todo = [p for p in pairs if not _ascii(p.query)]
    if limit is not None and len(todo) > limit:
        todo = [todo[i * len(todo) // limit] for i in range(max(limit, 0))]
    outputs = write([TRANSLATE_PROMPT.replace("{query}", " ".join(p.query.split())) for p in todo]) if todo else []
    out = []
    for pair, text in zip(todo, outputs, strict=True):
        english = _first_line(text)
        if _ascii(english) and _fits(english) and _jaccard(_terms(english), _terms(pair.query)) < 0.5:
            out.append(replace(pair, query=english, origin="translated"))
    return out


def folded_pairs(pairs: list[Pair]) -> list[Pair]:
    """Each Vietnamese query typed as phones often do, without tone marks ("hanh ly xach tay toi da bao
    nhieu kg"), same passage and source (origin "folded"). Queries without marks give none."""
    return [replace(p, query=fold(p.query), origin="folded") for p in pairs if fold(p.query) != p.query]


def deduplicate(pairs: list[Pair]) -> tuple[list[Pair], int]:
    """The first pair of each (folded query, source); the same query may point into several documents."""
    seen: set[tuple[str, str]] = set()
    kept = []
    for pair in pairs:
        key = (_key(pair.query), pair.source)
        if key not in seen:
            seen.add(key)
            kept.append(pair)
    return kept, len(pairs) - len(kept)


def read_eval_queries(paths: list[str | Path]) -> list[str]:
    """The "query" of every line of the eval .jsonl files ({"query": ..., "relevant": [...]})."""
    from luyen.rag.evaluate import query_lines
    return [obj["query"] for path in paths for _, obj in query_lines(path, EVAL_FIELD)]


def leaked(query: str, eval_queries: list[str], threshold: float = LEAK_THRESHOLD) -> bool:
    """Whether `query` near-repeats an eval query: folded syllable sets with Jaccard >= threshold, or one
    inside the other when the smaller has 4 or more syllables and at least half as many as the larger
    (a topic such as "hủy chuyến bồi thường" inside a long question of its own is not a repeat).

        leaked("hanh ly xach tay toi da bao nhieu kg", ["Hành lý xách tay tối đa bao nhiêu kg?"]) == True
    """
    return _match(_terms(query), [_terms(q) for q in eval_queries], threshold) is not None


def check_leakage(pairs: list[Pair], eval_queries: list[str], *, origin_file: str | None = None,
                  refuse: bool) -> tuple[list[Pair], list[Pair]]:
    """(clean, leaked) pairs. refuse=True (the team's own questions): any leak is an error naming the
    first one and the eval query it repeats, as training on it would inflate every retrieval score."""
    eval_sets = [_terms(q) for q in eval_queries]
    clean, leaks, first = [], [], None
    for pair in pairs:
        hit = _match(_terms(pair.query), eval_sets, LEAK_THRESHOLD)
        if hit is None:
            clean.append(pair)
            continue
        leaks.append(pair)
        first = first or (pair.query, eval_queries[hit])
    if refuse and first:
        raise LuyenError(f"{len(leaks)} training question(s) repeat eval queries, e.g. '{_short(first[0])}' "
                         f"~ '{_short(first[1])}'", file=origin_file, field=EVAL_FIELD,
                         fix="remove those questions from the training data or from the eval file")
    return clean, leaks


def _match(terms: frozenset[str], eval_sets: list[frozenset[str]], threshold: float) -> int | None:
    for i, other in enumerate(eval_sets):
        small, large = sorted((len(terms), len(other)))
        inside = len(terms & other) == small >= 4 and 2 * small >= large
        if small and (_jaccard(terms, other) >= threshold or inside):
            return i
    return None


def _terms(text: str) -> frozenset[str]:
    return frozenset(fold(s) for s in syllables(text))


def _content(text: str) -> set[str]:
    """Folded syllables, question and function words left out."""
    return {fold(s) for s in syllables(text) if s not in _FUNCTION}


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def _key(text: str) -> str:
    """Folded, lower-cased syllables: punctuation, case, tone marks and spacing make no difference."""
    return " ".join(fold(s) for s in syllables(text))


def _first_line(text: str) -> str:
    return text.strip().split("\n", 1)[0].strip().strip("\"'“”")


def _fits(query: str) -> bool:
    return MIN_WORDS <= len(query.split()) <= MAX_WORDS


def _ascii(text: str) -> bool:
    """Mostly ASCII letters (English; a name such as Đà Nẵng may keep its marks)."""
    letters = [c for c in text if c.isalpha()]
    return bool(letters) and sum(c.isascii() for c in letters) >= 0.9 * len(letters)


def _short(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[:n - 1] + "…"
