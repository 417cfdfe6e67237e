"""core.runs.display: which run a detail opens on, and how runs of one sweep are told apart (issue 28).

    .venv/bin/python -m pytest -q tests/test_runs_display.py
"""
from __future__ import annotations

from core.runs.display import detail_run, run_label, short_id


def run(rid, status, created, started=None, finished=None, sweep=None, source="src", target="tgt", method="pot"):
    return dict(run_id=rid, status=status, created=created, started=started, finished=finished, sweep_id=sweep,
                source=source, target=target, method=method, seed=0)


def test_the_running_run_wins_over_newer_queued_ones():
    """After a sweep launch the newest row is a PANDA waiting for its teacher: the detail opens on the running run."""
    runs = [run("s1-008", "queued", 9.0), run("s1-007", "queued", 8.0), run("s1-001", "running", 2.0, started=5.0),
            run("s1-000", "finished", 1.0, started=2.0, finished=4.0)]
    assert detail_run(runs) == "s1-001"
    runs.append(run("s1-002", "running", 3.0, started=6.0))  # two running: the most recently started
    assert detail_run(runs) == "s1-002"


def test_else_the_most_recently_finished_else_the_newest():
    runs = [run("r3", "failed", 3.0), run("r2", "finished", 2.0, finished=10.0), run("r1", "finished", 1.0, finished=20.0)]
    assert detail_run(runs) == "r1"  # finished last, though created first
    assert detail_run([run("a", "queued", 1.0), run("b", "failed", 2.0)]) == "b"
    assert detail_run([]) is None


def test_runs_of_one_sweep_are_told_apart_by_their_place_in_it():
    sweep = "s261206-201330-ab12cd"
    a, b = run(f"{sweep}-004", "queued", 1, sweep=sweep), run(f"{sweep}-005-1", "queued", 1, sweep=sweep, source="")
    assert (short_id(a), short_id(b)) == ("#004", "#005-1")
    assert short_id(run("r261206-201330-ffeedd", "queued", 1)) == "r261206-201330-ffeedd"
    assert run_label(a) == "#004 · pot · src → tgt · seed 0"
    assert run_label(b) == "#005-1 · pot · tgt · seed 0"  # no source (scratch): no arrow
