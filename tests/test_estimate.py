"""core.estimate: the regime of a measured cell, and a run's estimated duration from recent runs.

    .venv/bin/python -m pytest tests/test_estimate.py -q
"""
from __future__ import annotations

import json

import pandas as pd
import pytest

from core.estimate import Regime, estimate_duration, estimate_for, measured_regime
from core.prompts import DEFAULT_BACKBONE as MINILM

from core.runs.store import RESULTS_COLUMNS  # noqa: E402  (the one column list)


def _res(rows) -> pd.DataFrame:
    full = [{**{c: None for c in RESULTS_COLUMNS}, "status": "finished", "seed": 0, **r} for r in rows]
    return pd.DataFrame(full, columns=RESULTS_COLUMNS)


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    """A calibration cached by another test or a page of this machine must not answer here."""
    monkeypatch.setenv("ATLAS_CACHE", str(tmp_path / "cache"))


DEMO_SETTINGS = json.dumps({"batch_size": 16, "eval_every": 25, "lr": 0.03, "max_length": 128, "prompt_length": 20,
                            "lambda_mode": "metric", "teacher_mode": "pot", "head": "verbalizer"})


def test_measured_regime_is_the_cells_own():
    res = _res([
        {"method": "scratch", "source": "", "target": "sent_tweet", "steps": 150, "train_size": 128},
        {"method": "panda", "source": "sent_product", "target": "sent_tweet", "steps": 150, "train_size": 128,
         "settings": DEMO_SETTINGS},
        {"method": "panda", "source": "sent_product", "target": "sent_tweet", "steps": 150, "train_size": 128,
         "seed": 1, "settings": DEMO_SETTINGS},
        # one later run in another regime (store settings: spec with params): outvoted two to one
        {"method": "panda", "source": "sent_product", "target": "sent_tweet", "steps": 20, "train_size": None,
         "settings": json.dumps({"params": {"steps": 20, "lr": 0.1}})},
        {"method": "pot", "source": "sent_product", "target": "sent_tweet", "steps": 20, "train_size": None},
        {"method": "panda", "source": "sent_product", "target": "sent_tweet", "steps": 999, "status": "failed"},
    ])
    r = measured_regime(res, "sent_product", "sent_tweet", method="panda")
    assert (r.steps, r.train_size, r.lr, r.eval_every, r.n_runs) == (150, 128, 0.03, 25, 2)
    assert r.extra == {"batch_size": 16, "max_length": 128, "prompt_length": 20, "head": "verbalizer"}
    # issue 23: the method's own settings travel too, so a prefilled run is the run that was measured
    assert r.method == {k: v for k, v in json.loads(DEMO_SETTINGS).items()
                        if k in ("teacher_mode", "lambda_mode", "beta", "metric_value", "student_init")}
    assert r.method and Regime.from_query(r.to_query())[0].method == r.method
    assert r.describe() == "150 steps on 128 training examples"
    # the pot runs of the cell were 20 steps on all data
    p = measured_regime(res, "sent_product", "sent_tweet", method="pot")
    assert (p.steps, p.train_size, p.lr) == (20, None, None) and p.describe() == "20 steps on all training data"
    assert measured_regime(res, "generic", "sent_tweet") is None
    assert measured_regime(_res([]), "a", "b") is None


def test_regime_round_trips_through_a_link_and_bad_values_are_named():
    r = Regime(150, 128, 0.03, 25, {"batch_size": 16}, n_runs=2)
    back, problems = Regime.from_query(r.to_query())
    assert problems == [] and back == Regime(150, 128, 0.03, 25, {"batch_size": 16})
    back, problems = Regime.from_query({"steps": "40", "train_size": "-3", "lr": "fast", "params": '{"kd_lambda": 1}'})
    assert back == Regime(40) and problems == ["train_size='-3' is not a whole number ≥ 0",
                                               "lr='fast' is not a learning rate",
                                               "params kd_lambda are not budget settings (prompt_length, batch_size, "
                                               "max_length, head, init, pool, val_size, test_size, lm_head, label_words, lm_scoring)"]
    assert Regime.from_query({"steps": "0"}) == (None, ["steps='0' is not a whole number ≥ 1"])
    assert Regime.from_query({"train_size": "10"}) == (None, ["train_size='10' without steps"])
    assert Regime.from_query({}) == (None, [])


def _run(wall, steps, device="cpu", backbone=None, status="finished"):
    return {"status": status, "device": device, "wall_time_s": wall, "step": steps,
            "spec": {"backbone": backbone, "params": {"steps": steps}}}


def test_estimate_from_recent_runs_of_that_backbone_on_that_device():
    runs = [_run(10.0, 100), _run(30.0, 100), _run(20.0, 100, device="cuda:0"),  # newest first
            _run(5.0, 50, backbone="roberta-base"), _run(1.0, 100, status="failed"), _run(None, 100),
            _run(40.0, 100)]
    e = estimate_duration(runs, 300, None, "cpu")
    # cpu MiniLM finished runs: 0.1, 0.3, 0.4 s/step -> median 0.3 -> 90 s for 300 steps
    assert (e.seconds, e.s_per_step, e.n_runs, e.backbone) == (pytest.approx(90.0), pytest.approx(0.3), 3, MINILM)
    assert e.text() == ("Estimated duration: ≈ 1.5 min per run (0.3 s/step, median of the last 3 finished run(s) "
                        "of all-MiniLM-L6-v2 on cpu)")
    assert estimate_duration(runs, 300, None, "cpu", recent=2).seconds == pytest.approx(60.0)
    assert estimate_duration(runs, 10, None, "cuda").seconds == pytest.approx(2.0)
    assert estimate_duration(runs, 10, "roberta-base", "cpu").s_per_step == pytest.approx(0.1)
    u = estimate_duration(runs, 300, "t5-base", "cpu")
    assert u.seconds is None and u.text() == ("Estimated duration: unknown — no finished run of t5-base on cpu yet "
                                              "(the first run sets the pace).")


def test_estimate_reads_the_run_store():
    from core.runs.store import RunStore

    store = RunStore()
    assert estimate_for(store, 100, None, "cpu").seconds is None  # before the first run
    store.add_run("r-a", {"method": "scratch", "target": "sent_tweet", "params": {"steps": 40}, "device": "cpu"})
    store.update_run("r-a", status="finished", step=40, wall_time_s=8.0, device="cpu")
    e = estimate_for(store, 100, None, "cpu")
    assert e.seconds == pytest.approx(20.0) and e.n_runs == 1


def test_a_sweeps_total_counts_its_waves():
    """Issue 23: the total before launch = waves of `slots` runs, teachers before PANDA students."""
    from types import SimpleNamespace

    from core.estimate import Estimate, sweep_text, sweep_total_s, sweep_waves
    planned = [SimpleNamespace(deps=[]) for _ in range(6)] + [SimpleNamespace(deps=["t"]) for _ in range(3)]
    assert sweep_waves(planned) == (6, 3)
    assert sweep_total_s(6, 3, 100.0, 2) == 500.0          # ceil(6/2) + ceil(3/2) = 5 waves
    assert sweep_total_s(6, 3, 100.0, 1) == 900.0 and sweep_total_s(6, 3, None, 2) is None
    est = Estimate(240.0, 0.8, 3, MINILM, "cpu")
    assert sweep_text(planned, est, 1) == ("9 runs (6 first, then 3 PANDA students once their teachers finish), "
                                           "1 at a time on cpu: ≈ 36.0 min in all (≈ 4.0 min per run, from finished runs here).")
    assert "total unknown" in sweep_text(planned, Estimate(None, None, 0, MINILM, "cpu"), 1)


def test_calibration_is_timed_once_and_named(monkeypatch):
    """Issue 23: before any finished run, the estimate is a timed calibration, cached (a second ask does not
    time again) and keyed by backbone, device and max_length; the text says where it comes from."""
    from core import estimate as E
    from core.runs.store import RunStore
    from core.training import calibrate as C

    calls = []

    def fake(backbone, device, **kw):
        calls.append((backbone, device, kw["max_length"]))
        return {"s_per_step": 0.5, "load_s": 4.0, **kw}
    monkeypatch.setattr(C, "time_steps", fake)
    store = RunStore()
    assert E.estimate_for(store, 100, None, "cpu").why == E.NOT_CALIBRATED  # a page's read never times
    assert calls == []
    e = E.estimate_for(store, 100, None, "cpu", calibrate=True)
    assert calls == [(MINILM, "cpu", 128)]
    assert (e.seconds, e.basis) == (pytest.approx(54.0), "calibration")  # 4 s load + 100 × 0.5 s
    assert e.text() == ("Estimated duration: ≈ 54 s per run, from a timed calibration of all-MiniLM-L6-v2 on cpu "
                        "(0.5 s/step over 2 prompt-tuning steps of batch 16 × 128 tokens, + 4.0 s to load; "
                        "evaluations not included). The first finished run here replaces it.")
    again = E.estimate_for(store, 300, None, "cpu", calibrate=True)
    assert calls == [(MINILM, "cpu", 128)] and again.seconds == pytest.approx(154.0)   # cached: not timed again
    E.estimate_for(store, 300, None, "cpu", max_length=64, calibrate=True)
    assert calls[-1] == (MINILM, "cpu", 64)                                             # another key
    assert E.calibration_path(None, "cpu") != E.calibration_path(None, "cuda")
    E.calibration_path(None, "cpu").write_text("{not json")                            # a broken file: timed again
    E.estimate_for(store, 300, None, "cpu", calibrate=True)
    assert len(calls) == 3
    store.add_run("r-a", {"method": "scratch", "target": "sent_tweet", "params": {"steps": 40}, "device": "cpu"})
    store.update_run("r-a", status="finished", step=40, wall_time_s=8.0, device="cpu")
    assert E.estimate_for(store, 100, None, "cpu").basis == "runs"                     # a finished run wins


def test_calibration_that_cannot_load_says_why(monkeypatch):
    from core import estimate as E
    from core.runs.store import RunStore
    e = E.estimate_for(RunStore(), 100, "no-such/model-xyz", "cpu", calibrate=True)
    assert e.seconds is None and "the calibration could not run" in e.text()


def test_calibration_times_real_steps():
    """The real timing code on the bundled MiniLM (tiny shape: the CPU is shared)."""
    from core.training.calibrate import time_steps
    rec = time_steps(None, "cpu", max_length=8, batch_size=2, prompt_length=2, steps=1)
    assert rec["s_per_step"] > 0 and rec["load_s"] >= 0 and rec["max_length"] == 8


def test_a_running_sweeps_eta():
    """Issue 23: ETA = open runs in waves of `slots`, students waiting on an open teacher after."""
    from core.estimate import sweep_eta_s
    runs = [{"run_id": "s0", "status": "finished"}, {"run_id": "s1", "status": "running"},
            {"run_id": "p0", "status": "queued"}, {"run_id": "p1", "status": "queued"},
            {"run_id": "k0", "status": "queued", "depends_on": ["p0"]},
            {"run_id": "k1", "status": "queued", "depends_on": ["s0"]},   # its teacher finished: can run now
            {"run_id": "x", "status": "failed"}]
    assert sweep_eta_s(runs, 100.0, 2) == 300.0   # 4 runnable -> 2 waves, 1 student -> 1 wave
    assert sweep_eta_s(runs, 100.0, 4) == 200.0
    assert sweep_eta_s(runs, None, 2) is None
    assert sweep_eta_s([{"run_id": "a", "status": "finished"}], None, 2) == 0.0


def test_sweep_eta_text_reads_the_store(monkeypatch):
    from core.estimate import sweep_eta_text
    from core.runs.store import RunStore
    monkeypatch.setenv("ATLAS_CPU_SLOTS", "1")
    store = RunStore()
    for i, st_ in enumerate(["finished", "queued", "queued"]):
        store.add_run(f"r{i}", {"method": "scratch", "target": "sent_tweet", "params": {"steps": 40},
                                "device": "cpu"}, sweep_id="sw1")
        store.update_run(f"r{i}", status=st_, device="cpu", **({"step": 40, "wall_time_s": 8.0} if st_ == "finished" else {}))
    sweep = {"sweep_id": "sw1", "spec": {"params": {"steps": 300}, "device": "cpu"}}
    assert sweep_eta_text(store, sweep) == "≈ 2.0 min"   # 2 left × 60 s (0.2 s/step × 300), one at a time
