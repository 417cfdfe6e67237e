"""Runs: what to train, the queue that starts it, the worker that trains it, and the store that records it.

    python -m core run --spec spec.json --wait        # python -m core runs list | sweep --spec grid.json

One concept per module, arrows one way (a module imports only those to its left):

    store  <-  spec  <-  sweeps, worker  <-  capacity  <-  local, ray_jobs  <-  queue  <-  cli
    store     the SQLite store (ATLAS_HOME/runs.db): runs, events, sweeps, meta; every SQL statement
    spec      RunSpec, validate_spec, SpecError / LaunchError, METHODS
    sweeps    grid planning (SweepSpec, plan, plan_resume, the PANDA-with-PoT-teacher rule): no I/O
    worker    the process that trains stored runs (one, or a pack), record_final, result files
    capacity  per-device caps and packing groups
    local     worker processes on this machine, liveness, cancel escalation, the dispatcher process
    ray_jobs  Ray job submission and the collector of their logs
    queue     submit / launch / cancel / retry / launch_sweep / resume_sweep / pump / dispatch_forever
    cli       ``python -m core run | sweep | runs | worker`` (``sweep --target`` -> core.ranking)

A request from the Runs page: ``queue.launch(spec)`` validates (spec), inserts a queued row
(store) and pumps: ``local.claim_local`` picks what the caps allow and the store marks it
running in one transaction; ``local.start_local`` spawns ``python -m core worker ID``, whose
events go straight into the store; the page's fragment re-reads the store every second. A Ray
run is submitted as a job instead and the dispatcher's collector copies its log's events in.

This file imports nothing, so importing ``core.runs.store`` stays cheap (the pages read it).
"""
