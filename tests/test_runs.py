"""Runs: the store, the local launcher, cancel/kill/reconcile, validation and sweeps -- with real,
tiny training runs on real demo tasks (MiniLM, CPU).

    .venv/bin/python -m pytest -q tests/test_runs.py

Each test has its own ATLAS_HOME (conftest), so its own runs.db, workers and dispatcher;
the `store` fixture kills whatever a test left running.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from core.config import user_library_dir
from core.runs import local, queue, sweeps
from core.runs.spec import RunSpec, SpecError
from core.runs.store import RESULTS_COLUMNS, RunStore, hostname

REPO = Path(__file__).resolve().parent.parent
# tiny but real: two small-test-split targets, 6 steps, eval at 3
TINY = {"steps": 6, "train_size": 32, "eval_every": 3, "max_length": 32, "val_size": 32, "batch_size": 8}
TARGETS = ("party_parliament", "spam_sms")


def _tasks_ready() -> str | None:
    try:
        from core.tasks import get_task

        for t in TARGETS:
            get_task(t)
    except Exception as e:  # noqa: BLE001
        return f"demo tasks not prepared ({e}); run `make tasks`"
    return None


pytestmark = pytest.mark.skipif(_tasks_ready() is not None, reason=str(_tasks_ready()))


@pytest.fixture(params=["one-per-process", "packed"])
def store(request, atlas_home, monkeypatch):
    """Every test runs twice: as shipped on CPU (one run per process), and with packing forced
    on (ATLAS_PACK_CPU=1: ready runs of one backbone/device/prompt length share a process and
    a forward), where each run must still look exactly like a single one."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    if request.param == "packed":
        monkeypatch.setenv("ATLAS_PACK_CPU", "1")
        monkeypatch.setenv("ATLAS_PACK", "4")
    else:
        monkeypatch.delenv("ATLAS_PACK_CPU", raising=False)
    s = RunStore()
    yield s
    _cleanup(s)


@pytest.fixture
def packed_store(atlas_home, monkeypatch):
    """Packing forced on CPU, at most 3 runs per process."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("ATLAS_PACK_CPU", "1")
    monkeypatch.setenv("ATLAS_PACK", "3")
    s = RunStore()
    yield s
    _cleanup(s)


def _cleanup(s: RunStore) -> None:
    local.stop_dispatcher(s)
    for run in s.list_runs(status=["running"]):  # never leave workers behind
        if run["pid"] and run["pid"] != os.getpid() and local.pid_alive(run["pid"], run["pid_start"]):
            os.killpg(run["pid"], signal.SIGKILL)
    local.reap()


def wait_for(pred, timeout: float, store: RunStore | None = None, poll: float = 0.3):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if store is not None:
            queue.pump(store, dispatch=False)
        got = pred()
        if got:
            return got
        time.sleep(poll)
    raise AssertionError(f"condition not met within {timeout:.0f}s")


def make_prompt(folder: Path, name: str, d: int = 384, seed: int = 0) -> Path:
    from core.prompts import SoftPrompt, write_prompt

    g = torch.Generator().manual_seed(seed)
    backbone = "sentence-transformers/all-MiniLM-L6-v2" if d == 384 else "roberta-base"
    p = SoftPrompt(tensor=torch.randn(20, d, generator=g) * 0.05, name=name, task="party_speech",
                   backbone=backbone, method="scratch")
    return Path(write_prompt(p, folder / name))


def statuses(store: RunStore, run_id: str) -> list[str]:
    return [e["metrics"]["status"] for e in store.events(run_id, kinds=["status"]) if "status" in e["metrics"]]


# --------------------------------------------------------------------------- #
def test_local_run_queued_running_finished_and_prompt_joins_library(store):
    spec = RunSpec(method="scratch", target=TARGETS[0], params=TINY, seed=0, device="cpu")
    run_id = queue.submit(spec, store, dispatch=False)
    run = wait_for(lambda: (r := store.get_run(run_id))["status"] in ("finished", "failed") and r, 150, store)
    assert run["status"] == "finished", run["error"]
    assert statuses(store, run_id) == ["queued", "running", "running", "finished"]  # claim, worker, final
    progress = store.events(run_id, kinds=["progress"])
    assert [e["step"] for e in progress] == sorted(e["step"] for e in progress) and progress[-1]["step"] == 6
    assert {"ce", "kd", "examples_per_s", "eta_s", "rss_mb"} <= set(progress[-1]["metrics"])
    assert [e["step"] for e in store.events(run_id, kinds=["eval"])] == [0, 3, 6]
    assert 0.0 <= run["test_score"] <= 1.0 and run["step"] == 6

    # the prompt is in the user library, readable, and the library index lists it
    from core.library import index_library
    from core.prompts import read_prompt

    path = Path(run["prompt_path"])
    assert path.parent == user_library_dir() / "runs"
    assert read_prompt(path).d == 384
    assert any(p.origin and Path(p.origin).resolve() == path.resolve()
               for p in index_library(user_library_dir()).prompts.values())

    table = store.results_table()
    assert list(table.columns) == RESULTS_COLUMNS
    row = table.iloc[0]
    assert (row["run_id"], row["method"], row["target"], row["status"], row["source"]) == \
           (run_id, "scratch", TARGETS[0], "finished", "")
    assert json.loads(row["settings"])["params"]["steps"] == 6
    assert row["wall_time_s"] > 0  # the worker reads TrainResult.wall_time_s

    # a restarted server: a new RunStore in another process sees every run and event
    code = ("import json,sys; sys.path.insert(0, %r); from core.runs.store import RunStore; s = RunStore(sys.argv[1]); "
            "print(json.dumps([len(s.list_runs()), s.event_count(), s.get_run(sys.argv[2])['status']]))" % str(REPO))
    out = subprocess.run([sys.executable, "-c", code, str(store.path), run_id], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert json.loads(out) == [1, store.event_count(), "finished"]
    # and the CLI reads the same store
    cli = subprocess.run([sys.executable, "-m", "core", "runs", "list"], cwd=REPO, capture_output=True, text=True,
                         timeout=60)
    assert cli.returncode == 0 and run_id in cli.stdout and "finished" in cli.stdout
    cli = subprocess.run([sys.executable, "-m", "core", "runs", "show", run_id, "--events", "3"], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0 and '"status": "finished"' in cli.stdout and cli.stdout.count('{"run_id"') == 3


def test_sigkill_worker_marks_failed_and_keeps_events(store):
    spec = RunSpec(method="scratch", target=TARGETS[0], params={**TINY, "steps": 200}, device="cpu")
    run_id = queue.submit(spec, store, dispatch=False)
    wait_for(lambda: store.events(run_id, kinds=["progress"]), 120, store)
    run = store.get_run(run_id)
    n_before = store.event_count(run_id)
    os.kill(run["pid"], signal.SIGKILL)
    t0 = time.monotonic()
    run = wait_for(lambda: (r := store.get_run(run_id))["status"] != "running" and r, 5.0, store, poll=0.2)
    assert time.monotonic() - t0 <= 5.0
    assert run["status"] == "failed"
    assert "exited without a final event" in run["error"] and "log tail" in run["error"]
    assert store.event_count(run_id) >= n_before + 1  # events kept, plus the failure event


def test_queue_cap_and_cancel_within_one_step(store):
    long = {**TINY, "steps": 60, "eval_every": 0}
    a = queue.submit(RunSpec(method="scratch", target=TARGETS[0], params=long, device="cpu"), store,
                         dispatch=False)
    b = queue.submit(RunSpec(method="scratch", target=TARGETS[0], params=long, seed=1, device="cpu"), store,
                         dispatch=False)
    # CPU cap 1: the second waits in the queue
    assert store.get_run(a)["status"] == "running" and store.get_run(b)["status"] == "queued"
    assert queue.cancel(b, store) == "cancelled"  # a queued run is cancelled at once
    wait_for(lambda: store.events(a, kinds=["progress"]), 120, store)
    asked_at_step = store.get_run(a)["step"]
    queue.cancel(a, store)
    run = wait_for(lambda: (r := store.get_run(a))["status"] != "running" and r, 60, store)
    assert run["status"] == "cancelled"
    last_step = max(e["step"] for e in store.events(a, kinds=["progress"]))
    # the flag is read before every step: at most the step in flight (+1 for a throttled event) follows
    assert last_step <= asked_at_step + 2 < 60, (asked_at_step, last_step)
    assert store.get_run(b)["status"] == "cancelled" and store.get_run(b)["pid"] is None  # never started
    assert not (user_library_dir() / "runs" / a).exists()  # a cancelled run adds nothing to the library
    # retry: a new run from the same spec
    c = queue.retry(a, store, dispatch=False)
    assert c != a and store.get_run(c)["retry_of"] == a and store.get_run(c)["spec"]["params"]["steps"] == 60
    queue.cancel(c, store)


_WRITER = """
import sys; sys.path.insert(0, {repo!r})
from core.runs.store import RunStore
s = RunStore(sys.argv[1])
for i in range(200):
    s.add_event(sys.argv[2], "progress", i, {{"i": i}})
"""


def test_eight_concurrent_writers(store):
    ids = [f"w{i}" for i in range(8)]
    for rid in ids:
        store.add_run(rid, {"method": "scratch", "target": "t", "params": {}})
    code = _WRITER.format(repo=str(REPO))
    procs = [subprocess.Popen([sys.executable, "-c", code, str(store.path), rid]) for rid in ids]
    assert [p.wait(timeout=120) for p in procs] == [0] * 8
    got = {rid: [e["metrics"]["i"] for e in store.events(rid, kinds=["progress"])] for rid in ids}
    assert sum(len(v) for v in got.values()) == 1600
    assert all(v == list(range(200)) for v in got.values())
    assert all([e["seq"] for e in store.events(rid)] == list(range(1, 202)) for rid in ids)  # gap-free
    assert store.get_run("w3")["step"] == 199


def test_bad_specs_are_refused_before_anything_starts(store, tmp_path):
    wide = make_prompt(tmp_path, "wide", d=768)
    cases = [
        (dict(method="scratch", target="no_such_task"), "target", "unknown task 'no_such_task'"),
        (dict(method="pot", target=TARGETS[0], sources=[str(tmp_path / "missing.pt")]), "sources",
         "missing.pt: no such file"),
        (dict(method="pot", target=TARGETS[0], sources=[str(wide)]), "sources", "d=768 but backbone"),
        (dict(method="scratch", target=TARGETS[0], params={"stepz": 3}), "params", "unknown hyper-parameter"),
        (dict(method="scratch", target=TARGETS[0], params={"steps": 0}), "params", "steps must be >= 1"),
        (dict(method="panda", target=TARGETS[0], sources=[str(wide)]), "sources", "d=768"),
    ]
    for kw, field, text in cases:
        with pytest.raises(SpecError) as e:
            queue.submit(RunSpec(**kw), store, dispatch=False)
        assert field in e.value.problems and text in e.value.problems[field], (kw, e.value.problems)
    with pytest.raises(SpecError, match="unknown method 'sgd'"):
        RunSpec(method="sgd", target=TARGETS[0])
    # nothing was queued, no worker was started
    assert store.list_runs() == [] and not (Path(os.environ["ATLAS_HOME"]) / "runs").exists()
    # the CLI says the same, exit code 2
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"method": "pot", "target": TARGETS[0], "sources": [str(wide)]}))
    r = subprocess.run([sys.executable, "-m", "core", "run", "--spec", str(bad)], cwd=REPO, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and "d=768 but backbone" in r.stderr and store.list_runs() == []


def test_sweep_2x2_fills_measured_matrix(store, tmp_path, monkeypatch):
    monkeypatch.setenv("ATLAS_CPU_SLOTS", "2")
    srcs = [str(make_prompt(tmp_path, n, seed=i)) for i, n in enumerate(("src_a", "src_b"))]
    sw = sweeps.SweepSpec(sources=srcs, targets=list(TARGETS), methods=["pot"], seeds=[0], params=TINY, device="cpu")
    keys = [p.key for p in sweeps.plan(sw)]
    assert keys[:2] == [f"scratch|{t}|0" for t in TARGETS] and len(keys) == 6  # baselines first
    sweep_id = queue.launch_sweep(sw, store)  # the detached dispatcher drives it
    assert local.dispatcher_pid(store)
    runs = wait_for(lambda: (rs := store.latest_sweep_runs(sweep_id)) and
                    all(r["status"] in ("finished", "failed", "cancelled") for r in rs.values()) and rs, 240)
    assert all(r["status"] == "finished" for r in runs.values()), {k: r["error"] for k, r in runs.items()}
    from core.metrics import measured

    m = measured(store.results_table()).mean
    assert sorted(m.index) == ["src_a", "src_b"] and sorted(m.columns) == sorted(TARGETS)
    assert m.notna().all().all() and m.shape == (2, 2)
    # resuming a finished sweep launches nothing
    assert queue.resume_sweep(sweep_id, store, dispatch=False)[1] == []


def test_panda_sweep_waits_for_its_pot_teacher_and_resumes(store, tmp_path, monkeypatch):
    target = TARGETS[0]
    src = str(make_prompt(tmp_path, "src_a"))
    # hold the only CPU slot with a stand-in 'running' run (this live test process), so nothing starts yet
    store.add_run("holder", {"method": "scratch", "target": target, "params": {}})
    store.update_run("holder", status="running", pid=os.getpid(), pid_start=local.proc_start_time(os.getpid()),
                     host=hostname(), device="cpu")
    sw = sweeps.SweepSpec(sources=[src], targets=[target], methods=["panda"], params=TINY, device="cpu")
    sweep_id = queue.launch_sweep(sw, store, dispatch=False)
    runs = store.latest_sweep_runs(sweep_id)
    assert [r["status"] for r in runs.values()] == ["queued"] * 3
    pot, panda = runs[f"pot|{src}|{target}|0"], runs[f"panda|{src}|{target}|0"]
    assert panda["depends_on"] == [pot["run_id"]] and panda["spec"]["teacher"] == f"run:{pot['run_id']}"
    # stop the sweep: the queued runs are cancelled at once
    for r in runs.values():
        assert queue.cancel(r["run_id"], store) == "cancelled"
    # resume: new runs, the panda student re-pointed at the new PoT teacher
    _, new = queue.resume_sweep(sweep_id, store, dispatch=False)
    assert len(new) == 3
    runs = store.latest_sweep_runs(sweep_id)
    pot, panda = runs[f"pot|{src}|{target}|0"], runs[f"panda|{src}|{target}|0"]
    assert pot["run_id"] in new and panda["depends_on"] == [pot["run_id"]] and panda["retry_of"]
    assert panda["spec"]["teacher"] == f"run:{pot['run_id']}"
    # free the slot (2 CPU slots now): scratch and pot run, then the student
    store.set_status("holder", "finished")
    monkeypatch.setenv("ATLAS_CPU_SLOTS", "2")
    final = wait_for(lambda: (r := store.get_run(panda["run_id"]))["status"] in ("finished", "failed") and r, 240,
                     store)
    assert final["status"] == "finished", final["error"]
    pot = store.get_run(pot["run_id"])
    assert pot["status"] == "finished" and pot["finished"] <= final["started"]  # teacher before student
    assert store.events(final["run_id"], kinds=["progress"])[-1]["metrics"]["kd"] > 0  # it distilled
    # the cancelled attempts stay in the store; the sweep's latest cells are all finished now
    wait_for(lambda: all(r["status"] == "finished" for r in store.latest_sweep_runs(sweep_id).values()), 120, store)
    assert len(store.list_runs(sweep_id=sweep_id)) == 6


# --------------------------------------------------------------------------- #
# packed workers
# --------------------------------------------------------------------------- #
def _hold_cpu_slot(store: RunStore) -> None:
    """A stand-in 'running' run (this live test process) holds the only CPU slot, so submitted
    runs wait in the queue and are claimed together when it is released."""
    store.add_run("holder", {"method": "scratch", "target": TARGETS[0], "params": {}})
    store.update_run("holder", status="running", pid=os.getpid(), pid_start=local.proc_start_time(os.getpid()),
                     host=hostname(), device="cpu")


def test_pack_runs_keep_their_own_record(packed_store, tmp_path):
    """Three queued runs start as one process; one finishes as a single run does, one is
    cancelled mid-pack, one fails (its source file broke after it was queued); a fourth
    waits for the next process (cap 3)."""
    store = packed_store
    src = make_prompt(tmp_path, "src_a")
    _hold_cpu_slot(store)
    a = queue.submit(RunSpec(method="scratch", target=TARGETS[0], params=TINY, device="cpu"), store,
                         dispatch=False)
    b = queue.submit(RunSpec(method="scratch", target=TARGETS[1], params={**TINY, "steps": 400, "eval_every": 0},
                                 seed=1, device="cpu"), store, dispatch=False)
    c = queue.submit(RunSpec(method="pot", target=TARGETS[1], sources=[str(src)], params=TINY, device="cpu"),
                         store, dispatch=False)
    d = queue.submit(RunSpec(method="scratch", target=TARGETS[0], params=TINY, seed=3, device="cpu"), store,
                         dispatch=False)
    for f in src.iterdir():  # the source breaks after validation: its run fails in its own set-up
        if f.suffix == ".safetensors":
            f.write_bytes(b"not a safetensors file")
    store.set_status("holder", "finished")
    queue.pump(store, dispatch=False)
    runs = {r: store.get_run(r) for r in (a, b, c, d)}
    assert [runs[r]["status"] for r in (a, b, c, d)] == ["running", "running", "running", "queued"]
    assert runs[a]["pack_id"] and runs[a]["pack_id"] == runs[b]["pack_id"] == runs[c]["pack_id"]
    assert runs[a]["pid"] == runs[b]["pid"] == runs[c]["pid"]
    wait_for(lambda: store.events(b, kinds=["progress"]), 150)
    queue.cancel(b, store)
    final = wait_for(lambda: all((store.get_run(r))["status"] in ("finished", "failed", "cancelled")
                                 for r in (a, b, c)) and {r: store.get_run(r) for r in (a, b, c)}, 150, store)
    assert (final[a]["status"], final[b]["status"], final[c]["status"]) == ("finished", "cancelled", "failed")
    # a: exactly the record of a single run (plus one log line saying it was packed)
    assert statuses(store, a) == ["queued", "running", "running", "finished"]
    assert [e["step"] for e in store.events(a, kinds=["eval"])] == [0, 3, 6]
    assert store.events(a, kinds=["progress"])[-1]["step"] == 6 and final[a]["step"] == 6
    assert Path(final[a]["prompt_path"]).parent == user_library_dir() / "runs"
    assert "packed with 3 runs" in store.events(a, kinds=["log"])[0]["metrics"]["message"]
    from core.runs.worker import pack_note
    assert pack_note(store, final[a]).startswith("packed with 3 runs")
    # b: stopped at the next step, nothing in the library
    last = max(e["step"] for e in store.events(b, kinds=["progress"]))
    assert last < 400 and not (user_library_dir() / "runs" / b).exists()
    # c: its own error, naming its file; its own log holds its traceback
    assert "src_a" in final[c]["error"] and "Traceback" in final[c]["error"]
    own_log = (Path(os.environ["ATLAS_HOME"]) / "runs" / c / "log.txt").read_text()
    assert '"run_id": "%s"' % c in own_log and "Traceback" in own_log and a not in own_log
    # d ran after, on its own (a pack of one); retry works per run: the cancelled one is a new
    # queued run, the failed one is validated again and refused while its source is broken
    wait_for(lambda: store.get_run(d)["status"] == "finished", 150, store)
    assert store.get_run(d)["pack_id"] is None
    new = queue.retry(b, store, dispatch=False)
    assert store.get_run(new)["retry_of"] == b and store.get_run(new)["status"] in ("queued", "running")
    queue.cancel(new, store)
    with pytest.raises(SpecError, match="src_a"):
        queue.retry(c, store, dispatch=False)


def test_killed_pack_fails_every_run_with_log_tails(packed_store):
    store = packed_store
    _hold_cpu_slot(store)
    ids = [queue.submit(RunSpec(method="scratch", target=TARGETS[0], params={**TINY, "steps": 400}, seed=i,
                                    device="cpu"), store, dispatch=False) for i in range(2)]
    store.set_status("holder", "finished")
    queue.pump(store, dispatch=False)
    wait_for(lambda: all(store.events(r, kinds=["progress"]) for r in ids), 150)
    pid = store.get_run(ids[0])["pid"]
    assert store.get_run(ids[1])["pid"] == pid
    os.kill(pid, signal.SIGKILL)
    runs = wait_for(lambda: all(store.get_run(r)["status"] != "running" for r in ids)
                    and [store.get_run(r) for r in ids], 10, store, poll=0.2)
    for r in runs:
        assert r["status"] == "failed" and "exited without a final event" in r["error"]
        assert f"--- pack {r['pack_id']}" in r["error"]


def test_wait_leaves_the_queue_to_a_live_dispatcher_and_reads_runs_in_one_query(store, monkeypatch):
    """``sweep … --wait`` pumped the queue every second on top of the dispatcher (a third of a core on 136
    runs): with a dispatcher alive it only reads, all its runs at once; without one it pumps as before."""
    from core.runs import local, queue
    for rid in ("w1", "w2"):
        store.add_run(rid, {"method": "scratch", "target": "t", "seed": 0, "params": {}})
        store.set_status(rid, "running")
        store.set_status(rid, "finished")
    pumped = []
    monkeypatch.setattr(queue, "pump", lambda *a, **k: pumped.append(1) or {})
    monkeypatch.setattr(store, "get_run", lambda *a: (_ for _ in ()).throw(AssertionError("one run at a time")))
    monkeypatch.setattr(local, "dispatcher_pid", lambda s: 4242)
    assert queue.wait(store, ["w1", "w2"], poll_s=0.01, quiet=True) == 0 and pumped == []
    monkeypatch.setattr(local, "dispatcher_pid", lambda s: None)
    assert queue.wait(store, ["w1", "w2"], poll_s=0.01, quiet=True) == 0 and pumped == [1]
    with pytest.raises(Exception, match="no run 'nope'"):
        store.require_runs(["w1", "nope"])
