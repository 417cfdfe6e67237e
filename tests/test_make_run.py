"""`make run` serves without a file watcher unless ATLAS_WATCH=1 (issue 15, defect 9).

    .venv/bin/python -m pytest -q tests/test_make_run.py

`make -n` only prints the recipe (nothing is installed or served).
"""
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run_recipe(*extra: str) -> str:
    out = subprocess.run(["make", "-n", "run", *extra], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return " ".join(l for l in out.stdout.replace("\\\n", " ").splitlines() if "streamlit run" in l)


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_run_does_not_watch_by_default_and_watches_when_asked():
    """make run serves serve.py (app.py + the start-up warm-up), without a watcher unless asked."""
    plain = _run_recipe()
    assert "streamlit run serve.py" in plain
    assert "--server.fileWatcherType none" in plain and "--server.runOnSave false" in plain
    watched = _run_recipe("ATLAS_WATCH=1")
    assert "--server.fileWatcherType auto" in watched and "--server.runOnSave true" in watched


def test_streamlit_config_has_no_watcher():
    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["fileWatcherType"] == "none"


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_an_exposed_make_run_names_its_public_host():
    """Exposed, Streamlit gets --browser.serverAddress (ATLAS_PUBLIC_HOST, default the bind address):
    no external-IP lookup at start-up; on loopback nothing changes."""
    assert "--browser.serverAddress" not in _run_recipe()
    assert "--browser.serverAddress 0.0.0.0" in _run_recipe("ATLAS_HOST=0.0.0.0")
    named = _run_recipe("ATLAS_HOST=0.0.0.0", "ATLAS_PUBLIC_HOST=atlas.lab.example")
    assert "--browser.serverAddress atlas.lab.example" in named and "--server.address 0.0.0.0" in named
