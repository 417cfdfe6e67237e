"""The queue: submit, cancel, retry, launch sweeps, and ``pump`` (start what the caps allow).

    python -m core runs pump          # start what the caps allow, once
    python -m core runs dispatch      # the same every second until idle (started for you)

The queue is the store: ``submit`` only inserts a queued run. ``pump`` (called by the Runs
page's fragment, the CLI and the dispatcher; safe from several processes at once because every
claim is one store transaction) does:

1. liveness (core.runs.local.reconcile): a local run whose process died is failed with its log tail;
2. cancel escalation: SIGTERM / SIGKILL for a local run that ignored its cancel flag;
3. dependencies: a queued run whose dependency failed is failed too (resume the sweep to
   relaunch both); one whose dependencies all finished becomes startable;
4. local starts within the per-device caps (core.runs.capacity), packed when they share a process;
5. Ray submissions (core.runs.ray_jobs; Ray does the queueing there).

``launch`` is what the Runs page and ``python -m core run`` call: one run, or the 1x1 sweep a
PANDA run with a PoT teacher becomes (core.runs.sweeps.panda_pot_sweep).

Layer: store <- spec <- sweeps, worker <- capacity <- local, ray_jobs <- queue <- cli.
"""
from __future__ import annotations

import os
import threading
import time

from core.runs import local
from core.runs.capacity import resolve_device_for_queue
from core.runs.ray_jobs import collect_ray_run, ray_client, ray_packs, submit_ray
from core.runs.spec import RunSpec, SpecError, teacher_run_ids, validate_spec
from core.runs.store import ACTIVE, TERMINAL, RunStore, new_run_id
from core.runs.sweeps import (Planned, SweepSpec, panda_pot_sweep, plan, plan_resume, several_teachers,
                              target_checks, validate_planned)


# --------------------------------------------------------------------------- #
# submit / launch / cancel / retry
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
    deps = teacher_run_ids(spec)
    store.add_run(run_id, spec.to_dict(), sweep_id=spec.sweep_id, depends_on=deps)
    pump(store, dispatch=dispatch)
    return run_id


def launch(spec: RunSpec, store: RunStore | None = None, *, dispatch: bool = True) -> tuple[str, str]:
    """One run as asked: ("run", run_id); or, for PANDA with a PoT teacher that does not exist
    yet, the 1x1 sweep that trains that teacher first: ("sweep", sweep_id)."""
    spec = several_teachers(spec)  # panda from K raw sources: K teachers
    sw = panda_pot_sweep(spec)  # panda from K sources with PoT teachers: K PoT runs first
    if sw is not None:
        return "sweep", launch_sweep(sw, store, dispatch=dispatch)
    return "run", submit(spec, store, dispatch=dispatch)


def cancel(run_id: str, store: RunStore | None = None) -> str:
    """Ask a run to stop: a queued one is cancelled at once, a running one stops at its
    next step (local: the flag; Ray: stop_job). Returns the status after the request."""
    store = store or RunStore()
    status = store.request_cancel(run_id)
    run = store.require_run(run_id)
    if status != "running" or run["backend"] != "ray":
        return status
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
    spec = validate_spec(RunSpec.from_dict(old["spec"]), pending_runs=set(old["depends_on"]))
    new_id = new_run_id()
    store.add_run(new_id, spec.to_dict(), sweep_id=old["sweep_id"], sweep_key=old["sweep_key"],
                  depends_on=old["depends_on"], retry_of=run_id)
    pump(store, dispatch=dispatch)
    return new_id


# --------------------------------------------------------------------------- #
# sweeps: what core.runs.sweeps planned, queued in one transaction
# --------------------------------------------------------------------------- #
def launch_sweep(sw: SweepSpec, store: RunStore | None = None, *, dispatch: bool = True) -> str:
    """Validate every run of the grid, then queue them all in one transaction and pump."""
    store = store or RunStore()
    if sw.backend == "ray":
        ray_client(sw.address)
    refused, _ = target_checks(list(sw.targets))  # a one-class validation split measures nothing
    if refused:
        raise SpecError({"targets": "; ".join(refused)})
    sweep_id = new_run_id("s")
    planned = plan(sw)
    ids = {p.key: f"{sweep_id}-{i:03d}" for i, p in enumerate(planned)}
    specs = validate_planned(planned, ids, sweep_id, set(ids))
    store.add_runs(_rows(planned, specs, ids, sweep_id),
                   sweep=dict(sweep_id=sweep_id, spec=sw.to_dict(), name=sw.name, backend=sw.backend))
    pump(store, dispatch=dispatch)
    return sweep_id


def resume_sweep(sweep_id: str, store: RunStore | None = None, *, dispatch: bool = True) -> tuple[str, list[str]]:
    """Relaunch what did not finish; returns (sweep_id, new run ids)."""
    store = store or RunStore()
    row = store.get_sweep(sweep_id)
    if row is None:
        raise SpecError({"sweep": f"no sweep {sweep_id!r} in {store.path}"})
    local.reconcile(store)  # runs whose process died count as failed now
    planned = plan(SweepSpec.from_dict(row["spec"]))
    runs = store.list_runs(sweep_id=sweep_id)
    r = plan_resume(sweep_id, planned, runs)
    for rid in r.replaced:  # queued, waiting on a dependency that is redone
        store.set_status(rid, "cancelled", only_if=("queued",), event={"reason": "replaced on resume"})
    if r.todo:
        specs = validate_planned(planned, r.ids, sweep_id, r.todo)
        latest = store.latest_sweep_runs(sweep_id)
        store.add_runs(_rows(planned, specs, r.ids, sweep_id, retry_of={k: v["run_id"] for k, v in latest.items()}))
    pump(store, dispatch=dispatch)
    return sweep_id, [r.ids[k] for k in r.ids if k in r.todo]


def _rows(planned: list[Planned], specs: dict[str, RunSpec], ids: dict[str, str], sweep_id: str,
          retry_of: dict[str, str] | None = None) -> list[dict]:
    """add_run's arguments for the planned cells that were validated (``specs``), in plan order."""
    rows = []
    for p in planned:
        if p.key not in specs:
            continue
        spec = specs[p.key]
        if spec.backend == "local":
            spec.device = resolve_device_for_queue(spec.device)
        rows.append(dict(run_id=ids[p.key], spec=spec.to_dict(), sweep_id=sweep_id, sweep_key=p.key,
                         depends_on=[ids[d] for d in p.deps], retry_of=(retry_of or {}).get(p.key)))
    return rows


# --------------------------------------------------------------------------- #
# the queue
# --------------------------------------------------------------------------- #
def fail_orphans(store: RunStore) -> list[str]:
    """Queued runs whose dependency ended without a result fail too (resume relaunches)."""
    failed = []
    for run in store.list_runs(status=["queued"]):
        for dep in run["depends_on"]:
            d = store.get_run(dep)
            if d is None or d["status"] in ("failed", "cancelled"):
                why = "was deleted" if d is None else d["status"]
                if store.set_status(run["run_id"], "failed", only_if=("queued",), error=f"dependency {dep} {why}"):
                    failed.append(run["run_id"])
                break
    return failed


def pump(store: RunStore | None = None, *, dispatch: bool = True) -> dict:
    """One pass of the queue (see the module docstring). Returns what it did."""
    store = store or RunStore()
    local.reap()
    out = local.reconcile(store)
    local.escalate_cancels(store)
    out["orphaned"] = fail_orphans(store)
    started = local.claim_local(store)
    for s in started:
        local.start_local(store, s["run_ids"], s["device"], s["pack_id"])
    out["started"] = [rid for s in started for rid in s["run_ids"]]
    out["submitted"] = []
    for pack in ray_packs(store):
        try:
            if submit_ray(store, pack):
                out["submitted"].extend(r["run_id"] for r in pack)
        except Exception as e:  # one bad submission must not block the queue
            for run in pack:
                store.set_status(run["run_id"], "failed", only_if=("queued",),
                                 error=f"Ray submission failed: {type(e).__name__}: {e}")
    if dispatch and (store.list_runs(status=["queued"], limit=1) or store.list_runs(status=["running"], limit=1)):
        local.ensure_dispatcher(store)
    return out


def dispatch_forever(store: RunStore, *, idle_exit_s: float = 10.0, poll_s: float = 1.0) -> int:
    """The dispatcher's loop: pump, and follow every running Ray run's log, until idle."""
    if not local.claim_dispatcher(store):
        print("another dispatcher serves this store", flush=True)
        return 0
    print(f"dispatcher {os.getpid()} serving {store.path}", flush=True)
    collectors: dict[str, threading.Thread] = {}
    idle_since = None
    try:
        while True:
            pump(store, dispatch=False)
            for run in store.list_runs(status=["running"]):
                t = collectors.get(run["run_id"])
                if run["backend"] == "ray" and (t is None or not t.is_alive()):
                    t = threading.Thread(target=collect_ray_run, args=(store, run["run_id"]), daemon=True)
                    collectors[run["run_id"]] = t
                    t.start()
            busy = store.list_runs(status=list(ACTIVE), limit=1) or any(t.is_alive() for t in collectors.values())
            idle_since = None if busy else (idle_since or time.monotonic())
            if idle_since is not None and time.monotonic() - idle_since > idle_exit_s:
                return 0
            time.sleep(poll_s)
    finally:
        local.release_dispatcher(store)


# --------------------------------------------------------------------------- #
# watching (the CLI's --wait, and a ranked sweep's)
# --------------------------------------------------------------------------- #
def fmt_run(r: dict) -> str:
    """One line per run: id, status, method, target, source, seed, step, backend:device, test score."""
    total = r.get("total_steps") or "?"
    score = "" if r.get("test_score") is None else f"test={r['test_score']:.3f}"
    return (f"{r['run_id']:<24} {r['status']:<9} {r['method']:<7} {r['target']:<16} "
            f"{(r['source'] or '-')[:28]:<28} seed={r['seed']} step={r['step']}/{total} "
            f"{r['backend']}:{r['device'] or '?'} {score}")


def wait(store: RunStore, run_ids: list[str], poll_s: float = 1.0, quiet: bool = False) -> int:
    """Print each run's line when it changes, until all ended; 0 when all finished. The store's dispatcher
    moves the queue; the waiter pumps it only while no dispatcher is alive (it pumped every second on top
    of the dispatcher: about a third of a core while waiting on 136 runs), and reads all its runs in one
    query per poll."""
    seen: dict[str, str] = {}
    while True:
        if not local.dispatcher_pid(store):
            pump(store, dispatch=False)
        else:
            local.reap()   # workers this waiter started before a dispatcher came up: no zombies
        runs = store.require_runs(list(run_ids))
        for r in runs:
            if not quiet and seen.get(r["run_id"]) != f"{r['status']}{r['step']}":
                seen[r["run_id"]] = f"{r['status']}{r['step']}"
                print(fmt_run(r), flush=True)
        if all(r["status"] in TERMINAL for r in runs):
            return 0 if all(r["status"] == "finished" for r in runs) else 1
        time.sleep(poll_s)
