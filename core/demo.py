"""Build the demo library: real prompts and a real measured transfer matrix.

    python -m core demo build                      # train stage (GPU profile on CUDA, CPU profile otherwise) + finalize
    python -m core demo build --profile cpu        # force the CPU budget (about two hours on 2 cores)
    python -m core demo finalize                   # metric matrices, projections, manifest (CPU, minutes)
    python -m core demo report                     # what the demo shows, as text (the issue note's numbers)
    python -m core demo verify --write             # re-evaluate every committed prompt on its full test split
                                                   # (CPU), record its per-example predictions
    python -m core demo verify --sample 24         # re-check every prompt live on 24 examples against them

Stages (each resumes where it stopped: a finished run is a row of
``results.csv`` plus its prompt folder, written atomically; a killed build loses
at most the runs in flight):

1. sources -- one prompt per demo task on its full training split (``scratch``),
   plus ``generic``: one prompt on a mix of all ten tasks, the control source
   (a trained prompt that knows nothing task-specific in particular).
2. grid -- the transfer sweep in the low-resource target regime: every
   (source, target) pair with ``pot`` and ``panda`` and the ``scratch``
   baselines per target, over the profile's seeds. The grid is planned by
   :func:`core.sweeps.plan` (scratch first, PANDA's PoT teachers before their
   students) and executed here by a pool of persistent worker processes: each
   loads the backbone once, which on a GPU is the difference between minutes
   and an hour of process start-ups. On a GPU each worker takes a pack of
   ready runs and trains them in one forward per step (``--pack``, packed
   training: core.train.train_packed); on the CPU one run at a time.
3. verify -- every committed prompt re-evaluated on its task's full test split
   on the CPU: its recorded (GPU) score must come back within one point, and its
   per-example predictions are stored (``test_predictions.npz``, keyed to a hash
   of the test split's text) so a quick live check of any slice is exact.
4. finalize -- metric matrices (:mod:`core.metrics`), projections
   (:mod:`core.projection`) and ``manifest.json`` (package versions, wheel
   hashes, the command and budget).

Why the regime (DESIGN.md §4): with full target data every source beats
scratch by about the same amount (PoT then measures "a trained prompt beats a
bad start"); with ``train_size=128`` target examples and a short budget the
start matters, so relatedness can show. Scratch starts from a task-neutral text
(never worse than no prompt), and ``generic`` is the control that any "related
source helps" claim has to beat.

PANDA here (our reading of the paper): teacher = the PoT prompt of the same
(source, target, seed) (as PANDA's code), student from the scratch init (as
PANDA's code), lambda = beta * e_avg(source, target) min-max normalised over
sources per target (the paper's metric-controlled weight; the code's fixed
value is a TrainConfig option).
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import platform
import shutil
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from core.config import REPO_ROOT, cache_dir, demo_dir
from core.results import GENERIC  # the results contract and its writer live in core.results
from core.results import read_rows as read_results  # results.csv: append-by-rewrite, atomic (one writer)
from core.results import write_rows as write_results
SWEEP_ID = "demo-grid"


@dataclass
class Profile:
    """A training budget. Fields say what they bound."""
    name: str
    source_steps: int          # steps of each full-data source prompt
    steps: int                 # steps of each low-resource grid run
    seeds: list[int]           # seeds of every grid cell (pot, panda)
    scratch_seeds: list[int]   # seeds of the scratch baselines (their spread = the noise band)
    workers: int               # concurrent worker processes
    pack: int = 1              # runs per worker trained in one forward (core.train.train_packed); GPU only
    train_size: int = 128      # target training examples in the grid
    eval_every: int = 25
    max_length: int = 128
    generic_per_task: int = 200
    panda_beta: float = 0.5
    # training settings pinned here (not inherited from TrainConfig defaults) so the committed
    # demo stays reproducible by its command when the engine's defaults move
    lr: float = 0.03
    init_text: str = "read the following text and decide what it is about ."
    val_size: int | None = None   # cap validation / test examples (only the smoke-test profile does)
    test_size: int | None = None
    commit_seeds: list[int] = field(default_factory=lambda: [0])  # grid prompts copied into data/demo

    def __post_init__(self):
        if self.steps < 1 or self.source_steps < 1:
            raise ValueError(f"profile {self.name}: steps must be positive")
        if not set(self.seeds) <= set(self.scratch_seeds):
            raise ValueError(f"profile {self.name}: every grid seed needs a scratch baseline "
                             f"(seeds {self.seeds}, scratch_seeds {self.scratch_seeds})")


# Budgets. CPU: ~4 steps/s on 2 cores at batch 16 -> 11 x 400 source steps +
# (30 scratch + 220 grid) x 100 steps ~ 30k steps ~ 2 h. GPU: 12 concurrent
# MiniLM runs ~ 1,000 steps/s on an H200 -> all cells, 3 seeds, in minutes.
PROFILES = {
    "cpu": Profile("cpu", source_steps=400, steps=100, seeds=[0], scratch_seeds=[0, 1, 2], workers=1),
    # a smoke test of the whole pipeline in about a minute (tests, and `--profile tiny`)
    "tiny": Profile("tiny", source_steps=6, steps=4, seeds=[0], scratch_seeds=[0, 1], workers=1, train_size=32,
                    eval_every=2, max_length=32, generic_per_task=16, val_size=40, test_size=60),
    # GPU: what the committed demo ran (H200, fp32, 12 workers): sources + seed 0 of the grid
    # (241 runs) in 4.2 min, then seeds 1-2 of every cell (440 runs) in 6.1 min in a resume.
    # pack=16 (issue 18) is NOT measured yet: no GPU was lent to that issue; bench/packed_speed.py
    # on the device decides it (ATLAS_PACK or --pack override)
    "gpu": Profile("gpu", source_steps=600, steps=150, seeds=[0, 1, 2], scratch_seeds=[0, 1, 2], workers=12,
                   pack=16),
}


# --------------------------------------------------------------------------- #
# Worker processes: load the backbone once, then train job after job
# --------------------------------------------------------------------------- #
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
    from core.train import save_result
    save_result(res, out)
    row.update(val_score=round(res.val_score, 6), test_score=round(res.test_score, 6),
               wall_time_s=round(res.wall_time, 2), status="finished", prompt_path=job["rel_out"],
               steps=res.steps)


def _job_task(job: dict):
    return demo_task(job["task"], job.get("generic_tasks"), job.get("generic_per_task", 200))


def _run_job(job: dict) -> dict:
    """Train one run in a worker; returns its results row (or a failed row)."""
    from core.train import TrainConfig, train
    t0 = time.time()
    cfg = TrainConfig(**job["cfg"])
    row = _job_row(job, cfg)
    try:
        _save_job(job, row, train(cfg, backbone=_BB, task=_job_task(job)))
    except Exception as e:  # a failed run is recorded, the build goes on
        row.update(wall_time_s=round(time.time() - t0, 2), settings=json.dumps({**job["settings"], "error": repr(e)}))
    return row


def _run_pack(jobs: list[dict]) -> list[dict]:
    """Train several jobs in a worker as one pack (core.train.train_packed: one forward of the
    backbone per step for all of them); one results row each, a failed run fails alone."""
    from core.train import TrainConfig, train_packed
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
    them in one forward per step (core.train.train_packed)."""
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


# --------------------------------------------------------------------------- #
# Planning
# --------------------------------------------------------------------------- #
def _cfg_dict(cfg) -> dict:
    d = dataclasses.asdict(cfg)
    d["sources"] = [str(s) for s in d["sources"]]
    d["teacher"] = str(d["teacher"]) if d["teacher"] is not None else None
    return d


def source_jobs(prof: Profile, out: Path, tasks: list[str]) -> list[dict]:
    from core.train import TrainConfig
    jobs = []
    for t in tasks + [GENERIC]:
        cfg = TrainConfig(method="scratch", task=t, steps=prof.source_steps, train_size=None, seed=0,
                          eval_every=max(prof.eval_every, prof.source_steps // 10), max_length=prof.max_length,
                          val_size=prof.val_size, test_size=prof.test_size, lr=prof.lr, init_text=prof.init_text,
                          name=t)
        jobs.append(dict(run_id=f"source-{t}", sweep_id="demo-sources", method="source", source="", target=t,
                         seed=0, task=t, cfg=_cfg_dict(cfg), deps=[], out=str(out / "prompts" / t),
                         rel_out=f"prompts/{t}", settings={"stage": "source", "steps": prof.source_steps,
                                                            "train_size": "all"}))
    return jobs


def lambda_weights(out: Path, beta: float) -> dict[tuple[str, str], float]:
    """lambda(s, t) = beta * e_avg(P_s, P_t) min-max normalised over sources, per target."""
    from core.prompts import read_prompt
    names = sorted(p.name for p in (out / "prompts").iterdir() if (p / "atlas.json").is_file())
    P = {n: read_prompt(out / "prompts" / n).tensor.mean(0) for n in names}
    lam = {}
    for t in names:
        if t == GENERIC:
            continue
        sims = {s: float(torch.nn.functional.cosine_similarity(P[s], P[t], dim=0)) for s in names}
        lo, hi = min(sims.values()), max(sims.values())
        for s, v in sims.items():
            lam[(s, t)] = beta * ((v - lo) / (hi - lo) if hi > lo else 1.0)
    return lam


def grid_jobs(prof: Profile, out: Path, work: Path, tasks: list[str]) -> list[dict]:
    from core.runs import build_train_config
    from core.sweeps import SweepSpec, plan
    sources = sorted(p.name for p in (out / "prompts").iterdir() if (p / "atlas.json").is_file())
    params = dict(steps=prof.steps, train_size=prof.train_size, eval_every=prof.eval_every,
                  max_length=prof.max_length, val_size=prof.val_size, test_size=prof.test_size, lr=prof.lr,
                  init_text=prof.init_text)
    sw = SweepSpec(sources=[str(out / "prompts" / s) for s in sources], targets=tasks, methods=["pot", "panda"],
                   seeds=prof.scratch_seeds, params=params,
                   method_params={"panda": {"lambda_mode": "metric", "beta": prof.panda_beta,
                                            "student_init": "random", "teacher_mode": "pot"}},
                   name=SWEEP_ID)
    lam = lambda_weights(out, prof.panda_beta)
    jobs, rid, dest_of = [], {}, {}

    def run_id(key: str) -> str:
        parts = key.split("|")  # method|target|seed or method|source|target|seed
        if parts[0] == "scratch":
            return f"scratch-{parts[1]}-s{parts[2]}"
        return f"{parts[0]}-{Path(parts[1]).name}-to-{parts[2]}-s{parts[3]}"

    for p in plan(sw):
        spec = p.spec
        if spec.method != "scratch" and spec.seed not in prof.seeds:
            continue
        r = run_id(p.key)
        rid[p.key] = r
        src = Path(spec.sources[0]).name if spec.sources else ""
        teacher = None
        if spec.teacher and spec.teacher.startswith("key:"):
            teacher = dest_of[spec.teacher[4:]]
        params = dict(spec.params)
        if spec.method == "panda":  # the pair's normalised e_avg sets lambda = beta * metric_value
            params["metric_value"] = lam[(src, spec.target)] / prof.panda_beta if prof.panda_beta else 0.0
        spec = dataclasses.replace(spec, teacher=None, params=params)
        cfg = dataclasses.replace(build_train_config(spec, teacher), name=r)
        keep = spec.seed in prof.commit_seeds
        dest = (out / "transfers" / r) if keep else (work / r)
        dest_of[p.key] = str(dest)
        settings = {k: v for k, v in _cfg_dict(cfg).items()
                    if k in ("lr", "batch_size", "prompt_length", "lambda_mode", "beta", "metric_value",
                             "student_init", "teacher_mode", "max_length", "eval_every", "head", "pool", "init")}
        jobs.append(dict(run_id=r, sweep_id=SWEEP_ID, method=spec.method, source=src, target=spec.target,
                         seed=spec.seed, task=spec.target, cfg=_cfg_dict(cfg), deps=[rid[d] for d in p.deps],
                         out=str(dest), rel_out=str(dest.relative_to(out)) if keep else "", settings=settings))
    # seed-major order: a build stopped by its deadline leaves whole seeds, not a ragged grid
    phase = {"scratch": 0, "pot": 1, "panda": 2}
    # (all scratch baselines first: the noise band needs every seed of them)
    return sorted(jobs, key=lambda j: (j["method"] != "scratch", j["seed"], phase[j["method"]]))


# --------------------------------------------------------------------------- #
# Stages
# --------------------------------------------------------------------------- #
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
    from core.launchers import cpu_packing  # CPU: one run at a time unless ATLAS_PACK_CPU=1
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
    tmp = path.with_name("manifest.json.tmp")
    tmp.write_text(json.dumps(m, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


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


# --------------------------------------------------------------------------- #
# Verify: every committed prompt reproduces its recorded score
# --------------------------------------------------------------------------- #
PREDICTIONS = "test_predictions.npz"


def committed_runs(out: Path) -> list[dict]:
    """results.csv rows whose prompt is committed in the demo folder, by run_id."""
    rows = [r for r in read_results(out / "results.csv") if r.get("prompt_path") and r.get("status") == "finished"]
    return sorted(rows, key=lambda r: r["run_id"])


def split_fingerprint(texts: list[str], labels: list[int]) -> str:
    """What the recorded predictions are keyed to: the exact test text and labels."""
    h = hashlib.sha256()
    for t, y in zip(texts, labels):
        h.update(f"{y}\t{t}\n".encode("utf-8"))
    return h.hexdigest()[:16]


@torch.no_grad()
def predict_many(bb, task, prompts: dict[str, torch.Tensor], idx: list[int] | None = None,
                 batch_size: int = 128) -> dict[str, np.ndarray]:
    """Verbalizer predictions of many prompts on a task's test split (or the examples ``idx``).

    prompts: name -> [L, d]. Examples of different prompts share batches (the prompt is
    per row, [B, L, d]), length-sorted, so 241 prompts cost one pass of batched forwards.
    Returns name -> int8 [n] predicted class per example, in ``idx`` order.
    """
    from core.train import Head, label_embeddings
    te = task.test
    idx = list(range(len(te.texts))) if idx is None else list(idx)
    ids = bb.token_ids([te.texts[i] for i in idx], 128)
    head = Head("verbalizer", label_embeddings(bb, task), 0.05).to(bb.device)
    names = list(prompts)
    P = torch.stack([prompts[n].float() for n in names]).to(bb.device)  # [N, L, d]
    pairs = sorted(((k, j) for k in range(len(names)) for j in range(len(idx))), key=lambda kj: len(ids[kj[1]]))
    out = np.zeros((len(names), len(idx)), dtype=np.int8)
    for s in range(0, len(pairs), batch_size):
        chunk = pairs[s:s + batch_size]
        b = bb.pad([ids[j] for _, j in chunk])
        z = bb.encode(b["input_ids"], b["attention_mask"], P[[k for k, _ in chunk]], pool="text")
        pred = head(z).argmax(-1).cpu().numpy()
        for (k, j), c in zip(chunk, pred):
            out[k, j] = c
    return {n: out[k] for k, n in enumerate(names)}


def verify(out: Path, *, write: bool = False, sample: int | None = None, seed: int = 0,
           tolerance: float = 0.01, log=print) -> dict:
    """Re-evaluate the committed prompts on the CPU against what the demo recorded.

    write=True: every prompt on its full test split; its accuracy must be within
    ``tolerance`` of results.csv's test_score; the predictions are then written to
    ``test_predictions.npz`` (atomically). sample=k: every prompt on k seeded test examples
    per target, compared with the recorded predictions. Returns a summary dict with the
    problems found (an empty ``problems`` list means the demo is what it claims).
    """
    from core.backbone import load_backbone
    from core.prompts import read_prompt
    runs = committed_runs(out)
    rec_path = out / PREDICTIONS
    recorded = dict(np.load(rec_path, allow_pickle=False)) if rec_path.is_file() and not write else {}
    bb = load_backbone(None, "cpu", dtype=torch.float32)
    from core.tasks import list_tasks
    all_tasks = [t for t in _demo_tasks() if t in list_tasks()]  # as the build mixed `generic`
    by_target: dict[str, list[dict]] = {}
    for r in runs:
        by_target.setdefault(r["target"], []).append(r)
    problems, new, n_checked, n_disagree, t0 = [], {}, 0, 0, time.time()
    for target, rs in sorted(by_target.items()):
        task = demo_task(target, all_tasks)
        fp = split_fingerprint(list(task.test.texts), list(task.test.labels))
        labels = np.asarray(task.test.labels)
        prompts = {}
        for r in list(rs):
            try:
                prompts[r["run_id"]] = read_prompt(out / r["prompt_path"]).tensor
            except Exception as e:  # noqa: BLE001 — a prompt that does not load is a finding, not a crash
                problems.append(f"{r['prompt_path']}: does not load ({e})")
                rs.remove(r)
        if not rs:
            continue
        if write or sample is None:
            preds = predict_many(bb, task, prompts)
            for r in rs:
                acc = float((preds[r["run_id"]] == labels).mean())
                if abs(acc - float(r["test_score"])) > tolerance:
                    problems.append(f"{r['prompt_path']}: recorded test score {float(r['test_score']):.4f}, "
                                    f"re-evaluated on the CPU {acc:.4f}")
            new.update({f"pred/{k}": v for k, v in preds.items()})
            new[f"split/{target}"] = np.frombuffer(fp.encode(), dtype=np.uint8)
        else:
            key = f"split/{target}"
            if key not in recorded or bytes(recorded[key]).decode() != fp:
                problems.append(f"{rec_path}: no recorded predictions for the current {target} test split "
                                f"(python -m core demo verify --write)")
                continue
            rng = np.random.default_rng([seed, len(target), sum(map(ord, target))])
            idx = sorted(rng.choice(len(labels), size=min(sample, len(labels)), replace=False).tolist())
            preds = predict_many(bb, task, prompts, idx)
            for r in rs:
                rid = r["run_id"]
                rec = recorded.get(f"pred/{rid}")
                if rec is None or len(rec) != len(labels):
                    problems.append(f"{r['prompt_path']}: no recorded predictions")
                    continue
                acc = float((rec == labels).mean())
                if abs(acc - float(r["test_score"])) > tolerance:
                    problems.append(f"{r['prompt_path']}: recorded predictions score {acc:.4f}, "
                                    f"results.csv says {float(r['test_score']):.4f}")
                bad = int((preds[rid] != rec[idx]).sum())
                n_checked += len(idx)
                n_disagree += bad
                if bad > max(1, len(idx) // 20):
                    problems.append(f"{r['prompt_path']}: {bad} of {len(idx)} live predictions differ "
                                    "from the recorded ones")
        log(f"verify {target}: {len(rs)} prompts ({time.time() - t0:.0f} s)")
    if write and not problems:
        tmp = rec_path.with_name(PREDICTIONS + ".tmp")
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **new)
        os.replace(tmp, rec_path)
        log(f"wrote {rec_path} ({len(runs)} prompts)")
    return {"prompts": len(runs), "problems": problems, "checked": n_checked, "disagree": n_disagree,
            "seconds": time.time() - t0}


def finalize_metrics() -> list[str]:
    return ["e_avg", "e_tok", "e_flat", "euclid", "on", "on_probe", "panda_sim", "zs"]


# --------------------------------------------------------------------------- #
# CLI
# --------------------------------------------------------------------------- #
def cli(command: str, argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m core demo", description=__doc__.split("\n\n")[0])
    p.add_argument("action", choices=["build", "finalize", "estimate", "report", "verify"])
    p.add_argument("--profile", choices=["auto", *PROFILES], default="auto")
    p.add_argument("--out", type=Path, default=None, help="demo folder (default: ATLAS_DEMO or data/demo)")
    p.add_argument("--work", type=Path, default=None, help="where uncommitted run prompts go (default .cache/demo-runs)")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--pack", type=int, default=None, help="runs per worker in one forward (GPU; default: the "
                                                         "profile's, or ATLAS_PACK)")
    p.add_argument("--deadline", type=float, default=None, help="stop launching runs after this many seconds")
    p.add_argument("--no-finalize", action="store_true")
    p.add_argument("--tasks", nargs="+", default=None, help="a subset of the demo tasks (default: all ten)")
    p.add_argument("--metrics", nargs="*", default=None, help="finalize: only these metrics (none: projections only)")
    p.add_argument("--write", action="store_true", help="verify: full test splits, then record the predictions")
    p.add_argument("--sample", type=int, default=None, help="verify: k test examples per target, live vs recorded")
    a = p.parse_args(argv)
    out = (a.out or demo_dir()).resolve()
    name = a.profile if a.profile != "auto" else ("gpu" if _device().startswith("cuda") else "cpu")
    prof = PROFILES[name]
    if a.workers:
        prof = dataclasses.replace(prof, workers=a.workers)
    pack = a.pack or (int(os.environ["ATLAS_PACK"]) if os.environ.get("ATLAS_PACK", "").strip() else None)
    if pack:
        prof = dataclasses.replace(prof, pack=max(1, pack))
    if a.action == "estimate":
        from core.tasks import list_tasks
        n = len([t for t in _demo_tasks() if t in list_tasks()])
        print(f"profile {prof.name}: about {estimate_s(prof, n, 900.0 if name == 'gpu' else 4.0) / 60:.0f} min")
        return 0
    if a.action == "report":
        from core.headline import report
        print(report(out))
        return 0
    if a.action == "verify":
        res = verify(out, write=a.write, sample=a.sample)
        for msg in res["problems"]:
            print(f"error: {msg}")
        print(f"verify: {res['prompts']} prompts, {len(res['problems'])} problems"
              + (f", {res['disagree']} of {res['checked']} live predictions differ" if res["checked"] else "")
              + f" ({res['seconds']:.0f} s)")
        return 1 if res["problems"] else 0
    if a.action == "finalize":
        finalize(out, a.metrics)
        write_manifest(out, prof)
        return 0
    return build(out, prof, a.work, a.deadline, finalize_after=not a.no_finalize, tasks=a.tasks)
