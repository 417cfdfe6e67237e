"""A released library in a real browser at 1280x800 (issue 26): thunlp's 46 prompts.

    .venv/bin/python -m pytest -q tests/e2e/test_e2e_released_library.py

No cell values running into each other, labels without the path all prompts share, 15 distinct
colours for the 15 RoBERTa tasks, and a link copied from the address bar after sidebar navigation
that reopens the same folder and group in a new browser.
"""
from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest

from e2e_harness import Browser

PLOT = "[data-testid='stPlotlyChart']"


@pytest.fixture(scope="module")
def released(real_prompts_dir):
    return real_prompts_dir.parent.parent  # real-prompts/: names start thunlp-prompt-transferability/...


@pytest.fixture(scope="module")
def server_env(tmp_path_factory):
    return {"ATLAS_DEMO": str(tmp_path_factory.mktemp("no_demo") / "none"), "ATLAS_MODE": "full"}


def _figure(b, index: int = 0) -> dict:
    """Tick labels, value labels (their boxes) and trace colours of the index-th drawn plotly chart."""
    plot = b.find(PLOT)[index]
    return b.driver.execute_script("""
      const gd = arguments[0].querySelector('.js-plotly-plot');
      const heat = (gd._fullData || []).find(t => t.type === 'heatmap');
      const lay = gd._fullLayout;
      const ya = heat ? lay[(heat.yaxis || 'y').replace('y', 'yaxis')] : null;
      const boxes = Array.from(gd.querySelectorAll('g.heatmap-label text')).map(t => {
        const r = t.getBoundingClientRect(); return [r.left, r.right, r.top, r.bottom, t.textContent]; });
      const colours = (gd._fullData || []).filter(t => t.type === 'scatter' && t.name && t.marker)
                                          .map(t => [t.name, t.marker.color]);
      return {ticks: ya ? ya.ticktext : [], boxes: boxes, colours: colours};
    """, plot)


def test_thunlp_folder_at_1280(browser, released):
    b = browser
    b.driver.set_window_size(1280, 800)
    b.open("transferability", lib=str(released), group="roberta-base", metric="e_avg")
    b.assert_no_exception()
    b.wait_for(PLOT)
    fig = _figure(b)
    b.screenshot("released_library_transferability_1280")
    assert "IMDB" in fig["ticks"] and not any("/" in t or "thunlp" in t for t in fig["ticks"]), fig["ticks"]
    # values that are printed do not run into each other (left to right in a row)
    rows: dict[int, list] = {}
    for left, right, top, bottom, _ in fig["boxes"]:
        rows.setdefault(round((top + bottom) / 2), []).append((left, right))
    for row in rows.values():
        row.sort()
        assert all(a[1] <= b_[0] + 0.5 for a, b_ in zip(row, row[1:])), row

    # colours by task on the Projection page: 15 tasks, 15 colours
    b.open("projection", lib=str(released), group="roberta-base")
    b.assert_no_exception()
    b.wait_for(PLOT)
    colours = dict(_figure(b)["colours"])
    tasks = {k: v for k, v in colours.items() if k not in ("search",)}
    assert len(tasks) == 15 and len(set(tasks.values())) == 15, tasks


def test_a_copied_link_reopens_the_same_folder_and_group(browser, released):
    b = browser
    b.driver.set_window_size(1280, 800)
    b.open("transferability", lib=str(released), group="t5-small", metric="e_avg")
    b.wait_for(PLOT)
    link = next(a for a in b.find("[data-testid='stSidebarNav'] a") if "Projection" in a.text)
    b.click(link)
    b.wait_until(lambda: urlparse(b.driver.current_url).path.rstrip("/").endswith("projection"), 30, "Projection")
    b.wait_idle()
    b.wait_until(lambda: "lib" in parse_qs(urlparse(b.driver.current_url).query), 20, "?lib= in the URL")
    copied = b.driver.current_url
    q = parse_qs(urlparse(copied).query)
    assert q["lib"] == [str(released)], q
    fresh = Browser(b.server.url)
    try:
        fresh.driver.set_window_size(1280, 800)
        fresh.driver.get(copied)
        fresh.wait_idle()
        fresh.assert_no_exception()
        fresh.wait_for(PLOT)
        text = fresh.page_text()
        assert "46 prompts" in text and "is missing" not in text and "not in the chosen collections" not in text
        group = q.get("group", [None])[0]
        assert group, q  # the page keeps the group in its link
        assert fresh.selected(key="proj_group").startswith(group), fresh.selected(key="proj_group")
    finally:
        fresh.close()
    # pages without the collections picker keep them in their link too
    for page in ("Definitions", "Runs"):
        link = next(a for a in b.find("[data-testid='stSidebarNav'] a") if page in a.text)
        b.click(link)
        b.wait_until(lambda: urlparse(b.driver.current_url).path.rstrip("/").endswith(page.lower()), 30, page)
        b.wait_idle()
        b.wait_until(lambda: parse_qs(urlparse(b.driver.current_url).query).get("lib") == [str(released)], 20,
                     f"?lib= in the {page} URL")
