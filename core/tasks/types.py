"""Task data types: Split (texts + label indices), Task (labels, descriptions, three splits), TaskError.

    python -c "from core.tasks import Task, Split"
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np



SPLITS = ("train", "validation", "test")


class TaskError(ValueError):
    """A task cannot be loaded or prepared. ``str(e)`` names the file (or task) and the problem."""

    def __init__(self, path: str | Path | None, problem: str):
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


# ----------------------------------------------------------------------------- data types

@dataclass
class Split:
    """One split: ``texts[i]`` has label index ``labels[i]`` (into ``Task.labels``)."""
    texts: list[str]
    labels: list[int]

    def __post_init__(self):
        if len(self.texts) != len(self.labels):
            raise ValueError(f"Split: {len(self.texts)} texts but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.texts)

    def counts(self, num_labels: int) -> list[int]:
        """Examples per label index, length ``num_labels``."""
        return np.bincount(np.asarray(self.labels, dtype=np.int64), minlength=num_labels).tolist()


@dataclass
class Task:
    name: str
    family: str | None
    labels: list[str]
    descriptions: list[str]
    train: Split
    validation: Split
    test: Split
    source: str = ""
    meta: dict = field(default_factory=dict)   # counts, cleaning, source wheel, mean words...

    def __post_init__(self):
        if len(self.labels) < 2:
            raise ValueError(f"task {self.name!r}: needs at least 2 labels, got {self.labels}")
        if len(self.descriptions) != len(self.labels):
            raise ValueError(f"task {self.name!r}: {len(self.descriptions)} descriptions for "
                             f"{len(self.labels)} labels")
        for s in SPLITS:
            bad = [y for y in self.split(s).labels if not 0 <= y < len(self.labels)]
            if bad:
                raise ValueError(f"task {self.name!r}: {s} has label index {bad[0]} out of range")

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    def split(self, name: str) -> Split:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; one of {SPLITS}")
        return getattr(self, name)

    def counts(self, split: str = "train") -> dict[str, int]:
        return dict(zip(self.labels, self.split(split).counts(self.num_labels)))

    def majority_rate(self, split: str = "test") -> float:
        """Accuracy of always predicting the split's most common label (0.0 when empty)."""
        s = self.split(split)
        return max(s.counts(self.num_labels)) / len(s) if len(s) else 0.0


def _words(text: str) -> int:
    return len(text.split())
