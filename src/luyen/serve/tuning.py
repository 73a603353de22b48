"""The routes of the fine-tuning API (/v1/files, /v1/fine_tuning/jobs, DELETE /v1/models/{id}) and the
training page (/train), mounted by create_app on a server with a state folder (`serve.state_dir`).

luyen's own additions, which OpenAI's API does not have: GET /v1/files/{id}/preflight (the data check
report of an uploaded file: formats, errors with line numbers, token stats, secrets removed, the time and
memory estimate) and GET /v1/fine_tuning/jobs/{id}/report (the finished job's evaluation report).
"""
from __future__ import annotations

import asyncio
import time
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from luyen.serve import finetune as ft
from luyen.serve.jobs import Runner, public_message
from luyen.serve.protocol import APIError
from luyen.serve.store import ACTIVE, Store
from luyen.train.checkpoint import complete, step_of
from luyen.train.logs import read_jsonl

REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"


def mount(app: FastAPI, backend, cfg, page_csp: str) -> Runner:
    """Add the routes to ``app``; returns the job runner, which the app's lifespan starts and stops."""
    store = Store(Path(cfg.state_dir))
    runner = Runner(store, backend, cfg)
    base = backend.models()[0]
    page = resources.files("luyen.serve").joinpath("static/train.html").read_text(encoding="utf-8")

    @app.get("/train", response_class=HTMLResponse)
    async def training_page():
        return HTMLResponse(page, headers={"Content-Security-Policy": page_csp, "X-Content-Type-Options": "nosniff"})

    # ---- files ---------------------------------------------------------------------------------------------
    @app.post("/v1/files")
    async def upload(request: Request):
        try:
            form = await request.form(max_files=1, max_fields=8)
        except Exception as e:  # not multipart, or more parts than a file upload has
            raise APIError(400, f"send the file as multipart/form-data with fields file and purpose ({str(e)[:100]})",
                           param="file") from None
        upload_, purpose = form.get("file"), form.get("purpose")
        if upload_ is None or isinstance(upload_, str):
            raise APIError(400, "the form has no file part named 'file'", param="file")
        if not isinstance(purpose, str):
            raise APIError(400, "purpose is required (fine-tune)", param="purpose")
        try:
            f = await asyncio.to_thread(ft.store_upload, store, upload_, purpose, cfg.max_file_bytes)
        finally:
            await form.close()
        return ft.file_object(f)

    @app.get("/v1/files")
    async def list_files(purpose: str | None = None):
        return {"object": "list", "data": [ft.file_object(f) for f in store.files(purpose)], "has_more": False}

    @app.get("/v1/files/{file_id}")
    async def get_file(file_id: str):
        return ft.file_object(_file(store, file_id))

    @app.get("/v1/files/{file_id}/content")
    async def file_content(file_id: str):
        f = _file(store, file_id)
        data = await asyncio.to_thread(Path(f["path"]).read_bytes)
        return Response(data, media_type="application/octet-stream")

    @app.delete("/v1/files/{file_id}")
    async def delete_file(file_id: str):
        return ft.delete_file(store, file_id)

    @app.get("/v1/files/{file_id}/preflight")
    async def preflight(file_id: str):
        f = _file(store, file_id)
        return await asyncio.to_thread(_preflight, f, base, cfg, store)

    # ---- jobs ----------------------------------------------------------------------------------------------
    @app.post("/v1/fine_tuning/jobs")
    async def create_job(request: Request):
        try:
            body = await request.json()
        except ValueError:
            raise APIError(400, "the request body is not valid JSON") from None
        req = ft.parse_job(body, store, base)
        if req["seed"] is None:
            import secrets
            req["seed"] = secrets.randbelow(2**31)  # recorded, so the job can be run again the same
        job = store.add_job(req)
        store.event(job["id"], f"Created fine-tuning job: {job['id']}", key="created", created_at=job["created_at"])
        runner.wake.set()
        return ft.job_object(job, store)

    @app.get("/v1/fine_tuning/jobs")
    async def list_jobs(after: str | None = None, limit: str | None = None):
        n = ft.limit_arg(limit)
        jobs = store.jobs(after=after, limit=n + 1)
        return ft.page([ft.job_object(j, store) for j in jobs[:n]], len(jobs) > n)

    @app.get("/v1/fine_tuning/jobs/{job_id}")
    async def get_job(job_id: str):
        return ft.job_object(ft.job_or_404(store, job_id), store)

    @app.post("/v1/fine_tuning/jobs/{job_id}/cancel")
    async def cancel(job_id: str):
        return _move(store, runner, job_id, ACTIVE, "cancelled", "Job cancelled; its run folder and checkpoints are kept")

    @app.post("/v1/fine_tuning/jobs/{job_id}/pause")
    async def pause(job_id: str):
        return _move(store, runner, job_id, ("running", "queued"), "paused", "Job paused at its last checkpoint")

    @app.post("/v1/fine_tuning/jobs/{job_id}/resume")
    async def resume(job_id: str):
        return _move(store, runner, job_id, ("paused",), "queued", "Job resumed; it goes on from its last checkpoint")

    @app.get("/v1/fine_tuning/jobs/{job_id}/events")
    async def events(job_id: str, after: str | None = None, limit: str | None = None):
        ft.job_or_404(store, job_id)
        n = ft.limit_arg(limit)
        rows = store.events(job_id, after=after, limit=n + 1)
        return ft.page([ft.event_object(e) for e in rows[:n]], len(rows) > n)

    @app.get("/v1/fine_tuning/jobs/{job_id}/checkpoints")
    async def checkpoints(job_id: str, after: str | None = None, limit: str | None = None):
        job = ft.job_or_404(store, job_id)
        n = ft.limit_arg(limit, 10)
        items = _checkpoints(job, store.run_folder(job_id))
        if after:
            ids = [c["id"] for c in items]
            items = items[ids.index(after) + 1:] if after in ids else []
        return ft.page(items[:n], len(items) > n)

    @app.get("/v1/fine_tuning/jobs/{job_id}/report")
    async def report(job_id: str):
        ft.job_or_404(store, job_id)
        html = store.run_folder(job_id) / "eval" / "report.html"
        if not html.is_file():
            raise APIError(404, f"job {job_id} has no evaluation report (yet)", param="fine_tuning_job_id",
                           code="report_not_found")
        return HTMLResponse(html.read_text(encoding="utf-8"), headers={"Content-Security-Policy": REPORT_CSP})

    @app.delete("/v1/models/{model_id:path}")
    async def delete_model(model_id: str):
        if model_id not in backend.models():
            raise APIError(404, f"model '{model_id}' is not served here", param="model", code="model_not_found")
        if model_id not in backend.removable:
            raise APIError(403, f"model '{model_id}' was not created by a fine-tuning job here; only those can be "
                           "deleted", param="model", code="model_not_deletable")
        await asyncio.to_thread(backend.remove_model, model_id)
        for job in store.jobs(status=("succeeded",)):
            if job["fine_tuned_model"] == model_id:
                store.update(job["id"], served=0)
        return {"id": model_id, "object": "model", "deleted": True}

    app.state.runner, app.state.store = runner, store
    return runner


def _file(store: Store, file_id: str) -> dict:
    f = store.file(file_id)
    if f is None:
        raise APIError(404, f"no file with id '{file_id}'", param="file_id", code="file_not_found")
    return f


def _move(store: Store, runner: Runner, job_id: str, allowed: tuple[str, ...], status: str, message: str) -> dict:
    job = ft.job_or_404(store, job_id)
    fields = {"status": status, **({"finished_at": int(time.time())} if status == "cancelled" else {})}
    if not store.update(job_id, when=allowed, **fields):
        raise APIError(409, f"job {job_id} is {job['status']}; only a job that is {' or '.join(allowed)} can be "
                       f"{status}", param="fine_tuning_job_id", code="invalid_job_state")
    store.event(job_id, message)
    runner.wake.set()
    return ft.job_object(store.job(job_id), store)


def _preflight(f: dict, base: str, cfg, store: Store) -> dict:
    from luyen.config import load_config
    from luyen.data.stage import check
    from luyen.errors import LuyenError
    try:
        run_cfg = load_config(cfg.job_config, values={"model.name": base})
        report = check([f["path"]], run_cfg)
    except LuyenError as e:
        return {"object": "preflight", "file": f["id"], "usable": False, "problems": [public_message(e.render(), store)]}
    report["errors"]["first"] = [public_message(line, store) for line in report["errors"]["first"]]
    report["records"]["per_file"] = {f["filename"]: v for v in report["records"]["per_file"].values()}
    return {"object": "preflight", "file": f["id"], "filename": f["filename"], **report}


def _checkpoints(job: dict, folder: Path) -> list[dict]:
    """The job's saved checkpoints, newest first, with the metrics logged at their step."""
    rows = {}
    for row in read_jsonl(folder / "train" / "metrics.jsonl"):
        rows.setdefault(row.get("step"), {}).update(row)
    name = ft.fine_tuned_name(job["request"]["model"], job["request"].get("suffix"), job["id"])
    out = []
    for ckpt in reversed(complete(folder / "train" / "checkpoints")):
        step = step_of(ckpt)
        m = rows.get(step, {})
        out.append({"object": "fine_tuning.job.checkpoint", "id": f"ftckpt-{job['id'].split('-', 1)[1]}-{step}",
                    "created_at": int(ckpt.stat().st_mtime), "fine_tuned_model_checkpoint": f"{name}:ckpt-step-{step}",
                    "fine_tuning_job_id": job["id"], "step_number": step,
                    "metrics": {"step": step, "train_loss": m.get("loss"), "valid_loss": m.get("val_loss")},
                    "luyen": {"folder": str(ckpt)}})
    return out
