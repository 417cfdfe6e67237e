"""The demo build's stages: train (sources, then the grid), manifest, finalize (matrices + maps).

    python -m core demo build [--profile cpu|gpu|tiny]
    python -m core demo finalize
"""
from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from pathlib import Path

import torch

from core.config import REPO_ROOT, cache_dir
from core.demo.plan import grid_jobs, source_jobs
from core.demo.profiles import Profile
from core.results import GENERIC
from core.results import read_rows as read_results
from core.demo.workers import _demo_tasks, _execute
from core.fsutil import atomic_write_json

def _device() -> str:
    return os.environ.get("ATLAS_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")


def estimate_s(prof: Profile, n_tasks: int, steps_per_s: float) -> float:
    n_grid = (n_tasks + 1) * n_tasks * 2 * len(prof.seeds) + n_tasks * len(prof.scratch_seeds)
    steps = (n_tasks + 1) * prof.source_steps + n_grid * prof.steps
    return steps / steps_per_s * 1.4  # evals add ~40%


def build(out: Path, prof: Profile, work: Path | None = None, deadline_s: float | None = None,
          finalize_after: bool = True, tasks: list[str] | None = None) -> int:
    from core.tasks import list_tasks
    device = _device()
    tasks = [t for t in (tasks or _demo_tasks()) if t in list_tasks()]
    out.mkdir(parents=True, exist_ok=True)
    work = work or (cache_dir() / "demo-runs")
    work.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.csv"
    rows = {r["run_id"]: r for r in read_results(results_path)}
    rate = 900.0 if device.startswith("cuda") else 4.0
    est = estimate_s(prof, len(tasks), rate)
    print(f"demo build: profile {prof.name}, device {device}, {prof.workers} workers"
          f"{f' x packs of up to {prof.pack}' if device.startswith('cuda') and prof.pack > 1 else ''}, {len(tasks)} tasks; "
          f"estimated {est / 60:.0f} min for a fresh build ({len(rows)} runs already in {results_path})", flush=True)
    t0 = time.time()
    deadline = t0 + deadline_s if deadline_s else None
    jobs = [j for j in source_jobs(prof, out, tasks) if rows.get(j["run_id"], {}).get("status") != "finished"]
    for j in jobs:
        j.update(generic_tasks=tasks, generic_per_task=prof.generic_per_task)
    from core.runs.capacity import cpu_packing  # CPU: one run at a time unless ATLAS_PACK_CPU=1
    pack = prof.pack if device.startswith("cuda") or cpu_packing() else 1
    _execute(jobs, results_path, rows, min(prof.workers, max(1, len(jobs))), device, deadline, pack)
    done = lambda rid: rows.get(rid, {}).get("status") == "finished"  # noqa: E731
    planned = [j["run_id"] for j in jobs] or [f"source-{t}" for t in tasks + [GENERIC]]
    if all(done(f"source-{t}") for t in tasks + [GENERIC]):
        grid = grid_jobs(prof, out, work, tasks)
        planned = [f"source-{t}" for t in tasks + [GENERIC]] + [j["run_id"] for j in grid]
        _execute([j for j in grid if not done(j["run_id"])], results_path, rows, prof.workers, device, deadline, pack)
    left = [rid for rid in planned if not done(rid)]
    complete = not left and all(done(f"source-{t}") for t in tasks + [GENERIC])
    print(f"train stage done in {(time.time() - t0) / 60:.1f} min (estimated {est / 60:.0f}); "
          f"{len(planned) - len(left)} of {len(planned)} planned runs finished"
          + ("" if complete else " - run the same command again to resume"), flush=True)
    write_manifest(out, prof, time.time() - t0)
    if finalize_after:
        finalize(out)
    return 0 if complete else 1


def write_manifest(out: Path, prof: Profile, train_s: float | None = None) -> None:
    from importlib import metadata
    path = out / "manifest.json"
    old = json.loads(path.read_text()) if path.is_file() else {}
    versions = {}
    for pkg in ("torch", "transformers", "peft", "numpy", "scipy", "scikit-learn", "umap-learn", "pandas"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    wheels = json.loads((REPO_ROOT / "data" / "wheels.json").read_text()) \
        if (REPO_ROOT / "data" / "wheels.json").is_file() else {}
    m = dict(old)
    m.update({
        "label": "MiniLM-L6 (all-MiniLM-L6-v2, 22.7M parameters) on ten small real text tasks; "
                 "prompts of 20 tokens; low-resource targets (128 training examples)",
        "backbone": "sentence-transformers/all-MiniLM-L6-v2",
        "command": "python -m core demo build --profile " + prof.name,
        "profile": dataclasses.asdict(prof),
        "wheels": wheels,
    })
    if train_s is not None:
        m.setdefault("train_runs", []).append({"device": _device(), "python": platform.python_version(),
                                               "versions": versions, "wall_time_s": round(train_s, 1),
                                               "host_gpu": torch.cuda.get_device_name(0)
                                               if torch.cuda.is_available() else None,
                                               "date": time.strftime("%Y-%m-%d %H:%M:%S")})
    m["finalize_versions"] = versions if train_s is None else m.get("finalize_versions")
    atomic_write_json(path, m, indent=2, sort_keys=True)


def finalize(out: Path, metrics: list[str] | None = None) -> None:
    """Metric matrices and projections of the demo prompts (CPU is fine: minutes)."""
    from core.library import index_library
    from core import metrics as M
    lib = index_library(out / "prompts")
    if not lib.prompts:
        print("finalize: no prompts yet")
        return
    (out / "matrices").mkdir(exist_ok=True)
    prompts = list(lib.prompts.values())
    for name in (finalize_metrics() if metrics is None else metrics):
        t0 = time.time()
        try:
            df = M.compute_matrix(name, prompts)
            M.save_precomputed(name, df, prompts, out / "matrices")
        except Exception as e:  # a metric that cannot run here is reported, the rest go on
            print(f"finalize: {name} failed: {e}")
            continue
        print(f"finalize: matrix {name} {df.shape} in {time.time() - t0:.1f} s", flush=True)
    try:
        from core.projection import precompute_projections
        # the maps the Projection page asks for first: the prompts alone (2-D and 3-D) and,
        # its default, the prompts with the transferred ones (2-D)
        groups = {g: lib.group_prompts(g) for g in lib.groups()}
        precompute_projections(groups, out / "projections", overwrite=True)
        if (out / "transfers").is_dir():
            both = index_library([out / "prompts", out / "transfers"])
            precompute_projections({g: both.group_prompts(g) for g in both.groups()}, out / "projections",
                                   dims=(2,), append=True)
        print("finalize: projections written", flush=True)
    except Exception as e:
        print(f"finalize: projections failed: {e}")


def finalize_metrics() -> list[str]:
    return ["e_avg", "e_tok", "e_flat", "euclid", "on", "on_probe", "panda_sim", "zs"]


def annotate(out: Path) -> int:
    """Fill in what each number of the demo's ``results.csv`` is (core.results' descriptive columns):
    the majority-class rate and size of each target's test split and its data hash, computed from the
    pinned tasks (they must be prepared), the score kind and head, and flags "not recorded" (the
    demo's runs kept no events). Idempotent; rewrites the file atomically. Returns the rows updated.

        python -m core demo annotate
    """
    from core.results import FLAGS_NOT_RECORDED, SCORE_KIND, run_head, write_rows
    from core.demo.workers import demo_task
    from core.tasks import task_data_hash
    path = out / "results.csv"
    rows = read_results(path)
    info = {}
    for r in rows:
        t = r["target"]
        if t not in info:
            task = demo_task(t)
            info[t] = {"majority_rate": f"{task.majority_rate('test'):.6f}", "test_n": str(len(task.test)),
                       "data_hash": task_data_hash(task)}
        r.update(info[t])
        r["score_kind"] = r.get("score_kind") or SCORE_KIND
        r["head"] = r.get("head") or run_head(r.get("settings")) or ""
        r["flags"] = r.get("flags") or FLAGS_NOT_RECORDED
    write_rows(path, rows)
    return len(rows)
