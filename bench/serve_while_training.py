"""Chat latency while the same server trains: a real `luyen serve --state-dir` process, one chat request
at a time, first with no job, then while a fine-tuning job (submitted through OpenAI's API) trains.

    python bench/serve_while_training.py                      # the embedded gemma3-270m, LoRA job on the demo data
    python bench/serve_while_training.py --model tiny --requests 10

Prints one JSON object: the CPU it ran on, the thread split the server chose (training / serving), chat
latency p50/p95 and generated tokens/s in both phases and their ratio, and how many training steps the
job made during the second phase. Every prompt is distinct, so no answer comes from the server's cache.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_load import ROOT, free_port, request, served_model, wait_healthy  # noqa: E402

DEMO_DATA = str(ROOT / "examples" / "data" / "vi_ai_qa.jsonl")
JOB_CONFIG = """\
stages: [data, train]
data: {max_length: 512}
train: {max_steps: 100000, save_steps: 50, eval_steps: 1000000, logging_steps: 1}
"""


def chats(port: int, model: str, n: int, max_tokens: int, offset: int) -> dict:
    latencies, tokens = [], 0
    for i in range(n):
        body = {"model": model, "max_tokens": max_tokens, "temperature": 0,
                "messages": [{"role": "user", "content": f"Câu hỏi số {offset + i}: học máy là gì?"}]}
        start = time.perf_counter()
        status, text = request(port, "POST", "/v1/chat/completions", body)
        if status != 200:
            raise SystemExit(f"chat request failed: {status} {text[:300]}")
        latencies.append(time.perf_counter() - start)
        tokens += json.loads(text)["usage"]["completion_tokens"]
    q = statistics.quantiles(latencies, n=20) if n > 1 else latencies * 19
    return {"requests": n, "latency_p50_s": round(statistics.median(latencies), 3), "latency_p95_s": round(q[18], 3),
            "generated_tokens_per_s": round(tokens / sum(latencies), 2)}


def last_step(metrics: Path) -> int:
    if not metrics.is_file():
        return -1
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    return max((r["step"] for r in rows if "loss" in r), default=-1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="gemma3-270m", help="'tiny' (a random model built here) or a model luyen serves")
    ap.add_argument("--data", default=DEMO_DATA, help="the training file the job uploads")
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--max-tokens", type=int, default=32)
    args = ap.parse_args()
    from openai import OpenAI
    from luyen.precision import machine
    with tempfile.TemporaryDirectory() as tmp:
        model = served_model(args.model, Path(tmp))
        if args.model == "tiny" and args.data == DEMO_DATA:  # the demo's answers overflow the tiny model's context
            from conftest import write_short_qa
            args.data = str(write_short_qa(Path(tmp) / "qa.jsonl"))
        (Path(tmp) / "job.yaml").write_text(JOB_CONFIG.replace("512", "256") if args.model == "tiny" else JOB_CONFIG)
        port, state = free_port(), Path(tmp) / "state"
        proc = subprocess.Popen([sys.executable, "-m", "luyen", "serve", model, "--port", str(port), "--state-dir", str(state),
                                 f"serve.job_config={Path(tmp) / 'job.yaml'}", "serve.cache_size=0"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            wait_healthy(port, proc)
            chats(port, model, 2, 4, 10_000)  # warm up
            idle_threads = json.loads(request(port, "GET", "/health")[1])["threads"]
            alone = chats(port, model, args.requests, args.max_tokens, 0)
            client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="-", max_retries=0)
            f = client.files.create(file=open(args.data, "rb"), purpose="fine-tune")
            job = client.fine_tuning.jobs.create(model=model, training_file=f.id)
            metrics = state / "runs" / job.id / "train" / "metrics.jsonl"
            deadline = time.time() + 900
            while last_step(metrics) < 1:  # the job has loaded its model and is taking optimiser steps
                got = client.fine_tuning.jobs.retrieve(job.id)
                if got.status in ("failed", "cancelled") or time.time() > deadline:
                    raise SystemExit(f"the job did not start training: {got.status} {got.error}")
                time.sleep(0.5)
            busy_threads = json.loads(request(port, "GET", "/health")[1])["threads"]
            steps_before, t0 = last_step(metrics), time.perf_counter()
            training = chats(port, model, args.requests, args.max_tokens, 1000)
            steps = last_step(metrics) - steps_before
            training["job_steps_meanwhile"], training["job_steps_per_s"] = steps, round(steps / (time.perf_counter() - t0), 3)
            client.fine_tuning.jobs.cancel(job.id)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    print(json.dumps({"bench": "serve_while_training", "machine": machine(), "model": args.model,
                      "max_tokens": args.max_tokens, "threads_idle": idle_threads, "threads_while_training": busy_threads,
                      "no_job": alone, "job_running": training,
                      "p50_ratio": round(training["latency_p50_s"] / alone["latency_p50_s"], 2),
                      "p95_ratio": round(training["latency_p95_s"] / alone["latency_p95_s"], 2)}, indent=2))


if __name__ == "__main__":
    main()
