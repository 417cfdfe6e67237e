"""Page-edge helpers shared by the pages: who may do what, which prompt folders to show, a cached index.

    from pages._shared import access, library_sources, library_picker, load_library, group_selector

``access()`` is this server's core.access.Access: its mode (full | viewer) from ATLAS_MODE or,
when unset, from the address streamlit binds (its ``server.address`` option). Every path typed
or linked in the browser goes through ``access().check`` before anything is read.

Prompts come from collections (core.collection: demo, demo transfers, my library, my runs,
and every folder the user opened — typed in "Another prompt folder" or linked with
``?lib=PATH``, refused unless the guard allows it). An opened folder joins the chosen
collections, never replaces them. The choice is in the URL (``?col=demo,my runs``). Indexing
is bounded (core.access.Walk) and cached per
(paths, core.access.tree_stamp of every file's path, size and mtime), so a change on disk
is picked up on the next rerun and an unchanged library is never re-read.
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from core import access as _access
from core import collection as C
from core import fmt
from core import labels as L
from core import safetext as S
from core.library import LibraryIndex, index_library

LIB_DIR_KEY = "library_dir"          # the last typed folder (plain session state)
OPENED_KEY = "_opened_folders"       # every folder opened this session (typed or ?lib=), raw text
SOURCES_KEY = "library_sources"      # multiselect of collection names (core.collection)
LIB_REFUSED_KEY = "_library_dir_refused"  # the guard's message for a refused typed/linked folder
COL_PARAM = "col"                    # ?col=demo,my runs  (absent = core.collection.default)
CHOSEN_KEY = "_chosen_collections"   # the last choice, as plain state (kept on pages without the picker)


@st.cache_resource(show_spinner=False)
def _recovered() -> list[str]:
    """Once per server, before any page reads or writes the library: complete or roll back what an
    interrupted describe / rename / delete / upload / task add left (core.safewrite; logged)."""
    from core import safewrite
    try:
        return safewrite.recover()
    except Exception as e:  # noqa: BLE001 -- a recovery that fails is logged; the pages still serve
        import logging
        logging.getLogger("atlas.recover").warning("start-up recovery failed: %s", e)
        return []


def access() -> _access.Access:
    """This server's mode and path guard; a bad ATLAS_MODE stops the page with its message."""
    _recovered()
    try:
        return _access.resolve(st.get_option("server.address"))
    except _access.AccessError as e:
        st.error(S.md(e))
        st.stop()


def shown_path(path) -> str:
    """How a page names a file or folder on the server: the full path in full mode (the operator's own
    machine); for a viewer never the server's path — relative to a shared root, else ``ATLAS_HOME/…``,
    else the bare name."""
    a = access()
    if not a.viewer:
        return str(path)
    shown = a.display(path)
    if shown != str(path):
        return shown
    from core.config import atlas_home
    try:
        return "ATLAS_HOME/" + Path(path).resolve().relative_to(atlas_home().resolve()).as_posix()
    except (ValueError, OSError):
        return Path(str(path)).name


def viewer_reason(what: str) -> None:
    """The one line shown where a control is hidden in viewer mode."""
    st.caption(f"🔒 {access().reason(what)}")


def _opened_values() -> list[str]:
    """Folders opened this session, as typed or linked (``?lib=PATH``, repeatable); seeded from the URL once."""
    if OPENED_KEY not in st.session_state:
        st.session_state[OPENED_KEY] = list(dict.fromkeys(
            v.strip() for v in st.query_params.get_all("lib") if v and v.strip()))
    return st.session_state[OPENED_KEY]


def opened_folders() -> list[Path]:
    """The opened folders the guard allows; a refusal's message is in ``st.session_state[LIB_REFUSED_KEY]``."""
    out, refused = [], []
    for value in _opened_values():
        try:
            out.append(access().check(value))
        except _access.PathRefused as e:
            refused.append(str(e))
    st.session_state.pop(LIB_REFUSED_KEY, None)
    if refused:
        st.session_state[LIB_REFUSED_KEY] = refused[0]
    return out


def typed_library_dir() -> Path | None:
    """The most recently opened folder the guard allows (None if none)."""
    folders = opened_folders()
    return folders[-1] if folders else None


def library_refusal() -> str | None:
    """The guard's message for a typed/linked folder, if it refused one."""
    opened_folders()
    return st.session_state.get(LIB_REFUSED_KEY)


# Collections shown only when asked for are core.collection's rule (demo transfers, my runs);
# kept here for callers of the old name.
OPT_IN = {C.TRANSFERS, C.RUNS}


def library_sources() -> list[tuple[str, Path]]:
    """(collection name, folder) for every folder of every collection; a collection may have several."""
    return [(name, r) for name, c in C.available(opened_folders()).items() for r in c.roots]


@st.cache_resource(show_spinner="Reading prompts…", max_entries=16)
def _load_library(paths: tuple[str, ...], exclude: tuple[str, ...], stamp: str) -> LibraryIndex:
    return index_library([Path(p) for p in paths], exclude=[Path(e) for e in exclude])


def _library_key(items) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(folders, excluded folders) of folders or core.collection.Collection objects: the cache key."""
    items = list(items)
    roots, exclude = C.folders([c for c in items if isinstance(c, C.Collection)])
    paths = [str(p) for p in items if not isinstance(p, C.Collection)]
    return tuple(dict.fromkeys(paths + [str(r) for r in roots])), tuple(str(e) for e in exclude)


def load_library(items) -> LibraryIndex:
    """The LibraryIndex of folders or core.collection.Collection objects (shared object: do not
    mutate it); says where a walk stopped."""
    paths, exclude = _library_key(items)
    index = _load_library(paths, exclude, _access.tree_stamp(paths))
    for note in index.notes:
        st.warning(S.md(note), icon="✂️")
    return index


def warm_default_library() -> int:
    """Index the collections a first visit shows (core.collection.default, nothing opened) into the
    cache the pages read; callable outside a session (pages/_warm.py). Returns the prompt count."""
    chosen = C.existing(C.default())
    if not chosen:
        return 0
    paths, exclude = _library_key(chosen)
    return len(_load_library(paths, exclude, _access.tree_stamp(paths)).prompts)


def _col_for_url(name: str) -> str:
    """An opened folder's collection (``folder:<server path>``) as a link names it (core.access.Access.link_value:
    relative to its shared root in viewer mode); the built-in collections as they are."""
    if name.startswith(C.FOLDER):
        return C.FOLDER + access().link_value(name[len(C.FOLDER):])
    return name


def _col_from_url(text: str | None) -> str | None:
    """The inverse of _col_for_url over a whole ``?col=`` text (a folder the guard refuses stays as linked:
    reported as unknown, never read)."""
    if not text:
        return text
    out = []
    for part in text.split(","):
        part = part.strip()
        if part.startswith(C.FOLDER):
            try:
                part = C.FOLDER + str(access().check(part[len(C.FOLDER):]))
            except _access.PathRefused:
                pass
        out.append(part)
    return ",".join(out)


def _write_col_param(chosen: list[str]) -> None:
    want = "" if chosen == C.default(opened_folders()) else C.to_param([_col_for_url(n) for n in chosen])
    if want and st.query_params.get(COL_PARAM) != want:
        st.query_params[COL_PARAM] = want
    elif not want and COL_PARAM in st.query_params:
        del st.query_params[COL_PARAM]


def _on_dir_typed():
    value = (st.session_state.get("library_dir_input") or "").strip()
    st.session_state[LIB_DIR_KEY] = value
    if not value:
        return
    opened = _opened_values()
    if value not in opened:
        opened.append(value)
    st.query_params["lib"] = opened  # keep the URL shareable: every opened folder
    # the opened folder joins the chosen collections; it never replaces them
    try:
        name = C.folder(access().check(value)).name
    except _access.PathRefused:
        name = None
    chosen = list(st.session_state.get(SOURCES_KEY, C.default(opened_folders())))
    if name and name not in chosen:
        chosen.append(name)
    st.session_state[SOURCES_KEY] = chosen
    _write_col_param(chosen)


def _on_cols_changed():
    _write_col_param(list(st.session_state.get(SOURCES_KEY, [])))


def library_picker(*, typed_input: bool = True, page: str = "") -> list[C.Collection]:
    """Collections multiselect (+ an "Another prompt folder" input); returns the chosen collections.

    The choice lives in the URL (``?col=demo,my runs``; absent = core.collection.default: demo +
    my library + every opened folder). An unknown name in the link is reported, not dropped silently.
    """
    if typed_input:
        if "library_dir_input" not in st.session_state:
            st.session_state["library_dir_input"] = st.session_state.get(LIB_DIR_KEY, "")
        shares = " under a folder this server shares" if access().restricted else ""
        st.text_input("Another prompt folder (path on the server)", key="library_dir_input",
                      on_change=_on_dir_typed, placeholder="/path/to/prompts",
                      help=f"Any folder of prompt files or PEFT adapters{shares}; it joins the chosen "
                           "collections. Also settable with ?lib=PATH")
    opened = opened_folders()
    cols = C.available(opened)
    if SOURCES_KEY not in st.session_state:
        chosen, unknown = C.parse(_col_from_url(st.query_params.get(COL_PARAM)), opened)
        if unknown:
            st.session_state["_col_unknown"] = unknown
        st.session_state[SOURCES_KEY] = chosen
    st.session_state[SOURCES_KEY] = [v for v in st.session_state[SOURCES_KEY] if v in cols]
    options = [n for n, c in cols.items() if c.exists() or n in st.session_state[SOURCES_KEY] or n in C.BUILTIN]
    # chips show the collection's name only (a chip cut to "my library — your uploads a…" reads worse);
    # what each one holds is in the help
    about = "; ".join(f"**{n}**: {c.about}" for n, c in cols.items() if c.about and n in C.BUILTIN)
    chosen = st.multiselect("Collections", options, key=SOURCES_KEY, on_change=_on_cols_changed,
                            help=f"{about}. Similarity analyses use demo + my library unless you choose otherwise; "
                                 "prompts made by runs here (my runs) join only when chosen. The choice is "
                                 "kept in the page's link (?col=).")
    unknown = st.session_state.pop("_col_unknown", None)
    if unknown:
        st.warning(f"The link names collection(s) that do not exist here: {S.md_list(map(repr, unknown))} "
                   f"(known: {', '.join(C.BUILTIN)}); they are left out.")
    refused = st.session_state.get(LIB_REFUSED_KEY)
    if refused:
        st.error(S.md(refused), icon="🔒")
    for value, path in zip(_opened_values(), opened):
        if not path.exists():
            st.warning(f"Folder not found: {S.md_code(value)}")
    _keep_in_url(chosen)
    return C.existing(chosen, opened)


def keep_library_in_url() -> None:
    """On a page without the collections picker (Home, Runs, Definitions): the folders opened and the
    collections chosen on another page stay in this page's URL too (nothing chosen yet: URL unchanged)."""
    # the picker's own key is widget state, which Streamlit drops on a page that does not draw it
    if CHOSEN_KEY in st.session_state:
        _keep_in_url(list(st.session_state[CHOSEN_KEY]))


def _keep_in_url(chosen: list[str]) -> None:
    """Every page's URL carries the opened folders (``?lib=``, as core.access.Access.link_value writes
    them: relative to a shared root in viewer mode) and the chosen collections (``?col=``): Streamlit
    clears the query string on sidebar navigation, and a copied link must reopen the same view."""
    acc = access()
    typed = {}
    for value in _opened_values():
        try:
            typed.setdefault(acc.check(value), value)
        except _access.PathRefused:
            continue
    st.session_state[CHOSEN_KEY] = list(chosen)
    want = [acc.link_value(p, v) for p, v in typed.items()]
    if want and st.query_params.get_all("lib") != want:
        st.query_params["lib"] = want
    _write_col_param(list(chosen))


def collections_caption(chosen: list[C.Collection], index: LibraryIndex | None, page: str) -> None:
    """Say which collections the page uses, and what changed since the last choice on this page."""
    names = [c.name for c in chosen]
    n = len(index.prompts) if index is not None else 0
    st.caption(f"Prompts from {C.describe(names)} ({n} prompt{'s' * (n != 1)}). Change the collections under "
               "“Collections”.")
    key = f"_cols_prev_{page}"
    prev = st.session_state.get(key)
    now = (tuple(names), frozenset(index.prompts) if index is not None else frozenset())
    if prev is not None and prev[0] != now[0]:
        added = [c for c in now[0] if c not in prev[0]]
        removed = [c for c in prev[0] if c not in now[0]]
        delta = len(now[1]) - len(prev[1])
        parts = ([f"added {C.describe(added)}"] if added else []) + ([f"removed {C.describe(removed)}"] if removed else [])
        st.info(f"Prompt set changed: {'; '.join(parts)} ({delta:+d} prompt{'s' * (abs(delta) != 1)}). Prompt-space metrics are "
                "recomputed for the new set; backbone metrics are shown where already computed for it.", icon="🔄")
    st.session_state[key] = now


def group_selector(index: LibraryIndex, *, key: str = "group", label: str = "Backbone group",
                   short: bool = False) -> str | None:
    """A selectbox over the index's backbone groups (largest first), opening on core.defaults.default_group
    (the bundled MiniLM's group when present, else the largest); None if the library is empty."""
    groups = index.groups()
    if not groups:
        return None
    options = sorted(groups, key=lambda g: (-len(groups[g]), g))
    if st.session_state.get(key) not in options:  # every page opens on the same group (core.defaults)
        from core.defaults import default_group
        st.session_state[key] = default_group(groups)
    # short: the model's own name without its organisation (a sidebar box cut the full id), the id in the help
    return st.selectbox(label, options, key=key,
                        format_func=lambda g: f"{g.rsplit('/', 1)[-1] if short else g} "
                                              f"({fmt.count(len(groups[g]), 'prompt')})",
                        help="Prompts of different backbones live in different embedding spaces and are never "
                             "compared." + (f" Now: `{st.session_state.get(key)}`." if short else ""))


# ---- how numbers read (rules in core.fmt; these are their Streamlit column configs) -------------------
def gain_column(label: str = "gain", help: str | None = None, width: int | None = None):
    """A gain column, already scaled with core.fmt.gain_pct: '+17.8%' (one unit for gains everywhere)."""
    return st.column_config.NumberColumn(label, format=fmt.GAIN_PRINTF, width=width,
                                         help=help or "relative gain over scratch, in % of the scratch score")


def validation_view(vt):
    """The metric-validation table (core.metrics.retrieval_table) as every page shows it: rates and regrets
    in percent, two decimals without '-0.00'. Returns (frame, column_config) for st.dataframe."""
    out = vt.copy()
    for c in ("top_k_hit", "regret", "regret_k"):
        if c in out:
            out[c] = fmt.gain_pct(out[c])
    out = fmt.no_negative_zero(out, 2)
    # short headers with fixed widths: the table fits half a 1280-px page (Home) without scrolling
    cc = st.column_config
    config = {"metric": cc.TextColumn("metric", width=90),
              "mean_rho": cc.NumberColumn("Spearman ρ", format="%.2f", width=85,
                                          help="mean over targets of Spearman ρ between the metric and the "
                                               "measured gains over sources"),
              "top_k_hit": cc.NumberColumn("top-3 hit", format="%.0f%%", width=75,
                                           help="share of targets whose best measured source is in the metric's top 3"),
              "regret": cc.NumberColumn("regret", format=fmt.REGRET_PRINTF, width=65,
                                        help="mean over targets of: best measured gain − gain of the metric's "
                                             "top-1 source (in % of the scratch score)"),
              "ndcg_k": cc.NumberColumn("NDCG@3", format="%.2f", width=70),
              "regret_k": cc.NumberColumn("regret@3", format=fmt.REGRET_PRINTF, width=75),
              "n_targets": cc.NumberColumn("targets", format="%d", width=60)}
    return out, {k: v for k, v in config.items() if k in out.columns}


def waiting_figure(fig, message: str):
    """A chart with nothing to draw yet: no empty −1…4 axes, one centred line saying what it waits for."""
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.add_annotation(text=message, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                       font={"size": 14, "color": "#777"})
    return fig


def event_table(events: list[dict]):
    """A run's events (core.runs.store rows: seq, kind, step, metrics) as a table: one column per metric,
    floats at 4 significant figures (a loss reads 0.6931, not 0.6931471805599453)."""
    import json

    import pandas as pd

    rows = []
    for e in events:
        row = {"seq": e["seq"], "kind": e["kind"], "step": e["step"]}
        for k, v in (e.get("metrics") or {}).items():
            row[k] = v if isinstance(v, (int, float, str, bool)) or v is None else json.dumps(v, default=str)[:80]
        rows.append(row)
    frame = fmt.significant(pd.DataFrame(rows), 4)
    # a progress event has no val_score, an eval event no loss: blank, not "None" (core.fmt.no_none)
    return fmt.no_none(frame, as_text=tuple(c for c in frame.columns if c != "seq"
                                            and pd.api.types.is_float_dtype(frame[c]) and frame[c].isna().any()),
                       digits=None)


# the file a prompt came from is in the detail view ("from ..."): a path column would push the rest off-screen
LIBRARY_COLUMNS = ["name", "task", "family", "method", "score", "L", "d", "norm", "backbone", "group"]


def library_view(table):
    """The Library's prompt table as shown: what tells prompts apart first (name, task, family, method,
    score, shape), the backbone by its short name (its full id in the group filter and the detail), the
    group only where some prompt's group is not its backbone (unknown widths: ``unknown:d<d>``).
    Returns (frame, column_config) for st.dataframe."""
    cols = [c for c in LIBRARY_COLUMNS if c in table.columns]
    view = table[cols].copy()
    if "group" in view and "backbone" in view and (view["group"] == view["backbone"].fillna("")).all():
        view = view.drop(columns=["group"])
    if "backbone" in view:
        view["backbone"] = [b.rsplit("/", 1)[-1] if isinstance(b, str) else b for b in view["backbone"]]
    if "name" in view:  # without the path all rows share (core.labels); the full name is in the detail
        short = L.short_names(view["name"], suffix=False)
        view["name"] = [short[str(n)] for n in view["name"]]
    # no "None" cell: an unknown task or family reads "—", a prompt with no recorded score a blank score
    score_as_text = "score" in view and view["score"].isna().any()
    view = fmt.no_none(view, as_text=("score",) if score_as_text else ())
    cc = st.column_config
    # pixel widths that fit a 1280-px window with every column in view (the tour checks it)
    config = {"name": cc.TextColumn("name", width=140, help="without the folders every prompt shown shares; "
                                                                "the full name is in the detail below"),
              "task": cc.TextColumn("task", width=120),
              "family": cc.TextColumn("family", width=80),
              "method": cc.TextColumn("method", width=65),
              "score": (cc.TextColumn if score_as_text else cc.NumberColumn)(
                  "score", width=60, help="the prompt's own test score, where its folder records one",
                  **({} if score_as_text else {"format": "%.3f"})),
              "L": cc.NumberColumn("L", format="%d", width=40, help="virtual tokens"),
              "d": cc.NumberColumn("d", format="%d", width=50, help="embedding width"),
              "norm": cc.NumberColumn("norm", format="%.2f", width=55, help="mean L2 norm of the prompt's tokens"),
              "backbone": cc.TextColumn("backbone", width=120, help="the model the prompt was trained for "
                                                                         "(short name; full id in the detail below)"),
              "group": cc.TextColumn("group", width=120, help="prompts are compared within a group only")}
    return view, {k: v for k, v in config.items() if k in view.columns}


ZS_HEAD_HELP = ("How each source is read on a target's task for zs: cosine = pooled features against the label "
                "descriptions; a label-word preset = the model's own LM head with that preset's input layout and "
                "label words (core.heads), as released prompts were trained. Each head's numbers are cached apart.")


def zs_head_picker(where, key: str, prompts, group: str, *, link: str | None = None, help_extra: str = "") -> str:
    """The "zs head" select (core.metrics.zs_heads) in ``where``: it opens on the head this group was trained
    with (core.heads.trained_head, marked "(as trained)") each time the group changes; ``link``, a head from
    the page's URL, wins once. -> the chosen head (``cosine`` or a label-word preset)."""
    from core.heads import trained_head
    from core.metrics import zs_heads
    trained = trained_head(prompts)
    for_key = f"_{key}_group"
    if link is not None:
        st.session_state[key], st.session_state[for_key] = link, group
    if st.session_state.get(for_key) != group or st.session_state.get(key) not in zs_heads():
        st.session_state[key], st.session_state[for_key] = trained, group
    return where.selectbox("zs head", zs_heads(), key=key, help=ZS_HEAD_HELP + help_extra,
                           format_func=lambda h: f"{h} (as trained)" if h == trained else h)
