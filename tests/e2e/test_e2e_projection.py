"""Projection page in a browser: the map draws its points; selecting a point shows its neighbours.

    .venv/bin/python -m pytest -q tests/e2e/test_e2e_projection.py

PCA keeps the test free of UMAP's one-time numba compile (the page's default method is
UMAP; it shows PCA while UMAP warms up, which AppTest/unit tests cover).
"""
from __future__ import annotations

import pytest

from e2e_harness import check_page
from mini_library import TASKS

CHART = ".st-key-proj_chart .js-plotly-plot"


@pytest.fixture(scope="module")
def server_env(mini_demo):
    return {"ATLAS_DEMO": str(mini_demo)}


def points(b):
    plot = b.wait_for(CHART, timeout=60)[0]
    pts = b.wait_until(lambda: (p := b.plot_points(plot)) and len(p) >= len(TASKS) and p, 30, "map points drawn")
    return plot, pts


def neighbours(b):
    return b.table_with("name", "cosine", "rank on map")


def check_neighbours_of(b, name: str):
    b.wait_until(lambda: b.selected(key="proj_focus") == name, 30, f"the neighbour view to focus {name}")
    b.assert_no_exception()
    nn = neighbours(b)
    names = b.column(nn, "name")
    assert name not in names and sorted(names) == sorted(set(TASKS) - {name}), nn
    cos = [float(c) for c in b.column(nn, "cosine")]
    assert cos == sorted(cos, reverse=True), cos


def test_map_draws_points(browser):
    check_page(browser, "projection", CHART, method="pca")
    _, pts = points(browser)
    assert sorted(p["customdata"][0] for p in pts) == sorted(TASKS)
    assert len({(round(p["px"]), round(p["py"])) for p in pts}) >= 3, "points drawn on top of each other"
    browser.screenshot("projection_pca")


# question_type sits alone in the fixture (its own family), away from the other points;
# it is not the first name, so the neighbour view must move to it.
ISOLATED = "question_type"


def test_lasso_point_shows_neighbours(browser):
    """Lasso (the page's default drag mode) around one point -> the selection table + its neighbours."""
    check_page(browser, "projection", CHART, method="pca")
    plot, pts = points(browser)
    assert browser.selected(key="proj_focus") != ISOLATED
    p = next(p for p in pts if p["customdata"][0] == ISOLATED)
    browser.lasso_plot(plot, p["px"], p["py"])
    browser.wait_for("[data-testid='stHeading']", text="Selected: 1 point", timeout=30)
    check_neighbours_of(browser, ISOLATED)
    browser.screenshot("projection_lasso_neighbours")


def test_click_point_shows_neighbours(browser):
    check_page(browser, "projection", CHART, method="pca")
    plot, pts = points(browser)
    p = next(p for p in pts if p["customdata"][0] == ISOLATED)
    browser.click_plot(plot, p["px"], p["py"])
    browser.wait_for("[data-testid='stHeading']", text="Selected: 1 point", timeout=8)
    check_neighbours_of(browser, ISOLATED)
    browser.screenshot("projection_click_neighbours")


def test_url_highlight_reopens_focus(browser):
    """?highlight=NAME (the shareable state) circles the prompt and focuses its neighbours."""
    check_page(browser, "projection", CHART, method="pca", highlight="sent_tweet")
    check_neighbours_of(browser, "sent_tweet")
    assert browser.column(neighbours(browser), "name")[0] == "sent_movie"  # same family: nearest
