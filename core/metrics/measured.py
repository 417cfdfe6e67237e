"""Measured transfer: relative gain over scratch from finished runs (the results table).

    python -m core matrix --metric measured --results data/demo/results.csv

Torch-free (numpy, pandas): the Home page's headline and the Transferability page read it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import pandas as pd

from core.metrics.registry import MetricError
from core.results import BASELINE, ResultsError, default_method, device_kind, finished_runs, generic_sources


BUDGET_KEYS = ("steps", "train_size")
PAIR_KEYS = ("head", "score_kind", "data_hash")
# the device kind (cpu | cuda | mps): the same seed and budget give different numbers on another
# device, so a run meets the scratch baseline trained on its own kind of device (the demo's grid ran
# on a GPU, its multi-source measurement and its baselines on a CPU: core.demo.multisource)
DEVICE_KEY = "device"


@dataclass
class Measured:
    """Measured transfer of one method, from finished runs.

    mean, std, n: [sources x target tasks] relative gain over scratch (std over seeds, ddof=1).
    noise: per target, the seed-to-seed spread of scratch (std / mean of its test score) -
           the same relative units as the gain: a gain inside ±noise is not distinguishable
           from seed noise. NaN (unknown) from fewer than two distinct scratch scores.
    runs: one row per transfer run with its scratch baseline and gain.
    vs_generic: gain over the `generic` control source (same target, seed), where present.
    """

    method: str
    mean: pd.DataFrame
    std: pd.DataFrame
    n: pd.DataFrame
    noise: pd.Series
    runs: pd.DataFrame
    vs_generic: pd.DataFrame | None = None
    generic: list[str] = field(default_factory=list)

    def inside_noise(self) -> pd.DataFrame:
        """True where |mean gain| <= the target's noise band (False where no band is known)."""
        band = self.noise.reindex(self.mean.columns)
        return self.mean.abs().le(band, axis=1) & band.notna().values[None, :]

    def runs_for(self, source: str, target: str) -> pd.DataFrame:
        """The runs behind one cell (source prompt, target task)."""
        return self.runs[(self.runs["source"] == source) & (self.runs["target"] == target)]


def _budget_keys(df: pd.DataFrame) -> list[str]:
    return [k for k in BUDGET_KEYS if k in df.columns and df[k].notna().any()]


def measured(results: pd.DataFrame, *, method: str | None = None, baseline: str = BASELINE,
             generic: Iterable[str] | None = None) -> Measured:
    """Relative gain over scratch on the same target, budget (steps, train_size) and seed.

    method: the transfer method (default: pot if present, else panda, else the first non-scratch one).
    generic: names of the generic control source prompts (default: core.results.is_generic by name).
    """
    try:
        df = finished_runs(results)
    except ResultsError as e:
        raise MetricError(str(e)) from None
    methods = [m for m in df["method"].astype(str).unique() if m != baseline]
    method = method or default_method(methods) or "pot"
    keys = ["target", "seed"] + _budget_keys(df)
    kdf = df.copy()
    for k in keys[2:]:
        kdf[k] = kdf[k].fillna(-1)
    # numbers of different kinds (head, score kind, task data) are never paired: a run meets the
    # scratch baseline of its own kind only (a missing value matches a missing value)
    for k in PAIR_KEYS:
        if k in kdf.columns and kdf[k].notna().any():
            kdf[k] = kdf[k].fillna("").astype(str)
            keys.append(k)
    if DEVICE_KEY in kdf.columns:  # normalised always ('' for unknown): a groupby drops NaN keys
        known = kdf[DEVICE_KEY].notna().any()
        kdf[DEVICE_KEY] = device_kind(kdf[DEVICE_KEY])
        if known:
            keys.append(DEVICE_KEY)
    runs = _gains(kdf, keys, method, baseline)
    mean, std, n = _cell_stats(runs)
    gen = list(generic) if generic is not None else generic_sources(runs["source"].unique())
    return Measured(method=method, mean=mean.astype(float), std=std.astype(float), n=n,
                    noise=_noise(kdf, baseline, mean.columns).astype(float), runs=runs,
                    vs_generic=_vs_generic(runs, gen), generic=gen)


def _gains(kdf: pd.DataFrame, keys: list[str], method: str, baseline: str) -> pd.DataFrame:
    """One row per ``method`` run with its scratch baseline (mean over runs with the same keys) and gain."""
    scratch = kdf[kdf["method"] == baseline].groupby(keys)["test_score"].mean().rename("scratch")
    runs = kdf[kdf["method"] == method].join(scratch, on=keys, how="inner")
    runs = runs[runs["scratch"] != 0]
    runs["gain"] = (runs["test_score"] - runs["scratch"]) / runs["scratch"]
    keep = [c for c in ["run_id", "method", "source", "target", "seed", *BUDGET_KEYS, "test_score", "score_kind",
                        DEVICE_KEY, "scratch",
                        "gain", "prompt_path"] if c in runs.columns]
    return runs[keep].reset_index(drop=True)


def _cell_stats(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """mean, std (ddof=1) and count of the gain per (source, target): [sources x targets] each."""
    grp = runs.groupby(["source", "target"])["gain"]
    mean = grp.mean().unstack("target")
    std = grp.std(ddof=1).unstack("target").reindex_like(mean)
    n = grp.count().unstack("target").reindex_like(mean).fillna(0).astype(int)
    for m in (mean, std, n):
        m.index.name, m.columns.name = "source", "target"
    return mean, std, n


def _noise(kdf: pd.DataFrame, baseline: str, targets: pd.Index) -> pd.Series:
    """The noise band per target: spread of scratch over seeds, relative to its mean. Unknown (NaN),
    never zero, from fewer than two distinct scratch scores (one seed, or seeds that agree exactly)."""
    by = ["target", "seed"] + ([DEVICE_KEY] if DEVICE_KEY in kdf.columns else [])  # a seed per device
    sc = kdf[kdf["method"] == baseline].groupby(by)["test_score"].mean()
    noise = sc.groupby("target").std(ddof=1) / sc.groupby("target").mean()
    distinct = sc.round(6).groupby("target").nunique()
    noise = noise.where(distinct.reindex(noise.index) >= 2)
    return noise.reindex(targets).rename("noise")


def _vs_generic(runs: pd.DataFrame, generic: list[str]) -> pd.DataFrame | None:
    """Gain over the generic control source (same target and seed), [sources x targets]; None without one."""
    gruns = runs[runs["source"].isin(generic)]
    if not len(gruns):
        return None
    on = ["target", "seed"] + ([DEVICE_KEY] if DEVICE_KEY in runs.columns else [])
    g_base = gruns.groupby(on)["test_score"].mean().rename("generic")
    r2 = runs.join(g_base, on=on, how="inner")
    r2 = r2[r2["generic"] != 0]
    r2["gain_vs_generic"] = (r2["test_score"] - r2["generic"]) / r2["generic"]
    vs = r2.groupby(["source", "target"])["gain_vs_generic"].mean().unstack("target")
    vs.index.name, vs.columns.name = "source", "target"
    return vs
