"""Build the demo library: real prompts and a real measured transfer matrix.

    python -m core demo build                      # train stage (GPU profile on CUDA, CPU profile otherwise) + finalize
    python -m core demo build --profile cpu        # force the CPU budget (about two hours on 2 cores)
    python -m core demo finalize                   # metric matrices, projections, manifest (CPU, minutes)
    python -m core demo report                     # what the demo shows, as text (the issue note's numbers)
    python -m core demo verify --write             # re-evaluate every committed prompt on its full test split
                                                   # (CPU), record its per-example predictions
    python -m core demo verify --sample 24         # re-check every prompt live on 24 examples against them

Stages (each resumes where it stopped: a finished run is a row of
``results.csv`` plus its prompt folder, written atomically; a killed build loses
at most the runs in flight):

1. sources -- one prompt per demo task on its full training split (``scratch``),
   plus ``generic``: one prompt on a mix of all ten tasks, the control source
   (a trained prompt that knows nothing task-specific in particular).
2. grid -- the transfer sweep in the low-resource target regime: every
   (source, target) pair with ``pot`` and ``panda`` and the ``scratch``
   baselines per target, over the profile's seeds. The grid is planned by
   :func:`core.runs.sweeps.plan` (scratch first, PANDA's PoT teachers before their
   students) and executed here by a pool of persistent worker processes: each
   loads the backbone once, which on a GPU is the difference between minutes
   and an hour of process start-ups. On a GPU each worker takes a pack of
   ready runs and trains them in one forward per step (``--pack``, packed
   training: core.training.train_packed); on the CPU one run at a time.
3. verify -- every committed prompt re-evaluated on its task's full test split
   on the CPU: its recorded (GPU) score must come back within one point, and its
   per-example predictions are stored (``test_predictions.npz``, keyed to a hash
   of the test split's text) so a quick live check of any slice is exact.
4. finalize -- metric matrices (:mod:`core.metrics`), projections
   (:mod:`core.projection`) and ``manifest.json`` (package versions, wheel
   hashes, the command and budget).

Why the regime (DESIGN.md §4): with full target data every source beats
scratch by about the same amount (PoT then measures "a trained prompt beats a
bad start"); with ``train_size=128`` target examples and a short budget the
start matters, so relatedness can show. Scratch starts from a task-neutral text
(never worse than no prompt), and ``generic`` is the control that any "related
source helps" claim has to beat.

PANDA here (our reading of the paper): teacher = the PoT prompt of the same
(source, target, seed) (as PANDA's code), student from the scratch init (as
PANDA's code), lambda = beta * e_avg(source, target) min-max normalised over
sources per target (the paper's metric-controlled weight; the code's fixed
value is a TrainConfig option).

Modules: ``profiles`` (budgets, results.csv) <- ``workers`` (the pool) <- ``plan`` (jobs, λ, grid)
<- ``build`` (stages, manifest, finalize) and ``verify`` (recorded predictions) <- ``cli``.
The names below are the public API: import them from ``core.demo``.
"""
from __future__ import annotations

from core.demo.build import build, estimate_s, finalize, finalize_metrics, write_manifest
from core.demo.cli import cli
from core.demo.plan import grid_jobs, lambda_weights, source_jobs
from core.demo.profiles import PROFILES, SWEEP_ID, Profile
from core.results import GENERIC, RESULTS_COLUMNS
from core.results import read_rows as read_results
from core.results import write_rows as write_results
from core.demo.verify import PREDICTIONS, committed_runs, predict_many, split_fingerprint, verify
from core.demo.workers import demo_task

__all__ = ["GENERIC", "PREDICTIONS", "PROFILES", "RESULTS_COLUMNS", "SWEEP_ID", "Profile", "build", "cli",
           "committed_runs", "demo_task", "estimate_s", "finalize", "finalize_metrics", "grid_jobs",
           "lambda_weights", "predict_many", "read_results", "source_jobs", "split_fingerprint", "verify",
           "write_manifest", "write_results"]
