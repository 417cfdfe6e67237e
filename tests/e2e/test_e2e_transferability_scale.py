"""Transferability page on a generated 1,000-prompt library, in a browser: blocks, drill-down, a cell.

    .venv/bin/python -m pytest -q tests/e2e/test_e2e_transferability_scale.py

Above 300 prompts the page draws blocks (here: 20 tasks of 50 prompts) and a downsampled
overview instead of a million cells. A real click on a block (plotly click -> Streamlit
selection event on the block layer) must open that block's cells; a click on a cell there
must fill the pair details with that pair and its value; "← All blocks" goes back. The view
and the drilled block are in the URL.
"""
from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest

from big_library import build
from e2e_harness import check_page

N = 1000
BLOCKS = ".st-key-tr_blocks .js-plotly-plot"
CELLS = ".st-key-tr_heatmap .js-plotly-plot"
OVERVIEW = ".st-key-tr_overview .js-plotly-plot"


@pytest.fixture(scope="module")
def server_env(tmp_path_factory):
    lib = build(N, tmp_path_factory.mktemp("big") / "lib")
    return {"ATLAS_LIBRARY": str(lib), "ATLAS_DEMO": str(tmp_path_factory.mktemp("no_demo"))}


def points(b, css):
    plot = b.wait_for(css, timeout=120)[0]
    return plot, b.wait_until(lambda: b.plot_points(plot), 30, f"the click layer of {css}")


def query(b) -> dict:
    return {k: v[0] for k, v in parse_qs(urlparse(b.driver.current_url).query).items()}


def test_blocks_drill_down_and_a_cell(browser):
    b = browser
    check_page(b, "transferability", BLOCKS, metric="e_avg", timeout=180)
    assert not b.find(CELLS), "a 1,000-prompt library must not send every cell"
    b.wait_for(OVERVIEW, timeout=60)
    assert b.selected(key="tr_view") == "blocks by task"
    plot, pts = points(b, BLOCKS)
    assert len(pts) == 20 * 20, len(pts)                                     # 20 tasks x 20 tasks
    assert {p["customdata"][0] for p in pts} == {f"task{i:02d}" for i in range(20)}
    assert all(p["customdata"][3] == "50 prompts" for p in pts)
    b.screenshot("transferability_1000_blocks")

    pick = next(p for p in pts if p["customdata"][:2] == ["task03", "task07"])
    b.click_plot(plot, pick["px"], pick["py"])
    b.wait_for(CELLS, timeout=90)
    b.assert_no_exception()
    b.wait_until(lambda: query(b).get("block_src") == "task03" and query(b).get("block_tgt") == "task07", 20,
                 "the URL to name the drilled block")
    assert query(b).get("view") == "task"
    assert not b.find(BLOCKS)
    cplot, cells = points(b, CELLS)
    assert len(cells) == 50 * 50, len(cells)                                # the block's own prompts
    assert {c["customdata"][0][:3] for c in cells} == {"c03"} and {c["customdata"][1][:3] for c in cells} == {"c07"}
    # the drilled block's mean is the mean of the cells it now shows (no self-pairs off the diagonal)
    shown = [float(c["customdata"][2]) for c in cells]
    assert abs(sum(shown) / len(shown) - float(pick["customdata"][2])) < 2e-3

    cell = cells[len(cells) // 2 + 7]
    src, tgt, value = cell["customdata"][:3]
    b.click_plot(cplot, cell["px"], cell["py"])
    b.wait_until(lambda: b.selected(key="tr_pair_src") == src and b.selected(key="tr_pair_tgt") == tgt, 30,
                 "the pair selectors to follow the click")
    b.assert_no_exception()
    vals = b.table_with("metric", "target prompt", "value")
    got = dict(zip(b.column(vals, "metric"), b.column(vals, "value")))
    assert abs(float(got["e_avg"]) - float(value)) < 1e-3, (got, cell["customdata"])
    assert b.column(vals, "target prompt")[0] == tgt
    b.screenshot("transferability_1000_drilled_cell")

    b.click(b.button("← All blocks"))
    b.wait_for(BLOCKS, timeout=90)
    b.assert_no_exception()
    b.wait_until(lambda: "block_src" not in query(b), 20, "the URL to drop the drilled block")


def test_a_shared_url_reopens_the_drilled_block(browser):
    b = browser
    check_page(b, "transferability", CELLS, metric="e_avg", view="cluster", block_src="c01", block_tgt="c02",
               timeout=180)
    assert b.selected(key="tr_view") == "blocks by cluster"
    _, cells = points(b, CELLS)
    rows = {c["customdata"][0] for c in cells}
    cols = {c["customdata"][1] for c in cells}
    # a cluster block of this library is one generated cluster (50 prompts each)
    assert len(rows) == 50 and len({r[:3] for r in rows}) == 1, sorted(rows)[:5]
    assert len(cols) == 50 and len({c[:3] for c in cols}) == 1 and cols.isdisjoint(rows)
