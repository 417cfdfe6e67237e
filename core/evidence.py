"""The evidence rules: when a measured number says something, and what chance alone would say.

    python -c "from core.headline import demo_evidence; e = demo_evidence(); print(e.targets); print(e.summary())"

One module, read by Home (through core.headline), the Transferability page's cell marks, the
ranking's measured columns and the CLI (``python -m core demo report``, ``rank``, ``matrix``), so
a page and the command line can never disagree about a cell. Torch-free (numpy, pandas, scipy).

The rules (issue 23):

- **Measurable target** (:func:`target_stats`): scratch's mean test score is above the majority-class
  rate of the test split by more than max(seed spread, binomial standard error of that split), and
  below the ceiling (0.99). Otherwise the target's cells stay visible but are marked and left out of
  headline aggregates: at this budget nothing can be read off them.
- **Noise band**: scratch's seed-to-seed spread relative to its mean (the gain's units). From fewer
  than two *distinct* scratch scores it is **unknown** (NaN), never zero.
- **Evidence of transfer** (:func:`cell_marks`): not a self-transfer, the target measurable, its
  runs not all flagged, the gain above a known noise band, and above the target's ``generic`` control
  by more than the band. :func:`chance_count` says how many cells would pass by chance.
- **Held-out-seed best source** (:func:`held_out_best`): picked on the first seed, reported on the others.
- **Chance levels of validation** (:func:`validation_chance`): the best metric's mean ρ with a
  permutation p-value that re-picks the best metric in every permutation, top-k hit beside the k/n
  of a random ranking, and the seed ceiling (:func:`seed_ceiling`): how well seed 0's gains predict
  the other seeds'.
- **Run sanity flags** (:func:`run_flags`): computed from a finished run's own events; a run whose
  events were not kept reads ``not recorded``, never ``clean``.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core import results as R

CEILING = 0.99              # a scratch mean at or above this: nothing left to gain
MIN_VAL_PER_CLASS = 10      # fewer validation examples of some class: the checkpoint choice is noise
SATURATED = 0.99            # validation at or above this at the first eval: the run cannot improve on it

# run sanity flags (stored with the run, joined by "; " in the results table's `flags` column)
FLAG_KEPT_INIT = "kept initial prompt (best_step 0)"
FLAG_VAL_SATURATED = "validation saturated at first eval"
FLAG_SMALL_VAL = f"validation < {MIN_VAL_PER_CLASS} examples per class"
FLAG_NONFINITE = "non-finite loss"

# cell marks, one per (source, target) cell; only EVIDENCE counts as evidence of transfer
SELF = "self-transfer"
FLAGGED = "flagged runs"
NOT_MEASURABLE = "target not measurable"
NOISE_UNKNOWN = "noise band unknown"
INSIDE_NOISE = "inside noise"
GENERIC = "generic control"
NOT_ABOVE_GENERIC = "not above generic"
HURTS = "hurts (outside noise)"
EVIDENCE = "evidence"
MARK_SYMBOL = {EVIDENCE: "★", SELF: "·", FLAGGED: "⚠", NOT_MEASURABLE: "✕", NOISE_UNKNOWN: "?",
               INSIDE_NOISE: "○", GENERIC: "g", NOT_ABOVE_GENERIC: "≤g", HURTS: "▼"}


# --------------------------------------------------------------------------- run sanity
def run_flags(*, best_step: int | None, history: list[dict] | None, val_counts: list[int] | None,
              nonfinite_loss: bool) -> list[str]:
    """Sanity flags of one finished run, from its own events and data.

    history: [{"step", "val_score"}] per eval (the first is the step-0 eval of the initial prompt);
    val_counts: validation examples per class. [] = nothing flagged.
    """
    flags = []
    if best_step is not None and int(best_step) == 0:
        flags.append(FLAG_KEPT_INIT)
    if history:
        first = history[0].get("val_score")
        if first is not None and np.isfinite(first) and float(first) >= SATURATED:
            flags.append(FLAG_VAL_SATURATED)
    if val_counts is not None and len(val_counts) and min(val_counts) < MIN_VAL_PER_CLASS:
        flags.append(FLAG_SMALL_VAL)
    if nonfinite_loss:
        flags.append(FLAG_NONFINITE)
    return flags


def flags_text(flags: list[str]) -> str:
    """The results table's ``flags`` value: 'clean' or the flags joined by '; '."""
    return "; ".join(flags) if flags else R.FLAGS_CLEAN


def flags_line(value) -> str | None:
    """The one line a run's detail shows for its flags (results column ``flags``); None before it finished."""
    if not isinstance(value, str) or not value.strip():
        return None
    if value.strip() == R.FLAGS_NOT_RECORDED:
        return "Sanity flags: not recorded (this run's own events were not kept: unchecked, not clean)."
    if value.strip() == R.FLAGS_CLEAN:
        return "Sanity flags: clean (kept a trained prompt, validation not saturated, enough per class, finite loss)."
    return f"{MARK_SYMBOL[FLAGGED]} Sanity flags: {value.strip()} — this run's score is not a finding."


def is_flagged(value) -> bool:
    """A run whose flags name a problem ('clean', 'not recorded' and missing are not flagged)."""
    if not isinstance(value, str) or not value.strip():
        return False
    return value.strip() not in (R.FLAGS_CLEAN, R.FLAGS_NOT_RECORDED)


# --------------------------------------------------------------------------- targets
def saturating_sources(val_scores: dict[str, float], sources) -> dict[str, float]:
    """The chosen ``sources`` whose zero-shot score on the target's validation split (the ranking's
    ``accuracy`` column: zs before subtracting the chance level) is already ≥ SATURATED: a run started
    from one cannot improve on its step-0 validation, keeps its initial prompt, and measures nothing."""
    out = {}
    for s in sources:
        v = val_scores.get(s)
        if v is not None and math.isfinite(float(v)) and float(v) >= SATURATED:
            out[s] = float(v)
    return out


def saturation_warning(val_scores: dict[str, float], sources, target: str) -> str | None:
    """One line before a sweep when any chosen source saturates ``target``'s validation split, else None."""
    sat = saturating_sources(val_scores, sources)
    if not sat:
        return None
    names = ", ".join(f"{s} (zs {v:.3f})" for s, v in sat.items())
    return (f"{target}'s validation split is already saturated (≥ {SATURATED}) by {names}: a run from "
            f"{'it' if len(sat) == 1 else 'them'} keeps its initial prompt (best_step 0) and its gain measures "
            "nothing; use a larger or harder validation split.")


def binomial_se(p: float, n: float) -> float:
    """Sampling error of an accuracy near ``p`` on ``n`` examples: sqrt(p (1 - p) / n)."""
    if not (np.isfinite(p) and np.isfinite(n) and n > 0):
        return float("nan")
    return math.sqrt(p * (1 - p) / n)


def target_stats(results: pd.DataFrame) -> pd.DataFrame:
    """One row per target with scratch runs: scratch mean, spread (std over seeds, ddof=1), seeds,
    distinct scores, majority rate and test size, sampling error, the noise band (relative; NaN =
    unknown), measurable (bool) and why not (one line, '' when measurable)."""
    df = R.finished_runs(results)
    sc = df[df["method"] == R.BASELINE]
    rows = []
    for t, g in sc.groupby("target"):
        # one value per (seed, device kind): the same seed on another device is another draw (core.metrics.measured)
        dev = [R.device_kind(g["device"])] if "device" in g.columns else []
        by_seed = g.groupby([g["seed"], *dev])["test_score"].mean()
        mean = float(by_seed.mean())
        spread = float(by_seed.std(ddof=1)) if len(by_seed) > 1 else float("nan")
        distinct = int(by_seed.round(6).nunique())
        maj = _first_number(g, "majority_rate")
        n = _first_number(g, "test_n")
        se = binomial_se(maj, n)
        noise = spread / mean if distinct >= 2 and mean else float("nan")
        measurable, why = True, ""
        if mean >= CEILING:
            measurable, why = False, f"scratch {mean:.3f} is at the ceiling (≥ {CEILING})"
        elif np.isfinite(maj):
            margin = np.nanmax([spread if np.isfinite(spread) else 0.0, se if np.isfinite(se) else 0.0])
            if not mean - maj > margin:
                measurable = False
                why = (f"scratch {mean:.3f} ± {_f3(spread)} is not above the majority rate {maj:.3f} by more than "
                       f"max(seed spread, sampling error {_f3(se)})")
        rows.append({"target": t, "scratch_mean": mean, "scratch_spread": spread, "seeds": len(by_seed),
                     "distinct": distinct, "majority": maj, "test_n": n, "se": se, "noise": noise,
                     "measurable": measurable, "why": why})
    cols = ["target", "scratch_mean", "scratch_spread", "seeds", "distinct", "majority", "test_n", "se", "noise",
            "measurable", "why"]
    return pd.DataFrame(rows, columns=cols).set_index("target")


def _first_number(g: pd.DataFrame, col: str) -> float:
    if col not in g.columns:
        return float("nan")
    v = pd.to_numeric(g[col], errors="coerce").dropna()
    return float(v.iloc[0]) if len(v) else float("nan")


def _f3(x: float) -> str:
    return f"{x:.3f}" if np.isfinite(x) else "–"


# --------------------------------------------------------------------------- cells
@dataclass
class Evidence:
    """The evidence rules applied to one transfer method's finished runs.

    targets: :func:`target_stats`; marks: [sources x targets] one mark per measured cell ('' none);
    gain / source_score: [sources x targets] mean gain and mean test score of the clean runs (all runs
    where every one is flagged); best: held-out-seed best source per target; chance: cells expected to
    pass by chance.
    """

    method: str
    targets: pd.DataFrame
    gain: pd.DataFrame
    source_score: pd.DataFrame
    marks: pd.DataFrame
    best: pd.DataFrame
    chance: float
    n_tested: int
    runs: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def n_evidence(self) -> int:
        return int((self.marks == EVIDENCE).to_numpy().sum())

    def measurable(self) -> list[str]:
        return [t for t in self.targets.index if bool(self.targets.at[t, "measurable"])]

    def summary(self) -> str:
        """One line: how many cells are evidence, against how many chance alone would pass."""
        return (f"{self.n_evidence} of {self.n_tested} cells tested are evidence of transfer ({self.method}); "
                f"about {self.chance:.1f} would pass by chance alone")

    def mark(self, source: str, target: str) -> str:
        try:
            v = self.marks.at[source, target]
        except KeyError:
            return ""
        return v if isinstance(v, str) else ""


def _source_task(source: str, prompt_tasks: dict[str, str] | None) -> str:
    return (prompt_tasks or {}).get(source, source)


def clean_runs(results: pd.DataFrame, method: str, generic: list[str] | None = None):
    """core.metrics.measured of ``method`` plus each run's flags (a ``flagged`` column)."""
    from core.metrics.measured import measured
    m = measured(results, method=method, generic=generic)
    runs = m.runs.copy()
    flags = R.finished_runs(results).set_index("run_id")["flags"] if "flags" in results.columns else None
    runs["flagged"] = runs["run_id"].map(flags).map(is_flagged) if flags is not None else False
    runs["flagged"] = runs["flagged"].fillna(False).astype(bool)
    return m, runs


def evidence(results: pd.DataFrame, *, method: str = "pot", prompt_tasks: dict[str, str] | None = None,
             generic: list[str] | None = None) -> Evidence:
    """Every rule of this module on the finished runs of ``method`` (see the module docstring)."""
    tstats = target_stats(results)
    m, runs = clean_runs(results, method, generic)
    gen = m.generic
    # a cell's value: its clean runs; where every run is flagged, all of them (and the cell is marked)
    use = runs.groupby(["source", "target"])["flagged"].transform(lambda f: ~f if (~f).any() else f | True)
    kept = runs[use.astype(bool)]
    gain = kept.groupby(["source", "target"])["gain"].mean().unstack("target")
    score = kept.groupby(["source", "target"])["test_score"].mean().unstack("target").reindex_like(gain)
    all_flagged = runs.groupby(["source", "target"])["flagged"].all().unstack("target").reindex_like(gain)
    seeds = kept.groupby(["source", "target"])["seed"].nunique().unstack("target").reindex_like(gain)
    marks = pd.DataFrame("", index=gain.index, columns=gain.columns, dtype=object)
    chance, tested = 0.0, 0
    for t in gain.columns:
        st = tstats.loc[t] if t in tstats.index else None
        band = float(st["noise"]) if st is not None else float("nan")
        measurable = bool(st["measurable"]) if st is not None else True
        g_gain = gain.loc[[s for s in gen if s in gain.index], t].dropna()
        g_best = float(g_gain.max()) if len(g_gain) else float("nan")
        for s in gain.index:
            v = gain.at[s, t]
            if not np.isfinite(v):
                continue
            if _source_task(s, prompt_tasks) == t:
                mark = SELF
            elif bool(all_flagged.at[s, t]):
                mark = FLAGGED
            elif not measurable:
                mark = NOT_MEASURABLE
            elif not np.isfinite(band):
                mark = NOISE_UNKNOWN
            elif s in gen:
                mark = GENERIC
            else:
                tested += 1
                # under "no source does anything" a cell's mean gain over n paired seeds has sd
                # band * sqrt(2 / n): P(it clears +band) = P(Z > sqrt(n / 2))
                n = int(seeds.at[s, t]) if np.isfinite(seeds.at[s, t]) else 1
                chance += _norm_sf(math.sqrt(max(n, 1) / 2))
                if v < -band:
                    mark = HURTS
                elif v <= band:
                    mark = INSIDE_NOISE
                elif np.isfinite(g_best) and v - g_best <= band:
                    mark = NOT_ABOVE_GENERIC
                else:
                    mark = EVIDENCE
            marks.at[s, t] = mark
    for x in (gain, score, marks):
        x.index.name, x.columns.name = "source", "target"
    best = held_out_best(runs[~runs["flagged"]], prompt_tasks=prompt_tasks, exclude=gen)
    return Evidence(method=m.method, targets=tstats, gain=gain.astype(float), source_score=score.astype(float),
                    marks=marks, best=best, chance=chance, n_tested=tested, runs=runs)


def _norm_sf(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2))


def held_out_best(runs: pd.DataFrame, *, prompt_tasks: dict[str, str] | None = None,
                  pick_seeds: list | None = None, exclude: list[str] | None = None) -> pd.DataFrame:
    """Per target: the source with the best gain on the pick seeds (default: the lowest seed),
    reported by its mean gain on the other seeds (a maximum of noisy means, picked and scored on the
    same seeds, is biased upwards). Self-transfer sources and ``exclude`` (the generic control: a
    best source has to be task-specific) are never picked.

    Returns target, source, picked_gain (on the pick seeds), held_out_gain (mean over the others;
    NaN when none), held_out_seeds (count), pick_seeds.
    """
    cols = ["target", "source", "picked_gain", "held_out_gain", "held_out_seeds", "pick_seeds"]
    if runs.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for t, g in runs.groupby("target"):
        g = g[[_source_task(s, prompt_tasks) != t and s not in (exclude or ()) for s in g["source"]]]
        if g.empty:
            continue
        seeds = sorted(g["seed"].unique())
        pick = list(pick_seeds) if pick_seeds is not None else seeds[:1]
        on_pick = g[g["seed"].isin(pick)].groupby("source")["gain"].mean()
        if on_pick.empty:
            continue
        src = on_pick.idxmax()
        held = g[(g["source"] == src) & ~g["seed"].isin(pick)]
        rows.append({"target": t, "source": src, "picked_gain": float(on_pick.max()),
                     "held_out_gain": float(held["gain"].mean()) if len(held) else float("nan"),
                     "held_out_seeds": int(held["seed"].nunique()), "pick_seeds": ",".join(map(str, pick))})
    return pd.DataFrame(rows, columns=cols)


# --------------------------------------------------------------------------- validation chance levels
def _ranks(x: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata
    return rankdata(x, axis=-1)


def _rho_rows(pred_ranks: np.ndarray, y_ranks: np.ndarray) -> np.ndarray:
    """Spearman ρ (Pearson of average ranks) of each metric's ranks [M, n] with each permuted
    measured ranking [B, n] -> [B, M]; NaN for a constant column."""
    a = pred_ranks - pred_ranks.mean(axis=1, keepdims=True)
    b = y_ranks - y_ranks.mean(axis=1, keepdims=True)
    num = b @ a.T
    den = np.sqrt((b ** 2).sum(axis=1))[:, None] * np.sqrt((a ** 2).sum(axis=1))[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _target_blocks(predicted: dict[str, pd.DataFrame], measured_mean: pd.DataFrame, source_task, min_sources):
    """Per target the common candidates (in every metric and measured, finite, not own task):
    (metric ranks [M, n], measured values [n])."""
    names = list(predicted)
    blocks = []
    for t in measured_mean.columns:
        if any(t not in p.columns for p in predicted.values()):
            continue
        cand = [s for s in measured_mean.index if (source_task or {}).get(s, s) != t
                and np.isfinite(measured_mean.at[s, t])
                and all(s in p.index and np.isfinite(p.at[s, t]) for p in predicted.values())]
        if len(cand) < min_sources:
            continue
        P = np.stack([predicted[m].loc[cand, t].astype(float).to_numpy() for m in names])
        blocks.append((t, _ranks(P), measured_mean.loc[cand, t].astype(float).to_numpy()))
    return names, blocks


def best_of_metrics_p(predicted: dict[str, pd.DataFrame], measured_mean: pd.DataFrame, *,
                      source_task: dict[str, str] | None = None, n_perm: int = 2000, seed: int = 0,
                      min_sources: int = 3, exact: bool = False) -> dict:
    """Mean Spearman ρ over targets per metric, the best metric, and a permutation p-value for the
    best: the measured gains are shuffled among the sources within each target (one shuffle shared by
    all metrics), the best mean ρ over metrics is taken in every shuffle, and
    p = (1 + #{shuffles whose best ≥ observed best}) / (1 + shuffles). Picking the best of several
    metrics is thereby in the null distribution, not only the metric that happened to win.

    exact=True enumerates every combination of within-target permutations (small cases only).
    Returns {"rho": {metric: mean ρ}, "best": name, "best_rho", "p", "n_perm", "n_metrics", "n_targets"}.
    """
    names, blocks = _target_blocks(predicted, measured_mean, source_task, min_sources)
    if not blocks or not names:
        return {"rho": {}, "best": None, "best_rho": float("nan"), "p": float("nan"), "n_perm": 0,
                "n_metrics": len(names), "n_targets": 0}
    obs = np.nanmean(np.stack([_rho_rows(P, _ranks(y)[None, :])[0] for _, P, y in blocks]), axis=0)
    best_i = int(np.nanargmax(obs))
    if exact:
        perms_per = [list(itertools.permutations(range(len(y)))) for _, _, y in blocks]
        combos = list(itertools.product(*[range(len(p)) for p in perms_per]))
        rhos = np.stack([_rho_rows(P, _ranks(y[np.array(perms_per[i])[[c[i] for c in combos]]]))
                         for i, (_, P, y) in enumerate(blocks)])
    else:
        rng = np.random.default_rng(seed)
        rhos = np.stack([_rho_rows(P, _ranks(np.stack([rng.permutation(y) for _ in range(n_perm)])))
                         for _, P, y in blocks])
    null_best = np.nanmax(np.nanmean(rhos, axis=0), axis=1)          # [B]
    b = len(null_best)
    p = (1 + int((null_best >= obs[best_i] - 1e-12).sum())) / (1 + b) if not exact else \
        float((null_best >= obs[best_i] - 1e-12).mean())
    return {"rho": dict(zip(names, map(float, obs))), "best": names[best_i], "best_rho": float(obs[best_i]),
            "p": float(p), "n_perm": b, "n_metrics": len(names), "n_targets": len(blocks)}


def random_top_k(n_sources: list[int], k: int) -> float:
    """Top-k hit rate of a random ranking: mean over targets of min(k, n) / n (n sources ranked)."""
    return float(np.mean([min(k, n) / n for n in n_sources])) if n_sources else float("nan")


def _dcg_discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2))                       # position i (1-based) -> 1 / log2(i + 1)


def ndcg_k(pred, rel, k: int) -> float:
    """NDCG@k of ranking by ``pred`` (DESIGN.md §8, Lin et al. 2024): gain 2^rel − 1, discount log2(i + 1),
    over the best order's DCG@k. rel: measured gain clipped at 0 (a harmful source is worth nothing).
    Ties in ``pred`` keep the given order (stable sort). NaN when no source has a positive gain."""
    pred, g = np.asarray(pred, float), 2.0 ** np.clip(np.asarray(rel, float), 0, None) - 1.0
    kk = min(k, len(g))
    ideal = float(np.sort(g)[::-1][:kk] @ _dcg_discounts(kk))
    if not ideal > 0:
        return float("nan")
    order = np.argsort(-pred, kind="stable")[:kk]
    return float(g[order] @ _dcg_discounts(kk)) / ideal


def random_ndcg_k(rel, k: int) -> float:
    """A uniformly random ranking's expected NDCG@k, exactly: every position holds each source with
    probability 1/n, so E[DCG@k] = mean(gain) × Σ_{i≤k} 1/log2(i + 1)."""
    g = 2.0 ** np.clip(np.asarray(rel, float), 0, None) - 1.0
    kk = min(k, len(g))
    ideal = float(np.sort(g)[::-1][:kk] @ _dcg_discounts(kk))
    return float(g.mean() * _dcg_discounts(kk).sum() / ideal) if ideal > 0 else float("nan")


def regret_k(pred, score, k: int) -> float:
    """regret@k = (best − best among the top k by ``pred``) / best × 100 (DESIGN.md §8). score: each
    source's measured transfer score, positive (here 1 + relative gain: the run's score in units of
    scratch's, so the ratio is the accuracies' ratio)."""
    pred, y = np.asarray(pred, float), np.asarray(score, float)
    top = np.argsort(-pred, kind="stable")[:k]
    return float((y.max() - y[top].max()) / y.max() * 100)


def random_regret_k(score, k: int) -> float:
    """A uniformly random ranking's expected regret@k, exactly: with the scores sorted best first, the
    j-th best is the best of a random k-subset with probability C(n − j, k − 1) / C(n, k)."""
    from math import comb
    y = np.sort(np.asarray(score, float))[::-1]
    n, kk = len(y), min(k, len(y))
    p = np.array([comb(n - j, kk - 1) for j in range(1, n + 1)], float) / comb(n, kk)
    return float((y[0] - p @ y) / y[0] * 100)


def retrieval_chance(predicted: pd.DataFrame, measured_mean: pd.DataFrame, *,
                     source_task: dict[str, str] | None = None, k: int = 3, min_sources: int = 3) -> dict:
    """Mean over targets of NDCG@k and regret@k of one metric (``predicted``: sources × target tasks,
    measured_mean: relative gains, the same axes) and of a random ranking of the same sources; a source
    whose task is the target is left out. {"ndcg_k", "random_ndcg_k", "regret_k", "random_regret_k",
    "n_targets"}."""
    nd, rnd, rg, rrg = [], [], [], []
    for t in measured_mean.columns:
        if t not in predicted.columns:
            continue
        cand = [s for s in measured_mean.index if s in predicted.index and _source_task(s, source_task) != t
                and np.isfinite(measured_mean.at[s, t]) and np.isfinite(predicted.at[s, t])]
        if len(cand) < min_sources:
            continue
        m = predicted.loc[cand, t].astype(float).values
        y = measured_mean.loc[cand, t].astype(float).values
        if np.isfinite(n1 := ndcg_k(m, y, k)):
            nd.append(n1)
            rnd.append(random_ndcg_k(y, k))
        rg.append(regret_k(m, 1 + y, k))
        rrg.append(random_regret_k(1 + y, k))

    def mean(x):
        return float(np.mean(x)) if x else float("nan")
    return {"ndcg_k": mean(nd), "random_ndcg_k": mean(rnd), "regret_k": mean(rg), "random_regret_k": mean(rrg),
            "n_targets": len(rg)}


def retrieval_chance_text(r: dict, k: int, metric: str) -> str:
    """One line: the metric's NDCG@k and regret@k beside a random ranking's (retrieval_chance)."""
    return (f"{metric}: NDCG@{k} {r['ndcg_k']:.2f} vs {r['random_ndcg_k']:.2f} for a random ranking (gain 2^rel − 1); "
            f"regret@{k} {r['regret_k']:.1f}% vs {r['random_regret_k']:.1f}% random (over {r['n_targets']} targets)")


def seed_ceiling(runs: pd.DataFrame, *, prompt_tasks: dict[str, str] | None = None, min_sources: int = 3) -> float:
    """How well the measurements predict themselves: per target, Spearman ρ between the sources'
    gains on the first seed and their mean gain on the other seeds; the mean over targets.
    A metric cannot be expected to predict measured transfer better than this."""
    from scipy.stats import spearmanr
    rhos = []
    for t, g in runs.groupby("target"):
        g = g[[_source_task(s, prompt_tasks) != t for s in g["source"]]]
        seeds = sorted(g["seed"].unique())
        if len(seeds) < 2:
            continue
        a = g[g["seed"] == seeds[0]].groupby("source")["gain"].mean()
        b = g[g["seed"].isin(seeds[1:])].groupby("source")["gain"].mean()
        both = pd.concat([a, b], axis=1, keys=["a", "b"]).dropna()
        if len(both) < min_sources or both["a"].nunique() < 2 or both["b"].nunique() < 2:
            continue
        rhos.append(float(spearmanr(both["a"], both["b"]).statistic))
    return float(np.mean(rhos)) if rhos else float("nan")


@dataclass
class ValidationChance:
    best: str | None
    best_rho: float
    p: float                 # permutation p of the best of n_metrics metrics
    n_metrics: int
    n_perm: int
    top_k_hit: float         # the best metric's top-k hit rate
    random_top_k: float      # a random ranking's expected top-k hit rate (same sources)
    k: int
    n_targets: int
    ceiling: float           # seed 0 vs the other seeds, mean ρ
    retrieval: dict = field(default_factory=dict)   # the best metric's retrieval_chance (NDCG@k, regret@k + random)

    def sentence(self, targets_word: str = "targets") -> str:
        if self.best is None:
            return "No metric could be validated against measured transfer."
        return (f"Best predictor: {self.best}, mean ρ = {self.best_rho:.2f} over {self.n_targets} {targets_word} "
                f"(permutation p = {self.p:.3f} for the best of {self.n_metrics} metrics); "
                f"top-{self.k} hit {self.top_k_hit:.0%} of targets, against {self.random_top_k:.0%} for a random "
                f"top {self.k}; seed ceiling: measured gains on seed 0 predict the other seeds at mean "
                f"ρ = {self.ceiling:.2f}." + (f" NDCG@{self.k} {self.retrieval['ndcg_k']:.2f} vs "
                f"{self.retrieval['random_ndcg_k']:.2f} random; regret@{self.k} {self.retrieval['regret_k']:.1f}% vs "
                f"{self.retrieval['random_regret_k']:.1f}% random." if self.retrieval.get("n_targets") else ""))


def validation_chance(predicted: dict[str, pd.DataFrame], measured_mean: pd.DataFrame, runs: pd.DataFrame, *,
                      source_task: dict[str, str] | None = None, k: int = 3, n_perm: int = 2000,
                      seed: int = 0) -> ValidationChance:
    """The best metric with its chance levels and the seed ceiling (see :func:`best_of_metrics_p`)."""
    from core.metrics.validation import validate
    res = best_of_metrics_p(predicted, measured_mean, source_task=source_task, n_perm=n_perm, seed=seed)
    hit, rnd, retr = float("nan"), float("nan"), {}
    if res["best"] is not None:
        retr = retrieval_chance(predicted[res["best"]], measured_mean, source_task=source_task, k=k)
        per = validate(predicted[res["best"]], measured_mean, source_task=source_task, k=k)
        hit = float(per["hit"].mean()) if len(per) else float("nan")
        rnd = random_top_k(per["n"].astype(int).tolist(), k)
    return ValidationChance(best=res["best"], best_rho=res["best_rho"], p=res["p"], n_metrics=res["n_metrics"],
                            n_perm=res["n_perm"], top_k_hit=hit, random_top_k=rnd, k=k,
                            n_targets=res["n_targets"], ceiling=seed_ceiling(runs, prompt_tasks=source_task),
                            retrieval=retr)


# --------------------------------------------------------------------------- text (the CLI's and pages' words)
def cell_text(ev: Evidence, source: str, target: str) -> str:
    """A cell's absolute numbers in one line: gain, the source run's accuracy, scratch mean ± spread,
    majority rate, and its mark."""
    st = ev.targets.loc[target] if target in ev.targets.index else None
    g = ev.gain.at[source, target] if source in ev.gain.index and target in ev.gain.columns else float("nan")
    sc = ev.source_score.at[source, target] if source in ev.source_score.index else float("nan")
    base = (f"scratch {_f3(st['scratch_mean'])} ± {_f3(st['scratch_spread'])}, majority {_f3(st['majority'])}"
            if st is not None else "scratch –")
    from core import fmt
    return f"{fmt.gain(g)} (run {_f3(sc)} vs {base}) [{ev.mark(source, target) or '–'}]"
