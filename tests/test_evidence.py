"""The evidence rules (core.evidence, issue 23) on a fixture results table, the chance levels against
brute force, and the committed demo on Home and in the CLI (the same marks)."""
from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from core import evidence as E
from core.config import REPO_ROOT
from core.headline import demo_evidence

TARGETS = ["low", "gen", "zero", "ok"]
SOURCES = ["low", "gen", "zero", "ok", "rel", "generic"]


def fixture_table() -> pd.DataFrame:
    """4 targets x 6 sources, pot, 3 seeds:
    - `low`: scratch 0.45 on a test split whose majority rate is 0.55 (below majority: not measurable);
    - `gen`: `rel` gains +10% but `generic` gains +12%: the control is best (not evidence);
    - `zero`: scratch scores 1.0, 1.0, 1.0 (zero spread: noise unknown, and at the ceiling);
    - `ok`: scratch 0.60/0.62/0.58 (band ~3.3%); `rel` +15% on every seed, `generic` +2% -> evidence;
      `zero` -> `ok`'s run on seed 1 kept its initial prompt (best_step 0), all its other seeds too.
    Self-transfer cells: a source named like its target."""
    rows = []
    scratch = {"low": [0.45, 0.44, 0.46], "gen": [0.70, 0.72, 0.68], "zero": [1.0, 1.0, 1.0],
               "ok": [0.60, 0.62, 0.58]}
    maj = {"low": 0.55, "gen": 0.5, "zero": 0.5, "ok": 0.5}
    gain = {("rel", "gen"): 0.10, ("generic", "gen"): 0.12, ("rel", "ok"): 0.15, ("generic", "ok"): 0.02,
            ("ok", "ok"): 0.20, ("zero", "ok"): 0.30}
    for t in TARGETS:
        for sd in range(3):
            base = scratch[t][sd]
            rows.append(dict(run_id=f"sc-{t}-{sd}", method="scratch", source="", target=t, seed=sd, test_score=base,
                             majority_rate=maj[t], test_n=400, flags="clean"))
            for s in SOURCES:
                g = gain.get((s, t), 0.0)
                flags = E.flags_text([E.FLAG_KEPT_INIT]) if (s, t) == ("zero", "ok") else "clean"
                rows.append(dict(run_id=f"pot-{s}-{t}-{sd}", method="pot", source=s, target=t, seed=sd,
                                 test_score=min(1.0, base * (1 + g)), majority_rate=maj[t], test_n=400, flags=flags))
    df = pd.DataFrame(rows)
    df["status"], df["steps"], df["train_size"] = "finished", 100, 128
    return df


TASKS = {s: s for s in SOURCES}


def test_measurable_targets():
    ts = E.target_stats(fixture_table())
    assert not ts.at["low", "measurable"] and "majority rate 0.550" in ts.at["low", "why"]
    assert not ts.at["zero", "measurable"] and "ceiling" in ts.at["zero", "why"]
    assert ts.at["ok", "measurable"] and ts.at["gen", "measurable"]
    assert math.isnan(ts.at["zero", "noise"])                       # identical seeds: unknown, never 0
    assert ts.at["ok", "noise"] == pytest.approx(np.std([0.6, 0.62, 0.58], ddof=1) / 0.6)
    assert ts.at["ok", "se"] == pytest.approx(math.sqrt(0.5 * 0.5 / 400))


def test_issue_numbers_party_speech_is_not_measurable():
    """.579 ± .014 against a majority of .570 on 500 rows: sampling error .022 > the margin."""
    rows = [dict(run_id=f"s{i}", method="scratch", source="", target="party_speech", seed=i, test_score=v,
                 majority_rate=0.570, test_n=500) for i, v in enumerate([0.566, 0.594, 0.576])]
    ts = E.target_stats(pd.DataFrame(rows))
    assert ts.at["party_speech", "se"] == pytest.approx(0.0221, abs=1e-4)
    assert not ts.at["party_speech", "measurable"]


def test_cell_marks_and_headline():
    ev = E.evidence(fixture_table(), method="pot", prompt_tasks=TASKS)
    assert ev.mark("rel", "ok") == E.EVIDENCE
    assert ev.mark("ok", "ok") == E.SELF                       # +20% but a self-transfer
    assert ev.mark("generic", "ok") == E.GENERIC
    assert ev.mark("rel", "gen") == E.NOT_ABOVE_GENERIC        # +10% but generic has +12%
    assert ev.mark("rel", "low") == E.NOT_MEASURABLE
    assert ev.mark("rel", "zero") == E.NOT_MEASURABLE          # at the ceiling (band unknown too)
    assert ev.mark("zero", "ok") == E.FLAGGED                  # every run kept its initial prompt
    assert ev.n_evidence == 1
    # tested = non-self, non-generic cells of measurable targets with a known band, not flagged
    assert ev.n_tested == 4 + 3          # gen: low, zero, ok, rel; ok: low, gen, rel
    assert ev.chance == pytest.approx(7 * 0.5 * math.erfc(math.sqrt(3 / 2) / math.sqrt(2)))
    best = ev.best.set_index("target")
    assert best.at["gen", "source"] == "rel"                    # generic is never the "best source"
    assert best.at["ok", "source"] == "rel"                     # not the self-transfer, not the flagged run


def test_zero_spread_noise_is_unknown_not_zero():
    df = fixture_table()
    df.loc[df["target"] == "zero", "test_score"] *= 0.8            # below the ceiling, seeds still identical
    ev = E.evidence(df, method="pot", prompt_tasks=TASKS)
    assert ev.mark("rel", "zero") == E.NOISE_UNKNOWN
    from core.metrics import measured
    assert math.isnan(measured(df, method="pot").noise["zero"])


def test_flagged_runs_are_not_averaged_as_clean():
    df = fixture_table()
    # one of rel -> ok's seeds kept its initial prompt and scored scratch: the cell averages the clean two
    df.loc[df["run_id"] == "pot-rel-ok-1", ["test_score", "flags"]] = [0.62, E.FLAG_KEPT_INIT]
    ev = E.evidence(df, method="pot", prompt_tasks=TASKS)
    assert ev.gain.at["rel", "ok"] == pytest.approx(0.15)
    assert ev.mark("rel", "ok") == E.EVIDENCE


def test_run_flags():
    assert E.run_flags(best_step=0, history=[{"step": 0, "val_score": 1.0}], val_counts=[3, 17],
                       nonfinite_loss=True) == [E.FLAG_KEPT_INIT, E.FLAG_VAL_SATURATED, E.FLAG_SMALL_VAL,
                                                E.FLAG_NONFINITE]
    assert E.run_flags(best_step=50, history=[{"step": 0, "val_score": 0.5}], val_counts=[30, 30],
                       nonfinite_loss=False) == []
    assert E.flags_text([]) == "clean" and not E.is_flagged("clean") and not E.is_flagged("not recorded")
    assert E.is_flagged(E.flags_text([E.FLAG_KEPT_INIT]))


def test_worker_stores_sanity_flags_and_the_store_reads_them(tmp_path):
    """A finished run's flags travel in its final event and come back in the results table."""
    from types import SimpleNamespace

    from core.runs.store import RunStore
    from core.runs.worker import Worker, record_final
    store = RunStore(tmp_path / "runs.db")
    spec = {"method": "pot", "target": "no_such_task", "seed": 0, "source_names": ["a"], "params": {"steps": 10}}
    store.add_run("r1", spec)
    store.set_status("r1", "running")
    w = Worker.__new__(Worker)
    w.spec, w.nonfinite_loss = SimpleNamespace(target="no_such_task"), False
    info = w.sanity(SimpleNamespace(best_step=0, history=[{"step": 0, "val_score": 1.0}]))
    assert info["flags"] == f"{E.FLAG_KEPT_INIT}; {E.FLAG_VAL_SATURATED}"
    record_final(store, "r1", {"status": "finished", "val_score": 1.0, "test_score": 0.925, **info})
    row = store.results_table(status=("finished",)).iloc[0]
    assert row["flags"] == info["flags"] and E.is_flagged(row["flags"])
    store.add_run("r2", spec)
    store.set_status("r2", "running")
    record_final(store, "r2", {"status": "finished", "val_score": 0.5, "test_score": 0.5})  # an old run: no flags
    assert store.results_table(status=("finished",)).set_index("run_id").at["r2", "flags"] == "not recorded"


def test_held_out_best_source_picks_on_seed_0_and_reports_the_others():
    rows = []
    for sd in range(3):
        rows += [dict(source="lucky", target="t", seed=sd, gain=[0.30, -0.05, -0.03][sd]),
                 dict(source="steady", target="t", seed=sd, gain=[0.10, 0.09, 0.11][sd]),
                 dict(source="t", target="t", seed=sd, gain=0.5)]          # self-transfer: never picked
    best = E.held_out_best(pd.DataFrame(rows), prompt_tasks={"t": "t"}).set_index("target")
    assert best.at["t", "source"] == "lucky" and best.at["t", "picked_gain"] == pytest.approx(0.30)
    assert best.at["t", "held_out_gain"] == pytest.approx(-0.04)              # the seed-0 winner loses
    best2 = E.held_out_best(pd.DataFrame(rows), prompt_tasks={"t": "t"}, pick_seeds=[1]).set_index("target")
    assert best2.at["t", "source"] == "steady" and best2.at["t", "held_out_gain"] == pytest.approx(0.105)


def _small_case(seed: int = 3):
    rng = np.random.default_rng(seed)
    src, tgts = ["a", "b", "c", "d"], ["t1", "t2"]
    meas = pd.DataFrame(rng.normal(size=(4, 2)), index=src, columns=tgts)
    pred = {"m1": meas + rng.normal(scale=0.5, size=(4, 2)), "m2": pd.DataFrame(rng.normal(size=(4, 2)), index=src,
                                                                               columns=tgts)}
    return pred, meas


def test_best_of_metrics_p_against_brute_force():
    pred, meas = _small_case()
    # brute force: every pair of within-target permutations (24 x 24), best mean rho over both metrics
    obs = max(np.mean([spearmanr(pred[m][t], meas[t]).statistic for t in meas]) for m in pred)
    null = []
    for p1, p2 in itertools.product(itertools.permutations(range(4)), repeat=2):
        y = {"t1": meas["t1"].to_numpy()[list(p1)], "t2": meas["t2"].to_numpy()[list(p2)]}
        null.append(max(np.mean([spearmanr(pred[m][t], y[t]).statistic for t in meas]) for m in pred))
    p_brute = float(np.mean(np.array(null) >= obs - 1e-12))
    exact = E.best_of_metrics_p(pred, meas, exact=True)
    assert exact["best_rho"] == pytest.approx(obs)
    assert exact["p"] == pytest.approx(p_brute)
    mc = E.best_of_metrics_p(pred, meas, n_perm=20000, seed=1)
    assert mc["p"] == pytest.approx(p_brute, abs=0.02)
    # the best of two metrics is harder to beat than one metric alone: its p is never smaller
    one = E.best_of_metrics_p({exact["best"]: pred[exact["best"]]}, meas, exact=True)
    assert exact["p"] >= one["p"]


def test_random_top_k_and_seed_ceiling():
    assert E.random_top_k([10, 10, 5], 3) == pytest.approx((0.3 + 0.3 + 0.6) / 3)
    rows = []
    for sd, gains in enumerate([[0.1, 0.2, 0.3, 0.4], [0.1, 0.3, 0.2, 0.4], [0.2, 0.1, 0.3, 0.4]]):
        rows += [dict(source=s, target="t", seed=sd, gain=g) for s, g in zip("abcd", gains)]
    ceiling = E.seed_ceiling(pd.DataFrame(rows))
    assert ceiling == pytest.approx(spearmanr([0.1, 0.2, 0.3, 0.4], [0.15, 0.2, 0.25, 0.4]).statistic)


# --------------------------------------------------------------------------- the committed demo
DEMO = REPO_ROOT / "data" / "demo"


def _demo_or_skip():
    if not (DEMO / "results.csv").is_file():
        pytest.skip("data/demo/results.csv not built yet (make demo)")


def test_demo_numbers_of_the_issue():
    """The issue's numbers are the grid's (an H200, 3 seeds): read without the CPU multi-source measurement."""
    _demo_or_skip()
    from core.headline import load_prompt_tasks, load_results
    from core.mixreport import other_rows
    ev = E.evidence(other_rows(load_results(DEMO)), method="pot", prompt_tasks=load_prompt_tasks(DEMO))
    assert set(ev.targets.index[~ev.targets["measurable"].astype(bool)]) == {"party_parliament", "party_speech"}
    best = ev.best.set_index("target")
    assert best.at["party_parliament", "picked_gain"] == pytest.approx(0.323, abs=5e-4)
    assert best.at["party_parliament", "held_out_gain"] == pytest.approx(0.078, abs=5e-4)
    assert best.at["question_type", "picked_gain"] == pytest.approx(0.061, abs=5e-4)
    assert best.at["question_type", "held_out_gain"] == pytest.approx(-0.019, abs=5e-4)
    assert ev.mark("question_type", "question_type") == E.SELF


def test_home_on_the_committed_demo_and_the_cli_give_the_same_marks(monkeypatch):
    """Home: party_parliament not measurable and out of the aggregates, the validation sentence states
    its chance level and the seed ceiling, every summary number recomputed here; the CLI's report
    prints the same marks as Home's best-source table."""
    _demo_or_skip()
    from streamlit.testing.v1 import AppTest

    from core.headline import headline, report
    monkeypatch.setenv("ATLAS_DEMO", str(DEMO))
    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=180).run()
    assert not at.exception, [e.value for e in at.exception]
    md = "\n".join(m.value for m in at.markdown)
    ev = demo_evidence(DEMO)
    # not measurable, and said why
    assert "**Not measurable at this budget:** `party_parliament`, `party_speech`" in md
    # evidence vs chance, computed here from the results table
    assert f"{ev.n_evidence} of {ev.n_tested} source → target cells" in md
    assert f"about {ev.chance:.1f} would pass by chance" in md
    # the held-out mean leaves the not-measurable targets out
    best = ev.best[ev.best["target"].isin(ev.measurable())]
    from core import fmt
    assert f"mean held-out gain {fmt.gain(best['held_out_gain'].mean())} over the 8 measurable targets" in md
    # the validation sentence: chance level and seed ceiling, recomputed
    from core import metrics as M
    from core.headline import load_matrices, load_prompt_tasks, load_results, single_sources
    pot = M.measured(single_sources(load_results(DEMO)), method="pot")  # a mixture is no source (its own table)
    vc = E.validation_chance(load_matrices(DEMO), pot.mean, pot.runs, source_task=load_prompt_tasks(DEMO))
    assert f"Best predictor: {vc.best}, mean ρ = {vc.best_rho:.2f}" in md
    assert f"against {vc.random_top_k:.0%} for a random top 3" in md and f"permutation p = {vc.p:.3f}" in md
    assert f"at mean ρ = {vc.ceiling:.2f}" in md
    # the best-source table marks the not-measurable and the generic-beaten rows, like the CLI
    table = next(d for d in at.dataframe if "held-out" in d.value.columns).value.set_index("target")
    mark_of = {sym: m for m, sym in E.MARK_SYMBOL.items()}  # the column shows the symbol, its help the words
    assert mark_of[table.at["party_parliament", "mark"]] == E.NOT_MEASURABLE
    assert "generic" not in set(table["source"])
    text = report(DEMO)
    for t, row in table.iterrows():
        line = next(ln for ln in text.splitlines() if ln.strip().startswith(t) and "held out" in ln)
        assert f"<- {row['source']}" in line and line.endswith(f"[{mark_of[row['mark']]}]"), line
    assert headline(DEMO).n_evidence == ev.n_evidence


def test_transferability_draws_self_transfer_apart_and_marks_cells(tmp_path, monkeypatch):
    """Measured heatmap of the committed demo: self-transfer cells greyed and out of the colour range,
    every other mark written in its cell as core.evidence says, the hover gives absolute numbers."""
    _demo_or_skip()
    import base64

    from streamlit.testing.v1 import AppTest
    monkeypatch.setenv("ATLAS_DEMO", str(DEMO))
    monkeypatch.setenv("ATLAS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ATLAS_CACHE", str(tmp_path / "cache"))
    at = AppTest.from_file(str(REPO_ROOT / "pages" / "transferability.py"), default_timeout=240)
    at.query_params["col"] = "demo"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="tr_metric").value == "measured"
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    heat = next(t for t in spec["data"] if t["type"] == "heatmap")
    yax = spec["layout"]["yaxis" + heat.get("yaxis", "y")[1:]]
    xax = spec["layout"]["xaxis" + heat.get("xaxis", "x")[1:]]
    rows, cols = yax["ticktext"], xax["ticktext"]

    def nums(v):
        if isinstance(v, dict) and "bdata" in v:
            return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"])).astype(float)
        return np.asarray(v, dtype=float)

    selfs = next(t for t in spec["data"] if t.get("name") == E.SELF)
    drawn = {(rows[int(round(y))], cols[int(round(x))]) for x, y in zip(nums(selfs["x"]), nums(selfs["y"]))}
    assert ("question_type", "question_type") in drawn and len(drawn) == 10
    ev = demo_evidence(DEMO)
    off = [ev.gain.at[s, t] for s in ev.gain.index for t in ev.gain.columns
           if ev.mark(s, t) not in ("", E.SELF)]
    assert heat["zmax"] == pytest.approx(max(abs(v) for v in off))   # self-transfer cells do not set the scale
    marks = next(t for t in spec["data"] if t.get("name") == "evidence marks")
    assert marks["text"].count(E.MARK_SYMBOL[E.EVIDENCE]) == ev.n_evidence
    cells = next(t for t in spec["data"] if t.get("name") == "cells")
    hover = dict(zip([tuple(c[:2]) for c in cells["customdata"]], cells["text"]))
    assert hover[("party_tweet", "party_parliament")] == E.cell_text(ev, "party_tweet", "party_parliament")
    assert "majority 0.532" in hover[("party_tweet", "party_parliament")]

    # item 7: the side-by-side's predicted side follows the validation's best predictor, scaled without
    # the self-transfer cells, and the suggestion says which signal chose it
    vt = next(d.value for d in at.dataframe if "mean_rho" in d.value.columns)
    best = vt.dropna(subset=["mean_rho"]).sort_values("mean_rho", ascending=False)["metric"].iloc[0]
    assert at.selectbox(key="tr_side_metric").value == best
    side = json.loads(at.get("plotly_chart")[1].proto.spec)
    sheat = next(t for t in side["data"] if t["type"] == "heatmap")
    srows, scols = side["layout"]["yaxis"]["ticktext"], side["layout"]["xaxis"]["ticktext"]
    z = np.array([[np.nan if v is None else v for v in r] for r in sheat["z"]], dtype=float) \
        if isinstance(sheat["z"], list) else nums(sheat["z"]).reshape(len(srows), len(scols))
    off = [z[i, j] for i, r in enumerate(srows) for j, c in enumerate(scols) if r != c and np.isfinite(z[i, j])]
    assert sheat["zmax"] == pytest.approx(max(off)) and sheat["zmin"] == pytest.approx(min(off))
    at.selectbox(key="tr_target").set_value("sent_movie").run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(f"ranked by `{best}`" in c.value for c in at.caption)

def test_ranking_measured_columns_carry_the_marks():
    """`rank`'s and the Tasks page's measured columns: the cell's mark and absolute numbers."""
    from core.ranking import measured_for_target
    df = measured_for_target("ok", ["rel", "ok", "generic", "zero", "nope"], results=fixture_table(),
                             prompt_tasks=TASKS).set_index("source")
    assert df.at["rel", "mark"] == E.EVIDENCE and df.at["ok", "mark"] == E.SELF
    assert df.at["generic", "mark"] == E.GENERIC and df.at["zero", "mark"] == E.FLAGGED
    assert df.at["nope", "mark"] == "" and np.isnan(df.at["nope", "run acc"])
    assert df.at["rel", "run acc"] == pytest.approx(0.6 * 1.15)
    assert df.at["rel", "scratch acc"] == pytest.approx(0.6) and df.at["rel", "majority"] == 0.5



def test_matrix_cli_marks_are_the_pages_marks(capsys):
    """`python -m core matrix --metric measured --marks` prints core.evidence's marks: those Home's table
    and the Transferability cells show (both read demo_evidence)."""
    _demo_or_skip()
    import io

    from core.__main__ import main
    assert main(["matrix", "--metric", "measured", "--marks", "--library", str(DEMO / "prompts")]) == 0
    got = pd.read_csv(io.StringIO(capsys.readouterr().out), index_col=0, keep_default_na=False)
    want = demo_evidence(DEMO).marks
    assert got.loc[want.index, want.columns].equals(want.astype(str))
    # not vacuous: the demo has evidence cells (Home's headline counts them: 1 of 72 since the CPU runs joined)
    n = int((want == E.EVIDENCE).to_numpy().sum())
    assert got.at["question_type", "question_type"] == E.SELF and n >= 1 and (got == E.EVIDENCE).to_numpy().sum() == n


# --------------------------------------------------------------------------- issue 23: NDCG@k, regret@k, saturation
def test_ndcg_and_regret_chance_match_brute_force():
    """The exact random-ranking expectations equal the mean over every permutation (n = 5, k = 1..5)."""
    import itertools

    import numpy as np

    from core import evidence as E
    gain = np.array([0.12, -0.05, 0.30, 0.0, 0.07])
    score = 1 + gain
    # the metric's own values, by hand: order by pred = sources 2, 0, 4, 3, 1
    pred = np.array([0.8, 0.1, 0.9, 0.2, 0.5])
    g = 2 ** np.clip(gain, 0, None) - 1
    disc = 1 / np.log2(np.arange(2, 4))
    assert E.ndcg_k(pred, gain, 2) == pytest.approx(1.0)                  # the top 2 are the best 2
    worst = -pred
    assert E.ndcg_k(worst, gain, 2) == pytest.approx((g[1] * disc[0] + g[3] * disc[1]) / (g[2] * disc[0] + g[0] * disc[1]))
    assert E.regret_k(pred, score, 1) == 0.0
    assert E.regret_k(worst, score, 2) == pytest.approx((1.30 - 1.0) / 1.30 * 100)
    for k in range(1, 6):
        perms = list(itertools.permutations(range(5)))
        nd, rg = [], []
        for p in perms:
            ranking = np.empty(5)
            ranking[list(p)] = -np.arange(5)          # p[0] ranked first
            nd.append(E.ndcg_k(ranking, gain, k))
            rg.append(E.regret_k(ranking, score, k))
        assert E.random_ndcg_k(gain, k) == pytest.approx(np.mean(nd), rel=1e-12)
        assert E.random_regret_k(score, k) == pytest.approx(np.mean(rg), rel=1e-12, abs=1e-12)
    assert E.random_regret_k(score, 5) == pytest.approx(0.0)             # the top 5 of 5 holds the best
    assert np.isnan(E.ndcg_k(pred, -gain.clip(0), 2))                     # nothing positive: nothing to find


def test_retrieval_chance_over_targets_leaves_self_out():
    import pandas as pd

    from core import evidence as E
    meas = pd.DataFrame({"t1": [0.1, 0.2, 0.0, 0.5], "t2": [0.3, 0.1, 0.2, 0.0]}, index=["a", "b", "c", "t1"])
    pred = pd.DataFrame({"t1": [3.0, 2.0, 1.0, 9.0], "t2": [1.0, 2.0, 3.0, 0.0]}, index=["a", "b", "c", "t1"])
    r = E.retrieval_chance(pred, meas, k=1)
    assert r["n_targets"] == 2
    # t1: sources a, b, c (t1 itself left out): top-1 a (0.1), best b (0.2); t2: a, b, c, t1: top-1 c (0.2), best a
    assert r["regret_k"] == pytest.approx(((1.2 - 1.1) / 1.2 + (1.3 - 1.2) / 1.3) / 2 * 100)
    # a random top 1: the mean regret over the candidates of each target
    t1 = (0.1 / 1.2 + 0 + 0.2 / 1.2) / 3
    t2 = (0 + 0.2 / 1.3 + 0.1 / 1.3 + 0.3 / 1.3) / 4
    assert r["random_regret_k"] == pytest.approx((t1 + t2) / 2 * 100)
    assert "NDCG@1" in E.retrieval_chance_text(r, 1, "zs") and "random" in E.retrieval_chance_text(r, 1, "zs")


def test_saturation_warning_rule():
    from core import evidence as E
    zs = {"a": 1.0, "b": 0.95, "c": 0.99, "d": float("nan")}
    assert E.saturating_sources(zs, ["a", "b", "c", "d", "e"]) == {"a": 1.0, "c": 0.99}
    assert E.saturation_warning(zs, ["b", "d"], "mine") is None
    w = E.saturation_warning(zs, ["a", "b"], "mine")
    assert w.startswith("mine's validation split is already saturated (≥ 0.99) by a (zs 1.000)") and "best_step 0" in w


def test_flags_line_never_calls_unrecorded_clean():
    from core import evidence as E
    from core.results import FLAGS_CLEAN, FLAGS_NOT_RECORDED
    assert "not recorded" in E.flags_line(FLAGS_NOT_RECORDED) and "clean" not in E.flags_line(FLAGS_NOT_RECORDED).split(":")[1][:20]
    assert E.flags_line(FLAGS_CLEAN).startswith("Sanity flags: clean")
    assert E.flags_line(E.FLAG_KEPT_INIT).startswith("⚠ Sanity flags: kept initial prompt") and E.flags_line(None) is None
