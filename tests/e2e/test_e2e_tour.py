"""Screenshot tour: every page of app.py's navigation, at a laptop and a desktop size, on the demo library.

    .venv/bin/python -m pytest -q tests/e2e/test_e2e_tour.py

For each page in ``app_nav_pages()`` (read from app.py, so a new page joins the tour by itself)
and each window size, the test opens the page, waits until the script run is over and every
spinner and plotly chart has finished drawing, asserts that no exception box is shown and that
the page's heading is its own, and saves ``tests/e2e/artifacts/tour_<W>x<H>_<page>.png``
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


def finished_drawing(b) -> bool:
    """No spinner or skeleton left, and every plotly chart on the page has drawn its SVG."""
    return b.driver.execute_script("""
      if (document.querySelector("[data-testid='stSpinner'], [data-testid='stSkeleton']")) return false;
      return [...document.querySelectorAll('.js-plotly-plot')].every(p => p.querySelector('.main-svg'));""")


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_screenshot_tour(browser, size):
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
