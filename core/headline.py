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


def single_sources(results: pd.DataFrame) -> pd.DataFrame:
    """The runs from one source prompt (and scratch): what "source -> target cells" count; mixture runs
    ("mix top-3 (zs)", core.mixreport) are compared on their own."""
    if results.empty or "source" not in results.columns:
        return results
    return results[~results["source"].fillna("").astype(str).map(R.is_mixture)]


def demo_evidence(folder: Path | None = None, method: str = "pot"):
    """core.evidence's rules on a demo library folder (default: the committed demo), single sources only."""
    from core import evidence as E
    return E.evidence(single_sources(load_results(folder)), method=method, prompt_tasks=load_prompt_tasks(folder))


@dataclass
class Headline:
    best_source: list[dict] = field(default_factory=list)   # per target: source, gain (max of noisy means)
    metric_scores: list[dict] = field(default_factory=list)  # per metric: mean_rho, top_k_hit, regret
    best_metric: dict | None = None
    panda_vs_pot: float | None = None       # mean(panda gain - pot gain) over matching runs
    n_runs: int = 0
    n_pairs: int = 0
    # the evidence rules (core.evidence), what Home shows
    best_held_out: list[dict] = field(default_factory=list)  # per target: picked on seed 0, scored on the others
    not_measurable: list[dict] = field(default_factory=list)  # target, why
    n_evidence: int = 0
    n_tested: int = 0
    chance: float = 0.0                     # cells expected to pass the evidence rule by chance
    validation: dict | None = None          # core.evidence.ValidationChance as a dict, plus "sentence"
    families: list[dict] = field(default_factory=list)      # kind, mean gain, cells (measurable targets)
    family_tests: list[str] = field(default_factory=list)   # Mann-Whitney lines
    regime: dict = field(default_factory=dict)             # train_size, steps, seeds, sources, targets
    mean_held_out: float | None = None      # mean held-out gain of the best source over measurable targets
    panda_vs_pot_measurable: float | None = None  # panda_vs_pot over the measurable targets only
    # several sources at once (core.mixreport): one row per (target, method) of each measurement
    multisource: list[dict] = field(default_factory=list)
    multisource_sentence: str = ""


def headline(folder: Path | None = None, k: int = 3) -> Headline:
    from core import mixreport as X
    folder = Path(folder or demo_dir())
    everything = load_results(folder)
    h = Headline(n_runs=len(everything))
    if everything.empty:
        return h
    # several sources at once: each measurement compared within its own sweep (core.mixreport). Every other
    # number reads every row: a run meets the scratch of its own device (core.metrics.measured), so the
    # CPU-measured baselines add seeds to the grid's cells without being compared across devices
    mix = X.measurements(everything)
    h.multisource, h.multisource_sentence = mix.to_dict("records"), X.summary_sentence(mix)
    results = single_sources(everything)  # a mixture is not a source: its cells are the table above only
    prompt_tasks = load_prompt_tasks(folder)
    pot = M.measured(results, method="pot")
    h.n_pairs = int(np.isfinite(pot.mean.values).sum())
    for target in pot.mean.columns:
        col = pot.mean[target].dropna()
        col = col[[prompt_tasks.get(s, s) != target and not R.is_mixture(s) for s in col.index]]  # single sources
        if len(col):
            h.best_source.append({"target": target, "source": col.idxmax(), "gain": float(col.max())})
    for name, m in load_matrices(folder).items():
        s = M.summarise(M.validate(m, pot.mean, source_task=prompt_tasks, k=k))
        if np.isfinite(s["mean_rho"]):
            h.metric_scores.append({"metric": name, **s})
    if h.metric_scores:
        h.best_metric = max(h.metric_scores, key=lambda r: r["mean_rho"])
    _evidence_parts(h, results, pot, prompt_tasks, folder, k)
    if (results["method"] == "panda").any():
        key = ["source", "target", "seed"] + (["device"] if "device" in pot.runs.columns else [])  # a seed per device
        panda = M.measured(results, method="panda").runs.set_index(key)["gain"]
        both = pd.concat({"pot": pot.runs.set_index(key)["gain"], "panda": panda}, axis=1).dropna()
        if len(both):
            h.panda_vs_pot = float((both["panda"] - both["pot"]).mean())
            ok = {r["target"] for r in h.best_held_out if r["measurable"]} or set(pot.mean.columns)
            on = both[both.index.get_level_values("target").isin(ok)]
            h.panda_vs_pot_measurable = float((on["panda"] - on["pot"]).mean()) if len(on) else None
    return h


def _evidence_parts(h: Headline, results: pd.DataFrame, pot: M.Measured, prompt_tasks: dict[str, str],
                    folder: Path, k: int) -> None:
    """The evidence rules' numbers (core.evidence) on PoT: what Home's summary says."""
    from core import evidence as E
    ev = E.evidence(results, method="pot", prompt_tasks=prompt_tasks)
    ts = ev.targets
    h.not_measurable = [{"target": t, "why": ts.at[t, "why"]} for t in ts.index if not ts.at[t, "measurable"]]
    h.n_evidence, h.n_tested, h.chance = ev.n_evidence, ev.n_tested, float(ev.chance)
    gen = [s for s in ev.gain.index if R.is_generic(s)]
    for r in ev.best.itertuples():
        st = ts.loc[r.target] if r.target in ts.index else None
        g_gain = ev.gain.loc[gen, r.target].dropna() if gen and r.target in ev.gain.columns else pd.Series(dtype=float)
        h.best_held_out.append({
            "target": r.target, "source": r.source, "picked_gain": r.picked_gain, "held_out_gain": r.held_out_gain,
            "mark": ev.mark(r.source, r.target),
            "source_acc": float(ev.source_score.at[r.source, r.target]),
            "scratch_mean": float(st["scratch_mean"]) if st is not None else float("nan"),
            "scratch_spread": float(st["scratch_spread"]) if st is not None else float("nan"),
            "majority": float(st["majority"]) if st is not None else float("nan"),
            "noise": float(st["noise"]) if st is not None else float("nan"),
            "generic_gain": float(g_gain.max()) if len(g_gain) else float("nan"),
            "measurable": bool(st["measurable"]) if st is not None else True})
    kept = [r["held_out_gain"] for r in h.best_held_out if r["measurable"] and np.isfinite(r["held_out_gain"])]
    h.mean_held_out = float(np.mean(kept)) if kept else None
    measurable = set(ev.measurable())
    matrices = load_matrices(folder)
    if matrices:  # over every target, as the Transferability page validates (the same best predictor)
        vc = E.validation_chance(matrices, pot.mean, pot.runs, source_task=prompt_tasks, k=k)
        h.validation = {**vars(vc), "sentence": vc.sentence("targets")}
    d = _cell_kinds(pot, prompt_tasks)
    d = d[d["target"].isin(measurable)]
    for kind in ("within", "cross", "generic"):
        x = d.loc[d["kind"] == kind, "gain"]
        h.families.append({"kind": kind, "mean_gain": float(x.mean()) if len(x) else float("nan"), "cells": int(len(x))})
    h.family_tests = [_compare(d, a, b) for a, b in (("within", "cross"), ("within", "generic"), ("generic", "cross"))]
    grid = results[results["method"] != "source"] if "method" in results.columns else results
    h.regime = {"train_size": _mode(grid, "train_size"), "steps": _mode(grid, "steps"),
                "seeds": int(grid["seed"].nunique()) if "seed" in grid.columns else 0,
                "sources": int(ev.gain.shape[0]), "targets": int(ev.gain.shape[1])}


def _mode(df: pd.DataFrame, col: str):
    if col not in df.columns:
        return None
    v = pd.to_numeric(df[col], errors="coerce").dropna()
    return int(v.mode().iloc[0]) if len(v) else None


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
    from core import mixreport as X
    h = headline(folder)
    results = single_sources(results)  # the mixtures are printed on their own, last
    out = ["summary (the Home page's words)"] + [f"  {line.replace('**', '')}" for line in summary_lines(h)] + [""]
    out += _scratch_lines(results)
    for meth in ("pot", "panda"):
        if (results["method"] == meth).any():
            out += _measured_lines(meth, M.measured(results, method=meth))
    out += _evidence_lines(results, load_prompt_tasks(folder))
    return "\n".join(out + _headline_lines(h) + X.text_lines(pd.DataFrame(h.multisource)))


def _evidence_lines(results: pd.DataFrame, prompt_tasks: dict[str, str]) -> list[str]:
    """The evidence marks of every PoT cell (core.evidence) and the best source per target with its
    absolute numbers: the same marks the pages draw."""
    from core import evidence as E
    ev = E.evidence(results, method="pot", prompt_tasks=prompt_tasks)
    sym = ev.marks.apply(lambda c: c.map(lambda m: E.MARK_SYMBOL.get(m, "")))
    out = ["\nevidence marks (pot): " + ", ".join(f"{v} {k}" for k, v in E.MARK_SYMBOL.items()),
           sym.to_string(), ev.summary(),
           "best source per target (picked on seed 0, scored on the other seeds):"]
    for r in ev.best.itertuples():
        out.append(f"  {r.target:17s} <- {r.source:15s} seed 0 {r.picked_gain * 100:+.1f}%  held out "
                   f"{r.held_out_gain * 100:+.1f}%  cell {E.cell_text(ev, r.source, r.target)}")
    return out


def _scratch_lines(results: pd.DataFrame) -> list[str]:
    sc = results[results["method"] == "scratch"].groupby("target")["test_score"].agg(["mean", "std", "count"])
    src = results[results["method"] == "source"].set_index("target")["test_score"]
    out = ["scratch on the low-resource target (mean ± std over seeds); source = full-data prompt"]
    for t in sc.index:
        out.append(f"  {t:17s} {sc.at[t, 'mean']:.3f} ± {sc.at[t, 'std']:.3f} (n={sc.at[t, 'count']})"
                   f"   source {src.get(t, float('nan')):.3f}")
    return out


def _cell_kinds(m: M.Measured, prompt_tasks: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per measured (source, target) cell, not a self-transfer: target, kind (generic | within |
    cross family), gain, and whether it is inside the target's noise band (False where unknown)."""
    from core.tasks import task_family
    rows = []
    for s in m.mean.index:
        st = (prompt_tasks or {}).get(s, s)
        for t in m.mean.columns:
            if st == t or not np.isfinite(m.mean.at[s, t]):
                continue
            kind = "generic" if R.is_generic(s) else ("within" if task_family(st) == task_family(t) else "cross")
            band = m.noise.get(t, float("nan"))
            rows.append((t, kind, m.mean.at[s, t], bool(np.isfinite(band) and abs(m.mean.at[s, t]) <= band)))
    return pd.DataFrame(rows, columns=["target", "kind", "gain", "in_noise"])


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


def summary_lines(h: Headline, label: str = "") -> list[str]:
    """The honest summary in a few sentences (markdown), each number from ``h``: what Home shows first
    and ``python -m core demo report`` prints. Self-transfer cells and not-measurable targets are out of
    every aggregate here; the words are core.evidence's."""
    from core import evidence as E
    from core import fmt
    from core import safetext as S
    # every stored value echoed here (the manifest's label, the results' regime and task names) goes through
    # core.safetext: a task named "[x](https://evil.example)" must stay text on Home (issue 24)
    out = []
    rg = {k: S.md(str(v)) for k, v in h.regime.items()}
    if rg:
        out.append(f"**Regime:** {S.md(label) + '; ' if label else ''}{rg.get('train_size')} training examples per "
                   f"target, {rg.get('steps')} steps, {rg.get('seeds')} seeds; {rg.get('sources')} sources × "
                   f"{rg.get('targets')} targets measured with PoT.")
    if h.not_measurable:
        names = ", ".join(S.md_code(str(r["target"])) for r in h.not_measurable)
        out.append(f"**Not measurable at this budget:** {names} — scratch is not above the majority-class rate by "
                   f"more than its seed spread or sampling error (or is at the ceiling), so no gain on it means "
                   f"anything. Their cells stay on the heatmaps, marked {E.MARK_SYMBOL[E.NOT_MEASURABLE]}, and are "
                   f"left out of every number below.")
    out.append(f"**Evidence:** {h.n_evidence} of {h.n_tested} source → target cells tested are evidence of "
               f"transfer (gain above the target's noise band and above its `generic` control by more than the "
               f"band); about {h.chance:.1f} would pass by chance alone if no source did anything.")
    fam = {r["kind"]: r for r in h.families}
    if fam:
        parts = [f"{label_} {fmt.gain(fam[k]['mean_gain'])} ({fmt.count(fam[k]['cells'], 'cell')})"
                 for k, label_ in (("within", "within-family sources"), ("cross", "cross-family"),
                                   ("generic", "the `generic` control")) if k in fam]
        out.append("**Mean gain by kind of source** (measurable targets): " + ", ".join(parts) + "; "
                   + "; ".join(h.family_tests) + ".")
    if h.best_held_out:
        n = sum(r["measurable"] for r in h.best_held_out)
        out.append(f"**Best source per target**, picked on seed 0 and scored on the other seeds (a maximum of "
                   f"noisy means scored on its own seeds is biased upwards): mean held-out gain "
                   f"{fmt.gain(h.mean_held_out)} over the {fmt.count(n, 'measurable target')}.")
    if h.validation:
        out.append("**Validation:** " + h.validation["sentence"])
    if h.panda_vs_pot_measurable is not None:
        out.append(f"**PANDA − PoT:** {fmt.gain(h.panda_vs_pot_measurable)} mean relative gain over matching runs "
                   f"on the measurable targets.")
    if h.multisource_sentence:
        out.append("**Several sources at once:** " + h.multisource_sentence)
    return out
