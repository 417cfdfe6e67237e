"""How well a metric predicts measured transfer: per-target Spearman ρ, top-k hit, regret,
NDCG@k and regret@k (Lin et al. 2024).

    python -c "from core.headline import headline; print(headline().metric_scores)"

Torch-free (numpy, pandas; scipy and sklearn on use): the Home page's headline runs on it.
"""
from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import pandas as pd

from core.metrics.items import _named
from core.metrics.registry import MetricError


def by_task(matrix: pd.DataFrame, prompts, *, rows: bool = False) -> pd.DataFrame:
    """Prompt x prompt matrix -> sources x target *tasks* (to compare with ``measured``).

    A target task's column is the mean over that task's target prompts; when
    some of them are ``scratch`` prompts, only those count (the prompt one
    would have trained anyway). Columns of prompts without a task keep their name.

    rows=True: source *tasks* x target tasks: a source task's row is the mean over all of
    its prompts (every method); a prompt is never averaged against itself
    (:func:`core.blocks.block_means`), and a row of a prompt without a task keeps its name.
    """
    info = {name: (getattr(p, "task", None), getattr(p, "method", None)) for name, p in _named(prompts)}

    def task_or_name(n: str) -> str:
        return (info.get(n) or (None, None))[0] or n

    cols: dict[str, list[str]] = {}
    for c in matrix.columns:
        cols.setdefault(task_or_name(c), []).append(c)
    col_groups = {}
    for task, names in cols.items():
        scratch = [c for c in names if c in info and info[c][1] == "scratch"]
        col_groups[task] = scratch or names
    if rows:
        from core.blocks import block_means

        row_groups: dict[str, list[str]] = {}
        for r in matrix.index:
            row_groups.setdefault(task_or_name(r), []).append(r)
        df = block_means(matrix, row_groups, col_groups).mean
    else:
        df = pd.DataFrame({task: matrix[names].mean(axis=1) for task, names in col_groups.items()},
                          index=matrix.index)
    df.index.name, df.columns.name = "source", "target"
    return df


def _candidates(predicted: pd.DataFrame, measured_mean: pd.DataFrame, target: str,
                source_task: dict[str, str] | None) -> list[str]:
    """The sources a target is scored over: in both tables, finite in both, not of the target's own task."""
    return [s for s in measured_mean.index
            if s in predicted.index and (source_task or {}).get(s, s) != target
            and np.isfinite(measured_mean.at[s, target]) and np.isfinite(predicted.at[s, target])]


def validate(predicted: pd.DataFrame, measured_mean: pd.DataFrame, *, source_task: dict[str, str] | None = None,
             k: int = 3, min_sources: int = 3) -> pd.DataFrame:
    """Per target: how well a metric's column ranks the sources by measured gain.

    predicted: sources x target tasks (see :func:`by_task`); measured_mean: the same axes.
    A source whose task is the target is left out (source_task maps name -> task;
    by default a source named like the target). Returns one row per target:
    target, n, rho, p (scipy.stats.spearmanr), best (best measured source),
    top_k (the metric's top-k), hit, chosen (metric's top-1), regret
    (best gain - gain of the chosen source).
    """
    from scipy.stats import spearmanr

    rows = []
    for target in measured_mean.columns:
        if target not in predicted.columns:
            continue
        cand = _candidates(predicted, measured_mean, target, source_task)
        if len(cand) < min_sources:
            continue
        m = predicted.loc[cand, target].astype(float)
        y = measured_mean.loc[cand, target].astype(float)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # constant input -> nan, reported as such
            res = spearmanr(m.values, y.values)
        top = list(m.sort_values(ascending=False, kind="stable").index[:k])
        best = y.idxmax()
        chosen = top[0]
        rows.append({"target": target, "n": len(cand), "rho": float(res.statistic), "p": float(res.pvalue),
                     "best": best, "top_k": top, "hit": best in top, "chosen": chosen,
                     "regret": float(y.max() - y[chosen])})
    return pd.DataFrame(rows, columns=["target", "n", "rho", "p", "best", "top_k", "hit", "chosen", "regret"])


def summarise(per_target: pd.DataFrame) -> dict:
    """mean ρ (over targets with a defined ρ), top-k hit rate, mean regret, number of targets."""
    if per_target.empty:
        return {"mean_rho": float("nan"), "top_k_hit": float("nan"), "regret": float("nan"), "n_targets": 0}
    return {"mean_rho": float(per_target["rho"].mean()), "top_k_hit": float(per_target["hit"].mean()),
            "regret": float(per_target["regret"].mean()), "n_targets": int(len(per_target))}


def validation_table(predicted: dict[str, pd.DataFrame], measured_mean: pd.DataFrame, *,
                     source_task: dict[str, str] | None = None, k: int = 3) -> pd.DataFrame:
    """One row per metric: mean ρ, top-k hit rate, mean regret, targets scored (best ρ first)."""
    rows = []
    for name, pred in predicted.items():
        s = summarise(validate(pred, measured_mean, source_task=source_task, k=k))
        rows.append({"metric": name, **s})
    df = pd.DataFrame(rows, columns=["metric", "mean_rho", "top_k_hit", "regret", "n_targets"])
    return df.sort_values("mean_rho", ascending=False, na_position="last").reset_index(drop=True)


# --------------------------------------------------------------------------- retrieval measures
def ndcg_at_k(predicted: Sequence[float], gain: Sequence[float], k: int = 3) -> float:
    """NDCG@k of ranking sources by ``predicted`` with relevance = measured gain clipped at 0.

    Lin et al. 2024 (after Poth et al. 2021). DCG@k = Σ_{i≤k} rel_(i) / log2(i + 1) in the
    predicted order, divided by the DCG@k of the best order; sklearn's ``ndcg_score`` (ties
    in ``predicted`` averaged). NaN when no source has a positive gain (nothing to find).
    """
    from sklearn.metrics import ndcg_score
    rel = np.clip(np.asarray(gain, dtype=float), 0.0, None)
    pred = np.asarray(predicted, dtype=float)
    if rel.shape != pred.shape or rel.ndim != 1:
        raise MetricError(f"ndcg_at_k: predicted {pred.shape} and gain {rel.shape} must be equal 1-D")
    if len(rel) < 2 or not (rel > 0).any():
        return float("nan")
    return float(ndcg_score(rel[None, :], pred[None, :], k=k))


def regret_at_k(predicted: Sequence[float], gain: Sequence[float], k: int = 3) -> float:
    """regret@k = best measured gain − best measured gain among the metric's top-k sources.

    Lin et al. 2024 (after Poth et al. 2021) divide by the best score; our measured gain is
    already relative to scratch and can be ≤ 0, so the difference is reported in gain units
    (0 = the best source is in the top-k; k = 1 is ``validate``'s ``regret``).
    """
    pred = np.asarray(predicted, dtype=float)
    y = np.asarray(gain, dtype=float)
    if pred.shape != y.shape or not len(y):
        raise MetricError(f"regret_at_k: predicted {pred.shape} and gain {y.shape} must be equal, non-empty")
    top = np.argsort(-pred, kind="stable")[:k]
    return float(y.max() - y[top].max())


def validate_retrieval(predicted: pd.DataFrame, measured_mean: pd.DataFrame, *,
                       source_task: dict[str, str] | None = None, k: int = 3, min_sources: int = 3) -> pd.DataFrame:
    """``validate``'s per-target rows plus ``ndcg_k`` and ``regret_k`` (same sources, same k)."""
    per = validate(predicted, measured_mean, source_task=source_task, k=k, min_sources=min_sources)
    nd, rk = [], []
    for _, row in per.iterrows():
        t = row["target"]
        cand = _candidates(predicted, measured_mean, t, source_task)
        m = predicted.loc[cand, t].astype(float).values
        y = measured_mean.loc[cand, t].astype(float).values
        nd.append(ndcg_at_k(m, y, k))
        rk.append(regret_at_k(m, y, k))
    per["ndcg_k"], per["regret_k"] = nd, rk
    return per


def retrieval_table(predicted: dict[str, pd.DataFrame], measured_mean: pd.DataFrame, *,
                    source_task: dict[str, str] | None = None, k: int = 3, sort_by: str = "ndcg_k") -> pd.DataFrame:
    """One row per metric: mean ρ, top-k hit, mean NDCG@k, mean regret@k, targets (best ``sort_by`` first)."""
    rows = []
    for name, pred in predicted.items():
        per = validate_retrieval(pred, measured_mean, source_task=source_task, k=k)
        rows.append({"metric": name, **summarise(per),
                     "ndcg_k": float(per["ndcg_k"].mean()) if len(per) else float("nan"),
                     "regret_k": float(per["regret_k"].mean()) if len(per) else float("nan")})
    df = pd.DataFrame(rows, columns=["metric", "mean_rho", "top_k_hit", "regret", "ndcg_k", "regret_k", "n_targets"])
    if sort_by not in df.columns:
        raise MetricError(f"retrieval_table: sort_by must be one of {', '.join(df.columns[1:])}")
    ascending = sort_by in ("regret", "regret_k")  # lower regret is better
    return df.sort_values(sort_by, ascending=ascending, na_position="last").reset_index(drop=True)

