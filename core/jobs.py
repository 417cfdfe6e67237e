"""Compute jobs: one ledger of every computation on this server, a global cap, background jobs.

    python -m core jobs list [--all]     # queued and running computations (--all: finished ones too)
    python -m core jobs cancel JOB_ID    # stop one (a queued job at once, a running one before its next unit)
    python -m core jobs work JOB_ID      # execute one stored job (started for you, detached)

``ATLAS_JOB_PAUSE_S`` (tests, demos) makes a worker sleep that long after each unit, so a job can be
watched, killed midway and resumed.

The ledger lives in the run store (ATLAS_HOME/runs.db, tables ``jobs`` and ``pairs``): it already
is the one SQLite file that the server, the CLI and detached workers share (WAL, one short
``BEGIN IMMEDIATE`` per write), it owns every SQL statement (tests/test_architecture.py), and its
claims are the model for ours. One row per computation:

* an **inline** computation (a click under the per-click ceiling: an activation metric, a t-SNE,
  a ranking, a figure export) holds a row while it runs (:func:`slot`);
* a **background job** (``zs``, and in full mode anything above the ceiling) is a detached worker
  process (``python -m core jobs work ID``, as core.runs' workers) that waits for a slot, saves
  each (prompt, task) value in ``pairs`` as it goes, and writes the matrix cache at the end.

The global cap (core.budget ``ATLAS_MAX_COMPUTE``) is one count over the ledger's running rows,
taken in the same transaction that claims a slot, so it holds across sessions and processes. A row
whose process is gone is marked failed when the next claim looks (its slot is freed).

Sharing: a background job's key is its matrix key (metric, backbone, every prompt's content
hash); asking for an active key joins that job. Resuming: a job that was cancelled, killed or
interrupted left its pairs; asking again starts a job that computes only the missing ones, and a
different prompt set reuses every (prompt, task) value already saved.

Viewer jobs: a page that shows a job heartbeats it (every rerun of its progress fragment); a job
started by a viewer stops when no session asked for it for ``ATLAS_JOB_IDLE_S`` seconds (Streamlit
has no session-end hook). A full-mode job runs until done or cancelled.
"""
from __future__ import annotations

import json
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from core.budget import BACKBONE_METRICS, PROMPT_METRICS, Budget, Cost, cost
from core.config import atlas_home
from core.runs.store import RunStore, hostname, new_run_id

POLL_S = 1.0


class Busy(RuntimeError):
    """Every compute slot of this server is taken."""


class JobStopped(RuntimeError):
    """A job's cancel flag was set, or no session asked for its result for too long."""


def ledger(store: RunStore | None = None) -> RunStore:
    return store if store is not None else RunStore()


def finished_rows(store: RunStore) -> list[dict]:
    """The recent finished computations the cost rates are measured on (newest first)."""
    return store.list_jobs(status=("finished",), limit=200)


# --------------------------------------------------------------------------- liveness
NO_PID_GRACE_S = 60.0   # a background job whose worker never recorded its pid by then never started


def _gone(job: dict) -> str | None:
    """Why a running/queued row's process is gone (None: alive, or on another host)."""
    from core.runs.local import pid_alive

    if job.get("host") not in (None, hostname()):
        return None
    if not job.get("pid"):
        if job.get("background") and time.time() - (job.get("created") or 0) > NO_PID_GRACE_S:
            return f"its worker did not start within {NO_PID_GRACE_S:g} s (see ATLAS_HOME/jobs/{job['job_id']}.log)"
        return None
    if pid_alive(job["pid"], job.get("pid_start")):
        return None
    return f"process {job['pid']} ended without finishing the job (killed or crashed); ask again to resume"


def reconcile(store: RunStore) -> int:
    """Mark active rows whose process is gone as failed; -> how many."""
    n = 0
    for j in store.list_jobs(status=("queued", "running")):
        why = _gone(j)
        if why and store.finish_job(j["job_id"], "failed", error=why):
            if j.get("background") and (j.get("spec") or {}).get("prompts_file"):
                Path(j["spec"]["prompts_file"]).unlink(missing_ok=True)
            n += 1
    return n


def _me() -> dict:
    from core.runs.local import proc_start_time
    return {"pid": os.getpid(), "pid_start": proc_start_time(os.getpid()), "host": hostname()}


def running(store: RunStore) -> list[dict]:
    return store.list_jobs(status=("running",))


def max_overlap(jobs: list[dict]) -> int:
    """The most ledger rows that ran at the same moment ([started, finished) intervals; an unfinished
    running row counts to now). What the load test checks against the cap."""
    now = time.time()
    edges = []
    for j in jobs:
        if j.get("started") is None:
            continue
        end = j.get("finished") if j.get("finished") is not None else now
        edges += [(j["started"], 1), (end, -1)]
    peak = cur = 0
    for _t, d in sorted(edges, key=lambda e: (e[0], e[1])):  # an end before a start at the same instant
        cur += d
        peak = max(peak, cur)
    return peak


# --------------------------------------------------------------------------- inline computations
@contextmanager
def slot(kind: str, units: int, *, owner: str = "full", title: str = "", store: RunStore | None = None,
         budget: Budget | None = None):
    """Hold one compute slot for an inline computation; Busy when all ``max_compute`` are taken.

        with jobs.slot("tsne", points, owner="viewer") as rec:
            ...compute...            # rec["units"] = what was really computed, when less than asked
    The row records the units and the wall time when it ends (the next estimate's rate)."""
    store = ledger(store)
    budget = budget or Budget.from_env()
    job_id = new_run_id("c")
    store.submit_job(job_id, f"inline:{job_id}", kind, {}, title=title or kind, owner=owner, background=False,
                     total=units)
    if not store.claim_compute_slot(job_id, budget.max_compute, _gone, **_me()):
        store.finish_job(job_id, "cancelled", error="not started: every compute slot was taken")
        raise Busy(busy_message(store, budget))
    rec = {"job_id": job_id, "units": int(units)}
    try:
        yield rec          # the caller may set rec["units"] to the units it really did (a cache hit did none)
    except BaseException as e:
        store.finish_job(job_id, "failed", error=f"{type(e).__name__}: {str(e)[:300]}")
        raise
    store.finish_job(job_id, "finished", units=int(rec["units"]), done=int(rec["units"]))


def busy_message(store: RunStore, budget: Budget) -> str:
    rows = running(store)
    what = ", ".join(f"{j['title'] or j['kind']}" for j in rows[:3]) or "—"
    return (f"Not started: all {budget.max_compute} compute slot(s) of this server are in use ({what}; "
            "ATLAS_MAX_COMPUTE). Try again when one ends.")


# --------------------------------------------------------------------------- per-(prompt, task) values
class PairStore:
    """zs's evaluations as a mapping ``key -> value`` (core.metrics.activations._zs_key) over the ledger's
    ``pairs`` table: each value set is saved at once, so an interrupted job keeps what it did."""

    def __init__(self, store: RunStore, metric: str = "zs"):
        self.store, self.metric = store, metric
        self._seen: dict[str, float] = {}

    @staticmethod
    def split(key: str) -> tuple[str, str, str, str]:
        """backbone | head | hash | task | data -> (backbone, hash, task, variant = head|data)."""
        backbone, head, h, rest = key.split("|", 3)
        task, data = rest.rsplit("|", 1)
        return backbone, h, task, f"{head}|{data}"

    def _get(self, key: str) -> float | None:
        if key in self._seen:
            return self._seen[key]
        backbone, h, task, variant = self.split(key)
        got = self.store.get_pairs(self.metric, backbone, [(h, task, variant)])
        if got:
            self._seen[key] = next(iter(got.values()))
            return self._seen[key]
        return None

    def prefetch(self, keys: list[str]) -> int:
        """Read many keys in a few queries; -> how many are saved."""
        by_bb: dict[str, list[tuple]] = {}
        for k in keys:
            backbone, h, task, variant = self.split(k)
            by_bb.setdefault(backbone, []).append((h, task, variant))
        n = 0
        for backbone, ks in by_bb.items():
            for (h, task, variant), v in self.store.get_pairs(self.metric, backbone, ks).items():
                head, data = variant.split("|", 1)
                self._seen[f"{backbone}|{head}|{h}|{task}|{data}"] = v
                n += 1
        return n

    def __contains__(self, key: str) -> bool:
        return self._get(key) is not None

    def __getitem__(self, key: str) -> float:
        v = self._get(key)
        if v is None:
            raise KeyError(key)
        return v

    def __setitem__(self, key: str, value: float) -> None:
        backbone, h, task, variant = self.split(key)
        self.store.put_pair(self.metric, backbone, h, task, variant, float(value))
        self._seen[key] = float(value)

    def __len__(self) -> int:
        return len(self._seen)


# --------------------------------------------------------------------------- estimates
def _backbone_name(prompts) -> str | None:
    names = {getattr(p, "backbone", None) for p in prompts}
    return next(iter(names)) if len(names) == 1 else None


def zs_missing(prompts, store: RunStore, backbone: str | None = None, head: str | None = None) -> tuple[int, int]:
    """(evaluations still to do, evaluations in all) for zs of these prompts through ``head`` (None: cosine)."""
    from core.metrics.activations import zs_pair_keys

    bb = backbone or _backbone_name(prompts)
    if bb is None:
        return 0, 0
    keys = sorted(set(zs_pair_keys(prompts, bb, head=head)))
    have = PairStore(store).prefetch(keys)
    return len(keys) - have, len(keys)


def estimate_metric(metric: str, prompts, store: RunStore | None = None, params: dict | None = None) -> Cost:
    """The cost of computing a metric's matrix for ``prompts`` (core.budget units): prompts for a backbone
    metric, the missing (prompt, task) evaluations for zs (``params``: core.metrics.zs_params, its head),
    N × N prompt pairs for a prompt-space metric."""
    store = ledger(store)
    if metric == "zs":
        units = zs_missing(prompts, store, head=(params or {}).get("head"))[0]
    elif metric in BACKBONE_METRICS:
        units = len(list(prompts))
    elif metric in PROMPT_METRICS:
        units = len(list(prompts)) ** 2   # every (source, target) pair, the diagonal included
    else:
        raise ValueError(f"{metric}: only the backbone metrics ({', '.join(BACKBONE_METRICS)}) and the prompt-space "
                         f"metrics ({', '.join(PROMPT_METRICS)}) are priced")
    return cost(metric, units, finished_rows(store))


def estimate(kind: str, units: int, store: RunStore | None = None) -> Cost:
    return cost(kind, units, finished_rows(ledger(store)))


# --------------------------------------------------------------------------- background jobs
def jobs_dir() -> Path:
    return atlas_home() / "jobs"


def _save_prompts(prompts, path: Path) -> Path:
    """The prompts a worker needs (tensors + metadata) as one .npz, no pickles; atomic."""
    import numpy as np
    from core.metrics.items import _items

    items = _items(prompts)
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    meta = [{"name": it.name, "task": it.task, "family": it.family, "backbone": it.backbone, "method": it.method}
            for it in items]
    arrays = {f"p{i}": it.tensor.numpy() for i, it in enumerate(items)}
    tmp = folder / f".prompts.{os.getpid()}.tmp.npz"
    np.savez(tmp, meta=np.array(json.dumps(meta)), **arrays)
    os.replace(tmp, path)
    return path


def _load_prompts(path: Path) -> list:
    import numpy as np
    from core.prompts.types import SoftPrompt

    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        return [SoftPrompt(tensor=z[f"p{i}"].copy(), name=m["name"], task=m.get("task"), family=m.get("family"),
                           backbone=m.get("backbone"), method=m.get("method")) for i, m in enumerate(meta)]


def job_key(metric: str, prompts, params: dict | None = None) -> str:
    """The ledger key of a matrix job: the matrix's own key (``params``: what compute_matrix is given)."""
    from core.metrics import matrix_key
    return f"matrix:{metric}:{matrix_key(metric, prompts, _backbone_name(prompts), **(params or {}))}"


def active_job(key: str, store: RunStore | None = None) -> dict | None:
    rows = [j for j in ledger(store).list_jobs(status=("queued", "running")) if j["key"] == key]
    return rows[-1] if rows else None


def latest_job(key: str, store: RunStore | None = None) -> dict | None:
    for j in ledger(store).list_jobs(limit=500):
        if j["key"] == key:
            return j
    return None


def _submit(key: str, kind: str, spec: dict, prompts, *, title: str, owner: str, est: Cost | None,
            store: RunStore | None, spawn: bool) -> tuple[dict, bool]:
    store = ledger(store)
    job_id = new_run_id("j")
    path = jobs_dir() / f"{job_id}.npz"
    if prompts is not None:
        _save_prompts(prompts, path)  # the worker removes it when it ends
        spec = {**spec, "prompts_file": str(path)}
    try:
        job, created = store.submit_job(job_id, key, kind, spec, title=title, owner=owner, background=True,
                                        total=est.units if est else None, est_s=est.seconds if est else None)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    if not created:
        path.unlink(missing_ok=True)  # joined the active job of this key: it has its own copy
    elif spawn:
        spawn_worker(job["job_id"])
    return job, created


def submit_matrix_job(metric: str, prompts, *, owner: str = "full", est: Cost | None = None,
                      store: RunStore | None = None, spawn: bool = True,
                      params: dict | None = None) -> tuple[dict, bool]:
    """Start (or join) the background job computing ``metric``'s matrix for ``prompts`` (``params``:
    compute_matrix's keyword arguments, e.g. core.metrics.zs_params(head)).
    -> (job row, whether this call created it). The worker is spawned detached only when created."""
    n = len(list(prompts))
    params = dict(params or {})
    head = f" through {params['head']}" if params.get("head") else ""
    return _submit(job_key(metric, prompts, params), metric,
                   {"job": "matrix", "metric": metric, "n_prompts": n, "params": params}, prompts,
                   title=f"{metric}{head} of {n} prompts", owner=owner, est=est, store=store, spawn=spawn)


def map_key(prompts, cfg: dict) -> str:
    from core.fsutil import json_hash
    from core.metrics.items import _items
    return "map:" + json_hash({"cfg": cfg, "prompts": [(it.name, it.hash) for it in _items(prompts)]}, 20)


def submit_map_job(prompts, cfg: dict, *, owner: str = "full", est: Cost | None = None,
                   store: RunStore | None = None, spawn: bool = True) -> tuple[dict, bool]:
    """Start (or join) the background job computing a t-SNE/UMAP map (``cfg``: ProjectionConfig fields);
    the worker writes the projection cache, where the page's lookup finds it."""
    kind = cfg["method"]
    units = est.units if est else 0
    return _submit(map_key(prompts, cfg), kind, {"job": "map", "cfg": cfg}, prompts,
                   title=f"{kind} map of {units:,} points", owner=owner, est=est, store=store, spawn=spawn)


def rank_key(target: str, roots: list[str], group: str, prompts, lm_head: str | None = None) -> str:
    """The ledger key of a ranking job; ``lm_head`` (core.ranking.RankSettings.lm_head) is another job."""
    from core.fsutil import json_hash
    key = {"target": target, "roots": sorted(map(str, roots)), "group": group,
           "prompts": sorted(p.content_hash() for p in prompts)}
    if lm_head:   # the cosine head's key is unchanged
        key["lm_head"] = lm_head
    return "rank:" + json_hash(key, 20)


def submit_rank_job(target: str, roots: list[str], group: str, prompts, *, owner: str = "full",
                    est: Cost | None = None, store: RunStore | None = None, spawn: bool = True,
                    lm_head: str | None = None) -> tuple[dict, bool]:
    """Start (or join) the background job ranking the sources of ``group`` in the folders ``roots`` for the task
    ``target`` (zs read through the label-word preset ``lm_head``; None: the cosine head); the worker fills the
    ranking cache (core.ranking), so the page's next ranking is instant."""
    return _submit(rank_key(target, roots, group, prompts, lm_head), "rank",
                   {"job": "rank", "target": target, "roots": [str(r) for r in roots], "group": group,
                    "lm_head": lm_head}, None,
                   title=f"ranking sources for {target}" + (f" through {lm_head}" if lm_head else ""),
                   owner=owner, est=est, store=store, spawn=spawn)


def calibration_key(backbone: str | None, device: str, max_length: int) -> str:
    from core.estimate import calibration_path
    return "calibrate:" + calibration_path(backbone, device, max_length).stem


def submit_calibration_job(backbone: str | None, device: str, max_length: int, *, owner: str = "full",
                           est: Cost | None = None, store: RunStore | None = None,
                           spawn: bool = True) -> tuple[dict, bool]:
    """Start (or join) the background job timing a few prompt-tuning steps of ``backbone`` on ``device``
    (core.estimate.run_calibration); the worker caches the record, where the pages' estimate finds it."""
    from core.estimate import DEFAULT_BACKBONE
    bb = backbone or DEFAULT_BACKBONE
    return _submit(calibration_key(bb, device, max_length), "calibrate",
                   {"job": "calibrate", "backbone": bb, "device": device, "max_length": int(max_length)}, None,
                   title=f"timing {bb.split('/')[-1]} on {device}", owner=owner, est=est, store=store, spawn=spawn)


def cancel(job_id: str, store: RunStore | None = None) -> str:
    """Cancel a job: a queued one at once; a running background job is also sent SIGTERM (its worker turns
    it into a clean stop: what a zs job saved is kept). -> the status it had or has now."""
    import signal

    store = ledger(store)
    status = store.request_job_cancel(job_id)
    j = store.get_job(job_id)
    if status == "running" and j and j.get("background") and j.get("pid") and j.get("host") == hostname() \
            and j["pid"] != os.getpid():
        try:
            os.kill(j["pid"], signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    return status


def spawn_worker(job_id: str) -> int:
    """``python -m core jobs work JOB_ID``, detached (own session), output to ATLAS_HOME/jobs/<id>.log."""
    from core.runs.local import _spawn, worker_env

    jobs_dir().mkdir(parents=True, exist_ok=True)
    p = _spawn(["jobs", "work", job_id], jobs_dir() / f"{job_id}.log", worker_env())
    return p.pid


def heartbeat(job_id: str, store: RunStore | None = None) -> None:
    ledger(store).job_heartbeat(job_id)


def _check_stop(store: RunStore, job_id: str, idle_s: float) -> None:
    j = store.get_job(job_id)
    if j is None or j.get("cancel_requested"):
        raise JobStopped("cancelled")
    if j["owner"] == "viewer" and time.time() - (j.get("heartbeat") or 0) > idle_s:
        raise JobStopped(f"no session asked for it for {idle_s:g} s (ATLAS_JOB_IDLE_S)")


def work(job_id: str, *, store: RunStore | None = None, budget: Budget | None = None) -> str:
    """Execute one background job in this process: wait for a slot, compute, record. -> final status."""
    from core import metrics as M

    store = ledger(store)
    budget = budget or Budget.from_env()
    job = store.get_job(job_id)
    if job is None:
        raise SystemExit(f"no job {job_id!r} in {store.path}")
    store.update_job(job_id, **_me())

    def on_term(_sig, _frame):  # `jobs cancel` / the page's Cancel: stop now, even inside a long t-SNE
        raise JobStopped("cancelled")

    import signal
    signal.signal(signal.SIGTERM, on_term)
    try:
        while not store.claim_compute_slot(job_id, budget.max_compute, _gone, **_me()):
            _check_stop(store, job_id, budget.idle_s)
            if store.get_job(job_id)["status"] != "queued":
                return store.get_job(job_id)["status"]
            time.sleep(POLL_S)
        spec = job["spec"]
        prompts = _load_prompts(Path(spec["prompts_file"])) if spec.get("prompts_file") else []
        metric = spec.get("metric")
        state = {"done": 0, "last": 0.0}
        pause = float(os.environ.get("ATLAS_JOB_PAUSE_S") or 0)  # tests and demos: slow a job down to watch it

        def progress(done: int, todo: int) -> None:
            state["done"] = done
            if pause > 0:
                time.sleep(pause)
            now = time.time()
            if now - state["last"] > 0.5 or done == todo:
                state["last"] = now
                store.update_job(job_id, done=done, total=todo, units=done)
                _check_stop(store, job_id, budget.idle_s)

        _check_stop(store, job_id, budget.idle_s)
        if spec.get("job") == "rank":
            from core import ranking as R
            rk = R.rank_sources(spec["target"], libraries=spec["roots"], group=spec["group"],
                                settings=R.RankSettings(lm_head=spec.get("lm_head")),
                                progress=lambda done, total, _name: progress(done, total))
            state["done"] = rk.computed * rk.n_examples   # the units rankings are priced in
        elif spec.get("job") == "calibrate":
            from core.estimate import run_calibration
            run_calibration(spec["backbone"], spec["device"], spec["max_length"])
            state["done"] = 1
        elif spec.get("job") == "map":
            from core import projection as proj
            res = proj.project(prompts, proj.ProjectionConfig(**spec["cfg"]))
            state["done"] = len(res.coords) if res.source == "computed" else 0
        elif metric == "zs":
            M.compute_matrix(metric, prompts, pairs=PairStore(store), progress=progress, **spec.get("params", {}))
        else:
            M.compute_matrix(metric, prompts, **spec.get("params", {}))
            state["done"] = len(prompts)
        store.finish_job(job_id, "finished", units=state["done"], done=state["done"])
        return "finished"
    except JobStopped as e:
        store.finish_job(job_id, "cancelled", error=str(e))
        return "cancelled"
    except Exception as e:  # noqa: BLE001 -- recorded in the ledger, the worker exits non-zero
        store.finish_job(job_id, "failed", error=f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}")
        raise
    finally:
        if job["spec"].get("prompts_file"):
            Path(job["spec"]["prompts_file"]).unlink(missing_ok=True)  # a new request saves the prompts again


def describe(j: dict) -> str:
    total = j.get("total")
    prog = f"{j.get('done') or 0}/{total}" if total else "-"
    return f"{j['job_id']}  {j['status']:<9} {j['owner']:<6} {prog:>11}  {j['title'] or j['kind']}" + (
        f"  ({j['error']})" if j.get("error") else "")


# --------------------------------------------------------------------------- CLI
@contextmanager
def cli_zs(prompts, *, use_saved: bool = True, store: RunStore | None = None, budget: Budget | None = None,
           wait_note=None, head: str | None = None):
    """What ``python -m core matrix --metric zs`` computes under: one ledger row (kind ``zs``, owner
    ``cli``) holding a slot of the global cap -- waiting for one while all are taken -- and the ledger's
    per-(prompt, task) pairs, so a CLI run and a page's job reuse each other's evaluations and an
    interrupted CLI run keeps what it did. ``use_saved=False`` (``--no-cache``): recompute, save nothing.
    Yields the keyword arguments for core.metrics.compute_matrix (``pairs``, ``progress``)."""
    from contextlib import ExitStack

    store = ledger(store)
    budget = budget or Budget.from_env()
    missing, total = zs_missing(prompts, store, head=head)
    todo = missing if use_saved else total
    note = wait_note or (lambda msg: print(msg, file=sys.stderr))
    with ExitStack() as stack:
        waited = False
        while True:
            try:
                rec = stack.enter_context(slot("zs", todo, owner="cli", title=f"zs, {len(prompts)} prompts (CLI)",
                                               store=store, budget=budget))
                break
            except Busy as e:
                if not waited:
                    note(f"{e} Waiting for a slot...")
                    waited = True
                time.sleep(POLL_S)
        rec["units"] = 0
        last = [0.0]

        def progress(done: int, n: int) -> None:
            rec["units"] = done
            now = time.time()
            if now - last[0] > 0.5 or done == n:
                last[0] = now
                store.update_job(rec["job_id"], done=done, total=n, units=done)
                _check_stop(store, rec["job_id"], budget.idle_s)  # `jobs cancel`: stop, the saved pairs stay

        yield {"pairs": PairStore(store) if use_saved else {}, "progress": progress}


def cli(command: str, argv: list[str]) -> int:
    import argparse

    if command == "matrix":  # core.metrics' CLI, its zs under the ledger (core.metrics cannot import this module)
        from core.metrics.cli import cli as matrix_cli
        try:
            return matrix_cli(command, argv, zs_context=cli_zs)
        except JobStopped as e:
            print(f"error: the zs matrix was {e} (python -m core jobs cancel); its saved pairs are kept, "
                  "run it again to resume", file=sys.stderr)
            return 1

    parser = argparse.ArgumentParser(prog=f"python -m core {command}",
                                     description="The compute ledger (ATLAS_HOME/runs.db): list | cancel JOB_ID | work JOB_ID")
    sub = parser.add_subparsers(dest="action", required=True)
    p_list = sub.add_parser("list", help="queued and running computations")
    p_list.add_argument("--all", action="store_true", help="finished, failed and cancelled ones too (last 50)")
    p_cancel = sub.add_parser("cancel", help="stop a job")
    p_cancel.add_argument("job_id")
    p_work = sub.add_parser("work", help="execute one stored job (the page starts this for you)")
    p_work.add_argument("job_id")
    args = parser.parse_args(argv)
    store = RunStore()
    if args.action == "list":
        reconcile(store)
        rows = store.list_jobs(limit=50) if args.all else store.list_jobs(status=("queued", "running"))
        b = Budget.from_env()
        print(f"{len(running(store))} of {b.max_compute} compute slot(s) in use (ATLAS_MAX_COMPUTE)")
        for j in rows:
            print(describe(j))
        return 0
    if args.action == "cancel":
        try:
            print(f"{args.job_id}: {cancel(args.job_id, store)}"
                  + (" (stops before its next unit)" if store.get_job(args.job_id)["status"] == "running" else ""))
        except Exception as e:  # noqa: BLE001 -- StoreError: no such job
            print(f"error: {e}", file=sys.stderr)
            return 2
        return 0
    status = work(args.job_id, store=store)
    print(f"{args.job_id}: {status}")
    return 0 if status in ("finished", "cancelled") else 1
