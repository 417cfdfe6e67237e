"""`python -m core demo build | finalize | estimate | report | verify` (see core.demo)."""
from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

from core.config import demo_dir
from core.demo.build import _device, build, estimate_s, finalize, write_manifest
from core.demo.profiles import PROFILES
from core.demo.verify import verify
from core.demo.workers import _demo_tasks

def cli(command: str, argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m core demo", description="Build the demo library: real prompts and a real measured transfer matrix.")
    p.add_argument("action", choices=["build", "finalize", "estimate", "report", "verify", "annotate", "multisource"])
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
    p.add_argument("--launch", action="store_true", help="multisource: rank, plan and queue the CPU measurement")
    p.add_argument("--export", action="store_true", help="multisource: add its finished runs to the demo's results.csv")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="multisource: seeds of each method")
    p.add_argument("--wait", action="store_true", help="multisource: wait for the launched runs")
    p.add_argument("--dry-run", action="store_true", help="multisource: print the plans, launch nothing")
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
    if a.action == "multisource":
        from core.demo import multisource as M
        targets = a.tasks or M.measurable_targets(out / "results.csv")
        if a.export:
            n = M.export(out)
            print(f"multisource: {n} runs in {out / 'results.csv'} under sweep {M.SWEEP_ID}")
            return 0
        if not (a.launch or a.dry_run):
            p.error("multisource: --launch, --dry-run or --export")
        ids = M.launch(targets, a.seeds, [0, 1, 2], dry_run=a.dry_run)
        if ids and a.wait:
            from core.runs.queue import wait
            from core.runs.store import RunStore
            store = RunStore()
            return wait(store, [x["run_id"] for s in ids for x in store.latest_sweep_runs(s).values()])
        return 0
    if a.action == "annotate":
        from core.demo.build import annotate
        print(f"annotate: {annotate(out)} rows of {out / 'results.csv'} describe their numbers")
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
