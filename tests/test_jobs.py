"""Work has a budget (issue 24): estimates, the viewer ceiling and rate limit, one global cap over a
ledger shared by processes, background jobs that are shared, cancelled and resumed from their saved
(prompt, task) pairs, and LRU-capped caches."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from core import budget as BG
from core import jobs as J
from core.runs.store import RunStore

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- budget
def test_viewer_over_ceiling_is_refused_full_mode_gets_a_job():
    b = BG.Budget(viewer_max_s=30, rate_n=2, rate_window_s=60)
    big = BG.cost("zs", 2300)                      # reference 5 s per evaluation: ≈ 3.2 h
    assert big.seconds == pytest.approx(2300 * 5.0)
    d = b.decide(big, viewer=True)
    assert d.action == "refuse" and "ATLAS_VIEWER_MAX_S" in d.message and "2,300 evaluations" in d.message
    assert b.decide(big, viewer=False).action == "job"
    small = BG.cost("zs", 3)
    assert b.decide(small, viewer=True).action == "run"
    # nothing left to compute is always allowed
    assert b.decide(BG.cost("zs", 0), viewer=True).action == "run"


def test_viewer_rate_limit_per_session():
    b = BG.Budget(viewer_max_s=30, rate_n=2, rate_window_s=60)
    c = BG.cost("on", 10)
    assert b.decide(c, viewer=True, clicks=[100.0], now=110.0).action == "run"
    d = b.decide(c, viewer=True, clicks=[100.0, 105.0], now=110.0)
    assert d.action == "refuse" and "ATLAS_VIEWER_RATE" in d.message
    assert b.decide(c, viewer=True, clicks=[100.0, 105.0], now=161.0).action == "run"  # the first left the window
    assert b.decide(c, viewer=False, clicks=[100.0, 105.0], now=110.0).action == "run"  # full mode: no rate limit


def test_budget_settings_from_env_and_bad_values():
    b = BG.Budget.from_env({"ATLAS_VIEWER_MAX_S": "5", "ATLAS_VIEWER_RATE": "3/30", "ATLAS_MAX_COMPUTE": "2"})
    assert (b.viewer_max_s, b.rate_n, b.rate_window_s, b.max_compute) == (5.0, 3, 30.0, 2)
    assert BG.Budget.from_env({}).max_compute == max(1, (os.cpu_count() or 2) // 2)
    for env, name in [({"ATLAS_VIEWER_MAX_S": "inf"}, "ATLAS_VIEWER_MAX_S"), ({"ATLAS_MAX_COMPUTE": "0"}, "ATLAS_MAX_COMPUTE"),
                      ({"ATLAS_VIEWER_RATE": "lots"}, "ATLAS_VIEWER_RATE")]:
        with pytest.raises(BG.BudgetError, match=name):
            BG.Budget.from_env(env)


def test_rate_is_measured_from_the_ledger_once_known():
    assert "reference" in BG.rate("tsne")[1]
    rows = [{"kind": "tsne", "status": "finished", "units": 100, "wall_s": 2.0},
            {"kind": "tsne", "status": "finished", "units": 100, "wall_s": 4.0},
            {"kind": "umap", "status": "finished", "units": 100, "wall_s": 99.0},
            {"kind": "tsne", "status": "failed", "units": 100, "wall_s": 99.0}]
    s, basis = BG.rate("tsne", rows)
    assert s == pytest.approx(0.03) and "measured here" in basis


# --------------------------------------------------------------------------- the ledger
def test_inline_slot_honours_the_cap_and_records_the_rate(monkeypatch):
    monkeypatch.setenv("ATLAS_MAX_COMPUTE", "1")
    store = RunStore()
    with J.slot("tsne", 50, owner="viewer", store=store):
        assert len(J.running(store)) == 1
        with pytest.raises(J.Busy, match="ATLAS_MAX_COMPUTE"):
            with J.slot("rank", 10, store=store):
                pass
    assert J.running(store) == []
    done = store.list_jobs(status=("finished",))
    assert [j["kind"] for j in done] == ["tsne"] and done[0]["units"] == 50
    assert "measured here" in J.estimate("tsne", 10, store).basis


def test_global_cap_across_concurrent_processes(tmp_path):
    """Six processes each run three computations through slot(), retrying when Busy; the ledger never
    shows more running at once than ATLAS_MAX_COMPUTE=2, and every computation ran."""
    script = textwrap.dedent("""
        import time
        from core import jobs as J
        done = 0
        while done < 3:
            try:
                with J.slot("on", 1, owner="viewer"):
                    time.sleep(0.15)
                done += 1
            except J.Busy:
                time.sleep(0.02)
    """)
    env = {**os.environ, "ATLAS_MAX_COMPUTE": "2", "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", script], cwd=REPO, env=env) for _ in range(6)]
    for p in procs:
        assert p.wait(timeout=180) == 0
    rows = RunStore().list_jobs()
    ran = [j for j in rows if j["status"] == "finished"]
    assert len(ran) == 18
    assert J.max_overlap(ran) <= 2
    assert any(j["status"] == "cancelled" for j in rows)  # some were turned away: the cap did bite


def test_max_overlap_counts_concurrent_rows():
    rows = [{"started": 0, "finished": 10}, {"started": 5, "finished": 6}, {"started": 6, "finished": 7},
            {"started": 11, "finished": 12}]
    assert J.max_overlap(rows) == 2


# --------------------------------------------------------------------------- background jobs
@pytest.fixture(scope="module")
def minilm():
    from core.backbone import load_backbone
    return load_backbone(device="cpu")


@pytest.fixture
def zs_setup(minilm, monkeypatch, tmp_path):
    """Two tiny registered tasks (in this test's ATLAS_HOME, so a worker process sees them), four prompts,
    and a cache folder of this test's own (a worker inherits ATLAS_CACHE)."""
    monkeypatch.setenv("ATLAS_CACHE", str(tmp_path / "cache"))
    import torch
    from core import tasks as T
    from core.prompts.types import SoftPrompt
    from core.tasks.registry import save_task

    for n in ("ja", "jb"):
        sp = T.Split(texts=[f"{n} example number {i}" for i in range(8)], labels=[0, 1, 0, 1, 0, 0, 1, 0])
        save_task(T.Task(name=n, family=None, labels=["no", "yes"], descriptions=["a no", "a yes"],
                         train=sp, validation=sp, test=sp, source="test"))
    E = minilm.word_embeddings.weight.detach()
    g = torch.Generator().manual_seed(0)
    return [SoftPrompt(tensor=E[torch.randint(0, E.shape[0], (4,), generator=g)].clone(), name=f"p{i}",
                       task=("ja", "jb")[i % 2], backbone=minilm.name) for i in range(4)]


def _wait(pred, timeout=180.0, what=""):
    t0 = time.time()
    while time.time() - t0 < timeout:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_same_request_shares_one_job(zs_setup):
    store = RunStore()
    a, created_a = J.submit_matrix_job("zs", zs_setup, store=store, spawn=False)
    b, created_b = J.submit_matrix_job("zs", list(reversed(zs_setup))[::-1], owner="viewer", store=store, spawn=False)
    assert created_a and not created_b and a["job_id"] == b["job_id"]
    other, created = J.submit_matrix_job("zs", zs_setup[:3], store=store, spawn=False)
    assert created and other["job_id"] != a["job_id"]  # another prompt set is another job
    assert store.request_job_cancel(a["job_id"]) == "cancelled"  # queued: cancelled at once
    c, created_c = J.submit_matrix_job("zs", zs_setup, store=store, spawn=False)
    assert created_c and c["job_id"] != a["job_id"]  # an ended job is not joined


def test_job_killed_midway_resumes_computing_only_the_missing_pairs(zs_setup, minilm, monkeypatch):
    monkeypatch.setenv("ATLAS_JOB_PAUSE_S", "1.0")
    monkeypatch.setenv("ATLAS_MAX_COMPUTE", "1")
    store = RunStore()
    assert J.zs_missing(zs_setup, store) == (8, 8)   # 4 prompts × 2 tasks
    job, created = J.submit_matrix_job("zs", zs_setup, owner="full", est=J.estimate_metric("zs", zs_setup, store),
                                       store=store)
    assert created and job["total"] == 8
    _wait(lambda: store.pair_count("zs") >= 2, what="two saved pairs")
    pid = _wait(lambda: (store.get_job(job["job_id"]) or {}).get("pid"), what="the worker's pid")
    os.kill(pid, signal.SIGKILL)
    _wait(lambda: J.reconcile(store) or store.get_job(job["job_id"])["status"] == "failed", what="reconcile")
    first = store.get_job(job["job_id"])
    assert first["status"] == "failed" and "ask again to resume" in first["error"]
    saved = store.pair_count("zs")
    assert 2 <= saved < 8
    missing, total = J.zs_missing(zs_setup, store)
    assert (missing, total) == (8 - saved, 8)
    # asking again: a new job that computes only the missing pairs
    monkeypatch.setenv("ATLAS_JOB_PAUSE_S", "0")
    job2, created2 = J.submit_matrix_job("zs", zs_setup, store=store)
    assert created2 and job2["job_id"] != job["job_id"]
    _wait(lambda: store.get_job(job2["job_id"])["status"] not in ("queued", "running"), what="the resumed job")
    end = store.get_job(job2["job_id"])
    assert end["status"] == "finished", end
    assert end["units"] == 8 - saved  # only what was missing was evaluated
    assert not list(J.jobs_dir().glob("*.npz"))  # the workers' prompt files are gone with their jobs
    assert store.pair_count("zs") == 8
    # the matrix is in the cache now, and equals a fresh in-process computation
    from core import metrics as M
    got = M.cached_matrix("zs", zs_setup)
    assert got is not None
    ref = M.zs(zs_setup, minilm, use_cache=False)
    np.testing.assert_allclose(got.to_numpy(), ref, atol=1e-9)
    # a different prompt set reuses every saved pair
    assert J.zs_missing(zs_setup[:3], store) == (0, 6)


def test_running_job_is_cancelled_and_queued_job_waits_for_the_cap(zs_setup, monkeypatch):
    monkeypatch.setenv("ATLAS_JOB_PAUSE_S", "1.0")
    monkeypatch.setenv("ATLAS_MAX_COMPUTE", "1")
    store = RunStore()
    with J.slot("on", 1, store=store):          # the only slot is taken: the job queues
        job, _ = J.submit_matrix_job("zs", zs_setup, store=store)
        time.sleep(2.0)
        assert store.get_job(job["job_id"])["status"] == "queued"
    _wait(lambda: store.pair_count("zs") >= 1, what="the job to start once the slot is free")
    assert J.cancel(job["job_id"], store) == "running"   # flag + SIGTERM: the worker stops cleanly
    _wait(lambda: store.get_job(job["job_id"])["status"] == "cancelled", timeout=30, what="cancel")
    assert store.get_job(job["job_id"])["error"] == "cancelled"
    assert store.pair_count("zs") < 8
    out = subprocess.run([sys.executable, "-m", "core", "jobs", "list", "--all"], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and job["job_id"] in out.stdout and "cancelled" in out.stdout


def test_viewer_job_ends_when_no_session_asks(zs_setup, monkeypatch):
    monkeypatch.setenv("ATLAS_JOB_IDLE_S", "1")
    store = RunStore()
    job, _ = J.submit_matrix_job("zs", zs_setup, owner="viewer", store=store, spawn=False)
    store.update_job(job["job_id"], heartbeat=time.time() - 5)
    assert J.work(job["job_id"], store=store) == "cancelled"
    end = store.get_job(job["job_id"])
    assert "ATLAS_JOB_IDLE_S" in end["error"] and store.pair_count("zs") == 0
    # a full-mode job never idles out
    job2, _ = J.submit_matrix_job("zs", zs_setup[:2], owner="full", store=store, spawn=False)
    store.update_job(job2["job_id"], heartbeat=time.time() - 5)
    assert J.work(job2["job_id"], store=store) == "finished"


def test_cli_cancel_unknown_job_is_one_line():
    out = subprocess.run([sys.executable, "-m", "core", "jobs", "cancel", "nope"], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2 and "no job 'nope'" in out.stderr and "Traceback" not in out.stderr


# --------------------------------------------------------------------------- caches
def test_lru_eviction_keeps_the_cap(tmp_path, monkeypatch):
    from core.fsutil import touch, trim_lru

    d = tmp_path / "c"
    d.mkdir()
    for i in range(6):
        (d / f"m-{i}.npy").write_bytes(b"x" * 1000)
        os.utime(d / f"m-{i}.npy", (1000 + i, 1000 + i))
    touch(d / "m-0.npy")                       # used just now: the oldest file is no longer least recent
    gone = trim_lru(d, 3500, keep=d / "m-5.npy")
    assert sorted(p.name for p in gone) == ["m-1.npy", "m-2.npy", "m-3.npy"]
    assert sorted(p.name for p in d.iterdir()) == ["m-0.npy", "m-4.npy", "m-5.npy"]
    assert sum(p.stat().st_size for p in d.iterdir()) <= 3500


def test_metric_cache_is_capped(monkeypatch, tmp_path):
    """Each distinct prompt subset adds a matrix file; with ATLAS_CACHE_MAX_MB the folder stays under the cap
    and the most recent matrix is kept."""
    from core import metrics as M
    from core.config import cache_dir

    monkeypatch.setenv("ATLAS_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    prompts = {f"p{i}": rng.normal(size=(4, 8)).astype(np.float32) for i in range(40)}
    names = list(prompts)
    one = 8 * 30 * 30 + 128                   # a 30 x 30 float64 .npy
    monkeypatch.setenv("ATLAS_CACHE_MAX_MB", str(3.5 * one / 2**20))
    for s in range(6):
        sub = {n: prompts[n] for n in names[s:s + 30]}
        M.compute_matrix("e_avg", sub)
    files = list((cache_dir() / "metrics").glob("*.npy"))
    assert sum(f.stat().st_size for f in files) <= 3.5 * one
    assert len(files) == 3
    last = {n: prompts[n] for n in names[5:35]}
    assert M.cached_matrix("e_avg", last) is not None


def test_prompt_space_metrics_and_pca_are_priced(tmp_path):
    """Every prompt-space metric of the registry has a cost model (N x N prompt pairs), and so do PCA maps
    and the measured-validation predictions: nothing a page starts is left unpriced."""
    from core import metrics as M

    assert set(BG.PROMPT_METRICS) == set(M.PROMPT_METRICS)
    store = RunStore(tmp_path / "runs.db")
    prompts = {f"p{i}": np.zeros((4, 8), dtype=np.float32) + i for i in range(5)}
    for m in M.PROMPT_METRICS:
        c = J.estimate_metric(m, prompts, store)
        assert (c.kind, c.units, c.unit) == (m, 25, "prompt pair") and c.seconds > 0
        assert "25 prompt pairs" in c.text()
    for kind in ("pca", "predictions"):
        assert J.estimate(kind, 100, store).seconds > 0
    d = BG.Budget(viewer_max_s=0.0).decide(J.estimate("pca", 100, store), viewer=True)
    assert d.action == "refuse" and "pca: 100 points" in d.message


def test_ranking_cache_is_capped_least_recently_used_first(monkeypatch, tmp_path):
    """core.ranking's disk cache (ATLAS_CACHE/ranking/*.json): past ATLAS_CACHE_MAX_MB the rankings used
    longest ago go; one read back recently (core.ranking._read_cache marks it used) stays."""
    from core import ranking as R

    monkeypatch.setenv("ATLAS_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "cache" / "ranking"
    entry = {f"src{i}": {"zs": 0.1 * i, "ncc": 0.2} for i in range(40)}
    one = len(__import__("json").dumps(entry))
    monkeypatch.setenv("ATLAS_CACHE_MAX_MB", str(3.5 * one / 2**20))
    paths = [folder / f"k{i}.json" for i in range(3)]
    for i, p in enumerate(paths):
        R._write_cache(p, entry)
        os.utime(p, (1000 + i, 1000 + i))     # k0 written longest ago, k2 last
    assert R._read_cache(paths[0]) == entry   # k0 read back now: the most recently used
    for i in range(3, 5):
        R._write_cache(folder / f"k{i}.json", entry)
    left = sorted(p.name for p in folder.glob("*.json"))
    assert left == ["k0.json", "k3.json", "k4.json"]   # k1, k2: least recently used, gone
    assert sum(p.stat().st_size for p in folder.glob("*.json")) <= 3.5 * one


def test_saved_pairs_are_capped_least_recently_used_first(monkeypatch, tmp_path):
    """runs.db ``pairs`` (a zs job's saved per-(prompt, task) values): past ATLAS_PAIRS_MAX rows the values
    saved or read longest ago are deleted; one read back recently (get_pairs) stays."""
    from core.runs import store as S

    store = RunStore(tmp_path / "runs.db")
    monkeypatch.setenv("ATLAS_PAIRS_MAX", "4")
    t = iter(range(1000, 2000))
    monkeypatch.setattr(S.time, "time", lambda: float(next(t)))   # a strictly increasing clock
    for i in range(4):
        store.put_pair("zs", "bb", f"h{i}", "task", "", float(i))
    assert store.get_pairs("zs", "bb", [("h0", "task", "")]) == {("h0", "task", ""): 0.0}  # h0: used now
    store.put_pair("zs", "bb", "h4", "task", "", 4.0)
    store.put_pair("zs", "bb", "h5", "task", "", 5.0)
    assert store.pair_count() == 4
    keys = [(f"h{i}", "task", "") for i in range(6)]
    assert sorted(k[0] for k in store.get_pairs("zs", "bb", keys)) == ["h0", "h3", "h4", "h5"]
    monkeypatch.setenv("ATLAS_PAIRS_MAX", "lots")
    with pytest.raises(S.StoreError, match="ATLAS_PAIRS_MAX='lots'"):
        store.put_pair("zs", "bb", "h6", "task", "", 6.0)
    assert store.pair_count() == 4           # the refused setting wrote nothing


def test_a_job_whose_worker_never_started_is_failed_and_frees_its_key(zs_setup):
    store = RunStore()
    job, _ = J.submit_matrix_job("zs", zs_setup, store=store, spawn=False)
    assert J.reconcile(store) == 0                       # just queued: its worker may still be starting
    store.update_job(job["job_id"], created=time.time() - 2 * J.NO_PID_GRACE_S)
    assert J.reconcile(store) == 1
    assert "did not start" in store.get_job(job["job_id"])["error"]
    again, created = J.submit_matrix_job("zs", zs_setup, store=store, spawn=False)
    assert created and again["job_id"] != job["job_id"]


def test_cli_matrix_zs_shares_the_ledger_pairs_and_the_cap(zs_setup, minilm, tmp_path, monkeypatch, capsys):
    """`python -m core matrix --metric zs` saves into and reads from the ledger's per-(prompt, task) pairs
    (no zs_pairs.json of its own), holds a slot of the global cap while it computes, and reuses what a
    page's job saved."""
    import pandas as pd
    from core.__main__ import main
    from core.prompts.files import write_prompt

    lib = tmp_path / "lib"
    for p in zs_setup:
        write_prompt(p, lib / p.name)
    store = RunStore()
    # a page's job computed the first three prompts' pairs (6 of the 8)
    from core import metrics as M
    M.compute_matrix("zs", zs_setup[:3], pairs=J.PairStore(store))
    assert store.pair_count("zs") == 6
    assert J.zs_missing(zs_setup, store) == (2, 8)
    seen = []
    real_slot = J.slot

    def watch_slot(kind, units, **kw):  # what the CLI asked the ledger for
        seen.append((kind, units, kw.get("owner")))
        return real_slot(kind, units, **kw)
    monkeypatch.setattr(J, "slot", watch_slot)
    out = tmp_path / "zs.csv"
    assert main(["matrix", "--library", str(lib), "--metric", "zs", "--out", str(out)]) == 0
    assert seen == [("zs", 2, "cli")]                     # one slot of the cap, priced at the 2 missing pairs
    assert store.pair_count("zs") == 8                    # the CLI's evaluations are the ledger's now
    assert not (Path(os.environ["ATLAS_CACHE"]) / "metrics" / "zs_pairs.json").exists()
    row = [j for j in store.list_jobs(limit=50) if j["kind"] == "zs" and j["owner"] == "cli"]
    assert len(row) == 1 and row[0]["status"] == "finished" and row[0]["units"] == 2  # only the missing pairs
    got = pd.read_csv(out, index_col=0)
    ref = M.zs(zs_setup, minilm, use_cache=False)
    np.testing.assert_allclose(got.loc[[p.name for p in zs_setup], [p.name for p in zs_setup]].to_numpy(), ref,
                               atol=1e-5)
    # all slots taken: the CLI waits for one (says so once), then runs
    monkeypatch.setenv("ATLAS_MAX_COMPUTE", "1")
    notes = []

    def give_up(msg):  # the CLI would now wait; the test stops it here
        notes.append(msg)
        raise J.Busy(msg)
    with real_slot("tsne", 1, store=store):
        with pytest.raises(J.Busy):
            with J.cli_zs(zs_setup, store=store, wait_note=give_up):
                pass
    assert notes and "compute slot" in notes[0]


def test_cli_matrix_zs_stops_on_jobs_cancel(zs_setup):
    """`python -m core jobs cancel` reaches a CLI zs matrix: it stops before its next evaluation."""
    store = RunStore()
    with pytest.raises(J.JobStopped):
        with J.cli_zs(zs_setup, store=store) as kw:
            row = next(j for j in store.list_jobs(status=("running",)) if j["owner"] == "cli")
            kw["progress"](1, 8)  # still running: nothing asked it to stop
            assert J.cancel(row["job_id"], store) == "running"
            kw["progress"](8, 8)
    assert store.get_job(row["job_id"])["status"] != "running"  # its slot is free again
