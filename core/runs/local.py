"""The local launcher: worker processes on this machine, their liveness, cancel escalation, and the
dispatcher process.

    python -m core runs reconcile     # mark runs whose process died as failed
    python -m core runs dispatch      # serve the queue until idle (started for you)

A local run is ``python -m core worker RUN_ID`` (a pack: ``... worker ID1 ID2 ...``), detached
(``start_new_session``), output to ``ATLAS_HOME/runs/<id>/log.txt`` (a pack's process output to
``runs/<pack_id>/log.txt``); the worker writes its own events into the store.
``claim_local`` picks, within the per-device caps (core.runs.capacity), which ready runs start
and which share a process; the store records the claim in one transaction.

Liveness: a running local run whose process is gone (or a zombie) and that wrote no final event
is marked failed with the tail of its log (or cancelled if a cancel was asked). Cancel
escalation: a running run that ignored its cancel flag gets SIGTERM after
``CANCEL_TERM_AFTER_S``, SIGKILL after ``CANCEL_KILL_AFTER_S``.

The dispatcher (one detached process per store, started on demand, exits when idle) runs
core.runs.queue.dispatch_forever; ``ensure_dispatcher`` starts it, the store's ``meta`` row
records it.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from core.config import REPO_ROOT, atlas_home
from core.runs.capacity import cpu_slots, gpu_slots, n_gpus, pack_cap, pack_group
from core.runs.store import RunStore, hostname

CANCEL_TERM_AFTER_S = 5.0
CANCEL_KILL_AFTER_S = 20.0
NO_PID_GRACE_S = 30.0
LOG_TAIL_LINES = 30

_children: dict[int, subprocess.Popen] = {}  # our own workers, reaped in pump()
_children_lock = threading.Lock()


# --------------------------------------------------------------------------- #
# processes
# --------------------------------------------------------------------------- #
def proc_start_time(pid: int) -> str | None:
    """Kernel start time of a process (guards against a recycled pid); None off Linux."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def pid_alive(pid: int | None, start: str | None = None) -> bool:
    if not pid:
        return False
    reap()
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        if fields[0] in ("Z", "X"):  # exited, not yet reaped
            return False
        if start is not None and fields[19] != start:
            return False  # the pid now belongs to another process
    except (OSError, IndexError):
        pass
    return True


def reap() -> None:
    """Collect the exit status of our own finished workers (so they leave no zombie)."""
    with _children_lock:
        for pid, p in list(_children.items()):
            if p.poll() is not None:
                _children.pop(pid, None)


def run_dir(run_id: str) -> Path:
    p = atlas_home() / "runs" / run_id
    p.mkdir(parents=True, exist_ok=True)
    return p


def log_tail(run_id: str, n: int = LOG_TAIL_LINES) -> str:
    path = atlas_home() / "runs" / run_id / "log.txt"
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 64 * 1024))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    # JSON event lines are in the store already; keep what a person needs to read
    text = [ln for ln in lines if not ln.startswith('{"run_id"')]
    return "\n".join(text[-n:]) or "(log has only events)"


def run_log_tail(run: dict, n: int = LOG_TAIL_LINES) -> str:
    """A run's log tail; for a packed run, its own log and then its pack process's output."""
    own = log_tail(run["run_id"], n)
    if not run.get("pack_id"):
        return own
    return f"{own}\n--- pack {run['pack_id']} (the process's output) ---\n{log_tail(run['pack_id'], n)}"


def worker_env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env["ATLAS_HOME"] = str(atlas_home())
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("RAY_AUTH_MODE", "disabled")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env.update(extra or {})
    return env


# --------------------------------------------------------------------------- #
# liveness and cancel escalation
# --------------------------------------------------------------------------- #
def reconcile(store: RunStore | None = None) -> dict:
    """Runs left 'running' whose process is gone with no final event -> failed (log tail).
    Safe to call any time; the Runs page calls it once per server start."""
    store = store or RunStore()
    out = {"failed": [], "cancelled": []}
    for run in store.list_runs(status=["running"]):
        reason = _dead_reason(run, time.time())
        if reason is None:
            continue
        if run["cancel_requested"]:
            if store.set_status(run["run_id"], "cancelled", only_if=("running",), event={"reason": reason}):
                out["cancelled"].append(run["run_id"])
        elif store.set_status(run["run_id"], "failed", only_if=("running",),
                              error=f"{reason}; log tail:\n{run_log_tail(run)}"):
            out["failed"].append(run["run_id"])
    return out


def _dead_reason(run: dict, now: float) -> str | None:
    """Why a running local run of this host has no process any more; None when it is alive
    (or not ours to judge: Ray runs have their collector, other hosts their own reconcile)."""
    if run["backend"] != "local" or (run["host"] and run["host"] != hostname()):
        return None
    if not run["pid"]:
        if now - (run["started"] or run["updated"]) < NO_PID_GRACE_S:
            return None
        return "the launcher exited before the worker started"
    if pid_alive(run["pid"], run["pid_start"]):
        return None
    return f"worker process {run['pid']} exited without a final event"


def escalate_cancels(store: RunStore) -> None:
    """SIGTERM, then SIGKILL, a local run that ignored its cancel flag (a pack: once all its runs asked)."""
    now = time.time()
    for run in store.list_runs(status=["running"]):
        asked = run["cancel_requested"]
        if not asked or run["backend"] != "local" or not run["pid"] or run["host"] != hostname():
            continue
        if not pid_alive(run["pid"], run["pid_start"]):
            continue
        if run.get("pack_id") and not all(r["cancel_requested"] or r["status"] != "running"
                                          for r in store.pack_runs(run["pack_id"])):
            continue  # the others in its process still train: the run stops at its next step
        waited = now - asked
        sig = signal.SIGKILL if waited > CANCEL_KILL_AFTER_S else signal.SIGTERM if waited > CANCEL_TERM_AFTER_S else None
        if sig is not None:
            try:
                os.killpg(run["pid"], sig)
            except (ProcessLookupError, PermissionError):
                pass




# --------------------------------------------------------------------------- #
# starting local runs
# --------------------------------------------------------------------------- #
def claim_local(store: RunStore) -> list[dict]:
    """Move startable local runs to 'running' within the device caps (one store transaction).
    A cap counts worker processes; each process takes up to :func:`pack_cap` ready runs of one
    :func:`pack_group` (a PANDA run is ready only once its PoT teacher has finished).
    Returns one claim per process: {"run_ids", "device", "pack_id" (None for one run)}."""
    return store.claim_local(hostname(), _choose_local)


def _choose_local(ready: list[dict], used: dict[str, int]) -> list[dict]:
    """The policy of a claim: ``ready`` queued runs (oldest first), ``used`` processes per device."""
    caps: dict[str, int] = {}
    gpus: list[int] = []
    claims: list[dict] = []
    open_packs: dict[tuple, dict] = {}
    for r in ready:
        want = r["device"] or "cpu"
        group = pack_group({**r["spec"], "device": want})
        p = open_packs.get(group)
        if p is not None and len(p["run_ids"]) < p["cap"]:
            p["run_ids"].append(r["run_id"])  # joins a process claimed in this pass
            continue
        chosen = _free_device(want, r["spec"], caps, used, gpus)
        if chosen is None:
            continue
        used[chosen] = used.get(chosen, 0) + 1
        claim = {"run_ids": [r["run_id"]], "device": chosen, "cap": pack_cap(chosen, r["spec"])}
        claims.append(claim)
        if claim["cap"] > 1:
            open_packs[group] = claim
    return claims


def _free_device(want: str, spec: dict, caps: dict[str, int], used: dict[str, int], gpus: list[int]) -> str | None:
    """The first device matching ``want`` ("cuda" = any GPU) with a free process slot."""
    if want.startswith("cuda") and ":" not in want:
        if not gpus:
            gpus.append(n_gpus())  # asked once per claim
        candidates = [f"cuda:{i}" for i in range(max(gpus[0], 1))]
    else:
        candidates = [want]
    for dev in candidates:
        if dev not in caps:
            caps[dev] = gpu_slots(spec.get("backbone")) if dev.startswith("cuda") else cpu_slots()
        if used.get(dev, 0) < caps[dev]:
            return dev
    return None


def start_local(store: RunStore, run_ids: list[str], device: str, pack_id: str | None = None) -> None:
    """One worker process for one run, or for a pack (its output in runs/<pack_id>/log.txt,
    each run's own events and traceback in runs/<run_id>/log.txt)."""
    d = run_dir(pack_id or run_ids[0])
    extra = {}
    if device == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        # share the cores between concurrent CPU runs instead of oversubscribing them
        extra["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // cpu_slots()))
    for run_id in run_ids:
        spec = store.require_run(run_id)["spec"]
        if spec.get("device") != device:  # the concrete device the claim picked
            spec["device"] = device
            store.update_run(run_id, spec=spec)
    try:
        p = _spawn(["worker", *run_ids], d / "log.txt", worker_env(extra))
    except OSError as e:
        for run_id in run_ids:
            store.set_status(run_id, "failed", only_if=("running",), error=f"could not start the worker: {e}")
        return
    start = proc_start_time(p.pid)
    for run_id in run_ids:
        store.update_run(run_id, pid=p.pid, pid_start=start, host=hostname())


def _spawn(core_args: list[str], log_path: Path, env: dict) -> subprocess.Popen:
    """``python -m core ARGS`` detached (own session), output appended to ``log_path``; remembered
    so pump() reaps it."""
    with open(log_path, "ab") as log:
        p = subprocess.Popen([sys.executable, "-m", "core", *core_args], cwd=str(REPO_ROOT),
                             stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True, env=env)
    with _children_lock:
        _children[p.pid] = p
    return p


# --------------------------------------------------------------------------- #
# the dispatcher process (one per store; its loop is core.runs.queue.dispatch_forever)
# --------------------------------------------------------------------------- #
def _alive_here(raw: str | None) -> dict | None:
    """The recorded dispatcher, when it is a live process on this host."""
    info = json.loads(raw) if raw else None
    if info and info.get("host") == hostname() and pid_alive(info.get("pid"), info.get("pid_start")):
        return info
    return None


def dispatcher_pid(store: RunStore) -> int | None:
    info = _alive_here(store.get_meta("dispatcher"))
    return int(info["pid"]) if info else None


def ensure_dispatcher(store: RunStore) -> int:
    """Start the store's dispatcher unless one is alive; returns its pid. The check and the
    record are one store transaction (``swap_meta``), so two callers never start two."""
    pid = dispatcher_pid(store)
    if pid:
        return pid
    d = atlas_home() / "runs"
    d.mkdir(parents=True, exist_ok=True)

    def decide(current: str | None) -> str:
        if _alive_here(current):
            return current
        p = _spawn(["runs", "dispatch"], d / "dispatcher.log", worker_env())
        return json.dumps({"pid": p.pid, "host": hostname(), "pid_start": proc_start_time(p.pid)})

    return int(json.loads(store.swap_meta("dispatcher", decide))["pid"])


def claim_dispatcher(store: RunStore) -> bool:
    """True when this process may serve: it is the recorded dispatcher, or none is alive."""
    me = {"pid": os.getpid(), "host": hostname(), "pid_start": proc_start_time(os.getpid())}

    def decide(current: str | None) -> str | None:
        info = json.loads(current) if current else None
        if info and info.get("pid") == me["pid"] and info.get("host") == me["host"]:
            return current
        return current if _alive_here(current) else json.dumps(me)

    stored = json.loads(store.swap_meta("dispatcher", decide))
    return stored.get("pid") == me["pid"] and stored.get("host") == me["host"]


def release_dispatcher(store: RunStore) -> None:
    """Drop the record when it is this process's (a dispatcher exiting)."""
    store.swap_meta("dispatcher", lambda cur: None if cur and json.loads(cur).get("pid") == os.getpid() else cur)


def stop_dispatcher(store: RunStore, timeout_s: float = 10.0) -> None:
    """For tests and shutdown: SIGTERM the dispatcher of this store and wait for it."""
    pid = dispatcher_pid(store)
    if not pid:
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s and pid_alive(pid):
        time.sleep(0.1)
