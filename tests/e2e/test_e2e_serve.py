"""`make run`'s entry (serve.py) warms the server before it answers; app.py alone does not.

    .venv/bin/python -m pytest -q tests/e2e/test_e2e_serve.py

No browser: the server's own log says what the warm-up did, and the harness returns only once
/_stcore/health answers, so the line being there at that moment means the first visitor cannot
arrive before the warm-up ends (ATLAS_WARM_WAIT, default 20 s, bounds how long that may hold).
"""
from __future__ import annotations

import re

from big_library import build
from e2e_harness import StreamlitServer


def _env(tmp_path, lib):
    return {"ATLAS_HOME": str(tmp_path / "home"), "ATLAS_LIBRARY": str(lib), "ATLAS_DEMO": str(tmp_path / "no-demo"),
            "ATLAS_CACHE": str(tmp_path / "cache")}


def test_serve_warms_before_it_answers(tmp_path):
    lib = build(25, tmp_path / "lib")
    with StreamlitServer(env=_env(tmp_path, lib)) as srv:  # serve.py: the harness default, as `make run`
        log = srv.log_tail(20000)
    m = re.search(r"Prompt Atlas warmed: imports ([\d.]+) s.*library ([\d.]+) s \((\d+) prompts\)", log)
    assert m, log[-2000:]
    assert int(m.group(3)) == 25  # the library the first visit shows, indexed once at start-up


def test_app_alone_is_not_warmed(tmp_path):
    lib = build(5, tmp_path / "lib")
    with StreamlitServer(env=_env(tmp_path, lib), app="app.py") as srv:
        log = srv.log_tail(20000)
    assert "You can now view" in log and "Prompt Atlas warmed" not in log


def test_a_bad_warm_wait_is_said_and_the_default_used(tmp_path):
    lib = build(5, tmp_path / "lib")
    with StreamlitServer(env={**_env(tmp_path, lib), "ATLAS_WARM_WAIT": "twenty"}) as srv:
        log = srv.log_tail(20000)
    assert "ATLAS_WARM_WAIT='twenty' is not a number of seconds: waiting 20 s" in log
    assert "Prompt Atlas warmed" in log  # the default wait still held the first visitor for the warm-up
