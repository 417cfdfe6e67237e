"""Launchers: start queued runs as local processes or Ray jobs, watch them, cancel them.

    python -m core runs pump          # start what the caps allow, once
    python -m core runs dispatch      # the same every second until idle (started for you)

The queue is the store: ``submit`` only inserts a queued run. ``pump`` (called by
the Runs page's fragment, the CLI and the dispatcher; safe to call from several
processes at once because a claim is one ``BEGIN IMMEDIATE`` transaction) does:

1. liveness: a local run whose process is gone (or a zombie) and that wrote no final
   event is marked failed with the tail of its log (or cancelled if a cancel was asked);
2. cancel escalation: a running run that ignored its cancel flag gets SIGTERM after
   ``CANCEL_TERM_AFTER_S``, SIGKILL after ``CANCEL_KILL_AFTER_S``;
3. dependencies: a queued run whose dependency failed is failed too (resume the sweep
   to relaunch both); one whose dependencies are all finished becomes startable;
4. local starts, within a per-device concurrency cap (``device_caps``): CPU 1 by default
   (``ATLAS_CPU_SLOTS``); GPU from the model's size -- a MiniLM run uses a sliver of a
   GPU and is launch-bound, so 12 concurrent processes gave 6.6x the throughput of one
   on an H200 (DESIGN.md §5) -- ``ATLAS_GPU_SLOTS`` overrides;
5. Ray submissions (Ray does the queueing there: each job reserves 1 CPU, or 1/cap of a GPU).

Local runs: ``python -m core worker RUN_ID``, detached (``start_new_session``), output to
``ATLAS_HOME/runs/<id>/log.txt``; the worker writes its own events into the store.

Packed training: on a GPU one process takes up to :func:`pack_cap` ready runs that share a
backbone, device and prompt length (``ATLAS_PACK`` caps it, default 64, and the GPU's memory
bounds it) and trains them in one forward per step (``core.train.train_packed``):
``python -m core worker ID1 ID2 ...``. Each run keeps its own row, events, log
(``runs/<id>/log.txt``; the process's output is ``runs/<pack_id>/log.txt``), cancel flag,
result and retry; a run that fails or is cancelled leaves the pack, the others go on; if the
process dies, every run in it is failed with both log tails. CPU runs stay one per process
(``ATLAS_PACK_CPU=1`` packs them: bench/packed_speed.py measured 1.02x at batch 16 on CPU).

Ray runs (choice, documented): the worker cannot assume it reaches our disk (a remote
cluster), so it gets its spec and input prompts in the job's ``working_dir``, runs with
no store, and prints one JSON event per line. The dispatcher (one detached process per
store, started on demand, exits when idle) tails each job's log
(``JobSubmissionClient.tail_job_logs``), skips Ray's own non-JSON lines, writes the events
into the store, and writes the final prompt (base64 in the last event) into the library.
A restarted dispatcher resumes from ``runs.collected_seq``. Cancel = ``stop_job`` (SIGTERM:
the worker stops at its next step). ``RAY_AUTH_MODE`` is always set explicitly
(``disabled`` unless the environment says otherwise). The job runs ``python -m core worker``
with ``sys.executable`` on a local cluster (``ATLAS_RAY_PYTHON`` elsewhere, default ``python``);
a remote cluster needs this repo's requirements and prepared tasks on its nodes
(``python -m core tasks prepare``; point ``ATLAS_RAY_CACHE`` at that cache).
"""
from __future__ import annotations

import asyncio
import json
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from core.config import REPO_ROOT, atlas_home
from core.runs import (RunSpec, SpecError, _is_local_address, record_final, run_output_dir, validate_spec,
                       write_result_files)
from core.runstore import ACTIVE, TERMINAL, RunStore, StoreError, hostname, new_run_id

CANCEL_TERM_AFTER_S = 5.0
CANCEL_KILL_AFTER_S = 20.0
NO_PID_GRACE_S = 30.0
GPU_SLOTS_MAX = 12  # measured sweet spot for MiniLM on an H200
LOG_TAIL_LINES = 30

_children: dict[int, subprocess.Popen] = {}  # our own workers, reaped in pump()
_children_lock = threading.Lock()


class LaunchError(RuntimeError):
    pass


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
    _reap()
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


def _reap() -> None:
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
# capacity
# --------------------------------------------------------------------------- #
def gpu_slots(backbone: str | None, mem_bytes: int | None = None) -> int:
    """Concurrent runs per GPU for a model: floor(0.9 * GPU memory / per-run estimate),
    between 1 and 12. Per-run estimate = 0.6 GB (CUDA context, allocator) + 4 bytes x
    params x 3 (bf16 weights, activations, optimizer state of the prompt: generous)."""
    env = os.environ.get("ATLAS_GPU_SLOTS")
    if env:
        return max(1, int(env))
    from core.runs import backbone_info

    try:
        params = backbone_info(backbone)["params"]
    except Exception:
        params = 110_000_000
    if mem_bytes is None:
        try:
            import torch

            mem_bytes = torch.cuda.get_device_properties(0).total_memory
        except Exception:
            mem_bytes = 16 * 2**30
    per_run = 0.6 * 2**30 + 12 * params
    cap = min(GPU_SLOTS_MAX, int(0.9 * mem_bytes // per_run))
    # a large model saturates the GPU itself: scale the 12 (measured for 22.7M params) down
    cap = min(cap, max(1, round(GPU_SLOTS_MAX * math.sqrt(25e6 / max(params, 25e6)))))
    return max(1, cap)


PACK_MAX = 64  # runs per packed worker process (ATLAS_PACK overrides)
PROMPT_LENGTH_DEFAULT = 20  # core.train.TrainConfig.prompt_length (not imported: that pulls in torch)


def cpu_packing() -> bool:
    """Whether CPU runs are packed. Off unless ATLAS_PACK_CPU=1. Measured (bench/packed_speed.py,
    2 shared cores, prompt-steps per CPU-second, one thread): at the default shape (batch 16,
    20 + 64 tokens) a pack of 4 did 1.02x one run; at batch 4 x (20 + 32) tokens packs of 4 / 16
    did 1.15x / 1.19x. CPU training is compute-bound, so a pack mostly makes K runs finish
    together, later, instead of one after another; one process per run stays the CPU default."""
    return os.environ.get("ATLAS_PACK_CPU", "").strip().lower() in ("1", "true", "yes")


def pack_cap(device: str, spec: dict, mem_bytes: int | None = None) -> int:
    """How many queued runs one worker process trains packed (one forward per step).

    GPU: min(ATLAS_PACK or 64, what fits in half the GPU's memory by a per-run activation
    estimate: batch x (L + max_length) positions x layers x (12 d + 2 heads x positions)
    values of 4 bytes, kept for the backward). CPU: 1 unless packing is forced on
    (``ATLAS_PACK_CPU=1``), then ATLAS_PACK or 64."""
    env = os.environ.get("ATLAS_PACK", "").strip()
    cap = max(1, int(env)) if env else PACK_MAX
    if not str(device).startswith("cuda"):
        return cap if cpu_packing() else 1
    params = spec.get("params") or {}
    try:
        from core.runs import backbone_info

        info = backbone_info(spec.get("backbone"))
    except Exception:
        info = {"dim": 768, "layers": 12, "heads": 12}
    S = int(params.get("prompt_length", PROMPT_LENGTH_DEFAULT)) + int(params.get("max_length", 128))
    per_run = int(params.get("batch_size", 16)) * S * info["layers"] * (12 * info["dim"] + 2 * info["heads"] * S) * 4
    if mem_bytes is None:
        try:
            import torch

            mem_bytes = torch.cuda.get_device_properties(0).total_memory
        except Exception:
            mem_bytes = 16 * 2**30
    return max(1, min(cap, int(0.5 * mem_bytes // max(per_run, 1))))


def pack_group(spec: dict) -> tuple:
    """Queued runs pack together when these agree (core.train.pack_key): backbone, device,
    prompt length. Backend and address too: a pack is one process or one Ray job."""
    params = spec.get("params") or {}
    return (spec.get("backend", "local"), spec.get("address"), spec.get("device"), spec.get("backbone"),
            int(params.get("prompt_length", PROMPT_LENGTH_DEFAULT)))


def cpu_slots() -> int:
    return max(1, int(os.environ.get("ATLAS_CPU_SLOTS", "1")))


def n_gpus() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:
        return 0


def resolve_device_for_queue(device: str) -> str:
    """'auto' -> 'cuda' when this machine has a GPU, else 'cpu' (decided at submit)."""
    if device == "auto":
        forced = os.environ.get("ATLAS_DEVICE", "").strip().lower()
        if forced:
            return forced
        return "cuda" if n_gpus() else "cpu"
    return device


# --------------------------------------------------------------------------- #
# submit / cancel / retry
# --------------------------------------------------------------------------- #
def submit(spec: RunSpec, store: RunStore | None = None, *, validate: bool = True, dispatch: bool = True,
           run_id: str | None = None) -> str:
    """Validate, queue, pump. Raises SpecError before anything starts when the spec is bad."""
    store = store or RunStore()
    if validate:
        spec = validate_spec(spec)
    if spec.backend == "ray":
        ray_client(spec.address)  # fail now, not later, when Ray or the cluster is missing
    else:
        spec.device = resolve_device_for_queue(spec.device)
    run_id = run_id or new_run_id()
    deps = [spec.teacher[4:]] if (spec.teacher or "").startswith("run:") else []
    store.add_run(run_id, spec.to_dict(), sweep_id=spec.sweep_id, depends_on=deps)
    pump(store, dispatch=dispatch)
    return run_id


def cancel(run_id: str, store: RunStore | None = None) -> str:
    """Ask a run to stop: a queued one is cancelled at once, a running one stops at its
    next step (local: the flag; Ray: stop_job). Returns the status after the request."""
    store = store or RunStore()
    status = store.request_cancel(run_id)
    run = store.require_run(run_id)
    if status == "running" and run["backend"] == "ray":
        others = [r for r in store.pack_runs(run["pack_id"]) if r["run_id"] != run_id] if run["pack_id"] else []
        if any(r["status"] == "running" and not r["cancel_requested"] for r in others):
            # a Ray job cannot be told to drop one of its runs: this run is cancelled here (its
            # collector ignores what the job still reports for it); the job trains on for the others
            store.set_status(run_id, "cancelled", only_if=("running",),
                             event={"reason": "cancelled inside a Ray pack; the job goes on for the others"})
            return "cancelled"
        try:
            ray_client(run["address"]).stop_job(run["job_id"] or run_id)
        except Exception as e:  # the collector will still see the job end
            store.add_event(run_id, "log", None, {"message": f"stop_job failed: {e}"})
    return status


def retry(run_id: str, store: RunStore | None = None, *, dispatch: bool = True) -> str:
    """A new run from the same spec (validated again); returns its id."""
    store = store or RunStore()
    old = store.require_run(run_id)
    spec = RunSpec.from_dict(old["spec"])
    new_id = new_run_id()
    spec = validate_spec(spec, pending_runs=set(old["depends_on"]))
    store.add_run(new_id, spec.to_dict(), sweep_id=old["sweep_id"], sweep_key=old["sweep_key"],
                  depends_on=old["depends_on"], retry_of=run_id)
    pump(store, dispatch=dispatch)
    return new_id


# --------------------------------------------------------------------------- #
# the queue
# --------------------------------------------------------------------------- #
def reconcile(store: RunStore | None = None) -> dict:
    """Runs left 'running' whose process is gone with no final event -> failed (log tail).
    Safe to call any time; the Runs page calls it once per server start."""
    store = store or RunStore()
    now = time.time()
    out = {"failed": [], "cancelled": []}
    me = hostname()
    for run in store.list_runs(status=["running"]):
        if run["backend"] != "local" or (run["host"] and run["host"] != me):
            continue  # Ray runs: their collector decides; other hosts: not ours to judge
        if not run["pid"]:
            if now - (run["started"] or run["updated"]) < NO_PID_GRACE_S:
                continue
            reason = "the launcher exited before the worker started"
        elif pid_alive(run["pid"], run["pid_start"]):
            continue
        else:
            reason = f"worker process {run['pid']} exited without a final event"
        if run["cancel_requested"]:
            if store.set_status(run["run_id"], "cancelled", only_if=("running",), event={"reason": reason}):
                out["cancelled"].append(run["run_id"])
        elif store.set_status(run["run_id"], "failed", only_if=("running",),
                              error=f"{reason}; log tail:\n{run_log_tail(run)}"):
            out["failed"].append(run["run_id"])
    return out


def _escalate_cancels(store: RunStore) -> None:
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


def _fail_orphans(store: RunStore) -> list[str]:
    """Queued runs whose dependency ended without a result fail too (resume relaunches)."""
    failed = []
    queued = store.list_runs(status=["queued"])
    for run in queued:
        for dep in run["depends_on"]:
            d = store.get_run(dep)
            if d is None or d["status"] in ("failed", "cancelled"):
                why = "was deleted" if d is None else d["status"]
                if store.set_status(run["run_id"], "failed", only_if=("queued",),
                                    error=f"dependency {dep} {why}"):
                    failed.append(run["run_id"])
                break
    return failed


def _ready(store: RunStore, run: dict) -> bool:
    for dep in run["depends_on"]:
        d = store.get_run(dep)
        if d is None or d["status"] != "finished":
            return False
    return True


def _claim_local(store: RunStore) -> list[dict]:
    """Atomically move startable local runs to 'running' within the device caps. A cap counts
    worker processes; each process takes up to :func:`pack_cap` ready runs of one
    :func:`pack_group` (a PANDA run is ready only once its PoT teacher has finished).
    Returns one claim per process: {"run_ids", "device", "pack_id" (None for one run)}."""
    if not store._read("SELECT 1 FROM runs WHERE status = 'queued' AND backend = 'local' LIMIT 1"):
        return []  # the common case on every page poll: no write lock taken
    with store.write() as c:
        rows = c.execute("SELECT run_id, device, spec, depends_on FROM runs WHERE status = 'queued' "
                         "AND backend = 'local' ORDER BY created, run_id").fetchall()
        if not rows:
            return []
        running = c.execute("SELECT device, COUNT(DISTINCT COALESCE(pack_id, run_id)) AS n FROM runs "
                            "WHERE status = 'running' AND backend = 'local' AND host = ? GROUP BY device",
                            (hostname(),)).fetchall()
        used: dict[str, int] = {}
        for r in running:
            used[r["device"] or "cpu"] = used.get(r["device"] or "cpu", 0) + int(r["n"])
        caps: dict[str, int] = {}
        ngpu = None
        claims: list[dict] = []
        open_packs: dict[tuple, dict] = {}
        for r in rows:
            deps = json.loads(r["depends_on"])
            if deps:
                states = [c.execute("SELECT status FROM runs WHERE run_id = ?", (d,)).fetchone() for d in deps]
                if not all(s is not None and s["status"] == "finished" for s in states):
                    continue
            want = r["device"] or "cpu"
            spec = json.loads(r["spec"])
            group = pack_group({**spec, "device": want})
            p = open_packs.get(group)
            if p is not None and len(p["run_ids"]) < p["cap"]:
                p["run_ids"].append(r["run_id"])  # joins a process claimed in this pass
                continue
            if want.startswith("cuda"):
                if ngpu is None:
                    ngpu = n_gpus()
                candidates = [want] if ":" in want else [f"cuda:{i}" for i in range(max(ngpu, 1))]
            else:
                candidates = [want]
            chosen = None
            for dev in candidates:
                if dev not in caps:
                    caps[dev] = gpu_slots(spec.get("backbone")) if dev.startswith("cuda") else cpu_slots()
                if used.get(dev, 0) < caps[dev]:
                    chosen = dev
                    break
            if chosen is None:
                continue
            used[chosen] = used.get(chosen, 0) + 1
            claim = {"run_ids": [r["run_id"]], "device": chosen, "pack_id": None, "cap": pack_cap(chosen, spec)}
            claims.append(claim)
            if claim["cap"] > 1:
                open_packs[group] = claim
        now = time.time()
        for claim in claims:
            n = len(claim["run_ids"])
            if n > 1:
                claim["pack_id"] = new_run_id("p")
            for rid in claim["run_ids"]:
                c.execute("UPDATE runs SET status = 'running', device = ?, started = ?, updated = ?, host = ?, "
                          "pack_id = ? WHERE run_id = ?", (claim["device"], now, now, hostname(), claim["pack_id"], rid))
                ev = {"status": "running", "device": claim["device"]}
                if n > 1:
                    ev.update(pack_id=claim["pack_id"], pack_size=n)
                store._insert_event(c, rid, "status", 0, ev, now)
    return claims


def _start_local(store: RunStore, run_ids: list[str], device: str, pack_id: str | None = None) -> None:
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
        with open(d / "log.txt", "ab") as log:
            p = subprocess.Popen([sys.executable, "-m", "core", "worker", *run_ids], cwd=str(REPO_ROOT),
                                 stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True, env=worker_env(extra))
    except OSError as e:
        for run_id in run_ids:
            store.set_status(run_id, "failed", only_if=("running",), error=f"could not start the worker: {e}")
        return
    with _children_lock:
        _children[p.pid] = p
    start = proc_start_time(p.pid)
    for run_id in run_ids:
        store.update_run(run_id, pid=p.pid, pid_start=start, host=hostname())


def pump(store: RunStore | None = None, *, dispatch: bool = True) -> dict:
    """One pass of the queue (see the module docstring). Returns what it did."""
    store = store or RunStore()
    _reap()
    out = reconcile(store)
    _escalate_cancels(store)
    out["orphaned"] = _fail_orphans(store)
    started = _claim_local(store)
    for s in started:
        _start_local(store, s["run_ids"], s["device"], s["pack_id"])
    out["started"] = [rid for s in started for rid in s["run_ids"]]
    out["submitted"] = []
    for pack in _ray_packs(store):
        try:
            if _submit_ray(store, pack):
                out["submitted"].extend(r["run_id"] for r in pack)
        except Exception as e:  # one bad submission must not block the queue
            for run in pack:
                store.set_status(run["run_id"], "failed", only_if=("queued",),
                                 error=f"Ray submission failed: {type(e).__name__}: {e}")
    if dispatch and (store.list_runs(status=["queued"], limit=1) or
                     store.list_runs(status=["running"], limit=1)):
        ensure_dispatcher(store)
    return out


# --------------------------------------------------------------------------- #
# the dispatcher (one per store): pumps and collects Ray logs while work remains
# --------------------------------------------------------------------------- #
def dispatcher_pid(store: RunStore) -> int | None:
    raw = store.get_meta("dispatcher")
    if not raw:
        return None
    info = json.loads(raw)
    if info.get("host") == hostname() and pid_alive(info.get("pid"), info.get("pid_start")):
        return int(info["pid"])
    return None


def ensure_dispatcher(store: RunStore) -> int:
    """Start the store's dispatcher unless one is alive; returns its pid. The check and the
    record are one transaction, so two callers never start two."""
    pid = dispatcher_pid(store)
    if pid:
        return pid
    d = atlas_home() / "runs"
    d.mkdir(parents=True, exist_ok=True)
    with store.write() as c:
        row = c.execute("SELECT value FROM meta WHERE key = 'dispatcher'").fetchone()
        if row:
            info = json.loads(row[0])
            if info.get("host") == hostname() and pid_alive(info.get("pid"), info.get("pid_start")):
                return int(info["pid"])
        with open(d / "dispatcher.log", "ab") as log:
            p = subprocess.Popen([sys.executable, "-m", "core", "runs", "dispatch"], cwd=str(REPO_ROOT),
                                 stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True, env=worker_env())
        store.set_meta("dispatcher", json.dumps({"pid": p.pid, "host": hostname(),
                                                 "pid_start": proc_start_time(p.pid)}), con=c)
    with _children_lock:
        _children[p.pid] = p
    return p.pid


def _claim_dispatcher(store: RunStore) -> bool:
    """True when this process may serve: it is the recorded dispatcher, or none is alive."""
    me = {"pid": os.getpid(), "host": hostname(), "pid_start": proc_start_time(os.getpid())}
    with store.write() as c:
        row = c.execute("SELECT value FROM meta WHERE key = 'dispatcher'").fetchone()
        if row:
            info = json.loads(row[0])
            if info.get("pid") == me["pid"] and info.get("host") == me["host"]:
                return True
            if info.get("host") == me["host"] and pid_alive(info.get("pid"), info.get("pid_start")):
                return False
        store.set_meta("dispatcher", json.dumps(me), con=c)
    return True


def dispatch_forever(store: RunStore, *, idle_exit_s: float = 10.0, poll_s: float = 1.0) -> int:
    if not _claim_dispatcher(store):
        print("another dispatcher serves this store", flush=True)
        return 0
    print(f"dispatcher {os.getpid()} serving {store.path}", flush=True)
    collectors: dict[str, threading.Thread] = {}
    idle_since = None
    try:
        while True:
            pump(store, dispatch=False)
            for run in store.list_runs(status=["running"]):
                if run["backend"] == "ray":
                    t = collectors.get(run["run_id"])
                    if t is None or not t.is_alive():
                        t = threading.Thread(target=collect_ray_run, args=(store, run["run_id"]), daemon=True)
                        collectors[run["run_id"]] = t
                        t.start()
            active = store.list_runs(status=list(ACTIVE), limit=1)
            busy = active or any(t.is_alive() for t in collectors.values())
            if busy:
                idle_since = None
            else:
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since > idle_exit_s:
                    return 0
            time.sleep(poll_s)
    finally:
        with store.write() as c:
            row = c.execute("SELECT value FROM meta WHERE key = 'dispatcher'").fetchone()
            if row and json.loads(row[0]).get("pid") == os.getpid():
                store.set_meta("dispatcher", None, con=c)


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


# --------------------------------------------------------------------------- #
# Ray
# --------------------------------------------------------------------------- #
def ray_available() -> str | None:
    """None when the Ray Jobs client imports, else the reason and how to enable it."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    try:
        import ray  # noqa: F401
        from ray.job_submission import JobSubmissionClient  # noqa: F401
    except Exception as e:  # ImportError, or a broken install
        return f"Ray is not installed ({type(e).__name__}: {e}); pip install -r requirements-ray.txt"
    return None


def ray_client(address: str | None):
    problem = ray_available()
    if problem:
        raise LaunchError(problem)
    from ray.job_submission import JobSubmissionClient

    address = address or os.environ.get("RAY_ADDRESS") or "http://127.0.0.1:8265"
    try:
        return JobSubmissionClient(address)
    except Exception as e:
        raise LaunchError(f"cannot reach the Ray cluster at {address}: {type(e).__name__}: {e}") from None


def _bundle(store: RunStore, run: dict, root: Path | None = None) -> Path:
    """The job's working_dir: spec.json + the input prompts it needs (copied). In a pack's
    bundle (``root``) each run has its own sub-folder named by its run id."""
    spec = RunSpec.from_dict(run["spec"])
    top = root if root is not None else run_dir(run["run_id"]) / "bundle"
    b = top / run["run_id"] if root is not None else top
    if b.exists():
        shutil.rmtree(b)
    (b / "inputs").mkdir(parents=True)

    def ship(path: str, i: int, kind: str) -> str:
        src = Path(path)
        dest = b / "inputs" / f"{kind}{i}_{src.name}"
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dest)
        return str(dest.relative_to(top))

    spec.sources = [ship(s, i, "source") for i, s in enumerate(spec.sources)]
    if spec.teacher:
        teacher = spec.teacher
        if teacher.startswith("run:"):
            dep = store.require_run(teacher[4:])
            if not dep["prompt_path"]:
                raise LaunchError(f"teacher run {dep['run_id']} has no prompt")
            teacher = dep["prompt_path"]
        spec.teacher = ship(teacher, 0, "teacher")
    from core.tasks import export_task, is_user_task
    if is_user_task(spec.target):  # a user task's data travels with the job (ATLAS_TASKS_DIR=tasks),
        export_task(spec.target, top / "tasks")  # at the top of the working_dir, shared by a pack's runs
    (b / "spec.json").write_text(json.dumps(spec.to_dict(), indent=1))
    return top


def _ray_packs(store: RunStore) -> list[list[dict]]:
    """Ready queued Ray runs, grouped into jobs: runs of one :func:`pack_group` share a job up
    to :func:`pack_cap` (a cluster GPU is sized as 80 GB); others go one run per job."""
    packs: list[list[dict]] = []
    open_: dict[tuple, list[dict]] = {}
    for run in sorted(store.list_runs(status=["queued"]), key=lambda r: (r["created"], r["run_id"])):
        if run["backend"] != "ray" or not _ready(store, run):
            continue
        group = pack_group(run["spec"])
        cap = pack_cap(run["spec"].get("device") or "auto", run["spec"], mem_bytes=80 * 2**30)
        p = open_.get(group)
        if p is not None and len(p) < cap:
            p.append(run)
            continue
        packs.append([run])
        if cap > 1:
            open_[group] = packs[-1]
    return packs


def _submit_ray(store: RunStore, pack: list[dict] | dict) -> bool:
    """Submit one run, or a pack of runs as ONE Ray job (submission id = the pack id; each run
    keeps its own id, events and result in the store; its collector follows the job's log
    for its own run id)."""
    pack = [pack] if isinstance(pack, dict) else list(pack)
    pack_id = new_run_id("p") if len(pack) > 1 else None
    job_id = pack_id or pack[0]["run_id"]
    # claim first so two pumps never submit twice (a duplicate submission_id is a 400 anyway)
    claimed = []
    with store.write() as c:
        now = time.time()
        for run in pack:
            cur = c.execute("SELECT status FROM runs WHERE run_id = ?", (run["run_id"],)).fetchone()
            if cur is None or cur["status"] != "queued":
                continue
            c.execute("UPDATE runs SET status = 'running', started = ?, updated = ?, job_id = ?, pack_id = ? "
                      "WHERE run_id = ?", (now, now, job_id, pack_id, run["run_id"]))
            ev = {"status": "running", "backend": "ray", "address": run["address"]}
            if pack_id:
                ev.update(pack_id=pack_id, pack_size=len(pack))
            store._insert_event(c, run["run_id"], "status", 0, ev, now)
            claimed.append(run)
    if not claimed:
        return False
    try:
        _submit_claimed(store, claimed, job_id)
    except Exception as e:  # noqa: BLE001 -- whatever went wrong, the claimed runs must not stay 'running'
        for run in claimed:
            store.set_status(run["run_id"], "failed", only_if=("running",),
                             error=f"Ray submission failed: {type(e).__name__}: {e}")
        return False
    return True


def _submit_claimed(store: RunStore, runs: list[dict], job_id: str) -> None:
    run = runs[0]
    spec = run["spec"]
    client = ray_client(run["address"])
    if len(runs) == 1:
        bundle = _bundle(store, run)
        specs = ["spec.json"]
    else:
        bundle = run_dir(job_id) / "bundle"
        for r in runs:
            _bundle(store, r, root=bundle)
        specs = [f"{r['run_id']}/spec.json" for r in runs]
    python = os.environ.get("ATLAS_RAY_PYTHON") or (sys.executable if _is_local_address(run["address"]) else "python")
    env = {k: v for k, v in worker_env().items()
           if k.startswith(("ATLAS_", "HF_", "TRANSFORMERS_", "OMP_", "RAY_AUTH_MODE", "PYTHONUNBUFFERED"))}
    env.pop("ATLAS_HOME", None)  # the worker has no store; outputs go to its working_dir
    if _is_local_address(run["address"]):
        # same machine: the prepared task data and demo library are right here
        from core.config import cache_dir, demo_dir

        env.update(ATLAS_CACHE=str(cache_dir()), ATLAS_DEMO=str(demo_dir()))
    elif os.environ.get("ATLAS_RAY_CACHE"):
        env["ATLAS_CACHE"] = os.environ["ATLAS_RAY_CACHE"]  # where the cluster's nodes keep prepared tasks
    else:
        env.pop("ATLAS_CACHE", None)
        env.pop("ATLAS_DEMO", None)
    if (bundle / "tasks").is_dir():
        env["ATLAS_TASKS_DIR"] = "tasks"  # relative to the job's working_dir
    kwargs = {}
    device = spec.get("device") or "auto"
    if device.startswith("cuda"):
        kwargs["entrypoint_num_gpus"] = round(1.0 / gpu_slots(spec.get("backbone"), mem_bytes=80 * 2**30), 4)
    else:
        kwargs["entrypoint_num_cpus"] = 1
    ids = " ".join(shlex.quote(r["run_id"]) for r in runs)
    client.submit_job(
        entrypoint=f"{shlex.quote(python)} -m core worker {ids} " + " ".join(f"--spec {shlex.quote(f)}" for f in specs),
        submission_id=job_id,
        runtime_env={"working_dir": str(bundle), "py_modules": [str(REPO_ROOT / "core")], "env_vars": env},
        metadata={"atlas_run": run["run_id"], **({"atlas_pack": job_id} if len(runs) > 1 else {})},
        **kwargs,
    )


def ingest_lines(store: RunStore, run_id: str, lines: list[str], state: dict) -> None:
    """Collector step: keep this run's JSON event lines with a seq beyond what we have;
    remember a few other lines (Ray's own output, tracebacks) for error messages."""
    batch, final = [], None
    for line in lines:
        s = line.strip()
        ev = None
        if s.startswith("{"):
            try:
                ev = json.loads(s)
            except json.JSONDecodeError:
                ev = None
        if not isinstance(ev, dict) or ev.get("run_id") != run_id or "seq" not in ev or "kind" not in ev:
            if s:
                state.setdefault("other", []).append(s)
                state["other"] = state["other"][-LOG_TAIL_LINES:]
            continue
        if ev["seq"] <= state["seq"]:
            continue  # seen already (a restarted collector re-reads the log)
        state["seq"] = ev["seq"]
        if ev["kind"] == "status" and (ev.get("metrics") or {}).get("status") in TERMINAL:
            final = ev
        else:
            batch.append(ev)
    if (batch or final is not None) and store.require_run(run_id)["status"] in TERMINAL:
        state["final"] = True  # cancelled in the store while its Ray pack trains on: nothing more to record
        return
    if batch:
        store.add_events(run_id, batch, collected_seq=state["seq"] if final is None else None)
    if final is not None:
        m = dict(final.get("metrics") or {})
        files = m.pop("files", None)
        if m.get("status") == "finished" and files:
            dest = run_output_dir(run_id)
            if not dest.exists():
                write_result_files(files, dest)
            m["prompt_path"] = str(dest)
        elif m.get("status") == "finished":
            m["prompt_path"] = None
        record_final(store, run_id, m)
        store.update_run(run_id, collected_seq=state["seq"])
        state["final"] = True


def collect_ray_run(store: RunStore, run_id: str, *, unreachable_fail_s: float = 120.0) -> None:
    """Follow one Ray job's log into the store until it ends (runs in the dispatcher)."""
    run = store.require_run(run_id)
    state = {"seq": run["collected_seq"], "final": False}
    first_fail, status = None, "UNKNOWN"
    while True:
        try:
            client = ray_client(run["address"])
            job = run["job_id"] or run_id

            async def tail():
                buf = ""
                async for chunk in client.tail_job_logs(job):
                    buf += chunk
                    *lines, buf = buf.split("\n")
                    ingest_lines(store, run_id, lines, state)
                if buf:
                    ingest_lines(store, run_id, [buf], state)

            asyncio.run(tail())
            status = str(client.get_job_status(job)).split(".")[-1]
            if status in ("PENDING", "RUNNING"):
                time.sleep(0.5)
                continue  # the tail ended early (a dropped connection): follow again
            # the job ended; its last lines can arrive after that: re-read the whole log
            deadline = time.monotonic() + 10
            while not state["final"]:
                ingest_lines(store, run_id, client.get_job_logs(job).splitlines(), state)
                if state["final"] or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            break
        except Exception as e:  # cluster gone or restarting
            first_fail = first_fail or time.monotonic()
            if time.monotonic() - first_fail > unreachable_fail_s:
                store.set_status(run_id, "failed", only_if=("running",),
                                 error=f"lost the Ray cluster at {run['address']}: {type(e).__name__}: {e}")
                return
            time.sleep(2.0)
            continue
    if not state["final"]:
        fresh = store.require_run(run_id)
        tail_text = "\n".join(state.get("other", [])[-LOG_TAIL_LINES:])
        if fresh["cancel_requested"]:
            store.set_status(run_id, "cancelled", only_if=("running",), event={"ray_status": status})
        else:
            store.set_status(run_id, "failed", only_if=("running",),
                             error=f"Ray job ended {status} without a final event; log tail:\n{tail_text}")
