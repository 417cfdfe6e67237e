"""The browser checks can fail: a copy of the app with an injected exception trips the detector.

    .venv/bin/python -m pytest -q tests/e2e/test_e2e_can_fail.py

A passing browser suite means something only if the same checks fail on a broken app.
Here the Home page of a throw-away copy of the app raises; `check_page` — the check every
page-smoke test uses — must report the exception box, and a healthy page must still pass.
"""
from __future__ import annotations

import pytest
from e2e_harness import Browser, StreamlitServer, check_page, copy_app

INJECTED = "e2e-injected-failure"


@pytest.fixture(scope="module")
def broken_app(tmp_path_factory):
    root = copy_app(tmp_path_factory.mktemp("broken_app"))
    home = root / "pages" / "home.py"
    home.parent.mkdir(exist_ok=True)
    src = home.read_text() if home.exists() else ""
    # draw something, then raise before the page's own code (which may st.stop() early on
    # an empty library): a bug that surfaces after part of the page is already on screen
    home.write_text("import streamlit as st\nst.write('partly drawn')\n"
                    f"raise RuntimeError({INJECTED!r})\n\n" + src)
    return root


@pytest.fixture(scope="module")
def broken_browser(broken_app, tmp_path_factory):
    env = {"ATLAS_HOME": str(tmp_path_factory.mktemp("broken_home"))}
    with StreamlitServer(env=env, cwd=broken_app) as srv, Browser(srv.url) as b:
        yield b


def test_detector_reports_injected_exception(broken_browser):
    b = broken_browser
    with pytest.raises(AssertionError, match=INJECTED):
        check_page(b, "", "[data-testid='stMain']")
    assert any(INJECTED in e for e in b.exceptions())
    b.screenshot("can_fail_injected_exception")


def test_detector_quiet_on_healthy_page(broken_browser):
    """The same copy's Runs page is untouched: the detector must not cry wolf."""
    el = check_page(broken_browser, "runs", "[data-testid='stMain']")
    assert el.is_displayed()
