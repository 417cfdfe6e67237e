"""Your own prompts: describe them (task, family, backbone), rename them, delete them.

    python -m core library tag NAME --task sent_tweet --family sentiment --backbone sentence-transformers/all-MiniLM-L6-v2
    python -m core library rename NAME NEW_NAME
    python -m core library delete NAME

Only prompts the Atlas owns change: those under ``ATLAS_HOME/library`` — the ``my library``
uploads and the ``my runs`` outputs (core.collection). The demo, ``ATLAS_LIBRARY`` folders and any
folder the user opened are read-only here (:func:`why_not_editable` says why, in one line).

Where the metadata lives: ``atlas.json`` beside the prompt, i.e. inside its PEFT adapter folder
(core.prompts reads it and it wins over ``base_model_name_or_path``). A plain file (``.pt``,
``.safetensors``, ``.npy``) has no folder to hold it, so describing one stores it as a PEFT
adapter folder (core.prompts.write_prompt: the same float32 values, ``settings["converted_from"]``
names the file it came from) — the one documented way to give a plain file metadata.

Every change is atomic for a reader: metadata goes through a temp file + rename (core.fsutil),
a rename is one ``os.rename``, a delete first renames the entry to a hidden name (the index skips
hidden names) and only then removes it. Runs that used a renamed or deleted prompt keep their
record: the run store keeps the source's name as it was when the run was launched
(``source_names`` in the spec, ``source`` in the results).

The rules are checked before anything is written: a task/family/backbone is short plain text; a
backbone we know by name must have the prompt's width (``KNOWN_DIMS``), "unknown" keeps the prompt
in its own ``unknown:d<d>`` group; a new name is one plain path component not already taken.
"""
from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from core.config import user_library_dir
from core.fsutil import atomic_write_json
from core.library import add_upload, copy_prompt, index_library
from core.safetext import control_problem, md_code, visible
from core import safewrite as W
from core.prompts import ADAPTER_CONFIG, KNOWN_DIMS, METADATA, PromptError, SoftPrompt

log = logging.getLogger(__name__)
FIELDS = ("task", "family", "backbone")
UNKNOWN = "unknown"          # the backbone value that means "no model we can name": unknown:d<d>
MAX_TEXT = 100
_NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+\- ]*$")
_TEXT_BAD = re.compile(r"[\x00-\x1f\x7f]")


class EditError(ValueError):
    """A change that was refused; ``str(e)`` names the prompt and the problem in one line."""


@dataclass(frozen=True)
class PromptMeta:
    """What a user may say about a prompt. A field left None is not changed; ``backbone="unknown"``
    sets it to none (the prompt's own ``unknown:d<d>`` group)."""

    task: str | None = None
    family: str | None = None
    backbone: str | None = None

    def __post_init__(self):
        for f in FIELDS:
            v = getattr(self, f)
            if v is None:
                continue
            if not isinstance(v, str):
                raise EditError(f"{f} must be text, got {type(v).__name__}")
            if bad := control_problem(v):
                raise EditError(f"{f} must be one line of at most {MAX_TEXT} characters of plain text; it {bad}")
            v = v.strip()
            if not v:
                raise EditError(f"{f} is empty (leave it out to keep the current value)")
            if len(v) > MAX_TEXT or _TEXT_BAD.search(v):
                raise EditError(f"{f} must be one line of at most {MAX_TEXT} characters")
            object.__setattr__(self, f, v)

    def changes(self) -> dict[str, str | None]:
        """The atlas.json keys to write: only the fields given; backbone "unknown" -> None."""
        out: dict[str, str | None] = {}
        for f in FIELDS:
            v = getattr(self, f)
            if v is not None:
                out[f] = None if (f == "backbone" and v.lower() == UNKNOWN) else v
        return out

    def check_width(self, d: int, what: str) -> None:
        """A backbone we know by name must have the prompt's token width."""
        b = self.changes().get("backbone")
        known = KNOWN_DIMS.get(b or "")
        if known is not None and known != d:
            raise EditError(f"{what}: backbone {b} has width {known}, the prompt's is {d}; choose a backbone of "
                            f"width {d} or '{UNKNOWN}'")

    def is_empty(self) -> bool:
        return not self.changes()


def backbones_for(d: int) -> list[str]:
    """The backbones a [L, d] prompt may be set to: the known ones of width d, then 'unknown'."""
    return [b for b, w in KNOWN_DIMS.items() if w == d] + [UNKNOWN]


# --------------------------------------------------------------------------- where a prompt lives
def roots() -> tuple[Path, Path]:
    """The folders whose prompts may change: ``my runs`` (checked first: it lies inside) and ``my library``."""
    lib = user_library_dir().resolve()
    return lib / "runs", lib


def _owner(origin: Path) -> Path | None:
    for r in roots():
        if origin.is_relative_to(r) and origin != r:
            return r
    return None


def entry_of(prompt: SoftPrompt) -> Path:
    """The file or folder directly under its collection's folder that holds ``prompt``: what a
    rename or a delete acts on. Raises EditError when the prompt is not one the Atlas may change."""
    reason = why_not_editable(prompt)
    if reason:
        raise EditError(reason)
    origin = Path(prompt.origin).resolve()
    root = _owner(origin)
    return root / origin.relative_to(root).parts[0]


def why_not_editable(prompt: SoftPrompt) -> str | None:
    """None when ``prompt`` may be described, renamed and deleted; else one line saying why not."""
    if not prompt.origin:
        return f"{prompt.name}: not read from a file, nothing to change"
    origin = Path(prompt.origin).resolve()
    if _owner(origin) is not None:
        return None
    from core.config import demo_dir

    if origin.is_relative_to(demo_dir().resolve()):
        where = "the demo, which the Atlas never changes"
    else:
        where = "a folder you opened or added (ATLAS_LIBRARY), which the Atlas only reads"
    return (f"{prompt.name} is in {where}; only `my library` and `my runs` "
            f"({user_library_dir()}) can be changed — upload it there first")


def _gone(prompt: SoftPrompt, path: Path) -> None:
    """Under the name's lock: the prompt must still be where the caller read it (a delete or rename
    that ran first is reported, never overwritten or resurrected)."""
    if not (path.exists() or path.is_symlink()):
        raise EditError(f"{prompt.name}: no longer in the library (deleted or renamed meanwhile); reload the page")


# --------------------------------------------------------------------------- describe
def _write_meta(folder: Path, changes: dict) -> None:
    meta_file = folder / METADATA
    meta = {}
    if meta_file.is_file():
        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            raise EditError(f"{meta_file}: not valid JSON; fix or remove it first") from None
        if not isinstance(meta, dict):
            raise EditError(f"{meta_file}: must hold a JSON object; fix or remove it first")
    meta.update(changes)
    atomic_write_json(meta_file, meta, indent=2, default=str)


def _as_adapter(prompt: SoftPrompt, file: Path, changes: dict, dest: Path, name: str) -> Path:
    """Write a plain-file prompt as a PEFT folder ``dest`` holding its metadata (same values).
    ``name``: the name it will have once moved in place — ``dest`` is a hidden temp folder
    (``.atlas-new-…``), which must never reach atlas.json."""
    from core.prompts import write_prompt  # lazy: it imports peft

    q = copy_prompt(prompt)
    for k, v in changes.items():
        setattr(q, k, v)
    q.name = name
    # the reading notes were about the plain file; "no model named" is no longer true once described
    kept = [n for n in str(q.settings.pop("note", "") or "").split("; ")
            if n and not n.startswith("no model named for this file")]
    if kept:
        q.settings["note"] = "; ".join(kept)
    q.settings["converted_from"] = f"{file.name} ({prompt.fmt}): same values, stored as a PEFT adapter " \
                                   f"so that atlas.json can describe it"
    try:
        return write_prompt(q, dest, base_model=changes.get("backbone") or prompt.backbone)
    except PromptError as e:
        raise EditError(f"{prompt.name}: {e.problem}") from None


def describe_entry(entry: Path, prompts: list[SoftPrompt], meta: PromptMeta) -> Path:
    """Apply ``meta`` to the prompts of one entry (a file or folder under a library folder, or a
    staged upload); returns the entry's path afterwards (a plain file becomes ``<stem>/``)."""
    changes = meta.changes()
    if not changes:
        return entry
    for p in prompts:
        meta.check_width(p.d, p.name)
    folders = sorted({Path(p.origin) for p in prompts if p.fmt == "peft"})
    files = [p for p in prompts if p.fmt != "peft"]
    if files and (folders or len(files) > 1):
        raise EditError(f"{entry.name}: holds {len(prompts)} prompts, some plain files; describe them one "
                        "at a time (upload each on its own)")
    if not files:
        for f in folders:
            _write_meta(f, changes)
        return entry
    [p] = files
    file = Path(p.origin)
    stem = Path(entry.name).stem if entry.is_file() else entry.name
    dest = entry.parent / stem
    if dest.exists() and dest != entry:
        raise EditError(f"{entry.name}: describing it stores it as the adapter folder {stem}/, "
                        "and that name is taken; rename one of them first")
    # the steps share one operation id, so a start after a crash at any step completes or rolls back
    # the change (core.safewrite.recover): never both copies hidden and the prompt gone
    op = W.new_op()
    tmp = W.hidden(dest, "new", op)
    try:
        _as_adapter(p, file, changes, tmp, name=dest.name)
    except BaseException:
        W.remove(tmp)
        raise
    trash = W.hidden(entry, "old", op)
    os.rename(entry, trash)
    try:
        os.rename(tmp, dest)
    except OSError:
        os.rename(trash, entry)
        W.remove(tmp)
        raise
    W.remove(trash)
    return dest


def _entry_prompts(entry: Path) -> list[SoftPrompt]:
    index = index_library(entry)
    if index.problems:
        raise EditError(f"{entry.name}: {index.problems[0].problem}")
    return list(index.prompts.values())


def _contents(entry: Path) -> list[Path]:
    """Resolved paths of every prompt and every unreadable file under ``entry``."""
    index = index_library(entry)
    return [Path(q.origin).resolve() for q in index.prompts.values()] + [Path(e.path).resolve()
                                                                        for e in index.problems]


def describe(prompt: SoftPrompt, meta: PromptMeta) -> Path:
    """Set task / family / backbone of one prompt of ``my library`` or ``my runs`` (its atlas.json);
    returns the path that now holds it (a plain file becomes an adapter folder, see describe_entry)."""
    entry_of(prompt)  # ours to change?
    if meta.family is None and not prompt.family:  # a task without a family: the registered task's family
        meta = with_family(meta)
    meta.check_width(prompt.d, prompt.name)
    origin = Path(prompt.origin).resolve()
    if prompt.fmt == "peft":  # its own adapter folder only, never a neighbour's
        with W.locked(origin):
            _gone(prompt, origin)  # else atlas.json would recreate a deleted folder
            if meta.changes():
                _write_meta(origin, meta.changes())
        return origin
    unit = unit_of(prompt)  # the entry when the file is alone in it (thunlp layout), else the file
    with W.locked(unit, unit.parent / Path(unit.name).stem):
        _gone(prompt, unit)
        return describe_entry(unit, _entry_prompts(unit), meta)


# --------------------------------------------------------------------------- rename / delete
def name_after(prompt: SoftPrompt, path: Path) -> str:
    """The library name ``prompt`` has once its file/folder is ``path`` (after describe or rename):
    its last path component replaced, a seq2seq part kept (``x/encoder`` -> ``y/encoder``)."""
    part = prompt.settings.get("part")
    base = prompt.name[: -len(part) - 1] if part and prompt.name.endswith("/" + part) else prompt.name
    head = base.rsplit("/", 1)[0] + "/" if "/" in base else ""
    return head + Path(path).name + (f"/{part}" if part else "")


def check_name(name: str) -> str:
    """A new prompt name: one plain path component (letters, digits, ``. _ + - `` and spaces)."""
    if bad := control_problem(name or ""):
        raise EditError(f"{visible(name)!r}: the new name {bad}")
    n = (name or "").strip()
    if not n:
        raise EditError("the new name is empty")
    if len(n) > MAX_TEXT or not _NAME_OK.match(n) or n in (".", ".."):
        raise EditError(f"{n[:MAX_TEXT]!r}: a name is at most {MAX_TEXT} letters, digits, spaces and . _ + -, "
                        "starting with a letter or digit")
    return n


def unit_of(prompt: SoftPrompt, *, for_rename: bool = False) -> Path:
    """What a rename or delete of ``prompt`` acts on, never a folder that also holds other prompts
    (a seq2seq adapter's encoder and decoder count as one prompt here).

    delete: its whole entry when that holds only this prompt (no empty folder left), else its own
    file or adapter folder. rename: the path its name comes from — its file or adapter folder, or
    the folder a thunlp ``<Task>Prompt<Backbone>/task_prompt`` file is named by."""
    entry = entry_of(prompt)
    origin = Path(prompt.origin).resolve()
    others = [o for o in _contents(entry) if o != origin]
    if for_rename:
        part = prompt.settings.get("part")
        name = prompt.name[: -len(part) - 1] if part and prompt.name.endswith("/" + part) else prompt.name
        target = origin if name.split("/")[-1].rstrip("'") == origin.name or origin == entry else origin.parent
    else:
        target = entry if not others else origin
    inside = [o for o in others if o.is_relative_to(target)]
    if inside:
        raise EditError(f"{prompt.name}: {target.name} also holds {len(inside)} other prompt(s) "
                        f"({', '.join(sorted(o.name for o in inside)[:3])}); change those first")
    return target


def rename(prompt: SoftPrompt, new_name: str) -> Path:
    """Rename the prompt's file or folder (a plain file keeps its suffix when the new name has none)."""
    new = check_name(new_name)
    if prompt.fmt != "peft" and prompt.settings.get("thunlp_backbone"):
        raise EditError(f"{prompt.name}: its task and backbone come from its folder name (thunlp's "
                        "<Task>Prompt<Backbone> layout), which a rename would lose; save its description first "
                        "(it is then kept in atlas.json), then rename it")
    entry = unit_of(prompt, for_rename=True)
    if entry.is_file() and entry.suffix and not Path(new).suffix:
        new += entry.suffix
    dest = entry.parent / new
    if dest == entry:
        return entry
    with W.locked(entry, dest):
        _gone(prompt, entry)
        return _rename(prompt, entry, dest, new)


def _rename(prompt: SoftPrompt, entry: Path, dest: Path, new: str) -> Path:
    if dest.exists() or dest.is_symlink():
        raise EditError(f"{prompt.name}: {new} is already taken in {entry.parent.name}")
    os.rename(entry, dest)
    _runs_moved(entry, dest)
    meta_file = dest / METADATA
    if (dest / ADAPTER_CONFIG).is_file() and meta_file.is_file():
        try:
            _write_meta(dest, {"name": dest.name})  # runs launched from this path record the new name
        except (EditError, OSError):
            os.rename(dest, entry)
            raise
    return dest


def _runs_moved(old: Path, new: Path) -> int:
    """Finished runs whose saved prompt was ``old`` now point at ``new`` (a renamed ``my runs`` prompt);
    their scores and source names are untouched. Returns how many runs were updated."""
    from core.config import atlas_home

    db = atlas_home() / "runs.db"  # the run store's file (core.runs.RunStore's default): none, nothing to do
    if not db.is_file():
        return 0
    from core.runs.store import RunStore

    try:
        store, n = RunStore(db), 0
    except Exception as e:  # noqa: BLE001 -- a corrupt store: the prompt is renamed, its runs keep the old path
        log.warning("runs.db not read (%s): runs of %s keep its old path", e, old.name)
        return 0
    try:
        for r in store.list_runs(status=("finished",)):
            p = r.get("prompt_path")
            if p and Path(p).absolute().parent.resolve() / Path(p).name == old:
                store.update_run(r["run_id"], prompt_path=str(new))
                n += 1
    finally:
        store.close()
    return n


def delete(prompt: SoftPrompt) -> Path:
    """Remove the prompt's file or folder (see unit_of); returns the path it had. Runs that used it keep
    their record."""
    entry = unit_of(prompt)
    with W.locked(entry):
        _gone(prompt, entry)
        trash = W.hidden(entry, "deleted", W.new_op())
        os.rename(entry, trash)  # gone for every reader at once; then removed (a crash: recover() ends it)
        W.remove(trash)
    return entry


# --------------------------------------------------------------------------- uploads
def preparer(meta: PromptMeta):
    """The ``prepare`` hook of core.library.add_upload that writes ``meta`` into each staged entry."""
    if meta.is_empty():
        return None
    return lambda entry, prompts: describe_entry(entry, prompts, meta)


def upload(filename: str, data: bytes, dest, meta: PromptMeta | None = None, **kw) -> list[SoftPrompt]:
    """core.library.add_upload with the user's task / family / backbone written before the move."""
    return add_upload(filename, data, dest, prepare=preparer(meta) if meta else None, **kw)


# --------------------------------------------------------------------------- CLI (python -m core library ...)
def find(name: str) -> SoftPrompt:
    """A prompt of ``my library`` or ``my runs`` by its index name."""
    from core import collection as C

    index = C.index([C.LIBRARY, C.RUNS])
    if name in index.prompts:
        return index.prompts[name]
    raise EditError(f"{name!r}: no prompt of that name in my library or my runs ({user_library_dir()})")


def cli(command: str, argv: list[str]) -> int:
    """``python -m core library``: tag / rename / delete here, index / add in core.library."""
    import argparse
    import sys

    if argv and argv[0] == "recover":  # what a server does when it starts (core.safewrite)
        said = W.recover()
        print("\n".join(said) if said else "nothing to recover")
        return 0
    if not argv or argv[0] not in ("tag", "rename", "delete"):
        from core import library
        return library.cli(command, argv, make_prepare=lambda t, f, b: preparer(with_family(PromptMeta(t, f, b))))
    ap = argparse.ArgumentParser(prog=f"python -m core {command}", description="Your own prompts (my library, "
                                 "my runs): describe, rename, delete.")
    sub = ap.add_subparsers(dest="action", required=True)
    tag = sub.add_parser("tag", help="set task, family and backbone of a prompt of my library / my runs")
    tag.add_argument("name")
    for f in FIELDS:
        tag.add_argument(f"--{f}", default=None, help=f"backbone name, or '{UNKNOWN}'" if f == "backbone" else None)
    ren = sub.add_parser("rename", help="rename a prompt of my library / my runs")
    ren.add_argument("name")
    ren.add_argument("new_name")
    rm = sub.add_parser("delete", help="delete a prompt of my library / my runs (runs that used it keep their record)")
    rm.add_argument("name")
    args = ap.parse_args(argv)
    try:
        p = find(args.name)
        if args.action == "tag":
            meta = PromptMeta(args.task, args.family, args.backbone)
            if meta.is_empty():
                raise EditError("nothing to set: give --task, --family or --backbone")
            print(f"described {args.name}: {describe(p, meta)}")
        elif args.action == "rename":
            print(f"renamed {args.name} -> {rename(p, args.new_name)}")
        else:
            print(f"deleted {args.name} ({delete(p)})")
    except (EditError, PromptError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


# --------------------------------------------------------------------------- what a page offers
def suggestions(index=None) -> tuple[list[str], list[str]]:
    """(tasks, families) to offer: the registered tasks and their families, plus those the
    prompts of ``index`` (a core.library.LibraryIndex) already carry. Any other text is accepted too."""
    from core.prompts.meta import THUNLP_FAMILIES

    try:
        from core.tasks import list_tasks, task_family
        tasks = list(list_tasks())
        families = {task_family(t) for t in tasks}
    except Exception:  # a broken user task spec must not take the Library page down
        tasks, families = [], set()
    families |= set(THUNLP_FAMILIES.values())
    if index is not None and index.prompts:
        t = index.table
        tasks += [x for x in t["task"].dropna().unique() if x not in tasks]
        families |= set(t["family"].dropna().unique())
    return sorted(dict.fromkeys(tasks)), sorted(f for f in families if f)


def with_family(meta: PromptMeta) -> PromptMeta:
    """A task given without a family takes the registered task's family (core.tasks), if any."""
    if meta.task is None or meta.family is not None:
        return meta
    try:
        from core.tasks import task_family
        fam = task_family(meta.task)
    except Exception:
        fam = None
    return PromptMeta(meta.task, fam, meta.backbone) if fam else meta


# --------------------------------------------------------------------------- a lone prompt
def backbones_here(d: int) -> list[tuple[str, str]]:
    """(name, where) of the backbones this machine can load that have token width ``d``: the bundled
    MiniLM, then the Hugging Face cache's models whose ``config.json`` says ``hidden_size`` / ``d_model``
    = d (read as JSON: no model is loaded, nothing is downloaded)."""
    from core.config import DEFAULT_BACKBONE

    out = [(DEFAULT_BACKBONE, "bundled")] if KNOWN_DIMS.get(DEFAULT_BACKBONE) == d else []
    try:
        from huggingface_hub.constants import HF_HUB_CACHE
        configs = sorted(Path(HF_HUB_CACHE).glob("models--*/snapshots/*/config.json"))
    except Exception:  # noqa: BLE001 -- no cache, no hub package: nothing cached
        configs = []
    for cfg in configs:
        name = cfg.parents[2].name[len("models--"):].replace("--", "/")
        try:
            c = json.loads(cfg.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        width = c.get("hidden_size") or c.get("d_model") or c.get("n_embd") if isinstance(c, dict) else None
        if width == d and name not in {n for n, _ in out}:
            out.append((name, "cached"))
    return out


def lone_hint(prompt: SoftPrompt, group: str) -> str:
    """What to tell about a prompt that is alone in its backbone group: which backbones here have its
    width, and how to describe it so that it joins their group and can be compared (Markdown, one line;
    the stored group, backbone and name are code spans: core.safetext.md_code)."""
    here = backbones_here(prompt.d)
    lead = f"No other prompt in {md_code(group)} to compare it with."
    if prompt.backbone:
        return (f"{lead} Prompts of other backbones are never compared; add prompts of {md_code(prompt.backbone)} "
                "to see its neighbours.")
    if not here:
        return (f"{lead} No backbone on this machine has width {prompt.d}; it is compared only with other "
                f"width-{prompt.d} prompts whose backbone is unknown.")
    names = ", ".join(f"{md_code(n)} ({w})" for n, w in here)
    reason = why_not_editable(prompt)
    how = (f"upload it to your library, then describe it" if reason else
           "describe it (✏️ *Describe, rename or delete this prompt* below → Backbone)")
    return (f"{lead} Width {prompt.d} is the width of {names}: if it was trained for one of them, {how} and it "
            f"joins that model's group; from a terminal: "
            f"{md_code(f'python -m core library tag {prompt.name} --backbone {here[0][0]}')}.")

