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
    """One split: ``texts[i]`` has label index ``labels[i]`` (into ``Task.labels``).

    A sentence-pair task (RTE, MNLI, QQP...) also has ``texts2[i]``, the second text of the
    pair; the backbone's tokenizer encodes ``(texts[i], texts2[i])`` as a pair (its own
    separator and token types). ``texts2`` is None for single-text tasks.
    """
    texts: list[str]
    labels: list[int]
    texts2: list[str] | None = None

    def __post_init__(self):
        if len(self.texts) != len(self.labels):
            raise ValueError(f"Split: {len(self.texts)} texts but {len(self.labels)} labels")
        if self.texts2 is not None and len(self.texts2) != len(self.texts):
            raise ValueError(f"Split: {len(self.texts)} first texts but {len(self.texts2)} second texts")

    @property
    def is_pair(self) -> bool:
        return self.texts2 is not None

    def inputs(self, idx: list[int] | None = None) -> tuple[list[str], list[str] | None]:
        """(first texts, second texts or None) of rows ``idx`` (all rows when None): what
        ``Backbone.token_ids(texts, max_length, texts2)`` takes."""
        if idx is None:
            return list(self.texts), (None if self.texts2 is None else list(self.texts2))
        return [self.texts[i] for i in idx], (None if self.texts2 is None else [self.texts2[i] for i in idx])

    def joined(self, i: int, sep: str = " || ") -> str:
        """Row ``i`` as one display string (a pair shown as ``first || second``)."""
        return self.texts[i] if self.texts2 is None else f"{self.texts[i]}{sep}{self.texts2[i]}"

    def subset(self, idx: list[int]) -> "Split":
        t, t2 = self.inputs(idx)
        return Split(t, [self.labels[i] for i in idx], t2)

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
    def is_pair(self) -> bool:
        """A sentence-pair task: every split has a second text."""
        return self.train.texts2 is not None

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


_NO_SPACE_SCRIPT = ("\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
                    "\u0e00-\u0e7f\u0e80-\u0eff\u1000-\u109f\u1780-\u17ff")


def _length_unit(texts: list[str]) -> str:
    """"words", or "chars" when most of the text is in a script written without spaces
    (Chinese, Japanese, Thai...): there a whitespace word count says 1.0 for a whole review."""
    import re
    sample = "".join(texts[:500])
    if not sample:
        return "words"
    cjk = len(re.findall(f"[{_NO_SPACE_SCRIPT}]", sample))
    return "chars" if cjk > 0.3 * len(re.sub(r"\s", "", sample)) else "words"


def text_length(texts: list[str]) -> tuple[float, str]:
    """(mean length, unit): mean whitespace words, or mean characters (spaces not counted) for
    scripts without spaces. The summary prints it as "mean words 12.3" / "mean chars 48.0"."""
    import re
    texts = list(texts)
    if not texts:
        return 0.0, "words"
    unit = _length_unit(texts)
    if unit == "chars":
        return round(sum(len(re.sub(r"\s", "", t)) for t in texts) / len(texts), 1), unit
    return round(sum(_words(t) for t in texts) / len(texts), 1), unit
