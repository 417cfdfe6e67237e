"""Page-edge helpers shared by the pages: who may do what, which prompt folders to show, a cached index.

    from pages._shared import access, library_sources, library_picker, load_library, group_selector

``access()`` is this server's core.access.Access: its mode (full | viewer) from ATLAS_MODE or,
when unset, from the address streamlit binds (its ``server.address`` option). Every path typed
or linked in the browser goes through ``access().check`` before anything is read.

Sources: the demo library (``demo_dir()/prompts``), the user library
(``ATLAS_HOME/library``), every ``ATLAS_LIBRARY`` folder, and a folder typed by
the user (``st.session_state["library_dir"]``, seeded from the query param
``lib`` so a link can point the app at a folder; refused unless the guard allows it). Indexing
is bounded (core.access.Walk) and cached per
(paths, fingerprint of every file's path, size and mtime), so a change on disk
is picked up on the next rerun and an unchanged library is never re-read.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import streamlit as st

from core import access as _access
from core.config import demo_dir, extra_library_dirs, user_library_dir
from core.library import LibraryIndex, index_library

LIB_DIR_KEY = "library_dir"          # plain session state (survives page changes)
SOURCES_KEY = "library_sources"      # multiselect of source labels
LIB_REFUSED_KEY = "_library_dir_refused"  # the guard's message for a refused typed/linked folder


def access() -> _access.Access:
    """This server's mode and path guard; a bad ATLAS_MODE stops the page with its message."""
    try:
        return _access.resolve(st.get_option("server.address"))
    except _access.AccessError as e:
        st.error(str(e))
        st.stop()


def viewer_reason(what: str) -> None:
    """The one line shown where a control is hidden in viewer mode."""
    st.caption(f"🔒 {access().reason(what)}")


def typed_library_dir() -> Path | None:
    """The folder the user typed (session) or linked (query param ``lib``), once the guard allows it.

    A refused path gives None; its message is in ``st.session_state[LIB_REFUSED_KEY]``.
    """
    if LIB_DIR_KEY not in st.session_state:
        st.session_state[LIB_DIR_KEY] = st.query_params.get("lib", "") or ""
    value = (st.session_state.get(LIB_DIR_KEY) or "").strip()
    st.session_state.pop(LIB_REFUSED_KEY, None)
    if not value:
        return None
    try:
        return access().check(value)
    except _access.PathRefused as e:
        st.session_state[LIB_REFUSED_KEY] = str(e)
        return None


def library_refusal() -> str | None:
    """The guard's message for the typed/linked folder, if it refused it."""
    typed_library_dir()
    return st.session_state.get(LIB_REFUSED_KEY)


# Sources shown only when asked for: the demo's ~230 transferred prompts would swamp
# the 11 source prompts in every matrix (they are there for the projection's arrows).
OPT_IN = {"demo transfers"}


def library_sources() -> list[tuple[str, Path]]:
    """(label, folder) for every place prompts can come from; labels are unique."""
    out = [("demo", demo_dir() / "prompts"), ("demo transfers", demo_dir() / "transfers"),
           ("user", user_library_dir())]
    out += [(f"extra: {p}", p) for p in extra_library_dirs()]
    typed = typed_library_dir()
    if typed is not None:
        out.append(("folder", typed))
    return out


def fingerprint(paths: tuple[str, ...]) -> str:
    """Cheap change detector: hash of (path, size, mtime) of every file under ``paths``.
    The same bounded walk as the index (core.access.Walk): a huge folder costs at most its cap."""
    h = hashlib.sha256()
    for root in paths:
        h.update(f"#{root}\n".encode())
        if os.path.isfile(root):
            s = os.stat(root)
            h.update(f"{s.st_size}\0{s.st_mtime_ns}".encode())
            continue
        for dirpath, _dirnames, filenames in _access.Walk(root):
            for f in filenames:
                try:
                    s = os.stat(os.path.join(dirpath, f))
                except OSError:
                    continue
                h.update(f"{dirpath}/{f}\0{s.st_size}\0{s.st_mtime_ns}\n".encode())
    return h.hexdigest()


@st.cache_resource(show_spinner="Reading prompts…", max_entries=16)
def _load_library(paths: tuple[str, ...], stamp: str) -> LibraryIndex:
    return index_library([Path(p) for p in paths])


def load_library(paths) -> LibraryIndex:
    """The LibraryIndex of ``paths`` (shared object: do not mutate it); says where a walk stopped."""
    paths = tuple(str(p) for p in paths)
    index = _load_library(paths, fingerprint(paths))
    for note in index.notes:
        st.warning(note, icon="✂️")
    return index


def _on_dir_typed():
    st.session_state[LIB_DIR_KEY] = st.session_state.get("library_dir_input", "")
    if st.session_state[LIB_DIR_KEY].strip():  # keep the URL shareable
        st.query_params["lib"] = st.session_state[LIB_DIR_KEY].strip()
    elif "lib" in st.query_params:
        del st.query_params["lib"]
    # a newly typed (and allowed) folder is what the user wants to see
    st.session_state[SOURCES_KEY] = (["folder"] if typed_library_dir() is not None
                                     else [lbl for lbl, p in library_sources() if p.exists() and lbl not in OPT_IN])


def library_picker(*, typed_input: bool = True) -> list[Path]:
    """Source multiselect (+ a folder text input); returns the chosen existing folders.

    Default: the typed/linked folder alone if there is one, else every existing source.
    """
    typed = typed_library_dir()
    if typed_input:
        if "library_dir_input" not in st.session_state:
            st.session_state["library_dir_input"] = st.session_state.get(LIB_DIR_KEY, "")
        shares = " under a folder this server shares" if access().restricted else ""
        st.text_input("Another prompt folder (path on the server)", key="library_dir_input",
                      on_change=_on_dir_typed, placeholder="/path/to/prompts",
                      help=f"Any folder of prompt files or PEFT adapters{shares}; also settable with ?lib=PATH")
        typed = typed_library_dir()
    sources = library_sources()
    labels = [label for label, _ in sources]
    where = dict(sources)
    if SOURCES_KEY not in st.session_state:
        st.session_state[SOURCES_KEY] = (["folder"] if typed is not None
                                         else [lbl for lbl, p in sources if p.exists() and lbl not in OPT_IN])
    st.session_state[SOURCES_KEY] = [v for v in st.session_state[SOURCES_KEY] if v in labels]
    chosen = st.multiselect("Prompt folders", labels, key=SOURCES_KEY,
                            format_func=lambda lbl: f"{lbl.split(':')[0]} — {where[lbl]}")
    refused = st.session_state.get(LIB_REFUSED_KEY)
    if refused:
        st.error(refused, icon="🔒")
    elif typed is not None and not typed.exists():
        st.warning(f"Folder not found: {st.session_state.get(LIB_DIR_KEY, '').strip()}")
    return [where[lbl] for lbl in chosen if where[lbl].exists()]


def group_selector(index: LibraryIndex, *, key: str = "group", label: str = "Backbone group") -> str | None:
    """A selectbox over the index's backbone groups (largest first); None if the library is empty."""
    groups = index.groups()
    if not groups:
        return None
    options = sorted(groups, key=lambda g: (-len(groups[g]), g))
    if st.session_state.get(key) not in options:
        st.session_state.pop(key, None)
    return st.selectbox(label, options, key=key, format_func=lambda g: f"{g} ({len(groups[g])} prompts)",
                        help="Prompts of different backbones live in different embedding spaces "
                             "and are never compared.")
