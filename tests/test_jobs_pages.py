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
    # nothing of `on` ran or queued (the pair details' e_avg fallback is priced and run on its own)
    assert [j for j in RunStore().list_jobs() if j["kind"] == "on"] == []
    assert not at.get("plotly_chart")


def test_viewer_under_the_ceiling_computes_inline_in_a_ledger_slot(tmp_path, monkeypatch):
    lib = _lib(tmp_path)
    monkeypatch.setenv("ATLAS_MODE", "viewer")
    monkeypatch.setenv("ATLAS_VIEWER_MAX_S", "60")
    at = app(tmp_path, monkeypatch, library=lib, query={"metric": "on", "order": "fixed"}).run()
    at.button(key="tr_compute").click().run()
    assert not at.exception, at.exception
    assert chart_specs(at)
    rows = [j for j in RunStore().list_jobs() if j["kind"] == "on"]
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
    jobs = [j for j in store.list_jobs() if j["kind"] == "on"]
    assert len(jobs) == 1 and jobs[0]["background"] == 1 and jobs[0]["owner"] == "full"
    t0 = time.time()
    while store.get_job(jobs[0]["job_id"])["status"] in ("queued", "running") and time.time() - t0 < 240:
        time.sleep(0.5)
    assert store.get_job(jobs[0]["job_id"])["status"] == "finished"
    at.run()
    assert not at.exception, at.exception
    assert chart_specs(at)                        # the job's matrix, from the cache
    assert [b for b in at.button if b.key == "tr_img"]  # full mode keeps the server-side export


def test_projection_viewer_over_the_ceiling_gets_pca_and_the_cost(tmp_path, monkeypatch):
    from core import projection as proj
    from tests.test_projection_page import build_demo, run_page

    monkeypatch.setenv("ATLAS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("ATLAS_LIBRARY", raising=False)
    proj.clear_memory_cache()
    build_demo(tmp_path / "demo", precompute=False)
    monkeypatch.setenv("ATLAS_DEMO", str(tmp_path / "demo"))
    monkeypatch.setenv("ATLAS_MODE", "viewer")
    monkeypatch.setenv("ATLAS_VIEWER_MAX_S", "0.01")   # t-SNE of 8 points is above it, their PCA under it
    at = run_page(method="tsne")
    assert not at.exception, at.exception
    refused = [w.value for w in at.warning if "per-click limit" in w.value]
    assert refused and "8 points" in refused[0]
    assert any("Showing the PCA map instead of t-SNE" in c.value for c in at.caption)
    # only the PCA stand-in ran (priced, under the ceiling, in a ledger slot); the t-SNE did not
    assert [j["kind"] for j in RunStore().list_jobs(status=("finished",))] == ["pca"]
    assert not [b for b in at.button if b.key == "proj_render"]  # no server-side export for viewers
    # full mode: above the ceiling the map is a background job (PCA meanwhile); the page shows it once done
    monkeypatch.setenv("ATLAS_MODE", "full")
    proj.clear_memory_cache()
    at = run_page(method="tsne")
    assert not at.exception, at.exception
    assert any("background job" in c.value for c in at.caption)
    store = RunStore()
    (job,) = [j for j in store.list_jobs() if j["kind"] == "tsne"]
    t0 = time.time()
    while store.get_job(job["job_id"])["status"] in ("queued", "running") and time.time() - t0 < 240:
        time.sleep(0.5)
    job = store.get_job(job["job_id"])
    assert (job["kind"], job["status"], job["background"], job["units"]) == ("tsne", "finished", 1, 8)
    proj.clear_memory_cache()
    at = run_page(method="tsne")
    assert not at.exception, at.exception
    assert not any("Showing the PCA map" in c.value for c in at.caption)
    assert len(store.list_jobs()) == 2           # found in the cache: nothing computed again (pca + the job)
    proj.clear_memory_cache()


def test_viewer_prompt_space_matrix_over_the_ceiling_is_refused_with_its_cost(tmp_path, monkeypatch):
    """A prompt-space matrix (e_avg) found nowhere is priced (N × N prompt pairs) before it starts: a viewer
    above the ceiling is refused with the cost and nothing runs; under the ceiling it runs inline in a ledger
    slot of the global cap."""
    lib = _lib(tmp_path)
    monkeypatch.setenv("ATLAS_MODE", "viewer")
    monkeypatch.setenv("ATLAS_VIEWER_MAX_S", "0")
    at = app(tmp_path, monkeypatch, library=lib, query={"metric": "e_avg", "order": "fixed"}).run()
    assert not at.exception, at.exception
    refused = [w.value for w in at.warning if "per-click limit" in w.value]
    assert refused and "e_avg: 16 prompt pairs" in refused[0] and "ATLAS_VIEWER_MAX_S" in refused[0]
    assert RunStore().list_jobs() == []          # nothing ran, nothing queued
    assert not at.get("plotly_chart")
    assert not list((tmp_path / "cache").glob("metrics/e_avg-*.npy"))
    monkeypatch.setenv("ATLAS_VIEWER_MAX_S", "60")
    at.run()
    assert not at.exception, at.exception
    assert at.get("plotly_chart")
    rows = [(j["kind"], j["status"], j["owner"], j["units"]) for j in RunStore().list_jobs()]
    assert ("e_avg", "finished", "viewer", 16) in rows


def test_viewer_prompt_space_matrix_when_every_slot_is_taken_waits(tmp_path, monkeypatch):
    """The global cap holds for prompt-space matrices too: with the only slot held by another computation,
    the page says it is busy and computes nothing."""
    from core import jobs as J

    lib = _lib(tmp_path)
    monkeypatch.setenv("ATLAS_MODE", "viewer")
    monkeypatch.setenv("ATLAS_VIEWER_MAX_S", "60")
    monkeypatch.setenv("ATLAS_MAX_COMPUTE", "1")
    at = app(tmp_path, monkeypatch, library=lib, query={"metric": "e_tok", "order": "fixed"})
    with J.slot("on", 4, title="someone else's"):
        at.run()
    assert not at.exception, at.exception
    assert not at.get("plotly_chart")
    assert not list((tmp_path / "cache").glob("metrics/e_tok-*.npy"))
    assert any("compute slot" in w.value for w in at.warning)
    rows = RunStore().list_jobs()
    assert [j["kind"] for j in rows if j["status"] == "finished"] == ["on"]   # only the slot's holder ran
    assert {j["status"] for j in rows if j["kind"] == "e_tok"} == {"cancelled"}


def test_projection_viewer_pca_over_the_ceiling_is_refused_with_its_cost(tmp_path, monkeypatch):
    """PCA is priced like t-SNE/UMAP: a viewer whose ceiling is below even the PCA of the points gets the
    cost of both refusals and no map (and nothing runs)."""
    from core import projection as proj
    from tests.test_projection_page import build_demo, run_page

    monkeypatch.setenv("ATLAS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("ATLAS_LIBRARY", raising=False)
    proj.clear_memory_cache()
    build_demo(tmp_path / "demo", precompute=False)
    monkeypatch.setenv("ATLAS_DEMO", str(tmp_path / "demo"))
    monkeypatch.setenv("ATLAS_MODE", "viewer")
    monkeypatch.setenv("ATLAS_VIEWER_MAX_S", "0")
    at = run_page(method="pca")
    assert not at.exception, at.exception
    refused = [w.value for w in at.warning if "per-click limit" in w.value]
    assert refused and "pca: 8 points" in refused[0]
    assert not at.get("plotly_chart") or "scatter" not in at.get("plotly_chart")[0].proto.spec
    assert RunStore().list_jobs() == []
    at = run_page(method="tsne")
    refused = [w.value for w in at.warning if "per-click limit" in w.value]
    assert any("tsne: 8 points" in w for w in refused) and any("pca: 8 points" in w for w in refused)
    monkeypatch.setenv("ATLAS_VIEWER_MAX_S", "60")
    at = run_page(method="pca")
    assert not at.exception, at.exception
    assert "scatter" in at.get("plotly_chart")[0].proto.spec
    assert [(j["kind"], j["status"], j["units"]) for j in RunStore().list_jobs()] == [("pca", "finished", 8)]
    proj.clear_memory_cache()


def test_tasks_ranking_refused_for_a_viewer_over_the_ceiling(tmp_path, monkeypatch):
    import shutil

    from streamlit.testing.v1 import AppTest

    from core.config import REPO_ROOT, demo_dir

    demo = tmp_path / "demo"
    for n in ("sent_movie", "topic_newswire"):
        shutil.copytree(demo_dir() / "prompts" / n, demo / "prompts" / n)
    monkeypatch.setenv("ATLAS_DEMO", str(demo))
    cache = tmp_path / "cache"                 # a ranking cache of this test's own; the prepared demo tasks linked in
    cache.mkdir()
    (cache / "tasks").symlink_to((REPO_ROOT / ".cache" / "tasks").resolve())
    monkeypatch.setenv("ATLAS_CACHE", str(cache))
    monkeypatch.setenv("ATLAS_MODE", "viewer")
    monkeypatch.setenv("ATLAS_VIEWER_MAX_S", "0.01")
    at = AppTest.from_file(str(REPO_ROOT / "pages" / "tasks.py"), default_timeout=180).run()
    assert not at.exception, at.exception
    at.button(key="tasks_rank").click().run()
    assert not at.exception, at.exception
    refused = [w.value for w in at.warning if "per-click limit" in w.value]
    assert refused and "source × examples" in refused[0]
    assert ranks(RunStore()) == []                 # nothing ran (a run estimate's calibration may have)
    assert not frame_with(at, "ncc")               # no ranking table
    # the operator ranks once (full mode, under a generous ceiling: computed inline in a slot) ...
    monkeypatch.setenv("ATLAS_MODE", "full")
    monkeypatch.setenv("ATLAS_VIEWER_MAX_S", "3600")
    at = AppTest.from_file(str(REPO_ROOT / "pages" / "tasks.py"), default_timeout=300).run()
    at.button(key="tasks_rank").click().run()
    assert not at.exception, at.exception
    assert frame_with(at, "ncc")
    (row,) = ranks(RunStore())
    assert (row["kind"], row["status"]) == ("rank", "finished") and row["units"] > 0
    # ... then a viewer's click costs nothing (every source is cached) and is not refused
    monkeypatch.setenv("ATLAS_MODE", "viewer")
    monkeypatch.setenv("ATLAS_VIEWER_MAX_S", "0.01")
    at = AppTest.from_file(str(REPO_ROOT / "pages" / "tasks.py"), default_timeout=180).run()
    at.button(key="tasks_rank").click().run()
    assert not at.exception, at.exception
    assert not [w for w in at.warning if "per-click limit" in w.value]
    assert frame_with(at, "ncc") and len(ranks(RunStore())) == 1


def frame_with(at, column: str) -> bool:
    return any(column in d.value.columns for d in at.dataframe)


def ranks(store) -> list[dict]:
    """The ranking jobs of the ledger (the Tasks page may also time a run estimate: a `calibrate` job)."""
    return [j for j in store.list_jobs() if j["kind"] == "rank"]


def test_tasks_ranking_in_full_mode_above_the_ceiling_is_a_background_job(tmp_path, monkeypatch):
    import shutil

    from streamlit.testing.v1 import AppTest

    from core.config import REPO_ROOT, demo_dir

    demo = tmp_path / "demo"
    for n in ("sent_movie", "topic_newswire", "spam_sms"):
        shutil.copytree(demo_dir() / "prompts" / n, demo / "prompts" / n)
    monkeypatch.setenv("ATLAS_DEMO", str(demo))
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "tasks").symlink_to((REPO_ROOT / ".cache" / "tasks").resolve())
    monkeypatch.setenv("ATLAS_CACHE", str(cache))
    monkeypatch.setenv("ATLAS_MODE", "full")
    monkeypatch.setenv("ATLAS_VIEWER_MAX_S", "0.01")
    at = AppTest.from_file(str(REPO_ROOT / "pages" / "tasks.py"), default_timeout=180).run()
    at.button(key="tasks_rank").click().run()
    assert not at.exception, at.exception
    assert any("background job" in c.value for c in at.caption)
    store = RunStore()
    (job,) = ranks(store)
    assert (job["kind"], job["background"]) == ("rank", 1)
    t0 = time.time()
    while store.get_job(job["job_id"])["status"] in ("queued", "running") and time.time() - t0 < 300:
        time.sleep(0.5)
    job = store.get_job(job["job_id"])
    assert job["status"] == "finished", job
    assert job["units"] > 0
    at.run()                                       # the panel's rerun: the ranking comes from the cache
    assert not at.exception, at.exception
    assert frame_with(at, "ncc")
    assert len(ranks(store)) == 1                  # nothing computed twice
