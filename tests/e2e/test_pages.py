"""Every page opens in a real browser with no exception box and shows its main element.

    .venv/bin/python -m pytest -q tests/e2e/test_pages.py

Twice: on a small demo-shaped library (tests/e2e/mini_library.py) and with no library at
all (a friendly empty state, never a crash).
"""
from __future__ import annotations

import pytest
from e2e_harness import Browser, StreamlitServer, check_page

# page url path -> (main element css, text it must contain or None)
PAGES = {
    "": ("[data-testid='stHeading']", "Prompt Atlas"),
    "library": ("[data-testid='stHeading']", "Library"),
    "transferability": ("[data-testid='stHeading']", "Transferability"),
    "projection": ("[data-testid='stHeading']", "Projection"),
    "runs": ("[data-testid='stHeading']", "Runs"),
}


@pytest.fixture(scope="module")
def server_env(mini_demo):
    return {"ATLAS_DEMO": str(mini_demo)}


@pytest.mark.parametrize("path", list(PAGES))
def test_page_opens(browser, path):
    css, text = PAGES[path]
    el = check_page(browser, path, css, text=text)
    assert el.is_displayed()
    browser.screenshot(f"page_{path or 'home'}")


@pytest.fixture(scope="module")
def empty_browser(tmp_path_factory):
    """A second server whose demo folder does not exist: every page must show its empty state."""
    env = {"ATLAS_HOME": str(tmp_path_factory.mktemp("empty_home")),
           "ATLAS_DEMO": str(tmp_path_factory.mktemp("no_demo") / "missing")}
    with StreamlitServer(env=env) as srv, Browser(srv.url) as b:
        yield b


@pytest.mark.parametrize("path", list(PAGES))
def test_page_empty_state(empty_browser, path):
    css, text = PAGES[path]
    check_page(empty_browser, path, css, text=text)
    alerts = empty_browser.wait_for("[data-testid='stAlert']", timeout=20)
    assert alerts, f"page {path or 'home'!r} shows no message on an empty library"
    empty_browser.screenshot(f"empty_{path or 'home'}")
