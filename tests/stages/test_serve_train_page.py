"""The training page (/train) in real headless Chromium (Debian's package; `make test` installs it) against
a real server with the fine-tuning API: upload, the data check, a LoRA job watched to the end with its
events and loss curve, the verdict and "Open in chat"; a bad file's error line; cancelling a job. The
model is a tiny random one and jobs use a short config (a few dozen steps, 4 eval examples)."""
from __future__ import annotations

import json
import re
import shutil

import pytest
import requests
import torch

from luyen.config import ServeConfig
from luyen.serve import running
from luyen.serve.app import create_app
from luyen.serve.backends import TransformersBackend

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
JOB_YAML = """\
data:
  max_length: 256
train:
  lr: 3.0e-3
  save_steps: 5
  eval_steps: 5
  batch_size: 4
  grad_accum: 1
eval:
  limit: 4
  general: false
  baselines: [zero-shot]
generate:
  max_new_tokens: 16
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from conftest import make_tiny_model, write_short_qa
    root = tmp_path_factory.mktemp("trainpage")
    model = make_tiny_model(root / "tiny")
    qa = write_short_qa(root / "qa.jsonl", n=60)
    rows = qa.read_text(encoding="utf-8").splitlines()
    row = json.loads(rows[5])
    row["answer"] += " Viết cho an@example.com nhé."  # personal data the check removes and reports
    rows[5] = json.dumps(row, ensure_ascii=False)
    qa.write_text("\n".join(rows) + "\n", encoding="utf-8")
    (root / "job.yaml").write_text(JOB_YAML, encoding="utf-8")
    backend = TransformersBackend.load(str(model), dtype=torch.float32)
    cfg = ServeConfig(state_dir=str(root / "state"), job_threads=1, job_config=str(root / "job.yaml"))
    with running(create_app(backend, cfg)) as url:
        yield {"url": url, "model": str(model), "qa": qa, "root": root}


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is missing: `make setup` installs it (apt-get install chromium)"
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        yield b
        b.close()


def open_train(browser, url: str, path: str = "/train"):
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.requests, page.errors = [], []
    page.on("request", lambda r: page.requests.append(r.url))
    page.on("pageerror", lambda e: page.errors.append(str(e)))  # a script error, a CSP violation included
    # the chat page has no icon: the browser's own /favicon.ico request is not the page's error
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error"
            and not m.location.get("url", "").endswith("/favicon.ico") else None)
    page.on("response", lambda r: page.errors.append(f"{r.status} {r.url}") if r.status >= 400
            and not r.url.endswith("/favicon.ico") else None)
    page.goto(url + path)
    # locator waits, not wait_for_function: its polling evaluates strings, which the page's CSP forbids
    page.wait_for_selector("#model option", state="attached")
    page.wait_for_selector("#threads:has-text('training')")
    return page


def upload(page, path) -> None:
    page.set_input_files("#file", str(path))
    page.click("#upload")
    page.wait_for_selector("#preflight[data-usable]", timeout=30_000)


def api(url: str, path: str, **kw) -> dict:
    r = requests.request(kw.pop("method", "GET"), url + path, timeout=30, **kw)
    r.raise_for_status()
    return r.json()


def test_upload_check_train_watch_and_chat_with_the_result(server, browser, tmp_path):
    url = server["url"]
    page = open_train(browser, url)
    assert page.input_value("#model") == server["model"]
    assert re.fullmatch(r"CPU threads: training 0 · serving \d+", page.text_content("#threads"))
    upload(page, server["qa"])
    assert page.get_attribute("#preflight", "data-usable") == "true"
    assert page.text_content("#formats") == "qa 60"
    file_id = page.text_content("#upload-status").split("bytes, ")[1].rstrip(").")
    report = api(url, f"/v1/files/{file_id}/preflight")
    k = {name: f"{v:g}" for name, v in report["tokens"]["kept"].items()}  # as JavaScript prints numbers
    tokens = page.text_content("#tokens")
    assert f"min {k['min']} / mean {k['mean']} / p50 {k['p50']} / p95 {k['p95']} / max {k['max']}" in tokens
    assert f"{report['tokens']['train_tokens']} training tokens" in tokens
    assert page.text_content("#scrub").startswith("removed: email 1")
    assert "peak memory" in page.text_content("#estimate")
    assert page.locator("#errors li").count() == 0 and page.is_enabled("#start")

    # record the page's status each time the curve is redrawn: it must grow while the job runs
    page.evaluate("""() => { window.drawnWhile = []; new MutationObserver(() => window.drawnWhile.push(
        document.getElementById('status').dataset.status)).observe(document.getElementById('curve'),
        {childList: true}); }""")
    page.select_option("#method", "dpo")  # DPO needs preference pairs, which a QA file has none of
    assert page.is_disabled("#start") and "preference pairs" in page.text_content("#start-note")
    page.select_option("#method", "lora")
    page.fill("#epochs", "2")
    page.fill("#suffix", "page")
    page.click("#start")
    page.wait_for_selector("#status[data-status='running']", timeout=30_000)
    page.wait_for_selector("#threads:has-text('training 1 · serving 1')", timeout=10_000)  # job_threads=1
    page.wait_for_selector("#events li.metrics", timeout=60_000)
    page.wait_for_selector("#status[data-status='succeeded']", timeout=90_000)
    page.wait_for_selector("#threads:has-text('training 0')", timeout=5_000)
    job_id = page.evaluate("new URLSearchParams(location.search).get('job')")
    job = api(url, f"/v1/fine_tuning/jobs/{job_id}")
    assert job["status"] == "succeeded" and job["luyen"]["method"] == "lora"
    assert job["method"]["supervised"]["hyperparameters"]["n_epochs"] == 2 and job["user_provided_suffix"] == "page"
    assert "running" in page.evaluate("window.drawnWhile"), "the curve was not drawn while the job ran"
    train_points = int(page.get_attribute("#curve polyline.train", "data-points"))
    valid_points = int(page.get_attribute("#curve polyline.valid", "data-points"))
    assert train_points >= 2 and valid_points >= 2
    assert len(page.get_attribute("#curve polyline.train", "points").split()) == train_points
    events = page.locator("#events li").all_text_contents()
    assert "The job has successfully completed" in events[0] and any(re.search(r"Step 1/\d+: training loss", e) for e in events)
    page.wait_for_selector("#verdict:visible")
    assert page.text_content("#verdict") == job["luyen"]["verdict"] and job["luyen"]["verdict"]
    page.wait_for_selector("#report[href]")
    href = page.get_attribute("#report", "href")
    assert href == f"/v1/fine_tuning/jobs/{job_id}/report" and page.get_attribute("#report", "target") == "_blank"
    assert requests.get(url + href, timeout=30).text.lstrip().lower().startswith("<!doctype html")
    shot = tmp_path / "train.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000 and not page.errors, page.errors

    bodies = []
    page.on("request", lambda r: bodies.append(json.loads(r.post_data)) if r.method == "POST"
            and r.url.endswith("/chat/completions") else None)
    page.click("#open-chat")
    page.wait_for_url("**/?model=*")
    page.wait_for_selector("#model option", state="attached")
    assert page.input_value("#model") == job["fine_tuned_model"]
    page.fill("#max_tokens", "6")
    page.fill("#input", "xin chào")
    page.press("#input", "Enter")
    page.wait_for_selector(".msg.assistant[data-done='1']", timeout=60_000)
    assert page.locator(".msg.error").count() == 0
    assert page.text_content(".msg.assistant .text").strip()
    assert bodies and bodies[-1]["model"] == job["fine_tuned_model"]
    assert all(u.startswith(url) for u in page.requests), "the page reached outside the server"
    assert not page.errors, page.errors
    page.close()


def test_a_bad_file_shows_its_line_and_cannot_start(server, browser):
    url = server["url"]
    rows = server["qa"].read_text(encoding="utf-8").splitlines()
    rows[2] = json.dumps({"question": "thiếu câu trả lời?"}, ensure_ascii=False)
    bad = server["root"] / "<i>bad<i>.jsonl"  # a file name that is markup stays text (no slash: a name)
    bad.write_text("\n".join(rows) + "\n", encoding="utf-8")
    page = open_train(browser, url)
    upload(page, bad)
    assert page.get_attribute("#preflight", "data-usable") == "false"
    errors = page.locator("#errors li").all_text_contents()
    assert len(errors) == 1 and errors[0].startswith("<i>bad<i>.jsonl:3: field 'answer'"), errors
    assert page.locator("#preflight i, #job i").count() == 0
    assert any("bad records" in p for p in page.locator("#problems li").all_text_contents())
    assert page.is_disabled("#start")

    # a job on that file, started through the API, fails at validation; the page shows why, line and all
    file_id = page.text_content("#upload-status").split("bytes, ")[1].rstrip(").")
    job = api(url, "/v1/fine_tuning/jobs", method="POST", json={"model": server["model"], "training_file": file_id})
    page.goto(f"{url}/train?job={job['id']}")
    page.wait_for_selector("#status[data-status='failed']", timeout=30_000)
    assert "<i>bad<i>.jsonl:3: field 'answer'" in page.text_content("#job-error")
    assert page.is_visible("#job-error") and page.is_hidden("#result") and page.is_disabled("#cancel")
    assert not page.errors, page.errors
    page.close()


def test_cancel_stops_a_running_job(server, browser):
    url = server["url"]
    page = open_train(browser, url)
    upload(page, server["qa"])
    page.fill("#epochs", "40")
    page.click("#start")
    page.wait_for_selector("#status[data-status='running']", timeout=30_000)
    assert page.is_enabled("#cancel")
    page.click("#cancel")
    page.wait_for_selector("#status[data-status='cancelled']", timeout=5_000)
    job_id = page.evaluate("new URLSearchParams(location.search).get('job')")
    job = api(url, f"/v1/fine_tuning/jobs/{job_id}")
    assert job["status"] == "cancelled" and job["hyperparameters"]["n_epochs"] == 40
    page.wait_for_selector("#events li:has-text('Job cancelled')", timeout=5_000)
    assert page.is_disabled("#cancel") and page.is_hidden("#result") and not page.errors, page.errors
    page.close()
