"""Fixtures for the real-browser tests: one `streamlit run` server and one headless Chromium per test module.

    .venv/bin/python -m pytest -q tests/e2e        (make e2e; Chromium from `make browser`)

A module changes what its server sees by overriding the `server_env` fixture (module scope),
e.g. pointing ATLAS_DEMO at a small library it built itself. ATLAS_HOME is always a fresh
temporary folder, so uploads and runs never touch the developer's workspace.
A failing test leaves a screenshot `FAILED-<test>.png` and the server log in tests/e2e/artifacts/.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from e2e_harness import ARTIFACTS, Browser, HarnessError, StreamlitServer, browser_problem  # noqa: E402


@pytest.fixture(scope="session")
def mini_demo(tmp_path_factory) -> Path:
    """A small demo-shaped library (prompts/ + results.csv), built once per session (~5 s)."""
    from mini_library import build

    return build(tmp_path_factory.mktemp("mini_demo"))


@pytest.fixture(scope="module")
def server_env() -> dict[str, str]:
    """Extra environment for this module's server (override in a test module)."""
    return {}


@pytest.fixture(scope="module")
def atlas_server(request, server_env, tmp_path_factory):
    """A running `streamlit run app.py` on a free localhost port with an isolated ATLAS_HOME."""
    problem = browser_problem()
    if problem:  # fail, never skip silently: CI must run these
        pytest.fail(problem, pytrace=False)
    home = tmp_path_factory.mktemp("e2e_home")
    env = {"ATLAS_HOME": str(home), **server_env}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = ARTIFACTS / f"server-{request.module.__name__.split('.')[-1]}.log"
    server = StreamlitServer(env=env, log_path=log)
    try:
        server.start()
    except HarnessError as e:
        pytest.fail(str(e), pytrace=False)
    server.home = home
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser(atlas_server):
    """A headless Chromium (fresh profile) pointed at the module's server."""
    try:
        b = Browser(atlas_server.url)
    except HarnessError as e:
        pytest.fail(str(e), pytrace=False)
    b.server = atlas_server
    # Open the home page first, as a person does (deep links as a fresh server's first request are
    # checked by test_e2e_pages.py::test_deep_link_as_first_request and test_e2e_sharing.py).
    b.open("")
    yield b
    b.close()


@pytest.fixture(scope="session", autouse=True)
def _fresh_failure_screenshots():
    """Drop failure screenshots of earlier runs: what is left in artifacts/ describes this run.
    (A fixture, not pytest_sessionstart: `pytest tests` loads this conftest after that hook.)"""
    for old in ARTIFACTS.glob("FAILED-*.png"):
        old.unlink(missing_ok=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, keep what the browser showed (the server log is already in artifacts/)."""
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" and rep.failed and "browser" in getattr(item, "fixturenames", ()):
        b = item.funcargs.get("browser")
        if b is not None:
            try:
                path = b.screenshot(f"FAILED-{item.name}")
                rep.sections.append(("e2e", f"screenshot: {path}\nserver log: {b.server.log_path}"))
            except Exception:
                pass

