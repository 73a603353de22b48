"""Serving under load: N concurrent short chat requests against a real `luyen serve` process on loopback.

    python bench/serve_load.py                        # a tiny random model, 100 requests, all at once
    python bench/serve_load.py --model gemma3-270m --requests 32 --max-tokens 16
    python bench/serve_load.py --model gemma3-270m --requests 48 --concurrency 16 --max-tokens 96 --vary --single 3
    python bench/serve_load.py --backend llamacpp --model runs/demo/export/gguf/model-q8_0.gguf --requests 48 --concurrency 16 --max-tokens 96 --vary --single 3

--vary gives request i a max_tokens between a quarter of --max-tokens and all of it (spread evenly,
the same every run), so answers end at different steps as real ones do; --concurrency N is N clients
that each send their next request when the last is answered. --single K first sends K requests one at
a time: the single-stream anchor (its tokens/s), and the concurrent run reports its aggregate tokens/s
as a ratio to it. With continuous batching a request that arrives while a batch runs joins it at the
next step; without it, it waited for the whole batch to end.

The server runs in its own process (`python -m luyen serve`), the clients are threads here speaking
plain HTTP. Every prompt is distinct, so nothing comes from the answer cache in the first pass; a
second pass repeats the same requests to measure cache hits. Prints one JSON object: errors,
p50/p95/max latency, requests/s, generated tokens/s, and the batches the server used (from /metrics).
"""
from __future__ import annotations

import argparse
import http.client
import json
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port: int, method: str, path: str, body: dict | None = None) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        conn.request(method, path, json.dumps(body) if body else None, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def metric(port: int, name: str) -> float:
    text = request(port, "GET", "/metrics")[1]
    return sum(float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


def wait_healthy(port: int, proc: subprocess.Popen, timeout: float = 600) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with code {proc.returncode}")
        try:
            if request(port, "GET", "/health")[0] == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the server did not become healthy in time")


def served_model(name: str, tmp: Path) -> str:
    """``name``, or for 'tiny' a random 2-layer model built in ``tmp`` (seconds, no download)."""
    if name != "tiny":
        return name
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import make_tiny_model
    return str(make_tiny_model(tmp / "tiny"))


def load(port: int, model: str, n: int, concurrency: int, max_tokens: int, vary: bool = False, tag: str = "") -> dict:
    latencies, tokens, errors = [], [], []
    gate = threading.Semaphore(concurrency)

    def limit(i: int) -> int:
        low = max(1, max_tokens // 4)
        return low + (i * 37) % (max_tokens - low + 1) if vary else max_tokens

    def one(i: int):
        body = {"model": model, "max_tokens": limit(i), "temperature": 0,
                "messages": [{"role": "user", "content": f"Câu hỏi số {i}{tag}: học máy là gì?"}]}
        with gate:
            start = time.perf_counter()
            try:
                status, text = request(port, "POST", "/v1/chat/completions", body)
                if status != 200:
                    errors.append(f"{status}: {text[:200]}")
                    return
                tokens.append(json.loads(text)["usage"]["completion_tokens"])
            except Exception as e:  # noqa: BLE001 - every failure is counted and reported
                errors.append(repr(e))
                return
            latencies.append(time.perf_counter() - start)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    return {"requests": n, "errors": len(errors), "first_errors": errors[:3], "wall_s": round(wall, 3),
            "latency_p50_s": round(q[49], 4), "latency_p95_s": round(q[94], 4),
            "latency_max_s": round(max(latencies, default=0), 4),
            "requests_per_s": round(len(latencies) / wall, 2), "generated_tokens_per_s": round(sum(tokens) / wall, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny", help="'tiny' (a random 2-layer model built here) or any model luyen serves")
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--concurrency", type=int, default=100)
    ap.add_argument("--max-tokens", type=int, default=8)
    ap.add_argument("--max-batch-size", type=int, default=32)
    ap.add_argument("--backend", default="transformers", choices=["transformers", "llamacpp"], help="serve.backend (llamacpp: --model is a .gguf)")
    ap.add_argument("--vary", action="store_true", help="spread max_tokens over [max_tokens/4, max_tokens]")
    ap.add_argument("--single", type=int, default=0, help="first K requests one at a time: the single-stream anchor")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = served_model(args.model, Path(tmp))
        port = free_port()
        cmd = [sys.executable, "-m", "luyen", "serve", model, "--port", str(port),
               f"serve.max_batch_size={args.max_batch_size}", "serve.cache_size=4096", f"serve.backend={args.backend}"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            t0 = time.perf_counter()
            wait_healthy(port, proc)
            startup = time.perf_counter() - t0
            request(port, "POST", "/v1/chat/completions", {"model": model, "max_tokens": 2, "temperature": 0,
                                                           "messages": [{"role": "user", "content": "warm up"}]})
            single = (load(port, model, args.single, 1, args.max_tokens, tag=" (single)") if args.single else None)
            batches = metric(port, "luyen_batches_total")
            fresh = load(port, model, args.requests, args.concurrency, args.max_tokens, args.vary)
            fresh["batches"] = int(metric(port, "luyen_batches_total") - batches)
            fresh["mean_batch_rows"] = round(args.requests / max(fresh["batches"], 1), 1)
            if single:
                fresh["vs_single_stream"] = round(fresh["generated_tokens_per_s"] / single["generated_tokens_per_s"], 2)
            cached = load(port, model, args.requests, args.concurrency, args.max_tokens, args.vary)
            cached["cache_hits"] = int(metric(port, "luyen_cache_hits_total"))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    from luyen.precision import machine
    print(json.dumps({"bench": "serve_load", "machine": machine(), "model": args.model, "backend": args.backend,
                      "max_tokens": args.max_tokens,
                      "concurrency": args.concurrency, "max_batch_size": args.max_batch_size, "vary": args.vary,
                      "single_stream": single,
                      "server_startup_s": round(startup, 1), "fresh": fresh, "repeated (cache)": cached}, indent=2))
    if fresh["errors"] or cached["errors"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
