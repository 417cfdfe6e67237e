"""The worker: the process that trains stored runs, one or several as a pack.

    python -m core worker RUN_ID [RUN_ID ...]   (started by a launcher, not by hand; several = one pack)
    python -m core worker RUN_ID --spec spec.json   (a Ray job: no store, events on stdout)

The worker runs ``core.training.train`` (a pack: ``core.training.train_packed``) and writes every
event both to the store (when it can reach it) and as one JSON line on stdout:
``{"run_id", "seq", "ts", "kind", "step", "metrics"}``. Ray jobs run it with ``--spec FILE``
and no store: the dispatcher (core.runs.ray_jobs) collects their JSON lines from the job's log,
and the finished prompt travels inside the final event (base64 files, ``result_files``), so a
remote cluster needs no shared disk. ``record_final`` writes a run's terminal status.

Layer: store <- spec <- worker (imported by the launchers for record_final / run_output_dir).
"""
from __future__ import annotations

import base64
import json
import math
import os
import signal
import sys
import time
import traceback
from pathlib import Path

from core.config import atlas_home, user_library_dir
from core.runs.spec import RunSpec, SpecError, build_train_config
from core.runs.store import TERMINAL, RunStore, hostname

PROGRESS_MIN_INTERVAL_S = 0.2  # progress events written at most 5 per second (evals always)


def _memory_mb(device: str | None) -> dict:
    out = {}
    try:
        with open("/proc/self/statm") as f:
            out["rss_mb"] = round(int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    if device and str(device).startswith("cuda"):
        try:
            import torch

            out["gpu_mem_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        except Exception:
            pass
    return out


def result_files(folder: Path) -> dict[str, str]:
    """A saved prompt folder as {relative name: base64} (to travel in a JSON line)."""
    return {str(p.relative_to(folder)): base64.b64encode(p.read_bytes()).decode("ascii")
            for p in sorted(folder.rglob("*")) if p.is_file()}


def write_result_files(files: dict[str, str], dest: Path) -> Path:
    """Inverse of result_files, atomic: written beside dest, then renamed into place."""
    dest = Path(dest)
    if dest.exists():
        raise FileExistsError(f"{dest}: already exists, not overwriting")
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    for name, b64 in files.items():
        rel = Path(name)
        if rel.is_absolute() or ".." in rel.parts:
            raise ValueError(f"refusing result file name {name!r}")
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp / rel).write_bytes(base64.b64decode(b64))
    os.replace(tmp, dest)
    return dest


def run_output_dir(run_id: str) -> Path:
    """Where a finished run's prompt goes: the user library, so it joins it."""
    return user_library_dir() / "runs" / run_id


class Worker:
    """Runs one spec; emits events to the store (if any) and as JSON lines to ``out``
    (stdout; in a local pack, the run's own log file, so each run keeps its own log)."""

    def __init__(self, run_id: str, spec: RunSpec, store: RunStore | None, out_dir: Path, out=None):
        self.run_id, self.spec, self.store, self.out_dir = run_id, spec, store, out_dir
        self.out = out or sys.stdout
        self.seq = 0
        self.stop_reason: str | None = None
        self._last_progress = 0.0
        self._pending_progress: dict | None = None
        self.device = spec.device
        self.cancel_poll = None  # a pack's shared poller (one store read per pack step)
        self.nonfinite_loss = False  # any progress event with a NaN / inf loss (a sanity flag)

    # events --------------------------------------------------------------
    def emit(self, kind: str, step: int | None, metrics: dict) -> None:
        self.seq += 1
        ev = {"run_id": self.run_id, "seq": self.seq, "ts": time.time(), "kind": kind, "step": step,
              "metrics": metrics}
        if self.store is not None and not (kind == "status" and metrics.get("status") in TERMINAL):
            self.store.add_events(self.run_id, [ev])  # terminal status goes through finish()
        self.out.write(json.dumps(ev, default=str) + "\n")
        self.out.flush()

    def callback(self, event: dict) -> None:
        kind = event.get("kind", "log")
        step = event.get("step")
        metrics = dict(event.get("metrics") or {})
        if kind == "status" and metrics.get("device"):
            self.device = str(metrics["device"])
        if kind == "progress":
            loss = metrics.get("loss")
            if isinstance(loss, (int, float)) and not math.isfinite(loss):
                self.nonfinite_loss = True
            now = time.monotonic()
            total = self.spec.params.get("steps")
            if now - self._last_progress < PROGRESS_MIN_INTERVAL_S and step != total:
                self._pending_progress = {"step": step, "metrics": metrics}
                return  # throttled; the newest one is flushed with the next eval
            self._last_progress = now
            metrics.update(_memory_mb(self.device))
            self._pending_progress = None
        elif kind == "eval" and self._pending_progress is not None:
            p = self._pending_progress
            self._pending_progress = None
            self.emit("progress", p["step"], {**p["metrics"], **_memory_mb(self.device)})
        if kind not in ("status", "progress", "eval", "log"):
            kind, metrics = "log", {"message": str(event)}
        self.emit(kind, step, metrics)

    def should_stop(self) -> bool:
        if self.stop_reason:
            return True
        # one indexed row read (tens of microseconds) before every step: well under 1% of even a
        # 7 ms GPU step, and it makes a cancel take effect at the next step
        if self.cancel_poll is not None:
            if self.cancel_poll(self.run_id):
                self.stop_reason = "cancel requested"
        elif self.store is not None and self.store.cancel_requested(self.run_id):
            self.stop_reason = "cancel requested"
        return bool(self.stop_reason)

    def _on_sigterm(self, signum, frame):  # Ray's stop_job and the launcher's escalation
        self.stop_reason = f"signal {signum}"

    # run ----------------------------------------------------------------
    def teacher_paths(self) -> list[str]:
        """The spec's ``teachers`` (panda with several), each "run:<id>" resolved to its prompt."""
        return [self._resolve_teacher(t) for t in self.spec.teachers]

    def teacher_path(self) -> str | None:
        return self._resolve_teacher(self.spec.teacher)

    def _resolve_teacher(self, t: str | None) -> str | None:
        if not t or not t.startswith("run:"):
            return t
        if self.store is None:
            raise SpecError({"teacher": f"{t} cannot be resolved without the run store"})
        run = self.store.require_run(t[4:])
        if run["status"] != "finished" or not run["prompt_path"]:
            raise SpecError({"teacher": f"teacher run {t[4:]} is {run['status']}, not finished with a prompt"})
        return run["prompt_path"]

    def begin(self) -> None:
        self.t0 = time.time()
        self.emit("status", 0, {"status": "running", "pid": os.getpid(), "host": hostname(),
                                "device": self.spec.device})

    def outcome(self, result) -> dict:
        """The final status of a run that returned (finished, or cancelled with its best prompt)."""
        if self._pending_progress is not None:
            p, self._pending_progress = self._pending_progress, None
            self.emit("progress", p["step"], p["metrics"])
        if self.stop_reason:
            return {"status": "cancelled", "reason": self.stop_reason, "steps": getattr(result, "steps", None)}
        return {"status": "finished", **self.save(result)}

    def failure(self, e: BaseException | None, error: str | None = None) -> dict:
        """The final status of a run that raised (``error``: a pack's message + traceback)."""
        if self.stop_reason:
            return {"status": "cancelled", "reason": self.stop_reason}
        tb = error or f"{type(e).__name__}: {e}\n{traceback.format_exc()[-3000:]}"
        self.out.write(tb + "\n")
        if self.out is not sys.stdout:
            sys.stderr.write(f"run {self.run_id} failed: {tb}\n")
        final = {"status": "failed", "error": tb}
        if isinstance(e, KeyboardInterrupt):
            final["reason"] = "interrupted"
        return final

    def run(self) -> str:
        """Returns the final status: finished | failed | cancelled."""
        signal.signal(signal.SIGTERM, self._on_sigterm)
        self.begin()
        try:
            cfg = build_train_config(self.spec, self.teacher_path(), self.teacher_paths())
            from core.training import train

            final = self.outcome(train(cfg, callback=self.callback, should_stop=self.should_stop))
        except BaseException as e:  # noqa: BLE001 - a worker reports every failure
            final = self.failure(e)
        self.finish(final)
        return final["status"]

    def save(self, result) -> dict:
        from core.training import save_result

        prompt = getattr(result, "prompt", None)
        if prompt is not None and hasattr(prompt, "name"):
            # unique in the library: the index is keyed by name
            src = self.spec.source_label
            if self.spec.mix:  # "mix top-3 (zs)" -> "mix-top-3-zs": a prompt name without spaces
                src = "-".join(src.replace("(", " ").replace(")", " ").split())
            prompt.name = "-".join(x for x in (self.spec.target, self.spec.method, src,
                                               f"s{self.spec.seed}", self.run_id) if x)
        self.out_dir.parent.mkdir(parents=True, exist_ok=True)
        saved = save_result(result, self.out_dir)
        path = Path(saved) if saved else self.out_dir
        info = {"val_score": _num(getattr(result, "val_score", None)),
                "test_score": _num(getattr(result, "test_score", None)),
                "best_step": getattr(result, "best_step", None), "steps": getattr(result, "steps", None),
                "wall_time_s": _num(getattr(result, "wall_time_s", None)),
                "device": str(getattr(result, "device", None) or self.device),
                "prompt_path": str(path)}
        info.update(self.sanity(result))
        # both scores, the task's kind as the main one (val_score / test_score), the other beside it
        kind = info["score_kind"]
        from core.training.evaluation import other_kind
        other = other_kind(kind)
        info.update(val_other=_num((getattr(result, "val_scores", None) or {}).get(other)),
                    test_other=_num((getattr(result, "test_scores", None) or {}).get(other)))
        return info

    def sanity(self, result) -> dict:
        """What the run's numbers are and whether they can be trusted, from its own events and data
        (core.evidence.run_flags): stored in the final event, read back by the results table."""
        from core.evidence import flags_text, run_flags
        out = {"score_kind": getattr(result, "score_kind", None) or "accuracy"}
        counts = None
        try:
            from core.tasks import get_task, task_data_hash
            task = get_task(self.spec.target)
            counts = task.validation.counts(task.num_labels)
            out.update(majority_rate=task.majority_rate("test"), test_n=len(task.test),
                       data_hash=task_data_hash(task))
        except Exception:  # noqa: BLE001 -- a task that cannot be re-read: its numbers stay undescribed
            pass
        flags = run_flags(best_step=getattr(result, "best_step", None), history=getattr(result, "history", None),
                          val_counts=counts, nonfinite_loss=self.nonfinite_loss)
        out["flags"] = flags_text(flags)
        return out

    def finish(self, final: dict) -> None:
        self.final_status = final["status"]
        final.setdefault("wall_time_s", round(time.time() - getattr(self, "t0", time.time()), 3))
        if self.store is None:
            if final.get("status") == "finished" and final.get("prompt_path"):
                final["files"] = result_files(Path(final["prompt_path"]))
            self.emit("status", None, final)
            return
        self.emit("status", None, final)  # stdout only (the store gets it below, atomically)
        record_final(self.store, self.run_id, final)


def run_pack(workers: list[Worker]) -> list[str]:
    """Train several runs in one process and one forward per step (core.training.train_packed).
    Each run keeps its own events, log, cancel flag, result and final status; a run whose
    set-up fails (a teacher run that did not finish) ends alone before the pack starts.
    Returns each run's final status."""
    from core.training import pack_key

    def on_sigterm(signum, frame):
        for w in workers:
            w._on_sigterm(signum, frame)

    signal.signal(signal.SIGTERM, on_sigterm)
    store = workers[0].store
    poll = _CancelPoll(store, [w.run_id for w in workers]) if store is not None else None
    members, cfgs = [], []
    for w in workers:
        w.cancel_poll = poll
        w.begin()
        try:
            cfgs.append(build_train_config(w.spec, w.teacher_path(), w.teacher_paths()))
            members.append(w)
        except BaseException as e:  # noqa: BLE001
            w.finish(w.failure(e))
    for w in members:
        w.emit("log", 0, {"message": f"packed with {len(members)} runs in process {os.getpid()}",
                          "pack_size": len(members)})
    # one forward per pack key (the launchers pack one key; a hand-made list may mix them)
    groups: dict[tuple, list[int]] = {}
    for i, c in enumerate(cfgs):
        groups.setdefault(pack_key(c), []).append(i)
    for idx in groups.values():
        _train_group([members[i] for i in idx], [cfgs[i] for i in idx])
    return [_final_status(w) for w in workers]


def _train_group(ws: list[Worker], cfgs: list) -> None:
    """One packed forward for runs of one pack key; each run ends on its own."""
    from core.training import train_packed

    try:
        outs = train_packed(cfgs, callbacks=[w.callback for w in ws], should_stops=[w.should_stop for w in ws])
    except BaseException as e:  # noqa: BLE001 -- the pack as a whole (backbone load, Ctrl-C)
        for w in ws:
            w.finish(w.failure(e))
        return
    for w, o in zip(ws, outs):
        try:
            final = w.failure(None, o.error) if o.status == "failed" else w.outcome(o.result)
        except BaseException as e:  # noqa: BLE001 -- saving one prompt failed
            final = w.failure(e)
        w.finish(final)


class _CancelPoll:
    """A pack's cancel flags: one store read per pack step (the first run to ask again
    starts a new step), not one per run."""

    def __init__(self, store: RunStore, run_ids: list[str]):
        self.store, self.run_ids = store, run_ids
        self.flags: set[str] = set()
        self.asked: set[str] = set()

    def __call__(self, run_id: str) -> bool:
        if run_id in self.asked or not self.asked:
            self.flags = self.store.cancel_flags(self.run_ids)
            self.asked = set()
        self.asked.add(run_id)
        return run_id in self.flags


def _final_status(w: Worker) -> str:
    return getattr(w, "final_status", "failed")


def pack_note(store: RunStore, run: dict) -> str | None:
    """'packed with N runs' for a run trained in one process with others (the Runs page shows it)."""
    if not run.get("pack_id"):
        return None
    n = len(store.pack_runs(run["pack_id"]))
    return (f"packed with {n} runs (one worker process, one forward of the backbone per step; "
            f"pack {run['pack_id']})")


def record_final(store: RunStore, run_id: str, final: dict) -> bool:
    """Write a run's terminal status (scores, prompt path, error) in one transaction."""
    status = final["status"]
    fields = {k: final[k] for k in ("val_score", "test_score", "wall_time_s", "prompt_path", "device", "error")
              if final.get(k) is not None}
    if status == "finished" and final.get("steps") is not None:
        fields["step"] = final["steps"]
    event = {k: v for k, v in final.items() if k not in ("status", "files")}
    return store.set_status(run_id, status, only_if=("queued", "running"), event=event, **fields)


def _num(x):
    try:
        return None if x is None else float(x)
    except (TypeError, ValueError):
        return None


def worker_main(run_ids: list[str] | str, spec_files: list[str] | str | None = None) -> int:
    """Run one stored run, or several as one pack (one process, one forward per step)."""
    run_ids = [run_ids] if isinstance(run_ids, str) else list(run_ids)
    spec_files = [spec_files] if isinstance(spec_files, str) else list(spec_files or [])
    if spec_files and len(spec_files) != len(run_ids):
        print(f"error: {len(run_ids)} run ids but {len(spec_files)} --spec files", file=sys.stderr)
        return 2
    workers = _job_workers(run_ids, spec_files) if spec_files else _stored_workers(run_ids)
    if not workers:
        return 0
    statuses = run_pack(workers) if len(run_ids) > 1 else [workers[0].run()]
    return 0 if all(s in ("finished", "cancelled") for s in statuses) else 1


def _job_workers(run_ids: list[str], spec_files: list[str]) -> list[Worker]:
    """A Ray job: no store here, events travel on stdout, results land in the working_dir."""
    return [Worker(rid, RunSpec.from_file(f), None, Path(os.getcwd()) / "result" / rid)
            for rid, f in zip(run_ids, spec_files)]


def _stored_workers(run_ids: list[str]) -> list[Worker]:
    store = RunStore()
    workers = []
    for rid in run_ids:
        run = store.require_run(rid)
        if run["status"] in TERMINAL:
            print(f"run {rid} is already {run['status']}; nothing to do", file=sys.stderr)
            continue
        store.update_run(rid, pid=os.getpid(), host=hostname())
        out = None
        if len(run_ids) > 1:  # the process's own output is the pack's log; each run keeps its own log too
            d = atlas_home() / "runs" / rid
            d.mkdir(parents=True, exist_ok=True)
            out = open(d / "log.txt", "a", encoding="utf-8")
        workers.append(Worker(rid, RunSpec.from_dict(run["spec"]), store, run_output_dir(rid), out))
    return workers
