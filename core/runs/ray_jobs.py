"""The Ray launcher: runs (or packs of runs) as Ray jobs, and the collector that follows their logs.

    python -m core run --spec spec.json --backend ray --address http://127.0.0.1:8265
    pip install -r requirements-ray.txt

Choice, documented: the worker cannot assume it reaches our disk (a remote cluster), so it
gets its spec and input prompts in the job's ``working_dir``, runs with no store, and prints
one JSON event per line. The dispatcher (core.runs.queue.dispatch_forever) tails each job's log
(``JobSubmissionClient.tail_job_logs``), skips Ray's own non-JSON lines, writes the events into
the store, and writes the final prompt (base64 in the last event) into the library. A restarted
dispatcher resumes from ``runs.collected_seq``. Cancel = ``stop_job`` (SIGTERM: the worker stops
at its next step). ``RAY_AUTH_MODE`` is always set explicitly (``disabled`` unless the
environment says otherwise). The job runs ``python -m core worker`` with ``sys.executable`` on a
local cluster (``ATLAS_RAY_PYTHON`` elsewhere, default ``python``); a remote cluster needs this
repo's requirements and prepared tasks on its nodes (``python -m core tasks prepare``; point
``ATLAS_RAY_CACHE`` at that cache). Ray does the queueing: each job reserves 1 CPU, or 1/cap
of a GPU; runs of one pack group share a job (submission id = the pack id).
"""
from __future__ import annotations

import asyncio
import json
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

from core.config import REPO_ROOT
from core.runs.capacity import gpu_slots, pack_cap, pack_group
from core.runs.local import LOG_TAIL_LINES, run_dir, worker_env
from core.runs.spec import DEFAULT_RAY_ADDRESS, LaunchError, RunSpec, is_local_address
from core.runs.store import TERMINAL, RunStore, new_run_id
from core.runs.worker import record_final, run_output_dir, write_result_files

CLUSTER_GPU_BYTES = 80 * 2**30  # a cluster GPU is sized as 80 GB (we cannot ask it)


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

    address = address or os.environ.get("RAY_ADDRESS") or DEFAULT_RAY_ADDRESS
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
    for i, teacher in enumerate(list(spec.teachers)):  # panda with several teachers
        if teacher.startswith("run:"):
            dep = store.require_run(teacher[4:])
            if not dep["prompt_path"]:
                raise LaunchError(f"teacher run {dep['run_id']} has no prompt")
            teacher = dep["prompt_path"]
        spec.teachers[i] = ship(teacher, i, "teachers")
    from core.tasks import export_task, is_user_task
    if is_user_task(spec.target):  # a user task's data travels with the job (ATLAS_TASKS_DIR=tasks),
        export_task(spec.target, top / "tasks")  # at the top of the working_dir, shared by a pack's runs
    (b / "spec.json").write_text(json.dumps(spec.to_dict(), indent=1))
    return top


def ray_packs(store: RunStore) -> list[list[dict]]:
    """Ready queued Ray runs, grouped into jobs: runs of one :func:`pack_group` share a job up
    to :func:`pack_cap` (a cluster GPU is sized as 80 GB); others go one run per job."""
    packs: list[list[dict]] = []
    open_: dict[tuple, list[dict]] = {}
    for run in sorted(store.list_runs(status=["queued"]), key=lambda r: (r["created"], r["run_id"])):
        if run["backend"] != "ray" or not store.deps_finished(run["depends_on"]):
            continue
        group = pack_group(run["spec"])
        cap = pack_cap(run["spec"].get("device") or "auto", run["spec"], mem_bytes=CLUSTER_GPU_BYTES)
        p = open_.get(group)
        if p is not None and len(p) < cap:
            p.append(run)
            continue
        packs.append([run])
        if cap > 1:
            open_[group] = packs[-1]
    return packs


def submit_ray(store: RunStore, pack: list[dict] | dict) -> bool:
    """Submit one run, or a pack of runs as ONE Ray job (submission id = the pack id; each run
    keeps its own id, events and result in the store; its collector follows the job's log
    for its own run id)."""
    pack = [pack] if isinstance(pack, dict) else list(pack)
    pack_id = new_run_id("p") if len(pack) > 1 else None
    job_id = pack_id or pack[0]["run_id"]
    # claim first so two pumps never submit twice (a duplicate submission_id is a 400 anyway)
    ids = set(store.claim_job([r["run_id"] for r in pack], job_id, pack_id))
    claimed = [r for r in pack if r["run_id"] in ids]
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
    python = os.environ.get("ATLAS_RAY_PYTHON") or (sys.executable if is_local_address(run["address"]) else "python")
    kwargs = {}
    if (spec.get("device") or "auto").startswith("cuda"):
        kwargs["entrypoint_num_gpus"] = round(1.0 / gpu_slots(spec.get("backbone"), mem_bytes=CLUSTER_GPU_BYTES), 4)
    else:
        kwargs["entrypoint_num_cpus"] = 1
    ids = " ".join(shlex.quote(r["run_id"]) for r in runs)
    client.submit_job(
        entrypoint=f"{shlex.quote(python)} -m core worker {ids} " + " ".join(f"--spec {shlex.quote(f)}" for f in specs),
        submission_id=job_id,
        runtime_env={"working_dir": str(bundle), "py_modules": [str(REPO_ROOT / "core")],
                     "env_vars": _job_env(run["address"], bundle)},
        metadata={"atlas_run": run["run_id"], **({"atlas_pack": job_id} if len(runs) > 1 else {})},
        **kwargs,
    )


def _job_env(address: str | None, bundle: Path) -> dict:
    """The worker's environment on the cluster: no store (outputs go to its working_dir); the
    prepared tasks and demo library here on a local cluster, ATLAS_RAY_CACHE on a remote one."""
    env = {k: v for k, v in worker_env().items()
           if k.startswith(("ATLAS_", "HF_", "TRANSFORMERS_", "OMP_", "RAY_AUTH_MODE", "PYTHONUNBUFFERED"))}
    env.pop("ATLAS_HOME", None)
    if is_local_address(address):
        from core.config import cache_dir, demo_dir

        env.update(ATLAS_CACHE=str(cache_dir()), ATLAS_DEMO=str(demo_dir()))
    elif os.environ.get("ATLAS_RAY_CACHE"):
        env["ATLAS_CACHE"] = os.environ["ATLAS_RAY_CACHE"]  # where the cluster's nodes keep prepared tasks
    else:
        env.pop("ATLAS_CACHE", None)
        env.pop("ATLAS_DEMO", None)
    if (bundle / "tasks").is_dir():
        env["ATLAS_TASKS_DIR"] = "tasks"  # relative to the job's working_dir
    return env


# --------------------------------------------------------------------------- #
# the collector (runs in the dispatcher, one thread per running Ray run)
# --------------------------------------------------------------------------- #
def ingest_lines(store: RunStore, run_id: str, lines: list[str], state: dict) -> None:
    """Collector step: keep this run's JSON event lines with a seq beyond what we have;
    remember a few other lines (Ray's own output, tracebacks) for error messages."""
    batch, final = [], None
    for line in lines:
        ev = _event_of(line, run_id)
        if ev is None:
            if line.strip():
                state["other"] = (state.get("other", []) + [line.strip()])[-LOG_TAIL_LINES:]
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
        _record_job_final(store, run_id, dict(final.get("metrics") or {}))
        store.update_run(run_id, collected_seq=state["seq"])
        state["final"] = True


def _event_of(line: str, run_id: str) -> dict | None:
    """This run's event from a log line, or None (Ray's own output, another run of the pack)."""
    s = line.strip()
    if not s.startswith("{"):
        return None
    try:
        ev = json.loads(s)
    except json.JSONDecodeError:
        return None
    if not isinstance(ev, dict) or ev.get("run_id") != run_id or "seq" not in ev or "kind" not in ev:
        return None
    return ev


def _record_job_final(store: RunStore, run_id: str, m: dict) -> None:
    """The final event: its prompt files (base64) into the library, then the terminal status."""
    files = m.pop("files", None)
    if m.get("status") == "finished" and files:
        dest = run_output_dir(run_id)
        if not dest.exists():
            write_result_files(files, dest)
        m["prompt_path"] = str(dest)
    elif m.get("status") == "finished":
        m["prompt_path"] = None
    record_final(store, run_id, m)


def collect_ray_run(store: RunStore, run_id: str, *, unreachable_fail_s: float = 120.0) -> None:
    """Follow one Ray job's log into the store until it ends (runs in the dispatcher)."""
    run = store.require_run(run_id)
    state = {"seq": run["collected_seq"], "final": False}
    first_fail = None
    while True:
        try:
            status = _follow_job(store, run, state)
            if status in ("PENDING", "RUNNING"):
                time.sleep(0.5)
                continue  # the tail ended early (a dropped connection): follow again
            break
        except Exception as e:  # cluster gone or restarting
            first_fail = first_fail or time.monotonic()
            if time.monotonic() - first_fail > unreachable_fail_s:
                store.set_status(run_id, "failed", only_if=("running",),
                                 error=f"lost the Ray cluster at {run['address']}: {type(e).__name__}: {e}")
                return
            time.sleep(2.0)
    if not state["final"]:
        tail_text = "\n".join(state.get("other", [])[-LOG_TAIL_LINES:])
        if store.require_run(run_id)["cancel_requested"]:
            store.set_status(run_id, "cancelled", only_if=("running",), event={"ray_status": status})
        else:
            store.set_status(run_id, "failed", only_if=("running",),
                             error=f"Ray job ended {status} without a final event; log tail:\n{tail_text}")


def _follow_job(store: RunStore, run: dict, state: dict) -> str:
    """Tail the job's log into the store until the tail ends; returns the job's status. Once
    the job ended, its last lines can arrive after that: the whole log is re-read (10 s at most)."""
    run_id = run["run_id"]
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
        return status
    deadline = time.monotonic() + 10
    while not state["final"]:
        ingest_lines(store, run_id, client.get_job_logs(job).splitlines(), state)
        if state["final"] or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    return status
