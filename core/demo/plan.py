"""Planning the demo build: the source jobs, PANDA's λ per pair, and the transfer grid.

    python -m core demo build --tasks sent_tweet topic_usenet      (plans, then runs)

The grid is planned by core.runs.sweeps.plan (scratch first, PANDA's PoT teachers before their
students); λ(s, t) = β · e_avg(P_s, P_t) min-max normalised over sources per target.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from core.demo.profiles import SWEEP_ID, Profile
from core.results import GENERIC

def _cfg_dict(cfg) -> dict:
    d = dataclasses.asdict(cfg)
    d["sources"] = [str(s) for s in d["sources"]]
    d["teacher"] = str(d["teacher"]) if d["teacher"] is not None else None
    return d


def source_jobs(prof: Profile, out: Path, tasks: list[str]) -> list[dict]:
    from core.training import TrainConfig
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
    from core.metrics import e_avg  # the one e_avg (the metric matrices use it too)
    from core.prompts import read_prompt
    names = sorted(p.name for p in (out / "prompts").iterdir() if (p / "atlas.json").is_file())
    E = e_avg([read_prompt(out / "prompts" / n) for n in names])  # [N, N], row = source, column = target
    lam = {}
    for j, t in enumerate(names):
        if t == GENERIC:
            continue
        sims = {s: float(E[i, j]) for i, s in enumerate(names)}
        lo, hi = min(sims.values()), max(sims.values())
        for s, v in sims.items():
            lam[(s, t)] = beta * ((v - lo) / (hi - lo) if hi > lo else 1.0)
    return lam


def grid_jobs(prof: Profile, out: Path, work: Path, tasks: list[str]) -> list[dict]:
    from core.runs.spec import build_train_config
    from core.runs.sweeps import SweepSpec, plan
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
