"""OpenAI's fine-tuning API on the same server: /v1/files and /v1/fine_tuning/jobs (see luyen.serve.jobs
for how a job runs). Object shapes follow OpenAI's; luyen's extras ride in a `luyen` field that the
official client keeps.

    client.files.create(file=open("qa.jsonl", "rb"), purpose="fine-tune")
    client.fine_tuning.jobs.create(model="gemma3-270m", training_file=f.id, suffix="support",
                                   method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2}}})

A job is a `luyen run` of a config this module writes: the server's `serve.job_config` (or the
defaults), with the request's model, file, seed and hyperparameters. Request fields that would change
the result and are not done here (reinforcement, integrations) are refused with a 400 naming them.
"""
from __future__ import annotations

import re
from pathlib import Path

from luyen.serve.protocol import APIError
from luyen.serve.store import ACTIVE, Store, new_id

SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")  # what luyen's data loader reads, by extension
JOB_FIELDS = {"model", "training_file", "validation_file", "suffix", "seed", "metadata", "method", "hyperparameters",
              "integrations", "luyen"}
METHODS = {"supervised": ("n_epochs", "batch_size", "learning_rate_multiplier"),
           "dpo": ("n_epochs", "batch_size", "learning_rate_multiplier", "beta")}
ADAPTERS = ("lora", "qlora", "full")  # luyen.method of a supervised job; a dpo job trains LoRA adapters


# ---- object shapes -------------------------------------------------------------------------------------------
def file_object(f: dict) -> dict:
    return {"id": f["id"], "object": "file", "bytes": f["bytes"], "created_at": f["created_at"],
            "filename": f["filename"], "purpose": f["purpose"], "status": "processed", "status_details": None}


def job_object(job: dict, store: Store) -> dict:
    r, extra = job["request"], job["extra"]
    hyper = extra.get("hyperparameters") or r["hyperparameters"]
    method = {"type": r["method"], r["method"]: {"hyperparameters": hyper}}
    return {"object": "fine_tuning.job", "id": job["id"], "model": r["model"], "created_at": job["created_at"],
            "finished_at": job["finished_at"], "fine_tuned_model": job["fine_tuned_model"],
            "organization_id": "org-luyen", "result_files": job["result_files"], "status": job["status"],
            "training_file": r["training_file"], "validation_file": r.get("validation_file"),
            "hyperparameters": {k: v for k, v in hyper.items() if k in METHODS["supervised"]},
            "trained_tokens": job["trained_tokens"], "error": job["error"], "user_provided_suffix": r.get("suffix"),
            "seed": r["seed"], "estimated_finish": job["estimated_finish"], "integrations": [],
            "metadata": r.get("metadata"), "method": method,
            "luyen": {"method": r["luyen_method"], "run_folder": str(store.run_folder(job["id"])),
                      "served": bool(job["served"]), **{k: v for k, v in extra.items() if k != "hyperparameters"}}}


def event_object(e: dict) -> dict:
    return {"object": "fine_tuning.job.event", "id": e["id"], "created_at": e["created_at"], "level": e["level"],
            "message": e["message"], "type": e["type"], "data": e["data"]}


def page(data: list[dict], has_more: bool) -> dict:
    return {"object": "list", "data": data, "has_more": has_more,
            "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None}


def fine_tuned_name(base: str, suffix: str | None, job_id: str) -> str:
    return f"ft:{base}:{suffix or ''}:{job_id}"


# ---- requests -------------------------------------------------------------------------------------------------
def parse_job(body, store: Store, base: str) -> dict:
    """The request, checked and normalised: {model, training_file, validation_file, suffix, seed, metadata,
    method, hyperparameters ({name: value | "auto"}), luyen_method}. Raises APIError naming the field."""
    if not isinstance(body, dict):
        raise APIError(400, "the request body must be a JSON object")
    unknown = sorted(set(body) - JOB_FIELDS)
    if unknown:
        raise APIError(400, f"unrecognized request argument supplied: {unknown[0]}", param=unknown[0])
    if body.get("integrations") not in (None, []):
        raise APIError(400, "integrations (Weights & Biases) are not run here; metrics are in the job's events, "
                       "its result file and its run folder's TensorBoard logs", param="integrations")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise APIError(400, "model is required", param="model")
    if model != base:
        raise APIError(400, f"model '{model}' is not available for fine-tuning here; this server fine-tunes "
                       f"'{base}', the base it serves", param="model", code="model_not_available")
    for name in ("training_file", "validation_file"):
        if body.get(name) is not None or name == "training_file":
            _training_file(store, body.get(name), name)
    suffix = body.get("suffix")
    if suffix is not None and (not isinstance(suffix, str) or not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", suffix)):
        raise APIError(400, "suffix must be 1-64 letters, digits, '.', '_' or '-'", param="suffix")
    seed = body.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**31):
        raise APIError(400, "seed must be an integer from 0 to 2147483647", param="seed")
    metadata = body.get("metadata")
    if metadata is not None and (not isinstance(metadata, dict) or len(metadata) > 16 or not all(
            isinstance(k, str) and len(k) <= 64 and isinstance(v, str) and len(v) <= 512 for k, v in metadata.items())):
        raise APIError(400, "metadata holds at most 16 string keys (64 characters) with string values (512)",
                       param="metadata")
    kind, hyper = _method(body)
    luyen = body.get("luyen") or {}
    chosen = luyen.get("method", "lora") if isinstance(luyen, dict) else None
    if set(luyen) - {"method"} or chosen not in ADAPTERS or (kind == "dpo" and chosen != "lora"):
        raise APIError(400, f"luyen.method must be one of {', '.join(ADAPTERS)} (a dpo job trains lora)",
                       param="luyen.method")
    return {"model": model, "training_file": body["training_file"], "validation_file": body.get("validation_file"),
            "suffix": suffix, "seed": seed, "metadata": metadata, "method": kind, "hyperparameters": hyper,
            "luyen_method": chosen}


def _training_file(store: Store, file_id, param: str) -> None:
    if not isinstance(file_id, str):
        raise APIError(400, f"{param} is required: the id of a file uploaded with purpose fine-tune", param=param)
    f = store.file(file_id)
    if f is None:
        raise APIError(400, f"file '{file_id}' does not exist", param=param, code="invalid_file")
    if f["purpose"] != "fine-tune":
        raise APIError(400, f"file '{file_id}' has purpose {f['purpose']}; a training file needs purpose fine-tune",
                       param=param, code="invalid_file_purpose")


def _method(body: dict) -> tuple[str, dict]:
    method, legacy = body.get("method"), body.get("hyperparameters")
    if method is None:
        kind, given, where = "supervised", legacy or {}, "hyperparameters"
    else:
        if not isinstance(method, dict) or not isinstance(method.get("type"), str):
            raise APIError(400, "method must be {type: supervised | dpo, <type>: {hyperparameters: {...}}}", param="method")
        kind = method["type"]
        if kind not in METHODS:
            raise APIError(400, f"method.type '{kind}' is not supported here; use supervised or dpo",
                           param="method.type")
        if set(method) - {"type", kind}:
            raise APIError(400, f"method has settings for {sorted(set(method) - {'type', kind})[0]} but its type is "
                           f"{kind}", param="method")
        given = ((method.get(kind) or {}).get("hyperparameters") or {}) | (legacy or {})
        where = f"method.{kind}.hyperparameters"
    if not isinstance(given, dict):
        raise APIError(400, f"{where} must be an object", param=where)
    for name, value in given.items():
        if name not in METHODS[kind]:
            raise APIError(400, f"{where}.{name} is not a hyperparameter of {kind} ({', '.join(METHODS[kind])})",
                           param=f"{where}.{name}")
        if value == "auto":
            continue
        whole = name in ("n_epochs", "batch_size")
        ok = (isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= (50 if name == "n_epochs" else 256)
              if whole else isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= 10)
        if not ok:
            rule = "a whole number from 1 to 50" if name == "n_epochs" else "a whole number from 1 to 256" if whole \
                else "a number above 0, at most 10"
            raise APIError(400, f"{where}.{name} must be 'auto' or {rule}", param=f"{where}.{name}")
    return kind, {name: given.get(name, "auto") for name in METHODS[kind]}


def upload_suffix(filename: str, purpose: str) -> str:
    """The stored file's suffix (what luyen's loader reads it by); the client's filename is metadata only,
    never part of a path."""
    if purpose != "fine-tune":
        raise APIError(400, f"purpose '{purpose}' is not accepted here; upload training data with purpose fine-tune",
                       param="purpose")
    suffix = Path(filename.replace("\\", "/")).suffix.lower()
    return suffix if suffix in SUFFIXES else ".jsonl"


def clean_name(filename: str) -> str:
    """What the file object shows as filename: the last path part, printable, at most 255 characters."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip() or "upload.jsonl"
    return name[:255]


def store_upload(store: Store, upload, purpose: str, limit: int) -> dict:
    """Copy an uploaded file under the state folder with a generated name, refusing it past ``limit``."""
    filename = clean_name(upload.filename or "upload.jsonl")
    file_id = new_id("file")
    dest = store.root / "files" / f"{file_id}{upload_suffix(filename, purpose)}"
    tmp = dest.with_name(f".{dest.name}.part")
    size = 0
    try:
        with tmp.open("wb") as out:
            while chunk := upload.file.read(1 << 20):
                size += len(chunk)
                if size > limit:
                    raise APIError(413, f"the file is over this server's limit of {limit} bytes (serve.max_file_bytes)",
                                   param="file", code="file_too_large")
                out.write(chunk)
        if size == 0:
            raise APIError(400, "the file is empty", param="file")
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)
    return store.add_file(filename, purpose, dest, size, file_id)


def delete_file(store: Store, file_id: str) -> dict:
    f = store.file(file_id)
    if f is None:
        raise APIError(404, f"no file with id '{file_id}'", param="file_id", code="file_not_found")
    users = store.jobs_using(file_id)
    if users:
        raise APIError(409, f"file '{file_id}' is used by job {users[0]}, which has not finished; cancel it first",
                       param="file_id", code="file_in_use")
    store.delete_file(file_id)
    Path(f["path"]).unlink(missing_ok=True)
    return {"id": file_id, "object": "file", "deleted": True}


def result_csv(metrics_file: Path) -> str:
    """OpenAI's result file: one row per logged step (step, train_loss, valid_loss, ...); blank when not measured."""
    from luyen.train.logs import read_jsonl
    lines = ["step,train_loss,valid_loss,learning_rate,tokens"]
    for row in read_jsonl(metrics_file):
        if "loss" in row or "val_loss" in row:
            values = (row.get("step"), row.get("loss"), row.get("val_loss"), row.get("lr"), row.get("tokens"))
            lines.append(",".join("" if v is None else str(v) for v in values))
    return "\n".join(lines) + "\n"


def job_or_404(store: Store, job_id: str) -> dict:
    job = store.job(job_id)
    if job is None:
        raise APIError(404, f"no fine-tuning job with id '{job_id}'", param="fine_tuning_job_id", code="job_not_found")
    return job


def limit_arg(value: str | None, default: int = 20) -> int:
    try:
        n = int(value) if value is not None else default
    except ValueError:
        n = 0
    if not 1 <= n <= 100:
        raise APIError(400, "limit must be a whole number from 1 to 100", param="limit")
    return n


def active(job: dict) -> bool:
    return job["status"] in ACTIVE
