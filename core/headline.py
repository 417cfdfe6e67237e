"""The landing page's headline numbers, computed live from a demo library.

    python -c "from core.headline import headline; import json; print(json.dumps(headline(), indent=2))"

Everything here is derived from `results.csv` (one row per finished run) and
`matrices/<metric>.csv` (metric values, rows = source prompt names, columns =
target task names) in the demo folder; nothing is stored pre-digested, so the
landing page can never disagree with the data it summarises.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from core.config import demo_dir

TRANSFER_METHODS = ("pot", "panda")


def load_results(folder: Path | None = None) -> pd.DataFrame:
    """Finished runs of a library folder; empty frame when there are none."""
    path = Path(folder or demo_dir()) / "results.csv"
    if not path.is_file():
        return pd.DataFrame()
    df = pd.read_csv(path, keep_default_na=False, na_values=[""])
    if "status" in df.columns:
        df = df[df["status"].fillna("finished") == "finished"]
    return df


def gains(results: pd.DataFrame) -> pd.DataFrame:
    """Relative gain of every transfer run over `scratch` on the same target and seed.

    Returns one row per transfer run: method, source, target, seed, score,
    scratch, gain = (score - scratch) / scratch.
    """
    if results.empty:
        return pd.DataFrame(columns=["method", "source", "target", "seed", "score", "scratch", "gain"])
    scratch = (results[results["method"] == "scratch"]
               .groupby(["target", "seed"])["test_score"].mean().rename("scratch"))
    runs = results[results["method"].isin(TRANSFER_METHODS)][["method", "source", "target", "seed", "test_score"]]
    out = runs.join(scratch, on=["target", "seed"], how="inner").rename(columns={"test_score": "score"})
    out["gain"] = (out["score"] - out["scratch"]) / out["scratch"]
    return out.reset_index(drop=True)


def measured_matrix(results: pd.DataFrame, method: str = "pot") -> pd.DataFrame:
    """Mean relative gain over seeds, rows = sources, columns = targets."""
    g = gains(results)
    g = g[g["method"] == method]
    return g.pivot_table(index="source", columns="target", values="gain", aggfunc="mean")


def source_task(name: str, prompt_tasks: dict[str, str] | None) -> str:
    return (prompt_tasks or {}).get(name, name)


def score_metric(metric: pd.DataFrame, measured: pd.DataFrame, prompt_tasks: dict[str, str] | None = None,
                 k: int = 3) -> dict:
    """How well one metric predicts measured transfer, target by target.

    A target's own prompt is left out of its ranking: picking the target's own
    prompt as a source is not a transfer decision anyone needs help with.
    Returns mean Spearman rho, top-k hit rate, mean regret and per-target rows.
    """
    rows = []
    for target in measured.columns:
        if target not in metric.columns:
            continue
        cand = [s for s in measured.index
                if s in metric.index and source_task(s, prompt_tasks) != target
                and np.isfinite(measured.at[s, target]) and np.isfinite(metric.at[s, target])]
        if len(cand) < 3:
            continue
        m = metric.loc[cand, target].astype(float)
        y = measured.loc[cand, target].astype(float)
        rho = spearmanr(m.values, y.values).statistic
        top_k = list(m.sort_values(ascending=False).index[:k])
        best = y.idxmax()
        rows.append({"target": target, "rho": float(rho), "hit": best in top_k,
                     "regret": float(y.max() - y[m.idxmax()])})
    if not rows:
        return {"mean_rho": float("nan"), "top_k_hit": float("nan"), "regret": float("nan"), "targets": []}
    per = pd.DataFrame(rows)
    return {"mean_rho": float(per["rho"].mean()), "top_k_hit": float(per["hit"].mean()),
            "regret": float(per["regret"].mean()), "targets": rows}


def load_matrices(folder: Path | None = None) -> dict[str, pd.DataFrame]:
    mdir = Path(folder or demo_dir()) / "matrices"
    return {p.stem: pd.read_csv(p, index_col=0) for p in sorted(mdir.glob("*.csv"))} if mdir.is_dir() else {}


def load_prompt_tasks(folder: Path | None = None) -> dict[str, str]:
    """prompt name -> task, from each demo prompt's atlas.json."""
    out = {}
    for meta in sorted((Path(folder or demo_dir()) / "prompts").glob("*/atlas.json")):
        info = json.loads(meta.read_text())
        out[info.get("name", meta.parent.name)] = info.get("task") or meta.parent.name
    return out


@dataclass
class Headline:
    best_source: list[dict] = field(default_factory=list)   # per target: source, gain
    metric_scores: list[dict] = field(default_factory=list)  # per metric: mean_rho, top_k_hit, regret
    best_metric: dict | None = None
    panda_vs_pot: float | None = None       # mean(panda gain - pot gain) over matching runs
    n_runs: int = 0
    n_pairs: int = 0


def headline(folder: Path | None = None, k: int = 3) -> Headline:
    folder = Path(folder or demo_dir())
    results = load_results(folder)
    h = Headline(n_runs=len(results))
    if results.empty:
        return h
    prompt_tasks = load_prompt_tasks(folder)
    measured = measured_matrix(results, "pot")
    h.n_pairs = int(np.isfinite(measured.values).sum())
    for target in measured.columns:
        col = measured[target].dropna()
        col = col[[source_task(s, prompt_tasks) != target for s in col.index]]
        if len(col):
            h.best_source.append({"target": target, "source": col.idxmax(), "gain": float(col.max())})
    for name, m in load_matrices(folder).items():
        if name.startswith("measured"):
            continue
        s = score_metric(m, measured, prompt_tasks, k=k)
        if np.isfinite(s["mean_rho"]):
            h.metric_scores.append({"metric": name, "mean_rho": s["mean_rho"], "top_k_hit": s["top_k_hit"],
                                    "regret": s["regret"], "n_targets": len(s["targets"])})
    if h.metric_scores:
        h.best_metric = max(h.metric_scores, key=lambda r: r["mean_rho"])
    g = gains(results)
    pivot = g.pivot_table(index=["source", "target", "seed"], columns="method", values="gain")
    if {"pot", "panda"} <= set(pivot.columns):
        both = pivot.dropna(subset=["pot", "panda"])
        if len(both):
            h.panda_vs_pot = float((both["panda"] - both["pot"]).mean())
    return h
