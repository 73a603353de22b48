"""Data-stage throughput: `check` and `prepare` on N short synthetic QA records (default 1,000,000).

    python bench/data_throughput.py [--records 1000000] [--model gemma3-270m]
    python bench/data_throughput.py --records 200000 --word-hashes

Prints one JSON object: seconds and records/s for each command and the peak memory of each (each
runs in a fresh process, so the figures do not include generating the data): `prepare` on its own
(its own scan), then `check`, then `prepare` again, which writes from the scan `check` kept
(luyen.data.scans), and whether the two prepares wrote the same split files and the same report
(less its training-time estimate, which measures the machine's matmul peak afresh in every run). Target: check + prepare under
60 s with peak RSS under 2 GB on a 2-core CPU; ``vs_target`` gives both as ratios (seconds scaled to ``--records``), and
``check_then_prepare_vs_prepare_alone`` the two commands against one prepare from the same run.

Memory: the data stage forks worker processes for large inputs, so `peak_rss_mb` is the peak of the
*sum* of the resident set sizes of the command's process and all its descendants, sampled every
20 ms with psutil. Pages the workers share copy-on-write with their parent are counted once per
process, so this overstates the real footprint; it is the conservative figure. Also reported:
`main_peak_rss_mb` (the process's own ru_maxrss) and `worker_peak_rss_mb` (the largest single
worker's ru_maxrss, from RUSAGE_CHILDREN; 0 when no worker ran) and `peak_pss_mb`, the peak of the
summed proportional set sizes (shared pages split between their processes: the real footprint,
sampled every 200 ms, so it can miss a short peak).

--word-hashes instead times, in this process, what the data stage does per record for duplicate
detection (Deduper.signatures on question + answer, key_hashes on the question) with the fast
path of luyen.data.keyhash against the plain version it would be replaced by, twice, alternating.
"""
from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

SYLLABLES = ("học máy mô hình dữ liệu huấn luyện tham số kết quả đánh giá mạng nơ ron trí tuệ nhân tạo "
             "câu hỏi trả lời thời gian chi phí khách hàng chuyến bay hành lý vé đổi hoàn tiền hạng ghế "
             "giúp tôi bạn có thể được không như thế nào bao nhiêu khi nào tại sao ở đâu cảm ơn rất nhiều").split()
WORDS = "the model data train loss token answer question learning rate batch size layer weight value".split()


def make_records(path: Path, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        prev = None
        for i in range(n):
            pool = SYLLABLES if rng.random() < 0.8 else WORDS
            q = " ".join(rng.choices(pool, k=rng.randint(8, 14))) + "?"
            a = " ".join(rng.choices(pool, k=rng.randint(15, 30))) + "."
            if prev and rng.random() < 0.01:  # exact duplicates
                q, a = prev
            elif prev and rng.random() < 0.01:  # near duplicates: one word changed
                q, a = prev[0], prev[1].replace(" ", " rất ", 1)
            if rng.random() < 0.002:
                a += f" Liên hệ user{i}@example.com hoặc 0912 345 {i % 1000:03d}."
            f.write(json.dumps({"question": q, "answer": a}, ensure_ascii=False) + "\n")
            prev = (q, a)


def timed(code: str, env: dict | None = None) -> dict:
    """Run code in a fresh interpreter; return wall seconds and peak memory (see the docstring)."""
    code += ("\nimport resource,sys;sys.stderr.write('RSS=%d,%d' % (resource.getrusage(resource.RUSAGE_SELF)"
             ".ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))")
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    peak, peak_pss, done = [0], [0], threading.Event()

    def sample() -> None:
        root = psutil.Process(proc.pid)
        for i in itertools.count():
            if done.is_set():
                return
            try:
                tree = [root, *root.children(recursive=True)]
            except psutil.Error:
                return
            rss = pss = 0
            for p in tree:
                try:
                    rss += p.memory_info().rss
                    if i % 10 == 0:  # reading smaps costs more: every 200 ms
                        pss += p.memory_full_info().pss
                except (psutil.Error, AttributeError):
                    pass
            peak[0] = max(peak[0], rss)
            peak_pss[0] = max(peak_pss[0], pss)
            done.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(err[-3000:])
    main_kb, worker_kb = map(int, err.rsplit("RSS=", 1)[1].split(","))
    return {"seconds": round(seconds, 2), "peak_rss_mb": round(max(peak[0] / 2**20, main_kb / 1024), 1),
            "main_peak_rss_mb": round(main_kb / 1024, 1), "worker_peak_rss_mb": round(worker_kb / 1024, 1),
            "peak_pss_mb": round(peak_pss[0] / 2**20, 1)}


def plain_word_hashes(texts: list[str], cache: dict | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """keyhash.word_hashes' outputs (other hash values) the plain way: text_key, str.split,
    blake2b per word (per distinct word from `cache` when given), blake2b of each key."""
    from luyen.data.keyhash import text_key

    def h64(s: str) -> int:
        return int.from_bytes(hashlib.blake2b(s.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")

    keys = [text_key(t) for t in texts]
    split = [k.split() for k in keys]
    if cache is None:
        values = [h64(w) for ws in split for w in ws]
    else:
        values = [cache.get(w) or cache.setdefault(w, h64(w)) for ws in split for w in ws]
    bounds = np.zeros(len(texts) + 1, np.int64)
    np.cumsum([len(ws) for ws in split], out=bounds[1:])
    return np.array(values, np.uint64), bounds, np.array([h64(k) for k in keys], np.uint64)


def compare_word_hashes(path: Path, n: int, rounds: int = 2) -> dict:
    """Records/s of the data stage's duplicate-detection hashing with each word stage."""
    from luyen.data import dedup

    rows = [json.loads(line) for line in path.open(encoding="utf-8")]
    keys, prompts = [r["question"] + "\n" + r["answer"] for r in rows], [r["question"] for r in rows]

    def run(plain: bool, cache: dict | None) -> float:
        d, start = dedup.Deduper(), time.perf_counter()
        for lo in range(0, n, 2048):  # the data stage's batch size
            batch, questions = keys[lo:lo + 2048], prompts[lo:lo + 2048]
            if not plain:
                d.signatures(batch)
                dedup.key_hashes(questions)
                continue
            for a, b in dedup._chunk_bounds(batch):  # Deduper.signatures with the word stage swapped
                d._chunk_rows(*plain_word_hashes(batch[a:b], cache))
            plain_word_hashes(questions, cache)
        return round(n / (time.perf_counter() - start))

    out = []
    for _ in range(rounds):
        r = {"fast": run(False, None), "plain": run(True, {}), "plain_uncached": run(True, None)}
        out.append({**r, "plain_slower": round(r["fast"] / r["plain"], 2),
                    "uncached_slower": round(r["fast"] / r["plain_uncached"], 2)})
    return {"records_per_s": out}


def _without_estimate(folder: Path) -> dict:
    """report.json less its training-time estimate, which measures this machine's matmul peak each run."""
    report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    report.pop("estimate", None)
    return report


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--model", default="gemma3-270m")
    ap.add_argument("--word-hashes", action="store_true", help="time the dedup fast path against the plain one")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "qa.jsonl"
        make_records(data, args.records)
        if args.word_hashes:
            from luyen.precision import machine
            print(json.dumps({"machine": machine(), "records": args.records, **compare_word_hashes(data, args.records)}, indent=2))
            return
        setup = (f"from luyen.config import load_config; from luyen.data import stage;"
                 f"cfg = load_config(None, ['model.name={args.model}', 'data.max_length=512'])\n")
        result = {"records": args.records, "input_mb": round(data.stat().st_size / 1e6, 1), "model": args.model}
        result["import_and_load"] = timed(setup + "import luyen.models.resolve as r; r.load_tokenizer(cfg.model.name)")
        out = Path(tmp)
        result["prepare_alone"] = timed(setup + f"stage.run(cfg, [{str(data)!r}], __import__('pathlib').Path({str(out / 'alone')!r}))",
                                        env={"LUYEN_SCAN_CACHE": "0"})  # its own scan, as without a check
        result["check"] = timed(setup + f"stage.check([{str(data)!r}], cfg)")
        result["prepare"] = timed(setup + f"stage.run(cfg, [{str(data)!r}], __import__('pathlib').Path({str(out / 'out')!r}))")
        for key in ("prepare_alone", "check", "prepare"):
            result[key]["records_per_s"] = round(args.records / result[key]["seconds"])
        result["check_then_prepare_s"] = round(result["check"]["seconds"] + result["prepare"]["seconds"], 1)
        # anchors from this same run: the two commands against one prepare that scans for itself, and against
        # the targets (60 s for 1M records, scaled to --records; 2 GB peak)
        result["check_then_prepare_vs_prepare_alone"] = round(
            result["check_then_prepare_s"] / result["prepare_alone"]["seconds"], 2)
        peak = max(result[k]["peak_rss_mb"] for k in ("check", "prepare"))
        result["vs_target"] = {"seconds": round(result["check_then_prepare_s"] / (60 * args.records / 1_000_000), 2),
                               "peak_rss": round(peak / 2048, 2)}
        result["prepare_after_check_identical"] = all(
            (out / "alone" / name).read_bytes() == (out / "out" / name).read_bytes()
            for name in ("train.jsonl", "val.jsonl", "test.jsonl")) and _without_estimate(out / "alone") == _without_estimate(out / "out")
        report = json.loads((Path(tmp) / "out" / "report.json").read_text())
        result["removed"] = report["cleaning"]
        result["scrub"] = report["scrub"]["found"]
        result["split"] = {k: report["split"][k] for k in ("train", "val", "test")}
    from luyen.precision import machine
    print(json.dumps({"machine": machine(), **result}, indent=2))


if __name__ == "__main__":
    main()
