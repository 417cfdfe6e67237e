"""Screenshot tour: every page of app.py's navigation, at a laptop and a desktop size, on the demo library.

    .venv/bin/python -m pytest -q tests/e2e/test_e2e_tour.py

For each page in ``app_nav_pages()`` (read from app.py, so a new page joins the tour by itself)
and each window size, the test opens the page, waits until the script run is over and every
spinner and plotly chart has finished drawing, asserts that no exception box is shown and that
the page's heading is its own, that no text is cut with an ellipsis and no table
is wider than its box (columns off-screen), that no table cell reads "None" and no metric tile is cut,
and — at 1280×800 — that Home's headline numbers are inside the first screen and Transferability's
heatmap starts in its upper half (issue 28); it saves ``tests/e2e/artifacts/tour_<W>x<H>_<page>.png``
(the viewport, as a visitor first sees it) and ``..._full.png`` (the whole page); look at them
after a change to the pages.
"""
from __future__ import annotations

import struct

import pytest
from e2e_harness import ARTIFACTS, app_nav_pages

from core.config import REPO_ROOT

DEMO = REPO_ROOT / "data" / "demo"
SIZES = [(1280, 800), (1400, 1000)]
# the heading a page shows, when it is not the page's navigation title
HEADING = {"Home": "Prompt Atlas"}

pytestmark = pytest.mark.skipif(not (DEMO / "results.csv").is_file(),
                                reason=f"the tour shows the demo library, which is not built ({DEMO}; make demo)")


@pytest.fixture(scope="module")
def server_env():
    return {"ATLAS_DEMO": str(DEMO)}


def truncated_texts(b) -> list[str]:
    """Texts the page cuts with an ellipsis ("Per-target normalisat…"): widget labels, captions, buttons,
    selectbox values — every element whose CSS ellipsis is in effect (scrollWidth > clientWidth)."""
    return b.driver.execute_script("""
      const out = [];
      for (const e of document.querySelectorAll("[data-testid='stMain'] *")) {
        if (!e.offsetParent || e.closest('.js-plotly-plot, [data-testid="stDataFrame"]')) continue;
        const cs = getComputedStyle(e);
        if (cs.textOverflow === 'ellipsis' && e.scrollWidth > e.clientWidth + 1 && e.textContent.trim())
          out.push(e.textContent.trim().slice(0, 80));
      }
      return [...new Set(out)];""")


def overflowing_tables(b) -> list[str]:
    """Headers of every st.dataframe wider than its box (columns off-screen behind a scrollbar)."""
    return b.driver.execute_script("""
      const out = [];
      for (const g of document.querySelectorAll("[data-testid='stDataFrame']")) {
        const sc = g.querySelector('.dvn-scroller');
        if (!sc || !g.offsetParent) continue;
        if (sc.scrollWidth > sc.clientWidth + 2) {
          const head = [...g.querySelectorAll('table tr:first-child > *')].map(c => c.textContent.trim());
          out.push(head.join('|') + ` (${sc.scrollWidth} > ${sc.clientWidth} px)`);
        }
      }
      return out;""")


def none_cells(b) -> list[str]:
    """Cells of every st.dataframe that read "None" (a grid draws a missing value so): header|row."""
    out = []
    for t in b.tables():
        for row in t[1:]:
            out += [f"{'|'.join(t[0])}: {'|'.join(row)}" for c in row if c == "None"][:1]
    return out


def cut_metric_tiles(b) -> list[str]:
    """Metric tiles whose label or value does not fit its box ("3.6 …")."""
    return b.driver.execute_script("""
      const out = [];
      for (const m of document.querySelectorAll("[data-testid='stMetric']")) {
        for (const e of m.querySelectorAll('*')) {
          if (e.offsetParent && e.children.length === 0 && e.scrollWidth > e.clientWidth + 1 && e.textContent.trim())
            out.push(e.textContent.trim().slice(0, 60));
        }
      }
      return [...new Set(out)];""")


def first_screen(b, title: str) -> list[str]:
    """What must be on the first screen at 1280×800 (issue 28); [] when it is. The viewport's own height is
    used (a window of 800 px may give a smaller viewport)."""
    vh = b.driver.execute_script("return window.innerHeight")
    if title == "Home":  # every headline number inside the first screen
        rects = b.driver.execute_script("""return [...document.querySelectorAll("[data-testid='stMetric']")]
            .map(m => { const r = m.getBoundingClientRect(); return [m.textContent.trim().slice(0, 40), r.top, r.bottom]; });""")
        return [f"Home metric {t!r} at {top:.0f}–{bottom:.0f} px, viewport {vh} px" for t, top, bottom in rects
                if bottom > vh] + ([] if rects else ["Home shows no headline metric"])
    if title == "Transferability":  # the heatmap starts in the upper half
        top = b.driver.execute_script("""const p = document.querySelector("[data-testid='stMain'] .js-plotly-plot");
            return p ? p.getBoundingClientRect().top : null;""")
        return [] if top is not None and top < vh / 2 else [f"heatmap top at {top} px, viewport {vh} px"]
    return []


def finished_drawing(b) -> bool:
    """No spinner or skeleton left, and every plotly chart on the page has drawn its SVG."""
    return b.driver.execute_script("""
      if (document.querySelector("[data-testid='stSpinner'], [data-testid='stSkeleton']")) return false;
      return [...document.querySelectorAll('.js-plotly-plot')].every(p => p.querySelector('.main-svg'));""")


@pytest.fixture(scope="module")
def finished_run(atlas_server):
    """One finished 40-step scratch run in the server's run store, so the Runs page shows a run's view
    (its curves, metrics and event table) as after a first launch. Written directly: nothing trains."""
    import time

    from core.runs.store import RunStore

    store = RunStore(atlas_server.home / "runs.db")
    rid = "tour-scratch"
    store.add_run(rid, {"method": "scratch", "target": "sent_tweet", "sources": [], "seed": 0, "device": "cpu",
                        "params": {"steps": 40, "train_size": 128, "eval_every": 10}, "backend": "local"})
    store.update_run(rid, status="running", started=time.time() - 30, device="cpu")
    for step in range(1, 41):
        ce = 0.6931471805599453 * (0.97 ** step) + 0.05
        store.add_event(rid, "progress", step, {"loss": ce, "ce": ce, "examples_per_s": 123.45678901234,
                                                "eta_s": 40 - step, "rss_mb": 612.3456789})
        if step % 10 == 0:
            acc = 0.5 + step / 130
            store.add_event(rid, "eval", step, {"val_acc": acc, "best_val_acc": acc})
    store.set_status(rid, "finished", test_score=0.7123456789)
    return rid


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_screenshot_tour(browser, finished_run, size):
    b = browser
    b.driver.set_window_size(*size)
    seen = []
    try:
        for path, title in app_nav_pages():
            b.open(path, timeout=120)
            heading = HEADING.get(title, title)
            b.wait_for("[data-testid='stHeading'] h1", text=heading, timeout=90)
            b.wait_idle(start_wait=0.5)
            b.wait_until(lambda: finished_drawing(b), 90, f"{title}: charts drawn")
            b.assert_no_exception()
            assert not truncated_texts(b), (title, size, truncated_texts(b))  # nothing cut to "…"
            assert not overflowing_tables(b), (title, size, overflowing_tables(b))  # no column off-screen
            assert not none_cells(b), (title, size, none_cells(b))  # a missing value is blank or "—"
            assert not cut_metric_tiles(b), (title, size, cut_metric_tiles(b))  # no tile cut to "3.6 …"
            if size == (1280, 800):
                b.driver.execute_script("window.scrollTo(0, 0)")
                assert not first_screen(b, title), first_screen(b, title)
            h1 = [e.text for e in b.find("[data-testid='stHeading'] h1")]
            assert h1 and heading in h1[0], (title, h1)  # the page's own heading comes first
            shot = ARTIFACTS / f"tour_{size[0]}x{size[1]}_{path or 'home'}.png"
            b.driver.save_screenshot(str(shot))
            width, height = struct.unpack(">II", shot.read_bytes()[16:24])  # PNG IHDR
            assert width == size[0], (shot, width, height)
            b.screenshot(f"tour_{size[0]}x{size[1]}_{path or 'home'}_full")  # the whole page, scrolled
            seen.append(title)
    finally:
        b.driver.set_window_size(1400, 1000)
    assert [t for _, t in app_nav_pages()] == seen
