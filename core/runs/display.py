"""How the Runs page (and ``python -m core runs list``) names and picks runs: one rule, not a page's.

    detail_run(runs)   -> the run the detail opens on: the running one, else the most recent finished
    short_id(run)      -> what tells runs of one sweep apart: "#004" (its place in the sweep), else its id
    run_label(run)     -> "#004 · pot · sent_movie → sent_tweet · seed 0"
    score_label(run)   -> "accuracy" | "balanced accuracy": what the run's val / test numbers are
    task_state(run, deleted, live) -> "" | "task deleted" | "other data": is the run's target still
                          the data it trained on (task_states(runs) reads the task registry)

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


SCORE_LABELS = {"accuracy": "accuracy", "balanced_accuracy": "balanced accuracy"}
SCORE_SHORT = {"accuracy": "acc", "balanced_accuracy": "bal. acc"}
TASK_DELETED = "task deleted"   # the run's target was deleted and not registered again
OTHER_DATA = "other data"       # a task of the target's name exists, but holds other data than the run's


def score_kind_of(run: dict) -> str:
    """The run's score kind key, from its own events (the worker writes the task's registered kind into
    every eval and the final event); "accuracy" for runs recorded before both scores were stored."""
    m = run.get("last_metrics") or {}
    return m.get("score_kind") or "accuracy"


def score_label(run: dict, short: bool = False) -> str:
    """How a table names the run's main score: "accuracy" / "balanced accuracy" (short: "acc" / "bal. acc")."""
    k = score_kind_of(run)
    return (SCORE_SHORT if short else SCORE_LABELS).get(k, k)


def run_data_hash(run: dict) -> str | None:
    """The hash of the task data the run trained on: its spec's (a user task's, fixed at launch), else its
    final event's."""
    return (run.get("spec") or {}).get("target_data_hash") or (run.get("last_metrics") or {}).get("data_hash")


def task_state(run: dict, deleted: dict[str, str | None], live: dict[str, str | None]) -> str:
    """"" when the run's target is the task it trained on (or a demo task); TASK_DELETED when that task
    was deleted and not registered again; OTHER_DATA when a task of that name is registered with other
    data than the run recorded (a later registration under the same name). ``deleted``:
    core.tasks.registry.deleted_tasks(); ``live``: live_task_hashes()."""
    name, h = run.get("target"), run_data_hash(run)
    if name in live:
        return OTHER_DATA if h and live[name] and h != live[name] else ""
    if name in deleted:
        return TASK_DELETED
    return ""


def task_states(runs: Sequence[dict]) -> dict[str, str]:
    """run_id -> task_state for the runs whose target is not what they trained on (others left out)."""
    from core.tasks.registry import deleted_tasks, live_task_hashes
    try:
        deleted, live = deleted_tasks(), live_task_hashes()
    except Exception:  # noqa: BLE001 -- an unreadable tasks folder: no marks rather than no Runs page
        return {}
    return {r["run_id"]: st for r in runs if (st := task_state(r, deleted, live))}
