"""Screenshot tour: every page of app.py's navigation, at a laptop and a desktop size, on the demo library.

    .venv/bin/python -m pytest -q tests/e2e/test_e2e_tour.py

For each page in ``app_nav_pages()`` (read from app.py, so a new page joins the tour by itself)
and each window size, the test opens the page, waits until the script run is over and every
spinner and plotly chart has finished drawing, asserts that no exception box is shown and that
the page's heading is its own, that no text is cut with an ellipsis and no table
is wider than its box (columns off-screen), and saves ``tests/e2e/artifacts/tour_<W>x<H>_<page>.png``
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
