"""Transferability page: source x target heatmaps of every metric and of measured transfer.

    streamlit run app.py   -> Transferability
    ?metric=e_avg&group=GROUP&order=cluster|family|fixed&target=TASK&lib=PATH   (shareable state)
    &view=task|cluster&block_src=BLOCK&block_tgt=BLOCK     (above 300 prompts: blocks, a drilled block)

Rows are source prompts, columns target prompts (``measured``: target tasks).
One backbone group at a time: prompts of different backbones live in different
embedding spaces and are never compared. Matrices come from core.metrics
(disk cache keyed by the prompts' content hashes; a precomputed demo matrix is
used only while its key matches); measured transfer comes from the demo's
results.csv plus the user's finished runs.

Up to 300 prompts (core.blocks.FULL_DETAIL_MAX) every cell is drawn with its value, hover
and click; above that the page draws blocks (a task or a dendrogram cluster each, at most 60
per axis) and a downsampled overview, and a click on a block shows that block's cells.
Nothing on the page sends one text per cell for all pairs of a large library.
"""
from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlencode

import pandas as pd
import streamlit as st

from core import blocks as B
from core import evidence as E
from core import fmt
from core import metrics as M
from core import results as R
from core import safetext as S
from core.metrics import tables as TB
from core.config import demo_dir
from core.defaults import default_metric
from core.curves import pair_curves, pair_head_starts
from core.estimate import measured_regime
from core.training.trainable import backbone_missing, why_not as why_not_trainable
from pages._deeplink import ensure_whole_app
from pages._transfer_figs import heatmap_figure, overview_figure

ensure_whole_app()  # a deep link on a fresh server: rerun through app.py (see the module)

ORDERS = {"cluster": "clustered (dendrograms)", "family": "task family", "fixed": "library order"}
ANNOTATE_MAX = 40       # cell labels by default up to this many rows/columns
SIDE_LABELS_MAX = 6     # the half-width predicted-vs-measured pair: labels up to this many columns


# ---------------------------------------------------------------- state from the URL
def _seed_from_query():
    """Query params seed the widgets once per session; afterwards the widgets lead."""
    if st.session_state.get("_tr_seeded"):
        return
    qp = st.query_params
    if qp.get("metric") in M.METRICS:
        st.session_state["tr_metric"] = qp.get("metric")
    if qp.get("group"):
        st.session_state["tr_group"] = qp.get("group")
        st.session_state["_tr_group_q"] = qp.get("group")
    if qp.get("order") in ORDERS:
        st.session_state["tr_order"] = qp.get("order")
    if qp.get("head") in M.zs_heads():   # zs's head; checked against the group when the picker is drawn
        st.session_state["_tr_head_q"] = qp.get("head")
    if qp.get("target"):
        st.session_state["_tr_target_q"] = [t.strip() for t in qp.get("target").split(",") if t.strip()]
    # a value the page cannot use is reported, never dropped silently
    bad = [f"{k}={S.md(repr(qp.get(k)))}" for k, ok in (("metric", M.METRICS), ("order", ORDERS), ("view", B.VIEWS),
                                                        ("head", M.zs_heads()))
           if qp.get(k) and qp.get(k) not in ok]
    if bool(qp.get("block_src")) != bool(qp.get("block_tgt")):  # a block is a source block x a target block
        bad.append("block_src and block_tgt (a block needs both)")
    if bad:
        st.session_state["_tr_bad_q"] = bad
    if qp.get("view") in B.VIEWS:
        st.session_state["tr_view"] = qp.get("view")
    if qp.get("block_src") and qp.get("block_tgt") and (not qp.get("view") or qp.get("view") in B.VIEWS):
        # checked against the view's blocks when drawn; no view in the link = the view the page opens with
        st.session_state["_tr_drill"] = (qp.get("view"), qp.get("block_src"), qp.get("block_tgt"))
    st.session_state["_tr_seeded"] = True


def _write_query(**want):
    for k, v in want.items():  # only what changed: each write is a browser history entry
        if v and st.query_params.get(k) != v:
            st.query_params[k] = v
        elif not v and k in st.query_params:
            del st.query_params[k]


# ---------------------------------------------------------------- data (cached at the page edge)
def _stamp(*paths: Path) -> str:
    out = []
    for p in paths:
        try:
            s = p.stat()
            out.append(f"{p}:{s.st_size}:{s.st_mtime_ns}")
        except OSError:
            out.append(f"{p}:-")
    return "|".join(out)


@st.cache_data(show_spinner=False, max_entries=8)
def _results(demo_results: str, runs_db: str | None, stamp: str) -> R.Results:
    """Demo results.csv + the user's finished runs (core.results.gather), shared by sessions."""
    store = None
    if runs_db:
        from core.runs.store import RunStore
        try:
            store = RunStore(runs_db)
        except Exception as e:  # noqa: BLE001 -- a corrupt runs.db costs the user's runs, not the page
            return R.Results(R.gather(demo_results, None).table, store_problem(e))
    return R.gather(demo_results, store)


def store_problem(e: Exception) -> str:
    """One line for an unreadable run store: the file (relative to ATLAS_HOME, no server path) and what to do."""
    return (f"ATLAS_HOME/runs.db is not a readable run store ({type(e).__name__}: {str(e)[:120]}); only the demo's "
            "runs are shown. Move that file aside (the next run starts a new store) or restore it from a backup.")


def load_results() -> pd.DataFrame:
    demo_results = demo_dir() / "results.csv"
    db = None
    try:
        from core.runs.store import default_db_path
        p = Path(default_db_path())
        db = str(p) if p.is_file() else None
    except Exception:  # noqa: BLE001 -- core.runs.store missing or not importable: demo only
        db = None
    paths = [demo_results] + ([Path(db), Path(db + "-wal")] if db else [])
    try:
        res = _results(str(demo_results), db, _stamp(*paths))
    except R.ResultsError as e:
        st.error(S.md(e))
        return pd.DataFrame()
    if res.store_error:
        st.session_state["_tr_store_error"] = res.store_error
    return res.table


def mparams(metric: str) -> dict:
    """What a metric's matrix is computed with beyond the prompts: zs's head (the sidebar's "zs head",
    core.metrics.zs_params: {} for the cosine head)."""
    return M.zs_params(st.session_state.get("tr_zs_head")) if metric == "zs" else {}


@st.cache_data(show_spinner=False, max_entries=64)
def _computed(metric: str, group: str, lib_hash: str, head: str | None, _prompts) -> pd.DataFrame:
    """Shared by all sessions; core.metrics keeps its own disk cache too."""
    return M.compute_matrix(metric, _prompts, **(M.zs_params(head) if metric == "zs" else {}))


def get_matrix(metric: str, group: str, lib_hash: str, prompts, allow_compute: bool) -> pd.DataFrame | None:
    """precomputed demo matrix (key must match) -> disk cache -> computed (only if allowed).

    Found matrices are remembered per session; "not known yet" is never remembered, so a
    matrix computed later (button, CLI, another session) shows up on the next rerun.
    """
    memo = st.session_state.setdefault("_tr_mats", {})
    params = mparams(metric)
    key = (metric, group, lib_hash, params.get("head"))
    if key in memo:
        return memo[key]
    df = M.cached_matrix(metric, prompts, precomputed=demo_dir() / "matrices",
                         trust_names=M.all_from(prompts, demo_dir() / "prompts"), **params)
    if df is None and allow_compute:
        df = _computed(metric, group, lib_hash, params.get("head"), prompts)
    if df is not None:
        memo[key] = df
    return df


def metered_matrix(metric: str, *, quiet: bool = False) -> pd.DataFrame | None:
    """A prompt-space matrix found nowhere, computed only once its price is decided (core.budget, issue 24):
    a viewer above the per-click ceiling (or over the rate limit) is refused with the cost stated; full mode
    above the ceiling gets a background job (core.jobs); else it runs here holding one slot of the global cap.
    ``quiet``: a matrix the page wants in passing (the pair details' fallback) shows no job panel."""
    from core import jobs as J
    from pages import _budget as BU
    ledger = BU.ledger()
    if ledger is None:
        return None
    est = J.estimate_metric(metric, prompts, ledger, mparams(metric))
    key = J.job_key(metric, prompts, mparams(metric))
    job = J.latest_job(key, ledger) if quiet else BU.job_panel(key)
    if job is not None and job["status"] in ("queued", "running"):
        return None  # the job's panel shows its progress; the matrix is read from the cache when it ends
    if job is not None and job["status"] in ("failed", "cancelled") and (
            quiet or not st.button(f"Compute {metric} again", key=f"tr_recompute_{metric}")):
        return None  # never restarted behind the user's back
    d = BU.decide(est)
    if d.action == "refuse":
        st.warning(d.message, icon="🔒")
        return None
    if d.action == "job":
        if not quiet and BU.start_job(metric, prompts, est, params=mparams(metric)) is not None:
            st.rerun()
        st.caption(d.message)
        return None
    if d.message:
        st.caption(d.message)
    return BU.run_inline(metric, est.units, lambda: get_matrix(metric, group, lib_hash, prompts, True),
                         title=f"{metric} of {len(prompts)} prompts")


@st.cache_data(show_spinner=False, max_entries=64)
def _cluster(key: str, _mat: pd.DataFrame) -> M.Clustering:
    return M.cluster(_mat)


@st.cache_data(show_spinner=False, max_entries=16)
def _block_view(key: str, view: str, order: str, _shown: pd.DataFrame, _row_task: B.Groups, _col_task: B.Groups,
                _info: dict[str, tuple]) -> B.BlockView:
    """core.blocks.block_view, shared by sessions; ``key`` names the matrix, view and order."""
    return B.block_view(_shown, view, order=order, row_task=_row_task, col_task=_col_task, info=_info)


family_order = B.family_order


def runs_url(**params) -> str:
    return "/runs?" + urlencode({k: v for k, v in params.items() if v})


def link_to_runs(label: str, **params):
    try:
        st.page_link("pages/runs.py", label=label, icon="🚀", query_params={k: v for k, v in params.items() if v})
    except Exception:  # noqa: BLE001 -- page run alone (AppTest, single file): a plain link instead
        st.markdown(f"[🚀 {label}]({runs_url(**params)})")


# ================================================================ page
st.title("🔥 Transferability")
st.caption("Which source prompts help which target tasks, and how far to trust each prediction. Rows = source "
           "prompts, columns = targets; higher = predicted to transfer better. What each metric, the noise band and "
           "the validation measures mean: [Definitions](/definitions).")
_seed_from_query()
if st.session_state.get("_tr_bad_q"):
    st.warning(f"Not understood in the link, left out: {', '.join(st.session_state.pop('_tr_bad_q'))}.")

try:
    from pages._shared import (access, collections_caption, group_selector, library_picker, library_refusal,
                               load_library, gain_column, shown_path, validation_view, zs_head_picker)
except ImportError as e:  # the shared helpers are another engineer's module
    st.error(f"The prompt library helpers are not available ({S.md(e)}).")
    st.stop()

# the controls live in the sidebar, the heatmap on the first screen (1280×800: it starts in its upper half)
with st.sidebar.expander("Collections", expanded=bool(library_refusal())):  # a refused ?lib= must be seen
    chosen = library_picker()
index = load_library(chosen) if chosen else None
with st.sidebar:
    collections_caption(chosen, index, "transferability")
if index is None or not index.prompts:
    st.info(f"No prompts to compare yet. The demo library ({S.md_code(shown_path(demo_dir()))}) is not built (`make demo`), and no "
            "other folder is chosen: add prompts on the Library page, point `ATLAS_LIBRARY` at a folder, or "
            "open this page with `?lib=/path/to/prompts`.")
    st.stop()

groups = index.groups()
c_group, c_metric, c_order = (st.sidebar.container() for _ in range(3))
with c_group:
    group = group_selector(index, key="tr_group", short=True)  # in the sidebar: the model's short name
if group is None:
    st.stop()
q_group = st.session_state.pop("_tr_group_q", None)
if q_group and q_group not in groups:
    st.warning(f"The link's group {S.md_code(q_group)} is not in the chosen collections; showing {S.md_code(group)}.")
prompts = index.group_prompts(group)
names = [p.name for p in prompts]
by_name = {p.name: p for p in prompts}
backbone = prompts[0].backbone
if len(groups) > 1:
    c_group.caption(f"This library holds {len(groups)} backbone groups ({S.md_list(groups)}). A prompt's vectors live in "
               "its own model's embedding space, so prompts of different backbones are never compared: each "
               "group gets its own matrix.")

# launches are offered only where this group's backbone loads here; else one line says which model to fetch
launch_blocked = backbone_missing(backbone) if not access().viewer else None
results_all = load_results()
results = R.for_group(results_all, set(names), backbone)
measured_ok = bool(R.transfer_methods(results))  # some run other than scratch


def no_runs_message() -> str:
    """core's reason as markdown: its quoted group as a code span, the demo's file named as a viewer may see it."""
    csv = demo_dir() / "results.csv"
    return S.md_message(R.no_runs_reason(results_all, group, csv, cannot_launch=launch_blocked)
                        .replace(str(csv), shown_path(csv)))


@st.cache_data(show_spinner=False)
def _validated_scores(folder: str, stamp: float) -> list[dict]:
    """Each metric's mean Spearman ρ against the demo's measured runs (core.headline, torch-free)."""
    from core.headline import headline
    try:
        return headline(folder).metric_scores
    except Exception:  # noqa: BLE001 -- a broken demo: no metric is validated, the rule says so
        return []


def _can_show(m: str) -> bool:
    """Shown for this group without computing a backbone metric on the first paint."""
    if m not in M.METRICS or m == "measured" or not M.metric_status(m, prompts)[0]:
        return False
    return not M.METRICS[m].needs_backbone or get_matrix(m, group, index.content_hash(), prompts, False) is not None


_results_csv = demo_dir() / "results.csv"
# core.defaults.default_metric: measured where this group has runs, else the best-validated metric shown here
default_m, default_why = default_metric(
    measured_ok, _can_show,
    _validated_scores(str(demo_dir()), _results_csv.stat().st_mtime) if _results_csv.is_file() else [])
if st.session_state.get("tr_metric") == "measured" and not measured_ok:
    # a metric this group can show (e.g. after switching to a group no run has measured)
    st.session_state["tr_metric"] = default_m
    st.info(f"{no_runs_message()} Showing `{default_m}` instead.")


def metric_label(m: str) -> str:
    spec = M.METRICS[m]
    tag = " · needs model" if spec.needs_backbone else ""
    return f"{m} — {spec.label}{tag}"


with c_metric:
    options = list(M.METRICS)
    if st.session_state.get("tr_metric") not in options:
        st.session_state["tr_metric"] = default_m
    metric = st.selectbox("Metric", options, key="tr_metric", format_func=metric_label)
with c_order:
    if st.session_state.get("tr_order") not in ORDERS:
        st.session_state["tr_order"] = "cluster"
    order = st.selectbox("Order", list(ORDERS), key="tr_order", format_func=ORDERS.get)
spec = M.METRICS[metric]
c1, c2, c3, c4 = (st.sidebar.container() for _ in range(4))  # one per line: no label is cut
normalise = c1.toggle("Per-target normalisation", key="tr_norm",
                      help="z-score each column over its sources: which source is best for *this* target")
method = None
if metric == "measured":
    transfer_methods = R.transfer_methods(results) if measured_ok else []
    if transfer_methods:
        if st.session_state.get("tr_method") not in transfer_methods:
            st.session_state["tr_method"] = "pot" if "pot" in transfer_methods else transfer_methods[0]
        method = c2.selectbox("Transfer method", transfer_methods, key="tr_method")
zs_head = None
if metric == "zs":  # which head reads each source (core.metrics.zs_params); opens on how the group was trained
    zs_head = zs_head_picker(c2, "tr_zs_head", prompts, group, link=st.session_state.pop("_tr_head_q", None))
with st.expander(f"What `{metric}` is: {spec.label}"):  # the formula, folded: the heatmap comes first
    st.caption(fmt.sentence(f"**{spec.label}** = {spec.description}.", f"Source: {spec.source}")
               + (" **Our reading** — not a formula from the paper." if spec.our_reading and metric == "panda_sim" else "")
               + (" **Ours** — a direct probe no peer tool offers." if metric == "zs" else "")
               + (f" Read here through the **{zs_head}** head"
                  + (" (pooled features against the label descriptions)." if zs_head == "cosine" else
                     " (the model's own LM head with that preset's layout and label words, as the prompts were "
                     "trained; `python -m core matrix --metric zs --head " + zs_head + "`).")
                  if metric == "zs" else ""))

# ---- the matrix --------------------------------------------------------------------------------
lib_hash = index.content_hash()
mat = None
meas = None
noise_mask = None
ev = ev_marks = ev_hover = None  # core.evidence on the measured matrix
status_msg = ""
t0 = time.perf_counter()
if measured_ok:
    try:
        generic = R.generic_sources(results["source"].unique(), lambda s: by_name[s].task if s in by_name else None)
        meas = M.measured(results, method=method if metric == "measured" else None, generic=generic)
    except M.MetricError as e:
        st.warning(S.md(e))
if metric == "measured":
    if meas is None or meas.mean.empty:
        st.info(no_runs_message())
    else:
        mat = meas.mean
        noise_mask = meas.inside_noise()
        # core.evidence's marks and absolute numbers per cell (the same rule as Home and the CLI)
        ev = E.evidence(results, method=meas.method, generic=generic,
                        prompt_tasks={n: p.task for n, p in by_name.items() if p.task})
        ev_marks = ev.marks
        ev_hover = pd.DataFrame({t: {s: E.cell_text(ev, s, t) for s in ev.gain.index} for t in ev.gain.columns})
else:
    ok, status_msg = M.metric_status(metric, prompts)
    if not ok:
        st.warning(S.md(status_msg))
        if spec.needs_backbone:
            st.caption(f"`{metric}` runs the prompts through their frozen model. These prompts were trained for "
                       f"{S.md_code(backbone or 'an unknown model')}, which is not available on this machine (no network, not "
                       "in the local Hugging Face cache), so only the prompt-space metrics (e_avg, e_tok, e_flat, "
                       "euclid) can be shown for them.")
    else:
        if status_msg:
            st.caption(S.md(status_msg))
        try:
            mat = get_matrix(metric, group, lib_hash, prompts, False)
            if mat is None and not spec.needs_backbone:
                mat = metered_matrix(metric)
        except M.MetricError as e:
            st.warning(S.md(e))
        if mat is None and spec.needs_backbone:
            # issue 24: priced before it starts (core.budget); zs, and anything above the per-click ceiling in
            # full mode, is a shared, resumable background job (core.jobs); a viewer above the ceiling is refused
            from core import jobs as J
            from pages import _budget as BU
            est, ledger = None, BU.ledger()
            if ledger is not None:
                try:
                    est = J.estimate_metric(metric, prompts, ledger, mparams(metric))
                except M.MetricError as e:
                    st.warning(S.md(e))
            if est is not None:
                st.info(f"`{metric}` is not computed for this group yet on {S.md_code(backbone)}. Cost: {est.text()}.")
                job = BU.job_panel(J.job_key(metric, prompts, mparams(metric)))
                active = job is not None and job["status"] in ("queued", "running")
                if st.button(f"Compute {metric}", key="tr_compute", disabled=active):
                    d = BU.decide(est)
                    if d.action == "refuse":
                        st.warning(d.message, icon="🔒")
                    elif d.action == "job" or metric == "zs":
                        if BU.start_job(metric, prompts, est, params=mparams(metric)) is not None:
                            st.rerun()
                    else:
                        with st.spinner(f"Computing {metric}…"):
                            try:
                                mat = BU.run_inline(metric, est.units, lambda: get_matrix(metric, group, lib_hash,
                                                                                        prompts, True),
                                                    title=f"{metric} of {len(names)} prompts")
                            except M.MetricError as e:
                                st.warning(S.md(e))

view = ""      # "" = every cell; else a block view (core.blocks.VIEWS), above B.FULL_DETAIL_MAX prompts
drill = None   # (row block, column block) shown cell by cell
if mat is not None and not mat.empty:
    shown = TB.per_target_z(mat) if normalise else mat
    zlabel = ("z (per target)" if normalise else "relative gain" if metric == "measured" else metric)
    diverging = metric == "measured" or normalise
    is_gain = metric == "measured" and not normalise  # relative gains read in % (core.fmt)
    key_base = f"{metric}|{group}|{lib_hash}|{method}|{normalise}|{meas is not None and len(meas.runs)}"

    def arrange(sub: pd.DataFrame, key: str) -> tuple[pd.DataFrame, M.Clustering | None]:
        """The chosen order of a matrix that is drawn cell by cell (<= B.FULL_DETAIL_MAX per axis)."""
        if order == "cluster" and min(sub.shape) >= 2:
            cl = _cluster(key, sub)
            return sub.loc[cl.rows, cl.cols], cl
        if order == "family":
            info = family_info(list(sub.columns))
            return sub.loc[family_order(list(sub.index), info), family_order(list(sub.columns), info)], None
        return sub, None

    def family_info(extra: list[str]) -> dict[str, tuple]:
        info = {n: (p.family or "~", p.task or "~") for n, p in by_name.items()}
        for c in extra:
            if c not in info:  # a target task (measured) or a task block
                fam = next((p.family for p in prompts if p.task == c and p.family), None)
                info[c] = (fam or "~", c)
        return info

    def annotate_toggle(shape, key: str = "tr_annot") -> bool:
        """Cell labels on/off; blocks have their own key, so a choice made on 20 blocks does not
        label the 2,500 cells of a drilled block."""
        annotate = st.session_state.get(key)
        if annotate is None:
            annotate = max(shape) <= ANNOTATE_MAX
        return c3.toggle("Cell values", value=bool(annotate), key=key)

    if not B.needs_blocks(shown.shape):
        shown, clustering = arrange(shown, key_base)
        fig = heatmap_figure(shown, clustering=clustering, annotate=annotate_toggle(shown.shape),
                             diverging=diverging, noise=noise_mask, zlabel=zlabel, gain=is_gain,
                             marks=ev_marks, hover=ev_hover if is_gain else None)
        build_s = time.perf_counter() - t0
        event = st.plotly_chart(fig, key="tr_heatmap", on_select="rerun", selection_mode="points", width="stretch")
        st.caption(f"{fmt.count(shown.shape[0], 'source')} × {fmt.count(shown.shape[1], 'target')} · ready in {build_s:.2f} s · click a cell "
                   "for the pair's details"
                   + (" · values too dense to print at this size: hover a cell for its value"
                      if (fig.layout.meta or {}).get("values_hidden") else "")
                   + (" · ○ = inside the noise band: |gain| ≤ the seed-to-seed spread of scratch on that target"
                      if noise_mask is not None and noise_mask.values.any() else ""))
        if ev is not None:
            st.caption(f"{ev.summary()}. Marks (core.evidence, the same on Home and in `python -m core demo "
                       "report`): " + ", ".join(f"{v} {k}" for k, v in E.MARK_SYMBOL.items() if k != E.INSIDE_NOISE)
                       + "; grey hatched cells are self-transfers (source task = target), left out of the colour "
                       "scale and of every best source. Hover a cell for the run's and scratch's accuracy and the "
                       "majority rate." + ("" if ev.targets["measurable"].all() else " Not measurable at this "
                       "budget: " + "; ".join(f"`{t}`: {ev.targets.at[t, 'why']}" for t in ev.targets.index
                                               if not ev.targets.at[t, "measurable"]) + "."))
    else:
        # ---- blocks: a task or a dendrogram cluster per block; a click on a block shows its cells
        task_of = {p.name: p.task for p in prompts}
        row_task = B.task_groups(list(shown.index), task_of)
        col_task = B.task_groups(list(shown.columns), task_of)
        views = B.views_for(row_task, col_task)
        if st.session_state.get("tr_view") not in views:
            st.session_state["tr_view"] = views[0]
        view = c4.selectbox("View", views, key="tr_view", format_func=B.VIEWS.get,
                            help=f"Above {B.FULL_DETAIL_MAX} prompts the matrix is shown as blocks; click a block "
                                 "to see its prompts cell by cell.")
        with st.spinner("Grouping the matrix into blocks (once per matrix)…"):
            bv = _block_view(f"{key_base}|{view}|{order}", view, order, shown, row_task, col_task,
                             family_info(list(row_task) + list(col_task)))
        rg, cg, bmean, block_cl, ov = bv.rows, bv.cols, bv.mean, bv.clustering, bv.overview
        want = st.session_state.get("_tr_drill")
        if want and want[0] is None:  # a link naming a block but no view: the view shown now
            st.session_state["_tr_drill"] = want = (view, want[1], want[2])
        if want and want[0] != view:  # the view was changed: its blocks are other blocks
            st.session_state["_tr_drill"] = want = None
        if want and (want[1] not in rg or want[2] not in cg):  # a stale or mistyped link
            st.caption(f"There is no block {S.md(want[1])} × {S.md(want[2])} in {B.VIEWS[view]}: showing all blocks.")
            st.session_state["_tr_drill"] = want = None
        if want:
            drill = (want[1], want[2])
            if st.button("← All blocks", key="tr_back"):
                st.session_state["_tr_drill"] = None
                st.rerun()
            sub, (n_r, n_c) = B.drill(shown, rg, cg, *drill)
            sub, clustering = arrange(sub, f"{key_base}|{view}|{drill}")
            fig = heatmap_figure(sub, clustering=clustering, annotate=annotate_toggle(sub.shape),
                                 diverging=diverging, noise=noise_mask, zlabel=zlabel, gain=is_gain)
            build_s = time.perf_counter() - t0
            st.markdown(f"**Block {S.md(drill[0])} × {S.md(drill[1])}** ({B.VIEWS[view]}) of {shown.shape[0]} sources × "
                        f"{shown.shape[1]} targets")
            event = st.plotly_chart(fig, key="tr_heatmap", on_select="rerun", selection_mode="points",
                                    width="stretch")
            cut = n_r > sub.shape[0] or n_c > sub.shape[1]
            st.caption(f"{fmt.count(sub.shape[0], 'source')} × {fmt.count(sub.shape[1], 'target')} · ready in {build_s:.2f} s · click a cell "
                       "for the pair's details"
                       + (f" · this block holds {n_r} × {n_c} prompts: the first {B.FULL_DETAIL_MAX} of each axis "
                          "(block order) are shown" if cut else "")
                       + (" · ○ = inside the noise band" if noise_mask is not None and noise_mask.reindex(
                           index=sub.index, columns=sub.columns).fillna(False).values.any() else ""))
        else:
            sizes_r = [f"{len(v)} prompt{'s' * (len(v) != 1)}" for v in rg.values()]
            sizes_c = [f"{len(v)} prompt{'s' * (len(v) != 1)}" if len(v) != 1 or v[0] in by_name else "task"
                       for v in cg.values()]
            fig = heatmap_figure(bmean, clustering=block_cl, annotate=annotate_toggle(bmean.shape, "tr_annot_blocks"),
                                 diverging=diverging, zlabel=f"mean {zlabel}", row_info=sizes_r, col_info=sizes_c,
                                 what=("source block", "target block"), gain=is_gain)
            build_s = time.perf_counter() - t0
            bevent = st.plotly_chart(fig, key="tr_blocks", on_select="rerun", selection_mode="points",
                                     width="stretch")
            st.caption(f"{shown.shape[0]} sources × {shown.shape[1]} targets in {bmean.shape[0]} × {bmean.shape[1]} "
                       f"{B.VIEWS[view]} · a block's value = mean of its cells (a prompt never against itself) · "
                       f"ready in {build_s:.2f} s · click a block to see its prompts cell by cell")
            for p in (bevent or {}).get("selection", {}).get("points", []) if bevent else []:
                cd = p.get("customdata")
                if isinstance(cd, (list, tuple)) and len(cd) >= 2 and cd[0] in rg and cd[1] in cg:
                    st.session_state["_tr_drill"] = (view, str(cd[0]), str(cd[1]))
                    st.rerun()
            with st.expander("Whole matrix (downsampled)", expanded=True):
                st.plotly_chart(overview_figure(ov, rg, cg, diverging=diverging, zlabel=zlabel),
                                key="tr_overview", width="stretch")
                st.caption(f"Every cell, pooled into at most {B.OVERVIEW_MAX} × {B.OVERVIEW_MAX} bins (mean; a prompt "
                           "never against itself), in block order; white lines = block borders; hover names a bin's "
                           "blocks.")
            event = None
    # a click on a cell -> the pair selectors below
    pts = (event or {}).get("selection", {}).get("points", []) if event else []
    for p in pts:
        cd = p.get("customdata")
        if isinstance(cd, (list, tuple)) and len(cd) >= 2:
            pair = (str(cd[0]), str(cd[1]))
            if st.session_state.get("_tr_last_click") != pair:
                st.session_state["_tr_last_click"] = pair
                st.session_state["tr_pair_src"], st.session_state["tr_pair_tgt"] = pair
            break

    # ---- export
    e1, e2, e3, e4 = st.columns(4)
    # deferred: built only when clicked (the CSV of a 1,000 x 1,000 matrix takes seconds to write)
    e1.download_button("Matrix CSV", lambda m=mat: S.csv_bytes(m, float_format="%.6g"),
                       file_name=f"{metric}_{group.replace('/', '_')}.csv", mime="text/csv", key="tr_dl_csv")
    e2.download_button("Figure HTML", lambda f=fig: f.to_html(include_plotlyjs="cdn", full_html=True).encode(),
                       file_name=f"{metric}.html", mime="text/html", key="tr_dl_html",
                       help="interactive; loads plotly.js from its CDN when opened (the figure on screen)")
    with e3:
        if access().viewer:  # issue 24: a viewer's click never starts a browser on the server
            st.caption("PNG: the 📷 button in the chart's toolbar (made in your browser).")
        elif st.button("Prepare PNG/SVG", key="tr_img", help="static images via kaleido (starts a headless browser)"):
            from pages import _budget as BU

            def render():
                return fig.to_image(format="png", scale=2), fig.to_image(format="svg")
            try:
                imgs = BU.run_inline("export", 2, render, title="PNG + SVG export")
                if imgs is not None:
                    st.session_state["_tr_png"], st.session_state["_tr_svg"] = imgs
            except Exception as e:  # noqa: BLE001 -- kaleido needs Chrome; HTML always works
                st.session_state.pop("_tr_png", None)
                st.warning(f"Static export failed ({type(e).__name__}: {S.md((str(e).splitlines() or [''])[0][:200])}). "
                           "Use the HTML export, or install kaleido's Chrome (`plotly_get_chrome`).")
    if st.session_state.get("_tr_png"):
        e4.download_button("PNG", st.session_state["_tr_png"], file_name=f"{metric}.png", mime="image/png",
                           key="tr_dl_png")
        e4.download_button("SVG", st.session_state["_tr_svg"], file_name=f"{metric}.svg", mime="image/svg+xml",
                           key="tr_dl_svg")

# ---- pair details ------------------------------------------------------------------------------
def at_hand(m: str) -> pd.DataFrame | None:
    """A matrix this session already has (computed or found)."""
    return st.session_state.get("_tr_mats", {}).get((m, group, lib_hash, mparams(m).get("head")))


def stored(m: str) -> pd.DataFrame | None:
    """A precomputed or disk-cached matrix; never computed here."""
    return get_matrix(m, group, lib_hash, prompts, False)


def scored_predictions() -> dict[str, pd.DataFrame]:
    """TB.scored_predictions, its prompt-space pairs priced first (core.budget "predictions", issue 24) and
    remembered per session: a refused or busy click uses the matrices at hand or stored only."""
    memo = st.session_state.setdefault("_tr_preds", {})
    key = (group, lib_hash, len(meas.runs), tuple(sorted(meas.mean.index)))
    if key in memo:
        return memo[key]
    units = TB.prediction_pairs(prompts, meas, at_hand=at_hand)
    if units == 0:
        return TB.scored_predictions(prompts, meas, at_hand=at_hand, stored=stored, compute=False)
    from core import jobs as J
    from pages import _budget as BU
    ledger = BU.ledger()
    d = BU.decide(J.estimate("predictions", units, ledger), can_background=False) if ledger is not None else None
    preds = None
    if d is not None and d.action == "refuse":
        st.caption(f"The measured validation uses stored matrices only. {d.message}")
    elif d is not None:
        preds = BU.run_inline("predictions", units, lambda: TB.scored_predictions(
            prompts, meas, at_hand=at_hand, stored=stored), title=f"predictions for {len(prompts)} prompts")
    if preds is None:
        return TB.scored_predictions(prompts, meas, at_hand=at_hand, stored=stored, compute=False)
    memo[key] = preds
    return preds


st.subheader("Pair details")
src_opts = names
tgt_opts = list(mat.columns) if mat is not None and metric == "measured" else names
if st.session_state.get("tr_pair_src") not in src_opts:
    st.session_state.pop("tr_pair_src", None)
if st.session_state.get("tr_pair_tgt") not in tgt_opts:
    st.session_state.pop("tr_pair_tgt", None)
d1, d2 = st.columns(2)
src = d1.selectbox("Source prompt", src_opts, key="tr_pair_src", index=None, placeholder="click a cell or pick")
tgt = d2.selectbox("Target", tgt_opts, key="tr_pair_tgt", index=None, placeholder="click a cell or pick")
if src and tgt:
    tgt_prompts = [by_name[tgt]] if tgt in by_name else [p for p in prompts if p.task == tgt]
    tgt_task = by_name[tgt].task if tgt in by_name else tgt
    table = index.table.set_index("name")
    meta_cols = [c for c in ["task", "family", "method", "backbone", "L", "d", "norm", "score", "sources", "origin"]
                 if c in table.columns]
    shown_names = [src] + [p.name for p in tgt_prompts]
    meta = table.loc[[n for n in dict.fromkeys(shown_names) if n in table.index], meta_cols]
    text_cols = [c for c in meta.columns if not pd.api.types.is_numeric_dtype(meta[c])]
    meta[text_cols] = meta[text_cols].where(meta[text_cols].notna(), "")  # an unknown field is blank, not "None"
    meta = fmt.no_none(meta, as_text=fmt.with_gaps(meta))  # an unknown number too (a score not recorded)
    st.dataframe(meta, width="stretch", key="tr_pair_meta")
    vals = TB.pair_values(by_name[src], tgt_prompts, prompts, at_hand=at_hand, stored=stored, meas=meas,
                          target_task=tgt_task)
    if ev is not None and src in ev.gain.index and tgt_task in ev.gain.columns:  # the gain with its baselines
        st.caption(f"Measured {ev.method} {S.md_code(src)} → {S.md_code(tgt_task)}: {S.md(E.cell_text(ev, src, tgt_task))}")
    # a metric's value and a measured gain are different units: two columns (the gain in %, as core.fmt
    # writes it), blank where a row has none (never "None"); the notes ("± 11.2% over 3 seeds; noise band
    # ±4.1%") below the table, where they wrap instead of being cut in a cell
    notes = [(m, n) for m, n in zip(vals["metric"], vals["note"]) if n]
    vals = vals.drop(columns=["note"]).assign(
        value=[fmt.num(v, 3) if pd.notna(v) else "" for v in vals["value"]],
        gain=[fmt.gain(g / 100) if pd.notna(g) else "" for g in vals["gain"]])
    st.dataframe(vals, hide_index=True, width="stretch", key="tr_pair_vals",
                 column_config={"gain": st.column_config.TextColumn(
                     "measured gain", help="relative gain over scratch, in % of the scratch score")})
    said: dict[str, list[str]] = {}
    for m, n in notes:  # one line per note, the metrics that share it together
        said.setdefault(n, []).append(m)
    for n, ms in said.items():
        st.caption(f"{', '.join(f'`{m}`' for m in dict.fromkeys(ms))}: {n}")
    if meas is not None:
        runs = meas.runs_for(src, tgt_task)
        st.caption(f"Runs behind the measured value ({len(runs)}; gain = (score − scratch) / scratch, same target, "
                   f"budget, seed and score kind; score: {R.score_kinds_text(runs)}):")
        st.dataframe(fmt.no_none(runs, as_text=fmt.with_gaps(runs), digits=None), hide_index=True, width="stretch",
                     key="tr_pair_runs")
    curves = pair_curves(results, src, tgt_task)  # every run's validation curve, kept with its result
    if (curves["kind"] == "transfer").any() and (curves["kind"] == "scratch").any():
        import plotly.express as px
        lab = curves.assign(run=curves["kind"].where(curves["kind"] == "scratch", curves["method"])
                            + " s" + curves["seed"].astype(str))
        fig = px.line(lab, x="step", y="val_score", color="run", line_dash="kind", markers=True,
                      labels={"val_score": "validation score"},
                      title=S.plotly(f"Validation curves: from {src} vs scratch on {tgt_task}"))
        st.plotly_chart(fig, key="tr_pair_curves", width="stretch")
        hs = pair_head_starts(curves)
        st.caption("Head start: the steps a transfer run needs to reach scratch's final validation score "
                   "(mean over the scratch seeds), or never.")
        st.dataframe(hs[["run_id", "method", "seed", "text"]].rename(columns={"text": "head start"}),
                     hide_index=True, width="stretch", key="tr_pair_head_start")

# ---- pick a target -> ranked sources ---------------------------------------------------------------
st.subheader("Best sources for a target")
if not measured_ok and default_why:
    st.caption(default_why)  # which metric orders the sources, and how well it is validated (core.defaults)
# the validation (below) first: on the measured view the ranking and the side-by-side follow the metric
# that predicts the measurements best, not a fixed one; no measured runs: the group's default metric (core.defaults)
preds, vt, best_pred = {}, None, None
if meas is not None and not meas.mean.empty:
    preds = scored_predictions()
    vt = TB.validation(preds, meas, prompts, k=3)
    scored = vt[vt["mean_rho"].notna()]
    best_pred = str(scored["metric"].iloc[0]) if len(scored) else None
use_shown = metric != "measured" and mat is not None
fallback = "e_avg" if measured_ok else default_m
predicted_metric = metric if use_shown else (best_pred or fallback)
pred_full = mat if use_shown else None
if pred_full is None and not best_pred and M.metric_status(fallback, prompts)[0]:
    pred_full = get_matrix(fallback, group, lib_hash, prompts, False)
    if pred_full is None and not M.METRICS[fallback].needs_backbone:
        pred_full = metered_matrix(fallback, quiet=True)  # priced like the heatmap's matrix (issue 24)
pred_tasks = (M.by_task(pred_full, prompts) if pred_full is not None
              else preds.get(best_pred) if best_pred else None)
why_metric = ("the metric shown above" if use_shown else
              "the best predictor of the measured transfer (validation below)" if best_pred else
              "the group's default metric (core.defaults)")
targets = sorted(set(pred_tasks.columns if pred_tasks is not None else []) | set(meas.mean.columns if meas is not None else []))
q_targets = st.session_state.pop("_tr_target_q", None) or []
if isinstance(q_targets, str):
    q_targets = [q_targets]
if q_targets:
    mapped = [by_name[t].task if t in by_name and by_name[t].task else t for t in q_targets]
    usable = list(dict.fromkeys(t for t in mapped if t in targets))
    unusable = [q for q, t in zip(q_targets, mapped) if t not in targets]
    if usable:
        st.session_state["tr_target"] = usable[0]
    if unusable:
        st.warning(f"The link's target(s) {S.md_list(unusable, code=True)} are not target tasks of "
                   f"group {S.md_code(group)} in the chosen collections; left out.")
    if len(usable) > 1:
        st.caption(f"The link named {len(usable)} target tasks ({S.md_list(usable)}); showing {S.md_code(usable[0])} — "
                   "pick another below.")
if st.session_state.get("tr_target") not in targets:
    st.session_state.pop("tr_target", None)
target = st.selectbox("Target task", targets, key="tr_target", index=None, placeholder="pick a target task")
_write_query(metric=metric, group=group, order=order, target=target or "", view=view, head=zs_head or "",
             block_src=drill[0] if drill else "", block_tgt=drill[1] if drill else "")
if target:
    rank = TB.rank_sources(target, prompts, predicted=pred_tasks, predicted_metric=predicted_metric, meas=meas)
    for c in ("measured gain", "± std"):  # gains read in % on every page (core.fmt); sorted as fractions above
        if c in rank:
            rank[c] = fmt.gain_pct(rank[c])
    viewer = access().viewer  # no launch links in viewer mode
    if not viewer and not launch_blocked:
        # a link only where the run can be launched here (core.training.trainable); else the row says what is missing
        missing = {s: why_not_trainable(target, by_name[s].backbone if s in by_name else None) for s in rank.index}
        # a measured cell's link carries the regime it was measured in (core.estimate), not the form's defaults
        regime = {s: measured_regime(results, s, target, meas.method if meas is not None else None)
                  for s in rank.index if not missing[s]}
        rank["run"] = [None if missing[s] else runs_url(target=target, source=s, method="panda",
                                                        **(regime[s].to_query() if regime[s] else {}))
                       for s in rank.index]
        if any(missing.values()):
            rank["cannot run"] = [missing[s] or "" for s in rank.index]
        if all(missing.values()):  # nothing to launch: no launch column of blanks ("None"), the reasons stay
            rank = rank.drop(columns=["run"])
    st.caption(f"Sources ranked by `{predicted_metric}`: {why_metric}.")
    st.dataframe(rank.reset_index(), hide_index=True, width="stretch", key="tr_rank",
                 column_config={"run": st.column_config.LinkColumn("launch", display_text="run PANDA"),
                                "measured gain": gain_column("measured gain"),
                                "± std": st.column_config.NumberColumn(format=fmt.REGRET_PRINTF)})
    if viewer:
        st.caption(f"🔒 {access().reason('Launching runs')}")
    elif launch_blocked:
        st.caption(f"No run can be launched from these prompts here: {launch_blocked}.")
    elif len(rank):
        runnable = [s_ for s_ in rank.index if not missing[s_]]
        if runnable:
            link_to_runs(f"Run PANDA on {S.md(target)} from {S.md(runnable[0])} (top pick of {predicted_metric})",
                         target=target, source=runnable[0],
                         method="panda", **(regime[runnable[0]].to_query() if regime[runnable[0]] else {}))
        else:
            st.caption(f"No run can be launched for {S.md_code(target)} here: {S.md(missing[rank.index[0]])}.")

# ---- predicted vs measured, and how well each metric predicts -------------------------------------
if meas is not None and not meas.mean.empty:
    st.subheader("Predicted vs measured")
    side_opts = list(dict.fromkeys(([metric] if use_shown else []) + list(preds)))
    if st.session_state.get("tr_side_metric") not in side_opts:
        st.session_state.pop("tr_side_metric", None)
    default_side = predicted_metric if predicted_metric in side_opts else (side_opts[0] if side_opts else None)
    side_metric = st.selectbox("Predicted side", side_opts, key="tr_side_metric",
                               index=side_opts.index(default_side) if default_side in side_opts else None,
                               help="default: the metric shown above, or on the measured view the validation's "
                                    "best predictor") if side_opts else predicted_metric
    pred_side = (preds.get(side_metric) if side_metric in preds
                 else M.by_task(mat, prompts) if use_shown and side_metric == metric else pred_tasks)
    left, right = st.columns(2)
    side = TB.side_by_side(pred_side, meas, prompts)
    if side is not None:
        side_p, side_m, side_noise, by = side
        # half-width figures: a cell label fits only up to SIDE_LABELS_MAX columns (else they overlap)
        side_labels = len(side_p) <= ANNOTATE_MAX and side_p.shape[1] <= SIDE_LABELS_MAX
        by += "" if side_labels else "; hover a cell for its value"
        with left:
            st.caption(f"{side_metric} (by target task{by}; colours scaled without the grey self-transfer cells)")
            task_of = {p.name: p.task for p in prompts}
            side_self = pd.DataFrame([[E.SELF if task_of.get(r, r) == c else "" for c in side_p.columns]
                                      for r in side_p.index], index=side_p.index, columns=side_p.columns)
            st.plotly_chart(heatmap_figure(side_p, annotate=side_labels, marks=side_self,
                                           zlabel=side_metric, clickable=False, height=420),
                            key="tr_side_pred", width="stretch")
        with right:
            st.caption(f"measured ({S.md(meas.method)}; score: {R.score_kinds_text(meas.runs)}){by}"
                       + (", ○ = inside noise band" if side_noise is not None else ""))
            st.plotly_chart(heatmap_figure(side_m, annotate=side_labels,
                                           diverging=True, noise=side_noise, zlabel="gain", gain=True,
                                           clickable=False, height=420),
                            key="tr_side_meas", width="stretch")
    st.subheader("How well does each metric predict measured transfer?")
    vt_view, vt_config = validation_view(vt)  # rates and regrets in %, as on Home
    st.dataframe(vt_view, hide_index=True, width="stretch", key="tr_validation", column_config=vt_config)
    st.caption("Per target: Spearman ρ between the metric's column and the measured gains over sources (the "
               "target's own task left out); top-3 hit = the best measured source is in the metric's top 3; "
               "regret = best measured gain − gain of the metric's top-1 source; NDCG@3 and regret@3 (Lin et al. "
               "2024): the metric's top 3 judged with relevance = measured gain clipped at 0, and best gain − "
               "best gain among its top 3. Backbone metrics appear once computed.")
    if preds:  # chance levels beside the table (core.evidence: exact random-ranking expectations, same sources)
        chance = [E.retrieval_chance_text(E.retrieval_chance(preds[m], meas.mean, source_task=TB.source_tasks(prompts),
                                                             k=3), 3, m) for m in preds]
        n_per = TB.validation_detail(preds[next(iter(preds))], meas, prompts, k=3)
        rnd = E.random_top_k(n_per["n"].astype(int).tolist(), 3) if "n" in n_per and len(n_per) else float("nan")
        st.caption(f"Chance levels: a random top 3 hits {rnd:.0%} of targets. " + "; ".join(S.md(c) for c in chance)
                   + ". NDCG@3 here uses gain 2^rel − 1 and regret@3 = (best − best of the top 3) / best × 100 on "
                     "the runs' scores (Lin et al. 2024's definitions; see Definitions).")
        with st.expander("Per-target detail"):
            pick = st.selectbox("Metric", list(preds), key="tr_val_metric")
            st.dataframe(TB.validation_detail(preds[pick], meas, prompts, k=3), hide_index=True,
                         width="stretch", key="tr_val_detail")
elif not measured_ok:
    st.info("Measured transfer, predicted-vs-measured and the metric validation appear once this group has "
            f"finished runs. {no_runs_message()}")
from pages import _budget as BU  # noqa: E402
if st.session_state.get("_tr_store_error") and not BU.ledger_broken_said():  # said once, by the ledger
    st.caption(f"Run store not read: {S.md(st.session_state['_tr_store_error'])}")
