"""The pages on a shared server (AppTest): viewer mode hides every control that changes what a user
owns, with a one-line reason; a folder from the browser outside the allowed roots gets one refusal
and nothing is read; a shared full-mode server takes no Ray address from the page.

    .venv/bin/python -m pytest -q tests/test_sharing_pages.py

tests/e2e/test_e2e_sharing.py checks the same against a real server bound to 0.0.0.0.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch
from streamlit import config as st_config
from streamlit.testing.v1 import AppTest

from core.access import REFUSED
from core.runs.store import RunStore

PAGES = Path(__file__).resolve().parent.parent / "pages"


@pytest.fixture(autouse=True)
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("ATLAS_DEMO", str(tmp_path / "no-demo"))
    for var in ("ATLAS_MODE", "ATLAS_ALLOWED_ROOTS", "ATLAS_LIBRARY"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def bound_to_all():
    """streamlit's server.address as `--server.address 0.0.0.0` sets it."""
    before = st_config.get_option("server.address")
    st_config.set_option("server.address", "0.0.0.0")
    yield
    st_config.set_option("server.address", before)


def page(name: str, **query) -> AppTest:
    at = AppTest.from_file(str(PAGES / f"{name}.py"), default_timeout=120)
    for k, v in query.items():
        at.query_params[k] = str(v)
    return at.run()


def texts(at) -> str:
    parts = [e.value for kind in (at.markdown, at.caption, at.error, at.warning, at.info, at.success)
             for e in kind]
    return "\n".join(str(p) for p in parts)


def etc_names() -> set[str]:
    return {n for n in os.listdir("/etc") if len(n) >= 5}


def assert_refused_once(at, typed: str):
    assert not at.exception, [e.value for e in at.exception]
    assert [e.value for e in at.error] == [f"{typed}: {REFUSED}"]
    assert not at.expander or all("could not be read" not in e.label for e in at.expander)
    shown, baseline = texts(at), texts(page("library"))  # names of /etc that are also English words
    leaked = sorted(n for n in etc_names() if n in shown and n not in baseline)
    assert not leaked, f"server file names on the page: {leaked}"


def test_bound_to_all_interfaces_is_viewer_mode(bound_to_all):
    at = page("library")
    assert not at.get("file_uploader")
    assert any("Uploads: off — this server is in viewer mode (bound to 0.0.0.0" in c.value for c in at.caption)


def test_lib_param_outside_the_roots_is_refused_once(bound_to_all):
    assert_refused_once(page("library", lib="/etc"), "/etc")


def test_typed_folder_outside_the_roots_is_refused_once(bound_to_all):
    at = page("library")
    at.text_input(key="library_dir_input").set_value("/etc").run()
    assert_refused_once(at, "/etc")


def test_allowed_folder_is_read_and_problems_are_named_relative_to_their_root(bound_to_all, monkeypatch, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    torch.save(torch.randn(3, 8), shared / "ok.pt")
    (shared / "bad.pt").write_bytes(b"#compdef secret")
    monkeypatch.setenv("ATLAS_ALLOWED_ROOTS", str(shared))
    at = page("library", lib=str(shared))
    assert not at.exception and not at.error
    assert list(at.dataframe[0].value["name"]) == ["ok.pt"]
    problems = at.dataframe[1].value  # the "could not be read" table
    assert list(problems["file"]) == ["shared/bad.pt"]
    assert "compdef" not in problems["problem"][0] and "unknown format" in problems["problem"][0]


def test_full_mode_states_the_upload_limits():
    at = page("library")
    assert at.get("file_uploader")
    limits = [c.value for c in at.caption if c.value.startswith("Limits:")]
    assert limits == ["Limits: 64.0 MiB per file, 32 files per upload; a .zip holds at most 16 members and "
                      "unpacks to at most 256.0 MiB."]


def finished_run(run_id: str = "r1") -> None:
    store = RunStore()
    store.add_run(run_id, {"method": "scratch", "target": "spam_sms", "sources": [], "seed": 0, "device": "cpu",
                           "params": {"steps": 2}, "backend": "local"})
    store.update_run(run_id, status="running", started=time.time() - 5, device="cpu")
    store.set_status(run_id, "finished", test_score=0.8)


def buttons(at) -> set[str]:
    return {b.key for b in at.button}


def test_runs_page_viewer_mode_hides_launch_retry_delete(bound_to_all):
    finished_run()
    at = page("runs")
    assert not at.exception, [e.value for e in at.exception]
    assert not {"runs_launch", "runs_retry", "runs_delete", "runs_cancel"} & buttons(at)
    reasons = [c.value for c in at.caption if "viewer mode" in c.value]
    assert len(reasons) == 2 and reasons[0].startswith("🔒 Launching runs: off")
    assert reasons[1].startswith("🔒 Cancel, retry and delete: off")


def test_runs_page_full_mode_on_a_shared_server_shows_controls_but_no_ray_address_box(bound_to_all, monkeypatch):
    monkeypatch.setenv("ATLAS_MODE", "full")
    monkeypatch.setenv("RAY_ADDRESS", "http://10.0.0.7:8265")
    finished_run()
    at = page("runs")
    assert {"runs_launch", "runs_retry", "runs_delete"} <= buttons(at)
    at.radio(key="runs_backend").set_value("ray").run()
    assert not [t for t in at.text_input if t.key == "runs_ray_address"]
    assert any("Ray dashboard address: `http://10.0.0.7:8265`" in c.value for c in at.caption)


def test_runs_page_loopback_full_mode_keeps_the_ray_address_box():
    at = page("runs")
    at.radio(key="runs_backend").set_value("ray").run()
    assert [t for t in at.text_input if t.key == "runs_ray_address"]


def test_a_mistyped_mode_stops_the_page_with_its_message(monkeypatch):
    monkeypatch.setenv("ATLAS_MODE", "fulll")
    at = page("library")
    assert [e.value for e in at.error] == ["ATLAS_MODE='fulll': use full or viewer (or leave it unset)"]
    assert not at.get("file_uploader") and not at.dataframe


def test_tasks_page_viewer_mode_hides_adding_a_task(bound_to_all):
    at = page("tasks")
    assert not at.exception, [e.value for e in at.exception]
    assert not at.get("file_uploader")
    assert any(c.value.startswith("🔒 Adding tasks: off — this server is in viewer mode") for c in at.caption)


def test_tasks_page_full_mode_offers_adding_a_task():
    at = page("tasks")
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.get("file_uploader")) == 1
    assert not any("viewer mode" in c.value for c in at.caption)
