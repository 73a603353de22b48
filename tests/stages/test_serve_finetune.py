"""OpenAI's fine-tuning API on a real server on loopback, driven by the official `openai` client unchanged:
files, jobs, events, checkpoints, the fine-tuned model served at once, cancel/pause/resume, bad requests,
and a server SIGKILLed mid-training that finishes the job with the weights of an uninterrupted run."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import make_tiny_model, write_short_qa
from luyen.config import ServeConfig
from luyen.serve import running
from luyen.serve.app import create_app
from luyen.serve.backends import TransformersBackend

JOB_CONFIG = """\
data: {max_length: 256}
train: {lr: 3.0e-3, save_steps: 5, eval_steps: 5, batch_size: 4, grad_accum: 1}
eval: {limit: 4, general: false, baselines: [zero-shot]}
generate: {max_new_tokens: 16}
"""
DONE = ("succeeded", "failed", "cancelled")


def wait(client, job_id, until=DONE, timeout=180):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in until:
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} still {job.status} after {timeout} s")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("ft_model") / "tiny")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("ft_files")
    (root / "job.yaml").write_text(JOB_CONFIG)
    bad = root / "bad.jsonl"
    bad.write_text('{"question": "a?", "answer": "b."}\n{"question": "c?", "answer": "d."}\n{"question": "e?"}\n')
    return {"qa": write_short_qa(root / "qa.jsonl", n=60), "val": write_short_qa(root / "val.jsonl", n=9, seed=5),
            "bad": bad, "config": root / "job.yaml", "root": root}


@pytest.fixture(scope="module")
def server(model_dir, files, tmp_path_factory):
    backend = TransformersBackend.load(str(model_dir), dtype=torch.float32)
    cfg = ServeConfig(state_dir=str(tmp_path_factory.mktemp("ft_state")), job_threads=1,
                      job_config=str(files["config"]), max_file_bytes=200_000, api_key="k3y")
    with running(create_app(backend, cfg)) as url:
        yield url, backend


@pytest.fixture(scope="module")
def client(server):
    from openai import OpenAI
    return OpenAI(base_url=server[0] + "/v1", api_key="k3y", max_retries=0)


@pytest.fixture(scope="module")
def finished(client, files, model_dir):
    """One supervised job, run to the end: (job, training file)."""
    f = client.files.create(file=open(files["qa"], "rb"), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model=str(model_dir), training_file=f.id, suffix="support", seed=7,
                                         metadata={"team": "cskh"},
                                         method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2}}})
    assert job.status == "validating_files" and job.seed == 7 and job.user_provided_suffix == "support"
    return wait(client, job.id), f


def test_a_job_trains_reports_and_is_served_at_once(client, finished, server, model_dir):
    job, f = finished
    assert job.status == "succeeded", job.error
    assert job.fine_tuned_model == f"ft:{model_dir}:support:{job.id}"
    assert job.hyperparameters.n_epochs == 2 and job.hyperparameters.batch_size == 4
    assert job.metadata == {"team": "cskh"} and job.finished_at >= job.created_at
    run = Path(job.luyen["run_folder"])
    train = json.loads((run / "train" / "manifest.json").read_text())["metrics"]
    assert job.trained_tokens == train["train_tokens"] > 0
    assert job.luyen["verdict"] == json.loads((run / "eval" / "manifest.json").read_text())["metrics"]["verdict"]
    # the events, newest first, from creation to success; metrics events carry the logged losses
    events = client.fine_tuning.jobs.list_events(job.id, limit=100).data
    messages = [e.message for e in events]
    assert messages[0] == "The job has successfully completed" and messages[-1].startswith("Created fine-tuning job")
    assert [e.created_at for e in events] == sorted((e.created_at for e in events), reverse=True)
    logged = [json.loads(line) for line in (run / "train" / "metrics.jsonl").read_text().splitlines()]
    steps = {e.data["step"]: e.data for e in events if e.type == "metrics"}
    total = json.loads((run / "train" / "manifest.json").read_text())["metrics"]["steps"]
    assert any(m.startswith(f"Step {total}/{total}: training loss=") for m in messages)
    assert sorted(steps) == sorted(r["step"] for r in logged if "loss" in r or "val_loss" in r)
    last = logged[-1]
    assert steps[last["step"]]["train_loss"] == last["loss"]
    # pagination: pages of 3 walk the same list with no gap or repeat
    seen, after = [], None
    while True:
        page = client.fine_tuning.jobs.list_events(job.id, limit=3, after=after) if after else \
            client.fine_tuning.jobs.list_events(job.id, limit=3)
        seen += [e.id for e in page.data]
        if not page.has_more:
            break
        after = page.data[-1].id
    assert seen == [e.id for e in events]
    # the result file: OpenAI's step metrics CSV
    result = client.files.content(job.result_files[0]).text.splitlines()
    assert result[0].startswith("step,train_loss,valid_loss")
    assert len(result) - 1 == len(steps)
    # checkpoints: the saved steps, newest first, with their logged losses
    ckpts = client.fine_tuning.jobs.checkpoints.list(job.id).data
    on_disk = sorted(int(p.name.split("-")[1]) for p in (run / "train" / "checkpoints").glob("step-*"))
    assert [c.step_number for c in ckpts] == sorted(on_disk, reverse=True) and ckpts
    assert ckpts[0].fine_tuned_model_checkpoint == f"{job.fine_tuned_model}:ckpt-step-{on_disk[-1]}"
    # served at once as an adapter over the shared base: its answer is the trained run's own
    assert job.fine_tuned_model in [m.id for m in client.models.list().data]
    from luyen.infer.engine import Engine
    from luyen.config import GenerateConfig
    ask = [{"role": "user", "content": "xin chào bạn"}]
    reply = client.chat.completions.create(model=job.fine_tuned_model, messages=ask, max_tokens=12, temperature=0)
    engine = Engine.load(str(run / "train"), dtype=torch.float32)
    assert reply.choices[0].message.content == engine.chat(ask, GenerateConfig(max_new_tokens=12)).text
    # a request without max_tokens gets the answer budget the job's training recorded, not the server's 256
    budget = json.loads((run / "train" / "model" / "generation_config.json").read_text())["max_new_tokens"]
    free = client.chat.completions.create(model=job.fine_tuned_model, messages=ask, temperature=0)
    assert free.usage.completion_tokens == budget or free.choices[0].finish_reason == "stop"
    assert free.usage.completion_tokens <= budget < 256
    base = client.chat.completions.create(model=str(model_dir), messages=ask, max_tokens=12, temperature=0)
    assert base.choices[0].message.content != reply.choices[0].message.content
    # the run folder is a normal run: `luyen eval` and `luyen export` read its train/ folder
    assert (run / "train" / "model" / "adapter_config.json").is_file()


def test_dpo_and_full_jobs_are_served_too(client, files, model_dir, tmp_path):
    """method.type=dpo on OpenAI's preference format trains LoRA adapters by DPO with the request's beta;
    luyen.method=full trains every weight, and that model is served beside the base, not as an adapter."""
    import random
    from luyen.config import GenerateConfig
    from luyen.infer.engine import Engine
    rng, pref = random.Random(3), tmp_path / "prefs.jsonl"
    with pref.open("w") as out:
        for i in range(40):
            q = f"câu hỏi số {i} về chuyến bay?"
            good, bad = f"vé máy bay hành lý {rng.randint(1, 9)} kg.", f"mô hình học máy {rng.randint(1, 9)}."
            out.write(json.dumps({"input": {"messages": [{"role": "user", "content": q}]},
                                  "preferred_output": [{"role": "assistant", "content": good}],
                                  "non_preferred_output": [{"role": "assistant", "content": bad}]},
                                 ensure_ascii=False) + "\n")
    f = client.files.create(file=open(pref, "rb"), purpose="fine-tune")
    dpo = client.fine_tuning.jobs.create(model=str(model_dir), training_file=f.id, suffix="dpo", method={
        "type": "dpo", "dpo": {"hyperparameters": {"beta": 0.25, "n_epochs": 1, "learning_rate_multiplier": 2}}})
    qa = client.files.create(file=open(files["qa"], "rb"), purpose="fine-tune")
    full = client.fine_tuning.jobs.create(model=str(model_dir), training_file=qa.id, suffix="full",
                                          hyperparameters={"n_epochs": 1}, extra_body={"luyen": {"method": "full"}})
    dpo, full = wait(client, dpo.id), wait(client, full.id)
    assert dpo.status == "succeeded", dpo.error
    assert dpo.method.type == "dpo" and dpo.method.dpo.hyperparameters.beta == 0.25
    train = json.loads((Path(dpo.luyen["run_folder"]) / "train" / "manifest.json").read_text())["metrics"]
    assert train["method"] == "dpo" and train["preference"]["beta"] == 0.25 and train["lr"] == pytest.approx(2 * 3e-3)  # the job config's lr x the multiplier
    assert full.status == "succeeded", full.error
    run = Path(full.luyen["run_folder"]) / "train"
    assert json.loads((run / "manifest.json").read_text())["metrics"]["method"] == "full"
    assert not (run / "model" / "adapter_config.json").exists()
    served = [m.id for m in client.models.list().data]
    assert dpo.fine_tuned_model in served and full.fine_tuned_model in served
    ask = [{"role": "user", "content": "câu hỏi số 3 về chuyến bay?"}]
    for job in (dpo, full):
        reply = client.chat.completions.create(model=job.fine_tuned_model, messages=ask, max_tokens=10, temperature=0)
        own = Engine.load(str(Path(job.luyen["run_folder"]) / "train"), dtype=torch.float32)
        assert reply.choices[0].message.content == own.chat(ask, GenerateConfig(max_new_tokens=10)).text


def test_a_full_model_added_while_serving_runs_in_the_servers_precision(model_dir):
    """A job's fully fine-tuned model is served in the base's precision, not the machine's default: a server
    started in fp32 on a bf16 CPU once served its jobs' full models in bf16, so their greedy answers could
    differ from the same weights in fp32 (the flake the test above showed on AMX machines)."""
    from luyen.infer.engine import inference_dtype
    other = torch.float32 if inference_dtype() == torch.bfloat16 else torch.bfloat16  # never the default
    backend = TransformersBackend.load(str(model_dir), dtype=other)
    backend.add_model("copy", str(model_dir))  # a model folder without an adapter: served as a full model
    assert next(backend.full["copy"].model.parameters()).dtype == other


def test_a_jobs_run_folder_is_a_normal_run(finished, tmp_path):
    """`luyen eval` and `luyen export` take the job's run folder, and its config.yaml is a `luyen run` config."""
    job, _ = finished
    run = Path(job.luyen["run_folder"])
    config = run.parent.parent / "jobs" / job.id / "config.yaml"
    luyen = [sys.executable, "-m", "luyen"]
    done = subprocess.run([*luyen, "export", str(run / "train"), "--out", str(tmp_path / "merged")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "merged" / "manifest.json").is_file()
    done = subprocess.run([*luyen, "eval", str(config), "--model", str(run / "train"), "--data", str(run / "data"),
                           "--out", str(tmp_path / "eval"), "eval.limit=2"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "eval" / "manifest.json").read_text())["metrics"]["verdict"]
    done = subprocess.run([*luyen, "run", str(config)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "data skipped, train skipped, eval skipped" in done.stdout, done.stdout + done.stderr


def test_files_list_content_and_delete(client, finished, files):
    job, f = finished
    assert f.filename == "qa.jsonl" and f.bytes == files["qa"].stat().st_size and f.purpose == "fine-tune"
    assert client.files.retrieve(f.id).filename == "qa.jsonl"
    assert client.files.content(f.id).content == files["qa"].read_bytes()
    ids = [x.id for x in client.files.list().data]
    assert f.id in ids and job.result_files[0] in ids
    other = client.files.create(file=("notes.csv", b"question,answer\na?,b.\n"), purpose="fine-tune")
    assert client.files.delete(other.id).deleted
    from openai import NotFoundError
    with pytest.raises(NotFoundError):
        client.files.retrieve(other.id)


def test_validation_file_is_the_validation_split(client, files, model_dir):
    train = client.files.create(file=open(files["qa"], "rb"), purpose="fine-tune")
    val = client.files.create(file=open(files["val"], "rb"), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model=str(model_dir), training_file=train.id, validation_file=val.id,
                                         hyperparameters={"n_epochs": 1}, seed=1)
    job = wait(client, job.id)
    assert job.status == "succeeded", job.error
    data = Path(job.luyen["run_folder"]) / "data"
    questions = {json.loads(line)["messages"][0]["content"] for line in (data / "val.jsonl").read_text().splitlines()}
    given = {json.loads(line)["question"] for line in files["val"].read_text().splitlines()}
    assert questions == given
    split = json.loads((data / "manifest.json").read_text())["metrics"]
    assert split["train"] + split["test"] == 60 and split["test"] > 0


def test_a_bad_training_file_fails_the_job_with_its_line(client, files, model_dir):
    f = client.files.create(file=open(files["bad"], "rb"), purpose="fine-tune")
    job = wait(client, client.fine_tuning.jobs.create(model=str(model_dir), training_file=f.id).id)
    assert job.status == "failed" and job.error.code == "invalid_training_file" and job.error.param == "training_file"
    assert job.error.message.startswith("bad.jsonl:3: ") and "answer" in job.error.message
    assert "Fix:" in job.error.message and str(files["root"]) not in job.error.message


def test_cancel_pause_and_resume(client, files, model_dir, server):
    f = client.files.create(file=open(files["qa"], "rb"), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model=str(model_dir), training_file=f.id, hyperparameters={"n_epochs": 40})
    wait(client, job.id, until=("running",))
    threads = json.loads(_get(server[0] + "/health"))["threads"]
    assert threads == {"training": 1, "serving": max(1, (os.cpu_count() or 1) - 1)}
    run = Path(client.fine_tuning.jobs.retrieve(job.id).luyen["run_folder"])
    _until(lambda: list((run / "train" / "checkpoints").glob("step-*")), "a checkpoint")
    # re-estimated from the measured pace (the preflight's compute estimate for this tiny model is ~0 s)
    _until(lambda: (client.fine_tuning.jobs.retrieve(job.id).estimated_finish or 0) > time.time() + 5, "a re-estimate", 30)
    from openai import ConflictError
    with pytest.raises(ConflictError, match="cancel it first"):  # a file a running job reads stays
        client.files.delete(f.id)
    assert client.fine_tuning.jobs.pause(job.id).status == "paused"
    metrics = run / "train" / "metrics.jsonl"
    _until(lambda: _quiet(metrics, 2.0), "training to stop after pause")
    paused_at = _last_step(metrics)
    assert client.fine_tuning.jobs.resume(job.id).status == "queued"
    wait(client, job.id, until=("running",))
    _until(lambda: _last_step(metrics) > paused_at + 2, "training to go on after resume")
    log = (Path(client.fine_tuning.jobs.retrieve(job.id).luyen["run_folder"]).parent.parent / "jobs" / job.id / "log.txt")
    assert "resumed from step-" in log.read_text()
    start = time.monotonic()
    assert client.fine_tuning.jobs.cancel(job.id).status == "cancelled"
    _until(lambda: _quiet(metrics, 2.0), "training to stop after cancel")
    assert time.monotonic() - start < 15
    assert list((run / "train" / "checkpoints").glob("step-*")), "cancel keeps the checkpoints"
    assert client.fine_tuning.jobs.retrieve(job.id).status == "cancelled"
    assert client.files.delete(f.id).deleted
    # job pagination: newest first, `after` continues
    first = client.fine_tuning.jobs.list(limit=1)
    assert first.data[0].id == job.id and first.has_more
    second = client.fine_tuning.jobs.list(limit=1, after=job.id)
    assert second.data[0].id != job.id


def test_bad_requests_get_openai_errors(client, server, files, model_dir, finished):
    import openai
    url, _ = server
    job, f = finished
    results = client.files.create(file=open(files["qa"], "rb"), purpose="fine-tune")
    cases = [
        (dict(model="gpt-4o-mini", training_file=f.id), openai.BadRequestError, "model"),
        (dict(model=str(model_dir), training_file="file-nope"), openai.BadRequestError, "training_file"),
        (dict(model=str(model_dir), training_file=job.result_files[0]), openai.BadRequestError, "training_file"),
        (dict(model=str(model_dir), training_file=f.id, method={"type": "reinforcement"}), openai.BadRequestError, "method.type"),
        (dict(model=str(model_dir), training_file=f.id, integrations=[{"type": "wandb", "wandb": {"project": "x"}}]),
         openai.BadRequestError, "integrations"),
        (dict(model=str(model_dir), training_file=f.id, hyperparameters={"n_epochs": 0}), openai.BadRequestError,
         "hyperparameters.n_epochs"),
        (dict(model=str(model_dir), training_file=f.id, suffix="../x"), openai.BadRequestError, "suffix"),
        (dict(model=str(model_dir), training_file=f.id, extra_body={"learning_rate": 1}), openai.BadRequestError, "learning_rate"),
    ]
    for kwargs, error, param in cases:
        with pytest.raises(error) as e:
            client.fine_tuning.jobs.create(**kwargs)
        assert e.value.body["param"] == param, (kwargs, e.value.body)
    with pytest.raises(openai.NotFoundError):
        client.fine_tuning.jobs.retrieve("ftjob-nope")
    with pytest.raises(openai.ConflictError):
        client.fine_tuning.jobs.cancel(job.id)  # it succeeded
    with pytest.raises(openai.BadRequestError, match="purpose"):
        client.files.create(file=open(files["qa"], "rb"), purpose="assistants")
    with pytest.raises(openai.APIStatusError) as e:
        client.files.create(file=("big.jsonl", b"x" * 300_000), purpose="fine-tune")
    assert e.value.status_code == 413
    sneaky = client.files.create(file=("../../../etc/x.jsonl", open(files["qa"], "rb").read()), purpose="fine-tune")
    assert sneaky.filename == "x.jsonl"
    state = Path(job.luyen["run_folder"]).parent.parent
    assert {p.name for p in (state / "files").iterdir()} >= {f"{sneaky.id}.jsonl", f"{results.id}.jsonl"}
    assert not (state.parent / "etc").exists()
    for method, path in (("GET", "/v1/files"), ("POST", "/v1/fine_tuning/jobs"), ("GET", f"/v1/fine_tuning/jobs/{job.id}"),
                         ("GET", "/train"), ("DELETE", f"/v1/models/{job.fine_tuned_model}")):
        status, body = _call(url + path, method, key=None)
        assert status == 401 and body["error"]["type"] == "authentication_error", (path, status)
    with pytest.raises(openai.PermissionDeniedError):
        client.models.delete(str(model_dir))  # the base is not a job's model


def test_deleting_a_fine_tuned_model(client, finished):
    import openai
    job, _ = finished
    assert client.models.delete(job.fine_tuned_model).deleted
    assert job.fine_tuned_model not in [m.id for m in client.models.list().data]
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model=job.fine_tuned_model, messages=[{"role": "user", "content": "hi"}])
    assert client.fine_tuning.jobs.retrieve(job.id).luyen["served"] is False


def _get(url):
    import urllib.request
    req = urllib.request.Request(url, headers={"Authorization": "Bearer k3y"})
    return urllib.request.urlopen(req).read()


def _call(url, method, key):
    import urllib.error
    import urllib.request
    req = urllib.request.Request(url, method=method, headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _until(check, what, timeout=120):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"waited {timeout} s for {what}")


def _last_step(metrics: Path) -> int:
    rows = [json.loads(line) for line in metrics.read_text().splitlines()] if metrics.is_file() else []
    return max((r["step"] for r in rows), default=-1)


def _quiet(path: Path, seconds: float) -> bool:
    """The file has not changed for `seconds`."""
    return path.is_file() and time.time() - path.stat().st_mtime > seconds


def test_server_sigkilled_mid_training_finishes_the_job_with_uninterrupted_weights(model_dir, files, tmp_path):
    """`luyen serve` (a real process) is SIGKILLed while a job trains: the job process dies with it, and a server
    started again on the same state folder finishes the job from its last checkpoint. A second job queued behind
    it (same file, same seed) stays queued across the kill and then runs uninterrupted: equal weights."""
    from openai import OpenAI
    from safetensors.torch import load_file
    state = tmp_path / "state"

    def start():
        import socket
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        proc = subprocess.Popen([sys.executable, "-m", "luyen", "serve", str(model_dir), "--state-dir", str(state),
                                 "--port", str(port), "serve.job_threads=1", f"serve.job_config={files['config']}"],
                                stdout=subprocess.DEVNULL, stderr=open(tmp_path / "server.log", "ab"))
        url = f"http://127.0.0.1:{port}"
        _until(lambda: proc.poll() is None and _call(url + "/health", "GET", None)[0] == 200
               if _listening(port) else proc.poll() is not None and pytest.fail("server died"), "the server", 120)
        return proc, OpenAI(base_url=url + "/v1", api_key="-", max_retries=0)

    server, client = start()
    f = client.files.create(file=open(files["qa"], "rb"), purpose="fine-tune")
    hyper = {"n_epochs": 6}
    killed = client.fine_tuning.jobs.create(model=str(model_dir), training_file=f.id, seed=11, hyperparameters=hyper)
    calm = client.fine_tuning.jobs.create(model=str(model_dir), training_file=f.id, seed=11, hyperparameters=hyper)
    run = state / "runs" / killed.id
    metrics = run / "train" / "metrics.jsonl"

    def mid_interval():
        done = sorted(int(p.name.split("-")[1]) for p in (run / "train" / "checkpoints").glob("step-*")
                      if (p / "state.json").is_file())
        return done and _last_step(metrics) >= done[-1] + 2
    _until(mid_interval, "training past its first checkpoint")
    os.kill(server.pid, signal.SIGKILL)
    server.wait()
    _until(lambda: not _job_processes(killed.id), "the job process to die with the server", 10)
    assert client_status(state, calm.id) == "queued"

    server, client = start()
    try:
        assert client.fine_tuning.jobs.retrieve(calm.id).status == "queued"
        first = wait(client, killed.id, timeout=300)
        assert first.status == "succeeded", first.error
        second = wait(client, calm.id, timeout=300)
        assert second.status == "succeeded", second.error
        log = (state / "jobs" / killed.id / "log.txt").read_text()
        assert "resumed from step-" in log
        a = load_file(str(run / "train" / "model" / "adapter_model.safetensors"))
        b = load_file(str(state / "runs" / calm.id / "train" / "model" / "adapter_model.safetensors"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        events = client.fine_tuning.jobs.list_events(killed.id, limit=100).data
        steps = [e.data["step"] for e in events if e.type == "metrics"]
        assert len(steps) == len(set(steps)) == steps[0] + 1  # every logged step once: 0 (validation) .. last
        assert sum(e.message.startswith("The server restarted") for e in events) == 1
        assert {first.fine_tuned_model, second.fine_tuned_model} <= {m.id for m in client.models.list().data}
        server.send_signal(signal.SIGINT)  # a server started again serves the models its jobs made before
        server.wait(timeout=30)
        server, client = start()
        assert {first.fine_tuned_model, second.fine_tuned_model} <= {m.id for m in client.models.list().data}
        ask = [{"role": "user", "content": "xin chào"}]
        assert client.chat.completions.create(model=first.fine_tuned_model, messages=ask, max_tokens=4).choices
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)


def client_status(state: Path, job_id: str) -> str:
    import sqlite3
    with sqlite3.connect(state / "luyen.db") as db:
        return db.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()[0]


def _listening(port: int) -> bool:
    import socket
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _job_processes(job_id: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and job_id.encode() in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except OSError:
            pass
    return found


def test_max_running_jobs_trains_that_many_at_once(model_dir, files, tmp_path):
    """serve.max_running_jobs=2: two jobs train at the same time, a third waits queued until one ends."""
    from openai import OpenAI
    backend = TransformersBackend.load(str(model_dir), dtype=torch.float32)
    cfg = ServeConfig(state_dir=str(tmp_path / "state"), job_threads=1, max_running_jobs=2, job_config=str(files["config"]))
    with running(create_app(backend, cfg)) as url:
        client = OpenAI(base_url=url + "/v1", api_key="-", max_retries=0)
        f = client.files.create(file=open(files["qa"], "rb"), purpose="fine-tune")
        jobs = [client.fine_tuning.jobs.create(model=str(model_dir), training_file=f.id, hyperparameters={"n_epochs": 40})
                for _ in range(3)]
        metrics = [tmp_path / "state" / "runs" / j.id / "train" / "metrics.jsonl" for j in jobs]
        _until(lambda: _last_step(metrics[0]) > 2 and _last_step(metrics[1]) > 2, "two jobs training at once")
        assert [client.fine_tuning.jobs.retrieve(j.id).status for j in jobs] == ["running", "running", "queued"]
        assert not metrics[2].exists()
        client.fine_tuning.jobs.cancel(jobs[0].id)
        _until(lambda: _last_step(metrics[2]) > 2, "the queued job to start when a slot frees")
        for j in jobs[1:]:
            client.fine_tuning.jobs.cancel(j.id)
        _until(lambda: _quiet(metrics[1], 1.5) and _quiet(metrics[2], 1.5), "the jobs to stop")


def test_the_answer_budget_a_run_recorded_is_the_servers_default_max_tokens(tiny_run, tiny_model_dir):
    """Served as the base or as an adapter, a trained run's recorded budget replaces serve.default_max_tokens;
    a base model without one keeps the server's default (None here)."""
    budget = json.loads((tiny_run / "model" / "generation_config.json").read_text())["max_new_tokens"]
    as_base = TransformersBackend.load(str(tiny_run), dtype=torch.float32)
    assert as_base.default_tokens(str(tiny_run)) == budget
    over = TransformersBackend.load(str(tiny_model_dir), adapters={"run": str(tiny_run)}, dtype=torch.float32)
    assert over.default_tokens("run") == budget and over.default_tokens(str(tiny_model_dir)) is None
