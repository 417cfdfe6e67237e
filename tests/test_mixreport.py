"""The multi-source measurement's table (core.mixreport) and the device pairing it relies on.

    .venv/bin/python -m pytest -q tests/test_mixreport.py
"""
from __future__ import annotations

import json

import pandas as pd
import pytest

from core import mixreport as X
from core.metrics.measured import measured

MIX = {"label": "mix top-3 (zs)", "members": ["a", "b", "c"], "weights": [0.5, 0.3, 0.2], "metric": "zs", "top": 3}


def _row(method, source, target, seed, score, *, sweep="s1", device="cpu", curve=None, mix=None):
    settings = {"val_curve": curve or [], **({"mix": mix} if mix else {})}
    return {"run_id": f"{sweep}-{method}-{source}-{target}-{seed}-{device}", "sweep_id": sweep, "method": method,
            "source": source, "target": target, "seed": seed, "steps": 150, "train_size": 128, "val_score": score,
            "test_score": score, "device": device, "status": "finished", "settings": json.dumps(settings)}


@pytest.fixture
def table():
    sc_curve = [[0, 0.5], [150, 0.70]]
    rows = [_row("scratch", "", "t", s, v, curve=sc_curve) for s, v in zip((0, 1, 2), (0.70, 0.72, 0.68))]
    rows += [_row("pot", "a", "t", 0, 0.77, curve=[[0, 0.6], [25, 0.71], [150, 0.8]]),
             _row("pot", "a", "t", 1, 0.79, curve=[[0, 0.6], [50, 0.71], [150, 0.8]]),
             _row("pot", "b", "t", 0, 0.60), _row("pot", "b", "t", 1, 0.62),  # a teacher: no row of its own
             _row("panda", "a", "t", 0, 0.71), _row("panda", "a", "t", 1, 0.73),
             _row("attempt", "mix top-3 (zs)", "t", 0, 0.84, mix=MIX, curve=[[0, 0.5], [100, 0.69]]),
             _row("attempt", "mix top-3 (zs)", "t", 1, 0.86, mix=MIX, curve=[[0, 0.5], [100, 0.69]]),
             _row("pot", "mix top-3 (zs)", "t", 0, 0.70, mix=MIX), _row("pot", "mix top-3 (zs)", "t", 1, 0.72, mix=MIX)]
    # the grid, on another device: its scratch is lower, so pairing across devices would inflate the gains
    rows += [_row("scratch", "", "t", s, 0.50, sweep="grid", device="cuda") for s in (0, 1, 2)]
    rows += [_row("pot", "x", "t", s, 0.60, sweep="grid", device="cuda") for s in (0, 1, 2)]
    rows += [_row("pot", "t", "t", s, 0.90, sweep="grid", device="cuda") for s in (0, 1, 2)]  # self: never the oracle
    return pd.DataFrame(rows)


def test_runs_meet_the_scratch_of_their_own_device(table):
    m = measured(table, method="pot")
    r = m.runs.set_index(["source", "seed"])
    # cpu pot a seed 0 (0.77) meets cpu scratch seed 0 (0.70), not the mean with cuda's 0.50
    assert r.loc[("a", 0), "scratch"] == pytest.approx(0.70)
    assert r.loc[("a", 0), "gain"] == pytest.approx(0.07 / 0.70)
    assert r.loc[("x", 0), "scratch"] == pytest.approx(0.50)


def test_measurement_rows_and_values(table):
    t = X.measurements(table).set_index("method")
    assert set(t.index) == {X.SINGLE_POT, X.SINGLE_PANDA, X.MIX_LABELS["attempt"], X.MIX_LABELS["pot"]}
    att = t.loc[X.MIX_LABELS["attempt"]]
    gains = [(0.84 - 0.70) / 0.70, (0.86 - 0.72) / 0.72]
    assert att["gain"] == pytest.approx(sum(gains) / 2)
    assert att["runs"] == 2 and att["acc"] == pytest.approx(0.85)
    assert att["scratch_acc"] == pytest.approx(0.70) and att["scratch_n"] == 3
    noise = pd.Series([0.70, 0.72, 0.68]).std(ddof=1) / 0.70
    assert att["noise"] == pytest.approx(noise) and bool(att["outside_noise"])
    # never reaches scratch's final validation 0.70 (its curve tops at 0.69)
    assert att["head_start"].startswith("never")
    pot = t.loc[X.SINGLE_POT]
    assert pot["source"] == "a" and pot["head_start"] == "37"  # median of 25 and 50, floored
    # the oracle: the grid's best single non-self source (x, +20% over the grid's own scratch)
    assert att["oracle_source"] == "x" and att["oracle_gain"] == pytest.approx(0.2)
    # spot from a mix whose gain sits inside the noise band is said to be inside it
    spot = t.loc[X.MIX_LABELS["pot"]]
    assert spot["gain"] == pytest.approx(0.0) and not bool(spot["outside_noise"])


def test_averages_and_sentence(table):
    tab = X.measurements(table)
    av = X.averages(tab).set_index("method")
    assert av.at[X.MIX_LABELS["attempt"], "beats_single_pot"] == 1
    assert av.at[X.MIX_LABELS["pot"], "beats_single_pot"] == 0
    assert av.at["oracle · best measured single (grid)", "mean_gain"] == pytest.approx(0.2)
    s = X.summary_sentence(tab)
    att = tab.set_index("method").at[X.MIX_LABELS["attempt"], "gain"]
    assert f"attempt {att:+.1%}" in s and "1 target(s)" in s


def test_no_measurement_is_an_empty_table():
    assert X.measurements(None).empty and X.summary_sentence(X.measurements(None)) == ""


def test_home_multisource_numbers_equal_the_results_table(monkeypatch):
    """Home's multi-source table on the committed demo, recomputed here with plain loops from results.csv:
    each method's mean gain over the same sweep's scratch of the same seed (one CPU)."""
    import math

    from streamlit.testing.v1 import AppTest

    from core.config import REPO_ROOT
    from core.demo.multisource import SWEEP_ID
    from core.results import read_rows
    demo = REPO_ROOT / "data" / "demo"
    rows = [r for r in read_rows(demo / "results.csv") if r["sweep_id"] == SWEEP_ID and r["status"] == "finished"]
    assert rows, "the committed demo holds the multi-source measurement (python -m core demo multisource --export)"
    scratch = {(r["target"], r["seed"]): float(r["test_score"]) for r in rows if r["method"] == "scratch"}
    best = {}
    for r in rows:
        if r["source"].startswith("mix "):
            best[r["target"]] = json.loads(r["settings"])["mix"]["members"][0]
    want = {}
    for r in rows:
        t, m, src = r["target"], r["method"], r["source"]
        if m == "scratch" or (t, r["seed"]) not in scratch:
            continue
        if src.startswith("mix "):
            label = X.MIX_LABELS[m]
        elif src == best.get(t) and m in ("pot", "panda"):
            label = X.SINGLE_POT if m == "pot" else X.SINGLE_PANDA
        else:
            continue
        sc = scratch[(t, r["seed"])]
        want.setdefault((t, label), []).append((float(r["test_score"]) - sc) / sc)
    monkeypatch.setenv("ATLAS_DEMO", str(demo))
    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=180).run()
    assert not at.exception, [e.value for e in at.exception]
    shown = next(d for d in at.dataframe if d.key == "home_multisource" or "head start" in d.value.columns).value
    got = {(r.target, r.method): r.gain for r in shown.itertuples()}
    assert set(got) == set(want)
    for k, gains in want.items():
        assert math.isclose(got[k], round(100 * sum(gains) / len(gains), 1), abs_tol=0.051), (k, got[k], gains)
    md = "\n".join(m.value for m in at.markdown)
    att = [g for (t, lab), gs in want.items() if lab == X.MIX_LABELS["attempt"] for g in [sum(gs) / len(gs)]]
    assert f"attempt {sum(att) / len(att):+.1%}" in md


def test_each_target_reads_its_own_mixtures_members(table):
    """One exported sweep id holds every target's measurement: the best single source is the first member of
    that target's mixture, not of the first target's (found on the demo: sent_product read sent_movie's)."""
    other = MIX | {"members": ["x", "a", "b"]}
    more = [_row("scratch", "", "u", s, 0.5) for s in (0, 1)]
    more += [_row("pot", "a", "u", s, 0.9) for s in (0, 1)] + [_row("pot", "x", "u", s, 0.6) for s in (0, 1)]
    more += [_row("attempt", "mix top-3 (zs)", "u", s, 0.7, mix=other) for s in (0, 1)]
    t = X.measurements(pd.concat([table, pd.DataFrame(more)], ignore_index=True)).set_index(["target", "method"])
    assert t.at[("t", X.SINGLE_POT), "source"] == "a" and t.at[("u", X.SINGLE_POT), "source"] == "x"
    assert t.at[("u", X.SINGLE_POT), "gain"] == pytest.approx(0.2)
