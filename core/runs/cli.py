"""The command line of runs, sweeps, the run store and the worker.

    python -m core run --spec spec.json [--backend ray --address http://127.0.0.1:8265] [--wait]
    python -m core sweep --spec grid.json [--backend ...] [--wait] | --resume SWEEP_ID
    python -m core sweep --target T --top K [--library DIR ...] [--spot] [--mix] [--dry-run]   (core.ranking)
    python -m core runs list | show ID | cancel ID | retry ID | delete ID --yes | pump | reconcile
    python -m core worker RUN_ID [RUN_ID ...]   (started by a launcher, not by hand; several = one pack)

A spec file is the JSON of ``core.runs.spec.RunSpec``; a sweep file the JSON of
``core.runs.sweeps.SweepSpec``. ``run`` with a PANDA spec whose teacher is "PoT on the target
first" (``teacher_mode`` "pot", the default, and no ``teacher``) launches the 1x1 sweep that
trains that teacher first, as the Runs page does, and prints the sweep id.

The top of core/runs/ (store <- spec <- sweeps, worker <- capacity <- local, ray_jobs <- queue <- cli);
``sweep --target`` is handed to core.ranking's ranked sweep from here, so nothing below imports
the ranking.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from core.runs import local, queue
from core.runs.spec import BACKENDS, DEFAULT_RAY_ADDRESS, LaunchError, RunSpec, SpecError
from core.runs.store import RunStore, StoreError
from core.runs.display import task_states
from core.runs.sweeps import SweepSpec, target_checks
from core.runs.worker import worker_main

ERRORS = (SpecError, StoreError, LaunchError)


def cli(command: str, argv: list[str]) -> int:
    handlers = {"worker": _worker, "run": _run, "sweep": _sweep, "runs": _runs}
    if command not in handlers:
        print(f"error: core.runs does not handle {command!r}", file=sys.stderr)
        return 2
    return handlers[command](argv)


def _worker(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m core worker",
                                 description="execute stored runs: one, or several as one pack")
    ap.add_argument("run_id", nargs="+", help="run id(s); several train packed in one forward")
    ap.add_argument("--spec", action="append", default=[],
                    help="run from this spec file without a store (Ray jobs); one per run id")
    a = ap.parse_args(argv)
    return worker_main(a.run_id, a.spec)


def _run(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m core run", description="launch one run from a spec file "
                                 "(PANDA with a PoT teacher and no teacher prompt: the 1x1 sweep that trains it first)")
    ap.add_argument("--spec", required=True, help="RunSpec JSON file")
    ap.add_argument("--backend", choices=BACKENDS)
    ap.add_argument("--address", help="Ray dashboard address (default $RAY_ADDRESS or %s)" % DEFAULT_RAY_ADDRESS)
    ap.add_argument("--wait", action="store_true", help="stay and print progress until it ends")
    a = ap.parse_args(argv)
    try:
        spec = RunSpec.from_file(a.spec)
        if a.backend or a.address:
            spec = dataclasses.replace(spec, backend=a.backend or spec.backend, address=a.address or spec.address)
        store = RunStore()
        kind, new_id = queue.launch(spec, store)
    except ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if kind == "sweep":
        print(f"PANDA with a PoT teacher: queued as sweep {new_id} (scratch baseline, PoT teacher, PANDA student)",
              file=sys.stderr)
    print(new_id, flush=True)
    if not a.wait:
        return 0
    ids = [new_id] if kind == "run" else [r["run_id"] for r in store.latest_sweep_runs(new_id).values()]
    return queue.wait(store, ids)


def _sweep(argv: list[str]) -> int:
    if "--target" in argv:  # a sweep planned from a ranking of sources for this target
        from core.ranking import sweep_cli
        return sweep_cli(argv)

    ap = argparse.ArgumentParser(prog="python -m core sweep", description="launch a source x target grid")
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--spec", help="SweepSpec JSON file")
    g.add_argument("--resume", metavar="SWEEP_ID", help="relaunch what did not finish")
    ap.add_argument("--backend", choices=BACKENDS)
    ap.add_argument("--address")
    ap.add_argument("--wait", action="store_true")
    a = ap.parse_args(argv)
    store = RunStore()
    try:
        if a.resume:
            sweep_id, new = queue.resume_sweep(a.resume, store)
            print(f"{sweep_id}: relaunched {len(new)} run(s)")
        else:
            sw = SweepSpec.from_file(a.spec)
            if a.backend or a.address:
                sw = dataclasses.replace(sw, backend=a.backend or sw.backend, address=a.address or sw.address)
            for w in target_checks(list(sw.targets))[1]:  # refusals: launch_sweep raises them
                print(f"warning: {w}", file=sys.stderr)
            sweep_id = queue.launch_sweep(sw, store)
            print(sweep_id, flush=True)
    except ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if a.wait:
        return queue.wait(store, [r["run_id"] for r in store.latest_sweep_runs(sweep_id).values()])
    return 0


def _runs_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m core runs", description="the run store")
    sub = ap.add_subparsers(dest="action", required=True)
    p = sub.add_parser("list")
    p.add_argument("--status", action="append")
    p.add_argument("--csv", action="store_true", help="the results table as CSV")
    p = sub.add_parser("show")
    p.add_argument("run_id")
    p.add_argument("--events", type=int, default=20, help="last N events (0 = none)")
    for name in ("cancel", "retry"):
        sub.add_parser(name).add_argument("run_id")
    p = sub.add_parser("delete")
    p.add_argument("run_id")
    p.add_argument("--yes", action="store_true", help="really delete (its prompt stays in the library)")
    sub.add_parser("pump", help="start queued runs once")
    sub.add_parser("reconcile", help="mark runs whose process died as failed")
    p = sub.add_parser("dispatch", help="serve the queue until idle (started detached by launchers)")
    p.add_argument("--idle-exit-s", type=float, default=10.0)
    return ap


def _runs(argv: list[str]) -> int:
    a = _runs_parser().parse_args(argv)
    store = RunStore()
    try:
        return _runs_action(a, store)
    except ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _runs_action(a: argparse.Namespace, store: RunStore) -> int:
    if a.action == "list" and a.csv:
        store.results_table(status=a.status).to_csv(sys.stdout, index=False)
    elif a.action == "list":
        runs = store.list_runs(status=a.status)
        marks = task_states(runs)  # a deleted target, or one now holding other data (core.runs.display)
        for r in runs:
            print(queue.fmt_run(r) + (f"  [{marks[r['run_id']]}]" if r["run_id"] in marks else ""))
    elif a.action == "show":
        print(json.dumps(store.require_run(a.run_id), indent=2, default=str))
        for ev in (store.events(a.run_id)[-a.events:] if a.events else []):
            print(json.dumps(ev, default=str))
    elif a.action == "cancel":
        print(f"{a.run_id}: {queue.cancel(a.run_id, store)}")
    elif a.action == "retry":
        print(queue.retry(a.run_id, store))
    elif a.action == "delete":
        if not a.yes:
            print("error: deleting needs --yes", file=sys.stderr)
            return 2
        store.delete_run(a.run_id)
        print(f"{a.run_id}: deleted")
    elif a.action == "pump":
        print(json.dumps(queue.pump(store, dispatch=False)))
    elif a.action == "reconcile":
        print(json.dumps(local.reconcile(store)))
    elif a.action == "dispatch":
        return queue.dispatch_forever(store, idle_exit_s=a.idle_exit_s)
    return 0
