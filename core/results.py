"""The results table: one row per training run, its one reader and its one writer.

    python -c "from core.results import gather; from core.config import demo_dir; print(gather(demo_dir() / 'results.csv').table.tail())"

Two places hold runs: the demo's ``results.csv`` (written by ``core.demo``) and the run store
(``runs.db``, whose ``results_table`` returns the same columns). Both follow RESULTS_COLUMNS,
defined here once. Everything that reads runs comes through :func:`read_table` /
:func:`gather` and :func:`finished_runs`; the demo build writes through :func:`write_rows`.

Also here, because every reader needs them the same way:
- which runs belong to a backbone group (:func:`for_group`: a run's backbone is read from its
  ``settings`` JSON by :func:`run_backbone`),
- the ``generic`` control source, recognised one way (:func:`is_generic`).

Torch-free (stdlib, numpy, pandas): the Home page and the measured matrix read it.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pandas as pd

from core.fsutil import atomic_write_text

RESULTS_COLUMNS = ["run_id", "sweep_id", "method", "source", "target", "seed", "steps", "train_size",
                   "val_score", "test_score", "wall_time_s", "device", "status", "prompt_path", "settings",
                   # what each number is (core.evidence reads them): the majority-class rate and size of the
                   # split test_score was computed on, the score's kind, the head, the task data's hash, and
                   # the run's sanity flags ("clean", "not recorded", or flag names joined by "; ")
                   "majority_rate", "test_n", "score_kind", "head", "data_hash", "flags",
                   # the other score kind of the same predictions (balanced accuracy beside accuracy, or
                   # accuracy beside balanced accuracy; empty where a run did not record it: the demo's)
                   "val_other", "test_other"]
SCORE_KIND = "accuracy"    # the score every built-in task reports (a task may say otherwise)
SCORE_LABELS = {"accuracy": "accuracy", "balanced_accuracy": "balanced accuracy"}
FLAGS_NOT_RECORDED = "not recorded"   # a run whose own events were not kept (the demo's): never "clean"
FLAGS_CLEAN = "clean"                 # checked, nothing flagged
GENERIC = "generic"        # the control source: one prompt trained on a mix of all tasks (tasks.mixed_task)
BASELINE = "scratch"       # the method every gain is measured against
FINISHED = ("finished", "done", "")  # statuses that count as finished (no status column: all rows do)
MIX_PREFIX = "mix "        # a mixture run's source label: "mix top-3 (zs)" (core.runs.sweeps, mix)


class ResultsError(ValueError):
    """A results table that cannot be used; the message names the file (or table) and the problem."""


# --------------------------------------------------------------------------- read / write
def read_rows(path: Path | str) -> list[dict]:
    """The rows of a results CSV as written (every value a string): what an append-by-rewrite
    writer reads back. [] when the file does not exist."""
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def write_rows(path: Path | str, rows: Iterable[dict]) -> Path:
    """Write rows (dicts; extra keys ignored) as a results CSV, sorted by run_id, atomically
    (temp file then rename: a killed writer leaves the old file whole)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=RESULTS_COLUMNS, extrasaction="ignore")
    w.writeheader()
    for r in sorted(rows, key=lambda r: r["run_id"]):
        w.writerow(r)
    return atomic_write_text(path, buf.getvalue())


def read_table(path: Path | str) -> pd.DataFrame:
    """A results CSV as a DataFrame (empty cells are NaN, no other string is); an empty frame
    when the file does not exist, ResultsError naming the file when it cannot be parsed."""
    path = Path(path)
    if not path.is_file():
        return pd.DataFrame()
    try:
        return pd.read_csv(path, keep_default_na=False, na_values=[""])
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise ResultsError(f"{path}: not a readable results CSV ({type(e).__name__})") from None


def read_finished(path: Path | str) -> pd.DataFrame:
    """The finished runs of a results CSV (:func:`finished_runs`); an empty frame when the file does not
    exist; ResultsError naming the file when it cannot be read or lacks a needed column."""
    table = read_table(path)
    if not len(table.columns):
        return table
    try:
        return finished_runs(table)
    except ResultsError as e:
        raise ResultsError(f"{path}: {e}") from None


@dataclass
class Results:
    """Runs from every source, with an ``origin`` column (demo | user).

    store_error: why the run store could not be read ('' when it was, or when there is none);
    the demo's runs are still in ``table`` then.
    """

    table: pd.DataFrame
    store_error: str = ""


def gather(demo_csv: Path | str | None, store=None) -> Results:
    """The demo's results CSV plus the run store's finished runs (``store``: anything with
    ``results_table(status=...)``, e.g. core.runs.store.RunStore; None: demo only)."""
    frames, error = [], ""
    if demo_csv is not None:
        df = read_table(demo_csv)
        if len(df.columns):
            frames.append(df.assign(origin="demo"))
    if store is not None:
        try:
            df = store.results_table(status=("finished",))
            if len(df):
                frames.append(df.assign(origin="user"))
        except Exception as e:  # noqa: BLE001 -- a broken store must not hide the demo's runs
            error = f"{type(e).__name__}: {e}"
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return Results(table, error)


def finished_runs(results: pd.DataFrame | None) -> pd.DataFrame:
    """Rows with a test score whose status (if any) is finished; source '' for scratch."""
    if results is None or len(results) == 0:
        return pd.DataFrame(columns=["run_id", "method", "source", "target", "seed", "test_score"])
    need = {"method", "target", "test_score"}
    missing = need - set(results.columns)
    if missing:
        raise ResultsError(f"results table lacks column(s) {sorted(missing)} (RESULTS COLUMNS of the contract)")
    df = results.copy()
    if "status" in df.columns:
        df = df[df["status"].fillna("finished").astype(str).isin(FINISHED)]
    df["test_score"] = pd.to_numeric(df["test_score"], errors="coerce")
    df = df[np.isfinite(df["test_score"])]
    if "source" not in df.columns:
        df["source"] = ""
    df["source"] = df["source"].fillna("").astype(str)
    if "seed" not in df.columns:
        df["seed"] = 0
    if "run_id" not in df.columns:
        df["run_id"] = [f"row{i}" for i in range(len(df))]
    return df.reset_index(drop=True)


# --------------------------------------------------------------------------- rules every reader shares
def score_kinds_text(runs: pd.DataFrame) -> str:
    """Which score a table of runs shows: "accuracy", "balanced accuracy", or both named with how many
    runs each ("accuracy (12 runs), balanced accuracy (4 runs)"): a run's main score is its task's
    registered kind (``score_kind``; accuracy where not recorded), the other is kept beside it
    (``val_other`` / ``test_other``)."""
    kinds = (runs["score_kind"].fillna(SCORE_KIND).astype(str) if "score_kind" in runs.columns
             else pd.Series([SCORE_KIND] * len(runs), dtype=str)).replace("", SCORE_KIND)
    counts = kinds.value_counts()
    if len(counts) <= 1:
        return SCORE_LABELS.get(counts.index[0], counts.index[0]) if len(counts) else SCORE_LABELS[SCORE_KIND]
    return ", ".join(f"{SCORE_LABELS.get(k, k)} ({n} runs)" for k, n in counts.items())


def device_kind(devices: pd.Series) -> pd.Series:
    """'cuda:1' -> 'cuda', 'cpu' -> 'cpu'; a missing device matches a missing device (''). Runs are
    paired with the scratch baseline of their own device kind (core.metrics.measured)."""
    return devices.astype(object).where(devices.notna(), "").astype(str).str.split(":").str[0]


def is_generic(source: str, task: str | None = None) -> bool:
    """The ``generic`` control source: a prompt trained on the mixed ``generic`` task. Its task says
    so when known; a results table only names the source, so there its name does (``generic*``)."""
    if task:
        return str(task).lower() == GENERIC
    return str(source).lower().startswith(GENERIC)


def generic_sources(sources: Iterable[str], task_of: Callable[[str], str | None] | None = None) -> list[str]:
    """The sources among ``sources`` that are the generic control (sorted, unique)."""
    task_of = task_of or (lambda s: None)
    return sorted({str(s) for s in sources if is_generic(s, task_of(s))})


def is_mixture(source: str) -> bool:
    """A run from several sources mixed (attempt, multi-teacher panda, SPoT from a ranking's top K):
    one row, no source prompt of that name, so never part of metric validation."""
    return str(source).startswith(MIX_PREFIX)


def _settings_dict(settings) -> dict | None:
    """A run's ``settings`` JSON as a dict, or None (no settings, not JSON, not a JSON object)."""
    if not isinstance(settings, str) or not settings:
        return None
    try:
        value = json.loads(settings)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _settings_field(settings, key: str):
    """One field of a run's ``settings`` JSON, or None (no settings, not JSON, not a JSON object, not named)."""
    value = _settings_dict(settings)
    return None if value is None else value.get(key)


def run_backbone(settings) -> str | None:
    """The backbone a run's ``settings`` JSON names, or None (no settings, not JSON, not named)."""
    return _settings_field(settings, "backbone")


def run_head(settings) -> str | None:
    """The head a run's ``settings`` JSON names (:func:`head_label`), or None."""
    value = _settings_dict(settings)
    return None if value is None else head_label(value)


def head_label(params: dict) -> str | None:
    """What reads a run's prompt, in one label -- part of what pairs a run with its scratch baseline
    (core.metrics.measured.PAIR_KEYS): the pooled head (``verbalizer`` | ``linear``), or a label-word
    head's preset (``thunlp-roberta``), with its scoring and label words when the run set them
    (``peft-causal first_token words=no,yes``). None when the settings name none."""
    lm = params.get("lm_head")
    if not lm:
        head = params.get("head")
        return head if isinstance(head, str) and head else None
    parts = [str(lm)]
    if params.get("lm_scoring"):
        parts.append(str(params["lm_scoring"]))
    if params.get("label_words"):
        parts.append("words=" + ",".join(map(str, params["label_words"])))
    return " ".join(parts)


def for_group(results: pd.DataFrame, names: set[str], backbone: str | None) -> pd.DataFrame:
    """Runs of one backbone group: scratch runs and runs whose source is one of ``names`` (a source
    given as a path counts by its file name), mixture runs (:func:`is_mixture`) with a member in
    ``names`` (or that record none), and, where a run's settings name a backbone,
    only that backbone. The ``source`` column of the result holds the prompt names."""
    if results.empty or "method" not in results.columns:
        return results
    src = results.get("source", pd.Series("", index=results.index)).fillna("").astype(str)
    src_name = src.map(lambda s: s if s in names else Path(s).name if Path(s).name in names else s)
    # a mixture belongs to the group its members are prompts of (recorded in its settings' "mix")
    members = (results["settings"].map(lambda st: (_settings_field(st, "mix") or {}).get("members"))
               if "settings" in results.columns else pd.Series(None, index=results.index))
    mix_here = src_name.map(is_mixture) & members.map(
        lambda m: not isinstance(m, (list, tuple)) or not m or bool(set(map(str, m)) & set(names)))
    keep = (results["method"] == BASELINE) | src_name.isin(names) | mix_here
    if backbone and "settings" in results.columns:
        bbs = results["settings"].map(run_backbone)
        keep &= bbs.isna() | (bbs == backbone)
    out = results[keep].copy()
    out["source"] = src_name[keep]
    return out


def transfer_methods(results: pd.DataFrame) -> list[str]:
    """The transfer methods with runs in ``results`` (every method but scratch), sorted."""
    if results.empty or "method" not in results.columns:
        return []
    return sorted(str(m) for m in results["method"].dropna().unique() if m != BASELINE)


def default_method(methods: list[str]) -> str | None:
    """The method shown first: pot when present, else panda, else the first."""
    return next((m for m in ("pot", "panda") if m in methods), methods[0] if methods else None)


def no_runs_reason(all_results: pd.DataFrame, group: str, demo_csv: Path, cannot_launch: str | None = None) -> str:
    """Why a backbone group has no measured transfer: no runs for it, or no runs at all.
    ``cannot_launch``: why no run can use this group's prompts here (core.backbone.unavailable_reason);
    then no launch is offered, the line says what to do instead."""
    if not all_results.empty:
        then = (f"No run can be launched from them here: {cannot_launch}." if cannot_launch else
                "Launch runs with these prompts as sources on the Runs page.")
        return (f"No runs measured for this group (`{group}`): the {len(all_results)} finished runs here measure "
                f"other backbone groups' prompts. {then}")
    if not Path(demo_csv).is_file():
        return (f"No finished runs yet: the demo's `{demo_csv}` is not built (`make demo`), "
                "and no run launched on the Runs page has finished.")
    return "No finished runs yet: launch runs on the Runs page."
