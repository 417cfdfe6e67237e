"""A shared URL reopens the same view — also as the very first request to a fresh server.

    .venv/bin/python -m pytest -q tests/e2e/test_shared_url.py

The Transferability page keeps its state (metric, group, order, target) in query params.
A person sets a view with the widgets, copies the address bar, and someone else opens it.
"""
from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest

from e2e_harness import Browser, StreamlitServer, check_page

HEATMAP = ".st-key-tr_heatmap .js-plotly-plot"
APP_NAV = ["Home", "Library", "Transferability", "Projection", "Runs"]  # app.py's st.navigation


@pytest.fixture(scope="module")
def fresh(mini_demo, tmp_path_factory):
    """A server no browser has talked to yet (the `browser` fixture would warm it on "/")."""
    env = {"ATLAS_HOME": str(tmp_path_factory.mktemp("url_home")), "ATLAS_DEMO": str(mini_demo)}
    with StreamlitServer(env=env) as srv, Browser(srv.url) as b:
        yield b


def nav_labels(b) -> list[str]:
    return [e.text.split("\n")[-1].strip() for e in b.find("[data-testid='stSidebarNav'] a")]


@pytest.mark.xfail(strict=True, reason=(
    "Streamlit 1.67 quirk: with a folder named pages/ next to app.py, a fresh server runs the first "
    "deep-linked page as an old-style 'v1' page (PagesManager.uses_pages_directory stays True until some "
    "session runs app.py's st.navigation): app.py is skipped — no wide layout, a navigation listing "
    "pages/*.py (incl. _shared) — until someone opens '/'. Fix in the app: rename pages/ (e.g. views/). "
    "strict: when that is fixed this test XPASSes and fails, so remove this marker."))
def test_deep_link_is_first_request(fresh):
    url = fresh.url_for("transferability", metric="e_tok", order="family", target="sent_tweet")
    fresh.driver.get(url)
    fresh.wait_idle()
    fresh.wait_for(HEATMAP, timeout=60)
    fresh.screenshot("shared_url_fresh_server")
    assert nav_labels(fresh) == APP_NAV, nav_labels(fresh)
    assert fresh.selected(key="tr_metric").startswith("e_tok")


def test_url_round_trip(fresh):
    """Set a view with the widgets, then reopen the address bar's URL in a new session."""
    b = fresh
    check_page(b, "transferability", HEATMAP)
    b.select(lambda t: t.startswith("e_tok "), key="tr_metric")   # shown as "e_tok — <label>"
    b.select("task family", key="tr_order")
    b.select("party_tweet", key="tr_target")
    b.wait_for(HEATMAP)
    url = b.wait_until(lambda: "target=party_tweet" in b.driver.current_url and b.driver.current_url, 20,
                       "the URL to carry the chosen target")
    q = parse_qs(urlparse(url).query)
    assert q.get("metric") == ["e_tok"] and q.get("order") == ["family"], q
    shown = (b.selected(key="tr_metric"), b.selected(key="tr_order"), b.selected(key="tr_target"))

    b.driver.get(b.base_url)  # leave, so the next load is a new session rebuilt from the URL alone
    b.wait_idle()
    b.driver.get(url)
    b.wait_idle()
    b.wait_for(HEATMAP, timeout=60)
    b.assert_no_exception()
    assert (b.selected(key="tr_metric"), b.selected(key="tr_order"), b.selected(key="tr_target")) == shown
    assert nav_labels(b) == APP_NAV
    rank = b.table_with("source", "predicted (e_tok)")
    assert b.column(rank, "source")[0] == "party_speech", rank  # same family: ranked first
    b.screenshot("shared_url_reopened")

