"""The training event stream: what a run emits, and reading events written by older versions.

    python -c "from core.training.events import upgrade_metrics; print(upgrade_metrics({'val_acc': 0.9}))"

An event is ``{"kind": "status"|"progress"|"eval"|"log", "step": int, "metrics": {...}}``:

    status    state (started | caching_teacher | finished | cancelled), task, method, device, n;
              at the end val_score, test_score, best_step, wall_time_s
    progress  loss, ce, kd, lr, examples_per_s, eta_s
    eval      val_score, best_val_score

One name per thing: the results table says ``val_score`` / ``test_score`` / ``wall_time_s``, and
so do the events. Events stored before (runs.db ``events.metrics`` and ``runs.last_metrics``)
said ``val_acc`` / ``best_val_acc`` / ``test_acc``; readers pass them through
:func:`upgrade_metrics`, so old and new runs read the same. Torch-free.
"""
from __future__ import annotations

# the names older versions wrote -> the names written now
RENAMED = {"val_acc": "val_score", "best_val_acc": "best_val_score", "test_acc": "test_score",
           "init_val_acc": "init_val_score"}


def upgrade_metrics(metrics: dict | None) -> dict:
    """An event's metrics with old names renamed (a new name already present wins)."""
    m = dict(metrics or {})
    for old, new in RENAMED.items():
        if old in m:
            value = m.pop(old)
            m.setdefault(new, value)
    return m
