"""A shared server in a real browser: bound to 0.0.0.0 (probed through 127.0.0.1), ATLAS_MODE unset.

    .venv/bin/python -m pytest -q tests/e2e/test_e2e_sharing.py

What a visitor must not get: server files (``?lib=/etc`` or a typed ``/etc`` give one refusal and no
file name or content), launch / upload / delete controls, Streamlit's Deploy button. What they must
get: a deep link as the very first request opens the whole app. The same server with
ATLAS_MODE=full shows the controls again.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from e2e_harness import app_nav, ARTIFACTS, Browser, browser_problem, HarnessError, StreamlitServer

APP_NAV = app_nav()  # app.py's st.navigation
REFUSED = "not inside a folder this server shares"
ALERT = "[data-testid='stAlert']"
DEPLOY = "[data-testid='stAppDeployButton']"


def seed_home(home: Path) -> None:
    """One finished run in the server's store, so the Runs page has retry/delete controls to show."""
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from core.runs.store import RunStore

    store = RunStore(home / "runs.db")
    store.add_run("r-shared", {"method": "scratch", "target": "spam_sms", "sources": [], "seed": 0,
                               "device": "cpu", "params": {"steps": 2}, "backend": "local"})
    store.update_run("r-shared", status="running", started=time.time() - 5, device="cpu")
    store.set_status("r-shared", "finished", test_score=0.8)


def shared_server(request, tmp_path_factory, mini_demo, **env):
    problem = browser_problem()
    if problem:
        pytest.fail(problem, pytrace=False)
    home = tmp_path_factory.mktemp("shared_home")
    seed_home(home)
    log = ARTIFACTS / f"server-sharing-{env.get('ATLAS_MODE', 'unset')}.log"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    server = StreamlitServer(env={"ATLAS_HOME": str(home), "ATLAS_DEMO": str(mini_demo), **env},
                             log_path=log, address="0.0.0.0")
    try:
        server.start()
    except HarnessError as e:
        pytest.fail(str(e), pytrace=False)
    assert server.url.startswith("http://127.0.0.1:")
    return server


def _browse(server):
    """A browser that has not opened anything yet on ``server``; both are closed afterwards."""
    try:
        b = Browser(server.url)
    except HarnessError as e:
        server.stop()
        pytest.fail(str(e), pytrace=False)
    b.server = server
    yield b
    b.close()
    server.stop()


@pytest.fixture(scope="module")
def viewer(request, tmp_path_factory, mini_demo):
    """A fresh 0.0.0.0 server (ATLAS_MODE unset) and a browser that has not opened anything yet."""
    yield from _browse(shared_server(request, tmp_path_factory, mini_demo))


@pytest.fixture(scope="module")
def full(request, tmp_path_factory, mini_demo):
    yield from _browse(shared_server(request, tmp_path_factory, mini_demo, ATLAS_MODE="full"))


def nav_labels(b) -> list[str]:
    return [e.text.split("\n")[-1].strip() for e in b.find("[data-testid='stSidebarNav'] a")]


def etc_names() -> set[str]:
    return {n for n in os.listdir("/etc") if len(n) >= 4}


def leaked(text: str, baseline: str) -> list[str]:
    """Names of /etc entries on the page that the page does not show anyway (English words)."""
    return sorted(n for n in etc_names() if n in text and n not in baseline)


# Must run first on the `viewer` server (pytest keeps file order).
def test_deep_link_as_first_request_opens_the_whole_app(viewer):
    b = viewer
    b.open("transferability", metric="e_tok")
    b.wait_for(".st-key-tr_heatmap .js-plotly-plot", timeout=90)
    b.assert_no_exception()
    assert nav_labels(b) == APP_NAV, nav_labels(b)
    assert b.selected(key="tr_metric").startswith("e_tok"), "the page's state from the URL was lost"
    assert "metric=e_tok" in b.driver.current_url
    width = b.driver.execute_script(
        "return document.querySelector(\"[data-testid='stMainBlockContainer']\").getBoundingClientRect().width;")
    assert width > 900, f"narrow layout ({width}px): app.py's layout='wide' did not apply"
    assert "Viewer mode" in b.page_text() or "Viewer mode" in b.driver.find_element(
        "css selector", "[data-testid='stSidebar']").text


def refusals(b) -> list[str]:
    return [a.text.split("\n")[-1] for a in b.find(ALERT) if REFUSED in a.text]  # without the icon line


def test_lib_param_outside_the_roots_shows_one_refusal_and_no_server_file(viewer):
    b = viewer
    b.open("library")
    b.wait_for("[data-testid='stDataFrame']")
    baseline = b.page_text()
    b.open("library", lib="/etc")
    b.wait_for(ALERT, text=REFUSED)
    b.assert_no_exception()
    b.screenshot("shared_lib_etc")
    assert refusals(b) == [f"/etc: {REFUSED} (see 'Sharing the dashboard' in the README)"]
    text = b.page_text()
    assert "could not be read" not in text
    assert not leaked(text, baseline), leaked(text, baseline)


def test_typed_folder_outside_the_roots_shows_one_refusal_and_no_server_file(viewer):
    b = viewer
    b.open("library")
    b.wait_for("[data-testid='stDataFrame']")
    baseline = b.page_text()
    b.set_text("/etc", key="library_dir_input")
    b.wait_for(ALERT, text=REFUSED)
    b.assert_no_exception()
    assert len(refusals(b)) == 1, refusals(b)
    text = b.page_text()
    assert "could not be read" not in text
    assert not leaked(text, baseline), leaked(text, baseline)


def test_viewer_mode_has_no_upload_launch_or_delete(viewer):
    b = viewer
    b.open("library")
    b.wait_for("[data-testid='stDataFrame']")
    assert not b.find("[data-testid='stFileUploader']")
    assert "Uploads: off — this server is in viewer mode" in b.page_text()
    b.open("runs")
    b.wait_for("[data-testid='stHeading']", text="Runs")
    b.wait_for("[data-testid='stProgress']", timeout=30)  # the run's live view is drawn
    b.assert_no_exception()
    b.screenshot("shared_runs_viewer")
    for key in ("runs_launch", "runs_delete", "runs_retry", "runs_cancel"):
        assert not b.find(b.keyed(key)), f"{key} shown in viewer mode"
    text = b.page_text()
    assert "Launching runs: off" in text and "Cancel, retry and delete: off" in text
    assert not b.find(DEPLOY)


def test_atlas_mode_full_shows_the_controls(full):
    b = full
    b.open("library")
    b.wait_for("[data-testid='stFileUploader']")
    assert "Limits: " in b.page_text() and "32 files per upload" in b.page_text()
    b.open("runs")
    b.wait_for(".st-key-runs_launch button", visible=False)  # inside the collapsed "New run" expander
    b.wait_for(".st-key-runs_delete button")
    b.wait_for(".st-key-runs_retry button")
    b.assert_no_exception()
    assert "viewer mode" not in b.page_text()
    assert not b.find(DEPLOY)
