"""The chat page in real headless Chromium (Debian's package; `make test` installs it) against a real
server. The model is a tiny one trained here, in a second, to answer "Xin chào" with markup and
Vietnamese, so the test can see that model output is shown as text and never becomes HTML."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from luyen.config import ServeConfig
from luyen.serve import running
from luyen.serve.app import create_app
from luyen.serve.backends import TransformersBackend

REPLY = '<b>Chào bạn</b> <img src=x onerror="document.title=\'pwned\'"> tiếng Việt đậm & rõ'
ASK = "Xin chào"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def parrot_dir(tmp_path_factory):
    """A tiny model that has learnt one reply to one chat prompt (about 60 Adam steps)."""
    from conftest import make_tiny_model
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from luyen.infer.engine import Engine
    folder = make_tiny_model(tmp_path_factory.mktemp("parrot"))
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    engine = Engine(model, tok)
    prompt = engine.encode(engine.render([{"role": "user", "content": ASK}]))
    target = tok(REPLY, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    ids, labels = torch.tensor([prompt + target]), torch.tensor([[-100] * len(prompt) + target])
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(300):
        loss = model(input_ids=ids, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if loss.item() < 0.005:
            break
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def chat_url(parrot_dir):
    backend = TransformersBackend.load(str(parrot_dir), dtype=torch.float32)
    with running(create_app(backend, ServeConfig())) as url:
        yield url


def test_chat_page_streams_shows_markup_as_text_and_keeps_history(chat_url, tmp_path):
    from playwright.sync_api import sync_playwright
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is missing: `make setup` installs it (apt-get install chromium)"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1100, "height": 700})
        requests, bodies = [], []
        page.on("request", lambda r: requests.append(r.url))
        page.on("request", lambda r: bodies.append(json.loads(r.post_data)) if r.method == "POST" else None)
        page.goto(chat_url + "/")
        # locator waits, not wait_for_function: its polling evaluates strings, which the page's CSP forbids
        page.wait_for_selector("#model option", state="attached")
        # Record the reply's length each time the page has rendered it. Loopback delivers the whole
        # reply of this fast model in one read, so the connection is slowed to 8 kB/s (Chrome's own
        # network throttling) for the reply to arrive, and be shown, in pieces as it would over a network.
        cdp = page.context.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 0, "downloadThroughput": 8000,
                                                      "uploadThroughput": -1})
        page.evaluate("""() => { window.seen = []; new MutationObserver(() => {
            const r = document.querySelector('.msg.assistant .text'); if (r) window.seen.push(r.textContent.length);
            }).observe(document.getElementById('log'), {subtree: true, characterData: true, childList: true}); }""")
        page.fill("#max_tokens", "80")
        page.fill("#input", ASK)
        page.press("#input", "Enter")
        page.wait_for_selector(".msg.assistant[data-done='1']", timeout=60_000)
        reply = page.locator(".msg.assistant .text").first
        assert reply.text_content() == REPLY  # markup and Vietnamese arrive as the characters the model wrote
        assert page.locator("#log b, #log img").count() == 0 and page.title() != "pwned"
        seen = page.evaluate("window.seen")
        partial = {n for n in seen if 0 < n < len(REPLY)}
        assert len(partial) >= 3, seen  # the user watched the reply grow, it did not appear at once
        cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 0, "downloadThroughput": -1,
                                                      "uploadThroughput": -1})
        assert bodies[-1]["stream"] is True and bodies[-1]["max_tokens"] == 80 and bodies[-1]["temperature"] == 0

        page.fill("#system", "Bạn là trợ lý.")
        page.evaluate("document.getElementById('system').dispatchEvent(new Event('change'))")
        page.fill("#input", "Cảm ơn")
        page.press("#input", "Enter")
        page.locator(".msg.assistant[data-done='1']").nth(1).wait_for(timeout=60_000)
        sent = bodies[-1]["messages"]
        assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
        assert sent[0]["content"] == "Bạn là trợ lý." and sent[2]["content"] == REPLY and sent[3]["content"] == "Cảm ơn"

        page.reload()  # the conversation and settings survive a reload
        page.locator(".msg").nth(3).wait_for()
        assert page.locator(".msg").count() == 4
        assert page.locator(".msg.assistant .text").first.text_content() == REPLY
        assert page.input_value("#system") == "Bạn là trợ lý."
        shot = tmp_path / "chat.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert shot.stat().st_size > 10_000
    assert requests and all(u.startswith(chat_url) for u in requests), "the page reached outside the server"


def test_chat_page_lists_the_retrieved_sources_as_text(parrot_dir, tmp_path):
    """With `luyen serve --rag` the page shows the passages the answer was given under it; a document
    whose name is markup stays text."""
    from playwright.sync_api import sync_playwright
    from luyen.config import load_config
    from luyen.rag import build_index
    from luyen.serve import load_rag
    docs = tmp_path / "docs"
    docs.mkdir()
    name = "<b>hanh-ly<b>.md"  # no slash: it is a file name
    (docs / name).write_text("# Hành lý xách tay\n\nMỗi hành khách được mang 7 kg hành lý xách tay.\n", encoding="utf-8")
    build_index(load_config(None, ["rag.k=1"]), [docs], tmp_path / "index")
    backend = TransformersBackend.load(str(parrot_dir), dtype=torch.float32)
    with running(create_app(backend, ServeConfig(max_prompt_tokens=4096), rag=load_rag(str(tmp_path / "index")))) as url, \
            sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_FLAGS)
        page = browser.new_page()
        page.goto(url + "/")
        page.wait_for_selector("#model option", state="attached")
        page.fill("#max_tokens", "8")
        page.fill("#input", "Được mang bao nhiêu kg hành lý?")
        page.press("#input", "Enter")
        page.wait_for_selector(".msg.assistant[data-done='1']", timeout=60_000)
        shown = page.locator(".msg.assistant .sources").text_content()
        assert page.locator("#log b").count() == 0
        browser.close()
    # the parrot cites nothing, so every passage it was given is listed
    assert shown == f"Nguồn (không trích dẫn): [1] {name}"
