"""Retriever training pairs on the airline policies and small hand-made data (word counts stand in for
encoder tokens; `write` is a plain function standing in for the language model)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from luyen.errors import LuyenError
from luyen.rag.build import indexed_text
from luyen.rag.documents import Document, Section, read_documents
from luyen.train.pairs import (QUESTION_PROMPT, TRANSLATE_PROMPT, Pair, check_leakage, deduplicate, fallback_pairs,
                               generated_pairs, leaked, passages, qa_pairs, read_eval_queries, translated_pairs)

POLICIES = Path(__file__).resolve().parents[3] / "examples/data/airline_policies"


def words(texts):
    return [len(t.split()) for t in texts]


def doc(text: str, source: str = "a.md", title: str = "Tiêu đề") -> Document:
    return Document(source, Path(source), "0" * 64, title, [Section(text)])


@pytest.fixture(scope="module")
def rows():
    docs, skipped = read_documents([POLICIES])
    assert not skipped
    return passages(docs, words, chunk_tokens=60, overlap_tokens=10, window=254)


def key(text: str) -> str:
    return " ".join(text.lower().split())


def test_passages_embed_what_the_index_embeds(rows):
    assert [r["id"] for r in rows] == list(range(len(rows)))
    assert all(r["indexed"] == indexed_text(r, 254 - 60) for r in rows)
    assert rows[0]["indexed"].startswith(rows[0]["heading"] + "\n")
    narrow = passages([doc("## Phần một\nMột câu ở đây.", title="Tiêu đề dài")], words, 60, 10, window=66)
    assert narrow[0]["indexed"] == "Tiêu đ\n## Phần một\nMột câu ở đây."  # heading cut to window - chunk_tokens
    with pytest.raises(LuyenError, match="rag.chunk_tokens"):
        passages([doc("Một câu.")], words, chunk_tokens=300, overlap_tokens=10, window=254)


def test_fallback_queries_never_are_their_whole_passage(rows):
    pairs = fallback_pairs(rows)
    texts = {r["indexed"]: r["text"] for r in rows}
    assert {p.origin for p in pairs} == {"heading", "first-sentence"}
    assert all(key(p.query) not in (key(p.passage), key(texts[p.passage])) for p in pairs)
    heading = {p.query: p.source for p in pairs if p.origin == "heading"}
    assert heading["Hành lý xách tay"] == "hanh-ly-xach-tay.md"
    assert heading["Kích thước tối đa"] == "hanh-ly-xach-tay.md"
    assert "Lưu ý" not in heading and heading["Hoàn vé: Lưu ý"] == "hoan-ve.md"  # five documents have a "Lưu ý"


def test_a_one_sentence_passage_gives_no_sentence_query_and_a_file_name_no_heading_query():
    one = fallback_pairs(passages([doc("# Tiêu đề\nChỉ một câu duy nhất ở đây.")], words, 60, 10, 254))
    assert [(p.query, p.origin) for p in one] == [("Tiêu đề", "heading")]
    two = fallback_pairs(passages([doc("Câu đầu tiên ở đây. Câu thứ hai ở đây.", "ghi-chu.txt", "ghi-chu")],
                                  words, 60, 10, 254))
    assert [(p.query, p.origin) for p in two] == [("Câu đầu tiên ở đây.", "first-sentence")]


def recording(reply):
    """A `write` answering each prompt with reply(prompt), and the list of prompts it was given."""
    sent: list[str] = []

    def write(prompts: list[str]) -> list[str]:
        sent.extend(prompts)
        return [reply(p) for p in prompts]
    return write, sent


def chat(question: str, answer: str, system: bool = False) -> dict:
    turns = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return {"kind": "chat", "messages": ([{"role": "system", "content": "Bạn là trợ lý."}] if system else []) + turns}


def test_qa_questions_find_the_passage_that_holds_their_answer(rows):
    context = next(r["text"] for r in rows if r["source"] == "van-chuyen-thu-cung.md" and r["position"] == 1)
    records = [
        chat("Tôi mang được bao nhiêu?", "Hạng Phổ thông Tiết kiệm được mang 7 kg hành lý xách tay: "
             "1 kiện chính và 1 phụ kiện nhỏ.", system=True),
        {"kind": "extractive", "question": "Chó mèo đi được không?", "context": context, "answers": []},
        chat("Được không?", "Không."),  # nothing in the answer to find a passage by
        {"kind": "chat", "messages": [{"role": "user", "content": "Còn câu hỏi?"}]},
        {"kind": "text", "text": "Hành lý xách tay 7 kg."},
    ]
    pairs = qa_pairs(records, rows)
    assert [(p.query, p.source, p.origin) for p in pairs] == [
        ("Tôi mang được bao nhiêu?", "hanh-ly-xach-tay.md", "qa"), ("Chó mèo đi được không?", "van-chuyen-thu-cung.md", "qa")]
    assert pairs[1].passage in {r["indexed"] for r in rows if r["text"] == context}


def test_generated_questions_are_kept_only_when_they_look_like_one(rows):
    row = next(r for r in rows if r["source"] == "hanh-ly-xach-tay.md")  # "Hành lý xách tay là hành lý ..."
    outputs = [" Kiện xách tay được nặng tối đa bao nhiêu kg?\n\nĐoạn văn: ...",
               "\n", " Con mèo nhà bạn tên là gì?",  # empty; off-topic, sharing only "là" and "gì"
               " Hành lý xách tay " + "và hành lý " * 20 + "là gì?",  # 44 words
               ' "Chủ nhật thư viện đóng cửa lúc mấy giờ?"',  # a prompt example echoed
               " Hành lý xách tay là hành lý quý khách tự mang theo và bảo quản trong khoang hành khách."]
    replies = iter(outputs)
    write, prompts = recording(lambda prompt: next(replies))
    pairs = generated_pairs([row], write, per_passage=len(outputs))
    assert pairs == [Pair("Kiện xách tay được nặng tối đa bao nhiêu kg?", row["indexed"], row["source"], "generated")]
    assert len(prompts) == len(outputs) and prompts[0].endswith(f"Đoạn văn: {row['indexed']}\nCâu hỏi:")
    assert QUESTION_PROMPT.count("Câu hỏi:") == 4


def test_translations_keep_english_and_drop_vietnamese_echoes():
    pairs = [Pair("Hành lý xách tay được bao nhiêu kg?", "p1", "a.md", "qa"),
             Pair("Phí hoàn vé là bao nhiêu?", "p2", "b.md", "heading"),
             Pair("Đổi vé mất phí gì?", "p3", "c.md", "generated"),
             Pair("How late can I check in?", "p4", "d.md", "qa")]  # English already: not sent
    replies = {"Hành lý xách tay được bao nhiêu kg?": " How many kg of carry-on baggage are allowed?\nVietnamese: x",
               "Phí hoàn vé là bao nhiêu?": " Phi hoan ve la bao nhieu?",
               "Đổi vé mất phí gì?": " Đổi vé mất phí gì?"}
    write, sent = recording(lambda prompt: replies[prompt.rsplit("Vietnamese: ", 1)[1].split("\n")[0]])
    out = translated_pairs(pairs, write)
    assert out == [Pair("How many kg of carry-on baggage are allowed?", "p1", "a.md", "translated")]
    assert len(sent) == 3 and sent[0] == TRANSLATE_PROMPT.replace("{query}", pairs[0].query)
    many = [Pair(f"Câu hỏi số {i} về hành lý?", "p", "a.md", "qa") for i in range(10)]
    write, sent = recording(lambda prompt: "")
    translated_pairs(many, write, limit=3)  # spread over the pairs, not the first three
    assert [p.rsplit("Vietnamese: ", 1)[1].split("?")[0] for p in sent] == [
        "Câu hỏi số 0 về hành lý", "Câu hỏi số 3 về hành lý", "Câu hỏi số 6 về hành lý"]


def test_deduplicate_folds_marks_and_punctuation_per_source():
    pairs = [Pair("Hành lý xách tay?", "p1", "a.md", "heading"), Pair("hanh ly  xach tay", "p2", "a.md", "qa"),
             Pair("Hành lý xách tay?", "p3", "b.md", "heading")]
    assert deduplicate(pairs) == ([pairs[0], pairs[2]], 1)


def test_leakage_is_found_through_missing_marks_and_refused_in_the_teams_data(tmp_path):
    queries = tmp_path / "queries.jsonl"
    queries.write_text(json.dumps({"query": "Tiêu chuẩn hành lý xách tay hạng Phổ thông Tiết kiệm là bao nhiêu kg?",
                                   "relevant": ["hanh-ly-xach-tay.md"]}, ensure_ascii=False) + "\n\n"
                       + json.dumps({"query": "hủy chuyến bồi thường", "relevant": ["x.md"]}) + "\n", encoding="utf-8")
    eval_queries = read_eval_queries([queries])
    bare = Pair("tieu chuan hanh ly xach tay hang pho thong tiet kiem la bao nhieu kg", "p", "a.md", "qa")
    other = Pair("Thú cưng có được mang lên khoang không?", "p", "b.md", "qa")
    topic = Pair("Chuyến bay bị hủy mà được báo trước 3 ngày thì có bồi thường không?", "p", "c.md", "qa")
    assert check_leakage([bare, other, topic], eval_queries, refuse=False) == ([other, topic], [bare])
    with pytest.raises(LuyenError, match=r"qa\.csv.*train\.embedding\.eval_queries.*tieu chuan hanh ly.*Tiêu chuẩn") as e:
        check_leakage([other, bare], eval_queries, origin_file="qa.csv", refuse=True)
    assert e.value.file == "qa.csv" and "remove those questions" in e.value.fix
    assert leaked("Phí chọn ghế trước là bao nhiêu?", ["Phí chọn ghế phía trước trên chuyến quốc tế là bao nhiêu?"])


@pytest.mark.parametrize("line, message", [("{not json", "not valid JSON"), ('{"query": "  "}', "no query text"),
                                           ('["a"]', "no query text")])
def test_a_bad_eval_line_names_its_file_and_line(tmp_path, line, message):
    path = tmp_path / "q.jsonl"
    path.write_text('{"query": "Hành lý xách tay"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(LuyenError, match=message) as e:
        read_eval_queries([path])
    assert (e.value.file, e.value.line, e.value.field) == (str(path), 2, "query")
    with pytest.raises(LuyenError, match="no such queries file"):
        read_eval_queries([tmp_path / "missing.jsonl"])


def test_folded_pairs_are_the_vietnamese_queries_typed_without_marks():
    from luyen.train.pairs import folded_pairs
    pairs = [Pair("Hành lý xách tay tối đa bao nhiêu kg?", "p", "hanh-ly-xach-tay.md", "generated"),
             Pair("How many kilograms can I carry on?", "p", "hanh-ly-xach-tay.md", "translated")]
    assert folded_pairs(pairs) == [Pair("Hanh ly xach tay toi da bao nhieu kg?", "p", "hanh-ly-xach-tay.md", "folded")]


def test_labelled_queries_pair_with_the_best_passage_of_their_document(rows, tmp_path):
    from luyen.train.pairs import labelled_pairs
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"query": "Vé Thương gia được mấy kg hành lý xách tay?", "relevant": ["hanh-ly-xach-tay.md"]},
                               ensure_ascii=False) + "\n\n"
                    + json.dumps({"query": "kitten vaccination paperwork", "relevant": ["van-chuyen-thu-cung.md"]}) + "\n",
                    encoding="utf-8")
    marked, english = labelled_pairs([path], rows)
    assert marked.source == "hanh-ly-xach-tay.md" and marked.origin == "labelled"
    assert "Thương gia" in marked.passage and "xách tay" in marked.passage.lower()
    first = next(r for r in rows if r["source"] == "van-chuyen-thu-cung.md")
    assert english.passage == first["indexed"]  # no syllable in common: the document's first passage
    path.write_text(json.dumps({"query": "phí đổi vé", "relevant": ["doi-ve.md"]}) + "\n"
                    + json.dumps({"query": "phí đổi vé", "relevant": ["khong-co.md"]}) + "\n", encoding="utf-8")
    with pytest.raises(LuyenError, match=r"q.jsonl:2.*relevant.*khong-co.md|khong-co.md.*q.jsonl:2"):
        labelled_pairs([path], rows)


def test_an_earlier_runs_pairs_are_read_back_and_stale_passages_refused(rows, tmp_path):
    from luyen.train.pairs import read_pairs
    row = rows[3]
    good = {"query": "phí đổi vé", "passage": row["indexed"], "source": row["source"], "origin": "generated"}
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps({**good, "split": "train"}, ensure_ascii=False) + "\n"
                    + json.dumps({**good, "query": "vé đổi", "split": "val"}, ensure_ascii=False) + "\n", encoding="utf-8")
    train, val = read_pairs(path, rows)
    assert train == [Pair("phí đổi vé", row["indexed"], row["source"], "generated")] and val[0].query == "vé đổi"
    path.write_text(json.dumps({**good, "passage": row["indexed"] + " (sửa)"}, ensure_ascii=False) + "\n", encoding="utf-8")
    with pytest.raises(LuyenError, match=r"pairs.jsonl:1.*passage"):
        read_pairs(path, rows)
