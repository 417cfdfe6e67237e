"""How the Runs page (and ``python -m core runs list``) names and picks runs: one rule, not a page's.

    detail_run(runs)   -> the run the detail opens on: the running one, else the most recent finished
    short_id(run)      -> what tells runs of one sweep apart: "#004" (its place in the sweep), else its id
    run_label(run)     -> "#004 · pot · sent_movie → sent_tweet · seed 0"

Sweep runs share a long prefix (``s261206-201330-ab12cd-004``): cut to a table's width, nine rows
read the same, because the part that differs is the end.
"""
from __future__ import annotations

from collections.abc import Sequence


def detail_run(runs: Sequence[dict]) -> str | None:
    """The run a detail view opens on when the user has not chosen one.

    The running run (the most recently started of several), else the most recently finished one,
    else the newest run of any status. ``runs``: rows of ``RunStore.list_runs`` (dicts with
    ``run_id``, ``status``, ``created``, ``started``, ``finished``)."""
    if not runs:
        return None

    def latest(rows: list[dict], key: str) -> str:
        return max(rows, key=lambda r: (r.get(key) or r.get("created") or 0.0, r["run_id"]))["run_id"]

    running = [r for r in runs if r["status"] == "running"]
    if running:
        return latest(running, "started")
    done = [r for r in runs if r["status"] == "finished"]
    if done:
        return latest(done, "finished")
    return latest(list(runs), "created")


def short_id(run: dict) -> str:
    """``#004`` (``#004-1`` for a resumed attempt) for a run of a sweep, the whole id otherwise."""
    rid, sid = run["run_id"], run.get("sweep_id")
    if sid and rid.startswith(sid + "-"):
        return "#" + rid[len(sid) + 1:]
    return rid


def run_label(run: dict) -> str:
    """One line naming a run by what it is: short id · method · source → target · seed."""
    src = run.get("source")
    what = f"{src} → {run['target']}" if src else run["target"]
    return f"{short_id(run)} · {run['method']} · {what} · seed {run.get('seed', 0)}"
