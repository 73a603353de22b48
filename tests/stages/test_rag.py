"""The rag stage end to end with the real shipped encoder: index, incremental updates, bad files,
atomic writes, search, evaluation on the airline policies, and the CLI."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from luyen.cli import app
from luyen.config import RunConfig, load_config
from luyen.errors import LuyenError
from luyen.rag import augment, build_index, cite, load_index
from luyen.rag.evaluate import evaluate

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "data"
POLICIES, QUERIES = EXAMPLES / "airline_policies", EXAMPLES / "airline_rag_queries.jsonl"
SMALL = ["hoan-ve.md", "doi-ve.md", "van-chuyen-thu-cung.md"]


@pytest.fixture(scope="module")
def airline_index(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rag") / "index"
    build_index(RunConfig(), [POLICIES], out)
    return out


@pytest.fixture
def small_docs(tmp_path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    for name in SMALL:
        shutil.copy(POLICIES / name, folder / name)
    return folder


def vectors_by_id(index) -> dict[int, np.ndarray]:
    return {c["id"]: index.vectors.reconstruct(c["id"]) for c in index.chunks}


def test_index_folder_contract(airline_index):
    manifest = json.loads((airline_index / "manifest.json").read_text())
    assert manifest["stage"] == "rag-index"
    assert manifest["config"]["encoder"] == {"name": "all-MiniLM-L6-v2", "dim": 384, "window": 254,
                                                  "cross_lingual": False}
    assert manifest["config"]["rag"]["chunk_tokens"] == 200
    assert manifest["metrics"]["documents"] == 28 and manifest["metrics"]["skipped"] == []
    assert len(manifest["inputs"]) == 28 and all(len(i["sha256"]) == 64 for i in manifest["inputs"])
    assert set(manifest["outputs"]) == {"chunks.jsonl", "documents.json", "vectors.faiss"}
    index = load_index(airline_index)
    assert len(index) == manifest["metrics"]["passages"] == index.vectors.ntotal
    assert all(len(d["sha256"]) == 64 and d["ids"] for d in index.documents.values())
    assert not [p for p in airline_index.parent.iterdir() if p.name.startswith(".")]  # no temp folder left


def test_passages_fit_the_encoder_window_and_keep_their_place(airline_index):
    from luyen.rag.encoder import load_encoder
    index = load_index(airline_index)
    counts = load_encoder().count_tokens([c["text"] for c in index.chunks])
    assert max(counts) <= 200
    source = (POLICIES / "hoan-ve.md").read_text(encoding="utf-8")
    mine = [c for c in index.chunks if c["source"] == "hoan-ve.md"]
    assert [c["position"] for c in mine] == list(range(len(mine))) and len(mine) > 1
    for c in mine:
        assert source[c["start"]:c["start"] + len(c["text"])] == c["text"]
    pairs = [(a, b) for a, b in zip(index.chunks, index.chunks[1:]) if a["source"] == b["source"]]
    overlapping = [b["start"] < a["start"] + len(a["text"]) for a, b in pairs]
    assert sum(overlapping) > len(pairs) / 2  # most passages repeat the previous one's last sentences


@pytest.mark.parametrize("mode", ["hybrid", "dense", "bm25"])
def test_search_finds_the_policy(airline_index, mode):
    hits = load_index(airline_index).search("Tiêu chuẩn hành lý xách tay hạng Phổ thông Tiết kiệm là bao nhiêu kg?",
                                            k=3, mode=mode)
    assert len(hits) == 3 and hits[0].source == "hanh-ly-xach-tay.md"
    assert hits[0].score >= hits[1].score >= hits[2].score
    assert "kg" in hits[0].text and isinstance(hits[0].position, int)


def test_search_with_no_matching_term_and_blank_query(airline_index):
    index = load_index(airline_index)
    assert index.search("zzzqqq", k=3, mode="bm25") == []
    assert index.search("   ", k=3) == []


def test_retrieval_quality_on_the_airline_queries(airline_index):
    """Measured on the shipped 63 labelled queries (judged per document). The English MiniLM is weak
    on Vietnamese, BM25 over syllables is strong, and the fused ranking with the default weights
    (dense 0.2, rrf_k 10) stays within one query of BM25 while beating dense by a wide margin.
    Equal-weight fusion is measurably worse than BM25 here (see bench/rag_quality.py)."""
    report = evaluate(load_index(airline_index), QUERIES, ks=(1, 3, 5))
    dense, bm25, hybrid = report["dense"], report["bm25"], report["hybrid"]
    assert report["queries"] == 63
    assert dense["recall@5"] >= 0.65 and bm25["recall@5"] >= 0.88 and bm25["mrr"] >= 0.8
    for metric in ("recall@1", "recall@3", "recall@5", "mrr"):
        assert hybrid[metric] > dense[metric] + 0.1
        assert hybrid[metric] >= bm25[metric] - 1 / 63 - 1e-3  # at most one query's difference (4-digit rounding)
    assert hybrid["mrr"] >= bm25["mrr"] and hybrid["recall@3"] >= bm25["recall@3"]


def test_queries_typed_without_diacritics_find_the_same_policies(airline_index, tmp_path):
    """The 63 queries with every tone and vowel mark dropped (đ as d), as many users type on phones.
    Measured 2026-12-04: BM25 recall@5 0.532 -> 0.913 and MRR 0.461 -> 0.840 once the folded forms are
    indexed (hybrid 0.643 -> 0.897); the queries with their marks score as before (0.929, 0.870)."""
    import json

    from luyen.rag.lexical import fold
    bare = tmp_path / "bare.jsonl"
    bare.write_text("".join(json.dumps({**q, "query": fold(q["query"])}, ensure_ascii=False) + "\n"
                            for q in map(json.loads, QUERIES.read_text(encoding="utf-8").splitlines())), encoding="utf-8")
    assert "hanh ly xach tay" in bare.read_text(encoding="utf-8").lower()
    report = evaluate(load_index(airline_index), bare, ks=(1, 5), modes=("bm25", "hybrid"))
    assert report["bm25"]["recall@5"] >= 0.88 and report["bm25"]["mrr"] >= 0.8
    assert report["hybrid"]["recall@5"] >= 0.85


def test_held_out_queries_are_reported_per_kind(airline_index):
    """examples/data/airline_rag_heldout.jsonl: 60 queries written apart from the 63 above and never used to
    tune anything, 15 of each kind. Measured 2026-12-04 (hybrid recall@5 / MRR): paraphrase 0.93 / 0.77,
    fact 1.00 / 0.97, no-diacritics 0.93 / 0.91 (0.77 / 0.55 before folding), english 0.53 / 0.39 (the
    shipped encoder and BM25 cannot bridge languages; a trained encoder is the next step)."""
    res = CliRunner().invoke(app, ["rag", "eval", str(airline_index), str(EXAMPLES / "airline_rag_heldout.jsonl"), "--json"])
    assert res.exit_code == 0, res.output
    kinds = json.loads(res.output)["by_kind"]
    assert {k: v["queries"] for k, v in kinds.items()} == {"paraphrase": 15, "fact": 15, "no-diacritics": 15,
                                                           "english": 15}
    assert kinds["no-diacritics"]["hybrid"]["recall@5"] >= 0.9 and kinds["no-diacritics"]["hybrid"]["mrr"] >= 0.85
    assert kinds["fact"]["hybrid"]["recall@5"] >= 0.95 and kinds["paraphrase"]["hybrid"]["recall@5"] >= 0.9
    table = CliRunner().invoke(app, ["rag", "eval", str(airline_index), str(EXAMPLES / "airline_rag_heldout.jsonl")])
    assert "no-diacritics (15)" in table.output and "english (15)" in table.output


def test_rag_tune_keeps_settings_a_choice_would_not_beat(airline_index, tmp_path):
    """Measured 2026-12-04 on the 63 queries: defaults (rrf_k 10, dense 0.2) MRR 0.871; chosen (5, 0.3)
    0.873 in-sample but 0.854 under 5-fold cross-validation: the defaults were already as good as the
    queries can tell, which the held-out figure says and the in-sample one hides, so they are kept."""
    from luyen.rag.tune import GRID
    folder = tmp_path / "index"
    shutil.copytree(airline_index, folder)
    res = CliRunner().invoke(app, ["rag", "tune", str(folder), str(QUERIES), "--json"])
    assert res.exit_code == 0, res.output
    result = json.loads(res.output)
    chosen = (result["chosen"]["rrf_k"], result["chosen"]["dense_weight"])
    assert chosen in GRID and result["queries"] == 63 and result["folds"] == 5
    assert result["in_sample"]["mrr"] >= result["cross_validated"]["mrr"]
    assert result["in_sample"] != result["cross_validated"]  # scored on queries the choice never saw
    assert result["cross_validated"]["mrr"] <= result["before"]["mrr"] and result["kept"]
    index = load_index(folder)
    assert (index.settings["rrf_k"], index.settings["dense_weight"]) == (10, 0.2)
    assert index.manifest["tuned"]["cross_validated"] == result["cross_validated"]
    shown = " ".join(CliRunner().invoke(app, ["rag", "eval", str(folder), str(QUERIES)]).output.split())
    assert f"kept by `luyen rag tune` on 63 queries: hybrid MRR {result['before']['mrr']:.3f}" in shown
    few = tmp_path / "few.jsonl"
    few.write_text('{"query": "hành lý", "relevant": ["hanh-ly-xach-tay.md"]}\n', encoding="utf-8")
    line = CliRunner().invoke(app, ["rag", "tune", str(folder), str(few)]).output
    assert "too few" in line and "Traceback" not in line


def test_rag_tune_writes_weights_that_beat_the_current_ones_cross_validated(airline_index, tmp_path):
    """From textbook equal-weight RRF (rrf_k 60, dense 1.0), which the English-only encoder's weight on
    Vietnamese drags down, a choice beats the current settings even held out, so it is written."""
    folder = tmp_path / "index"
    shutil.copytree(airline_index, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["config"]["rag"].update(rrf_k=60, dense_weight=1.0)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    res = CliRunner().invoke(app, ["rag", "tune", str(folder), str(QUERIES), "--json"])
    result = json.loads(res.output)
    assert not result["kept"] and result["cross_validated"]["mrr"] > result["before"]["mrr"]
    index = load_index(folder)
    assert (index.settings["rrf_k"], index.settings["dense_weight"]) == (result["chosen"]["rrf_k"],
                                                                          result["chosen"]["dense_weight"])
    shown = " ".join(CliRunner().invoke(app, ["rag", "eval", str(folder), str(QUERIES)]).output.split())
    assert f"hybrid MRR {result['cross_validated']['mrr']:.3f} cross-validated" in shown


def test_augment_and_cite_with_real_hits(airline_index):
    hits = load_index(airline_index).search("Phí đổi vé Phổ thông Tiết kiệm chặng quốc tế", k=2)
    messages = augment([{"role": "user", "content": "Phí đổi vé Tiết kiệm quốc tế?"}], hits)
    assert f"[1] {hits[0].label}" in messages[0]["content"] and "800.000 VND" in messages[0]["content"]
    assert cite("Phí là 800.000 VND [1].", hits)[0]["source"] == "doi-ve.md"


def test_add_remove_and_sync_embed_only_what_changed(tmp_path, small_docs):
    out = tmp_path / "index"
    first = build_index(RunConfig(), [small_docs], out)["metrics"]
    assert (first["documents"], first["embedded_documents"]) == (3, 3)
    before = vectors_by_id(load_index(out))

    extra = tmp_path / "tre-em-va-em-be.md"
    shutil.copy(POLICIES / "tre-em-va-em-be.md", extra)
    added = build_index(RunConfig(), [extra], out, add=True)["metrics"]
    assert (added["documents"], added["embedded_documents"], added["reused_documents"]) == (4, 1, 3)
    after = load_index(out)
    assert all(np.array_equal(after.vectors.reconstruct(i), v) for i, v in before.items())  # kept, not re-embedded
    assert after.search("nôi em bé", k=1, mode="bm25")[0].source == "tre-em-va-em-be.md"

    removed = build_index(RunConfig(), ["doi-ve.md"], out, remove=True)["metrics"]
    assert (removed["documents"], removed["removed_documents"], removed["embedded_documents"]) == (3, 1, 0)
    index = load_index(out)
    assert "doi-ve.md" not in index.documents and index.vectors.ntotal == len(index)
    assert all(h.source != "doi-ve.md" for h in index.search("phí đổi vé", k=10, mode="hybrid"))

    (small_docs / "hoan-ve.md").write_text("# Hoàn vé\n\nQuy định mới: hoàn vé miễn phí.", encoding="utf-8")
    synced = build_index(RunConfig(), [small_docs], out)["metrics"]  # now: doi-ve back, hoan-ve changed, tre-em gone
    assert (synced["documents"], synced["embedded_documents"], synced["reused_documents"]) == (3, 2, 1)
    index = load_index(out)
    assert sorted(index.documents) == sorted(SMALL)
    assert [c["text"] for c in index.chunks if c["source"] == "hoan-ve.md"] == ["# Hoàn vé\n\nQuy định mới: hoàn vé miễn phí."]


def test_changed_chunk_settings_reembed_everything(tmp_path, small_docs):
    out = tmp_path / "index"
    build_index(RunConfig(), [small_docs], out)
    m = build_index(load_config(None, ["rag.chunk_tokens=80", "rag.overlap_tokens=10"]), [small_docs], out)["metrics"]
    assert (m["embedded_documents"], m["reused_documents"]) == (3, 0)
    assert load_index(out).settings["chunk_tokens"] == 80


def test_bad_documents_are_reported_and_skipped(tmp_path, small_docs):
    (small_docs / "empty.md").write_text("", encoding="utf-8")
    (small_docs / "image.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (small_docs / "legacy.txt").write_bytes("Phí hành lý xách tay".encode("latin-1"))
    (small_docs / "scan.pdf").write_bytes(b"%PDF-1.4\n%%EOF garbage")
    m = build_index(RunConfig(), [small_docs], tmp_path / "index")["metrics"]
    assert m["documents"] == 3
    assert sorted(Path(s["file"]).name for s in m["skipped"]) == ["empty.md", "image.txt", "legacy.txt", "scan.pdf"]
    assert all(Path(s["file"]).name in s["error"] for s in m["skipped"])


def test_nothing_readable_writes_nothing(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "empty.md").write_text("", encoding="utf-8")
    with pytest.raises(LuyenError, match="no readable document"):
        build_index(RunConfig(), [tmp_path / "docs"], tmp_path / "index")
    assert not (tmp_path / "index").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["docs"]


def test_a_failed_update_leaves_the_old_index_whole(tmp_path, small_docs, monkeypatch):
    out = tmp_path / "index"
    build_index(RunConfig(), [small_docs], out)
    files = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}

    def crash(*args, **kwargs):
        raise RuntimeError("disk full")
    monkeypatch.setattr("luyen.rag.build.Lexical.build", crash)
    extra = tmp_path / "x.md"
    extra.write_text("Tài liệu mới.", encoding="utf-8")
    with pytest.raises(RuntimeError, match="disk full"):
        build_index(RunConfig(), [extra], out, add=True)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == files
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docs", "index", "x.md"]  # no temp folder left
    assert len(load_index(out).documents) == 3


def test_refuses_to_replace_other_folders_and_unfinished_indexes(tmp_path, small_docs):
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(LuyenError, match="something other than a luyen rag index"):
        build_index(RunConfig(), [small_docs], other)
    assert (other / "keep.txt").read_text() == "mine"
    with pytest.raises(LuyenError, match="no finished index"):
        build_index(RunConfig(), [small_docs], tmp_path / "none", add=True)
    with pytest.raises(LuyenError, match="no manifest.json"):
        load_index(other)


def test_cli_index_query_eval(tmp_path, small_docs, airline_index):
    runner = CliRunner()
    out = tmp_path / "index"
    (small_docs / "empty.md").write_text("", encoding="utf-8")
    r = runner.invoke(app, ["rag", "index", str(small_docs), "--out", str(out), "rag.chunk_tokens=120"])
    assert r.exit_code == 0, r.output
    assert "3 documents" in r.output and "skipped" in r.output and "empty.md" in r.output
    assert load_index(out).settings["chunk_tokens"] == 120

    r = runner.invoke(app, ["rag", "query", str(out), "mang mèo lên máy bay", "-k", "2"])
    assert r.exit_code == 0 and "[1] van-chuyen-thu-cung.md" in r.output and "[2]" in r.output and "[3]" not in r.output
    r = runner.invoke(app, ["rag", "query", str(out), "mang mèo", "--json", "--mode", "bm25"])
    first = json.loads(r.output.splitlines()[0])
    assert first["source"] == "van-chuyen-thu-cung.md" and first["label"] == "van-chuyen-thu-cung.md"

    r = runner.invoke(app, ["rag", "eval", str(airline_index), str(QUERIES)])
    assert r.exit_code == 0, r.output
    rows = {line.split()[1]: line for line in r.output.splitlines() if line.split()[1:2] in (["dense"], ["bm25"], ["hybrid"])}
    assert set(rows) == {"dense", "bm25", "hybrid"} and "recall@5" in r.output and "MRR@10" in r.output

    r = runner.invoke(app, ["rag", "eval", str(airline_index), str(QUERIES), "--json", "-k", "3"])
    report = json.loads(r.output)
    assert report["queries"] == 63 and set(report["hybrid"]) == {"recall@1", "recall@3", "mrr"}


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, airline_index):
    runner = CliRunner()
    bad = tmp_path / "q.jsonl"
    bad.write_text('{"query": "x", "relevant": ["khong-co.md"]}\n', encoding="utf-8")
    r = runner.invoke(app, ["rag", "eval", str(airline_index), str(bad)])
    assert r.exit_code == 2 and "q.jsonl:1" in r.output and "khong-co.md is not one of the documents" in r.output
    assert "Traceback" not in r.output
    r = runner.invoke(app, ["rag", "query", str(tmp_path / "missing"), "x"])
    assert r.exit_code == 2 and "no such index folder" in r.output
    r = runner.invoke(app, ["rag", "index", str(tmp_path / "nope"), "--out", str(tmp_path / "i")])
    assert r.exit_code == 2 and "no such file or folder" in r.output
    r = runner.invoke(app, ["rag", "index", str(POLICIES), "--out", str(tmp_path / "i"), "rag.overlap_tokens=500"])
    assert r.exit_code == 2 and "overlap_tokens" in r.output
