"""User task files: CSV/TSV/JSONL (a file or a folder of split files) and Hugging Face datasets.

    python -m core tasks add NAME FILE_OR_DIR --text-col text --label-col label
"""
from __future__ import annotations

import csv
import io
import json
import random
import re
from pathlib import Path

import numpy as np

from core.config import cache_dir
from core.tasks.types import SPLITS, Split, Task, TaskError, _words


# ----------------------------------------------------------------------------- user files

class _Missing:
    """A label cell that holds nothing (JSON null / NaN, an empty or 'NaN' CSV cell): an error later."""

    def __init__(self, what: str):
        self.what = what


def _norm_label(v):
    """A label as read: text, a JSON number, or a marker for a missing / multi-valued one (checked
    per line in _task_from_rows, so the error names the line)."""
    if v is None:
        return _Missing("null")
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float) and not np.isfinite(v):
        return _Missing("NaN" if v != v else "Infinity")
    if isinstance(v, (int, float)):
        return v
    if isinstance(v, (list, tuple, dict)):
        return v
    s = str(v).strip()
    if s.lower() in ("nan", "null"):
        return _Missing(s)
    if s.startswith("[") and s.endswith("]") and "," in s:  # a list written into a CSV cell
        return [s]
    return s


_INTEGRAL = re.compile(r"^[+-]?\d+(?:\.0*)?$")


def _is_integral(v) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, int):
        return True
    if isinstance(v, float):
        return v.is_integer()
    return isinstance(v, str) and _INTEGRAL.match(v) is not None


def _as_int_label(v) -> str:
    return str(int(v)) if isinstance(v, (int, float)) else str(int(v.split(".")[0]))


def _label_text(v) -> str:
    return repr(v) if isinstance(v, float) else str(v)


def _decode(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise TaskError(path, f"cannot read: {e.strerror or e}") from None
    if not data.strip():
        raise TaskError(path, "empty file")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):  # Excel "Unicode Text": UTF-16 with a BOM
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise TaskError(path, "UTF-16 text that does not decode (truncated?); save the file as UTF-8") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise TaskError(path, f"not UTF-8 text (invalid byte 0x{data[e.start]:02x} on line {line}); "
                              "save the file as UTF-8") from None


def _looks_like_data(row: list[str]) -> bool:
    """A first row that reads as data, not column names: a number, an empty cell, a sentence."""
    return any(not c.strip() or _INTEGRAL.match(c.strip()) or re.fullmatch(r"[+-]?\d*\.\d+", c.strip())
               or len(c.split()) >= 4 for c in row) or len(set(row)) < len(row)


def _col_index(col, header: list[str] | None, path: Path, what: str, first_row: list[str]) -> int:
    if header is None:  # --no-header: columns by 0-based index
        try:
            i = int(col)
        except (TypeError, ValueError):
            raise TaskError(path, f"without a header, name the {what} column by its 0-based index "
                                  f"(e.g. --text-col 3 --label-col 1), not {col!r}") from None
        if not 0 <= i < len(first_row):
            raise TaskError(path, f"no column {i}: the first row has {len(first_row)} columns (0-based)")
        return i
    if str(col) in header:
        return header.index(str(col))
    if _looks_like_data(header):  # its cells are the user's data: not echoed
        raise TaskError(path, f"no column {str(col)!r}: the first row ({len(header)} fields) looks like data, "
                              "not a header; for a file without a header pass --no-header (header=False) and "
                              "name columns by 0-based index, e.g. --text-col 3 --label-col 1")
    hint = "; to name columns by index, pass --no-header (header=False)" if str(col).isdigit() else ""
    raise TaskError(path, f"no column {str(col)!r} (columns: {', '.join(header)}){hint}")


def _delimited(text: str, delim: str, quoting: bool) -> list[tuple[int, list[str]]]:
    """(line number, fields) of a delimited text; blank lines skipped."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delim,
                        quoting=csv.QUOTE_MINIMAL if quoting else csv.QUOTE_NONE)
    out, start = [], 1
    for rec in reader:
        if rec and any(x.strip() for x in rec):
            out.append((start, rec))
        start = reader.line_num + 1
    return out


def _read_rows(path: Path, text_col, label_col, split_col: str | None, *, header: bool = True,
               quoting: bool | None = None, notes: list[str] | None = None
               ) -> list[tuple[str, object, str | None, str]]:
    """(text, label as read, split or None, "line N") from a .csv/.tsv/.jsonl file.

    Tab-separated files are read without quote processing, as GLUE's own readers do (a text may
    start with a '"' that is part of it), unless ``quoting`` is True; CSV files with CSV quoting
    unless ``quoting`` is False. When the other reading would give a different row count, a note
    says so (``notes``). ``header=False``: no header row, columns named by 0-based index.
    """
    text = _decode(path)
    notes = [] if notes is None else notes
    suffix = path.suffix.lower()
    rows = []
    if suffix in (".jsonl", ".ndjson", ".json"):
        lines = text.splitlines()
        if suffix == ".json" and text.lstrip().startswith("["):
            try:
                recs = json.loads(text)
            except json.JSONDecodeError as e:
                raise TaskError(path, f"not valid JSON (line {e.lineno}: {e.msg})") from None
            items = [(i + 1, r) for i, r in enumerate(recs)]
        else:
            items = []
            for i, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    items.append((i, json.loads(line)))
                except json.JSONDecodeError as e:
                    raise TaskError(path, f"line {i}: not valid JSON ({e.msg})") from None
        for i, rec in items:
            if not isinstance(rec, dict):
                raise TaskError(path, f"line {i}: expected a JSON object, got {type(rec).__name__}")
            for col in (text_col, label_col):
                if col not in rec:
                    raise TaskError(path, f"line {i}: no field {col!r} (fields: {', '.join(map(str, rec))})")
            t = rec[text_col]
            split = rec.get(split_col) if split_col else None
            rows.append(("" if t is None else str(t), _norm_label(rec[label_col]),
                         None if split is None else str(split).strip(), f"line {i}"))
    else:
        tsv = suffix in (".tsv", ".tab")
        first = text.split("\n", 1)[0]
        if not tsv and "\t" in first and "," not in first:
            tsv = True
        # European-locale spreadsheets write ';'-separated "CSV"
        delim = "\t" if tsv else (";" if ";" in first and "," not in first else ",")
        quote = (not tsv) if quoting is None else bool(quoting)
        try:
            recs = _delimited(text, delim, quote)
        except csv.Error as e:
            raise TaskError(path, f"not valid {'TSV' if tsv else 'CSV'} ({e})") from None
        if not recs:
            raise TaskError(path, "empty file")
        try:
            other = _delimited(text, delim, not quote)
        except csv.Error:
            other = None
        if other is not None and len(other) != len(recs):
            how = "without quote processing" if not quote else "with CSV quoting"
            alt = "with CSV quoting" if not quote else "without quote processing"
            flag = "--quoting" if not quote else "--no-quoting"
            notes.append(f"{path.name}: read {how}: {len(recs) - header} rows; {alt} it would be "
                         f"{len(other) - header} rows (a field that starts with a double quote"
                         f"{' or holds a quoted line break' if quote else ''}); pass {flag} to read it that way")
        cols = [h.strip() for h in recs[0][1]] if header else None
        body = recs[1:] if header else recs
        width = len(recs[0][1])
        ti = _col_index(text_col, cols, path, "text", recs[0][1])
        li = _col_index(label_col, cols, path, "label", recs[0][1])
        si = cols.index(split_col) if header and split_col and split_col in cols else None
        for line, rec in body:
            if len(rec) != width:
                what = "the header has" if header else "the first row has"
                raise TaskError(path, f"line {line}: {len(rec)} fields, {what} {width}")
            rows.append((rec[ti], _norm_label(rec[li]), rec[si].strip() if si is not None else None,
                         f"line {line}"))
    if not rows:
        raise TaskError(path, "no data rows")
    return rows


_SPLIT_NAMES = {"train": "train", "training": "train", "validation": "validation", "valid": "validation",
                "val": "validation", "dev": "validation", "test": "test", "testing": "test"}


def _resolve_labels(where, kept: list, label_col: str, labels: list | None, known_labels: list[str] | None,
                    order: str) -> tuple[list, list[str]]:
    """Check every row's label (naming its line) and give (rows with text labels, label order).

    Every label of the column an integral number (1, 1.0, 01 — as CSV, TSV or JSON writes it):
    all become integers written plainly and are ordered numerically. Any other labels stay exactly
    as written, in the order the user lists them, else (order="appearance") by first appearance.
    """
    for t, l, s, i in kept:
        if isinstance(l, _Missing):
            raise TaskError(where, f"{i}: missing label ({l.what}) in {label_col!r}; drop the row or give it a label")
        if isinstance(l, (list, tuple, dict)):
            raise TaskError(where, f"{i}: label in {label_col!r} is a {'list' if not isinstance(l, dict) else 'dict'}: "
                                   "multi-label is not supported (one label per row)")
        if l == "":
            raise TaskError(where, f"{i}: empty label in {label_col!r}")
    integral = all(_is_integral(l) for _, l, _, _ in kept)
    text = _as_int_label if integral else _label_text
    kept = [(t, text(l), s, i) for t, l, s, i in kept]
    if labels is not None:
        labels = [_as_int_label(x) if integral and _is_integral(x) else _label_text(_norm_label(x)) for x in labels]
        for t, l, s, i in kept:
            if l not in labels:
                raise TaskError(where, f"{i}: label {l!r} is not one of the given labels {labels}")
        return kept, labels
    found = list(dict.fromkeys(l for _, l, _, _ in kept))  # first appearance
    if known_labels:
        labels = [x for x in known_labels if x in found] or found
    elif integral:
        labels = sorted(found, key=int)
    elif order == "sorted":  # how tasks registered before first-appearance order were read
        labels = sorted(found)
    else:
        labels = found
    return kept, labels


def _task_from_rows(where: str | Path, rows: list[tuple[str, object, str | None, str]], *,
                    name: str, family: str | None, labels: list[str] | None,
                    descriptions, seed: int, source: str, label_col: str,
                    known_labels: list[str] | None = None, notes: list[str] | None = None,
                    label_order: str = "appearance") -> Task:
    """Label mapping, checks and a seeded stratified split for rows of user data."""
    kept = [(t.strip(), l, s, i) for t, l, s, i in rows if t and t.strip()]
    dropped_empty = len(rows) - len(kept)
    if not kept:
        raise TaskError(where, "no rows with a non-empty text")
    kept, labels = _resolve_labels(where, kept, label_col, labels, known_labels, label_order)
    present = {l for _, l, _, _ in kept}
    if len(present) < 2:
        raise TaskError(where, f"only one label ({next(iter(present))!r}) in {label_col!r}; "
                               "a task needs at least 2")
    if descriptions is None:
        descriptions = list(labels)
    elif isinstance(descriptions, dict):
        norm = {(_as_int_label(k) if _is_integral(str(k)) and all(_is_integral(x) for x in labels) else str(k)): v
                for k, v in descriptions.items()}
        missing = [x for x in labels if x not in norm]
        if missing:
            raise TaskError(where, f"descriptions missing for labels {missing}")
        descriptions = [str(norm[x]) for x in labels]
    else:
        descriptions = [str(d) for d in descriptions]
        if len(descriptions) != len(labels):
            raise TaskError(where, f"{len(descriptions)} descriptions for {len(labels)} labels {labels}")
    index = {x: i for i, x in enumerate(labels)}

    parts: dict[str, list[tuple[str, int]]] = {s: [] for s in SPLITS}
    rest: list[tuple[str, int]] = []
    for t, l, s, i in kept:
        if s and s.lower() not in _SPLIT_NAMES:
            raise TaskError(where, f"{i}: unknown split {s!r} (train, validation, test)")
        (parts[_SPLIT_NAMES[s.lower()]] if s else rest).append((t, index[l]))
    rng = random.Random(f"{seed}:{name}")
    # Rows without a split go to the splits that have none, stratified by label; a missing
    # validation/test split with no such rows is carved from train. Train takes the remainder.
    missing = [s for s in ("test", "validation", "train") if not parts[s]]
    if missing and not rest and parts["train"]:
        rest, parts["train"] = parts["train"], []
        missing.append("train")
    if rest and missing:
        frac = {"train": 0.7, "validation": 0.1, "test": 0.2}
        by_label: dict[int, list[str]] = {}
        for t, y in rest:
            by_label.setdefault(y, []).append(t)
        total = sum(frac[s] for s in missing)
        for y, texts in sorted(by_label.items()):
            rng.shuffle(texts)
            n, start = len(texts), 0
            for j, s in enumerate(missing):
                k = n - start if j == len(missing) - 1 else int(round(n * frac[s] / total))
                parts[s] += [(t, y) for t in texts[start:start + k]]
                start += k
        # tiny files: make sure no split is empty when there is anything to move
        for s in missing:
            if not parts[s]:
                donor = max(missing, key=lambda d: len(parts[d]))
                if len(parts[donor]) > 1:
                    parts[s].append(parts[donor].pop())
    elif rest:
        parts["train"] += rest
    for s in SPLITS:
        if not parts[s]:
            raise TaskError(where, f"too few rows ({len(kept)}) to fill a {s} split")
        rng.shuffle(parts[s])
    mk = lambda s: Split([t for t, _ in parts[s]], [y for _, y in parts[s]])  # noqa: E731
    meta = {"dropped_empty_text": dropped_empty,
            "mean_words": round(float(np.mean([_words(t) for t, *_ in kept])), 1)}
    if notes:
        meta["notes"] = list(notes)
    return Task(name=name, family=family, labels=labels, descriptions=descriptions,
                train=mk("train"), validation=mk("validation"), test=mk("test"),
                source=source, meta=meta)


def _split_files(folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() in (".csv", ".tsv", ".tab", ".jsonl", ".ndjson", ".json") \
                and p.stem.lower() in _SPLIT_NAMES:
            found.setdefault(_SPLIT_NAMES[p.stem.lower()], p)
    return found


def load_csv_task(path: str | Path, text_col: str | int = "text", label_col: str | int = "label",
                  name: str | None = None, family: str | None = None,
                  descriptions: list[str] | dict | None = None, seed: int = 0, *,
                  labels: list[str] | None = None, split_col: str | None = "split", header: bool = True,
                  quoting: bool | None = None, label_order: str = "appearance") -> Task:
    """A task from a .csv/.tsv/.jsonl file, or a folder with train/validation/test files.

    A single file is split 70/10/20 (stratified, seeded) unless it has a ``split_col`` column
    (train/validation/test). In a folder, a missing validation or test split is carved from
    train. ``labels`` fixes the label order and rejects others; otherwise integral labels
    (1, 1.0, 01) become integers in numeric order and other labels keep their first-appearance
    order. ``descriptions``: one short phrase per label (list in label order, or dict), default
    the label names. ``header=False``: no header row, ``text_col``/``label_col`` are 0-based column
    indexes (GLUE's CoLA/SST files). ``quoting``: None reads .tsv without and .csv with quote
    processing; a row count that the other reading would change is said in ``task.meta["notes"]``.
    Raises TaskError naming the file and the problem.
    """
    path = Path(path)
    name = name or path.stem
    notes: list[str] = []
    read = dict(header=header, quoting=quoting, notes=notes)
    if path.is_dir():
        files = _split_files(path)
        if "train" not in files:
            raise TaskError(path, "folder has no train.csv / train.jsonl (also looked for "
                                  "validation/dev and test files)")
        rows = []
        for s in SPLITS:  # train first: first-appearance label order follows the training file
            if s in files:
                f = files[s]
                rows += [(t, l, s, f"{f.name} {i}") for t, l, _, i in _read_rows(f, text_col, label_col, None, **read)]
    elif path.exists():
        rows = _read_rows(path, text_col, label_col, split_col if header else None, **read)
    else:
        raise TaskError(path, "no such file or folder")
    return _task_from_rows(path, rows, name=name, family=family, labels=labels, descriptions=descriptions,
                           seed=seed, source=str(path), label_col=str(label_col), notes=notes,
                           label_order=label_order)


def load_hf_task(name_or_path: str | Path, config: str | None = None, *, text_col: str = "text",
                 label_col: str = "label", name: str | None = None, family: str | None = None,
                 labels: list[str] | None = None, descriptions: list[str] | dict | None = None,
                 seed: int = 0, revision: str | None = None) -> Task:
    """A task through Hugging Face ``datasets``: a hub name (needs network on the user's
    machine), a folder saved with ``save_to_disk``, a data folder, or a .csv/.json/.jsonl/.parquet
    file. ClassLabel features give the label names. Missing validation/test splits are carved
    from train (seeded, stratified)."""
    try:
        import datasets  # lazy: heavy, and absent on some GPU boxes
    except ImportError:
        raise TaskError(name_or_path, "the Hugging Face `datasets` package is not installed "
                                      "(pip install datasets)") from None
    p = Path(str(name_or_path)).expanduser()
    hf_cache = str(cache_dir() / "hf_datasets")
    try:
        if p.is_dir() and any((p / f).exists() for f in ("dataset_dict.json", "dataset_info.json",
                                                         "state.json")):
            ds = datasets.load_from_disk(str(p))
        elif p.is_file():
            builder = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json",
                       ".parquet": "parquet"}.get(p.suffix.lower())
            if builder is None:
                raise TaskError(p, f"unsupported file type {p.suffix!r} (.csv .tsv .json .jsonl .parquet)")
            kw = {"delimiter": "\t"} if p.suffix.lower() == ".tsv" else {}
            ds = datasets.load_dataset(builder, data_files=str(p), cache_dir=hf_cache, **kw)
        elif p.is_dir():
            ds = datasets.load_dataset(str(p), cache_dir=hf_cache)
        else:
            ds = datasets.load_dataset(str(name_or_path), config, cache_dir=hf_cache, revision=revision)
    except TaskError:
        raise
    except Exception as e:   # datasets raises many types (FileNotFound, ConnectionError, ValueError...)
        raise TaskError(name_or_path, f"could not load with datasets: {type(e).__name__}: {e}") from None
    if isinstance(ds, datasets.Dataset):
        ds = datasets.DatasetDict({"train": ds})
    rows, known = [], None
    for split_name, d in ds.items():
        line = 0
        target = _SPLIT_NAMES.get(split_name.lower())
        if target is None:
            continue
        for col in (text_col, label_col):
            if col not in d.column_names:
                raise TaskError(name_or_path, f"split {split_name!r} has no column {col!r} "
                                              f"(columns: {', '.join(d.column_names)})")
        feat = d.features.get(label_col)
        names = getattr(feat, "names", None)
        if names:
            known = list(names)
        for t, y in zip(d[text_col], d[label_col]):
            line += 1
            if names and isinstance(y, int) and y >= 0:
                y = names[y]
            rows.append(("" if t is None else str(t), _norm_label(y), target, f"{split_name} row {line}"))
    if not rows:
        raise TaskError(name_or_path, f"no train/validation/test split (splits: {', '.join(ds)})")
    return _task_from_rows(name_or_path, rows, name=name or p.name.split(".")[0], family=family,
                           labels=labels, descriptions=descriptions, seed=seed,
                           source=f"hf:{name_or_path}" + (f":{config}" if config else ""),
                           label_col=label_col, known_labels=known)
