"""Several sources at once, measured on the demo, on this machine's CPU (issue 27).

    python -m core demo multisource --launch [--seeds 0 1] [--targets sent_movie ...] [--wait]
    python -m core demo multisource --export          # add the finished runs to data/demo/results.csv

What it measures, per demo target that is measurable in the demo's regime (core.evidence's
rule on the committed grid), through the same flow a user has (rank the demo's sources by
``zs`` from the target's data alone, then a ranked sweep, core.ranking.ranked_sweep):

- the three multi-source methods from the top 3 by ``zs``: ``attempt``, multi-teacher
  ``panda`` (PoT teachers of each of the three, weights from the ranking) and SPoT-weighted
  ``pot`` (the weighted average of the three as the init), one run each per seed;
- their baselines, rerun on the same CPU so nothing is compared across devices and head start
  has curves on both sides: ``scratch`` (3 seeds), ``pot`` and ``panda`` from the best single
  source by the same ranking (its PoT run is also the first teacher), per seed.

The grid's own runs (an H200, seed-0 prompts) stay as they are; the oracle ("the measured-best
single source") is read from them. The rows added here carry ``sweep_id`` :data:`SWEEP_ID`
and ``device`` cpu, so core.metrics.measured pairs each with the CPU scratch of the same seed
(``device`` is a pairing key) and core.headline reports them on their own.
"""
from __future__ import annotations

import json
from pathlib import Path

SWEEP_ID = "demo-mix-cpu"
TOP = 3


def measurable_targets(demo_csv: Path) -> list[str]:
    """Demo targets measurable in the demo's regime (core.evidence.target_stats on the grid)."""
    from core import evidence as E
    from core.results import read_finished
    ts = E.target_stats(read_finished(demo_csv))
    return sorted(ts.index[ts["measurable"].astype(bool)])


def sweep_for(target: str, seeds: list[int], scratch_seeds: list[int]):
    """The ranked sweep of one target: scratch, PoT + PANDA from the best by zs, and the top-3 mix."""
    from core.ranking import rank_sources, ranked_sweep
    r = rank_sources(target, metric="zs")
    single = ranked_sweep(r, 1, methods=("pot", "panda"), seeds=seeds, scratch_seeds=scratch_seeds)
    mixed = ranked_sweep(r, TOP, methods=("pot",), seeds=seeds, scratch_seeds=scratch_seeds, mix=True)
    single.mix = mixed.mix
    single.name = f"{SWEEP_ID}:{target}"
    single.ranking = {**(mixed.ranking or {}), "single": r.top(1)}
    return single


def launch(targets: list[str], seeds: list[int], scratch_seeds: list[int], dry_run: bool = False) -> list[str]:
    from core.ranking import plan_text
    from core.runs.queue import launch_sweep
    from core.runs.store import RunStore
    store = RunStore()
    ids = []
    for t in targets:
        sw = sweep_for(t, seeds, scratch_seeds)
        print(plan_text(sw, store), flush=True)
        if not dry_run:
            ids.append(launch_sweep(sw, store))
            print(f"{t}: sweep {ids[-1]}", flush=True)
    return ids


def _slug(text: str) -> str:
    import re
    return re.sub(r"[^A-Za-z0-9_]+", "_", str(text)).strip("_")


def _relative_settings(settings: str, demo: Path, run_ids: dict[str, str]) -> str:
    """A stored run's settings with paths made relative to the demo folder (no server path is shown
    to a viewer) and teacher run ids renamed to their exported ids."""
    d = json.loads(settings) if settings else {}
    root = str(demo.resolve()) + "/"

    def rel(v):
        if isinstance(v, str):
            if v.startswith(root):
                return v[len(root):]
            if v.startswith("run:") and v[4:] in run_ids:
                return "run:" + run_ids[v[4:]]
            return v
        if isinstance(v, list):
            return [rel(x) for x in v]
        if isinstance(v, dict):
            return {k: rel(x) for k, x in v.items()}
        return v
    for k in ("sweep_id", "prompt_path", "address"):
        d.pop(k, None)
    return json.dumps(rel(d), sort_keys=True)


def export(demo: Path, store=None) -> int:
    """Copy the finished runs of this measurement's sweeps (named ``demo-mix-cpu:<target>``) from the
    run store into ``demo/results.csv`` under ``sweep_id`` :data:`SWEEP_ID`, replacing an earlier
    export (so it can be rerun as more runs finish). Curves travel in ``settings.val_curve``; prompts
    are not committed (``prompt_path`` empty). Returns the number of rows written."""
    from core.results import read_rows, write_rows
    from core.runs.store import RunStore
    store = store or RunStore()
    sweeps = {s["sweep_id"]: s for s in store.list_sweeps() if str(s.get("name") or "").startswith(SWEEP_ID + ":")}
    table = store.results_table(status=("finished",))
    table = table[table["sweep_id"].isin(list(sweeps))]
    ids = {}
    for _, r in table.iterrows():
        ids[r["run_id"]] = f"{SWEEP_ID}-{r['method']}-{_slug(r['source']) or 'none'}-to-{r['target']}-s{int(r['seed'])}"
    new = []
    for _, r in table.iterrows():
        row = {k: (None if (isinstance(v, float) and v != v) else v) for k, v in r.to_dict().items()}
        row.update(run_id=ids[r["run_id"]], sweep_id=SWEEP_ID, prompt_path="",
                   settings=_relative_settings(r["settings"], demo, ids))
        new.append(row)
    path = demo / "results.csv"
    kept = [r for r in read_rows(path) if r.get("sweep_id") != SWEEP_ID]
    write_rows(path, kept + new)
    return len(new)
