"""Worker processes of the demo build: each loads the backbone once, then trains job after job.

    python -m core demo build --workers 4 [--pack 16]

On a GPU a worker takes a pack of ready runs and trains them in one forward per step
(core.training.train_packed); on the CPU one run at a time. Every finished row is written to
results.csv at once (a killed build loses at most the runs in flight).
"""
from __future__ import annotations

import json
import os
import shutil
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

import torch

from core.results import GENERIC
from core.results import write_rows as write_results

_BB = None
_TASKS: dict = {}


def _init_worker(device: str, threads: int) -> None:
    global _BB
    torch.set_num_threads(threads)
    from core.backbone import load_backbone
    # fp32 everywhere: MiniLM is launch-bound on a GPU (bf16 buys nothing there) and
    # fp32 keeps GPU scores reproducible by the CPU re-evaluation test.
    _BB = load_backbone(None, device, dtype=torch.float32)


def demo_task(name: str, generic_tasks: list[str] | None = None, per_task: int = 200):
    """A demo task by name; ``generic`` is the seeded mix of ``generic_tasks`` (all demo tasks)."""
    key = (name, tuple(generic_tasks or ()), per_task)
    if key not in _TASKS:
        from core.tasks import get_task, list_tasks, mixed_task
        if name == GENERIC:
            mix = generic_tasks or [t for t in _demo_tasks() if t in list_tasks()]
            _TASKS[key] = mixed_task(list(mix), per_task=per_task, seed=0, name=GENERIC)
        else:
            _TASKS[key] = get_task(name)
    return _TASKS[key]


def _demo_tasks() -> list[str]:
    from core.tasks import DEMO_TASKS
    return list(DEMO_TASKS)


def _job_row(job: dict, cfg) -> dict:
    row = {k: job.get(k, "") for k in ("run_id", "sweep_id", "method", "source", "target", "seed")}
    row.update(steps=cfg.steps, train_size=cfg.train_size if cfg.train_size else "", status="failed",
               settings=json.dumps(job["settings"], sort_keys=True), device=str(_BB.device))
    return row


def _save_job(job: dict, row: dict, res) -> None:
    out = Path(job["out"])
    if out.exists():
        shutil.rmtree(out)
    from core.training import save_result
    save_result(res, out)
    row.update(val_score=round(res.val_score, 6), test_score=round(res.test_score, 6),
               wall_time_s=round(res.wall_time_s, 2), status="finished", prompt_path=job["rel_out"],
               steps=res.steps)


def _job_task(job: dict):
    return demo_task(job["task"], job.get("generic_tasks"), job.get("generic_per_task", 200))


def _run_job(job: dict) -> dict:
    """Train one run in a worker; returns its results row (or a failed row)."""
    from core.training import TrainConfig, train
    t0 = time.time()
    cfg = TrainConfig(**job["cfg"])
    row = _job_row(job, cfg)
    try:
        _save_job(job, row, train(cfg, backbone=_BB, task=_job_task(job)))
    except Exception as e:  # a failed run is recorded, the build goes on
        row.update(wall_time_s=round(time.time() - t0, 2), settings=json.dumps({**job["settings"], "error": repr(e)}))
    return row


def _run_pack(jobs: list[dict]) -> list[dict]:
    """Train several jobs in a worker as one pack (core.training.train_packed: one forward of the
    backbone per step for all of them); one results row each, a failed run fails alone."""
    from core.training import TrainConfig, train_packed
    t0 = time.time()
    rows, cfgs, tasks, live = [], [], [], []
    for job in jobs:
        cfg = TrainConfig(**job["cfg"])
        row = _job_row(job, cfg)
        rows.append(row)
        try:
            tasks.append(_job_task(job))
            cfgs.append(cfg)
            live.append((job, row))
        except Exception as e:  # noqa: BLE001
            row.update(settings=json.dumps({**job["settings"], "error": repr(e)}))
    outs = train_packed(cfgs, backbone=_BB, tasks=tasks)
    for (job, row), o in zip(live, outs):
        try:
            if o.status != "finished":
                raise RuntimeError(o.error or o.status)
            _save_job(job, row, o.result)
        except Exception as e:  # noqa: BLE001
            row.update(wall_time_s=round(time.time() - t0, 2),
                       settings=json.dumps({**job["settings"], "error": repr(e)[:2000]}))
    return rows


def _execute(jobs: list[dict], results_path: Path, rows: dict[str, dict], workers: int, device: str,
             deadline: float | None, pack: int = 1) -> None:
    """Run jobs (in order, respecting ``deps``) on a pool; each finished row is saved at once.
    ``pack`` > 1: a worker takes up to that many ready jobs of one prompt length and trains
    them in one forward per step (core.training.train_packed)."""
    if not jobs:
        return
    threads = max(1, (os.cpu_count() or 2) // workers) if device == "cpu" else 1
    ctx = torch.multiprocessing.get_context("spawn")
    pending = list(jobs)
    running = {}
    done_ok = {rid for rid, r in rows.items() if r.get("status") == "finished"}
    t0, n_total, n_done = time.time(), len(jobs), 0
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(device, threads)) as pool:
        while pending or running:
            if deadline is None or time.time() < deadline:
                ready = []
                for job in list(pending):
                    if all(d in done_ok for d in job["deps"]):
                        ready.append(job)
                    elif any(rows.get(d, {}).get("status") == "failed" for d in job["deps"]):
                        pending.remove(job)  # its teacher failed: skip, resume retries it
                while ready and len(running) < workers:
                    # spread the ready jobs over the free workers, at most `pack` each
                    L = ready[0]["cfg"]["prompt_length"]
                    n = max(1, min(pack, -(-len(ready) // (workers - len(running)))))
                    group = [j for j in ready if j["cfg"]["prompt_length"] == L][:n]
                    for j in group:
                        ready.remove(j)
                        pending.remove(j)
                    fut = pool.submit(_run_pack, group) if len(group) > 1 else pool.submit(_run_job, group[0])
                    running[fut] = group
            elif not running:
                print(f"deadline reached: {len(pending)} runs left for the next resume", flush=True)
                return
            if not running:
                if pending:
                    print(f"{len(pending)} runs wait on failed dependencies; stopping", flush=True)
                return
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                running.pop(fut)
                got = fut.result()
                for row in (got if isinstance(got, list) else [got]):
                    rows[row["run_id"]] = row
                    if row["status"] == "finished":
                        done_ok.add(row["run_id"])
                    n_done += 1
                    el = time.time() - t0
                    print(f"[{n_done}/{n_total}] {row['run_id']}: {row['status']} test={row.get('test_score', '')} "
                          f"({row.get('wall_time_s')} s) elapsed {el:.0f} s, "
                          f"eta {el / n_done * (n_total - n_done):.0f} s", flush=True)
                write_results(results_path, list(rows.values()))
