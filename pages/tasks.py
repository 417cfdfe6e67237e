"""Tasks: the registered tasks, adding your own from a file, ranking sources for it, launching.

    streamlit run app.py   -> Tasks        (this page alone: streamlit run pages/tasks.py)

Reads: core.tasks (registry), core.task_upload (upload -> Task, the CLI's reader and
rules), core.ranking (rank sources from the target's data alone; the top-k sweep with
PANDA's λ from the ranking), core.runs.queue (launch). Query param ``task`` selects a task.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from core import fmt
from core import ranking as R
from core.task_upload import build_task, overview, read_upload, summary
from core.tasks import DEMO_TASKS, SPLITS, TaskError, get_task, list_tasks, save_task
from pages._deeplink import ensure_whole_app

ensure_whole_app()  # a deep link on a fresh server: rerun through app.py (see the module)

from pages._shared import access, gain_column, viewer_reason  # noqa: E402

try:  # the page runs alone under AppTest; app.py sets the config otherwise
    st.set_page_config(page_title="Tasks · Prompt Atlas", page_icon="🗂️", layout="wide")
except Exception:  # noqa: BLE001 -- already set by app.py
    pass


@st.cache_data(show_spinner=False, ttl=30)
def _overview(names: tuple[str, ...]) -> pd.DataFrame:
    return overview(list(names))


acc = access()  # viewer mode: browse and rank, never add tasks or launch runs
st.title("🗂️ Tasks")
st.caption("Every task a prompt can be trained or evaluated on: the ten demo tasks and yours. "
           "Add your own target, rank the prompts you have as sources for it, and launch the transfer runs.")

names = list_tasks()
table = _overview(tuple(names))
_num = st.column_config.NumberColumn
st.dataframe(table, hide_index=True, width="stretch", key="tasks_table",  # widths: fits a 1280-px window
             column_config={"task": st.column_config.TextColumn(width=115), "kind": st.column_config.TextColumn(width=55),
                            "family": st.column_config.TextColumn(width=80),
                            "classes": st.column_config.TextColumn(width=170),
                            "train": _num(width=55), "validation": _num(width=72), "test": _num(width=50),
                            "mean words": _num(format="%.1f", width=85),
                            "problem": st.column_config.TextColumn(width=90)})

# --------------------------------------------------------------------------- #
# MUTATING BLOCK 1/2 -- "Add a task" (hidden in viewer mode)
# --------------------------------------------------------------------------- #
if acc.viewer:
    viewer_reason("Adding tasks")
else:
    with st.expander("➕ Add a task from a file", expanded=False):
        up_file = st.file_uploader("Data file", type=["csv", "tsv", "jsonl", "parquet", "zip"], key="tasks_upload",
                                   help=".csv / .tsv / .jsonl / .parquet, or a .zip of train/validation/test files. "
                                        "Without splits, a seeded stratified 70/10/20 split is made.")
        if up_file is not None:
            work = Path(st.session_state.setdefault("tasks_workdir", tempfile.mkdtemp(prefix="atlas-upload-")))
            sig = (up_file.name, up_file.size)
            if st.session_state.get("tasks_upload_sig") != sig:  # a new file: read it once, reset the pickers
                st.session_state["tasks_upload_sig"] = sig
                for k in ("tasks_text_col", "tasks_label_col", "tasks_desc", "tasks_new_name"):
                    st.session_state.pop(k, None)
                try:
                    st.session_state["tasks_up"] = read_upload(up_file.name, up_file.getvalue(),
                                                               tempfile.mkdtemp(dir=work))
                    st.session_state.pop("tasks_up_error", None)
                except TaskError as e:
                    st.session_state["tasks_up"] = None
                    st.session_state["tasks_up_error"] = str(e)
            up = st.session_state.get("tasks_up")
            if up is None:
                st.error(st.session_state.get("tasks_up_error", "unreadable file"), icon="🛑")
            else:
                g_text, g_label = up.guess_columns()
                c1, c2, c3, c4 = st.columns(4)
                stem = "".join(ch if ch.isalnum() or ch in "_.-" else "_" for ch in Path(up.filename).stem)[:64] or "my_task"
                c1.text_input("Task name", stem, key="tasks_new_name")
                c2.selectbox("Text column", up.columns, index=up.columns.index(g_text) if g_text in up.columns else 0,
                             key="tasks_text_col")
                c3.selectbox("Label column", up.columns,
                             index=up.columns.index(g_label) if g_label in up.columns else min(1, len(up.columns) - 1),
                             key="tasks_label_col")
                c4.text_input("Family (optional)", "", key="tasks_family", help="e.g. sentiment, topic")
                st.caption("Splits: " + (f"from the file(s) ({', '.join(up.split_files) or 'split column'})"
                                         if up.has_splits else "none in the file: a seeded, stratified 70/10/20 split"))
                st.markdown("**Preview** (first rows)")
                st.dataframe(up.preview.head(8), hide_index=True, width="stretch")
                try:
                    draft = build_task(up, st.session_state["tasks_new_name"], st.session_state["tasks_text_col"],
                                       st.session_state["tasks_label_col"],
                                       family=st.session_state.get("tasks_family") or None)
                except TaskError as e:
                    draft = None
                    st.error(str(e), icon="🛑")
                if draft is not None:
                    st.markdown("**Label descriptions** (the verbalizer embeds these; edit them) and class counts")
                    base = summary(draft)
                    edited = st.data_editor(base, hide_index=True, width="stretch", key="tasks_desc",
                                            disabled=["label", *SPLITS])
                    if st.button("💾 Save task", key="tasks_save", type="primary"):
                        try:
                            task = build_task(up, st.session_state["tasks_new_name"], st.session_state["tasks_text_col"],
                                              st.session_state["tasks_label_col"],
                                              family=st.session_state.get("tasks_family") or None,
                                              descriptions=dict(zip(edited["label"], edited["description"])))
                            save_task(task, origin=f"upload:{up.filename}")
                        except TaskError as e:
                            st.error(str(e), icon="🛑")
                        else:
                            _overview.clear()
                            st.session_state["tasks_selected"] = task.name
                            st.session_state["tasks_flash"] = f"Saved task {task.name}."
                            st.rerun()

if st.session_state.get("tasks_flash"):
    st.success(st.session_state.pop("tasks_flash"))

# --------------------------------------------------------------------------- #
# one task: labels, counts, examples
# --------------------------------------------------------------------------- #
ready = [n for n in names if not table.set_index("task").loc[n, "problem"]] if len(table) else []
if not ready:
    st.info("No task is ready: run `python -m core tasks prepare` or add one above.")
    st.stop()
if st.session_state.get("tasks_selected") not in ready:
    want = st.query_params.get("task")
    st.session_state["tasks_selected"] = want if want in ready else next(
        (n for n in reversed(ready) if n not in DEMO_TASKS), ready[0])
target = st.selectbox("Task", ready, key="tasks_selected")
task = get_task(target)
left, right = st.columns(2)
with left:
    st.markdown(f"**{target}** · {'demo' if target in DEMO_TASKS else 'user'} task · family "
                f"`{task.family or '-'}` · majority rate (validation) {task.majority_rate('validation'):.3f}")
    st.dataframe(summary(task), hide_index=True, width="stretch",
                 column_config={"label": st.column_config.TextColumn(width=75),
                                "description": st.column_config.TextColumn(width=105),
                                "train": _num(width=50), "validation": _num(width=72), "test": _num(width=45)})
with right:
    ex = pd.DataFrame({"label": [task.labels[y] for y in task.train.labels[:6]],
                       "text": [t if len(t) <= 200 else t[:197] + "…" for t in task.train.texts[:6]]})
    st.dataframe(ex, hide_index=True, width="stretch",  # the text cut in its cell, not the table
                 column_config={"label": st.column_config.TextColumn(width=75),
                                "text": st.column_config.TextColumn(width=290)})

# --------------------------------------------------------------------------- #
# rank sources for this task from its data alone
# --------------------------------------------------------------------------- #
st.subheader(f"Which prompts should {target} start from?")
st.caption("For every source prompt of one backbone: **zs** = its zero-shot accuracy on this task's validation "
           "split through the verbalizer (label descriptions) minus the majority rate; **ncc** = how well it "
           "separates this task's classes (leave-one-out nearest-class-centroid accuracy of the prompted text "
           "embeddings, minus the majority rate). No target prompt is trained. Cached by content.")
from pages._shared import collections_caption, library_picker, load_library  # noqa: E402

s1, s2, s3 = st.columns([3, 1, 1])
with s1:  # the collections every page uses (core.collection; ?col= in the link): demo + my library by default
    chosen = library_picker(page="tasks")
metric = s2.radio("Rank by", list(R.SIGNALS), horizontal=True, key="tasks_rank_metric")
k_max = 10
group, index = None, None
if chosen:
    index = load_library(chosen)
    groups = index.groups()
    if len(groups) > 1:
        group = s3.selectbox("Backbone group", list(groups), key="tasks_rank_group")
    elif groups:
        group = next(iter(groups))
        s3.caption(f"backbone: `{group}`")
collections_caption(chosen, index, "tasks")
if not chosen or group is None:
    st.info("No source prompts to rank in the chosen collections: add prompts on the Library page "
            "or choose other collections.")
rank_key = (target, tuple(sorted(c.name for c in chosen)), group)
if st.button("📊 Rank sources", key="tasks_rank", disabled=not chosen or group is None):
    bar = st.progress(0.0, text="ranking…")

    def _tick(done, total, name):
        bar.progress(done / max(1, total), text=f"{done}/{total} {name}")

    try:
        st.session_state["tasks_ranking"] = (rank_key, R.rank_sources(target, index=index, group=group,
                                                                       metric=metric, progress=_tick))
        st.session_state.pop("tasks_rank_error", None)
    except R.RankError as e:
        st.session_state["tasks_ranking"] = None
        st.session_state["tasks_rank_error"] = str(e)
    bar.empty()
if st.session_state.get("tasks_rank_error"):
    st.error(st.session_state["tasks_rank_error"], icon="🛑")
held = st.session_state.get("tasks_ranking")
rk = held[1] if held and held[0] == rank_key else None
if rk is not None and index is not None:
    if rk.metric != metric:  # re-sort by the signal picked now (numbers are cached)
        rk = R.rank_sources(target, index=index, group=group, metric=metric)
        st.session_state["tasks_ranking"] = (rank_key, rk)
    shown = rk.table.drop(columns=["path", "L"])
    meas = R.measured_for_target(target, list(rk.table["source"]))
    if meas is not None:
        shown = shown.merge(meas, on="source", how="left")
    for c in ("measured", "noise"):  # relative gains: in % like every page (core.fmt)
        if c in shown:
            shown[c] = fmt.gain_pct(shown[c])
    st.dataframe(shown, hide_index=True, width="stretch", key="tasks_rank_table",
                 column_config={"zs": st.column_config.NumberColumn(format="%+.3f"),
                                "ncc": st.column_config.NumberColumn(format="%+.3f"),
                                "measured": gain_column("measured"),
                                "noise": st.column_config.NumberColumn(format=fmt.REGRET_PRINTF)})
    st.caption(f"{fmt.count(len(rk.table), 'source')} of `{rk.group}`, {rk.n_examples} validation examples, majority rate "
               f"{rk.majority:.3f}; {rk.computed} computed, {rk.cached} from the cache ({rk.seconds:.1f} s)."
               + (" **measured** = relative test gain over scratch of finished PoT runs on this task, "
                  "**noise** = the scratch seeds' spread (a gain inside ±noise is not distinguishable from seed "
                  "noise)." if meas is not None else ""))

    # ----------------------------------------------------------------------- #
    # MUTATING BLOCK 2/2 -- "launch top-k sweep" (hidden in viewer mode)
    # ----------------------------------------------------------------------- #
    reg = R.demo_regime()
    if acc.viewer:
        viewer_reason("Launching runs")
    else:
        with st.expander("🚀 Launch the top-k sweep", expanded=True):
            l1, l2, l3, l4, l5 = st.columns(5)  # (+ the mix box below them)
            k = l1.number_input("Top k", 1, min(k_max, len(rk.table)), min(3, len(rk.table)), key="tasks_top_k")
            steps = l2.number_input("Steps", 1, 100_000, reg["params"]["steps"], key="tasks_steps")
            train_size = l3.number_input("Train examples", 1, 1_000_000, reg["params"]["train_size"],
                                         key="tasks_train_size")
            n_scratch = l4.number_input("Scratch seeds", 1, 10, len(reg["scratch_seeds"]), key="tasks_scratch_seeds")
            spot = l5.checkbox("+ SPoT init", key="tasks_spot", help="one more PoT run from the top-k average, "
                                                                     "weighted by the normalised scores")
            mix = st.checkbox(f"+ mix the top {int(k)}", key="tasks_mix", disabled=int(k) < 2,
                              help="one run each of attempt (mix the frozen sources per input), PANDA with one "
                                   "teacher per source and PoT from their weighted average (SPoT), weighted by the "
                                   "normalised scores; each is one row, 'mix top-k (metric)', in the results")
            lam = R.panda_lambdas(rk.scores(), reg["beta"])
            st.caption("Runs: scratch × %d seeds, PoT and PANDA from each of %s. PANDA's λ = β · normalised %s "
                       "(min-max over all %d ranked sources, β = %.1f): %s." % (
                           n_scratch, ", ".join(rk.top(int(k))), rk.metric, len(rk.table), reg["beta"],
                           ", ".join(f"{s} {lam[s]:.2f}" for s in rk.top(int(k)))))
            mix = bool(mix) and int(k) >= 2

            def planned_sweep():
                return R.ranked_sweep(rk, int(k), spot=spot, params={"steps": int(steps), "train_size": int(train_size)},
                                      scratch_seeds=list(range(int(n_scratch))), mix=mix)
            if mix:  # the plan before launch: every run, the count, the estimate (core.ranking.plan_text)
                try:
                    from core.runs.store import RunStore
                    st.code(R.plan_text(planned_sweep(), RunStore()), language=None)
                except R.RankError as e:
                    st.warning(f"Cannot mix the top {int(k)}: {e}")
            if st.button(f"🚀 Launch top-{int(k)} sweep", key="tasks_launch", type="primary"):
                from core.runs.queue import launch_sweep
                from core.runs.spec import LaunchError, SpecError
                try:
                    sw = planned_sweep()
                    sid = launch_sweep(sw)
                except (R.RankError, SpecError, LaunchError) as e:
                    st.error(f"Nothing was launched: {e}", icon="🛑")
                else:
                    st.session_state["tasks_launched"] = sid
            if st.session_state.get("tasks_launched"):
                st.success(f"Queued sweep {st.session_state['tasks_launched']}.")
                try:
                    st.page_link("pages/runs.py", label="Watch it on the Runs page", icon="🚀")
                except Exception:  # noqa: BLE001 -- page run alone (AppTest, single file): a plain link instead
                    st.markdown("[🚀 Watch it on the Runs page](/runs)")
