"""Projection page: a 2-D/3-D map of the prompts of one backbone group.

    streamlit run app.py   -> Projection
    ?method=umap|pca|tsne&group=GROUP&dims=2|3&highlight=NAME   (shareable state)

First paint never waits for UMAP's numba compile: a precomputed (demo) or cached map is
shown at once; otherwise PCA is shown while UMAP warms up in a background thread
(st.cache_resource, once per server) and a fragment swaps the UMAP map in when ready.
"""
from __future__ import annotations

import os
import threading
import time

import plotly.graph_objects as go
import streamlit as st

from pages._deeplink import ensure_whole_app  # noqa: E402

ensure_whole_app()  # a deep link on a fresh server: rerun through app.py (see the module)

# First paint: title, caption and the chart's frame go out before the imports and the library
# read below (pandas, plotly.express, the prompts), so the browser fetches and compiles
# plotly.js (4.7 MB) meanwhile instead of after them (measured: 5.3-6.7 -> 4.0-4.4 s).
st.title("🧭 Projection")
st.caption("Where the prompts of one backbone sit relative to each other. Each point is a prompt "
           "(the mean of its tokens, or the flattened prompt) or one prompt token. Close on the map "
           "usually means similar in the original space — the neighbour table says how far to trust that.")
chart_slot = st.empty()
if not st.session_state.get("_proj_painted"):  # first run of the session only: no flicker on reruns
    chart_slot.plotly_chart(go.Figure(layout=dict(
        height=640, xaxis=dict(visible=False), yaxis=dict(visible=False), margin=dict(l=10, r=10, t=70, b=10),
        title=dict(text="Loading the map…", font=dict(size=15)))), key="proj_chart_frame", width="stretch")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import plotly.express as px  # noqa: E402

from core import projection as proj  # noqa: E402
from core import fmt  # noqa: E402
from core import labels as L  # noqa: E402
from core import safetext as S  # noqa: E402
from core.mapview import arrows_by_default, spread_stacked  # noqa: E402
from core.config import demo_dir  # noqa: E402
from core import collection as C  # noqa: E402
from pages._shared import (collections_caption, group_selector, library_picker, library_refusal,  # noqa: E402
                           load_library)

METHOD_LABELS = {"umap": "UMAP", "pca": "PCA", "tsne": "t-SNE"}
CATEGORICAL = ["task", "family", "method", "backbone", "source"]
MAX_ARROWS = 2000  # more lines than this hide the points
NONE = "(none)"


# ---------------------------------------------------------------- background UMAP warm-up


def _warm():
    # Wait before compiling: numba's compile holds the GIL and a core for 5-25 s, and started
    # at once it slowed the first paint by ~2.4 s (bench/projection_speed.py, 14.8 -> 12.4 s):
    # the server then answers the browser's requests (plotly.js, the chart) only between
    # compiler steps. A map never waits for the warm-up (precomputed maps and PCA show first).
    time.sleep(float(os.environ.get("ATLAS_UMAP_WARM_DELAY", "8")))
    try:
        proj.warm_umap()
    except Exception:  # noqa: BLE001 — recorded in proj.umap_status(), shown by the page
        pass


@st.cache_resource(show_spinner=False)
def umap_warmer() -> threading.Thread:
    """Start the one UMAP warm-up thread of this server process (numba compile, 5-25 s)."""
    t = threading.Thread(target=_warm, name="umap-warmup", daemon=True)
    t.start()
    return t


@st.cache_data(show_spinner=False, max_entries=64)
def _trust(key: str, k: int, _X: np.ndarray, _coords: np.ndarray) -> float | None:
    """Trustworthiness of one map (key identifies X + coords; O(N^2), so computed once)."""
    return proj.trustworthiness(_X, _coords, k=k)


# ---------------------------------------------------------------- state from the URL


def _seed_from_query():
    """Query params seed the widgets once per session; afterwards the widgets lead."""
    if st.session_state.get("_proj_seeded"):
        return
    qp = st.query_params
    m = qp.get("method", "umap").lower()
    st.session_state["proj_method"] = m if m in proj.METHODS else "umap"
    st.session_state["proj_dims"] = "3-D" if qp.get("dims") == "3" else "2-D"
    st.session_state["proj_find"] = qp.get("highlight", "")
    if qp.get("group"):
        st.session_state["proj_group"] = qp.get("group")
    st.session_state["_proj_seeded"] = True


def _write_query(method: str, group: str, dims: int, find: str):
    # set only what changed: each write costs a browser history update
    want = {"method": method, "group": group, "dims": str(dims), "highlight": find.strip()}
    for k, v in want.items():
        if v and st.query_params.get(k) != v:
            st.query_params[k] = v
        elif not v and k in st.query_params:
            del st.query_params[k]


# ---------------------------------------------------------------- figure


def _arrows(fig: go.Figure, table: pd.DataFrame, pairs: list[tuple[str, str]], dims: int) -> int:
    """One trace for all transfer arrows (source -> target). Per-arrow layout annotations
    cost ~20 ms each to build (80 arrows: 1.8 s per rerun); a trace costs ~10 ms in all."""
    pos = {n: i for i, n in enumerate(table["name"])}
    pairs = [(s, t) for s, t in pairs if s in pos and t in pos][:MAX_ARROWS]
    if not pairs:
        return 0
    axes = list("xyz"[:dims])
    P = table[axes].to_numpy(dtype=float)
    cols: list[list] = [[] for _ in axes]
    sizes: list[float] = []
    for s, t in pairs:
        a, b = P[pos[s]], P[pos[t]]
        head = a + 0.88 * (b - a)  # the head sits just before the target's marker
        for j in range(dims):
            cols[j] += [a[j], head[j], b[j], None]
        sizes += [0, 11, 0, 0]
    style = dict(name="transfer (source → target)", hoverinfo="skip", showlegend=True)
    if dims == 2:
        # faint: the points are what a person reads and clicks; the arrows say where they came from
        fig.add_trace(go.Scatter(x=cols[0], y=cols[1], mode="lines+markers", **style,
                                 line=dict(color="rgba(60,60,60,0.22)", width=1),
                                 marker=dict(symbol="arrow", angleref="previous", size=sizes,
                                             color="rgba(60,60,60,0.45)")))
    else:  # scatter3d has no arrow markers: lines, with a dot marking the target end
        fig.add_trace(go.Scatter3d(x=cols[0], y=cols[1], z=cols[2], mode="lines+markers", **style,
                                   line=dict(color="rgba(60,60,60,0.5)", width=3),
                                   marker=dict(size=[0, 3, 0, 0] * len(pairs), color="rgba(60,60,60,0.8)")))
    return len(pairs)


def build_figure(table: pd.DataFrame, dims: int, colour: str, symbol: str, hits: list[int],
                 pairs: list[tuple[str, str]], title: str,
                 colour_map: dict | None = None) -> tuple[go.Figure, int]:
    """Scatter of table (x, y[, z] + metadata); hits = rows to highlight. Returns (fig, n arrows).

    A click or box selection is highlighted by plotly itself in the browser (selected points larger
    and opaque, the rest faded): drawing it into the figure would change the figure, and Streamlit
    then treats the chart as a new widget and forgets the selection."""
    raw = table
    # what plotly shows (legend, hover, point labels) as text, never as its HTML subset: a task named
    # <a href=...> is no live link in the legend (core.safetext); a click hands back the raw name
    table = table.copy()
    table["_raw_name"] = raw["name"]
    for c in [c for c in table.columns if c not in ("x", "y", "z", "_raw_name")]:
        if not pd.api.types.is_numeric_dtype(table[c]):
            table[c] = [v if not isinstance(v, str) else S.plotly(v) for v in table[c].astype(object)]
    hover = [c for c in ["task", "family", "method", "backbone", "source", "score", "L", "token"]
             if c in table and c != "name"]
    kw = dict(color=None if colour == NONE else colour, symbol=None if symbol == NONE else symbol,
              hover_name="name", hover_data={c: True for c in hover}, custom_data=["_raw_name"],
              title=S.plotly(title), height=640,
              # core.labels: a task / family keeps its colour on every page and view (not plotly's cycle of 10);
              # keyed like the escaped values plotly is given
              **({"color_discrete_map": {S.plotly(k) if isinstance(k, str) else k: v for k, v in colour_map.items()}}
                 if colour_map and colour in CATEGORICAL else {}))
    if dims == 3:
        fig = px.scatter_3d(table, x="x", y="y", z="z", **kw)
        fig.update_traces(marker=dict(size=5))
    else:
        fig = px.scatter(table, x="x", y="y", **kw)
        # a little smaller and see-through, white-rimmed: points that still touch stay distinguishable
        fig.update_traces(marker=dict(size=9, opacity=0.85, line=dict(width=0.8, color="white")),
                          selected=dict(marker=dict(size=16, opacity=1.0)),
                          unselected=dict(marker=dict(opacity=0.25)))
        fig.update_yaxes(scaleanchor="x", scaleratio=1)  # distances mean the same on both axes
    n_arrows = _arrows(fig, raw, pairs, dims)
    if hits:
        h = table.iloc[hits]
        common = dict(mode="markers+text", text=h["name"], textposition="top center", name="search",
                      hoverinfo="skip", customdata=h[["_raw_name"]].to_numpy())
        if dims == 3:
            fig.add_trace(go.Scatter3d(x=h["x"], y=h["y"], z=h["z"], **common,
                                       marker=dict(size=12, color="rgba(0,0,0,0)",
                                                   line=dict(color="crimson", width=4))))
        else:
            fig.add_trace(go.Scatter(x=h["x"], y=h["y"], **common,
                                     marker=dict(size=22, symbol="circle-open", color="crimson",
                                                 line=dict(width=3))))
    fig.update_layout(legend=dict(itemsizing="constant"), margin=dict(l=10, r=10, t=70, b=10),
                      title=dict(text=S.plotly(title), font=dict(size=15), y=0.98, yanchor="top"),
                      # zoom, not lasso: in Streamlit 1.67 a chart in lasso drag mode turns a click
                      # into an empty selection; box/lasso stay one click away in the modebar
                      dragmode="zoom" if dims == 2 else "orbit")
    return fig, n_arrows


def selected_names(event, fig: go.Figure) -> list[str]:
    """Names of the points in a plotly selection event (click, box or lasso)."""
    try:
        points = event.selection.points  # type: ignore[union-attr]
    except AttributeError:
        try:
            points = event["selection"]["points"]
        except (KeyError, TypeError):
            return []
    names: list[str] = []
    for p in points or []:
        name = None
        cd = p.get("customdata")
        if isinstance(cd, (list, tuple)) and cd:
            name = cd[0]
        elif isinstance(cd, str):
            name = cd
        if name is None:  # fall back to the trace's own customdata
            c, i = p.get("curve_number"), p.get("point_index", p.get("point_number"))
            try:
                name = fig.data[c].customdata[i][0]
            except (TypeError, IndexError, KeyError, AttributeError):
                name = None
        if name is not None and str(name) not in names:
            names.append(str(name))
    return names


def _fig_bytes(fig: go.Figure, fmt: str) -> bytes:
    return fig.to_image(format=fmt, width=1200, height=900, scale=2 if fmt == "png" else 1)


# ---------------------------------------------------------------- page

_seed_from_query()
with st.expander("Collections", expanded=bool(library_refusal())):  # a refused ?lib= must be seen
    collections = library_picker()
# The demo keeps its PoT / PANDA runs' prompts beside its library: on the map they show
# where transfer moved each prompt (arrows source -> target).
demo_transfers = demo_dir() / "transfers"
names = [c.name for c in collections]
if demo_transfers.is_dir() and C.DEMO in names and C.TRANSFERS not in names:
    n_transfers = sum(1 for _ in demo_transfers.iterdir())
    if st.checkbox(f"With the demo's {n_transfers} transferred prompts (its PoT / PANDA / scratch runs)",
                   value=True, key="proj_with_transfers"):
        collections = [*collections, C.available()[C.TRANSFERS]]
index = load_library(collections)
collections_caption(collections, index, "projection")

if not index.prompts:
    st.info("No prompts to map yet. Build the demo library (`make demo`), add prompts on the "
            "Library page, or open this page with `?lib=/path/to/prompts`.")
    chart_slot.empty()
    st.stop()

groups = index.groups()
if st.session_state.get("proj_group") not in groups:
    st.session_state.pop("proj_group", None)

c1, c2, c3, c4 = st.columns([2.6, 2.6, 1.2, 1.8])
with c1:
    group = group_selector(index, key="proj_group")
with c2:
    method = st.segmented_control("Method", list(proj.METHODS), key="proj_method",
                                  format_func=METHOD_LABELS.get, required=True,
                                  help="UMAP keeps local neighbourhoods, PCA is linear and instant, "
                                       "t-SNE separates clusters but distances between them mean little.")
    method = method or "umap"
with c3:
    dims = 3 if st.radio("View", ["2-D", "3-D"], key="proj_dims", horizontal=True) == "3-D" else 2
with c4:
    point_mode = st.radio("Points", ["prompt", "token"], key="proj_points", horizontal=True,
                          format_func={"prompt": "one per prompt", "token": "one per token"}.get)

prompts = index.group_prompts(group)

with st.expander("Parameters", expanded=False):
    p1, p2, p3 = st.columns(3)
    reduce = p1.radio("Prompt → point", ["mean", "flat"], key="proj_reduce", horizontal=True,
                      disabled=point_mode == "token",
                      format_func={"mean": "mean of tokens", "flat": "flattened (same L only)"}.get)
    metric = p1.radio("Metric", list(proj.METRICS), key="proj_metric", horizontal=True,
                      help="cosine: direction only (PCA on L2-normalised points); euclidean: raw values")
    n_neighbors = p2.slider("UMAP n_neighbors", 2, 100, 15, key="proj_nn",
                            help="clamped to the number of points − 1")
    min_dist = p2.slider("UMAP min_dist", 0.0, 1.0, 0.1, 0.05, key="proj_md")
    perplexity = p3.slider("t-SNE perplexity", 2.0, 100.0, 30.0, 1.0, key="proj_perp",
                           help="clamped to (points − 1) / 3")
    seed = p3.number_input("Seed", 0, 2**31 - 1, 0, key="proj_seed")
    k_nn = p3.slider("Neighbours shown / trustworthiness k", 1, 20, 5, key="proj_k")

cfg = proj.ProjectionConfig(method=method, n_components=dims, point_mode=point_mode, reduce=reduce,
                            metric=metric, n_neighbors=n_neighbors, min_dist=min_dist,
                            perplexity=perplexity, seed=int(seed))
precomputed_dir = demo_dir() / "projections"

def pca_map(c: proj.ProjectionConfig):
    """The PCA map for ``c``: from a cache, else priced first like any computation (core.budget "pca",
    issue 24: token points of a big ?lib= subset are not free) and computed holding one slot of the
    global cap. A viewer above the per-click ceiling or the rate limit is refused with the cost: the
    page shows that message and no map."""
    found = proj.lookup(prompts, c, group=group, precomputed_dir=precomputed_dir)
    if found is not None:
        return found
    from core import jobs as J
    from pages import _budget as BU
    n = sum(p.L for p in prompts) if c.point_mode == "token" else len(prompts)
    ledger = BU.ledger()
    if ledger is None:
        return None
    d = BU.decide(J.estimate("pca", n, ledger), can_background=False)
    if d.action == "refuse":
        st.warning(d.message, icon="🔒")
        return None
    return BU.run_inline("pca", n, lambda: proj.project(prompts, c), title=f"PCA of {n:,} points",
                         units_done=lambda r: n if r.source in ("", "computed") else 0)


waiting_for_umap = False
try:
    result = proj.lookup(prompts, cfg, group=group, precomputed_dir=precomputed_dir)
    if result is None and method == "umap" and not proj.umap_is_warm():
        # never block on the numba compile: PCA now, UMAP when the warm-up thread (started
        # at the end of this run, so it does not compete with the first paint) is done
        waiting_for_umap = proj.umap_status()["error"] is None
        result = pca_map(proj.fallback_config(cfg))
    elif result is None and method == "pca":
        result = pca_map(cfg)
    elif result is None:
        # issue 24: a t-SNE/UMAP map is priced first (core.budget); a viewer above the per-click ceiling,
        # or any click while every compute slot is taken (core.jobs), gets the PCA map and one line why
        from core import jobs as J
        from pages import _budget as BU
        n_points = sum(p.L for p in prompts) if point_mode == "token" else len(prompts)
        ledger = BU.ledger()
        d = BU.decide(J.estimate(method, n_points, ledger)) if ledger is not None else None
        if d is not None and d.action == "job":  # full mode above the ceiling: computed by a worker, PCA meanwhile
            import dataclasses
            map_cfg = dataclasses.asdict(cfg)
            st.caption(d.message)
            if BU.start_job(method, prompts, d.cost, map_cfg=map_cfg) is not None:
                BU.job_panel(J.map_key(prompts, map_cfg))
        elif d is not None and d.action != "refuse":
            if d.message:
                st.caption(d.message)
            slow = " (3-D t-SNE of this many points can take a minute)" if (
                method == "tsne" and dims == 3 and n_points > 1000 and point_mode == "token") else ""
            with st.spinner(f"Computing {METHOD_LABELS[method]} of {len(prompts)} prompts…{slow}"):
                result = BU.run_inline(method, n_points, lambda: proj.project(prompts, cfg),
                                       title=f"{METHOD_LABELS[method]} of {n_points:,} points",
                                       units_done=lambda r: n_points if r.source in ("", "computed") else 0)
        elif d is not None:
            st.warning(d.message, icon="🔒")
        if result is None:
            result = pca_map(proj.fallback_config(cfg))
            if result is not None:
                st.caption(f"Showing the PCA map instead of {METHOD_LABELS[method]}.")
    if result is None:  # PCA refused or every compute slot busy: the message above says which
        chart_slot.empty()
        st.stop()
except proj.ProjectionError as e:
    st.error(f"Cannot map group {S.md_code(group)}: {S.md(e)}")
    chart_slot.empty()
    st.stop()

status = proj.umap_status()
if method == "umap" and status["error"]:
    st.warning(f"UMAP is unavailable on this server ({S.md(status['error'])}); showing PCA instead.")
elif waiting_for_umap:
    st.info("UMAP is warming up (a one-time numba compile per server, usually 5–25 s). "
            "Showing PCA meanwhile; the map switches to UMAP by itself when it is ready.")

    @st.fragment(run_every=2.0)
    def _poll_umap():
        if proj.umap_is_warm() or proj.umap_status()["error"]:
            st.rerun(scope="app")
        st.caption("⏳ waiting for UMAP…")

    _poll_umap()
for note in result.notes:  # core's own words and numbers (core.projection.config), nothing a user typed
    st.caption(f"ℹ️ {note}")

table = result.table()
for c in CATEGORICAL:
    if c in table:
        table[c] = table[c].fillna("—").replace("", "—").astype(str)
names = table["name"].tolist()
prompt_col = "prompt" if point_mode == "token" else "name"

# ---- display options
o1, o2, o3, o4 = st.columns([2, 2, 2.4, 2])  # o4: two toggles whose labels must fit
colour_options = [c for c in CATEGORICAL if c in table and table[c].nunique() > 0] + ["score", NONE]
colour = o1.selectbox("Colour by", colour_options, key="proj_colour")
symbol_options = [NONE] + [c for c in CATEGORICAL if c in table]
if "proj_symbol" not in st.session_state and "method" in table and table["method"].nunique() > 1:
    st.session_state["proj_symbol"] = "method"  # scratch vs transferred prompts at a glance
symbol = o2.selectbox("Symbol by", symbol_options, key="proj_symbol",
                      help="there are only a few marker shapes: with many categories, shapes repeat")
find = o3.text_input("Find a prompt", key="proj_find", placeholder="name or part of it")
pairs = proj.transfer_pairs(prompts) if point_mode == "prompt" else []
show_arrows = o4.toggle("Arrows", value=arrows_by_default(len(pairs)), key="proj_arrows", disabled=not pairs,
                        help="source → target for prompts made by transfer (pot / panda) from a source in this "
                             "group; off at first when there are more than a few dozen (they hide the points)"
                             if pairs else "no transferred prompts in this group")
spread = dims == 2 and o4.toggle("Spread stacks", value=True, key="proj_spread",
                                 help="points that sit on one another (a source and its transfers) are fanned out "
                                      "around their centre so each can be seen and clicked; the CSV export keeps "
                                      "the projection's own coordinates")
if colour == "score" and table["score"].isna().all():
    colour = NONE

needle = find.strip().lower()
hits = [i for i, n in enumerate(table[prompt_col]) if needle and needle in str(n).lower()]
if needle and not hits:
    st.warning(f"No prompt in this group matches “{S.md(find.strip())}”.")

_write_query(method, group, dims, find)

title = (f"{METHOD_LABELS[result.method]} of {fmt.count(len(prompts), 'prompt')}"
         f"{f' ({len(table)} tokens)' if point_mode == 'token' else ''} — {group}")
shown = table
if spread:
    shown = table.copy()
    shown[["x", "y"]] = spread_stacked(table[["x", "y"]].to_numpy(), order=list(table["name"]))
colour_map = None
if colour in CATEGORICAL:  # colours over the whole chosen library, so a value keeps its colour across groups
    every = list(index.table[colour]) if colour in index.table else list(table[colour])
    colour_map = L.colours(every + ["—"])
fig, n_arrows = build_figure(shown, dims, colour, symbol, hits, pairs if show_arrows else [], title, colour_map)
event = chart_slot.plotly_chart(fig, key="proj_chart", on_select="rerun",
                               selection_mode=("points", "box", "lasso"), width="stretch")
st.session_state["_proj_painted"] = True
src_note = {"precomputed": "precomputed", "memory": "cached", "disk": "cached"}.get(result.source, "computed")
st.caption(f"{fmt.count(len(table), 'point')} · {src_note} in {result.seconds:.2f} s · "
           + (f"{fmt.count(n_arrows, 'transfer arrow')} · " if n_arrows else
              f"{fmt.count(len(pairs), 'transfer arrow')} hidden (toggle Arrows) · " if pairs else "")
           + ("stacked points fanned out · " if spread and not np.array_equal(shown[["x", "y"]].to_numpy(),
                                                                             table[["x", "y"]].to_numpy()) else "")
           + ("box/lasso or click points to select them" if dims == 2 else
              "click a point to select it (plotly has no box/lasso in 3-D)")
           + (" · search hits circled in red" if hits else ""))
if caution := proj.trust_caution(_trust(result.key, k_nn, result.features, result.coords), result.method):
    w1, w2 = st.columns([5, 1], vertical_alignment="center")
    w1.warning(caution, icon="⚠️")
    if result.method != "pca":  # one click: the same group as PCA (the callback runs before the widgets)
        w2.button("Show PCA", key="proj_to_pca", on_click=lambda: st.session_state.update(proj_method="pca"))

# ---- selection -> table + link to the heatmap
chosen = selected_names(event, fig)
if chosen:
    sel = table[table["name"].isin(chosen)]
    st.subheader(f"Selected: {fmt.count(len(sel), 'point')} (enlarged on the map, the rest faded)")
    cols = [c for c in ["name", "task", "family", "method", "source", "score", "L", "token"] if c in sel]
    st.dataframe(sel[cols], hide_index=True, width="stretch")
    # the Transferability page takes target *tasks*, not prompt names (a transfer's name is no task),
    # and the same collections, so the prompts on this map are the ones it compares
    sel_names = list(dict.fromkeys(sel[prompt_col].astype(str)))
    targets = list(dict.fromkeys(t for t in (index.prompts[n].task if n in index.prompts else None
                                             for n in sel_names) if t))
    link_q = {"group": group, "target": ",".join(targets), "col": C.to_param([c.name for c in collections])}
    link_q = {k: v for k, v in link_q.items() if v}
    label = (f"Open {'task ' + S.md(targets[0]) if len(targets) == 1 else f'these {len(targets)} tasks'} "
             "on the Transferability page")
    try:
        st.page_link("pages/transferability.py", label=label, icon="🔥", query_params=link_q)
    except Exception:  # noqa: BLE001 — the page runs outside app.py navigation (tests, single file)
        from urllib.parse import urlencode

        st.markdown(f"[{label}](/transferability?{urlencode(link_q)})")

# ---- one prompt -> nearest neighbours in the original space
st.subheader("Nearest neighbours (original space)")
if len(chosen) == 1 and st.session_state.get("_proj_last_click") != chosen[0]:
    st.session_state["_proj_last_click"] = chosen[0]
    st.session_state["proj_focus"] = chosen[0]
elif len(hits) == 1 and st.session_state.get("_proj_last_hit") != names[hits[0]]:
    st.session_state["_proj_last_hit"] = names[hits[0]]
    st.session_state["proj_focus"] = names[hits[0]]
if st.session_state.get("proj_focus") not in names:
    st.session_state.pop("proj_focus", None)
focus = st.selectbox("Point", names, key="proj_focus",
                     help="click a point on the map, or pick one here")
if "_proj_last_click" not in st.session_state and "_proj_last_hit" not in st.session_state and focus == names[0]:
    st.caption("Showing the first prompt in the list; click a point on the map (or find or pick one) to see another.")
i = names.index(focus)
nn = proj.nearest_neighbours(result.features, i, k=k_nn, coords=result.coords)
nn_table = table.iloc[nn["index"]][[c for c in ["name", "task", "family", "method"] if c in table]].copy()
nn_table["cosine"] = nn["cosine"].to_numpy()
nn_table["rank on map"] = nn["map_rank"].to_numpy()
st.dataframe(nn_table, hide_index=True, width="stretch",
             column_config={"cosine": st.column_config.NumberColumn(format="%.3f"),
                            "rank on map": st.column_config.NumberColumn(
                                help="this neighbour's rank by distance from the point on the map "
                                     f"(1 = closest); ≤ {k_nn} means the map keeps it nearby")})
kept = int((nn["map_rank"] <= k_nn).sum()) if len(nn) else 0
trust = _trust(result.key, k_nn, result.features, result.coords)
m1, m2 = st.columns(2)
m1.metric(f"of its {len(nn)} nearest kept nearby on the map", f"{kept}/{len(nn)}")
m2.metric(f"trustworthiness of the map (k={min(k_nn, max(1, (len(table) - 1) // 2))})",
          "n/a" if trust is None else f"{trust:.3f}",
          help="1.0 = every point's neighbours on the map are its neighbours among the prompts themselves; "
               f"~0.5 = no better than random; below {proj.TRUST_MIN:.2f} the page warns (scikit-learn's "
               "trustworthiness)")

# ---- exports
st.subheader("Export")
e1, e2, e3, e4 = st.columns(4)
stem = f"projection_{result.method}_{dims}d_{group.replace('/', '_').replace(':', '_')}"
e1.download_button("Coordinates (CSV)", S.csv_bytes(table, index=False), f"{stem}.csv", "text/csv",
                   key="proj_dl_csv", on_click="ignore")
e2.download_button("Figure (HTML)", lambda: fig.to_html(include_plotlyjs=True, full_html=True).encode(),
                   f"{stem}.html", "text/html", key="proj_dl_html", on_click="ignore",
                   help="interactive, self-contained (works offline)")
from pages._shared import access  # noqa: E402
if access().viewer:  # issue 24: a viewer's click never starts a browser on the server
    e3.caption("PNG: the 📷 button in the chart's toolbar (made in your browser).")
elif e3.button("Render PNG + SVG", key="proj_render",
               help="static images via kaleido (needs Chrome/Chromium on the server; a few seconds)"):
    from pages import _budget as BU
    try:
        imgs = BU.run_inline("export", 2, lambda: (_fig_bytes(fig, "png"), _fig_bytes(fig, "svg")),
                             title="PNG + SVG export")
        if imgs is not None:
            st.session_state["proj_images"] = (result.key, dims, *imgs)
    except Exception as e:  # noqa: BLE001 — kaleido raises many kinds when Chrome is missing
        st.session_state.pop("proj_images", None)
        st.warning(f"Static image export is unavailable here ({type(e).__name__}: {S.md(str(e)[:200])}). "
                   "Use the HTML export, or the camera icon in the chart's toolbar for a PNG.")
images = st.session_state.get("proj_images")
if images and images[:2] == (result.key, dims):
    e3.download_button("PNG", images[2], f"{stem}.png", "image/png", key="proj_dl_png", on_click="ignore")
    e4.download_button("SVG", images[3], f"{stem}.svg", "image/svg+xml", key="proj_dl_svg",
                    on_click="ignore")

# Start the warm-up after the page is drawn so its compile never delays the first paint.
umap_warmer()
