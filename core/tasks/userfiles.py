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
from core.tasks.types import SPLITS, Split, Task, TaskError, text_length


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


def _is_real(v) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, (int, float)):
        return True
    return isinstance(v, str) and re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", v) is not None


def _as_int_label(v) -> str:
    return str(int(v)) if isinstance(v, (int, float)) else str(int(v.split(".")[0]))


def _label_text(v) -> str:
    return repr(v) if isinstance(v, float) else str(v)


ENCODINGS = ("utf-8", "latin-1", "cp1252", "utf-16")


def _decode(path: Path, encoding: str | None = None) -> str:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise TaskError(path, f"cannot read: {e.strerror or e}") from None
    if not data.strip():
        raise TaskError(path, "empty file")
    if encoding and encoding.lower().replace("_", "-") not in ("utf-8", "utf8"):
        try:
            return data.decode(encoding)
        except LookupError:
            raise TaskError(path, f"unknown encoding {encoding!r} (e.g. {', '.join(ENCODINGS)})") from None
        except UnicodeDecodeError as e:
            line = data[: e.start].count(b"\n") + 1
            raise TaskError(path, f"not {encoding} text (invalid byte 0x{data[e.start]:02x} on line {line})") from None
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
                              "save the file as UTF-8, or name its encoding (--encoding latin-1 / cp1252)") from None


def text_cols(text_col) -> list:
    """``text_col`` as a list of one column, or two for a sentence-pair task (a list/tuple of two
    names, or one name given twice on the CLI). Any other count is a TaskError."""
    if isinstance(text_col, (list, tuple)):
        cols = list(text_col)
        if len(cols) not in (1, 2):
            raise TaskError(None, f"give one text column, or two for a sentence pair; got {len(cols)}: {cols}")
        if len(cols) == 2 and str(cols[0]) == str(cols[1]):
            raise TaskError(None, f"the two text columns of a pair are both {cols[0]!r}; name two columns")
        return cols
    return [text_col]


def _cell_text(rec: dict, tcols: list):
    """A JSON record's text: one string, or a (first, second) tuple for a pair."""
    vals = ["" if rec[c] is None else str(rec[c]) for c in tcols]
    return vals[0] if len(vals) == 1 else (vals[0], vals[1])


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
               quoting: bool | None = None, notes: list[str] | None = None, encoding: str | None = None
               ) -> list[tuple[str, object, str | None, str]]:
    """(text, label as read, split or None, "line N") from a .csv/.tsv/.jsonl file; the text is a
    ``(first, second)`` tuple when ``text_col`` names two columns (a sentence-pair task).

    Tab-separated files are read without quote processing, as GLUE's own readers do (a text may
    start with a '"' that is part of it), unless ``quoting`` is True; CSV files with CSV quoting
    unless ``quoting`` is False. When the other reading would give a different row count, a note
    says so (``notes``). ``header=False``: no header row, columns named by 0-based index.
    """
    text = _decode(path, encoding)
    notes = [] if notes is None else notes
    suffix = path.suffix.lower()
    tcols = text_cols(text_col)
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
            for col in (*tcols, label_col):
                if col not in rec:
                    raise TaskError(path, f"line {i}: no field {col!r} (fields: {', '.join(map(str, rec))})")
            t = _cell_text(rec, tcols)
            split = rec.get(split_col) if split_col else None
            rows.append((t, _norm_label(rec[label_col]),
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
        tis = [_col_index(c, cols, path, "text", recs[0][1]) for c in tcols]
        li = _col_index(label_col, cols, path, "label", recs[0][1])
        si = cols.index(split_col) if header and split_col and split_col in cols else None
        for line, rec in body:
            if len(rec) != width:
                what = "the header has" if header else "the first row has"
                raise TaskError(path, f"line {line}: {len(rec)} fields, {what} {width}")
            rows.append((rec[tis[0]] if len(tis) == 1 else (rec[tis[0]], rec[tis[1]]), _norm_label(rec[li]), rec[si].strip() if si is not None else None,
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
    if not integral and labels is None:
        real = [l for _, l, _, _ in kept if _is_real(l)]
        if len(real) == len(kept):
            bad = next(l for l in real if not _is_integral(l))
            raise TaskError(where, f"labels in {label_col!r} are real numbers (e.g. {bad}): a regression target "
                                   "(STS-B-style); Prompt Atlas tasks are classification (round or bin the "
                                   "scores into classes first)")
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


VAL_MIN_PER_CLASS = 2      # a split the product carves gives every class this many validation examples
#                            (2: the fewest for which a leave-one-out signal such as ncc is defined)
BALANCED_BELOW = 0.5       # smallest class under this fraction of an even share (1/C) of train: the task is
#                            scored by balanced accuracy (a 90:10 or 99:1 file; not 77 even classes)


def _norm_text(t) -> str:
    """The text a duplicate check compares: whitespace runs collapsed (a pair: both parts)."""
    if isinstance(t, tuple):
        return "\x00".join(" ".join(x.split()) for x in t)
    return " ".join(t.split())


def _strip(t):
    return tuple(x.strip() for x in t) if isinstance(t, tuple) else t.strip()


def _nonempty(t) -> bool:
    return all(x and x.strip() for x in t) if isinstance(t, tuple) else bool(t and t.strip())


def _check_label_variants(where, kept: list, label_col: str, merge: bool, notes: list[str]) -> list:
    """Labels that differ only by case or surrounding spaces: one error listing them (or, with
    ``merge``, each group becomes its most frequent spelling, said in a note)."""
    from collections import Counter
    freq = Counter(l for _, l, _, _ in kept)
    groups: dict[str, list[str]] = {}
    for lab in freq:
        groups.setdefault(" ".join(str(lab).split()).casefold(), []).append(lab)
    variants = [g for g in groups.values() if len(g) > 1]
    if not variants:
        return kept
    listing = "; ".join(" / ".join(f"{x!r} ({freq[x]})" for x in g) for g in variants)
    if not merge:
        raise TaskError(where, f"labels in {label_col!r} differ only by case or spaces: {listing}; fix the file, "
                               "or merge each group into its most frequent spelling with --merge-label-variants "
                               "(merge_label_variants=True)")
    to = {x: max(g, key=lambda v: (freq[v], v == g[0])) for g in variants for x in g}
    notes.append(f"labels merged (case / spaces): {listing}")
    return [(t, to.get(l, l), s, i) for t, l, s, i in kept]


def _task_from_rows(where: str | Path, rows: list[tuple[str, object, str | None, str]], *,
                    name: str, family: str | None, labels: list[str] | None,
                    descriptions, seed: int, source: str, label_col: str,
                    known_labels: list[str] | None = None, notes: list[str] | None = None,
                    label_order: str = "appearance", merge_label_variants: bool = False,
                    drop_duplicates: bool = False, text_col=None, meta: dict | None = None) -> Task:
    """Label mapping, checks and a seeded stratified split for rows of user data.

    A row's text is a string, or a (first, second) tuple for a sentence-pair task. Splits the
    product carves (rows without a split) are deduplicated first (exact text after whitespace
    normalisation; the count is in the summary) and give every class at least
    VAL_MIN_PER_CLASS validation examples when it has enough (or a note says why not). Copies
    across splits the user gave are counted (``drop_duplicates`` removes them from validation /
    test); texts with two labels are counted.
    """
    notes = list(notes or [])
    kept = [(_strip(t), l, s, i) for t, l, s, i in rows if _nonempty(t)]
    dropped_empty = len(rows) - len(kept)
    if not kept:
        raise TaskError(where, "no rows with a non-empty text")
    pair = isinstance(kept[0][0], tuple)
    kept, labels = _resolve_labels(where, kept, label_col, labels, known_labels, label_order)
    kept = _check_label_variants(where, kept, label_col, merge_label_variants, notes)
    if merge_label_variants:
        left = {l for _, l, _, _ in kept}
        labels = [l for l in labels if l in left]
    present = {l for _, l, _, _ in kept}
    if len(present) < 2:
        raise TaskError(where, f"only one label ({next(iter(present))!r}) in {label_col!r}; "
                               "a task needs at least 2")
    given = {_SPLIT_NAMES.get(str(s).lower()) for _, _, s, _ in kept if s}
    if "train" in given:  # a class the model never trains on cannot be scored
        in_train = {l for _, l, s, _ in kept if s and _SPLIT_NAMES.get(s.lower()) == "train"}
        for sname in ("validation", "test"):
            extra = [l for l in dict.fromkeys(l for _, l, s, _ in kept
                                              if s and _SPLIT_NAMES.get(s.lower()) == sname) if l not in in_train]
            if extra:
                raise TaskError(where, f"the {sname} split has label{'s' if len(extra) > 1 else ''} "
                                       f"{', '.join(map(repr, extra))} that the train split never has "
                                       f"(train labels: {', '.join(map(repr, sorted(in_train)))})")
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

    # the same text with two labels (anywhere in the file): reported, never resolved by a guess
    seen_label: dict[str, set] = {}
    for t, l, _, _ in kept:
        seen_label.setdefault(_norm_text(t), set()).add(l)
    conflicts = sum(1 for v in seen_label.values() if len(v) > 1)

    parts: dict[str, list[tuple[object, int]]] = {s: [] for s in SPLITS}
    rest: list[tuple[object, int]] = []
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
    removed_dupes = 0
    if rest and missing and len(missing) > 1:
        # rows the product splits: an exact copy would land in two splits and leak; keep the first
        seen, uniq = set(), []
        for t, y in rest:
            k = _norm_text(t)
            if k in seen:
                removed_dupes += 1
                continue
            seen.add(k)
            uniq.append((t, y))
        rest = uniq
    short_classes: list[str] = []
    if rest and missing:
        frac = {"train": 0.7, "validation": 0.1, "test": 0.2}
        by_label: dict[int, list] = {}
        for t, y in rest:
            by_label.setdefault(y, []).append(t)
        total = sum(frac[s] for s in missing)
        for y, texts in sorted(by_label.items()):
            rng.shuffle(texts)
            n = len(texts)
            k = {s: int(round(n * frac[s] / total)) for s in missing}
            if "train" in missing:
                k["train"] = n - sum(v for s, v in k.items() if s != "train")
                if "validation" in missing and k["validation"] < VAL_MIN_PER_CLASS:
                    # take from train (keeping one training example), then test, up to the minimum
                    for donor, keep in (("train", 1), ("test", 1)):
                        while k["validation"] < VAL_MIN_PER_CLASS and k.get(donor, 0) > keep:
                            k[donor] -= 1
                            k["validation"] += 1
                    if k["validation"] < VAL_MIN_PER_CLASS:
                        short_classes.append(f"{labels[y]} ({n})")
            else:
                k[missing[-1]] = n - sum(v for s, v in k.items() if s != missing[-1])
            start = 0
            for s in missing:
                parts[s] += [(t, y) for t in texts[start:start + k[s]]]
                start += k[s]
        # tiny files: make sure no split is empty when there is anything to move
        for s in missing:
            if not parts[s]:
                donor = max(missing, key=lambda d: len(parts[d]))
                if len(parts[donor]) > 1:
                    parts[s].append(parts[donor].pop())
    elif rest:
        parts["train"] += rest
    # copies across splits the user gave (a leaky published split): counted, dropped when asked
    cross = 0
    earlier: set[str] = set()
    for sname in SPLITS:
        keep_rows = []
        for t, y in parts[sname]:
            if _norm_text(t) in earlier and sname != "train":
                cross += 1
                if drop_duplicates:
                    continue
            keep_rows.append((t, y))
        earlier |= {_norm_text(t) for t, _ in parts[sname]}
        parts[sname] = keep_rows
    for s in SPLITS:
        if not parts[s]:
            raise TaskError(where, f"too few rows ({len(kept)}) to fill a {s} split")
        rng.shuffle(parts[s])

    def mk(s):
        if pair:
            return Split([t[0] for t, _ in parts[s]], [y for _, y in parts[s]], [t[1] for t, _ in parts[s]])
        return Split([t for t, _ in parts[s]], [y for _, y in parts[s]])

    flat = [" ".join(t) if pair else t for t, *_ in kept]
    mean_len, unit = text_length(flat)
    meta = dict(meta or {})
    meta.update({"dropped_empty_text": dropped_empty, f"mean_{unit}": mean_len})
    if unit != "words":
        meta["length_unit"] = unit
    if pair:
        cols = text_cols(text_col) if text_col is not None else ["text", "text2"]
        meta["pair"] = f"{cols[0]} + {cols[1]}"
        meta["truncation"] = "longest_first"
        notes.append(f"sentence pairs ({cols[0]}, {cols[1]}): encoded as the backbone's tokenizer encodes pairs "
                     "(its separator and token types, the prompt first); an over-long pair is truncated "
                     "longest-first, so both texts keep tokens")
    if removed_dupes:
        meta["duplicates_removed"] = removed_dupes
        notes.append(f"{removed_dupes} exact duplicate text{'s' if removed_dupes != 1 else ''} (after whitespace "
                     "normalisation) removed before splitting, so no text is in two splits")
    if cross:
        meta["cross_split_duplicates"] = cross
        notes.append(f"{cross} validation/test row{'s' if cross != 1 else ''} repeat an earlier split's text "
                     + ("(dropped: --drop-duplicates)" if drop_duplicates
                        else "(kept as given; --drop-duplicates / drop_duplicates=True removes them)"))
    if conflicts:
        meta["conflicting_labels"] = conflicts
        notes.append(f"{conflicts} text{'s' if conflicts != 1 else ''} appear{'s' if conflicts == 1 else ''} with "
                     "two or more labels")
    if "validation" in missing and rest:
        meta["val_min_per_class"] = VAL_MIN_PER_CLASS
        if short_classes:
            notes.append(f"validation: {len(short_classes)} class{'es' if len(short_classes) != 1 else ''} have too "
                         f"few examples for {VAL_MIN_PER_CLASS} validation examples each and keep one in train: "
                         + ", ".join(short_classes[:8]) + (" ..." if len(short_classes) > 8 else ""))
    task = Task(name=name, family=family, labels=labels, descriptions=descriptions,
                train=mk("train"), validation=mk("validation"), test=mk("test"), source=source, meta=meta)
    counts = task.train.counts(task.num_labels)
    share = min(counts) / max(1, sum(counts))
    task.meta["score"] = "balanced_accuracy" if share < BALANCED_BELOW / task.num_labels else "accuracy"
    task.meta["smallest_class_share"] = round(share, 4)
    if notes:
        task.meta["notes"] = notes
    return task


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
                  quoting: bool | None = None, label_order: str = "appearance", encoding: str | None = None,
                  merge_label_variants: bool = False, drop_duplicates: bool = False) -> Task:
    """A task from a .csv/.tsv/.jsonl file, or a folder with train/validation/test files.

    A single file is split 70/10/20 (stratified, seeded) unless it has a ``split_col`` column
    (train/validation/test). In a folder, a missing validation or test split is carved from
    train. ``labels`` fixes the label order and rejects others; otherwise integral labels
    (1, 1.0, 01) become integers in numeric order and other labels keep their first-appearance
    order. ``descriptions``: one short phrase per label (list in label order, or dict), default
    the label names. ``header=False``: no header row, ``text_col``/``label_col`` are 0-based column
    indexes (GLUE's CoLA/SST files). ``quoting``: None reads .tsv without and .csv with quote
    processing; a row count that the other reading would change is said in ``task.meta["notes"]``.
    ``text_col`` a list of two columns (``["sentence1", "sentence2"]``): a sentence-pair task.
    ``encoding``: read the file in this encoding (``latin-1``, ``cp1252``) instead of UTF-8.
    ``merge_label_variants``: labels differing only by case/spaces become one (else an error);
    ``drop_duplicates``: validation/test rows repeating an earlier split's text are dropped.
    Raises TaskError naming the file and the problem.
    """
    path = Path(path)
    name = name or path.stem
    if hf_layout(path) in ("saved", "parquet"):  # Hugging Face's own layouts: read as --kind hf would
        return load_hf_task(path, text_col=text_col, label_col=label_col, name=name, family=family,
                            labels=labels, descriptions=descriptions, seed=seed,
                            merge_label_variants=merge_label_variants, drop_duplicates=drop_duplicates)
    notes: list[str] = []
    read = dict(header=header, quoting=quoting, notes=notes, encoding=encoding)
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
    names = _info_label_names(path if path.is_dir() else path.parent, label_col)
    meta = None
    if names:  # an export of a ClassLabel column: ints are indexes into the names, -1 is unlabelled
        mapped, hidden = [], 0
        for t, l, s, i in rows:
            if _is_integral(l) and int(float(l)) < 0:
                hidden += 1
                continue
            if _is_integral(l):
                k = int(float(l))
                if k >= len(names):
                    raise TaskError(path, f"{i}: label {k} outside the {len(names)} names in dataset_info.json")
                l = names[k]
            mapped.append((t, l, s, i))
        rows = mapped
        notes.append(f"label names from dataset_info.json: {', '.join(names)}")
        if hidden:
            notes.append(f"unlabelled rows left out (ClassLabel -1): {hidden}")
            meta = {"unlabelled_left_out": hidden}
        labels = labels or None
    return _task_from_rows(path, rows, name=name, family=family, labels=labels, descriptions=descriptions,
                           seed=seed, source=str(path), label_col=str(label_col), notes=notes,
                           label_order=label_order, merge_label_variants=merge_label_variants,
                           drop_duplicates=drop_duplicates, text_col=text_col, meta=meta,
                           known_labels=names)


def hf_layout(path: str | Path) -> str | None:
    """What a local path holds in Hugging Face ``datasets``' own layouts, read without ``--kind hf``:
    "saved" (a ``save_to_disk`` folder: a DatasetDict or one split), "parquet" (a .parquet file, or a
    folder of them such as the Hub's ``data/{split}-00000-of-00001.parquet``), "info" (split files
    beside a ``dataset_info.json`` that names the ClassLabel's classes), else None."""
    p = Path(path)
    if p.is_file():
        return "parquet" if p.suffix.lower() == ".parquet" else None
    if not p.is_dir():
        return None
    if (p / "dataset_dict.json").is_file() or ((p / "state.json").is_file() and (p / "dataset_info.json").is_file()):
        return "saved"
    if any(p.glob("*.parquet")) or any(p.glob("data/*.parquet")):
        return "parquet"
    if (p / "dataset_info.json").is_file():
        return "info"
    return None


def _info_label_names(folder: Path, label_col) -> list[str] | None:
    """ClassLabel names of ``label_col`` from a ``dataset_info.json`` in ``folder`` (None if absent)."""
    f = folder / "dataset_info.json"
    try:
        info = json.loads(f.read_text(encoding="utf-8"))
        feat = (info.get("features") or {}).get(str(label_col)) or {}
        names = feat.get("names") if isinstance(feat, dict) else None
    except (OSError, ValueError, AttributeError):
        return None
    return [str(x) for x in names] if isinstance(names, list) and names else None


# GLUE's MNLI names its splits validation_matched / test_matched (and *_mismatched, a second domain)
_HF_SPLITS = {**_SPLIT_NAMES, "validation_matched": "validation", "test_matched": "test"}


def load_hf_task(name_or_path: str | Path, config: str | None = None, *, text_col: str = "text",
                 label_col: str = "label", name: str | None = None, family: str | None = None,
                 labels: list[str] | None = None, descriptions: list[str] | dict | None = None,
                 seed: int = 0, revision: str | None = None, merge_label_variants: bool = False,
                 drop_duplicates: bool = False) -> Task:
    """A task through Hugging Face ``datasets``: a hub name (needs network on the user's
    machine), a folder saved with ``save_to_disk`` (a DatasetDict or one split), a data folder
    (the Hub's ``data/{split}-*.parquet``), or a .csv/.json/.jsonl/.parquet file. ClassLabel
    features (also from a Parquet file's schema metadata) give the label names; a ClassLabel's
    -1 / None rows are unlabelled (GLUE's hidden test labels) and left out, counted in the notes.
    Boolean labels are two classes; float (regression) labels are refused. ``text_col`` a list of
    two columns: a sentence-pair task. Missing validation/test splits are carved from train
    (seeded, stratified)."""
    try:
        import datasets  # lazy: heavy, and absent on some GPU boxes
    except ImportError:
        raise TaskError(name_or_path, "the Hugging Face `datasets` package is not installed "
                                      "(pip install datasets)") from None
    p = Path(str(name_or_path)).expanduser()
    hf_cache = str(cache_dir() / "hf_datasets")
    tcols = text_cols(text_col)
    try:
        if hf_layout(p) == "saved":
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
    rows, known, unlabelled, notes = [], None, {}, []
    info_names = _info_label_names(p if p.is_dir() else p.parent, label_col)
    skipped = [s for s in ds if s.lower() not in _HF_SPLITS]
    if skipped:
        notes.append(f"splits not read: {', '.join(skipped)} (train, validation(_matched), test(_matched) are)")
    for split_name, d in ds.items():
        line = 0
        target = _HF_SPLITS.get(split_name.lower())
        if target is None:
            continue
        for col in (*tcols, label_col):
            if col not in d.column_names:
                raise TaskError(name_or_path, f"split {split_name!r} has no column {col!r} "
                                              f"(columns: {', '.join(d.column_names)})")
        feat = d.features.get(label_col)
        names = getattr(feat, "names", None) or info_names
        if names:
            known = list(names)
        if isinstance(feat, datasets.Value) and feat.dtype.startswith("float") and not names:
            vals = [y for y in d[label_col] if y is not None]
            if any(not float(y).is_integer() for y in vals):
                raise TaskError(name_or_path, f"{label_col!r} holds real numbers (e.g. {next(y for y in vals if not float(y).is_integer())}): "
                                              "a regression target (STS-B-style); Prompt Atlas tasks are classification")
        cols = [d[c] for c in tcols]
        for i, y in enumerate(d[label_col]):
            line += 1
            if names and (y is None or (isinstance(y, int) and not isinstance(y, bool) and y < 0)):
                unlabelled[split_name] = unlabelled.get(split_name, 0) + 1   # hidden label: not a class
                continue
            if names and isinstance(y, int) and not isinstance(y, bool):
                if y >= len(names):
                    raise TaskError(name_or_path, f"{split_name} row {line}: label {y} outside the "
                                                  f"{len(names)} ClassLabel names")
                y = names[y]
            t = ["" if c[i] is None else str(c[i]) for c in cols]
            rows.append((t[0] if len(t) == 1 else (t[0], t[1]), _norm_label(y), target, f"{split_name} row {line}"))
    if unlabelled:
        notes.append("unlabelled rows left out (ClassLabel -1 / None, e.g. GLUE's hidden test labels): "
                     + ", ".join(f"{s} {n}" for s, n in unlabelled.items()))
    if not rows:
        raise TaskError(name_or_path, f"no labelled train/validation/test rows (splits: {', '.join(ds)})")
    task = _task_from_rows(name_or_path, rows, name=name or p.name.split(".")[0], family=family,
                           labels=labels, descriptions=descriptions, seed=seed,
                           source=f"hf:{name_or_path}" + (f":{config}" if config else ""),
                           label_col=label_col, known_labels=known, notes=notes,
                           merge_label_variants=merge_label_variants, drop_duplicates=drop_duplicates,
                           text_col=text_col, meta={"unlabelled_left_out": sum(unlabelled.values())}
                           if unlabelled else None)
    return task
