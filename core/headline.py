"""The landing page's headline numbers, computed live from a demo library.

    python -c "import dataclasses, json; from core.headline import headline; print(json.dumps(dataclasses.asdict(headline()), indent=2))"

Torch-free (a fresh interpreter's Home page must not pay torch's import): results through
core.results, validation through core.metrics.validation / measured.

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

from core import metrics as M  # torch-free: the torch metrics load on first use, and none is used here
from core import results as R
from core.config import demo_dir


def load_results(folder: Path | None = None) -> pd.DataFrame:
    """Finished runs of a library folder; empty frame when there are none."""
    return R.read_finished(Path(folder or demo_dir()) / "results.csv")


def load_matrices(folder: Path | None = None) -> dict[str, pd.DataFrame]:
    mdir = Path(folder or demo_dir()) / "matrices"
    return {p.stem: M.read_matrix_csv(p) for p in sorted(mdir.glob("*.csv"))} if mdir.is_dir() else {}


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
    pot = M.measured(results, method="pot")
    h.n_pairs = int(np.isfinite(pot.mean.values).sum())
    for target in pot.mean.columns:
        col = pot.mean[target].dropna()
        col = col[[prompt_tasks.get(s, s) != target for s in col.index]]
        if len(col):
            h.best_source.append({"target": target, "source": col.idxmax(), "gain": float(col.max())})
    for name, m in load_matrices(folder).items():
        s = M.summarise(M.validate(m, pot.mean, source_task=prompt_tasks, k=k))
        if np.isfinite(s["mean_rho"]):
            h.metric_scores.append({"metric": name, **s})
    if h.metric_scores:
        h.best_metric = max(h.metric_scores, key=lambda r: r["mean_rho"])
    if (results["method"] == "panda").any():
        panda = M.measured(results, method="panda").runs.set_index(["source", "target", "seed"])["gain"]
        both = pd.concat({"pot": pot.runs.set_index(["source", "target", "seed"])["gain"], "panda": panda},
                         axis=1).dropna()
        if len(both):
            h.panda_vs_pot = float((both["panda"] - both["pot"]).mean())
    return h


def _compare(d: pd.DataFrame, a: str, b: str) -> str:
    """One-sided Mann-Whitney U of the cells' mean gains: does kind ``a`` beat kind ``b``?"""
    from scipy.stats import mannwhitneyu
    x, y = d.loc[d["kind"] == a, "gain"].to_numpy(), d.loc[d["kind"] == b, "gain"].to_numpy()
    if len(x) < 2 or len(y) < 2:
        return f"{a} > {b}: too few cells"
    p = float(mannwhitneyu(x, y, alternative="greater").pvalue)
    return f"{a} > {b}: Mann-Whitney p = {p:.3f}"


def report(folder: Path | None = None) -> str:
    """A plain-text account of a demo library: per-task scratch accuracy (mean ± spread over
    seeds), the measured matrices, PANDA vs PoT, within- vs cross-family vs `generic`
    transfer against the noise band, and each metric's validation.

        python -m core demo report
    """
    folder = Path(folder or demo_dir())
    results = load_results(folder)
    if results.empty:
        return f"{folder}: no results.csv"
    out = _scratch_lines(results)
    for meth in ("pot", "panda"):
        if (results["method"] == meth).any():
            out += _measured_lines(meth, M.measured(results, method=meth))
    return "\n".join(out + _headline_lines(headline(folder)))


def _scratch_lines(results: pd.DataFrame) -> list[str]:
    sc = results[results["method"] == "scratch"].groupby("target")["test_score"].agg(["mean", "std", "count"])
    src = results[results["method"] == "source"].set_index("target")["test_score"]
    out = ["scratch on the low-resource target (mean ± std over seeds); source = full-data prompt"]
    for t in sc.index:
        out.append(f"  {t:17s} {sc.at[t, 'mean']:.3f} ± {sc.at[t, 'std']:.3f} (n={sc.at[t, 'count']})"
                   f"   source {src.get(t, float('nan')):.3f}")
    return out


def _cell_kinds(m: M.Measured) -> pd.DataFrame:
    """One row per measured (source, target) cell, source != target: kind (generic | within | cross
    family), gain, and whether it is inside the target's noise band."""
    from core.tasks import task_family
    rows = []
    for s in m.mean.index:
        for t in m.mean.columns:
            if s == t or not np.isfinite(m.mean.at[s, t]):
                continue
            kind = "generic" if R.is_generic(s) else ("within" if task_family(s) == task_family(t) else "cross")
            rows.append((kind, m.mean.at[s, t], abs(m.mean.at[s, t]) <= m.noise.get(t, 0)))
    return pd.DataFrame(rows, columns=["kind", "gain", "in_noise"])


def _measured_lines(meth: str, m: M.Measured) -> list[str]:
    out = [f"\nmeasured {meth}: relative gain over scratch, % (rows: sources, columns: targets)",
           (m.mean * 100).round(1).to_string(),
           "noise band (scratch seed spread, %): " + ", ".join(f"{t} ±{v * 100:.1f}" for t, v in m.noise.items())]
    d = _cell_kinds(m)
    by = d.groupby("kind")["gain"].agg(["mean", "count"])

    def part(kind: str, label: str) -> str:
        return f"{label} {by['mean'].get(kind, float('nan')) * 100:+.2f}% (n={by['count'].get(kind, 0)})"

    out.append(f"{meth}: mean gain {part('within', 'within family')}, {part('cross', 'cross family')}, "
               f"{part('generic', 'generic')}; cells inside the noise band: {d['in_noise'].mean():.0%}")
    out.append("  " + "; ".join(_compare(d, a, b) for a, b in (("within", "cross"), ("within", "generic"),
                                                                ("generic", "cross"))))
    return out


def _headline_lines(h: Headline) -> list[str]:
    out = []
    if h.panda_vs_pot is not None:
        out.append(f"\nPANDA - PoT, mean relative gain over matching runs: {h.panda_vs_pot * 100:+.2f}%")
    if h.metric_scores:
        out.append("\nmetric vs measured PoT (mean Spearman rho over targets, top-3 hit rate, mean regret):")
        for r in sorted(h.metric_scores, key=lambda r: -r["mean_rho"]):
            out.append(f"  {r['metric']:10s} rho {r['mean_rho']:+.3f}  top-3 {r['top_k_hit']:.0%}  "
                       f"regret {r['regret'] * 100:.2f}%  ({r['n_targets']} targets)")
    return out
