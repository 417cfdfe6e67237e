"""The Ray backend against a real local head started by this test (Ray Jobs + dashboard).

    RAY_AUTH_MODE=disabled .venv/bin/python -m pytest -q tests/test_ray_backend.py

A tiny real run goes through JobSubmissionClient.submit_job; the dispatcher's collector
reads its JSON event lines from tail_job_logs into the store, and the finished prompt
(shipped inside the last event) lands in the user library. A second run is cancelled
through stop_job. Skipped, with the reason printed, only when Ray is not importable.

Teardown stops exactly the head this module started: every process whose command line
names its private temp dir or GCS port, and their children, by pid (`ray stop` would kill
every Ray process on the machine, other people's clusters included).
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # explicit: a stray ~/.ray token must not switch auth on

from core.config import user_library_dir  # noqa: E402
from core.runs import local, queue, ray_jobs  # noqa: E402
from core.runs.spec import LaunchError, RunSpec  # noqa: E402
from core.runs.store import RunStore  # noqa: E402

REASON = ray_jobs.ray_available()
if REASON:
    print(f"SKIP tests/test_ray_backend.py: {REASON}", file=sys.stderr)
pytestmark = pytest.mark.skipif(REASON is not None, reason=str(REASON))

TINY = {"steps": 6, "train_size": 32, "eval_every": 3, "max_length": 32, "val_size": 32, "batch_size": 8}
TARGET = "party_parliament"
RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cluster_pids(markers: list[str]) -> set[int]:
    """Processes whose command line holds one of the markers, plus all their descendants."""
    cmd, parent = {}, {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd[int(d.name)] = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
            parent[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    found = {p for p, c in cmd.items() if any(m in c for m in markers) and p != os.getpid()}
    grew = True
    while grew:
        kids = {p for p, pp in parent.items() if pp in found and p not in found}
        grew = bool(kids)
        found |= kids
    return found


def _stop_cluster(markers: list[str]) -> None:
    pids = _cluster_pids(markers)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        t0 = time.monotonic()
        while time.monotonic() - t0 < 8 and any(Path(f"/proc/{p}").exists() for p in pids):
            time.sleep(0.2)
        pids = {p for p in pids if Path(f"/proc/{p}").exists()}
        if not pids:
            return


@pytest.fixture(scope="module")
def ray_head():
    temp = tempfile.mkdtemp(prefix="atlas-ray-")  # short: Ray's socket paths have a length limit
    gcs, dash = _free_port(), _free_port()
    env = {**os.environ, "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "disabled")}
    cmd = [RAY, "start", "--head", "--num-cpus", "2", "--dashboard-host", "127.0.0.1", "--include-dashboard", "true",
           "--disable-usage-stats", "--temp-dir", temp, "--port", str(gcs), "--dashboard-port", str(dash),
           "--ray-client-server-port", str(_free_port()), "--dashboard-agent-listen-port", str(_free_port())]
    markers = [temp, f":{gcs}"]
    try:
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
        if r.returncode != 0:
            pytest.fail(f"ray start failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}", pytrace=False)
        address = f"http://127.0.0.1:{dash}"
        client = ray_jobs.ray_client(address)
        t0 = time.monotonic()
        while True:  # the Jobs API answers a little after `ray start` returns
            try:
                client.list_jobs()
                break
            except Exception:
                if time.monotonic() - t0 > 60:
                    raise
                time.sleep(1)
        yield address
    finally:
        _stop_cluster(markers)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture
def store(atlas_home, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    s = RunStore()
    yield s
    local.stop_dispatcher(s)


def _wait(pred, timeout):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        got = pred()
        if got:
            return got
        time.sleep(0.5)
    raise AssertionError(f"condition not met within {timeout:.0f}s")


def test_ray_run_streams_events_into_store_and_cancel_stops_another(ray_head, store):
    spec = RunSpec(method="scratch", target=TARGET, params=TINY, device="cpu", backend="ray", address=ray_head)
    a = queue.submit(spec, store)
    long = RunSpec(method="scratch", target=TARGET, params={**TINY, "steps": 2000, "eval_every": 0}, seed=1,
                   device="cpu", backend="ray", address=ray_head)
    b = queue.submit(long, store)
    assert store.get_run(a)["job_id"] == a and local.dispatcher_pid(store)

    run = _wait(lambda: (r := store.get_run(a))["status"] not in ("queued", "running") and r, 300)
    assert run["status"] == "finished", run["error"]
    progress = store.events(a, kinds=["progress"])
    assert progress and progress[-1]["step"] == 6 and "ce" in progress[-1]["metrics"]
    assert [e["step"] for e in store.events(a, kinds=["eval"])] == [0, 3, 6]
    assert run["collected_seq"] > 0 and 0 <= run["test_score"] <= 1
    path = Path(run["prompt_path"])
    assert path.parent == user_library_dir() / "runs" and (path / "adapter_model.safetensors").is_file()
    # no Ray log line leaked into the store as an event
    assert all(e["kind"] in ("status", "progress", "eval", "log") for e in store.events(a))

    _wait(lambda: store.events(b, kinds=["progress"]), 240)
    assert queue.cancel(b, store) == "running"
    run_b = _wait(lambda: (r := store.get_run(b))["status"] not in ("queued", "running") and r, 120)
    assert run_b["status"] == "cancelled", run_b["error"]
    assert max(e["step"] for e in store.events(b, kinds=["progress"])) < 2000
    status = str(ray_jobs.ray_client(ray_head).get_job_status(b))
    assert "STOPPED" in status or "SUCCEEDED" in status, status


def test_unreachable_cluster_is_refused_before_anything_is_queued(store):
    port = _free_port()  # nothing listens there
    spec = RunSpec(method="scratch", target=TARGET, params=TINY, device="cpu", backend="ray",
                   address=f"http://127.0.0.1:{port}")
    with pytest.raises(LaunchError, match=f"cannot reach the Ray cluster at http://127.0.0.1:{port}"):
        queue.submit(spec, store)
    assert store.list_runs() == []


def test_user_task_travels_with_the_job_to_a_worker_with_an_empty_task_cache(ray_head, store, tmp_path,
                                                                           monkeypatch, atlas_home):
    """A task registered here (ATLAS_HOME/tasks) runs on a worker that has no ATLAS_HOME (the
    launcher never passes it) and whose ATLAS_CACHE is an empty folder: its data is in the bundle."""
    from core.tasks import register_task
    rows = ["text,label"] + [f"{'great lovely fine' if i % 2 else 'awful bad poor'} item number {i},"
                             f"{'pos' if i % 2 else 'neg'}" for i in range(60)]
    (tmp_path / "mine.csv").write_text("\n".join(rows) + "\n")
    register_task("ray_user_task", tmp_path / "mine.csv")
    (tmp_path / "mine.csv").unlink()  # the original file is gone too
    empty = tmp_path / "empty_cache"
    empty.mkdir()
    monkeypatch.setenv("ATLAS_CACHE", str(empty))  # a local head gets the launcher's cache: this one
    spec = RunSpec(method="scratch", target="ray_user_task", params={**TINY, "val_size": 6}, device="cpu",
                   backend="ray", address=ray_head)
    a = queue.submit(spec, store)
    run = _wait(lambda: (r := store.get_run(a))["status"] not in ("queued", "running") and r, 300)
    assert run["status"] == "finished", run["error"]
    assert 0 <= run["test_score"] <= 1
    bundle = local.run_dir(a) / "bundle"
    assert (bundle / "tasks" / "ray_user_task.json").is_file()
    assert not (empty / "tasks").exists()  # nothing was prepared into the worker's cache


def test_ray_pack_is_one_job_and_runs_keep_their_ids(ray_head, store, monkeypatch):
    """Packing forced on (CPU): two queued runs go to Ray as ONE job (submission id = the
    pack id), and each comes back under its own id with its own events and prompt."""
    from core.runs.spec import validate_spec
    from core.runs.store import new_run_id

    monkeypatch.setenv("ATLAS_PACK_CPU", "1")
    ids = []
    for seed in (0, 1):
        spec = validate_spec(RunSpec(method="scratch", target=TARGET, params=TINY, seed=seed, device="cpu",
                                     backend="ray", address=ray_head))
        ids.append(store.add_run(new_run_id(), spec.to_dict()))
    queue.pump(store)
    runs = [store.get_run(r) for r in ids]
    assert runs[0]["pack_id"] and runs[0]["job_id"] == runs[1]["job_id"] == runs[0]["pack_id"]
    finals = _wait(lambda: all((r := store.get_run(i))["status"] not in ("queued", "running") for i in ids)
                   and [store.get_run(i) for i in ids], 300)
    for r in finals:
        assert r["status"] == "finished", r["error"]
        assert [e["step"] for e in store.events(r["run_id"], kinds=["eval"])] == [0, 3, 6]
        assert Path(r["prompt_path"]).name == r["run_id"]
    assert finals[0]["prompt_path"] != finals[1]["prompt_path"]
