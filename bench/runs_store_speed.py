"""How fast the run store is: write throughput with 8 writer processes, and how long an
event takes to reach the Runs page's data (store write -> read in another process that
polls at the page's interval).

    .venv/bin/python bench/runs_store_speed.py [--writers 8] [--events 200] [--poll 1.0]

Runs in a temporary ATLAS_HOME; prints one line per measurement.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _writer(db: str, run_id: str, n: int, start_at: float) -> None:
    from core.runs.store import RunStore

    store = RunStore(db)
    while time.time() < start_at:  # all writers start together
        time.sleep(0.001)
    for i in range(n):
        store.add_event(run_id, "progress", i, {"i": i, "loss": 1.0 / (i + 1)})


def _slow_writer(db: str, run_id: str, n: int, every_s: float) -> None:
    from core.runs.store import RunStore

    store = RunStore(db)
    for i in range(n):
        store.add_event(run_id, "progress", i, {"i": i, "written_at": time.time()})
        time.sleep(every_s)


def throughput(db: str, writers: int, events: int) -> tuple[float, int]:
    from core.runs.store import RunStore

    store = RunStore(db)
    ids = [f"bench-w{i}" for i in range(writers)]
    for rid in ids:
        store.add_run(rid, {"method": "scratch", "target": "bench", "params": {}})
    ctx = mp.get_context("spawn")
    start_at = time.time() + 2.0  # after every interpreter has started
    procs = [ctx.Process(target=_writer, args=(db, rid, events, start_at)) for rid in ids]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    elapsed = time.time() - start_at
    stored = sum(store.event_count(rid) - 1 for rid in ids)  # minus each run's 'queued' event
    for rid in ids:  # in order per run
        got = [e["metrics"]["i"] for e in store.events(rid, kinds=["progress"])]
        assert got == list(range(events)), f"{rid}: events out of order or missing"
    return stored / elapsed, stored


def visibility(db: str, poll_s: float, n: int = 20, every_s: float = 0.37) -> list[float]:
    """A writer process emits an event every ``every_s``; this process polls like the
    page does (read events after the last seq, every ``poll_s``) and records now - written_at."""
    from core.runs.store import RunStore

    store = RunStore(db)
    rid = f"bench-vis-{poll_s}"
    store.add_run(rid, {"method": "scratch", "target": "bench", "params": {}})
    p = mp.get_context("spawn").Process(target=_slow_writer, args=(db, rid, n, every_s))
    p.start()
    lat, last = [], 1
    while len(lat) < n:
        time.sleep(poll_s)
        for ev in store.events(rid, after_seq=last):
            last = ev["seq"]
            lat.append(time.time() - ev["metrics"]["written_at"])
    p.join()
    return lat


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--writers", type=int, default=8)
    ap.add_argument("--events", type=int, default=200)
    ap.add_argument("--poll", type=float, default=1.0, help="the Runs page's fragment interval (s)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["ATLAS_HOME"] = tmp
        db = str(Path(tmp) / "runs.db")
        rate, stored = throughput(db, a.writers, a.events)
        print(f"write throughput: {rate:,.0f} events/s with {a.writers} writer processes "
              f"({stored} events, one transaction each, all stored in order per run)")
        for poll in (0.05, a.poll):
            lat = visibility(db, poll)
            print(f"event written -> visible in another process polling every {poll:g}s: "
                  f"mean {statistics.mean(lat):.3f}s, max {max(lat):.3f}s (n={len(lat)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
