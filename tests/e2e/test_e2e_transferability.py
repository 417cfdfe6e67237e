"""Transferability page in a browser: the heatmap, a click on a cell, a target's ranked sources.

    .venv/bin/python -m pytest -q tests/e2e/test_e2e_transferability.py

Also: the page's state lives in query params, so a copied URL reopens the same view.

What AppTest cannot see: plotly draws the heatmap in the browser, and a click on a cell
only reaches the script through plotly's click -> Streamlit's selection event (the page
lays a transparent marker layer over the cell centres; heatmap cells alone emit nothing).
"""
from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest

from e2e_harness import app_nav, check_page
from mini_library import TASKS

HEATMAP = ".st-key-tr_heatmap .js-plotly-plot"
APP_NAV = app_nav()  # app.py's st.navigation


@pytest.fixture(scope="module")
def server_env(mini_demo):
    return {"ATLAS_DEMO": str(mini_demo)}


def cells(b):
    """The clickable cells of the drawn heatmap: customdata = [source, target, value]."""
    plot = b.wait_for(HEATMAP, timeout=60)[0]
    pts = b.wait_until(lambda: b.plot_points(plot), 20, "heatmap cell overlay drawn")
    return plot, pts


@pytest.mark.parametrize("metric", ["measured", "e_avg"])
def test_heatmap_draws(browser, metric):
    check_page(browser, "transferability", HEATMAP, metric=metric)
    assert browser.selected(key="tr_metric").startswith(metric)
    _, pts = cells(browser)
    n_prompts = len(TASKS)
    # measured: source prompts x target tasks (the fixture has one prompt per task); e_avg: prompts x prompts
    assert len(pts) == n_prompts * n_prompts, len(pts)
    assert {p["customdata"][0] for p in pts} == set(TASKS)
    # the heatmap trace itself holds the numbers the cells show
    z = browser.driver.execute_script(
        "const gd=document.querySelector(arguments[0]);"
        "return gd._fullData.filter(t=>t.type==='heatmap').map(t=>t.z.map(r=>Array.from(r)"
        ".filter(v=>v!==null && !Number.isNaN(v)).length).reduce((a,b)=>a+b,0));", HEATMAP)
    assert z and z[0] >= n_prompts * (n_prompts - 1), z
    browser.screenshot(f"transferability_{metric}")


def test_click_cell_shows_pair_details(browser):
    check_page(browser, "transferability", HEATMAP, metric="e_avg")
    plot, pts = cells(browser)
    # an off-diagonal within-family cell, so the details have something to say
    pick = next(p for p in pts if p["customdata"][0] == "sent_movie" and p["customdata"][1] == "sent_tweet")
    browser.click_plot(plot, pick["px"], pick["py"])
    browser.wait_until(lambda: browser.selected(key="tr_pair_src") == "sent_movie"
                       and browser.selected(key="tr_pair_tgt") == "sent_tweet", 30, "the pair selectors to follow the click")
    browser.assert_no_exception()
    vals = browser.table_with("metric", "target prompt", "value")
    metrics = browser.column(vals, "metric")
    assert "e_avg" in metrics and any(m.startswith("measured") for m in metrics), metrics
    shown = dict(zip(metrics, browser.column(vals, "value")))
    assert abs(float(shown["e_avg"]) - float(pick["customdata"][2])) < 1e-3, (shown, pick["customdata"])
    meta = browser.table_with("task", "family")
    assert {"sent_movie", "sent_tweet"} <= {r[0] for r in meta[1:]}, meta
    browser.screenshot("transferability_pair_details")


def test_target_ranks_sources_and_opens_runs(browser):
    check_page(browser, "transferability", HEATMAP, metric="e_avg")
    browser.select("sent_movie", key="tr_target")
    rank = browser.table_with("source", "predicted (e_avg)")
    sources = browser.column(rank, "source")
    assert "sent_movie" not in sources and sorted(sources) == sorted(set(TASKS) - {"sent_movie"}), sources
    assert sources[0] == "sent_tweet", sources  # the same family shares a centroid in the fixture: top by e_avg
    preds = [float(v) for v in browser.column(rank, "predicted (e_avg)")]
    assert preds == sorted(preds, reverse=True), preds
    browser.screenshot("transferability_ranked_sources")

    link = browser.button("Run PANDA on sent_movie from sent_tweet")
    browser.click(link)
    browser.wait_until(lambda: urlparse(browser.driver.current_url).path.rstrip("/").endswith("runs"), 20,
                       "navigation to the Runs page")
    browser.wait_idle(start_wait=1.0)
    browser.assert_no_exception()
    q = parse_qs(urlparse(browser.driver.current_url).query)
    assert q.get("target") == ["sent_movie"] and q.get("source") == ["sent_tweet"] and q.get("method") == ["panda"], q
    # the Runs form is filled in from the link: one click from "best source" to "launch"
    browser.wait_for(".st-key-runs_target", timeout=30)
    assert browser.selected(key="runs_target") == "sent_movie"
    assert browser.selected(key="runs_method") == "panda"
    chosen = browser.multiselected(key="runs_sources")
    assert len(chosen) == 1 and chosen[0].startswith("sent_tweet"), chosen
    # issue 15 defect 2: the cell was measured in 30 steps on 64 examples (mini_library), and so is the run
    assert q.get("steps") == ["30"] and q.get("train_size") == ["64"] and q.get("lr") == ["0.03"], q
    steps, size = (browser.widget(key=k).find_element("css selector", "input").get_attribute("value")
                   for k in ("runs_steps", "runs_train_size"))
    assert (steps, size) == ("30", "64"), (steps, size)
    browser.screenshot("runs_prefilled_from_transferability")


def nav_labels(b) -> list[str]:
    return [e.text.split("\n")[-1].strip() for e in b.find("[data-testid='stSidebarNav'] a")]


def test_shared_url_reopens_view(browser):
    """Set a view with the widgets, then reopen the address bar's URL in a new session."""
    b = browser
    check_page(b, "transferability", HEATMAP)
    b.select(lambda t: t.startswith("e_tok "), key="tr_metric")   # shown as "e_tok — <label>"
    b.select("task family", key="tr_order")
    b.select("party_tweet", key="tr_target")
    b.wait_for(HEATMAP)
    url = b.wait_until(lambda: "target=party_tweet" in b.driver.current_url and b.driver.current_url, 20,
                       "the URL to carry the chosen target")
    q = parse_qs(urlparse(url).query)
    assert q.get("metric") == ["e_tok"] and q.get("order") == ["family"], q
    shown = (b.selected(key="tr_metric"), b.selected(key="tr_order"), b.selected(key="tr_target"))

    b.driver.get(b.base_url)  # leave, so the next load is a new session rebuilt from the URL alone
    b.wait_idle()
    b.driver.get(url)
    b.wait_idle()
    b.wait_for(HEATMAP, timeout=60)
    b.assert_no_exception()
    assert (b.selected(key="tr_metric"), b.selected(key="tr_order"), b.selected(key="tr_target")) == shown
    assert nav_labels(b) == APP_NAV
    rank = b.table_with("source", "predicted (e_tok)")
    assert b.column(rank, "source")[0] == "party_speech", rank  # same family: ranked first
    b.screenshot("shared_url_reopened")

