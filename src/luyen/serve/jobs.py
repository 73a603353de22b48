"""How the server runs fine-tuning jobs: one background thread (the Runner) that validates, queues,
launches and watches them, each job a `luyen run` in a process of its own.

    runner = Runner(store, backend, cfg); runner.start()     # create_app does this
    python -m luyen.serve.jobs runs/server/jobs/ftjob-...    # the process a job runs in

validating_files -> queued -> running -> succeeded | failed | cancelled (and paused <-> queued):
- validating: the job's config is written (config.yaml in its run folder) and its file checked with
  `luyen data check`; a bad file fails the job with that check's first error (file:line, field, fix).
- running: `python -m luyen.serve.jobs FOLDER` runs the pipeline's data, train and eval stages there
  with `serve.job_threads` threads; the server's own generation keeps the other cores meanwhile. The
  runner turns metrics.jsonl rows, checkpoints and finished stages into events, each under a key, so a
  replay after a restart records nothing twice.
- The job process dies with the server (PR_SET_PDEATHSIG). A server started again finds the job still
  `running` and launches it again: the pipeline skips the finished data stage and training resumes
  from its last checkpoint, exactly (tested: the weights equal an uninterrupted run's).
- cancel and pause interrupt the process (SIGINT, then SIGKILL after 10 s) and keep the run folder and its
  checkpoints; resume queues the job again and it goes on from its last checkpoint.
- succeeded: the adapter is attached to the serving backend as `ft:<base>:<suffix>:<job>` at once.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from luyen.errors import LuyenError
from luyen.manifest import atomic_write
from luyen.serve.finetune import fine_tuned_name, result_csv
from luyen.serve.store import Store
from luyen.train.checkpoint import complete, step_of

log = logging.getLogger("luyen.serve.jobs")
STAGES = ("data", "train", "eval")  # what a job runs of its config's stages (no export: the adapter is served)
GRACE_S = 10.0


def split_threads(cfg, cores: int | None = None) -> tuple[int, int]:
    """(training threads, serving threads while a job trains): `serve.job_threads`, else half the cores."""
    cores = cores or os.cpu_count() or 1
    train = min(cfg.job_threads or max(1, cores // 2), cores)
    return train, max(1, cores - train)


class Runner:
    def __init__(self, store: Store, backend, cfg):
        self.store, self.backend, self.cfg = store, backend, cfg
        self.procs: dict[str, subprocess.Popen] = {}
        self.stopping: dict[str, float] = {}     # job id -> when it was asked to stop
        self.seen: dict[str, tuple] = {}         # job id -> (inode, bytes) of metrics.jsonl already turned into events
        self.pace: dict[str, tuple] = {}         # job id -> (monotonic time, step) of the first step this process logged
        self.train_threads, self.busy_threads = split_threads(cfg)
        self.idle_threads = backend.threads
        self.wake, self.done = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._loop, name="luyen-jobs", daemon=True)

    def threads(self) -> dict:
        return {"training": self.train_threads if self.procs else 0,
                "serving": self.busy_threads if self.procs else self.idle_threads}

    # ---- lifecycle -----------------------------------------------------------------------------------------
    def start(self) -> None:
        for job in self.store.jobs(status=("succeeded",)):
            if job["served"]:
                self._attach(job)
        for job in self.store.jobs(status=("running",)):
            self.store.event(job["id"], "The server restarted; the job goes on from its last checkpoint")
        self.thread.start()

    def stop(self) -> None:
        """Interrupt running jobs (they stay `running` and go on when the server starts again)."""
        self.done.set()
        self.wake.set()
        self.thread.join(timeout=30)
        for proc in self.procs.values():
            _signal(proc, signal.SIGINT)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=GRACE_S)
            except subprocess.TimeoutExpired:
                _signal(proc, signal.SIGKILL)

    def _loop(self) -> None:
        while not self.done.is_set():
            try:
                self._tick()
            except Exception:  # a bug here must not stop every later job; it is in the server log
                log.exception("fine-tuning runner")
            self.wake.wait(0.5)
            self.wake.clear()

    def _tick(self) -> None:
        job = self.store.oldest("validating_files")
        if job:
            self._validate(job)
        for job_id, proc in list(self.procs.items()):
            self._watch(job_id)
            status = self.store.job(job_id)["status"]
            if proc.poll() is not None:
                self._ended(job_id, proc.returncode, status)
            elif status != "running":
                self._interrupt(job_id, proc)
        while len(self.procs) < self.cfg.max_running_jobs:
            job = next((j for j in reversed(self.store.jobs(status=("running",))) if j["id"] not in self.procs), None)
            job = job or self.store.oldest("queued")
            if job is None:
                break
            self._launch(job)
        self._set_serving_threads()

    # ---- the steps -----------------------------------------------------------------------------------------
    def _validate(self, job: dict) -> None:
        from luyen.data.stage import check
        job_id, r = job["id"], job["request"]
        self.store.event(job_id, f"Validating training file: {r['training_file']}", key="validating")
        try:
            cfg = job_config(self.store, job, self.cfg, self.train_threads)
            report = check(cfg.data.files, cfg)
        except LuyenError as e:
            return self._fail(job_id, public_message(e.render(), self.store), "invalid_training_file", "training_file")
        if not report["usable"]:
            first = (report["errors"]["first"] or report["problems"])[0]
            return self._fail(job_id, public_message(first, self.store), "invalid_training_file", "training_file")
        folder = self.store.job_folder(job_id)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(folder / "config.yaml", _yaml(cfg))
        est = report.get("estimate") or {}
        hyper = {"n_epochs": cfg.train.epochs, "batch_size": cfg.train.batch_size,
                 "learning_rate_multiplier": _multiplier(r["hyperparameters"])}
        if r["method"] == "dpo":
            hyper["beta"] = cfg.train.preference.beta
        preflight = {"records": report["records"]["kept"], "kinds": report["records"]["by_kind"],
                     "formats": report["records"]["by_format"], "split": {k: report["split"][k] for k in ("train", "val", "test")},
                     "train_tokens": report["tokens"]["train_tokens"], "estimate_s": est.get("seconds"),
                     "peak_memory_gb": est.get("peak_memory_gb"), "warnings": report["warnings"]}
        if self.store.update(job_id, when=("validating_files",), status="queued",
                             extra={**job["extra"], "hyperparameters": hyper, "preflight": preflight}):
            self.store.event(job_id, "Files validated, moving job to queued state", key="queued")

    def _launch(self, job: dict) -> None:
        job_id, folder = job["id"], self.store.job_folder(job["id"])
        (folder / "error.json").unlink(missing_ok=True)
        logfile = (folder / "log.txt").open("ab")
        env = {**os.environ, "OMP_NUM_THREADS": str(self.train_threads), "PYTHONUNBUFFERED": "1"}
        self.procs[job_id] = subprocess.Popen([sys.executable, "-m", "luyen.serve.jobs", str(folder)], stdout=logfile,
                                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                              start_new_session=True, preexec_fn=_die_with_parent)
        logfile.close()
        self.seen.pop(job_id, None)
        self.pace.pop(job_id, None)
        now = int(time.time())
        est = (job["extra"].get("preflight") or {}).get("estimate_s")
        fields = {"status": "running"}
        if job["started_at"] is None:
            fields |= {"started_at": now, "estimated_finish": now + int(est) if est else None}
        self.store.update(job_id, when=("queued", "running"), **fields)
        self.store.event(job_id, f"Fine-tuning job started: training on {self.train_threads} CPU thread(s), the "
                         f"server keeps {self.busy_threads} for answering", key=None if job["started_at"] else "started")

    def _watch(self, job_id: str) -> None:
        """Events from what the job process wrote since the last look."""
        folder, store = self.store.run_folder(job_id), self.store
        metrics = folder / "train" / "metrics.jsonl"
        if metrics.is_file():
            with metrics.open("rb") as f:
                inode, start = os.fstat(f.fileno()).st_ino, self.seen.get(job_id, (None, 0))[1]
                if inode != self.seen.get(job_id, (None, 0))[0]:  # a resumed run rewrote it: read it all again
                    start = 0
                f.seek(start)
                data = f.read()
            whole = data[:data.rfind(b"\n") + 1]  # a line still being written waits for the next look
            self.seen[job_id] = (inode, start + len(whole))
            rows = [json.loads(line) for line in whole.decode("utf-8").splitlines()]
            for row in rows:
                _metrics_event(store, job_id, row)
            self._reestimate(job_id, rows)
        for step in map(step_of, complete(folder / "train" / "checkpoints")):
            store.event(job_id, f"Checkpoint created at step {step}", key=f"checkpoint:{step}", data={"step": step})
        for stage, say in (("data", _data_done), ("train", _train_done), ("eval", _eval_done)):
            manifest = folder / stage / "manifest.json"
            if manifest.is_file() and not store.has_event(job_id, f"stage:{stage}"):
                metrics_ = json.loads(manifest.read_text(encoding="utf-8")).get("metrics") or {}
                store.event(job_id, say(metrics_), key=f"stage:{stage}", data={"stage": stage})

    def _reestimate(self, job_id: str, rows: list[dict]) -> None:
        """estimated_finish from the steps this process has made so far (the preflight estimate until then):
        now + the remaining steps at the measured rate. Evaluation after training is not in it."""
        step = max((r["step"] for r in rows if "total_steps" in r), default=None)
        if step is None:
            return
        total = max(r["total_steps"] for r in rows if "total_steps" in r)
        first = self.pace.setdefault(job_id, (time.monotonic(), step))
        elapsed, made = time.monotonic() - first[0], step - first[1]
        if made >= 2 and elapsed > 0:
            self.store.update(job_id, estimated_finish=int(time.time() + (total - step) * elapsed / made))

    def _ended(self, job_id: str, code: int, status: str) -> None:
        self._watch(job_id)
        del self.procs[job_id]
        self.stopping.pop(job_id, None)
        if status != "running":  # cancelled or paused: the route said so already
            return
        if code == 0:
            try:
                return self._succeed(self.store.job(job_id))
            except (OSError, ValueError, KeyError) as e:  # e.g. a job_config without a train stage: no model
                log.exception("finishing %s", job_id)
                return self._fail(job_id, f"the run ended but its result could not be read: {e}", "training_failed", None)
        error_file = self.store.job_folder(job_id) / "error.json"
        if error_file.is_file():
            e = json.loads(error_file.read_text(encoding="utf-8"))
            param = "training_file" if e.get("file") else None
            self._fail(job_id, public_message(e["message"], self.store), e.get("code") or "training_failed", param)
        else:
            self._fail(job_id, f"the training process ended with exit code {code}; see log.txt in the job's run "
                       "folder", "training_failed", None)

    def _succeed(self, job: dict) -> None:
        job_id, folder, r = job["id"], self.store.run_folder(job["id"]), job["request"]
        train = json.loads((folder / "train" / "manifest.json").read_text(encoding="utf-8")).get("metrics") or {}
        csv = self.store.job_folder(job_id) / "results.csv"
        atomic_write(csv, result_csv(folder / "train" / "metrics.jsonl"))
        results = self.store.add_file("step_metrics.csv", "fine-tune-results", csv, csv.stat().st_size)
        name = fine_tuned_name(r["model"], r.get("suffix"), job_id)
        extra = dict(job["extra"])
        eval_manifest = folder / "eval" / "manifest.json"
        if eval_manifest.is_file():
            extra["verdict"] = json.loads(eval_manifest.read_text(encoding="utf-8")).get("metrics", {}).get("verdict")
        self.store.update(job_id, fine_tuned_model=name, trained_tokens=train.get("train_tokens"),
                          result_files=[results["id"]], extra=extra)
        try:
            self.backend.add_model(name, str(folder / "train"))
        except LuyenError as e:
            return self._fail(job_id, f"trained, but the result could not be served: {e.render()}", "serving_failed", None)
        self.store.update(job_id, status="succeeded", finished_at=int(time.time()), served=1)
        self.store.event(job_id, f"New fine-tuned model created: {name}", key="model")
        self.store.event(job_id, "The job has successfully completed", key="succeeded")

    def _attach(self, job: dict) -> None:
        try:
            self.backend.add_model(job["fine_tuned_model"], str(self.store.run_folder(job["id"]) / "train"))
        except (LuyenError, OSError) as e:
            log.error("could not serve %s again: %s", job["fine_tuned_model"], e)

    def _fail(self, job_id: str, message: str, code: str, param: str | None) -> None:
        if self.store.update(job_id, when=("validating_files", "queued", "running"), status="failed",
                             finished_at=int(time.time()), error={"code": code, "message": message, "param": param}):
            self.store.event(job_id, f"The job failed: {message}", level="error", key="failed")

    def _interrupt(self, job_id: str, proc: subprocess.Popen) -> None:
        asked = self.stopping.setdefault(job_id, time.monotonic())
        _signal(proc, signal.SIGINT if time.monotonic() - asked < GRACE_S else signal.SIGKILL)

    def _set_serving_threads(self) -> None:
        self.backend.threads = min(self.busy_threads, self.idle_threads) if self.procs else self.idle_threads


def job_config(store: Store, job: dict, serve_cfg, threads: int):
    """The RunConfig a job runs: `serve.job_config` (or the defaults) with the request's choices."""
    from luyen.config import load_config
    from luyen.train.methods import METHODS
    r, hyper = job["request"], job["request"]["hyperparameters"]
    base = load_config(serve_cfg.job_config)
    method = "dpo" if r["method"] == "dpo" else r["luyen_method"]
    values = {"name": job["id"], "out": str(store.run_folder(job["id"])), "model.name": r["model"],
              "data.files": [store.file(r["training_file"])["path"]], "seed": r["seed"], "train.method": method,
              "train.threads": threads, "stages": [s for s in base.stages if s in STAGES], "overwrite": False}
    if hyper["n_epochs"] != "auto":
        values |= {"train.epochs": hyper["n_epochs"], "train.max_steps": 0}
    if hyper["batch_size"] != "auto":
        values["train.batch_size"] = hyper["batch_size"]
    values["train.lr"] = (base.train.lr or METHODS[method].lr) * _multiplier(hyper)
    if hyper.get("beta", "auto") != "auto":
        values["train.preference.beta"] = hyper["beta"]
    if r.get("validation_file"):
        values["data.val_files"] = [store.file(r["validation_file"])["path"]]
    return load_config(serve_cfg.job_config, values=values)


def _multiplier(hyper: dict) -> float:
    m = hyper.get("learning_rate_multiplier", "auto")
    return 1.0 if m == "auto" else float(m)


def _yaml(cfg) -> str:
    import yaml
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def public_message(message: str, store: Store) -> str:
    """A message with every stored file's path replaced by the name its client uploaded it as."""
    for f in store.files():
        message = message.replace(f["path"], f["filename"])
    return message.replace(str(store.root) + os.sep, "")


def _metrics_event(store: Store, job_id: str, row: dict) -> None:
    step, loss, val = row.get("step"), row.get("loss"), row.get("val_loss")
    if loss is None and val is None:
        return
    data = {"step": step, "train_loss": loss, "valid_loss": val, "learning_rate": row.get("lr"), "epoch": row.get("epoch")}
    total = f"/{row['total_steps']}" if row.get("total_steps") else ""
    parts = ([f"training loss={loss:.4f}"] if loss is not None else []) + ([f"validation loss={val:.4f}"] if val is not None else [])
    store.event(job_id, f"Step {step}{total}: {', '.join(parts)}", type="metrics", key=f"metrics:{step}",
                data={**data, "total_steps": row.get("total_steps")})


def _data_done(m: dict) -> str:
    return f"Data prepared: {m.get('train', 0)} training, {m.get('val', 0)} validation, {m.get('test', 0)} test examples"


def _train_done(m: dict) -> str:
    return (f"Training finished: {m.get('steps')} steps, {m.get('train_tokens')} tokens, final training loss "
            f"{m.get('final_train_loss')}, best validation loss {m.get('best_val_loss')}")


def _eval_done(m: dict) -> str:
    return f"Evaluation finished: {m.get('verdict') or 'see the report'}"


def _die_with_parent() -> None:
    """In the job process before exec: the kernel kills it when the server's runner thread dies, a SIGKILL
    included, so no job trains on without a server to record it."""
    import ctypes
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _signal(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def main(folder: str) -> int:
    """The job process: the pipeline on the folder's config; a LuyenError goes to error.json for the runner."""
    from rich.console import Console
    from luyen import pipeline
    from luyen.config import load_config
    out = Path(folder)
    try:
        pipeline.run(load_config(out / "config.yaml"), console=Console(file=sys.stdout, width=120))
    except LuyenError as e:
        atomic_write(out / "error.json", json.dumps({"message": e.render(), "file": e.file, "line": e.line,
                                                     "field": e.field, "code": "training_failed"}))
        print(f"error: {e.render()}", flush=True)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the job stops here; its checkpoints stay", flush=True)
        return 130
    except Exception as e:  # a bug or a library's failure: its first line for the job's error, the trace in log.txt
        first = (str(e).splitlines() or [""])[0][:300]
        atomic_write(out / "error.json", json.dumps({"message": f"training stopped on an internal error: "
                                                     f"{type(e).__name__}: {first} (the trace is in log.txt beside "
                                                     "the job's config.yaml)", "code": "training_failed"}))
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
