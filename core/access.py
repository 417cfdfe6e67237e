"""Safe to share: the mode switch, the one guard for paths from a browser, and a bounded folder walk.

    python -m core access [--bind ADDRESS] [PATH...]     the mode a server bound to ADDRESS runs in,
                                                          its allowed roots, and the guard's answer per PATH

Mode (``ATLAS_MODE=full|viewer``):
    full     everything: launch, cancel, retry, delete runs, upload prompts.
    viewer   browse and compute (metrics, projections, rankings; caches may be written), but nothing a
             user owns changes: the pages hide every control that would, with a one-line reason.
    unset    ``full`` when the server binds loopback only (127.0.0.0/8, ::1, ``localhost``),
             ``viewer`` on any other bind address (``0.0.0.0``, ``::``, a LAN address, empty = all).
             Behind a reverse proxy (which binds loopback) set ``ATLAS_MODE`` explicitly.

core never imports streamlit: the page layer reads the bind address from streamlit's
``server.address`` option (what ``--server.address`` or .streamlit/config.toml set) and passes
it to :func:`resolve` (pages/_shared.py ``access()``).

Paths from a browser (query parameters, text boxes, run specs and task files made on a page,
model folders typed on a page) go through :meth:`Access.check`: resolved (``~``, ``..`` and
symlinks included) and, in viewer mode or whenever ``ATLAS_ALLOWED_ROOTS`` is set, refused
unless they lie under an allowed root: ``ATLAS_HOME``, the demo (``ATLAS_DEMO``), every
``ATLAS_LIBRARY`` folder, every ``ATLAS_ALLOWED_ROOTS`` folder (``:``-separated). A refusal
names only what the user typed; nothing is read. Relative paths are relative to the server's
working directory, as in full mode.

Bounded walk (:class:`Walk`, used by core.library's index and the pages' change detector):
at most ``ATLAS_WALK_MAX_ENTRIES`` files and folders (default 50,000: a 3,000-prompt library of
PEFT adapter folders lists ~12,000) and ``MAX_DEPTH`` folder levels, in sorted order (so where
it stops never depends on load: there is no time cap); it says so when it stops. It never
follows a link out of the folder being walked, never descends into a linked folder (no
cycles), yields regular files only (a FIFO would block a read forever), and never enters
``/proc``, ``/sys`` or ``/dev``.
"""
from __future__ import annotations

import hashlib
import ipaddress
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

MODES = ("full", "viewer")
MAX_ENTRIES = 50_000     # files + folders listed per walk (ATLAS_WALK_MAX_ENTRIES overrides)
MAX_DEPTH = 12           # folder levels below the walked folder
SYSTEM_DIRS = (Path("/proc"), Path("/sys"), Path("/dev"))
REFUSED = "not inside a folder this server shares (see 'Sharing the dashboard' in the README)"


class AccessError(ValueError):
    """A configuration this server must not start with (e.g. ATLAS_MODE=fulll)."""


class PathRefused(ValueError):
    """A path from a browser that the guard refuses: ``str(e) == f"{path}: {problem}"``.

    ``path`` is exactly what the user typed; ``problem`` never says anything about the target.
    """

    def __init__(self, path: str, problem: str = REFUSED):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):
        return (PathRefused, (self.path, self.problem))


# --------------------------------------------------------------------------- mode

def is_loopback(bind: str | None) -> bool:
    """True only for a loopback-only bind address; empty/None means all interfaces (not loopback)."""
    host = (bind or "").strip().strip("[]").lower()
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything, so it is not "loopback only"
        return False


def _split_paths(value: str | None) -> list[Path]:
    return [Path(v).expanduser() for v in (value or "").split(os.pathsep) if v.strip()]


def _resolve(p: Path) -> Path:
    """Absolute, ``..`` and symlinks resolved; a missing tail is kept as typed (strict=False)."""
    return Path(os.path.abspath(p)).resolve()


def allowed_roots(env=None) -> tuple[Path, ...]:
    """ATLAS_HOME, the demo, ATLAS_LIBRARY folders and ATLAS_ALLOWED_ROOTS, resolved, in that order."""
    from core.config import atlas_home, demo_dir, extra_library_dirs

    env = os.environ if env is None else env
    roots = [atlas_home(), demo_dir(), *extra_library_dirs(), *_split_paths(env.get("ATLAS_ALLOWED_ROOTS"))]
    out: list[Path] = []
    for r in roots:
        try:
            r = _resolve(r)
        except (OSError, RuntimeError):
            continue
        if r not in out:
            out.append(r)
    return tuple(out)


def _under(p: Path, roots) -> Path | None:
    """The deepest root that ``p`` lies under (or is), else None."""
    best = None
    for r in roots:
        if p == r or p.is_relative_to(r):
            if best is None or len(r.parts) > len(best.parts):
                best = r
    return best


@dataclass(frozen=True)
class Access:
    """What this server lets a browser do.

    mode        "full" | "viewer"
    bind        the address the server listens on (None/"" = all interfaces)
    why         why this mode, for the one-line reasons the pages show
    roots       allowed roots (resolved)
    restricted  paths from a browser must lie under ``roots`` (viewer, or ATLAS_ALLOWED_ROOTS set)
    """

    mode: str
    bind: str | None
    why: str
    roots: tuple[Path, ...] = field(default_factory=tuple)
    restricted: bool = False

    @property
    def viewer(self) -> bool:
        return self.mode == "viewer"

    @property
    def shared(self) -> bool:
        """The server listens beyond loopback: others can open it."""
        return not is_loopback(self.bind)

    @property
    def ray_address_from_page(self) -> bool:
        """A typed Ray address is only taken from a loopback-only server in full mode
        (otherwise the server would connect wherever a visitor points it)."""
        return not self.viewer and not self.shared

    def reason(self, what: str) -> str:
        """One line for where a hidden control would be, e.g. reason("Uploads")."""
        return f"{what}: off — this server is in viewer mode ({self.why})."

    def check(self, value) -> Path:
        """A path typed or linked in a browser -> its resolved Path; PathRefused if not allowed.

        Nothing is read: the path is only resolved (which follows symlinks) and compared.
        """
        text = str(value if value is not None else "").strip()
        if not text:
            raise PathRefused(text, "an empty path")
        if "\0" in text:
            raise PathRefused(text.replace("\0", "\\0"), "not a valid path")
        try:
            p = _resolve(self._root_named(Path(text).expanduser()))
        except (OSError, RuntimeError, ValueError):  # e.g. a symlink loop
            raise PathRefused(text, REFUSED if self.restricted else "cannot be resolved") from None
        if self.restricted and _under(p, self.roots) is None:
            raise PathRefused(text)
        return p

    def _root_named(self, p: Path) -> Path:
        """A relative path whose first part names an allowed root (``real-prompts/thunlp``, as
        :meth:`link_value` writes it) and that is not a path under the working directory -> under that root."""
        if p.is_absolute() or not p.parts or Path(os.path.abspath(p)).exists():
            return p
        for r in self.roots:
            if r.name == p.parts[0]:
                return r.parent / p
        return p

    def link_value(self, path, typed: str | None = None) -> str:
        """How a folder is written into a page's URL (``?lib=``) so a copied link reopens it: while paths
        are restricted to shared roots, the name relative to its root (:meth:`display`; never a server
        path); otherwise as the user typed it (``typed``), else the path."""
        if self.restricted:
            return self.display(path)
        return typed if typed else str(path)

    def display(self, path) -> str:
        """How a page names a file: relative to the allowed root it lies under, else as given."""
        p = Path(str(path))
        try:
            r = _under(_resolve(p), self.roots)
        except (OSError, RuntimeError, ValueError):
            r = None
        if r is None:
            return str(path)
        rel = _resolve(p).relative_to(r).as_posix()
        return f"{r.name}/{rel}" if rel != "." else r.name


def resolve(bind: str | None, env=None) -> Access:
    """The Access of a server bound to ``bind`` under the environment ``env`` (default os.environ).

    Raises AccessError for an ATLAS_MODE that is neither full nor viewer (fail closed: the pages
    show the message and stop rather than guess).
    """
    env = os.environ if env is None else env
    raw = (env.get("ATLAS_MODE") or "").strip().lower()
    if raw and raw not in MODES:
        raise AccessError(f"ATLAS_MODE={env.get('ATLAS_MODE')!r}: use full or viewer (or leave it unset)")
    where = bind if bind else "all interfaces"
    if raw:
        mode, why = raw, f"ATLAS_MODE={raw}"
    elif is_loopback(bind):
        mode, why = "full", f"bound to {where}, loopback only"
    else:
        mode, why = "viewer", f"bound to {where}, which others can reach; ATLAS_MODE unset"
    restricted = mode == "viewer" or bool(_split_paths(env.get("ATLAS_ALLOWED_ROOTS")))
    return Access(mode=mode, bind=bind, why=why, roots=allowed_roots(env), restricted=restricted)


# --------------------------------------------------------------------------- bounded walk

def walk_max_entries() -> int:
    value = os.environ.get("ATLAS_WALK_MAX_ENTRIES")
    if not value:
        return MAX_ENTRIES
    try:
        n = int(value)
    except ValueError:
        raise AccessError(f"ATLAS_WALK_MAX_ENTRIES={value!r}: a whole number of files, e.g. 100000") from None
    if n < 1:
        raise AccessError(f"ATLAS_WALK_MAX_ENTRIES={value!r}: must be at least 1")
    return n


def _in_system(p: Path) -> bool:
    """``p`` (already resolved) is /proc, /sys, /dev or under them."""
    return any(p == s or p.is_relative_to(s) for s in SYSTEM_DIRS)


def is_system_path(p) -> bool:
    """Under /proc, /sys or /dev (after resolving): never walked, never read."""
    try:
        return _in_system(_resolve(Path(p)))
    except (OSError, RuntimeError, ValueError):
        return False


class Walk:
    """A bounded, top-down, sorted walk; iterate like os.walk (prune ``dirnames`` in place).

        w = Walk(root)
        for dirpath, dirnames, filenames in w:   # dirpath under ``root`` as given
            ...
        w.notes   # [] or the messages saying where it stopped / what it did not follow

    ``filenames``: regular files, and links to regular files inside the walked folder.
    ``dirnames``: folders, and links to folders inside it (listed, never descended).
    """

    def __init__(self, root, *, max_entries: int | None = None, max_depth: int = MAX_DEPTH):
        self.root = Path(root)
        self.max_entries = walk_max_entries() if max_entries is None else int(max_entries)
        self.max_depth = int(max_depth)
        self.seen = 0
        self.stopped = False
        self.notes: list[str] = []
        self._links_out = 0
        self._too_deep = 0

    def __iter__(self):
        try:
            top = _resolve(self.root)
        except (OSError, RuntimeError, ValueError):
            return
        if _in_system(top):
            self.notes.append(f"{self.root}: a system folder (/proc, /sys, /dev) is never read")
            return
        # Plain folders below a resolved, non-system ``top`` can only be system folders when
        # ``top`` is "/" itself (they all sit at the top level): one name check, no Path work.
        system_names = {s.name for s in SYSTEM_DIRS} if top == Path("/") else set()
        stack = [(str(self.root), 0)]
        while stack:
            here, depth = stack.pop()
            try:
                with os.scandir(here) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError:
                continue
            dirs, files, linked = [], [], set()
            for e in entries:
                if self.seen >= self.max_entries:
                    self.stopped = True
                    break
                self.seen += 1
                try:
                    if e.is_symlink():
                        target = _resolve(Path(e.path))
                        if not target.is_relative_to(top) or _in_system(target):
                            self._links_out += 1
                            continue
                        if target.is_dir():
                            dirs.append(e.name)
                            linked.add(e.name)
                        elif target.is_file():
                            files.append(e.name)
                    elif e.is_dir(follow_symlinks=False):
                        dirs.append(e.name)
                    elif e.is_file(follow_symlinks=False):
                        files.append(e.name)
                    # sockets, FIFOs, devices: never listed
                except (OSError, RuntimeError, ValueError):
                    continue
            yield Path(here), dirs, files
            if self.stopped:
                self.notes.insert(0, f"{self.root}: stopped after {self.max_entries:,} files and folders; the "
                                     "rest is not shown (set ATLAS_WALK_MAX_ENTRIES to raise the cap, or point at "
                                     "a smaller folder)")
                break
            children = [d for d in dirs if d not in linked and not (depth == 0 and d in system_names)]
            if depth + 1 > self.max_depth:
                self._too_deep += len(children)
                continue
            for d in reversed(children):
                stack.append((os.path.join(here, d), depth + 1))
        if self._too_deep:
            self.notes.append(f"{self.root}: {self._too_deep} folder(s) more than {self.max_depth} levels deep "
                              "were not read")
        if self._links_out:
            self.notes.append(f"{self.root}: {self._links_out} link(s) pointing outside it were not followed")


# --------------------------------------------------------------------------- CLI

def tree_stamp(paths) -> str:
    """Cheap change detector for folders a page reads: sha256 hex of (path, size, mtime) of every file
    under ``paths`` (str or Path; a file counts as itself). The same bounded walk as the library index
    (Walk): a huge folder costs at most its cap. The pages key their cached index by it."""
    h = hashlib.sha256()
    for root in paths:
        h.update(f"#{root}\n".encode())
        if os.path.isfile(root):
            s = os.stat(root)
            h.update(f"{s.st_size}\0{s.st_mtime_ns}".encode())
            continue
        for dirpath, _dirnames, filenames in Walk(root):
            for f in filenames:
                try:
                    s = os.stat(os.path.join(dirpath, f))
                except OSError:
                    continue
                h.update(f"{dirpath}/{f}\0{s.st_size}\0{s.st_mtime_ns}\n".encode())
    return h.hexdigest()


def cli(command: str, argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog=f"python -m core {command}",
                                     description="What a server bound to ADDRESS allows (mode, allowed roots), "
                                                 "and the path guard's answer for each PATH.")
    parser.add_argument("--bind", default="127.0.0.1", help="the server's bind address (default 127.0.0.1)")
    parser.add_argument("paths", nargs="*", metavar="PATH")
    args = parser.parse_args(argv)
    try:
        acc = resolve(args.bind)
    except AccessError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"mode: {acc.mode} ({acc.why})")
    print(f"paths from a browser: {'only under the allowed roots' if acc.restricted else 'any path'}")
    for r in acc.roots:
        print(f"  root: {r}")
    refused = 0
    for p in args.paths:
        try:
            print(f"allowed: {p} -> {acc.check(p)}")
        except PathRefused as e:
            print(f"refused: {e}")
            refused += 1
    return 1 if refused else 0
