"""Is a task a target that can be measured? Its score kind, chance level, and the checks run
before it is ranked or swept.

    python -m core tasks show my_task      # prints the score kind and any warning
    python -m core rank --target my_task   # refuses a one-class validation split, warns on thin ones

Score kind: fixed per task when it is registered (``meta["score"]``): accuracy, or balanced
accuracy (mean per-class recall) when the smallest class has under BALANCED_BELOW (half) of an
even share 1/C of the training split -- on a 99:1 task accuracy rewards never predicting the minority. The demo
tasks are balanced by construction and stay on accuracy. Chance level: the validation
majority rate for accuracy, 1/C for balanced accuracy.

Only stdlib and numpy: core.tasks runs on GPU boxes without pandas.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from core.tasks.userfiles import BALANCED_BELOW

RANK_MIN_PER_CLASS = 5     # fewer validation examples of a class than this: the ranking warns
NCC_MIN_PER_CLASS = 2      # ncc is leave-one-out: a class of one example cannot be predicted at all


@dataclass(frozen=True)
class ScoreKind:
    """key: "accuracy" | "balanced_accuracy"; label: how tables name it; why: the rule that chose
    it; chance: the score of a constant guess on the validation split."""
    key: str
    label: str
    why: str
    chance: float


def score_kind(task, split: str = "validation") -> ScoreKind:
    """The task's score kind (what it was registered with; computed for older registrations)."""
    from core.tasks.demo.spec import DEMO_TASKS
    counts = task.split("train").counts(task.num_labels)
    share = min(counts) / max(1, sum(counts))
    key = "accuracy" if task.name in DEMO_TASKS else (task.meta or {}).get("score") or (
        "balanced_accuracy" if share < BALANCED_BELOW / task.num_labels else "accuracy")
    even = f"{BALANCED_BELOW:g} of an even share 1/{task.num_labels} = {BALANCED_BELOW / task.num_labels:.1%}"
    if key == "balanced_accuracy":
        return ScoreKind(key, "balanced accuracy",
                         f"smallest class {share:.1%} of train, under {even}", 1.0 / task.num_labels)
    return ScoreKind("accuracy", "accuracy",
                     "demo task" if task.name in DEMO_TASKS else
                     f"smallest class {share:.1%} of train, at least {even}",
                     task.majority_rate(split) if len(task.split(split)) else 0.0)


def balanced_accuracy(pred, y, num_labels: int | None = None) -> float:
    """Mean recall over the classes present in ``y`` (sklearn's balanced_accuracy_score)."""
    pred, y = np.asarray(pred), np.asarray(y)
    if not len(y):
        return float("nan")
    return float(np.mean([(pred[y == c] == c).mean() for c in np.unique(y)]))


@dataclass
class TargetCheck:
    """errors: the target cannot be ranked (one line each); warnings: it can, but read with care;
    undefined: signal -> why it is not a number on this split."""
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    undefined: dict[str, str] = field(default_factory=dict)

    def lines(self) -> list[str]:
        return ([f"refused: {e}" for e in self.errors] + [f"warning: {w}" for w in self.warnings]
                + [f"undefined: {k} ({v})" for k, v in self.undefined.items()])


def target_check(task, n: int | None = None) -> TargetCheck:
    """The checks a ranking or sweep makes on a target's validation split (its first ``n`` rows,
    as the ranking reads it)."""
    out = TargetCheck()
    va = task.split("validation")
    labels = list(va.labels)[: (len(va) if n is None else n)]
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=task.num_labels) if labels else \
        np.zeros(task.num_labels, dtype=np.int64)
    present = [i for i, c in enumerate(counts) if c > 0]
    if len(labels) < 2:
        out.errors.append(f"task {task.name!r}: the validation split has {len(labels)} example(s); "
                          "a target needs at least 2")
        return out
    if len(present) < 2:
        out.errors.append(f"task {task.name!r}: the validation split holds one class only "
                          f"({task.labels[present[0]]!r}, {len(labels)} examples): every score on it is "
                          "the majority rate; give validation examples of every class")
        return out
    absent = [task.labels[i] for i, c in enumerate(counts) if c == 0]
    if absent:
        out.warnings.append(f"validation has no example of {len(absent)} class(es): "
                            + ", ".join(absent[:6]) + (" ..." if len(absent) > 6 else ""))
    thin = [task.labels[i] for i in present if counts[i] < RANK_MIN_PER_CLASS]
    if thin:
        out.warnings.append(f"validation has fewer than {RANK_MIN_PER_CLASS} examples of {len(thin)} of "
                            f"{len(present)} classes (smallest: {int(min(counts[i] for i in present))}); "
                            "differences between sources are mostly noise")
    single = [task.labels[i] for i in present if counts[i] < NCC_MIN_PER_CLASS]
    if single:
        out.undefined["ncc"] = (f"{len(single)} class(es) have one validation example: leave-one-out "
                                "cannot score them")
    return out
