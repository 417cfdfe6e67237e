"""Issue 15's polish list: how numbers, labels and charts read on every page (core.fmt, core.mapview,
pages/_shared.py), checked on the helpers and on the pages (AppTest, the committed demo library).

    .venv/bin/python -m pytest -q tests/test_polish.py
"""
from __future__ import annotations

import base64
import json
import time

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core import fmt, mapview
from core.config import REPO_ROOT, demo_dir
from core.headline import headline

DEMO_BUILT = (demo_dir() / "results.csv").is_file()
needs_demo = pytest.mark.skipif(not DEMO_BUILT, reason=f"demo library not built ({demo_dir()}/results.csv missing)")


def arr(v) -> np.ndarray:
    """A plotly JSON array: a list, or a typed array {"dtype", "bdata" (base64)} (plotly >= 6)."""
    if isinstance(v, dict) and "bdata" in v:
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"])).astype(float)
    return np.array([np.nan if x is None else x for x in v], dtype=float)


# ---------------------------------------------------------------- core.fmt
def test_gains_read_in_percent_with_one_rule():
    assert fmt.gain(0.178) == "+17.8%"
    assert fmt.gain(-0.005) == "-0.5%"
    assert fmt.gain(-0.00004) == "0.0%"          # rounds to zero: no sign, no "-0.0%"
    assert fmt.gain(0.009, sign=False) == "0.9%"
    assert fmt.gain(float("nan")) == fmt.gain(None) == "–"
    assert fmt.gain_pct(pd.Series([0.178, -0.00001])).tolist() == [17.8, 0.0]
    assert str(fmt.gain_pct(pd.Series([-0.00001])).iloc[0]) == "0.0"   # +0.0, not -0.0


def test_no_negative_zero_and_plurals_and_sentences():
    assert fmt.num(-0.004) == "0.00" and fmt.num(-0.006) == "-0.01"
    df = fmt.no_negative_zero(pd.DataFrame({"rho": [-0.004, 0.35], "metric": ["euclid", "zs"]}), 2)
    assert [f"{v:.2f}" for v in df["rho"]] == ["0.00", "0.35"] and list(df["metric"]) == ["euclid", "zs"]
    assert fmt.count(1, "prompt") == "1 prompt" and fmt.count(0, "prompt") == "0 prompts"
    assert fmt.count(2, "matrix", "matrices") == "2 matrices"
    assert fmt.sentence("Source: PANDA, SPoT, Su et al.") == "Source: PANDA, SPoT, Su et al."
    assert fmt.sentence("A = b", "Source: x") == "A = b Source: x."


def test_best_source_with_no_gain_reads_no_source_helps():
    assert fmt.best_source("generic", 0.178) == "generic"
    assert fmt.best_source("generic", -0.005) == fmt.NO_SOURCE_HELPS == "no source helps"
    assert fmt.best_source("generic", 0.0) == "no source helps"
    assert fmt.best_source("generic", float("nan")) == "no source helps"


def test_event_floats_at_four_significant_figures():
    df = fmt.significant(pd.DataFrame({"loss": [0.6931471805599453, np.nan], "step": [1, 2],
                                       "note": ["x", 0.123456789]}), 4)
    assert df["loss"].iloc[0] == 0.6931 and np.isnan(df["loss"].iloc[1])
    assert list(df["step"]) == [1, 2] and df["note"].tolist() == ["x", 0.1235]


# ---------------------------------------------------------------- core.mapview
def test_stacked_points_are_fanned_out_and_others_stay():
    rng = np.random.default_rng(0)
    far = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    stack = np.array([5.0, 5.0]) + rng.normal(0, 1e-4, (12, 2))   # twelve prompts on one spot
    xy = np.vstack([far, stack])
    out = mapview.spread_stacked(xy)
    assert np.allclose(out[:3], far)                                # lone points untouched
    span = np.ptp(xy, axis=0).max()
    d = np.linalg.norm(out[3:, None] - out[None, 3:], axis=-1) + np.eye(12) * 1e9
    assert d.min() >= 0.5 * mapview.STACK_SPACING * span            # every stacked point has room of its own
    assert np.allclose(out[3:].mean(axis=0), stack.mean(axis=0))    # around the stack's centre
    assert np.linalg.norm(out[3:] - stack.mean(axis=0), axis=1).max() < 0.1 * span  # and close to it
    assert np.array_equal(mapview.spread_stacked(xy), out)          # the same layout on every rerun
    assert np.array_equal(mapview.spread_stacked(far), far)


def test_arrows_start_off_when_there_are_many():
    assert mapview.arrows_by_default(2) and not mapview.arrows_by_default(0)
    assert not mapview.arrows_by_default(220)


# ---------------------------------------------------------------- Home
def _columns(df_element) -> dict:
    return json.loads(df_element.proto.columns)


@needs_demo
def test_home_tables_read_as_words_and_percent(atlas_home):
    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=180).run()
    assert not at.exception, [e.value for e in at.exception]
    h = headline(demo_dir())
    # the best predictor's chance level and ceiling are a caption, not a delta arrow
    best = next(m for m in at.metric if m.label.startswith("Best predictor: "))
    assert best.delta in ("", None)
    v = h.validation
    assert any(c.value.startswith(f"permutation p = {v['p']:.3f}") and f"{v['top_k_hit']:.0%} vs" in c.value
               for c in at.caption)
    assert any("PANDA − PoT" in m.value and fmt.gain(h.panda_vs_pot_measurable) in m.value for m in at.markdown)
    metric_table = next(d for d in at.dataframe if "mean_rho" in d.value.columns)
    cols = _columns(metric_table)
    labels = {k: v.get("label") for k, v in cols.items() if k != "_index"}
    assert labels["mean_rho"] == "Spearman ρ" and labels["top_k_hit"] == "top-3 hit"
    assert not any("_" in (lab or "") for lab in labels.values()), labels
    rho = metric_table.value["mean_rho"]
    assert not any(v < 0 and f"{v:.2f}" == "-0.00" for v in rho), list(rho)   # no "-0.00"
    # gains: the best-source table in % (×100, printf with %), picked on seed 0 and scored on the others
    best_table = next(d for d in at.dataframe if "held-out" in d.value.columns)
    assert _columns(best_table)["held-out"]["type_config"]["format"] == fmt.GAIN_PRINTF
    shown = best_table.value.set_index("target")
    for row in h.best_held_out:
        assert shown.at[row["target"], "held-out"] == pytest.approx(row["held_out_gain"] * 100, abs=0.051)
        assert shown.at[row["target"], "source"] == row["source"]
    regret = _columns(metric_table)["regret"]["type_config"]["format"]
    assert regret == fmt.REGRET_PRINTF


# ---------------------------------------------------------------- Transferability figures
def test_heatmap_gains_in_percent_legend_clear_of_the_toolbar_and_dots_clear_of_numbers():
    from pages._transfer_figs import NOISE_DY, NOISE_SIZE, heatmap_figure

    idx = [f"s{i}" for i in range(11)]
    cols = [f"t{j}" for j in range(10)]
    mat = pd.DataFrame(np.linspace(-0.1, 0.2, 110).reshape(11, 10), index=idx, columns=cols)
    noise = mat.abs() < 0.02
    fig = heatmap_figure(mat, annotate=True, diverging=True, noise=noise, zlabel="relative gain", gain=True)
    heat = next(t for t in fig.data if t.type == "heatmap")
    assert heat.texttemplate == "%{text}" and heat.colorbar.tickformat == ".0%"
    labels = [v for row in heat.text for v in row]
    assert labels[0] == "-10%" and "0%" in labels and "-0%" not in labels and "+0%" not in labels
    cells = next(t for t in fig.data if t.name == "cells")
    assert cells.text[0] == fmt.gain(mat.iat[0, 0]) and float(cells.customdata[0][2]) == pytest.approx(-0.1)
    # no legend (it sat over plotly's toolbar): the page's caption under the figure explains ○
    assert fig.layout.showlegend is False and not any(t.showlegend for t in fig.data)
    dots = next(t for t in fig.data if t.name == "inside noise band")
    rr = np.nonzero(noise.to_numpy())[0]
    assert np.allclose(np.asarray(dots.y), rr - NOISE_DY)
    # the dot (a disc of NOISE_SIZE cells) ends above the value label: centred, font ≤ 0.42 cell high
    font_px, cell_px = heat.textfont.size, dots.marker.size / NOISE_SIZE
    assert NOISE_DY - NOISE_SIZE / 2 >= font_px / cell_px / 2, (font_px, cell_px)


def test_similarity_heatmaps_keep_their_scale():
    from pages._transfer_figs import heatmap_figure

    mat = pd.DataFrame(np.eye(3), index=list("abc"), columns=list("abc"))
    heat = next(t for t in heatmap_figure(mat, annotate=True).data if t.type == "heatmap")
    assert heat.texttemplate == "%{z:.2f}"


@needs_demo
def test_transferability_on_measured_reads_gains_in_percent_and_one_full_stop(atlas_home, monkeypatch):
    import torch

    from core import collection as C
    from core.prompts import SoftPrompt, write_prompt

    monkeypatch.delenv("ATLAS_LIBRARY", raising=False)
    write_prompt(SoftPrompt(tensor=torch.randn(20, 384, generator=torch.Generator().manual_seed(3)), name="mine",
                            task="mine"), C.builtin()[C.LIBRARY].roots[0] / "mine")  # a group of one prompt
    at = AppTest.from_file(str(REPO_ROOT / "pages" / "transferability.py"), default_timeout=180)
    at.query_params["metric"] = "measured"
    at.query_params["target"] = "sent_tweet"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    spec = json.loads(next(c for c in at.get("plotly_chart") if "tr_heatmap" in c.proto.id).proto.spec)
    heat = next(t for t in spec["data"] if t["type"] == "heatmap")
    assert heat["texttemplate"] == "%{text}"
    assert not any(v in ("-0%", "+0%") for row in heat["text"] for v in row)   # no negative zero in a cell
    captions = [c.value for c in at.caption]
    assert any("○ = inside the noise band" in c for c in captions)   # what the legend said, under the figure
    assert any("Su et al." in c for c in captions) and not any("et al.." in c for c in captions)
    rank = next(d for d in at.dataframe if "measured gain" in d.value.columns)
    assert json.loads(rank.proto.columns)["measured gain"]["type_config"]["format"] == fmt.GAIN_PRINTF
    vt = next(d for d in at.dataframe if "mean_rho" in d.value.columns)
    assert json.loads(vt.proto.columns)["regret"]["type_config"]["format"] == fmt.REGRET_PRINTF
    # pair details: a metric's value and the measured gain are two columns, the gain in %
    at.selectbox(key="tr_pair_src").set_value("generic").run()
    at.selectbox(key="tr_pair_tgt").set_value("sent_tweet").run()
    pair = next(d for d in at.dataframe if "target prompt" in d.value.columns)
    row = pair.value[pair.value["metric"].str.startswith("measured")].iloc[0]
    from core import metrics as M
    from core.headline import load_results

    want = M.measured(load_results(demo_dir()), method="pot").mean.at["generic", "sent_tweet"]
    assert row["gain"] == fmt.gain(want)  # in %, as core.fmt writes it ("+17.8%"); blank on a metric's row
    assert "all-MiniLM-L6-v2 (11 prompts)" in at.selectbox(key="tr_group").options  # short in the sidebar
    assert "unknown:d384 (1 prompt)" in at.selectbox(key="tr_group").options   # not "(1 prompts)"


# ---------------------------------------------------------------- Runs
@pytest.fixture
def runs_env(tmp_path, monkeypatch, atlas_home):
    monkeypatch.setenv("ATLAS_DEMO", str(tmp_path / "no-demo"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("ATLAS_LIBRARY", raising=False)
    yield
    from core.runs import local
    from core.runs.store import RunStore

    local.stop_dispatcher(RunStore())


def _runs_page():
    at = AppTest.from_file(str(REPO_ROOT / "pages" / "runs.py"), default_timeout=120).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _add(store, rid: str, method: str, status: str, events: list[tuple[str, int, dict]]):
    from core.runs.store import hostname

    spec = {"method": method, "target": "spam_sms", "sources": [] if method == "scratch" else ["x"], "seed": 0,
            "device": "cpu", "params": {"steps": 4, "train_size": 16}, "backend": "local"}
    store.add_run(rid, spec)
    if status != "queued":
        store.update_run(rid, status="running", started=time.time() - 5, host=hostname(), device="cpu")
    for kind, step, metrics in events:
        store.add_event(rid, kind, step, metrics)
    if status == "finished":
        store.set_status(rid, "finished", test_score=0.7)


def _charts(at, rid):
    return {k: json.loads(next(c for c in at.get("plotly_chart") if f"runs_{k}_{rid}" in c.proto.id).proto.spec)
            for k in ("loss", "eval")}


def test_a_scratch_runs_chart_names_its_curves_and_events_are_rounded(runs_env):
    from core.runs.store import RunStore

    store = RunStore()
    _add(store, "r-scratch", "scratch", "finished",
         [("progress", s, {"loss": 1 / (s + 2), "ce": 1 / (s + 2), "examples_per_s": 51.123456789}) for s in (1, 2, 3)]
         + [("eval", 2, {"val_acc": 0.6666666666666666, "best_val_acc": 0.6666666666666666})])
    at = _runs_page()
    at.selectbox(key="runs_selected").set_value("r-scratch").run()
    ch = _charts(at, "r-scratch")
    assert ch["loss"]["layout"]["title"]["text"] == "Loss: CE"
    assert [t["name"] for t in ch["loss"]["data"]] == ["CE"]
    events = next(d.value for d in at.dataframe if "seq" in d.value.columns)
    # a cell an event does not have is blank, not "None" (core.fmt.no_none, issue 28): those columns are text
    assert [float(v) for v in events["ce"] if v != ""] == [0.3333, 0.25, 0.2]
    assert [float(v) for v in events["val_score"] if v != ""] == [0.6667]
    assert [float(v) for v in events["examples_per_s"] if v != ""] == [51.12] * 3
    assert "None" not in events.astype(str).to_numpy().ravel().tolist() and not events.isna().any().any()
    assert "metrics" not in events.columns   # no JSON blob of raw floats


def test_a_panda_runs_chart_names_ce_and_kd_and_an_idle_run_waits_without_axes(runs_env):
    from core.runs.store import RunStore

    store = RunStore()
    _add(store, "r-panda", "panda", "finished",
         [("progress", s, {"loss": 1 / s, "ce": 1 / s, "kd": 0.1 / s}) for s in (1, 2)])
    _add(store, "r-new", "scratch", "running", [])
    at = _runs_page()
    at.selectbox(key="runs_selected").set_value("r-panda").run()
    assert _charts(at, "r-panda")["loss"]["layout"]["title"]["text"] == "Loss: CE and KD"
    at.selectbox(key="runs_selected").set_value("r-new").run()
    for name, chart in _charts(at, "r-new").items():
        assert chart["data"] == [], name
        assert chart["layout"]["xaxis"]["visible"] is False and chart["layout"]["yaxis"]["visible"] is False
        note = chart["layout"]["annotations"][0]["text"]
        assert note == ("waiting for the first step" if name == "loss" else "waiting for the first evaluation")


# ---------------------------------------------------------------- Library
@needs_demo
def test_library_table_shows_what_tells_prompts_apart_and_the_detail_says_which_row(atlas_home, monkeypatch):
    monkeypatch.delenv("ATLAS_LIBRARY", raising=False)
    at = AppTest.from_file(str(REPO_ROOT / "pages" / "library.py"), default_timeout=180).run()
    assert not at.exception, [e.value for e in at.exception]
    table = at.dataframe[0]
    cols = list(table.value.columns)
    # the identifying and comparing columns come first; the long backbone id is short, the group only
    # where it is not the backbone (all demo prompts: MiniLM, so no group column)
    assert cols[:8] == ["name", "task", "family", "method", "score", "L", "d", "norm"], cols
    assert "group" not in cols and set(table.value["backbone"]) == {"all-MiniLM-L6-v2"}
    config = json.loads(table.proto.columns)
    assert config["L"]["width"] == 40 and sum(c.get("width", 0) for c in config.values()) <= 740
    # the detail opens on the table's first row, and says so
    assert at.selectbox(key="library_detail").value == table.value["name"].iloc[0]
    assert any("Showing the table's first row" in c.value for c in at.caption)


# ---------------------------------------------------------------- Projection
@needs_demo
def test_projection_default_map_has_faint_or_no_arrows_and_fanned_out_points(atlas_home, monkeypatch):
    monkeypatch.delenv("ATLAS_LIBRARY", raising=False)
    at = AppTest.from_file(str(REPO_ROOT / "pages" / "projection.py"), default_timeout=240).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.toggle(key="proj_arrows").value is False        # 220 arrows start off
    caption = "\n".join(c.value for c in at.caption)
    assert "transfer arrows hidden (toggle Arrows)" in caption and "stacked points fanned out" in caption
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert not [t for t in spec["data"] if t.get("name") == "transfer (source → target)"]
    pts = np.concatenate([np.stack([arr(t["x"]), arr(t["y"])], axis=1) for t in spec["data"]
                          if t.get("mode") == "markers"])
    span = np.ptp(pts, axis=0).max()
    d = np.linalg.norm(pts[:, None] - pts[None], axis=-1) + np.eye(len(pts)) * 1e9
    assert d.min() >= 0.5 * mapview.STACK_SPACING * span      # no point hidden under another
    # a selection is findable: plotly enlarges the selected points and fades the rest, in the browser
    for t in spec["data"]:
        if t.get("mode") == "markers":
            assert t["selected"]["marker"]["size"] > t["marker"]["size"] and t["unselected"]["marker"]["opacity"] <= 0.3
    at.toggle(key="proj_arrows").set_value(True).run()
    arrows = [t for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]
              if t.get("name") == "transfer (source → target)"]
    alpha = float(arrows[0]["line"]["color"].rsplit(",", 1)[1].rstrip(")"))
    assert alpha <= 0.3                                         # faint when asked for


def test_launch_says_queued_and_the_new_run_waits_for_its_first_step(runs_env, monkeypatch):
    """After Launch: a "Queued run …" confirmation, the new run selected, its charts waiting (no empty axes).
    Nothing trains: submit only records the run, and the dispatcher is not pumped."""
    from core.runs import queue

    def submit(spec, store, **kw):
        store.add_run("r-new", {"method": spec.method, "target": spec.target, "sources": [], "seed": spec.seed,
                                "device": "cpu", "params": spec.params, "backend": "local"})
        return "r-new"

    monkeypatch.setattr(queue, "submit", submit)
    monkeypatch.setattr(queue, "pump", lambda store, **kw: None)
    at = _runs_page()
    at.selectbox(key="runs_target").set_value("spam_sms")
    at.selectbox(key="runs_method").set_value("scratch")
    at.button(key="runs_launch").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert [s.value for s in at.success if s.value.startswith("Queued")] == ["Queued run r-new."]
    assert at.selectbox(key="runs_selected").value == "r-new"
    assert any(h.value == "⏳ r-new" for h in at.subheader)
    ch = _charts(at, "r-new")
    assert ch["loss"]["layout"]["annotations"][0]["text"] == "waiting for the first step"


def test_no_none_reads_missing_text_as_a_dash_and_named_numbers_as_blank():
    """Issue 28: a grid draws a missing cell as "None"; core.fmt.no_none is the one rule for the tables."""
    import numpy as np
    import pandas as pd

    from core import fmt

    df = pd.DataFrame({"task": ["a", None, np.nan], "score": [0.5, np.nan, -0.0001], "n": [1, 2, 3]})
    out = fmt.no_none(df, as_text=("score",))
    assert list(out["task"]) == ["a", "—", "—"] and list(out["score"]) == ["0.500", "", "0.000"]
    assert list(fmt.no_none(df, as_text=("score",), digits=None)["score"]) == ["0.5", "", "-0.0001"]
    assert out["n"].dtype.kind == "i"  # numbers not named stay numbers (they sort as numbers)
