"""A folder of soft prompts as one table, grouped by backbone; safe uploads.

    python -m core library index DIR... [--csv]
    python -m core library add FILE_OR_FOLDER... [--dest DIR]
    python -m core library tag|rename|delete NAME ...   (your own prompts: core.userlib)

:func:`index_library` walks folders recursively, within bounds (core.access.Walk: a
file-count and a depth cap, no links out of the folder, never /proc /sys /dev; what it
did not read is listed in ``notes``): a PEFT adapter folder is one
entry (seq2seq adapters give an encoder and a decoder prompt), every other file
is sniffed by content (core.prompts); metadata and docs (``atlas.json``,
``*.json``, README, LICENSE, hidden files, ``__MACOSX/`` and ``._*`` junk) are skipped
quietly; a PEFT save folder gives every adapter in it (default at the top, the others in
sub-folders). A bad file, or one that is not a prompt (what it looks like is said), is
listed in ``problems`` and the walk goes on. Reads are cached in-process by
(path, size, mtime), so indexing an unchanged folder again is fast.

Prompts are grouped by backbone, never by shape alone: thunlp's Roberta and
Bert prompts are both ``[100, 768]`` but live in different embedding spaces.
A backbone whose prompts have several token dims gets one group per dim
(``backbone:d``); prompts with no known backbone go to ``unknown:d<dim>``.

:func:`add_upload` adds one uploaded file (any prompt format) or a ``.zip``
holding a PEFT adapter folder to a library folder: it is unpacked and validated
in a temporary folder first (no absolute or ``..`` paths, no links, at most
16 members, a cap on the unpacked size checked on the declared sizes and on
the bytes actually read) and only then renamed into place; on any problem the
library is left byte-for-byte unchanged.
"""
from __future__ import annotations

import os
import shutil
import stat
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field, fields
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from core.access import Walk, is_system_path
from core.fsutil import lines_hash
from core.safetext import control_problem, visible
from core import safewrite
from core.prompts.meta import HF_CACHE_INTERNALS, HF_CACHE_REPO, group_key, hf_cache_repo, hf_cache_snapshot
from core.prompts import (ADAPTER_CONFIG, ADAPTER_WEIGHTS, METADATA, PromptError, SoftPrompt, human_bytes,
                          max_prompt_bytes, peft_adapters, read_prompts)

MAX_ZIP_MEMBERS = 16
MAX_UPLOAD_FILES = 32   # files per upload from a page; the rest of a bigger upload is refused
TABLE_COLUMNS = ["name", "task", "family", "backbone", "group", "L", "d", "norm", "method", "score",
                 "sources", "origin", "fmt"]
_SKIP_SUFFIXES = {".json", ".md", ".txt", ".rst", ".yaml", ".yml", ".py", ".csv", ".cfg", ".toml", ".lock"}
_SKIP_PREFIXES = ("readme", "license", "licence", "notice", "copying")

# (kind, path, fingerprint) -> list[SoftPrompt] | PromptError
_CACHE: dict[tuple, list[SoftPrompt] | PromptError] = {}


# archive and OS junk: macOS Finder zips add __MACOSX/ and AppleDouble "._*" files
_JUNK = {"__MACOSX", "__pycache__", ".DS_Store", "Thumbs.db", "desktop.ini"}


def _is_junk(name: str) -> bool:
    return name in _JUNK or name.startswith("._")


def _skip(name: str) -> bool:
    low = name.lower()
    return (name.startswith(".") or Path(low).suffix in _SKIP_SUFFIXES or low.startswith(_SKIP_PREFIXES)
            or _is_junk(name))


def _stat_key(paths: list[Path]) -> tuple:
    out = []
    for p in paths:
        try:
            s = p.stat()
            out.append((p.name, s.st_size, s.st_mtime_ns))
        except OSError:
            out.append((p.name, None, None))
    return tuple(out)


def _read_cached(path: Path, kind: str, expected_dim: int | None) -> list[SoftPrompt]:
    if kind == "peft":
        fp = _stat_key([path / ADAPTER_CONFIG, path / METADATA, *(path / w for w in ADAPTER_WEIGHTS)])
    else:
        fp = _stat_key([path])
    key = (str(path), fp, expected_dim)
    hit = _CACHE.get(key)
    if hit is None:
        try:
            # one adapter folder at a time: the sub-adapters of a PEFT save folder are read (and
            # fail) on their own, see index_library
            hit = read_prompts(path, expected_dim=expected_dim, sub_adapters=False)
        except PromptError as e:
            # kept without a traceback: a cached exception's frames would keep its callers' locals
            # alive (an upload's bytes in add_upload: +1x the file per refused upload, bench/upload_memory.py)
            hit = PromptError(e.path, e.problem)
        if len(_CACHE) > 20_000:
            _CACHE.clear()
        _CACHE[key] = hit
    if isinstance(hit, PromptError):
        raise PromptError(hit.path, hit.problem)  # a fresh one: raising the cached one would give it frames
    # fresh SoftPrompt objects (shared tensors): callers rename them per library
    return [copy_prompt(p) for p in hit]


def _walk(root: Path, notes: list[str] | None = None, exclude: frozenset[Path] = frozenset()):
    """(path, kind) for every candidate under root: kind 'peft' for adapter folders, else 'file'.

    Sub-folders in ``exclude`` (absolute paths) are not entered: another collection owns them
    (core.collection: ``my library`` is ATLAS_HOME/library without its ``runs/``).

    Bounded (core.access.Walk: file-count and depth caps, no links out of ``root``, never
    /proc /sys /dev); what it did not read is appended to ``notes``.
    """
    notes = [] if notes is None else notes
    if is_system_path(root):
        notes.append(f"{root}: a system folder (/proc, /sys, /dev) is never read")
        return
    if root.is_file():
        yield root, "file"
        return
    if (root / ADAPTER_CONFIG).is_file():
        yield root, "peft"
        return
    walk = Walk(root)
    for here, dirnames, filenames in walk:
        keep = []
        for d in _cache_dirs(here, dirnames):
            if _skip(d) or (exclude and (here / d).absolute() in exclude):
                continue
            if (here / d / ADAPTER_CONFIG).is_file():
                yield here / d, "peft"
            else:
                keep.append(d)
        dirnames[:] = keep
        for f in filenames:
            if not _skip(f):
                yield here / f, "file"
    notes.extend(walk.notes)


def _cache_dirs(here: Path, dirnames: list[str]) -> list[str]:
    """The sub-folders of ``here`` to walk, Hugging Face cache layouts read once per adapter: in a
    ``models--org--name`` folder, ``blobs/`` (the same files again under their hashes) and ``refs/``
    (commit pointers) are not prompts; of its ``snapshots/``, the one refs/main serves (all when none is
    served). Any other folder: all of them."""
    if HF_CACHE_REPO.match(here.name):
        return [d for d in dirnames if d not in HF_CACHE_INTERNALS]
    if here.name == "snapshots" and HF_CACHE_REPO.match(here.parent.name):
        served = hf_cache_snapshot(here.parent)
        if served is not None and served.name in dirnames:
            return [served.name]
    return dirnames


def cache_adapter_name(path: Path) -> str | None:
    """``org/name`` for an adapter folder that is a snapshot of the Hugging Face cache
    (``models--org--name/snapshots/<commit>``), else None: its name, never the commit hash."""
    if path.parent.name == "snapshots":
        found = hf_cache_repo(path)
        if found and found[0] == path.parent.parent:
            return found[1]
    return None


def copy_prompt(p: SoftPrompt) -> SoftPrompt:
    """A copy with its own values, sources and settings (without touching torch)."""
    kw = {f.name: getattr(p, f.name) for f in fields(SoftPrompt) if f.name != "tensor"}
    return SoftPrompt(tensor=p.values, **{**kw, "sources": list(p.sources), "settings": dict(p.settings)})


@dataclass
class LibraryIndex:
    """Prompts of one or more folders, keyed by a unique name, plus the problems met."""

    prompts: dict[str, SoftPrompt] = field(default_factory=dict)
    problems: list[PromptError] = field(default_factory=list)
    roots: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what a bounded walk did not read (core.access.Walk)

    def __post_init__(self):  # derived views, computed once the index is complete
        self._groups = None
        self._table = None
        self._group_map = None

    def _group_of(self) -> dict[str, str]:
        if getattr(self, "_group_map", None) is None or len(self._group_map) != len(self.prompts):
            dims: dict[str | None, set[int]] = {}
            for p in self.prompts.values():
                dims.setdefault(p.backbone, set()).add(p.d)
            self._group_map = {n: group_key(p.backbone, p.d, len(dims[p.backbone]) > 1)
                               for n, p in self.prompts.items()}
        return self._group_map

    def group_of(self, name: str) -> str:
        return self._group_of()[name]

    def groups(self) -> dict[str, list[str]]:
        """group key -> prompt names (sorted); a group never mixes backbones or token dims."""
        if self._groups is None:
            out: dict[str, list[str]] = {}
            for name, g in self._group_of().items():
                out.setdefault(g, []).append(name)
            self._groups = {g: sorted(v) for g, v in sorted(out.items())}
        return self._groups

    def group_prompts(self, group: str) -> list[SoftPrompt]:
        return [self.prompts[n] for n in self.groups().get(group, [])]

    @property
    def table(self) -> pd.DataFrame:
        """One row per prompt; ``norm`` is the mean L2 norm of its tokens."""
        if self._table is None:
            groups = self._group_of()
            rows = [{"name": n, "task": p.task, "family": p.family, "backbone": p.backbone, "group": groups[n],
                     "L": p.L, "d": p.d, "norm": float(np.linalg.norm(p.values, axis=1).mean()), "method": p.method,
                     "score": p.score, "sources": ", ".join(p.sources), "origin": p.origin, "fmt": p.fmt}
                    for n, p in sorted(self.prompts.items())]
            table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
            for col in ("task", "family", "backbone", "method"):  # missing text stays None, never NaN ("nan")
                table[col] = table[col].astype(object).where(table[col].notna(), None)
            self._table = table
        return self._table

    def content_hash(self) -> str:
        """Changes when any prompt's name, backbone or values change (cache key of the pages' matrices).

        Remembered, like ``table``: a page asks on every rerun and hashing 3,000 prompts costs
        ~0.1-0.3 s. The memo is dropped when a prompt is added, removed, renamed, re-pointed to
        another backbone or given new values (``p.tensor = ...``); values edited in place are not
        seen — an index is a read model of the files (pages share one: never edit it in place).
        """
        # the memo holds the prompts and their arrays themselves (compared by identity), so an id
        # cannot be reused by a new array while the memo lives
        now = [(n, p, p.values, p.backbone) for n, p in self.prompts.items()]
        memo = getattr(self, "_hash_memo", None)
        if memo is None or len(memo[0]) != len(now) or any(
                a[0] != b[0] or a[1] is not b[1] or a[2] is not b[2] or a[3] != b[3] for a, b in zip(memo[0], now)):
            memo = self._hash_memo = (now, lines_hash(f"{n}\0{p.backbone}\0{p.content_hash()}\n"
                                                      for n, p in sorted(self.prompts.items())))
        return memo[1]

    def nearest(self, name: str, k: int = 10, *, metric) -> pd.DataFrame:
        """The k prompts of the same group most similar to ``name`` (columns name, task, <metric>).

        metric: a core.metrics matrix function, prompts -> [N, N] (e.g. core.metrics.e_avg); the
        caller passes it because core.metrics sits above this module (it indexes libraries).
        """
        others = [q for q in self.group_prompts(self.group_of(name)) if q.name != name]
        col = getattr(metric, "__name__", "similarity")
        sims = np.asarray(metric([self.prompts[name], *others]))[0, 1:] if others else []
        df = pd.DataFrame({"name": [q.name for q in others], "task": [q.task for q in others],
                           col: np.asarray(sims, dtype=float)}, columns=["name", "task", col])
        return df.sort_values(col, ascending=False, kind="stable").head(k).reset_index(drop=True)

    def closeness(self, name: str, *, metric) -> str | None:
        """One sentence saying whether anything in ``name``'s group is close to it, judged against the
        spread of that group's similarities: the pairs of the *other* prompts of the group (their
        median and range). Nothing is close when its nearest neighbour is below the median pair —
        a ranked list of cosines from 0.04 down to -0.09 is then no ranking of neighbours.
        None when there are fewer than 3 other prompts (too few pairs to have a spread)."""
        others = [q for q in self.group_prompts(self.group_of(name)) if q.name != name]
        if len(others) < 3:
            return None
        m = np.asarray(metric([self.prompts[name], *others]), dtype=float)
        sims = m[0, 1:]
        pairs = m[1:, 1:][np.triu_indices(len(others), k=1)]
        pairs = pairs[np.isfinite(pairs)]
        if not len(pairs) or not np.isfinite(sims).any():
            return None
        best, med = float(np.nanmax(sims)), float(np.median(pairs))
        spread = f"the group's other pairs range {pairs.min():.2f} to {pairs.max():.2f}, median {med:.2f}"
        if best < med:
            return f"Nothing here is close: the nearest ({best:.2f}) is below the median of the group's pairs ({spread})."
        n_close = int((sims >= med).sum())
        return (f"{n_close} of {len(others)} at or above the median of the group's pairs ({spread}); "
                "the rest are no closer than a typical pair.")


def _add_found(index: LibraryIndex, root: Path, path: Path, kind: str, expected_dim: int | None) -> None:
    """Read one found file or adapter folder into ``index`` (a problem is recorded, not raised)."""
    try:
        prompts = _read_cached(path, kind, expected_dim)
    except PromptError as e:
        index.problems.append(e)
        return
    if path == root:
        rel = cache_adapter_name(path) or path.name
    elif root.is_dir() and (root / ADAPTER_CONFIG).is_file():  # a sub-adapter of the root's save folder
        rel = f"{cache_adapter_name(root) or root.name}/{path.relative_to(root).as_posix()}"
    else:
        rel = path.relative_to(root).as_posix()
        cached = cache_adapter_name(path)
        if cached:  # <cache>/models--org--name/snapshots/<commit> -> <cache>/org/name
            above = path.parent.parent.parent.relative_to(root).as_posix() if path.parent.parent != root else "."
            rel = cached if above == "." else f"{above}/{cached}"
    if kind == "file" and prompts[0].settings.get("thunlp_backbone"):
        rel = rel.rsplit("/", 1)[0] if "/" in rel else prompts[0].name
    for p in prompts:
        name = rel + ("/" + p.settings["part"] if p.settings.get("part") else "")
        if name in index.prompts:
            name = f"{root.name}/{name}"
        while name in index.prompts:
            name += "'"
        p.name = name
        index.prompts[name] = p


def index_library(root: Path | str | list, *, expected_dim: int | None = None,
                  exclude: tuple | list = ()) -> LibraryIndex:
    """Index one folder/file or a list of them (missing roots are skipped quietly).

    Names are unique: the path relative to its root (thunlp's
    ``<Task>Prompt<Backbone>/task_prompt`` is named by its folder, a seq2seq
    adapter gives ``name/encoder`` and ``name/decoder``); a name already taken
    by an earlier root gets the root's folder name in front. Folders in ``exclude`` are
    not entered (a root that is itself excluded is still read when it is asked for).
    """
    roots = [root] if isinstance(root, (str, Path)) else list(root)
    skip = frozenset(Path(e).expanduser().absolute() for e in exclude)
    index = LibraryIndex(roots=[str(r) for r in roots])
    for r in roots:
        r = Path(r).expanduser()
        if not r.exists():
            continue
        for found, kind in _walk(r, index.notes, skip):
            # a PEFT save folder holds the default adapter at its top and the others in sub-folders
            for path in ([a for a, _ in peft_adapters(found)] if kind == "peft" else [found]):
                _add_found(index, r, path, kind, expected_dim)
    return index


# --------------------------------------------------------------------------- uploads

def _is_adapter_zip(data: bytes) -> bool:
    """A zip that is not itself a torch.save file or an .npz (those are single prompt files)."""
    if not data.startswith(b"PK"):
        return False
    try:
        import io
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            names = z.namelist()
    except zipfile.BadZipFile:
        return False  # let core.prompts say what is wrong with it
    if any(n.endswith("data.pkl") for n in names) or (names and all(n.endswith(".npy") for n in names)):
        return False
    return True


def _safe_extract(data: bytes, into: Path, max_bytes: int) -> None:
    """Unpack an uploaded zip, refusing anything that could escape ``into`` or blow up."""
    import io

    with zipfile.ZipFile(io.BytesIO(data)) as z:
        infos = z.infolist()
        if len(infos) > MAX_ZIP_MEMBERS:
            raise ValueError(f"zip holds {len(infos)} members, more than {MAX_ZIP_MEMBERS}")
        declared = 0
        for info in infos:
            name = info.filename
            parts = PurePosixPath(name.replace("\\", "/")).parts
            # a newline or a bidi override in a name misleads every page; zipfile cuts a name at NUL
            # (orig_filename keeps it), which would add the prompt under another name
            if bad := control_problem(info.orig_filename):
                raise ValueError(f"zip member {info.orig_filename!r} {bad}")
            if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
                raise ValueError(f"zip member {name!r} has an absolute path")
            if ".." in parts:
                raise ValueError(f"zip member {name!r} has a '..' path")
            if stat.S_ISLNK(info.external_attr >> 16):
                raise ValueError(f"zip member {name!r} is a symbolic link")
            declared += info.file_size
        if declared > max_bytes:
            raise ValueError(f"zip unpacks to {human_bytes(declared)}, over the size cap of "
                             f"{human_bytes(max_bytes)} (zip bomb?)")
        total = 0
        for info in infos:
            target = into.joinpath(*PurePosixPath(info.filename.replace("\\", "/")).parts)
            if not target.resolve().is_relative_to(into.resolve()):
                raise ValueError(f"zip member {info.filename!r} points outside its folder")
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            # count the bytes really inflated: declared sizes can lie (zip bomb)
            with z.open(info) as src, open(target, "wb") as dst:
                while chunk := src.read(1 << 20):
                    total += len(chunk)
                    if total > max_bytes:
                        raise ValueError(f"zip unpacks to more than {human_bytes(max_bytes)} (zip bomb?)")
                    dst.write(chunk)


def _drop_junk(folder: Path) -> None:
    for p in sorted(folder.rglob("*"), key=lambda q: len(q.parts), reverse=True):
        if _is_junk(p.name) and (p.is_symlink() or p.exists()):
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()


def folder_zip(folder: Path | str, max_bytes: int | None = None, top: str | None = None) -> bytes:
    """An adapter folder as the zip a browser upload of it would be (``top``, default its name, at the
    top; links, hidden files and OS junk left out), so `library add FOLDER` takes add_upload's one code
    path. A snapshot of the Hugging Face cache holds links into its ``blobs/``: those are its files
    and are followed (only into that cache folder's blobs)."""
    import io

    folder = Path(folder)
    cached = hf_cache_repo(folder) if cache_adapter_name(folder) else None
    blobs = (cached[0] / "blobs").resolve() if cached else None

    def is_link_out(p: Path) -> bool:
        if not p.is_symlink():
            return False
        return blobs is None or not p.resolve().is_relative_to(blobs)

    top = top or folder.name
    cap = max_prompt_bytes(max_bytes)
    buf, total = io.BytesIO(), 0
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for dirpath, dirnames, filenames in os.walk(folder):
            here = Path(dirpath)
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and not _is_junk(d)
                                 and not (here / d).is_symlink())
            for f in sorted(filenames):
                p = here / f
                if f.startswith(".") or _is_junk(f) or is_link_out(p) or not p.is_file():
                    continue
                total += p.stat().st_size
                if total > cap:
                    raise PromptError(folder, f"folder holds more than {human_bytes(cap)}, over the size cap")
                z.write(p, (Path(top) / p.relative_to(folder)).as_posix())
    return buf.getvalue()


def add_path(path: Path | str, dest: Path | str, *, expected_dim: int | None = None,
             prepare=None) -> list[SoftPrompt]:
    """`library add` of one file or adapter folder: the same validation as a browser upload."""
    path = Path(path)
    if path.is_dir() and HF_CACHE_REPO.match(path.name) and not (path / ADAPTER_CONFIG).is_file():
        path = hf_cache_snapshot(path) or path  # models--org--name: the snapshot it serves
    if path.is_dir():
        # a snapshot of the Hugging Face cache is added under its repo's name, never its commit hash
        cached = cache_adapter_name(path)
        top = cached.rsplit("/", 1)[-1] if cached else path.name
        return add_upload(f"{top}.zip", folder_zip(path, top=top), dest, expected_dim=expected_dim,
                          prepare=prepare)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise PromptError(path, f"cannot read ({e.strerror or e})") from None
    return add_upload(path.name, data, dest, expected_dim=expected_dim, prepare=prepare)


def upload_limits(max_file_bytes: int | None = None) -> str:
    """The limits a page states above its uploader, all enforced server-side: ``max_file_bytes``
    (the web server's own cap, e.g. streamlit's server.maxUploadSize) and the prompt size cap
    per file, MAX_UPLOAD_FILES per upload, and a zip's members and unpacked size."""
    cap = max_prompt_bytes()
    per_file = min(cap, max_file_bytes) if max_file_bytes else cap
    return (f"Limits: {human_bytes(per_file)} per file, {MAX_UPLOAD_FILES} files per upload; a .zip holds at "
            f"most {MAX_ZIP_MEMBERS} members and unpacks to at most {human_bytes(cap)}.")


def add_upload(filename: str, data: bytes, dest: Path | str, *, expected_dim: int | None = None,
               max_bytes: int | None = None, prepare=None) -> list[SoftPrompt]:
    """Validate an uploaded prompt file or adapter .zip, then move it into ``dest`` atomically.

    ``prepare(entry, prompts) -> entry``: called on each staged top-level file/folder (with its
    prompts) after validation and before the move, e.g. core.userlib.upload writing the task /
    family / backbone the user set; a ValueError it raises refuses the upload (``dest`` unchanged).
    Raises PromptError naming ``filename``; ``dest`` is then unchanged.
    Returns the prompts as read from their new place.
    """
    dest = Path(dest)
    max_bytes = max_prompt_bytes(max_bytes)
    base = Path(str(filename).replace("\\", "/")).name
    if not base or base.startswith(".") or base in (".", ".."):
        raise PromptError(filename or "<upload>", "not a usable file name")
    if bad := control_problem(base):
        raise PromptError(visible(base), f"file name {bad}")
    if len(data) > max_bytes:
        raise PromptError(base, f"upload is {human_bytes(len(data))}, over the size cap of {human_bytes(max_bytes)}")
    dest.mkdir(parents=True, exist_ok=True)
    # stage beside dest (same filesystem, so the final rename is atomic) but outside it
    staging = Path(tempfile.mkdtemp(prefix=safewrite.UPLOAD_PREFIX, dir=dest.parent))
    held = safewrite.locked(staging)  # a start-up recovery elsewhere leaves a staging in use alone
    held.__enter__()
    try:
        if base.lower().endswith(".zip") or _is_adapter_zip(data):
            try:
                _safe_extract(data, staging, max_bytes)
            except zipfile.BadZipFile as e:
                detail = "" if str(e) == "File is not a zip file" else f" ({e})"
                raise PromptError(base, f"not a readable zip archive (truncated or corrupt){detail}") from None
            except (ValueError, OSError, EOFError, RuntimeError) as e:
                raise PromptError(base, str(e)) from None
            _drop_junk(staging)  # __MACOSX/, ._* : never reach the library, never block a later add
            entries = [p for p in staging.iterdir() if not _skip(p.name)]
            if (staging / ADAPTER_CONFIG).is_file():  # adapter files at the zip's top level
                folder = staging / Path(base).stem
                folder.mkdir()
                for p in list(staging.iterdir()):  # all of them: atlas.json and the config too
                    if p != folder:
                        p.rename(folder / p.name)
                entries = [folder]
            if not entries:
                raise PromptError(base, "the zip holds no prompt file or adapter folder")
        else:
            (staging / base).write_bytes(data)
            entries = [staging / base]
        staged = index_library(staging, expected_dim=expected_dim)
        if staged.problems:
            e = staged.problems[0]
            where = Path(e.path)
            rel = where.relative_to(staging).as_posix() if where.is_relative_to(staging) else where.name
            more = f" (and {len(staged.problems) - 1} more problem(s))" if len(staged.problems) > 1 else ""
            raise PromptError(base, (f"{rel}: " if rel != base else "") + e.problem + more)
        if not staged.prompts:
            raise PromptError(base, "no soft prompt found inside")
        if prepare is not None:
            try:
                entries = [prepare(e, [p for p in staged.prompts.values()
                                       if Path(p.origin) == e or Path(p.origin).is_relative_to(e)])
                           for e in entries]
            except ValueError as e:  # PromptError included
                msg = str(e)
                raise PromptError(base, msg[len(base) + 2:] if msg.startswith(f"{base}: ") else msg) from None
        with safewrite.locked(*(dest / p.name for p in entries)):  # one add per name at a time
            taken = [p.name for p in entries if (dest / p.name).exists()]
            if taken:
                raise PromptError(base, f"{', '.join(taken)} already in the library {dest.name}; rename it or "
                                        "remove the old one")
            for p in entries:
                os.rename(p, dest / p.name)
        return list(index_library([dest / p.name for p in entries], expected_dim=expected_dim).prompts.values())
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        held.__exit__(None, None, None)


# --------------------------------------------------------------------------- CLI

def _text(v) -> str:
    """A table cell as text: missing (None, NaN) is '?', never the string 'nan'."""
    return v if isinstance(v, str) and v else "?"


def format_grouped(index: LibraryIndex) -> str:
    lines = []
    table = index.table
    for g, names in index.groups().items():
        sub = table[table["name"].isin(names)]
        shapes = sorted({f"{r.L}x{r.d}" for r in sub.itertuples()})
        lines.append(f"== {g}  ({len(names)} prompts, {', '.join(shapes)})")
        for r in sub.itertuples():
            score = "" if pd.isna(r.score) else f"{r.score:.3f}"
            lines.append(f"  {r.name:<40} task={_text(r.task):<20} family={_text(r.family):<11} "
                         f"L={r.L:<4} d={r.d:<5} norm={r.norm:8.3f} {r.method or ''} {score}".rstrip())
        lines.append("")
    return "\n".join(lines)


def cli(command: str, argv: list[str], make_prepare=None) -> int:
    """``index`` and ``add``; ``python -m core library`` enters through core.userlib.cli, which adds
    tag / rename / delete and passes ``make_prepare(task, family, backbone)`` for ``add --task ...``."""
    import argparse

    from core.config import user_library_dir

    parser = argparse.ArgumentParser(prog=f"python -m core {command}", description="A folder of soft prompts.")
    sub = parser.add_subparsers(dest="action", required=True)
    ix = sub.add_parser("index", help="print the prompts of folders, grouped by backbone")
    ix.add_argument("dirs", nargs="+", metavar="DIR")
    ix.add_argument("--csv", action="store_true", help="print the table as CSV instead")
    ix.add_argument("--dim", type=int, default=None, help="expected token_dim")
    add = sub.add_parser("add", help="add prompt files, adapter folders or adapter .zip files to a library, "
                                     "validated")
    add.add_argument("files", nargs="+", metavar="FILE")
    add.add_argument("--dest", default=None, help="library folder (default: ATLAS_HOME/library)")
    add.add_argument("--task", default=None, help="task of every prompt added (atlas.json; core.userlib)")
    add.add_argument("--family", default=None, help="family of every prompt added")
    add.add_argument("--backbone", default=None, help="backbone of every prompt added, or 'unknown'")
    parser.epilog = "tag | rename | delete NAME: your own prompts (my library, my runs), see core.userlib"
    args = parser.parse_args(argv)

    if args.action == "index":
        missing = [d for d in args.dirs if not Path(d).exists()]
        for d in missing:
            print(f"error: {d}: no such file or folder", file=sys.stderr)
        index = index_library(args.dirs, expected_dim=args.dim)
        if args.csv:
            index.table.to_csv(sys.stdout, index=False)
        else:
            print(format_grouped(index) if index.prompts else "no prompts found")
            print(f"{len(index.prompts)} prompts in {len(index.groups())} group(s)")
        for e in index.problems:
            print(f"problem: {e}", file=sys.stderr)
        for note in index.notes:
            print(f"note: {note}", file=sys.stderr)
        return 1 if (index.problems or missing) else 0

    dest = Path(args.dest) if args.dest else user_library_dir()
    prepare = None
    if args.task or args.family or args.backbone:
        if make_prepare is None:
            print("error: --task/--family/--backbone need core.userlib (run it as `python -m core library add`)",
                  file=sys.stderr)
            return 2
        try:  # core.userlib writes them; it passes itself in (it imports this module, not the other way)
            prepare = make_prepare(args.task, args.family, args.backbone)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    failed = 0
    for f in args.files:
        try:
            for p in add_path(f, dest, prepare=prepare):
                print(f"added {p.name}\t{p.fmt}\tL={p.L}\td={p.d}\t-> {dest}")
        except PromptError as e:
            print(f"error: {e}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0
