"""Every page opens in a real browser with no exception box and shows its main element.

    .venv/bin/python -m pytest -q tests/e2e/test_e2e_pages.py

Twice: on a small demo-shaped library (tests/e2e/mini_library.py) and with no library at
all (a friendly empty state, never a crash).
"""
from __future__ import annotations

import pytest
from e2e_harness import Browser, StreamlitServer, check_page

# page url path -> (heading css, text it must contain): present with or without a library
PAGES = {
    "": ("[data-testid='stHeading']", "Prompt Atlas"),
    "library": ("[data-testid='stHeading']", "Library"),
    "transferability": ("[data-testid='stHeading']", "Transferability"),
    "projection": ("[data-testid='stHeading']", "Projection"),
    "runs": ("[data-testid='stHeading']", "Runs"),
}
# page -> the element it exists for, once there is a library
MAIN = {
    "": "[data-testid='stMetric']",                       # headline numbers
    "library": "[data-testid='stDataFrame']",             # the prompt table
    "transferability": ".st-key-tr_heatmap .js-plotly-plot",
    "projection": ".st-key-proj_chart .js-plotly-plot",
    "runs": ".st-key-runs_launch button",                 # the launch form
}


@pytest.fixture(scope="module")
def server_env(mini_demo):
    return {"ATLAS_DEMO": str(mini_demo)}


@pytest.mark.parametrize("path", list(PAGES))
def test_page_opens(browser, path):
    css, text = PAGES[path]
    check_page(browser, path, css, text=text)
    el = browser.wait_for(MAIN[path], timeout=60)[0]
    browser.assert_no_exception()
    assert el.is_displayed()
    browser.screenshot(f"page_{path or 'home'}")


@pytest.fixture(scope="module")
def empty_browser(tmp_path_factory):
    """A second server whose demo folder does not exist: every page must show its empty state.
    No browser has talked to it yet (the `browser` fixture would warm a server on "/")."""
    env = {"ATLAS_HOME": str(tmp_path_factory.mktemp("empty_home")),
           "ATLAS_DEMO": str(tmp_path_factory.mktemp("no_demo") / "missing")}
    with StreamlitServer(env=env) as srv, Browser(srv.url) as b:
        yield b


APP_NAV = ["Home", "Library", "Transferability", "Projection", "Runs", "Definitions"]  # app.py's st.navigation


def nav_labels(b) -> list[str]:
    return [e.text.split("\n")[-1].strip() for e in b.find("[data-testid='stSidebarNav'] a")]


# Must run first on `empty_browser`'s server (pytest keeps file order): a deep link as the very
# first request of a fresh server. Streamlit 1.67 ran it as an old-style "v1" page without app.py
# (no navigation titles, narrow layout, pages/*.py listed); pages/_deeplink.py reruns it through
# app.py (tests/test_deeplink.py guards the private hook).
def test_deep_link_as_first_request(empty_browser):
    b = empty_browser
    b.open("transferability", metric="e_tok")
    b.screenshot("deep_link_fresh_server")
    assert nav_labels(b) == APP_NAV, nav_labels(b)
    b.wait_for("[data-testid='stHeading']", text="Transferability")
    assert "/transferability" in b.driver.current_url and "metric=e_tok" in b.driver.current_url
    assert is_wide(b), "app.py's layout='wide' was not applied"


def is_wide(b) -> bool:
    """app.py sets layout="wide": the main block is not capped at Streamlit's 736 px centred width."""
    width = b.driver.execute_script(
        "const m = document.querySelector(\"[data-testid='stMainBlockContainer']\"); "
        "return m ? m.getBoundingClientRect().width : 0;")
    return width > 900


@pytest.mark.parametrize("path", list(PAGES))
def test_page_empty_state(empty_browser, path):
    css, text = PAGES[path]
    check_page(empty_browser, path, css, text=text)
    alerts = empty_browser.wait_for("[data-testid='stAlert']", timeout=20)
    assert alerts, f"page {path or 'home'!r} shows no message on an empty library"
    assert nav_labels(empty_browser) == APP_NAV
    empty_browser.screenshot(f"empty_{path or 'home'}")
