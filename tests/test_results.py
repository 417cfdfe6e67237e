"""core.results (the results table: contract, reader, writer, group filter, generic control) and
core.metrics.tables (what the Transferability page shows beside its heatmap), without a page."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from core import metrics as M
from core import results as R
from core.metrics import tables as TB

BB = "bb-a"


def sp(name, tensor, task=None, backbone=BB, method=None):
    return SimpleNamespace(name=name, tensor=tensor, backbone=backbone, task=task, method=method, family=None)


def runs(rows):
    df = pd.DataFrame(rows)
    df["status"] = "finished"
    return df


# ---------------------------------------------------------------- read / write
def test_one_column_list_for_csv_and_store():
    from core import demo
    from core.runs.store import RESULTS_COLUMNS as store_columns
    assert store_columns is R.RESULTS_COLUMNS
    assert demo.write_results is R.write_rows and demo.read_results is R.read_rows and demo.GENERIC == R.GENERIC


def test_write_rows_then_read_back(tmp_path):
    path = tmp_path / "sub" / "results.csv"
    R.write_rows(path, [{"run_id": "b", "method": "pot", "test_score": 0.5, "extra": "ignored"},
                        {"run_id": "a", "method": "scratch", "source": "", "test_score": 0.25}])
    assert path.read_text().splitlines()[0] == ",".join(R.RESULTS_COLUMNS)
    rows = R.read_rows(path)
    assert [r["run_id"] for r in rows] == ["a", "b"] and rows[1]["test_score"] == "0.5" and "extra" not in rows[1]
    table = R.read_table(path)
    assert list(table.columns) == R.RESULTS_COLUMNS and table["test_score"].tolist() == [0.25, 0.5]
    assert table["source"].isna().all()  # an empty cell is NaN, never the string "nan"
    assert [p.name for p in path.parent.iterdir()] == ["results.csv"]  # no temp file left
    assert R.read_rows(tmp_path / "none.csv") == [] and R.read_table(tmp_path / "none.csv").empty


def test_a_broken_results_file_is_one_clear_error(tmp_path):
    path = tmp_path / "results.csv"
    path.write_bytes(b"run_id,method\n\xff\xfe\x00secret\n")
    with pytest.raises(R.ResultsError) as e:
        R.read_table(path)
    assert str(path) in str(e.value) and "secret" not in str(e.value)


def test_gather_merges_demo_and_store_and_survives_a_broken_store(tmp_path):
    demo = tmp_path / "results.csv"
    R.write_rows(demo, [{"run_id": "d1", "method": "scratch", "target": "t", "test_score": 0.5}])
    store_table = pd.DataFrame([{"run_id": "u1", "method": "pot", "source": "s", "target": "t", "test_score": 0.6}],
                               columns=R.RESULTS_COLUMNS)
    asked = {}

    class Store:
        def results_table(self, *, status):
            asked["status"] = status
            return store_table

    class Broken:
        def results_table(self, *, status):
            raise RuntimeError("database disk image is malformed")

    got = R.gather(demo, Store())
    assert asked["status"] == ("finished",) and got.store_error == ""
    assert got.table[["run_id", "origin"]].values.tolist() == [["d1", "demo"], ["u1", "user"]]
    got = R.gather(demo, Broken())
    assert got.table["run_id"].tolist() == ["d1"] and got.store_error == "RuntimeError: database disk image is malformed"
    assert R.gather(tmp_path / "missing.csv", None).table.empty


def test_finished_runs_and_measured_errors():
    df = runs([{"run_id": "a", "method": "scratch", "target": "t", "test_score": 0.5},
               {"run_id": "b", "method": "pot", "source": "s", "target": "t", "test_score": "x"}])
    df.loc[1, "status"] = "finished"
    got = R.finished_runs(df)
    assert got["run_id"].tolist() == ["a"] and got["source"].tolist() == [""]  # "x" is no score
    with pytest.raises(R.ResultsError, match=r"lacks column\(s\) \['test_score'\]"):
        R.finished_runs(pd.DataFrame({"method": ["pot"], "target": ["t"]}))
    with pytest.raises(M.MetricError, match="lacks column"):  # measured keeps raising its own error kind
        M.measured(pd.DataFrame({"method": ["pot"], "target": ["t"]}))


# ---------------------------------------------------------------- shared rules
def test_generic_is_recognised_one_way():
    assert R.is_generic("generic") and R.is_generic("Generic_mix") and not R.is_generic("sent_movie")
    assert R.is_generic("my_control", task="generic") and not R.is_generic("generic_x", task="sent_movie")
    task_of = {"ctrl": "generic", "generic_named": "topic"}.get
    assert R.generic_sources(["s1", "ctrl", "generic_named", "generic2"], task_of) == ["ctrl", "generic2"]
    # measured's default is the same rule by name (a results table names sources only)
    df = runs([{"run_id": f"{m}{sd}{s}", "method": m, "source": s, "target": "t", "seed": sd, "test_score": v}
               for sd in (0, 1) for m, s, v in (("scratch", "", 0.5), ("pot", "GENERIC", 0.55), ("pot", "s1", 0.6))])
    m = M.measured(df)
    assert m.generic == ["GENERIC"] and m.vs_generic.at["s1", "t"] == pytest.approx(0.05 / 0.55)


def test_run_backbone_and_group_filter():
    assert R.run_backbone(json.dumps({"backbone": "bb-a", "lr": 1})) == "bb-a"
    assert [R.run_backbone(s) for s in ("", None, "{not json", "[1]", json.dumps({"lr": 1}))] == [None] * 5
    df = pd.DataFrame([
        {"method": "scratch", "source": "", "target": "t", "settings": ""},
        {"method": "pot", "source": "/x/prompts/p1", "target": "t", "settings": json.dumps({"backbone": "bb-a"})},
        {"method": "pot", "source": "p2", "target": "t", "settings": json.dumps({"backbone": "bb-b"})},
        {"method": "pot", "source": "p3", "target": "t", "settings": "{broken"},
        {"method": "pot", "source": "other", "target": "t", "settings": ""},
    ])
    got = R.for_group(df, {"p1", "p2", "p3"}, "bb-a")
    assert got["source"].tolist() == ["", "p1", "p3"]  # a path counts by its name; bb-b and strangers out
    assert R.for_group(df, {"p1", "p2"}, None)["source"].tolist() == ["", "p1", "p2"]


def test_methods_and_no_runs_reason(tmp_path):
    df = pd.DataFrame({"method": ["scratch", "panda", "pot", None, "panda"]})
    assert R.transfer_methods(df) == ["panda", "pot"] and R.transfer_methods(pd.DataFrame()) == []
    assert R.default_method(["panda", "pot"]) == "pot" and R.default_method(["spot"]) == "spot"
    assert R.default_method([]) is None
    csv = tmp_path / "results.csv"
    assert "not built (`make demo`)" in R.no_runs_reason(pd.DataFrame(), "g", csv)
    csv.write_text("run_id\n")
    assert R.no_runs_reason(pd.DataFrame(), "g", csv) == "No finished runs yet: launch runs on the Runs page."
    assert "the 5 finished runs here measure other backbone groups" in R.no_runs_reason(df, "g", csv)


# ---------------------------------------------------------------- tables beside the heatmap
@pytest.fixture
def group():
    """8 prompts of tasks a, a, b, b, c, c, d, d and runs: pot from a1, b1, c1, d1 to every task, 2 seeds."""
    g = torch.Generator().manual_seed(0)
    prompts = [sp(f"{t}{i}", torch.randn(4, 8, generator=g), task=t) for t in "abcd" for i in (1, 2)]
    rows = []
    for t in "abcd":
        for sd in (0, 1):
            rows.append({"run_id": f"sc{t}{sd}", "method": "scratch", "source": "", "target": t, "seed": sd,
                         "test_score": 0.5 + 0.01 * sd})
            for s, v in (("a1", 0.6), ("b1", 0.55), ("c1", 0.45), ("d1", 0.5)):
                rows.append({"run_id": f"{s}{t}{sd}", "method": "pot", "source": s, "target": t, "seed": sd,
                             "test_score": v + 0.01 * sd})
    return prompts, M.measured(runs(rows))


def test_per_target_z():
    z = TB.per_target_z(pd.DataFrame({"t": [1.0, 3.0, np.nan], "u": [2.0, 2.0, 2.0]}))
    assert z["t"].tolist()[:2] == [-1.0, 1.0] and np.isnan(z.at[2, "t"]) and z["u"].tolist() == [0.0] * 3


def test_pair_values_use_a_matrix_at_hand_else_pairs_else_stored(group):
    prompts, meas = group
    full = M.compute_matrix("e_tok", prompts, cache=False)
    asked = []
    at_hand = {"e_tok": full * 0 + 7.0}.get   # a matrix at hand wins (7 everywhere: no recomputation)

    def stored(m):
        asked.append(m)
        return None

    vals = TB.pair_values(prompts[0], [prompts[2], prompts[3]], prompts, at_hand=at_hand, stored=stored, meas=meas,
                          target_task="b")
    v = vals.set_index(["metric", "target prompt"])["value"]
    assert v[("e_tok", "b1")] == 7.0
    e_avg = M.compute_matrix("e_avg", prompts, cache=False)
    assert v[("e_avg", "b2")] == pytest.approx(e_avg.at["a1", "b2"], abs=1e-6)  # computed for the pair only
    assert asked == []  # the model metrics' status is "no backbone here": never asked for
    assert vals[vals["metric"] == "on"]["note"].eq("not computed / not available").all()
    last = vals.iloc[-1]
    assert last["metric"] == "measured (pot)" and last["target prompt"] == "b"
    assert np.isnan(last["value"]) and last["gain"] == pytest.approx(round(100 * meas.mean.at["a1", "b"], 1))  # gains in % (core.fmt)
    assert "over 2 seeds" in last["note"]


def test_rank_sources_leaves_out_the_target_task_and_sorts(group):
    prompts, meas = group
    pred = M.by_task(M.compute_matrix("e_avg", prompts, cache=False), prompts)
    rank = TB.rank_sources("b", prompts, predicted=pred, predicted_metric="e_avg", meas=meas)
    assert set(rank.index) == {"a1", "a2", "c1", "c2", "d1", "d2"} and (rank["task"] != "b").all()
    assert rank["predicted (e_avg)"].is_monotonic_decreasing
    assert rank.at["a1", "measured gain"] == pytest.approx(meas.mean.at["a1", "b"]) and np.isnan(rank.at["a2", "measured gain"])
    by_measured = TB.rank_sources("b", prompts, meas=meas)
    assert list(by_measured.index[:3]) == ["a1", "d1", "c1"] and "predicted ()" not in by_measured


def test_scored_predictions_and_validation(group):
    prompts, meas = group
    preds = TB.scored_predictions(prompts, meas, at_hand=lambda m: None, stored=lambda m: None)
    assert set(preds) == set(M.PROMPT_METRICS)  # model metrics: no backbone here
    full = M.by_task(M.compute_matrix("e_avg", prompts, cache=False), prompts)
    assert list(preds["e_avg"].index) == ["a1", "b1", "c1", "d1"]  # the measured sources only, not N x N
    np.testing.assert_allclose(preds["e_avg"].values, full.loc[["a1", "b1", "c1", "d1"]].values, atol=1e-6)
    vt = TB.validation(preds, meas, prompts)
    assert set(vt["metric"]) == set(preds) and (vt["n_targets"] == 4).all()  # 3 sources per target (own task out)
    assert vt["mean_rho"].notna().all() and vt["mean_rho"].is_monotonic_decreasing
    want = M.retrieval_table(preds, meas.mean, source_task=TB.source_tasks(prompts), k=3, sort_by="mean_rho")
    pd.testing.assert_frame_equal(vt, want)
    detail = TB.validation_detail(preds["e_avg"], meas, prompts)
    assert detail["target"].tolist() == ["a", "b", "c", "d"] and (detail["n"] == 3).all()


def test_side_by_side(group):
    prompts, meas = group
    pred = M.by_task(M.compute_matrix("e_avg", prompts, cache=False), prompts)
    p, m, noise, note = TB.side_by_side(pred, meas, prompts)
    assert list(p.index) == list(m.index) == ["a1", "b1", "c1", "d1"] and list(p.columns) == ["a", "b", "c", "d"]
    assert noise is not None and note == ""
    assert TB.side_by_side(None, meas, prompts) is None
    assert TB.side_by_side(pred.rename(columns=str.upper), meas, prompts) is None


def test_report_counts_the_generic_control(tmp_path):
    from core.headline import report
    rows = []
    for t in ("sent_movie", "sent_tweet"):
        for sd in (0, 1, 2):
            rows.append({"run_id": f"sc{t}{sd}", "method": "scratch", "source": "", "target": t, "seed": sd,
                         "test_score": 0.5 + 0.01 * sd, "status": "finished"})
            for s, v in (("generic", 0.52), ("sent_movie", 0.6), ("sent_tweet", 0.6)):
                rows.append({"run_id": f"{s}{t}{sd}", "method": "pot", "source": s, "target": t, "seed": sd,
                             "test_score": v, "status": "finished"})
    R.write_rows(tmp_path / "results.csv", rows)
    text = report(tmp_path)
    assert "generic +" in text and "(n=2); cells inside" in text  # generic -> both targets counted as generic


def test_bad_results_file_one_message_in_cli_and_home(tmp_path, monkeypatch, capsys):
    """A results CSV without test_score, and one that is not text: the CLI and the Home page each say
    which file and what is wrong, once, without quoting the file."""
    from streamlit.testing.v1 import AppTest

    from core.config import REPO_ROOT
    from core.metrics.cli import cli
    no_score = tmp_path / "no_score" / "results.csv"
    no_score.parent.mkdir()
    no_score.write_text("run_id,method,target\nr1,pot,t\n")
    with pytest.raises(R.ResultsError, match=r"no_score/results.csv: results table lacks column\(s\) \['test_score'\]"):
        R.read_finished(no_score)
    assert cli("matrix", ["--metric", "measured", "--results", str(no_score)]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and f"{no_score}: results table lacks column(s) ['test_score']" in err
    binary = tmp_path / "demo" / "results.csv"
    binary.parent.mkdir()
    binary.write_bytes(b"run_id,method\n\xff\xfe\x00secret\n")
    monkeypatch.setenv("ATLAS_DEMO", str(binary.parent))
    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=60).run()  # app.py -> Home
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and str(binary) in errors[0] and "secret" not in errors[0], errors


def test_all_from_trusts_names_only_for_prompts_read_from_that_folder(tmp_path):
    """A precomputed matrix may be matched by names only when every prompt came from the folder it
    was built with (core.metrics.all_from); one prompt from elsewhere, or with no origin, is enough to say no."""
    from types import SimpleNamespace as NS
    from core.metrics import all_from

    demo = tmp_path / "demo" / "prompts"
    (demo / "a").mkdir(parents=True)
    other = tmp_path / "mine"
    other.mkdir()
    inside = [NS(origin=str(demo / "a")), NS(origin=str(demo / "a" / ".." / "a"))]
    assert all_from(inside, demo)
    assert not all_from(inside + [NS(origin=str(other))], demo)
    assert not all_from(inside + [NS(origin=None)], demo)
    (tmp_path / "link").symlink_to(demo)
    assert all_from([NS(origin=str(tmp_path / "link" / "a"))], demo)   # resolved, symlinks followed
