"""pages/_deeplink.py: the one private Streamlit hook. Fails loudly when a Streamlit upgrade breaks it.

    .venv/bin/python -m pytest -q tests/test_deeplink.py

A deep link opened as a fresh server's first request ran the page without app.py (Streamlit's
v1 pages/ mode). The hook clears ``PagesManager.uses_pages_directory`` and reruns through app.py.
tests/e2e/test_e2e_pages.py::test_deep_link_as_first_request checks the same in a real browser.
"""
from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

REPO = Path(__file__).resolve().parent.parent
APP_NAV = ["Home", "Library", "Transferability", "Projection", "Runs", "Definitions"]  # app.py's st.navigation
UPGRADE = ("Streamlit changed the private API pages/_deeplink.py relies on; re-check the deep-link fix "
           "(tests/e2e/test_e2e_pages.py::test_deep_link_as_first_request) and update the hook")


@pytest.fixture(autouse=True)
def no_demo(tmp_path, monkeypatch):
    monkeypatch.setenv("ATLAS_DEMO", str(tmp_path / "no-demo"))
    for var in ("ATLAS_MODE", "ATLAS_ALLOWED_ROOTS", "ATLAS_LIBRARY"):
        monkeypatch.delenv(var, raising=False)


def test_the_private_flag_and_its_readers_still_exist():
    from streamlit.commands import navigation
    from streamlit.runtime import pages_manager
    from streamlit.runtime.scriptrunner import script_runner

    assert hasattr(pages_manager.PagesManager, "uses_pages_directory"), UPGRADE
    assert hasattr(script_runner, "_mpa_v1"), UPGRADE
    assert "if PagesManager.uses_pages_directory:" in inspect.getsource(script_runner.ScriptRunner), UPGRADE
    assert "PagesManager.uses_pages_directory = False" in inspect.getsource(navigation.navigation), UPGRADE


def first_run_of(page: str) -> AppTest:
    """A fresh app whose very first run asks for ``page`` (what a shared link does)."""
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.switch_page(page)
    return at.run()


def registered(at) -> list[str]:
    # AppTest keeps the pages the run registered (private too: part of what this test guards)
    return [p.get("page_name") for p in at._registered_pages.values()]


def test_a_deep_link_as_first_run_goes_through_app_py():
    at = first_run_of("pages/library.py")
    assert not at.exception
    assert registered(at) == APP_NAV, f"app.py's navigation did not run: {registered(at)}\n{UPGRADE}"
    assert at.title[0].value == "📚 Library"


def test_without_the_hook_streamlit_still_skips_app_py(monkeypatch):
    """If this fails, Streamlit fixed the quirk itself: drop pages/_deeplink.py and this file."""
    import pages._deeplink as hook

    monkeypatch.setattr(hook, "ensure_whole_app", lambda: None)
    at = first_run_of("pages/library.py")
    assert registered(at) != APP_NAV and "shared" in registered(at), registered(at)
