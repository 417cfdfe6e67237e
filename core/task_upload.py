"""A task from an uploaded file: read, guess the columns, preview, build, register.

    from core.task_upload import read_upload, build_task
    up = read_upload("reviews.csv", data, workdir)     # .csv .tsv .jsonl .parquet, or .zip of splits
    text_col, label_col = up.guess_columns()
    task = build_task(up, "my_task", text_col, label_col, descriptions=[...])
    core.tasks.save_task(task, origin="upload:reviews.csv")

The page (pages/tasks.py) and the CLI share these rules. The Task itself is built by the
same reader as ``python -m core tasks add`` (``core.tasks.load_csv_task``): a .parquet file
is first rewritten as JSONL, a .zip is unpacked (safely) into a folder of split files.
Splits: a ``split`` column or train/validation/test files are kept; otherwise a seeded,
stratified 70/10/20 split is made. The uploaded name is only used for its suffix; the
bytes go to a fresh temp folder.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from core.tasks.types import SPLITS, TaskError, text_length
# the upload reader lives in core.tasks.upload (register_task uses it too); re-exported for the page
from core.tasks.upload import (MAX_UPLOAD_BYTES, PAGE_TYPES, PREVIEW_ROWS, SUFFIXES, Upload, build_task,  # noqa: F401
                               read_upload, read_uploads)


def summary(task) -> pd.DataFrame:
    """Class counts per split: one row per label (+ its description), one column per split."""
    rows = []
    for i, (lab, desc) in enumerate(zip(task.labels, task.descriptions)):
        rows.append({"label": lab, "description": desc,
                     **{s: task.split(s).counts(task.num_labels)[i] for s in SPLITS}})
    return pd.DataFrame(rows, columns=["label", "description", *SPLITS])


def overview(names: list[str]) -> pd.DataFrame:
    """One row per registered task: kind, family, classes, counts per split, mean words; the user's
    tasks first, then the demo's (each in ``names``' order)."""
    from core.tasks.demo.spec import DEMO_TASKS
    from core.tasks.registry import get_task, saved_summary
    rows = []
    for n in names:
        s = saved_summary(n) if n not in DEMO_TASKS else None
        if s is not None:  # summarised at save time: a 1M-row task is not parsed on every page load
            try:
                rows.append({"task": n, "kind": "user", "family": s["family"], "classes": ", ".join(s["labels"]),
                             **{sp: int(s["counts"][sp]) for sp in SPLITS}, "pair": "yes" if s.get("pair") else "",
                             "mean words": s["mean_words"], "mean chars": s.get("mean_chars"), "problem": ""})
                continue
            except (KeyError, TypeError, ValueError):
                pass  # a summary that does not read: load the task as before
        try:
            t = get_task(n)
        except TaskError as e:
            # the file by its folder and name (no server path: viewers see this table), then the problem
            where = f"{Path(e.path).parent.name}/{Path(e.path).name}: " if e.path else ""
            rows.append({"task": n, "kind": "demo" if n in DEMO_TASKS else "user", "problem": where + e.problem})
            continue
        mw, mc = t.meta.get("mean_words"), t.meta.get("mean_chars")
        if mw is None and mc is None:  # older registrations: counted now (chars for scripts without spaces)
            v, unit = text_length([t.train.joined(i, " ") for i in range(len(t.train))])
            mw, mc = (v, None) if unit == "words" else (None, v)
        rows.append({"task": n, "kind": "demo" if n in DEMO_TASKS else "user", "family": t.family,
                     "classes": ", ".join(t.labels), **{s: len(t.split(s)) for s in SPLITS},
                     "pair": "yes" if t.is_pair else "", "mean words": mw, "mean chars": mc, "problem": ""})
    df = pd.DataFrame(rows, columns=["task", "kind", "family", "classes", *SPLITS, "pair", "mean words",
                                     "mean chars", "problem"])
    # your own tasks first: ten demo rows above them hid them below a table's fold
    return df.sort_values("kind", key=lambda k: k != "user", kind="stable").reset_index(drop=True)


def preview_table(task, n: int = 6, width: int = 200) -> pd.DataFrame:
    """The first ``n`` training examples: label and text (a pair: text and text2), cut to ``width``."""
    cut = lambda t: t if len(t) <= width else t[:width - 3] + "…"  # noqa: E731
    sp = task.train
    out = {"label": [task.labels[y] for y in sp.labels[:n]], "text": [cut(t) for t in sp.texts[:n]]}
    if sp.texts2 is not None:
        out["text2"] = [cut(t) for t in sp.texts2[:n]]
    return pd.DataFrame(out)


def summary_lines(task) -> list[str]:
    """What the page says under a task's counts: score kind, pair encoding, removed rows, warnings
    (the lines ``python -m core tasks show`` prints)."""
    from core.tasks.cli import summary_lines as lines
    return lines(task) + [f"note: {x}" for x in task.meta.get("notes", [])]
