"""Validation curves kept with each run's result, and the head start a transfer gives over scratch.

    python -c "from core.curves import head_start; print(head_start([(0, .5), (50, .8), (100, .9)], [[(0, .5), (300, .85)]]))"

A run's curve is its ``eval`` events ``(step, val_score)``; the results table keeps it in the
row's ``settings`` JSON as ``val_curve`` ``[[step, val_score], ...]`` (core.runs.store.results_table
writes it; the demo table can carry the same key), so a page reads it from the row alone.

Head start of a transfer run on target t: the first eval step at which its validation score
reaches scratch's final validation score on t (the mean, over the scratch seeds, of each scratch
curve's last point) -- fewer steps is a bigger head start; ``None`` ("never") when no eval of the
transfer run reaches it. Torch-free (pandas only).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

import pandas as pd

CURVE_KEY = "val_curve"


def curve_of(settings) -> list[tuple[int, float]]:
    """A results row's ``settings`` (JSON text or dict) -> its validation curve [(step, val_score)], sorted
    by step; [] when it has none."""
    if isinstance(settings, str):
        try:
            settings = json.loads(settings) if settings else {}
        except ValueError:
            return []
    raw = (settings or {}).get(CURVE_KEY) if isinstance(settings, dict) else None
    out = []
    for pt in raw or []:
        try:
            step, val = int(pt[0]), float(pt[1])
        except (TypeError, ValueError, IndexError):
            continue
        if math.isfinite(val):
            out.append((step, val))
    return sorted(out)


def curve_from_events(events: list[dict]) -> list[list[float]]:
    """Store events -> ``[[step, val_score], ...]`` from the ``eval`` ones (the last value per step)."""
    pts: dict[int, float] = {}
    for e in events:
        v = (e.get("metrics") or {}).get("val_score")
        if e.get("kind") == "eval" and isinstance(v, (int, float)) and e.get("step") is not None:
            pts[int(e["step"])] = float(v)
    return [[s, pts[s]] for s in sorted(pts)]


@dataclass(frozen=True)
class HeadStart:
    """steps: the first step reaching ``goal`` (None: never); goal: scratch's final validation score;
    scratch_steps: the step of scratch's last eval (its budget)."""
    steps: int | None
    goal: float
    scratch_steps: int

    def text(self) -> str:
        if self.steps is None:
            return f"never (scratch ends at {self.goal:.3f} after {self.scratch_steps} steps)"
        return f"{self.steps} steps to reach scratch's final {self.goal:.3f} (scratch: {self.scratch_steps} steps)"


def head_start(transfer: list[tuple[int, float]], scratch: list[list[tuple[int, float]]]) -> HeadStart | None:
    """transfer: one run's curve; scratch: the target's scratch curves (one per seed). None when
    either side has no curve."""
    scratch = [c for c in scratch if c]
    if not transfer or not scratch:
        return None
    goal = sum(c[-1][1] for c in scratch) / len(scratch)
    hit = next((s for s, v in sorted(transfer) if v >= goal - 1e-9), None)  # 1e-9: the mean's float error
    return HeadStart(hit, goal, max(c[-1][0] for c in scratch))


def pair_curves(results: pd.DataFrame, source: str, target: str) -> pd.DataFrame:
    """Long table of the curves behind a pair: run_id, method, seed, kind ("transfer" | "scratch"),
    step, val_score; the target's scratch runs beside every transfer run from ``source``."""
    cols = ["run_id", "method", "seed", "kind", "step", "val_score"]
    if results is None or results.empty or "settings" not in results.columns:
        return pd.DataFrame(columns=cols)
    df = results[results["target"] == target]
    src = df.get("source", pd.Series("", index=df.index)).fillna("").astype(str)
    rows = []
    for kind, part in (("scratch", df[df["method"] == "scratch"]), ("transfer", df[(df["method"] != "scratch") &
                                                                                  (src == source)])):
        for _, r in part.iterrows():
            for step, val in curve_of(r["settings"]):
                rows.append({"run_id": r.get("run_id", ""), "method": r["method"], "seed": r.get("seed"),
                             "kind": kind, "step": step, "val_score": val})
    return pd.DataFrame(rows, columns=cols)


def pair_head_starts(curves: pd.DataFrame) -> pd.DataFrame:
    """One row per transfer run of :func:`pair_curves`: run_id, method, seed, head_start (steps or
    None), goal, text."""
    cols = ["run_id", "method", "seed", "head_start", "goal", "text"]
    if curves.empty:
        return pd.DataFrame(columns=cols)
    scratch = [list(zip(g["step"], g["val_score"])) for _, g in curves[curves["kind"] == "scratch"].groupby("run_id")]
    rows = []
    for rid, g in curves[curves["kind"] == "transfer"].groupby("run_id", sort=False):
        h = head_start(list(zip(g["step"], g["val_score"])), scratch)
        if h is not None:
            rows.append({"run_id": rid, "method": g["method"].iloc[0], "seed": g["seed"].iloc[0],
                         "head_start": h.steps, "goal": h.goal, "text": h.text()})
    return pd.DataFrame(rows, columns=cols)
