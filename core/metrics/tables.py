"""The tables the Transferability page shows beside its heatmap, assembled from metrics and measured runs.

    python -c "from core.metrics.tables import per_target_z; import pandas as pd; print(per_target_z(pd.DataFrame([[1., 2.], [3., 5.]])))"

- :func:`pair_values`: every metric's value for one source prompt and a target, plus the measured gain;
- :func:`rank_sources`: the sources of a target task, by predicted (or measured) transfer;
- :func:`scored_predictions` + :func:`validation`: how well each metric predicts measured transfer;
- :func:`side_by_side`: predicted and measured on the same axes (source tasks when too many sources).

Nothing here computes an N x N matrix the caller did not ask for: a matrix comes from ``at_hand``
(already computed this session) or ``stored`` (precomputed / disk cache, never computed), and a
prompt-space metric missing from both is computed for the few pairs needed only (compute_pairs).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from core import blocks as B
from core import fmt
from core.metrics.cache import metric_status
from core.metrics.measured import Measured
from core.metrics.registry import METRICS, PROMPT_METRICS, MetricError
from core.metrics.validation import by_task, retrieval_table, validate

Lookup = Callable[[str], "pd.DataFrame | None"]   # metric name -> full matrix, or None


def per_target_z(mat: pd.DataFrame) -> pd.DataFrame:
    """Each column (target) standardised over its sources: which source is best *for this target*."""
    sd = mat.std(axis=0, ddof=0).replace(0, np.nan)
    return ((mat - mat.mean(axis=0)) / sd).fillna(0.0).where(mat.notna())


def source_tasks(prompts) -> dict[str, str]:
    """prompt name -> task, for prompts that name their task (a source of the target's own task is not scored)."""
    return {p.name: p.task for p in prompts if p.task}


def _matrix_or_pairs(metric: str, sources: list, targets: list, prompts, at_hand: Lookup,
                     stored: Lookup, status_ok: bool = False, compute: bool = True) -> pd.DataFrame | None:
    """The metric's values for sources x targets: a matrix at hand, else (prompt-space metrics, when
    ``compute``) the pairs computed, else a stored matrix; None when the metric cannot be had here."""
    mm = at_hand(metric)
    if mm is not None:
        return mm
    try:
        if not (status_ok or metric_status(metric, prompts)[0]):
            return None
        if metric in PROMPT_METRICS and compute:
            from core.metrics.prompt_space import compute_pairs  # torch: only when pairs are computed
            return compute_pairs(metric, sources, targets) if sources else None
        return stored(metric)
    except MetricError:
        return None


def pair_values(src, targets: list, prompts, *, at_hand: Lookup, stored: Lookup, meas: Measured | None = None,
                target_task: str | None = None, max_targets: int = 3) -> pd.DataFrame:
    """One row per (metric, target prompt) for source prompt ``src`` and the first ``max_targets``
    target prompts; then the measured gain of (src, target_task) when runs measured it.
    Columns: metric, target prompt, value (the metric's own scale), gain (measured, in %: core.fmt), note."""
    targets = targets[:max_targets]
    rows = []
    for m in METRICS:
        if m == "measured":
            continue
        mm = _matrix_or_pairs(m, [src], targets, prompts, at_hand, stored)
        for tp in targets:
            known = mm is not None and src.name in mm.index and tp.name in mm.columns
            rows.append({"metric": m, "target prompt": tp.name, "value": mm.at[src.name, tp.name] if known else np.nan,
                         "note": "" if mm is not None else "not computed / not available"})
    if meas is not None and target_task in meas.mean.columns and src.name in meas.mean.index:
        # a metric's value and a measured gain are different units: the gain gets its own column, in %
        rows.append({"metric": f"measured ({meas.method})", "target prompt": target_task, "value": np.nan,
                     "gain": float(fmt.gain_pct([meas.mean.at[src.name, target_task]]).iloc[0]),
                     "note": f"± {fmt.gain(meas.std.at[src.name, target_task], sign=False)} "
                             f"over {fmt.count(int(meas.n.at[src.name, target_task]), 'seed')}; noise band "
                             f"±{fmt.gain(meas.noise.get(target_task, np.nan), sign=False)}"})
    return pd.DataFrame(rows, columns=["metric", "target prompt", "value", "gain", "note"])


def rank_sources(target: str, prompts, *, predicted: pd.DataFrame | None = None, predicted_metric: str = "",
                 meas: Measured | None = None) -> pd.DataFrame:
    """The source prompts for target task ``target`` (its own task's prompts left out), best first.

    predicted: sources x target tasks (by_task of a metric). Columns: task, ``predicted (<metric>)``,
    measured gain, ± std, inside noise (those that are known); sorted by the prediction, else the
    measured gain. Index: source prompt names."""
    names = [p.name for p in prompts]
    rank = pd.DataFrame(index=pd.Index(names, name="source"))
    rank["task"] = [p.task for p in prompts]
    pred_col = f"predicted ({predicted_metric})"
    if predicted is not None and target in predicted.columns:
        rank[pred_col] = predicted[target]
    if meas is not None and target in meas.mean.columns:
        rank["measured gain"] = meas.mean[target].reindex(rank.index)
        rank["± std"] = meas.std[target].reindex(rank.index)
        rank["inside noise"] = meas.inside_noise()[target].reindex(rank.index)
    rank = rank[rank["task"] != target]
    sort_col = pred_col if pred_col in rank else "measured gain" if "measured gain" in rank else None
    return rank.sort_values(sort_col, ascending=False, na_position="last") if sort_col else rank


def prediction_pairs(prompts, meas: Measured, *, at_hand: Lookup) -> int:
    """How many (measured source, target prompt) pairs :func:`scored_predictions` computes with every
    prompt-space metric not at hand (its cost in core.budget's "predictions" units; 0 = nothing to compute)."""
    names = {p.name for p in prompts}
    n_src = sum(1 for s in meas.mean.index if s in names)
    todo = [m for m in PROMPT_METRICS if at_hand(m) is None and metric_status(m, prompts)[0]]
    return n_src * len(names) if todo else 0


def scored_predictions(prompts, meas: Measured, *, at_hand: Lookup, stored: Lookup,
                       compute: bool = True) -> dict[str, pd.DataFrame]:
    """metric -> sources x target tasks, for every metric that can be had here (see the module):
    only the sources with measured runs are needed, so a prompt-space metric not at hand is
    computed for those sources x every target prompt, not for all N x N pairs. A metric that cannot
    be computed for these prompts here (metric_status) is left out, even when a matrix is at hand.
    ``compute=False`` (a click over its budget, core.budget): matrices at hand or stored only."""
    by_name = {p.name: p for p in prompts}
    measured_sources = [by_name[s] for s in meas.mean.index if s in by_name]
    preds = {}
    for m in METRICS:
        if m == "measured" or not metric_status(m, prompts)[0]:
            continue
        mm = _matrix_or_pairs(m, measured_sources, list(prompts), prompts, at_hand, stored, status_ok=True,
                              compute=compute)
        if mm is not None:
            preds[m] = by_task(mm, prompts)
    return preds


def validation(preds: dict[str, pd.DataFrame], meas: Measured, prompts, *, k: int = 3) -> pd.DataFrame:
    """One row per metric (retrieval_table, ordered by mean ρ): how well it predicts measured transfer."""
    return retrieval_table(preds, meas.mean, source_task=source_tasks(prompts), k=k, sort_by="mean_rho")


def validation_detail(pred: pd.DataFrame, meas: Measured, prompts, *, k: int = 3) -> pd.DataFrame:
    """One metric's per-target rows (validate)."""
    return validate(pred, meas.mean, source_task=source_tasks(prompts), k=k)


def side_by_side(pred_tasks: pd.DataFrame | None, meas: Measured, prompts):
    """(predicted, measured, noise mask or None, axis note) on the same sources x target tasks; rows
    become source tasks (block means) when there are more sources than cells worth drawing.
    None when the prediction and the runs share no source or target."""
    if pred_tasks is None:
        return None
    rows = [r for r in meas.mean.index if r in pred_tasks.index]
    cols = [c for c in meas.mean.columns if c in pred_tasks.columns]
    if not rows or not cols:
        return None
    p, m = pred_tasks.loc[rows, cols], meas.mean.loc[rows, cols]
    if not B.needs_blocks(p.shape):
        return p, m, meas.inside_noise(), ""
    rg = B.task_groups(rows, {q.name: q.task for q in prompts})
    return (B.block_means(p, rg, B.singletons(cols)).mean, B.block_means(m, rg, B.singletons(cols)).mean, None,
            ", rows = mean over each source task's prompts")
