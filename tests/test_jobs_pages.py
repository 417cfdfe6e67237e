"""The pages honour the compute budget (issue 24): Transferability's "Compute" for a viewer above the
per-click ceiling is refused with its cost; in full mode it becomes a background job whose result
the page shows; a viewer never gets a server-side image export button."""
from __future__ import annotations

import time

from core.runs.store import RunStore
from tests.test_transferability_page import app, chart_specs, make_demo


def _lib(tmp_path):
    make_demo(tmp_path / "demo", results=False)
    return tmp_path / "demo" / "prompts"


def test_viewer_over_the_ceiling_is_refused_with_its_cost(tmp_path, monkeypatch):
    lib = _lib(tmp_path)
    monkeypatch.setenv("ATLAS_MODE", "viewer")
    monkeypatch.setenv("ATLAS_VIEWER_MAX_S", "0.01")
    at = app(tmp_path, monkeypatch, library=lib, query={"metric": "on"}).run()
    assert not at.exception, at.exception
    assert any("4 prompt forwards" in i.value for i in at.info)  # priced before anything starts
    at.button(key="tr_compute").click().run()
    assert not at.exception, at.exception
    refused = [w.value for w in at.warning if "per-click limit" in w.value]
    assert refused and "ATLAS_VIEWER_MAX_S" in refused[0]
    assert RunStore().list_jobs() == []          # nothing ran, nothing queued
    assert not at.get("plotly_chart")


def test_viewer_under_the_ceiling_computes_inline_in_a_ledger_slot(tmp_path, monkeypatch):
    lib = _lib(tmp_path)
    monkeypatch.setenv("ATLAS_MODE", "viewer")
    monkeypatch.setenv("ATLAS_VIEWER_MAX_S", "60")
    at = app(tmp_path, monkeypatch, library=lib, query={"metric": "on", "order": "fixed"}).run()
    at.button(key="tr_compute").click().run()
    assert not at.exception, at.exception
    assert chart_specs(at)
    rows = RunStore().list_jobs()
    assert [(j["kind"], j["status"], j["owner"], j["units"]) for j in rows] == [("on", "finished", "viewer", 4)]
    # viewers get the browser-side export only: no button that starts Chromium on the server
    assert not [b for b in at.button if b.key == "tr_img"]


def test_full_mode_over_the_ceiling_runs_a_background_job(tmp_path, monkeypatch):
    lib = _lib(tmp_path)
    monkeypatch.setenv("ATLAS_MODE", "full")
    monkeypatch.setenv("ATLAS_VIEWER_MAX_S", "0.01")
    at = app(tmp_path, monkeypatch, library=lib, query={"metric": "on", "order": "fixed"}).run()
    at.button(key="tr_compute").click().run()
    assert not at.exception, at.exception
    store = RunStore()
    jobs = store.list_jobs()
    assert len(jobs) == 1 and jobs[0]["background"] == 1 and jobs[0]["owner"] == "full"
    t0 = time.time()
    while store.get_job(jobs[0]["job_id"])["status"] in ("queued", "running") and time.time() - t0 < 240:
        time.sleep(0.5)
    assert store.get_job(jobs[0]["job_id"])["status"] == "finished"
    at.run()
    assert not at.exception, at.exception
    assert chart_specs(at)                        # the job's matrix, from the cache
    assert [b for b in at.button if b.key == "tr_img"]  # full mode keeps the server-side export
