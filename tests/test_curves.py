"""Validation curves kept with results, and the head start (core.curves).

    .venv/bin/python -m pytest -q tests/test_curves.py
"""
from __future__ import annotations

import json

import pandas as pd
import pytest

from core.curves import curve_from_events, curve_of, head_start, pair_curves, pair_head_starts


def test_head_start_is_the_first_step_reaching_scratchs_final_mean():
    scratch = [[(0, 0.50), (50, 0.70), (100, 0.80)], [(0, 0.50), (50, 0.72), (100, 0.84)]]  # final mean 0.82
    h = head_start([(0, 0.60), (50, 0.81), (100, 0.83), (150, 0.90)], scratch)
    assert h.goal == pytest.approx(0.82) and h.steps == 100 and h.scratch_steps == 100
    assert "100 steps" in h.text()
    assert head_start([(0, 0.82)], scratch).steps == 0  # reached at the start: a full head start
    never = head_start([(0, 0.6), (100, 0.81)], scratch)
    assert never.steps is None and never.text().startswith("never")
    assert head_start([], scratch) is None and head_start([(0, .5)], [[]]) is None


def test_curve_from_store_events_and_back_from_settings():
    evs = [{"kind": "progress", "step": 1, "metrics": {"loss": 1.0}},
           {"kind": "eval", "step": 50, "metrics": {"val_score": 0.7}},
           {"kind": "eval", "step": 0, "metrics": {"val_score": 0.5}},
           {"kind": "eval", "step": 100, "metrics": {"val_score": float("nan")}}]
    c = curve_from_events(evs)
    assert c[:2] == [[0, 0.5], [50, 0.7]]
    assert curve_of(json.dumps({"val_curve": c})) == [(0, 0.5), (50, 0.7)]  # NaN dropped
    assert curve_of("not json") == [] and curve_of(None) == [] and curve_of({}) == []


def test_pair_curves_and_head_starts_on_a_fixture_table():
    def row(rid, method, source, seed, curve, target="t"):
        return {"run_id": rid, "method": method, "source": source, "target": target, "seed": seed,
                "settings": json.dumps({"val_curve": curve})}
    df = pd.DataFrame([
        row("s0", "scratch", "", 0, [[0, .5], [100, .80]]), row("s1", "scratch", "", 1, [[0, .5], [100, .84]]),
        row("other", "scratch", "", 0, [[0, .1], [100, .2]], target="u"),
        row("p0", "pot", "a", 0, [[0, .6], [50, .83], [100, .85]]),
        row("m0", "attempt", "mix top-3 (zs)", 0, [[0, .5], [50, .6], [100, .7]]),
    ])
    c = pair_curves(df, "a", "t")
    assert set(c["run_id"]) == {"s0", "s1", "p0"} and set(c["kind"]) == {"scratch", "transfer"}
    hs = pair_head_starts(c)
    assert list(hs["run_id"]) == ["p0"] and hs["head_start"].iloc[0] == 50 and hs["goal"].iloc[0] == pytest.approx(.82)
    m = pair_head_starts(pair_curves(df, "mix top-3 (zs)", "t"))
    assert m["head_start"].iloc[0] is None and m["text"].iloc[0].startswith("never")
