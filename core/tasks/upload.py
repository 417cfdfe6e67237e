"""Uploaded task files: read (csv/tsv/jsonl/parquet or a zip of splits), guess columns, build a Task.

    from core.tasks.upload import read_upload, build_task
    up = read_upload("reviews.csv", data, workdir); task = build_task(up, "my_task", *up.guess_columns())

Shared by the Tasks page (through core.task_upload) and `python -m core tasks add` of a .parquet/.zip
(core.tasks.registry.register_task). A .parquet file is rewritten as JSONL, a .zip is unpacked (safely)
into a folder of split files; then the same reader as any task file (core.tasks.userfiles).
The uploaded name is only used for its suffix; the bytes go to a fresh temp folder.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from core.safetext import control_problem, visible
from core.tasks.types import TaskError
from core.tasks.userfiles import load_csv_task

SUFFIXES = (".csv", ".tsv", ".jsonl", ".parquet", ".zip")
MAX_UPLOAD_BYTES = 200 * 1024 * 1024
PREVIEW_ROWS = 200
_LABEL_NAMES = ("label", "labels", "class", "category", "sentiment", "target", "y", "intent", "topic", "tag")
_TEXT_NAMES = ("text", "sentence", "content", "review", "body", "document", "message", "tweet", "question")
_SPLIT_FILE = re.compile(r"^(train|training|validation|valid|dev|val|test)\.(csv|tsv|jsonl)$", re.I)


@dataclass
class Upload:
    """An uploaded table ready to build a task from.

    path: the file (or folder of split files) the task reader will read;
    preview: the first PREVIEW_ROWS rows (of train when split files); columns: their names.
    """
    filename: str
    path: Path
    preview: pd.DataFrame
    columns: list[str]
    split_files: dict[str, str] = field(default_factory=dict)   # split -> file name (zip)

    @property
    def has_splits(self) -> bool:
        return bool(self.split_files) or "split" in self.columns

    def guess_columns(self) -> tuple[str | None, str | None]:
        """(text column, label column): text = a string column with the longest mean length
        (a known name wins); label = a column with few distinct values (a known name wins)."""
        df = self.preview
        cols = [c for c in self.columns if c != "split"]
        strs = [c for c in cols if df[c].dtype == object]
        text = next((c for c in cols if c.lower() in _TEXT_NAMES), None)
        if text is None and strs:
            text = max(strs, key=lambda c: df[c].astype(str).str.len().mean())
        rest = [c for c in cols if c != text]
        label = next((c for c in rest if c.lower() in _LABEL_NAMES), None)
        if label is None:
            few = [c for c in rest if 2 <= df[c].nunique(dropna=True) <= max(2, min(50, len(df) // 2))]
            label = min(few, key=lambda c: df[c].nunique()) if few else (rest[0] if rest else None)
        return text, label


def _read_preview(path: Path, filename: str) -> pd.DataFrame:
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path, nrows=PREVIEW_ROWS, dtype=str, keep_default_na=False)
        if suffix == ".tsv":
            return pd.read_csv(path, sep="\t", nrows=PREVIEW_ROWS, dtype=str, keep_default_na=False)
        if suffix == ".jsonl":
            rows = []
            with path.open(encoding="utf-8") as f:
                for line in f:
                    if line.strip():
                        rows.append(json.loads(line))
                    if len(rows) >= PREVIEW_ROWS:
                        break
            if not all(isinstance(r, dict) for r in rows):
                raise ValueError("every line must be a JSON object")
            return pd.DataFrame(rows)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as e:
        raise TaskError(filename, f"cannot read it as {suffix[1:].upper()} ({type(e).__name__})") from None
    raise TaskError(filename, f"unsupported file type {suffix!r} (use {', '.join(SUFFIXES)})")


def read_upload(filename: str, data: bytes, workdir: Path | str) -> Upload:
    """Write the uploaded bytes under ``workdir`` (a fresh folder) and read a preview.

    TaskError (naming ``filename``) for an unsupported type, an unreadable file, an empty
    one, or a zip without a train file.
    """
    if bad := control_problem(filename):
        raise TaskError(visible(filename), f"file name {bad}")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    suffix = Path(str(filename)).suffix.lower()
    if suffix not in SUFFIXES:
        raise TaskError(filename, f"unsupported file type {suffix or '(none)'!r} (use {', '.join(SUFFIXES)})")
    if not data:
        raise TaskError(filename, "the file is empty")
    if len(data) > MAX_UPLOAD_BYTES:
        raise TaskError(filename, f"the file is larger than {MAX_UPLOAD_BYTES // 2**20} MiB")
    if suffix == ".zip":
        from core.library import _safe_extract
        folder = workdir / "splits"
        folder.mkdir()
        try:
            _safe_extract(data, folder, MAX_UPLOAD_BYTES)
        except ValueError as e:
            raise TaskError(filename, str(e)) from None
        except Exception as e:  # zipfile.BadZipFile and friends
            raise TaskError(filename, f"not a readable zip ({type(e).__name__})") from None
        found = {}
        for p in sorted(folder.rglob("*")):
            m = _SPLIT_FILE.match(p.name)
            if p.is_file() and m:
                if p.parent != folder:  # the reader looks in one folder: flatten one level
                    p = p.rename(folder / p.name)
                found.setdefault(m.group(1).lower(), p)
        if not any(k in ("train", "training") for k in found):
            raise TaskError(filename, "the zip has no train.csv / train.tsv / train.jsonl")
        train = found.get("train") or found["training"]
        df = _read_preview(train, f"{filename}:{train.name}")
        return Upload(filename, folder, df, [str(c) for c in df.columns],
                      split_files={k: v.name for k, v in found.items()})
    path = workdir / f"upload{suffix}"
    path.write_bytes(data)
    if suffix == ".parquet":
        try:
            full = pd.read_parquet(path)
        except Exception as e:  # pyarrow raises several types for a bad file
            raise TaskError(filename, f"cannot read it as Parquet ({type(e).__name__})") from None
        jsonl = workdir / "upload.jsonl"
        full.astype(object).where(full.notna(), None).to_json(jsonl, orient="records", lines=True,
                                                              force_ascii=False)
        path = jsonl
    df = _read_preview(path, filename)
    if df.empty or not len(df.columns):
        raise TaskError(filename, "no rows")
    return Upload(filename, path, df, [str(c) for c in df.columns])


def build_task(up: Upload, name: str, text_col: str, label_col: str, *, family: str | None = None,
               descriptions: list[str] | dict | None = None, seed: int = 0):
    """The Task the CLI would build from this file with these columns (same reader, same rules).

    descriptions: one phrase per label (list in label order, or dict label -> phrase); a blank
    phrase means the label's own name (what the verbalizer embeds when none is given).
    """
    if not text_col or text_col not in up.columns:
        raise TaskError(up.filename, f"text column {text_col!r} is not one of {up.columns}")
    if not label_col or label_col not in up.columns:
        raise TaskError(up.filename, f"label column {label_col!r} is not one of {up.columns}")
    if text_col == label_col:
        raise TaskError(up.filename, "the text and label columns must differ")
    try:
        task = load_csv_task(up.path, text_col=text_col, label_col=label_col, name=name, family=family or None,
                             descriptions=descriptions, seed=seed)
    except TaskError as e:  # name the uploaded file, never the temp path
        raise TaskError(up.filename, e.problem) from None
    task.source = f"upload:{up.filename}"
    task.descriptions = [str(d).strip() or lab for d, lab in zip(task.descriptions, task.labels)]
    return task
