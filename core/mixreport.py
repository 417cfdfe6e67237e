"""Several sources at once, measured: each mixture of a ranking's top K against the best single
source by the same ranking, the measured-best single source (an oracle) and scratch.

    python -m core demo report          # prints this table after the grid's numbers (core.headline)

Read from a results table (torch-free). A *measurement* is one sweep that holds mixture runs
(source "mix top-K (metric)", core.results.is_mixture) together with its own baselines: the
scratch seeds and the PoT / PANDA runs from the ranking's first member (``settings.mix.members[0]``)
-- what ``python -m core sweep --target T --top K --mix`` and ``python -m core demo multisource``
launch. Everything compared within it was trained on one device in one regime; gains are paired
with scratch of the same seed (core.metrics.measured).

The oracle is the best mean PoT gain of a single, non-self, non-mixture source on that target in
the *other* rows of the table (the demo's grid): a maximum over noisy means measured on another
device, so it is shown as its own gain over its own scratch, never subtracted from these.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from core import fmt
from core import results as R
from core.curves import curve_of, head_start

# how a measurement's rows are labelled, in the order a table shows them
SINGLE_POT, SINGLE_PANDA = "pot · best single", "panda · best single"
MIX_LABELS = {"attempt": "attempt · mix", "panda": "panda · mix", "pot": "spot · mix"}
ORDER = [SINGLE_POT, SINGLE_PANDA, *MIX_LABELS.values()]
COLUMNS = ["target", "method", "source", "runs", "acc", "acc_spread", "gain", "gain_spread", "noise",
           "outside_noise", "head_start", "scratch_acc", "scratch_spread", "scratch_n", "oracle_source",
           "oracle_gain", "sweep_id"]


def _settings(s) -> dict:
    if isinstance(s, dict):
        return s
    try:
        d = json.loads(s) if isinstance(s, str) and s else {}
    except ValueError:
        return {}
    return d if isinstance(d, dict) else {}


def _mix_members(rows: pd.DataFrame) -> list[str]:
    for s in rows["settings"]:
        mix = _settings(s).get("mix") or {}
        if mix.get("members"):
            return [str(m) for m in mix["members"]]
    return []


def _head_start_text(steps: list[int | None]) -> str:
    """Per-seed head starts -> the median in steps ('50'; '50 (1/2 never)'; 'never (2/2)' where most seeds
    never reach scratch's final validation score)."""
    got = sorted(s for s in steps if s is not None)
    if not steps:
        return "no curve"
    never = len(steps) - len(got)
    if len(got) * 2 < len(steps) or not got:
        return f"never ({never}/{len(steps)})"
    return f"{int(np.median(got))}" + (f" ({never}/{len(steps)} never)" if never else "")


def measurement_sweeps(results: pd.DataFrame) -> list[str]:
    """The sweep ids that hold mixture runs (each a measurement with its own baselines)."""
    if results is None or not len(results) or "sweep_id" not in results.columns:
        return []
    src = results["source"].fillna("").astype(str)
    return sorted(results.loc[src.map(R.is_mixture), "sweep_id"].dropna().astype(str).unique())


def other_rows(results: pd.DataFrame) -> pd.DataFrame:
    """``results`` without the measurements' sweeps: the grid a headline is computed from (its seeds,
    device and regime stay its own)."""
    if results is None or not len(results) or "sweep_id" not in results.columns:
        return results
    return results[~results["sweep_id"].astype(str).isin(measurement_sweeps(results))]


def text_lines(table: pd.DataFrame) -> list[str]:
    """The measurement as plain text (``python -m core demo report``): one line per target and method."""
    if table is None or not len(table):
        return []
    out = ["\nseveral sources at once (core.mixreport; gains over the same sweep's scratch, same device):"]
    for r in table.itertuples():
        spread = f" ± {r.gain_spread * 100:.1f}" if math.isfinite(r.gain_spread) else ""
        noise = f"{r.noise * 100:.1f}%" if math.isfinite(r.noise) else "unknown"
        out.append(f"  {r.target:15s} {r.method:20s} acc {r.acc:.3f}  gain {r.gain * 100:+.1f}{spread}%  "
                   f"noise {noise}{'' if r.outside_noise else ' (inside)'}  head start (steps) {r.head_start}  "
                   f"[{fmt.count(int(r.runs), 'run')}; scratch {r.scratch_acc:.3f}]")
    av = averages(table)
    out.append("  mean over targets: " + ", ".join(f"{r.method} {r.mean_gain * 100:+.1f}%" for r in av.itertuples()))
    return out


def measurements(results: pd.DataFrame | None) -> pd.DataFrame:
    """One row per (target, method) of every measurement in ``results`` (see the module docstring):
    runs, test accuracy mean ± spread, gain over the sweep's own scratch (relative, mean ± spread over
    seeds), the target's noise band (scratch spread / mean, from this sweep's scratch seeds), whether
    |gain| is outside it, the head start (median over seeds; core.curves) and the oracle's source and
    gain (from the other rows). Empty (with COLUMNS) when there is none."""
    if results is None or not len(results) or "source" not in results.columns:
        return pd.DataFrame(columns=COLUMNS)
    from core import metrics  # torch-free (core.headline reads it the same way)
    M = metrics.measured
    df = R.finished_runs(results)
    mix_sweeps = measurement_sweeps(df)
    rest = other_rows(df)
    rows = []
    for sid in mix_sweeps:
        sweep = df[df["sweep_id"].astype(str) == sid]
        for target, part in sweep.groupby("target"):
            # the best single source by the ranking is the first member of *this target's* mixture (one
            # exported sweep id can hold every target's measurement)
            members = _mix_members(part[part["source"].fillna("").astype(str).map(R.is_mixture)])
            rows += _target_rows(part, target, members[0] if members else None, rest, sid, M)
    rank = {m: i for i, m in enumerate(ORDER)}
    rows.sort(key=lambda r: (r["target"], rank.get(r["method"], len(rank))))  # baselines first, then the mixtures
    return pd.DataFrame(rows, columns=COLUMNS)


def _oracle(rest: pd.DataFrame, target: str, M) -> tuple[str, float]:
    """The best mean PoT gain of a single source on ``target`` in the other rows (no self-transfer,
    no mixture): (source, gain), ('', nan) when none was measured."""
    part = rest[rest["target"] == target]
    if not len(part) or not (part["method"] == "pot").any() or not (part["method"] == R.BASELINE).any():
        return "", float("nan")
    try:
        col = M(part, method="pot").mean.get(target)
    except Exception:  # noqa: BLE001 -- no pairable runs: no oracle, said as such
        return "", float("nan")
    if col is None:
        return "", float("nan")
    col = col[[s for s in col.index if not R.is_mixture(s) and s != target]].dropna()
    if not len(col):
        return "", float("nan")
    return str(col.idxmax()), float(col.max())


def _target_rows(part: pd.DataFrame, target: str, best: str | None, rest: pd.DataFrame, sid: str, M) -> list[dict]:
    scratch = part[part["method"] == R.BASELINE]
    if not len(scratch):
        return []
    sc_acc = scratch["test_score"].astype(float)
    sc_curves = [curve_of(s) for s in scratch["settings"]]
    oracle_src, oracle_gain = _oracle(rest, target, M)
    out = []
    src = part["source"].fillna("").astype(str)
    for method in ("pot", "panda", "attempt"):
        if not (part["method"] == method).any():
            continue
        m = M(part, method=method)
        noise = float(m.noise.get(target, float("nan")))
        for source, g in m.runs.groupby("source"):
            if R.is_mixture(source):
                label = MIX_LABELS.get(method, f"{method} · mix")
            elif best is not None and source == best:
                label = SINGLE_POT if method == "pot" else SINGLE_PANDA if method == "panda" else method
            else:
                continue  # a teacher of the mixture (another member's PoT run): not a row of its own
            runs = part[(part["method"] == method) & (src == source)]
            hs = [head_start(curve_of(s), sc_curves) for s in runs["settings"]]
            gain = float(g["gain"].mean())
            out.append({
                "target": target, "method": label, "source": source, "runs": int(len(g)),
                "acc": float(g["test_score"].mean()),
                "acc_spread": float(g["test_score"].std(ddof=1)) if len(g) > 1 else float("nan"),
                "gain": gain, "gain_spread": float(g["gain"].std(ddof=1)) if len(g) > 1 else float("nan"),
                "noise": noise, "outside_noise": bool(math.isfinite(noise) and abs(gain) > noise),
                "head_start": _head_start_text([h.steps if h is not None else None for h in hs if h is not None]),
                "scratch_acc": float(sc_acc.mean()), "scratch_spread": float(sc_acc.std(ddof=1)) if len(sc_acc) > 1
                else float("nan"), "scratch_n": int(len(sc_acc)), "oracle_source": oracle_src,
                "oracle_gain": oracle_gain, "sweep_id": sid})
    return out


def averages(table: pd.DataFrame) -> pd.DataFrame:
    """Per method over the measured targets: targets, mean gain, how many are outside the noise band
    and how many beat the best single source by the same ranking (PoT) on that target; plus the
    oracle's mean gain over the same targets."""
    cols = ["method", "targets", "mean_gain", "outside_noise", "beats_single_pot"]
    if table is None or not len(table):
        return pd.DataFrame(columns=cols)
    single = table[table["method"] == SINGLE_POT].set_index("target")["gain"]
    rows = []
    for method in [m for m in ORDER if m in set(table["method"])]:
        t = table[table["method"] == method]
        beats = [g > single.get(tg, float("nan")) for tg, g in zip(t["target"], t["gain"])
                 if math.isfinite(single.get(tg, float("nan")))]
        rows.append({"method": method, "targets": int(len(t)), "mean_gain": float(t["gain"].mean()),
                     "outside_noise": int(t["outside_noise"].sum()),
                     "beats_single_pot": int(sum(beats)) if method != SINGLE_POT else None})
    orc = table.drop_duplicates("target")["oracle_gain"].dropna()
    if len(orc):
        rows.append({"method": "oracle · best measured single (grid)", "targets": int(len(orc)),
                     "mean_gain": float(orc.mean()), "outside_noise": None, "beats_single_pot": None})
    return pd.DataFrame(rows, columns=cols)


def summary_sentence(table: pd.DataFrame) -> str:
    """One sentence a stakeholder reads: the mixtures' mean gains beside the best single source's and
    the oracle's, over the targets measured ('' when nothing was)."""
    av = averages(table)
    if not len(av):
        return ""
    by = av.set_index("method")
    n = int(table["target"].nunique())

    def g(label):
        return f"{by.at[label, 'mean_gain']:+.1%}" if label in by.index else "not measured"
    parts = [f"{lab.split(' · ')[0]} {g(lab)}" for lab in MIX_LABELS.values() if lab in by.index]
    orc = [m for m in by.index if m.startswith("oracle")]
    return (f"Mixing the top sources, measured on {n} target(s) on one CPU: " + ", ".join(parts)
            + f" over scratch, against {g(SINGLE_POT)} for PoT and {g(SINGLE_PANDA)} for PANDA from the best single "
              f"source by the same ranking" + (f" (the grid's measured-best single source: {g(orc[0])}, a maximum of "
                                                 "noisy means on another device)" if orc else "") + ".")
