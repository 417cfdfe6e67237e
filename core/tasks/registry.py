"""The task registry: demo + user tasks by name (list_tasks, get_task, save/register/export).

    python -m core tasks list
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import tempfile
from pathlib import Path

from core.config import atlas_home, cache_dir
from core.fsutil import atomic_write_text
from core.safetext import control_problem, visible
from core.tasks.demo.prepare import _read_meta
from core.tasks.demo.spec import DEMO_TASKS, tasks_dir
from core.tasks.types import SPLITS, Split, Task, TaskError
from core.tasks.userfiles import _norm_label, load_csv_task, load_hf_task


# ----------------------------------------------------------------------------- user task registry

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def user_tasks_dir() -> Path:
    return atlas_home() / "tasks"


def _task_folders() -> list[Path]:
    """ATLAS_HOME/tasks, then ATLAS_TASKS_DIR (tasks shipped with a Ray job's bundle)."""
    extra = os.environ.get("ATLAS_TASKS_DIR")
    return [user_tasks_dir()] + ([Path(extra).expanduser().resolve()] if extra else [])


def _user_specs() -> dict[str, dict]:
    specs = {}
    for folder in reversed(_task_folders()):  # ATLAS_HOME's own registration wins
        if not folder.is_dir():
            continue
        for p in sorted(folder.glob("*.json")):
            try:
                spec = json.loads(p.read_text(encoding="utf-8"))
                if not isinstance(spec, dict):
                    raise ValueError("not a JSON object")
            except (OSError, ValueError) as e:
                spec = {"error": f"{p.name}: unreadable task registration ({type(e).__name__}); fix or remove it"}
            spec["_file"] = str(p)
            specs[p.stem] = spec
    return specs


def task_data_hash(task: Task) -> str:
    """sha256 (16 hex) of the labels, descriptions and every split's (label, text) rows; a
    sentence-pair task's rows are (label, [text, text2]) so the second text is covered too
    (single-text tasks keep the hash they always had)."""
    h = hashlib.sha256(json.dumps([task.labels, task.descriptions]).encode())
    for s in SPLITS:
        sp = task.split(s)
        h.update(f"\n[{s}]\n".encode())
        for i, (t, y) in enumerate(zip(sp.texts, sp.labels)):
            row = t if sp.texts2 is None else json.dumps([t, sp.texts2[i]], ensure_ascii=False)
            h.update(f"{y}\t{row}\n".encode("utf-8"))
    return h.hexdigest()[:16]


def _check_text(name: str, family: str | None) -> None:
    """A task name or family holding a control/format/separator character is refused naming it."""
    for what, v in (("task name", name), ("family", family)):
        if v and (bad := control_problem(v)):
            raise TaskError(visible(name), f"{what} {bad}")


def save_task(task: Task, *, origin: str = "", overwrite: bool = False, extra: dict | None = None,
              folder: Path | None = None) -> Path:
    """:func:`_save_task` under the task name's lock (core.safewrite): two adds of one name run one after
    the other, so the second sees the first's registration (refused, or replaced with overwrite)."""
    from core import safewrite

    where = Path(folder) if folder is not None else user_tasks_dir()
    with safewrite.locked(where / f"{task.name}.json"):
        return _save_task(task, origin=origin, overwrite=overwrite, extra=extra, folder=folder)


def _save_task(task: Task, *, origin: str = "", overwrite: bool = False, extra: dict | None = None,
               folder: Path | None = None) -> Path:
    """Register ``task`` by copying its splits under ATLAS_HOME/tasks (never a link to the user's file).

    Layout: ``<name>.json`` (the registration) and ``<name>-<datahash>/{train,validation,test}.jsonl``.
    The data folder is written in a temp folder and renamed, then the registration is
    replaced atomically, then an older data folder is removed: a reader sees the old task
    or the new one, never half of one. Returns the registration file.
    """
    name = task.name
    _check_text(name, task.family)
    if not _NAME_RE.match(name or ""):
        raise TaskError(name, "task names use letters, digits, '_', '.', '-' (max 64)")
    if name in DEMO_TASKS:
        raise TaskError(name, "is a demo task name; pick another")
    folder = Path(folder) if folder is not None else user_tasks_dir()
    dest = folder / f"{name}.json"
    old = None
    if dest.exists():
        if not overwrite:
            raise TaskError(dest, "a task with this name exists (overwrite=True / --overwrite to replace)")
        try:
            old = json.loads(dest.read_text(encoding="utf-8")).get("data")
        except (OSError, ValueError, AttributeError):
            old = None
    digest = task_data_hash(task)
    data_name = f"{name}-{digest}"
    data_dir = folder / data_name
    if not data_dir.is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder, prefix=f".{name}.", suffix=".tmp"))
        try:
            for sname in SPLITS:
                sp = task.split(sname)
                lines = [json.dumps({"text": t, **({} if sp.texts2 is None else {"text2": sp.texts2[i]}),
                                     "label": task.labels[y]}, ensure_ascii=False)
                         for i, (t, y) in enumerate(zip(sp.texts, sp.labels))]
                (tmp / f"{sname}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
            os.replace(tmp, data_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    spec = {"name": name, "kind": "copy", "data": data_name, "family": task.family, "labels": list(task.labels),
            "descriptions": list(task.descriptions), "origin": origin or task.source, "data_hash": digest,
            "summary": task_summary(task),  # the Tasks table reads this, never the data, on a page load
            "meta": {k: v for k, v in (task.meta or {}).items()
                     if isinstance(v, (int, float, str, bool))
                     or (isinstance(v, list) and all(isinstance(x, str) for x in v))},  # notes: what reading said
            **(extra or {})}
    atomic_write_text(dest, json.dumps(spec, indent=2, ensure_ascii=False) + "\n")
    if old and old != data_name and _NAME_RE.match(str(old)) and (folder / old).is_dir():
        shutil.rmtree(folder / old, ignore_errors=True)
    return dest


def task_summary(task: Task) -> dict:
    """What the Tasks table shows of a task (counts per split, pair or not, mean words of train — or mean
    characters for scripts without spaces), computed once at save."""
    from core.tasks.types import text_length
    mw = task.meta.get("mean_words") if task.meta else None
    mc = task.meta.get("mean_chars") if task.meta else None
    if mw is None and mc is None:
        v, unit = text_length([task.train.joined(i, " ") for i in range(len(task.train))])
        mw, mc = (v, None) if unit == "words" else (None, v)
    return {"counts": {s: len(task.split(s)) for s in SPLITS}, "mean_words": mw, "mean_chars": mc,
            "pair": bool(task.is_pair)}


def saved_summary(name: str) -> dict | None:
    """A saved user task's summary (family, labels, counts, mean words) from its registration alone, or None
    (a demo task, a task registered before summaries, or one whose data folder is missing: read it then)."""
    spec = _user_specs().get(name)
    if not spec or spec.get("kind") != "copy" or not isinstance(spec.get("summary"), dict):
        return None
    if not (Path(spec["_file"]).parent / str(spec.get("data"))).is_dir():
        return None
    return {"family": spec.get("family"), "labels": list(spec.get("labels") or []), **spec["summary"]}


def delete_task(name: str) -> dict:
    """Remove user task ``name``: its registration, its copied data folder, and the caches keyed
    by its data (none are: caches are keyed by content, so they are simply never hit again).
    Runs that used it keep their results and the data hash they recorded (a task registered
    later under the same name has another hash, so their numbers never merge). Demo tasks
    cannot be deleted. -> {"name", "data_hash", "removed": [paths]}."""
    if name in DEMO_TASKS:
        raise TaskError(name, "is a demo task; demo tasks cannot be deleted")
    if not _NAME_RE.match(name or ""):
        raise TaskError(name, "not a task name")
    dest = user_tasks_dir() / f"{name}.json"
    if not dest.is_file():
        raise TaskError(name, "no such user task (python -m core tasks list)")
    try:
        spec = json.loads(dest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        spec = {}
    removed = []
    # registration first: a reader never sees a task whose data is half gone
    dest.unlink()
    removed.append(str(dest))
    data = spec.get("data") if isinstance(spec, dict) else None
    if data and _NAME_RE.match(str(data)) and (user_tasks_dir() / str(data)).is_dir():
        shutil.rmtree(user_tasks_dir() / str(data), ignore_errors=True)
        removed.append(str(user_tasks_dir() / str(data)))
    _forget_deleted(name, spec.get("data_hash") if isinstance(spec, dict) else None)
    return {"name": name, "data_hash": spec.get("data_hash") if isinstance(spec, dict) else None, "removed": removed}


def _forget_deleted(name: str, data_hash: str | None) -> None:
    """Record that task ``name`` (with this data hash) was deleted: ATLAS_HOME/tasks/.deleted.json,
    read by ``deleted_tasks`` so pages can say a run's task was deleted."""
    path = user_tasks_dir() / ".deleted.json"
    try:
        log = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(log, list):
            log = []
    except (OSError, ValueError):
        log = []
    import time
    log.append({"name": name, "data_hash": data_hash, "deleted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    atomic_write_text(path, json.dumps(log, indent=1) + "\n")


def deleted_tasks() -> dict[str, str | None]:
    """Deleted user tasks still not registered again: name -> the data hash they had."""
    try:
        log = json.loads((user_tasks_dir() / ".deleted.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    live = _user_specs()
    return {e["name"]: e.get("data_hash") for e in log if isinstance(e, dict) and e.get("name") not in live}


def live_task_hashes() -> dict[str, str | None]:
    """Registered user tasks: name -> the data hash recorded when they were registered."""
    return {n: sp.get("data_hash") for n, sp in _user_specs().items() if n not in DEMO_TASKS}


def is_user_task(name: str) -> bool:
    return name not in DEMO_TASKS and name in _user_specs()


def export_task(name: str, folder: Path) -> Path:
    """Write user task ``name`` (data included) into ``folder`` as a registration that
    ``ATLAS_TASKS_DIR=folder`` makes visible: what a Ray job carries to a worker whose
    machine has no ATLAS_HOME and an empty task cache."""
    task = get_task(name)
    spec = _user_specs()[name]
    return save_task(task, origin=str(spec.get("origin") or spec.get("path") or ""), overwrite=True,
                     folder=folder)


def _load_copy(spec: dict) -> Task:
    """A registered task whose data was copied under the tasks folder (``save_task``)."""
    try:
        labels = [str(x) for x in spec["labels"]]
        folder = Path(spec["_file"]).parent / str(spec["data"])
        descriptions = [str(x) for x in spec["descriptions"]]
    except (KeyError, TypeError) as e:
        raise TaskError(spec.get("_file"), f"bad task file ({type(e).__name__}: {e})") from None
    if not folder.is_dir():
        raise TaskError(folder, f"task {spec.get('name')!r}: its copied data folder is missing")
    index = {x: i for i, x in enumerate(labels)}
    splits = {s: _read_jsonl_split(folder / f"{s}.jsonl", index) for s in SPLITS}
    meta = dict(spec.get("meta") or {})
    meta.setdefault("data_hash", spec.get("data_hash"))
    return Task(name=spec["name"], family=spec.get("family"), labels=labels, descriptions=descriptions,
                source=str(spec.get("origin") or ""), meta=meta, **splits)


def register_task(name: str, path: str | Path, *, kind: str = "file", text_col: str | int = "text",
                  label_col: str | int = "label", family: str | None = None,
                  labels: list[str] | None = None, descriptions: list[str] | dict | None = None,
                  config: str | None = None, seed: int = 0, overwrite: bool = False, header: bool = True,
                  quoting: bool | None = None, encoding: str | None = None, merge_label_variants: bool = False,
                  drop_duplicates: bool = False) -> Path:
    """Record a user task under ATLAS_HOME/tasks/<name>.json after loading it once to check it.

    The label order found then is recorded with it, so list descriptions stay on the classes
    they were written for however the file is read later. ``text_col`` a list of two columns:
    a sentence-pair task. A ``save_to_disk`` folder, a .parquet file or the Hub's
    ``data/{split}-*.parquet`` layout is read through ``datasets`` without ``kind="hf"``."""
    _check_text(name, family)
    if not _NAME_RE.match(name or ""):
        raise TaskError(name, "task names use letters, digits, '_', '.', '-' (max 64)")
    if name in DEMO_TASKS:
        raise TaskError(name, "is a demo task name; pick another")
    if kind not in ("file", "hf"):
        raise TaskError(name, f"kind must be 'file' or 'hf', not {kind!r}")
    dest = user_tasks_dir() / f"{name}.json"
    if dest.exists() and not overwrite:
        raise TaskError(dest, "a task with this name exists (overwrite=True / --overwrite to replace)")
    src = str(Path(path).expanduser().resolve()) if (kind == "file" or Path(path).exists()) else str(path)
    spec = {"name": name, "kind": kind, "path": src, "text_col": text_col, "label_col": label_col,
            "family": family, "labels": labels, "descriptions": descriptions, "config": config,
            "seed": seed, "header": header, "quoting": quoting, "label_order": "appearance",
            "encoding": encoding, "merge_label_variants": merge_label_variants,
            "drop_duplicates": drop_duplicates}
    if kind == "file" and Path(path).suffix.lower() == ".zip" and Path(path).is_file():
        # the page's upload path (core.tasks.upload): Parquet rewritten as JSONL, a zip of split files
        # unpacked safely; then the same reader as any other file
        from core.tasks.upload import build_task, read_upload  # lazy: pandas
        with tempfile.TemporaryDirectory(prefix="atlas-add-") as tmp:
            up = read_upload(Path(path).name, Path(path).read_bytes(), tmp)
            task = build_task(up, name, text_col, label_col, family=family, descriptions=descriptions, seed=seed,
                              encoding=encoding, merge_label_variants=merge_label_variants,
                              drop_duplicates=drop_duplicates)
        if labels is not None and [_norm_label(x) for x in labels] != task.labels:
            raise TaskError(path, f"labels {task.labels} differ from the given {labels}")
        return save_task(task, origin=src, overwrite=overwrite,
                         extra={"read_with": {"kind": kind, "text_col": text_col, "label_col": label_col,
                                              "seed": seed}})
    task = _load_user(spec)   # raises TaskError on a bad file before anything is written
    # the data is copied: a registered task never depends on the original file staying put; the
    # label order found now is recorded with it (task.labels), so list descriptions stay on the
    # classes they were written for
    return save_task(task, origin=src, overwrite=overwrite,
                     extra={"read_with": {k: spec[k] for k in ("kind", "text_col", "label_col", "config", "seed",
                                                               "header", "quoting", "encoding",
                                                               "merge_label_variants", "drop_duplicates")}})


def _load_user(spec: dict) -> Task:
    if "error" in spec:
        raise TaskError(None, spec["error"])
    if spec.get("kind") == "copy":
        return _load_copy(spec)
    try:
        common = dict(text_col=spec.get("text_col", "text"), label_col=spec.get("label_col", "label"),
                      name=spec["name"], family=spec.get("family"), labels=spec.get("labels"),
                      descriptions=spec.get("descriptions"), seed=int(spec.get("seed", 0)),
                      merge_label_variants=bool(spec.get("merge_label_variants")),
                      drop_duplicates=bool(spec.get("drop_duplicates")))
        path = spec["path"]
    except (KeyError, TypeError, ValueError) as e:
        raise TaskError(spec.get("_file"), f"bad task file ({type(e).__name__}: {e})") from None
    if spec.get("kind", "file") == "hf":
        return load_hf_task(path, spec.get("config"), **common)
    # tasks registered before labels kept their first-appearance order were read sorted
    return load_csv_task(path, **common, header=bool(spec.get("header", True)), quoting=spec.get("quoting"),
                         label_order=spec.get("label_order", "sorted"), encoding=spec.get("encoding"))


# ----------------------------------------------------------------------------- registry API

def list_tasks() -> list[str]:
    """Demo task names (prepared or not), then user tasks under ATLAS_HOME/tasks."""
    return list(DEMO_TASKS) + [n for n in _user_specs() if n not in DEMO_TASKS]


def task_family(name: str) -> str | None:
    if name in DEMO_TASKS:
        return DEMO_TASKS[name]["family"]
    spec = _user_specs().get(name)
    return spec.get("family") if spec else None


def _read_jsonl_split(path: Path, index: dict[str, int]) -> Split:
    texts, texts2, labels = [], [], []
    # what to do about a broken file: a demo task is prepared again, a user task added again
    demo = path.parent.parent == cache_dir() / "tasks"  # not tasks_dir(): that creates the folder (a worker's cache stays empty)
    fix = (f"run `python -m core tasks prepare --force --only {path.parent.name}`" if demo else
           "add the task again (Tasks page or `python -m core tasks add`)")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise TaskError(path, f"cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError:  # a corrupt file is one task's problem, never the page's traceback
        raise TaskError(path, f"corrupt {'prepared ' if demo else ''}task file (not UTF-8 text); {fix}") from None
    for i, line in enumerate(lines, start=1):
        try:
            rec = json.loads(line)
            texts.append(rec["text"])
            labels.append(index[rec["label"]])
            if "text2" in rec:   # a sentence-pair task: every row has it
                texts2.append(rec["text2"])
        except (ValueError, KeyError, TypeError):
            raise TaskError(path, f"line {i}: corrupt {'prepared ' if demo else ''}task file; {fix}") from None
    if texts2 and len(texts2) != len(texts):
        raise TaskError(path, f"{len(texts2)} of {len(texts)} rows have a second text; a pair task needs all")
    return Split(texts, labels, texts2 or None)


def get_task(name: str) -> Task:
    """A demo task (must be prepared) or a registered user task. TaskError otherwise."""
    if name in DEMO_TASKS:
        meta = _read_meta(name)
        folder = tasks_dir() / name
        if meta is None:
            raise TaskError(folder, f"demo task {name!r} is not prepared; run "
                                    f"`python -m core tasks prepare --only {name}`")
        spec = DEMO_TASKS[name]
        index = {c: i for i, c in enumerate(spec["labels"])}
        splits = {s: _read_jsonl_split(folder / f"{s}.jsonl", index) for s in SPLITS}
        return Task(name=name, family=spec["family"], labels=list(spec["labels"]),
                    descriptions=list(spec["descriptions"]), source=meta.get("source", ""),
                    meta=meta, **splits)
    spec = _user_specs().get(name)
    if spec is None:
        raise TaskError(None, f"unknown task {name!r} (known: {', '.join(list_tasks())})")
    return _load_user(spec)


def mixed_task(names: list[str], per_task: int = 200, seed: int = 0, name: str = "generic") -> Task:
    """A multi-task pseudo task (the `generic` control prompt's training data): ``per_task``
    training examples from each task (a quarter of that, at least 20, for validation and
    test), labels = union of task labels named "<task>:<label>", descriptions kept."""
    if not names:
        raise TaskError(None, "mixed_task needs at least one task")
    if per_task < 1:
        raise TaskError(None, f"per_task must be >= 1, got {per_task}")
    rng = random.Random(f"{seed}:mix:{','.join(names)}")
    labels, descriptions = [], []
    parts: dict[str, list[tuple[str, str | None, int]]] = {s: [] for s in SPLITS}
    pair_kinds = set()
    for tname in names:
        t = get_task(tname)
        pair_kinds.add(t.is_pair)
        offset = len(labels)
        labels += [f"{tname}:{x}" for x in t.labels]
        descriptions += list(t.descriptions)
        for s in SPLITS:
            sp = t.split(s)
            k = per_task if s == "train" else max(20, per_task // 4)
            idx = rng.sample(range(len(sp)), min(k, len(sp)))
            parts[s] += [(sp.texts[i], None if sp.texts2 is None else sp.texts2[i], offset + sp.labels[i])
                         for i in idx]
    if len(pair_kinds) > 1:
        raise TaskError(None, "mixed_task: the tasks mix sentence-pair and single-text tasks; mix one kind")
    for s in SPLITS:
        rng.shuffle(parts[s])
    mk = lambda s: Split([t for t, _, _ in parts[s]], [y for _, _, y in parts[s]],  # noqa: E731
                         [t2 for _, t2, _ in parts[s]] if pair_kinds == {True} else None)
    return Task(name=name, family="generic", labels=labels, descriptions=descriptions,
                train=mk("train"), validation=mk("validation"), test=mk("test"),
                source="mix:" + ",".join(names),
                meta={"tasks": list(names), "per_task": per_task, "seed": seed})
