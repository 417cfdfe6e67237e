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
from core.tasks.userfiles import _decode, hf_layout, load_csv_task, text_cols

SUFFIXES = (".csv", ".tsv", ".jsonl", ".parquet", ".zip")
# what the Tasks page's uploader takes (several files: a saved dataset's or a Hub repo's files too)
PAGE_TYPES = ("csv", "tsv", "jsonl", "parquet", "zip", "json", "arrow")
MAX_UPLOAD_BYTES = 200 * 1024 * 1024
PREVIEW_ROWS = 200
_LABEL_NAMES = ("label", "labels", "class", "category", "sentiment", "target", "y", "intent", "topic", "tag",
                "gold_label", "v1")
_ID_NAMES = ("id", "idx", "index", "guid", "uid", "uuid", "row", "row_id", "example_id", "pair_id")
# the common names of the two texts of a sentence-pair task (GLUE, SuperGLUE, SNLI, QQP, BoolQ...)
PAIR_NAMES = (("sentence1", "sentence2"), ("premise", "hypothesis"), ("question", "sentence"),
              ("question1", "question2"), ("text_a", "text_b"), ("question", "passage"), ("sentence_a", "sentence_b"),
              ("text1", "text2"), ("query", "passage"))
_SPLIT_FILE = re.compile(r"^(train|training|validation|valid|dev|val|test)\.(csv|tsv|jsonl)$", re.I)


def _cells(df: pd.DataFrame, c) -> list[str]:
    """A column's non-empty cells as text, whatever its dtype (pandas 3 reads text as ``str``,
    JSON numbers as int/float: the guess reads content, not dtype)."""
    return [str(v).strip() for v in df[c].tolist() if v is not None and not (isinstance(v, float) and v != v)
            and str(v).strip()]


def _is_number(v: str) -> bool:
    return re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", v) is not None


def _id_like(name: str, cells: list[str]) -> bool:
    """Row numbers, ids and hashes: an id name, or every cell a number, or one token each and all distinct."""
    if str(name).strip().lower() in _ID_NAMES:
        return True
    if not cells:
        return True
    if all(_is_number(v) for v in cells):
        return True
    return len(set(cells)) == len(cells) and len(cells) > 5 and all(" " not in v and len(v) >= 6 for v in cells)


def free_text_score(df: pd.DataFrame, c) -> float:
    """How much a column reads as free text: mean characters of its cells when most cells are
    filled and hold several words; 0 for ids, numbers, single tokens and mostly-empty columns."""
    cells = _cells(df, c)
    if len(cells) < max(1, len(df) // 2) or _id_like(c, cells):
        return 0.0
    # scripts without spaces (Chinese) hold sentences without a space: long cells count too
    wordy = sum(1 for v in cells if len(v.split()) >= 2 or len(v) >= 12) / len(cells)
    return float(sum(len(v) for v in cells) / len(cells)) if wordy >= 0.5 else 0.0


@dataclass
class Upload:
    """An uploaded table ready to build a task from.

    path: the file (or folder of split files, or a Hugging Face dataset folder) the task reader
    will read; preview: the first PREVIEW_ROWS rows (of train when split files); columns: their names.
    """
    filename: str
    path: Path
    preview: pd.DataFrame
    columns: list[str]
    split_files: dict[str, str] = field(default_factory=dict)   # split -> file name (zip)
    hf: str | None = None                                       # core.tasks.userfiles.hf_layout of path
    encoding: str | None = None

    @property
    def has_splits(self) -> bool:
        return bool(self.split_files) or "split" in self.columns

    def guess_text2(self) -> str | None:
        """The second text of a sentence pair when the columns carry a common pair's names
        (``sentence1``/``sentence2``, ``premise``/``hypothesis``...), else None."""
        return self.guess_pair()[1]

    def guess_pair(self) -> tuple[str | None, str | None]:
        low = {c.lower(): c for c in self.columns}
        for a, b in PAIR_NAMES:
            if a in low and b in low:
                return low[a], low[b]
        return None, None

    def guess_columns(self) -> tuple[str | None, str | None]:
        """(text column, label column), by content: text = the column with the longest free text
        (never a number, id or single-token column; the first of a known sentence pair); label =
        a known label name, else the column with the fewest distinct values (2 up to 50); never
        the same column for both."""
        df = self.preview
        cols = [c for c in self.columns if c != "split"]
        text = self.guess_pair()[0]
        if text is None:
            scored = [(free_text_score(df, c), c) for c in cols]
            best = max(scored, key=lambda x: x[0], default=(0.0, None))
            text = best[1] if best[0] > 0 else None
        taken = {text, self.guess_pair()[1]}
        rest = [c for c in cols if c not in taken]
        label = next((c for c in rest if c.lower() in _LABEL_NAMES and len(set(_cells(df, c))) >= 2), None)
        if label is None:
            few = [c for c in rest if 2 <= len(set(_cells(df, c))) <= max(2, min(50, len(df) // 2))
                   and not str(c).lower() in _ID_NAMES]
            label = min(few, key=lambda c: len(set(_cells(df, c)))) if few else None
        return text, label


def _read_preview(path: Path, filename: str, encoding: str | None = None) -> pd.DataFrame:
    suffix = path.suffix.lower()
    kind = "Parquet" if suffix == ".parquet" else suffix[1:].upper()
    try:
        if suffix == ".csv":
            return pd.read_csv(path, nrows=PREVIEW_ROWS, dtype=str, keep_default_na=False,
                               encoding=encoding or "utf-8-sig")
        if suffix == ".tsv":
            return pd.read_csv(path, sep="\t", nrows=PREVIEW_ROWS, dtype=str, keep_default_na=False,
                               encoding=encoding or "utf-8-sig", quoting=3)
        if suffix == ".jsonl":
            rows = []
            with path.open(encoding=encoding or "utf-8") as f:
                for line in f:
                    if line.strip():
                        rows.append(json.loads(line))
                    if len(rows) >= PREVIEW_ROWS:
                        break
            if not all(isinstance(r, dict) for r in rows):
                raise ValueError("every line must be a JSON object")
            return pd.DataFrame(rows)
        if suffix == ".parquet":
            import pyarrow.parquet as pq
            return pq.ParquetFile(path).read_row_group(0).slice(0, PREVIEW_ROWS).to_pandas()
    except UnicodeDecodeError:
        try:  # the CLI reader's message: the byte, its line, and the --encoding option
            _decode(path, encoding)
        except TaskError as e:
            raise TaskError(filename, e.problem) from None
        raise TaskError(filename, f"cannot read it as {kind} (UnicodeDecodeError)") from None
    except LookupError:
        raise TaskError(filename, f"unknown encoding {encoding!r}") from None
    except Exception as e:  # noqa: BLE001 -- pandas / pyarrow raise many types for a bad file
        raise TaskError(filename, f"cannot read it as {kind} ({type(e).__name__})") from None
    raise TaskError(filename, f"unsupported file type {suffix!r} (use {', '.join(SUFFIXES)})")


def _hf_preview(folder: Path, filename: str) -> pd.DataFrame:
    """First rows of a Hugging Face dataset folder (save_to_disk or parquet files): its train split."""
    parquet = sorted(folder.rglob("*.parquet"))
    if parquet:
        train = [p for p in parquet if p.name.lower().startswith("train")] or parquet
        return _read_preview(train[0], filename)
    try:
        import datasets
        ds = datasets.load_from_disk(str(folder))
        d = ds["train"] if isinstance(ds, datasets.DatasetDict) and "train" in ds else (
            ds if isinstance(ds, datasets.Dataset) else next(iter(ds.values())))
        return d.select(range(min(PREVIEW_ROWS, len(d)))).to_pandas()
    except Exception as e:  # noqa: BLE001 -- datasets raises many types
        raise TaskError(filename, f"cannot read the saved dataset ({type(e).__name__})") from None


def _from_folder(filename: str, folder: Path, encoding: str | None = None) -> Upload:
    """An unpacked zip or several uploaded files: a Hugging Face dataset folder (save_to_disk,
    the Hub's data/{split}-*.parquet), or train/validation/test split files."""
    for d in [folder, *sorted(p for p in folder.rglob("*") if p.is_dir())]:
        kind = hf_layout(d)
        if kind in ("saved", "parquet"):
            if kind == "parquet" and d.name == "data" and d.parent != d:
                d = d.parent
            df = _hf_preview(d, filename)
            return Upload(filename, d, df, [str(c) for c in df.columns], hf=kind)
    found = {}
    for p in sorted(folder.rglob("*")):
        m = _SPLIT_FILE.match(p.name)
        if p.is_file() and m:
            if p.parent != folder:  # the reader looks in one folder: flatten one level
                p = p.rename(folder / p.name)
            found.setdefault(m.group(1).lower(), p)
    info = next(iter(sorted(folder.rglob("dataset_info.json"))), None)
    if info is not None and info.parent != folder:
        info.rename(folder / "dataset_info.json")
    if not any(k in ("train", "training") for k in found):
        raise TaskError(filename, "no train.csv / train.tsv / train.jsonl, Hugging Face saved dataset "
                                  "(dataset_dict.json) or parquet files in it")
    train = found.get("train") or found["training"]
    df = _read_preview(train, f"{filename}:{train.name}", encoding)
    return Upload(filename, folder, df, [str(c) for c in df.columns],
                  split_files={k: v.name for k, v in found.items()}, encoding=encoding)


def read_uploads(files: list[tuple[str, bytes]], workdir: Path | str, encoding: str | None = None) -> Upload:
    """Several uploaded files (train.csv + test.csv, a Hub dataset's parquet files, a saved
    dataset's files): written into one folder and read as a zip's contents would be."""
    if len(files) == 1:
        return read_upload(files[0][0], files[0][1], workdir, encoding=encoding)
    workdir = Path(workdir)
    folder = workdir / "files"
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    total = 0
    for name, data in files:
        base = Path(str(name).replace("\\", "/")).name  # a browser's name: only its last part, never a path
        if not base or base.startswith(".") or not re.fullmatch(r"[\w.\- ]+", base):
            raise TaskError(str(name), "unusable file name")
        total += len(data)
        if total > MAX_UPLOAD_BYTES:
            raise TaskError(base, f"the files are larger than {MAX_UPLOAD_BYTES // 2**20} MiB together")
        (folder / base).write_bytes(data)
        names.append(base)
    return _from_folder(", ".join(names), folder, encoding)


def read_upload(filename: str, data: bytes, workdir: Path | str, encoding: str | None = None) -> Upload:
    """Write the uploaded bytes under ``workdir`` (a fresh folder) and read a preview.

    TaskError (naming ``filename``) for an unsupported type, an unreadable file, an empty
    one, or a zip without a train file (or a Hugging Face dataset). ``encoding``: the text
    encoding of a .csv/.tsv/.jsonl that is not UTF-8 (latin-1, cp1252).
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
        return _from_folder(filename, folder, encoding)
    path = workdir / f"upload{suffix}"
    path.write_bytes(data)
    df = _read_preview(path, filename, encoding)
    if df.empty or not len(df.columns):
        raise TaskError(filename, "no rows")
    # a .parquet is read through datasets (hf_layout): ClassLabel names in its schema metadata
    return Upload(filename, path, df, [str(c) for c in df.columns], hf=hf_layout(path), encoding=encoding)


def build_task(up: Upload, name: str, text_col, label_col: str, *, family: str | None = None,
               descriptions: list[str] | dict | None = None, seed: int = 0, text_col2: str | None = None,
               encoding: str | None = None, merge_label_variants: bool = False, drop_duplicates: bool = False):
    """The Task the CLI would build from this file with these columns (same reader, same rules).

    ``text_col2`` (or ``text_col`` a list of two): the second text of a sentence pair.
    descriptions: one phrase per label (list in label order, or dict label -> phrase); a blank
    phrase means the label's own name (what the verbalizer embeds when none is given).
    """
    try:
        cols = text_cols(text_col)
    except TaskError as e:
        raise TaskError(up.filename, e.problem) from None
    if text_col2:
        cols = [cols[0], text_col2]
    for c in cols:
        if not c or c not in up.columns:
            raise TaskError(up.filename, f"text column {c!r} is not one of {up.columns}")
    if not label_col or label_col not in up.columns:
        raise TaskError(up.filename, f"label column {label_col!r} is not one of {up.columns}")
    if label_col in cols:
        raise TaskError(up.filename, "the text and label columns must differ")
    if len(cols) == 2 and cols[0] == cols[1]:
        raise TaskError(up.filename, "the two text columns of a pair must differ")
    try:
        task = load_csv_task(up.path, text_col=cols[0] if len(cols) == 1 else cols, label_col=label_col, name=name,
                             family=family or None, descriptions=descriptions, seed=seed,
                             encoding=encoding if encoding is not None else up.encoding,
                             merge_label_variants=merge_label_variants, drop_duplicates=drop_duplicates)
    except TaskError as e:  # name the uploaded file, never the temp path
        raise TaskError(up.filename, e.problem) from None
    task.source = f"upload:{up.filename}"
    task.descriptions = [str(d).strip() or lab for d, lab in zip(task.descriptions, task.labels)]
    return task
