"""Collections: the named prompt sets every page, the CLI and later features choose from.

    python -m core collection list                       # every collection, its folders, its prompt count
    python -m core collection index "demo,my runs"       # the prompts of a choice, as CSV

A collection is a name and the folders that hold its prompts:

    demo            the demo's source prompts          ATLAS_DEMO/prompts
    demo transfers  the demo's grid (transferred) prompts   ATLAS_DEMO/transfers
    my library      uploads and added folders          ATLAS_HOME/library without runs/, + ATLAS_LIBRARY
    my runs         prompts made by runs here          ATLAS_HOME/library/runs
    folder: PATH    any folder the user opened (``?lib=PATH`` or typed)

Why they are separate: a throwaway 20-step run's prompt averaged into the demo's
``sent_tweet`` column rewrote every similarity analysis of the demo. So the rules are:

* similarity analyses (metric heatmaps, "by target task" averages, rankings, validation)
  use ``demo`` + ``my library`` unless the user chooses otherwise; ``my runs`` join only
  when chosen (SIMILARITY_DEFAULT);
* measured transfer (results of finished runs) always counts every finished run: a
  measurement is not a prediction (core.metrics.measured on all results);
* a choice is written as a comma-separated list of names (``col=demo,my runs`` in a page's
  URL, the same text on the CLI); an unknown name is reported, never dropped silently.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from core.config import demo_dir, extra_library_dirs, user_library_dir
from core import safetext

DEMO, TRANSFERS, LIBRARY, RUNS = "demo", "demo transfers", "my library", "my runs"
BUILTIN = (DEMO, TRANSFERS, LIBRARY, RUNS)
SIMILARITY_DEFAULT = (DEMO, LIBRARY)   # what similarity analyses use unless the user chooses
FOLDER = "folder: "                    # prefix of an opened folder's collection name


@dataclass(frozen=True)
class Collection:
    """A named prompt set: the folders it reads and the sub-folders it leaves to another collection."""

    name: str
    roots: tuple[Path, ...]
    exclude: tuple[Path, ...] = ()
    about: str = ""

    def exists(self) -> bool:
        return any(r.exists() for r in self.roots)

    def key(self) -> tuple:
        """Hashable, for caches: name, roots and exclusions as strings."""
        return (self.name, tuple(map(str, self.roots)), tuple(map(str, self.exclude)))


def runs_dir() -> Path:
    """Where finished runs put their prompts (core.runs.worker.run_output_dir): the ``my runs`` collection."""
    return user_library_dir() / "runs"


def builtin() -> dict[str, Collection]:
    """The four named collections of this installation (some may be empty or missing)."""
    demo = demo_dir()
    return {
        DEMO: Collection(DEMO, (demo / "prompts",), about="the demo's source prompts"),
        TRANSFERS: Collection(TRANSFERS, (demo / "transfers",), about="the demo's transferred (grid) prompts"),
        LIBRARY: Collection(LIBRARY, (user_library_dir(), *extra_library_dirs()), exclude=(runs_dir(),),
                            about="your uploads and added folders (ATLAS_LIBRARY)"),
        RUNS: Collection(RUNS, (runs_dir(),), about="prompts made by runs launched here"),
    }


def folder(path: Path | str) -> Collection:
    """The collection of one opened folder (its path must already have passed core.access)."""
    path = Path(path)
    return Collection(f"{FOLDER}{path}", (path,), about="a folder you opened")


def available(opened: list[Path] | tuple = ()) -> dict[str, Collection]:
    """Every collection one may choose: the built-in ones, then each opened folder."""
    out = builtin()
    for p in opened:
        c = folder(p)
        out.setdefault(c.name, c)
    return out


def parse(text: str | None, opened: list[Path] | tuple = ()) -> tuple[list[str], list[str]]:
    """(chosen names, unknown names) of a comma-separated choice; order kept, duplicates dropped.

    ``None`` or an empty text means "not chosen": the similarity default, plus every opened folder.
    """
    names = available(opened)
    if not text or not text.strip():
        return default(opened), []
    chosen, unknown = [], []
    for part in (s.strip() for s in text.split(",")):
        if not part or part in chosen:
            continue
        (chosen if part in names else unknown).append(part)
    return chosen, unknown


def default(opened: list[Path] | tuple = ()) -> list[str]:
    """Similarity analyses: demo + my library, and every folder the user opened."""
    return [*SIMILARITY_DEFAULT, *(folder(p).name for p in opened)]


def to_param(chosen: list[str]) -> str:
    """The URL/CLI text of a choice (inverse of parse)."""
    return ",".join(chosen)


def existing(names: list[str], opened: list[Path] | tuple = ()) -> list[Collection]:
    """The named collections whose folders exist, in the order named (unknown names are skipped):
    what a page or the CLI indexes for a choice."""
    cols = available(opened)
    return [cols[n] for n in names if n in cols and cols[n].exists()]


def folders(cols: list[Collection]) -> tuple[list[Path], list[Path]]:
    """(root folders, excluded folders) of collections, each once, in order."""
    return (list(dict.fromkeys(r for c in cols for r in c.roots)),
            list(dict.fromkeys(e for c in cols for e in c.exclude)))


def index(chosen: list[Collection] | list[str], opened: list[Path] | tuple = ()):
    """One core.library.LibraryIndex of the chosen collections (missing folders are skipped)."""
    from core.library import index_library
    names = available(opened)
    roots, exclude = folders([names[c] if isinstance(c, str) else c for c in chosen])
    return index_library(roots, exclude=exclude)


def describe(chosen: list[str]) -> str:
    """One line for a page: which collections an analysis uses."""
    return ", ".join(safetext.md_code(c) for c in chosen) if chosen else "no collection"


# --------------------------------------------------------------------------- CLI
def cli(command: str, argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m core collection",
                                 description="Named prompt sets: demo, demo transfers, my library, my runs.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="every collection, its folders and prompt count")
    ix = sub.add_parser("index", help="the prompts of a choice as CSV")
    ix.add_argument("choice", nargs="?", default="", help=f"comma-separated names (default: {to_param(default())})")
    args = ap.parse_args(argv)
    if args.cmd == "list":
        for name, c in builtin().items():
            n = len(index([c]).prompts) if c.exists() else 0
            tag = " (default for similarity analyses)" if name in SIMILARITY_DEFAULT else ""
            print(f"{name:15s} {n:5d} prompts  {', '.join(map(str, c.roots))}{tag}")
        return 0
    chosen, unknown = parse(args.choice)
    if unknown:
        print(f"error: unknown collection(s) {', '.join(map(repr, unknown))}; known: {', '.join(BUILTIN)}",
              file=sys.stderr)
        return 2
    index(chosen).table.to_csv(sys.stdout, index=False)
    return 0
