"""Tasks: the registered tasks, adding your own from a file, ranking sources for it, launching.

    streamlit run app.py   -> Tasks        (this page alone: streamlit run pages/tasks.py)

Reads: core.tasks (registry), core.task_upload (upload -> Task, the CLI's reader and
rules), core.ranking (rank sources from the target's data alone; the top-k sweep with
PANDA's λ from the ranking), core.runs.queue (launch). Query param ``task`` selects a task.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from core import fmt, notice
from core.safewrite import staging_dir
from core import safetext as S
from core import ranking as R
from core.task_upload import PAGE_TYPES, build_task, overview, preview_table, read_uploads, summary, summary_lines
from core.tasks import DEMO_TASKS, SPLITS, TaskError, get_task, list_tasks, save_task
from core.tasks.userfiles import ENCODINGS
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
table = _overview(tuple(names))  # your tasks first (core.task_upload.overview), then the demo's
_num = st.column_config.NumberColumn
# a column no task fills (no pair task, no script without spaces) is left out: the table fits a 1280-px window
shown_table = table.drop(columns=[c for c in ("pair", "mean chars") if c in table
                                  and not table[c].map(lambda v: v not in ("", None) and not pd.isna(v)).any()])
st.dataframe(fmt.no_none(shown_table), hide_index=True, width="stretch", key="tasks_table",  # widths: fits a 1280-px window
             column_config={"task": st.column_config.TextColumn(width=115), "kind": st.column_config.TextColumn(width=55),
                            "family": st.column_config.TextColumn(width=80),
                            "classes": st.column_config.TextColumn(width=170),
                            "train": _num(width=55), "validation": _num(width=72), "test": _num(width=50),
                            "pair": st.column_config.TextColumn(width=40),
                            "mean words": _num(format="%.1f", width=85), "mean chars": _num(format="%.1f", width=80),
                            "problem": st.column_config.TextColumn(width=90)})

# --------------------------------------------------------------------------- #
# MUTATING BLOCK 1/2 -- "Add a task" (hidden in viewer mode)
# --------------------------------------------------------------------------- #
if acc.viewer:
    viewer_reason("Adding tasks")
else:
    with st.expander("➕ Add a task from a file", expanded=False):
        # a saved task resets the form: a new uploader (a file uploader cannot be emptied in place)
        gen = st.session_state.get("tasks_upload_gen", 0)
        up_files = st.file_uploader("Data file(s)", type=list(PAGE_TYPES), accept_multiple_files=True,
                                    key="tasks_upload" if not gen else f"tasks_upload_{gen}",
                                    help=".csv / .tsv / .jsonl / .parquet, a .zip of train/validation/test files or of a "
                                         "Hugging Face dataset (save_to_disk folder, the Hub's data/*.parquet), or several "
                                         "such files at once. Without splits, a seeded stratified 70/10/20 split is made.")
        encoding = st.selectbox("Encoding", list(ENCODINGS), key="tasks_encoding",
                                help="the text encoding of a .csv / .tsv / .jsonl that is not UTF-8 "
                                     "(Kaggle's spam.csv: latin-1)")
        if up_files:
            sig = (tuple((f.name, f.size) for f in up_files), encoding)
            if st.session_state.get("tasks_saved_sig") == sig:  # saved: its staged copy is gone already
                st.caption(f"{S.md_list([f.name for f in up_files])} is saved as a task; choose another file to add another.")
            elif st.session_state.get("tasks_upload_sig") != sig:  # a new file: read it once, reset the pickers
                st.session_state["tasks_upload_sig"] = sig
                for k in ("tasks_text_col", "tasks_text_col2", "tasks_label_col", "tasks_desc", "tasks_new_name"):
                    st.session_state.pop(k, None)
                # staged under ATLAS_HOME (core.safewrite: cleared at start-up), the last file's staging removed
                shutil.rmtree(st.session_state.pop("tasks_workdir", "") or "/nonexistent", ignore_errors=True)
                staging_dir().mkdir(parents=True, exist_ok=True)
                work = st.session_state["tasks_workdir"] = tempfile.mkdtemp(dir=staging_dir(), prefix="task-")
                try:
                    st.session_state["tasks_up"] = read_uploads([(f.name, f.getvalue()) for f in up_files], work,
                                                                encoding=None if encoding == "utf-8" else encoding)
                    st.session_state.pop("tasks_up_error", None)
                except TaskError as e:
                    st.session_state["tasks_up"] = None
                    st.session_state["tasks_up_error"] = str(e)
                    shutil.rmtree(work, ignore_errors=True)  # a refused file is not kept
            up = st.session_state.get("tasks_up")
            if st.session_state.get("tasks_saved_sig") == sig:
                pass
            elif up is None:
                st.error(S.md(st.session_state.get("tasks_up_error", "unreadable file")), icon="🛑")
            else:
                g_text, g_label = up.guess_columns()
                g_text2 = up.guess_text2()
                c1, c2, c2b, c3, c4 = st.columns(5)
                stem = "".join(ch if ch.isalnum() or ch in "_.-" else "_" for ch in Path(up.filename).stem)[:64] or "my_task"
                c1.text_input("Task name", stem, key="tasks_new_name")
                # never one column preselected for two roles: the label picker starts on another column
                c2.selectbox("Text column", up.columns, index=up.columns.index(g_text) if g_text in up.columns else 0,
                             key="tasks_text_col")
                none2 = "(none: single text)"
                c2b.selectbox("Second text (sentence pair)", [none2, *up.columns], key="tasks_text_col2",
                              index=1 + up.columns.index(g_text2) if g_text2 in up.columns else 0,
                              help="a sentence-pair task (RTE, MNLI, QQP...): both texts reach the model as the "
                                   "tokenizer's pair (its separator and token types), truncated longest-first")
                taken = {st.session_state["tasks_text_col"], st.session_state.get("tasks_text_col2")}
                free = [c for c in up.columns if c not in taken] or up.columns
                c3.selectbox("Label column", up.columns,
                             index=up.columns.index(g_label) if g_label in up.columns and g_label not in taken
                             else up.columns.index(free[0]),
                             key="tasks_label_col")
                c4.text_input("Family (optional)", "", key="tasks_family", help="e.g. sentiment, topic")
                st.caption("Splits: " + (f"from the file(s) ({S.md_list(up.split_files) or 'split column'})"
                                         if up.has_splits else "none in the file: a seeded, stratified 70/10/20 split"))
                st.markdown("**Preview** (first rows)")
                st.dataframe(up.preview.head(8), hide_index=True, width="stretch")
                text2 = st.session_state.get("tasks_text_col2")
                text2 = None if text2 in (None, none2) else text2
                # built once per choice, not on every rerun of the form (a big file took seconds to re-read)
                want = (st.session_state.get("tasks_workdir"), st.session_state["tasks_new_name"],
                        st.session_state["tasks_text_col"], st.session_state["tasks_label_col"],
                        st.session_state.get("tasks_family") or None, text2)
                held = st.session_state.get("_tasks_draft")
                if not held or held[0] != want:
                    try:
                        held = (want, build_task(up, *want[1:4], family=want[4], text_col2=want[5]), None)
                    except TaskError as e:
                        held = (want, None, str(e))
                    st.session_state["_tasks_draft"] = held
                draft = held[1]
                if held[2]:
                    st.error(S.md(held[2]), icon="🛑")
                if draft is not None:
                    st.markdown("**Label descriptions** (the verbalizer embeds these; edit them) and class counts")
                    base = summary(draft)
                    edited = st.data_editor(base, hide_index=True, width="stretch", key="tasks_desc",
                                            disabled=["label", *SPLITS])
                    for line in summary_lines(draft):  # plain text with stored values (labels, columns)
                        st.caption(S.md(line))
                    if st.button("💾 Save task", key="tasks_save", type="primary"):
                        notice.begin(st.session_state, "tasks")
                        try:
                            task = build_task(up, st.session_state["tasks_new_name"], st.session_state["tasks_text_col"],
                                              st.session_state["tasks_label_col"], text_col2=text2,
                                              family=st.session_state.get("tasks_family") or None,
                                              descriptions=dict(zip(edited["label"], edited["description"])))
                            save_task(task, origin=f"upload:{up.filename}")
                        except TaskError as e:
                            st.error(S.md(e), icon="🛑")
                        else:
                            shutil.rmtree(st.session_state.pop("tasks_workdir", "") or "/nonexistent",
                                          ignore_errors=True)  # saved: the staged upload is not kept
                            st.session_state["tasks_saved_sig"] = sig
                            st.session_state.pop("tasks_up", None)
                            _overview.clear()
                            st.session_state["tasks_selected"] = task.name
                            st.session_state["tasks_flash"] = f"Saved task {task.name}."
                            # the form starts empty again: no file, no fields (a second Save was a duplicate)
                            st.session_state["tasks_upload_gen"] = gen + 1
                            for k in ("tasks_upload_sig", "tasks_up", "tasks_up_error", "tasks_new_name",
                                      "tasks_text_col", "tasks_text_col2", "tasks_label_col", "tasks_family",
                                      "tasks_desc"):
                                st.session_state.pop(k, None)
                            st.rerun()

if st.session_state.get("tasks_flash"):
    st.success(S.md(st.session_state.pop("tasks_flash")))

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
try:
    task = get_task(target)
except TaskError as e:  # its table row came from the saved summary: the data is read only now
    where = f"{Path(e.path).parent.name}/{Path(e.path).name}: " if e.path else ""
    st.error(f"Task {S.md_code(target)} cannot be opened: {S.md_message(where + e.problem)}", icon="🛑")
    st.stop()
left, right = st.columns(2)
with left:
    st.markdown(f"**{S.md(target)}** · {'demo' if target in DEMO_TASKS else 'user'} task · family "
                f"{S.md_code(task.family or '-')} · majority rate (validation) {task.majority_rate('validation'):.3f}")
    st.dataframe(summary(task), hide_index=True, width="stretch",
                 column_config={"label": st.column_config.TextColumn(width=75),
                                "description": st.column_config.TextColumn(width=105),
                                "train": _num(width=50), "validation": _num(width=72), "test": _num(width=45)})
    for line in summary_lines(task):  # plain text with stored values (labels, columns)
        st.caption(S.md(line))
with right:
    ex = preview_table(task)
    st.dataframe(ex, hide_index=True, width="stretch",  # the text cut in its cell, not the table
                 column_config={"label": st.column_config.TextColumn(width=75),
                                "text": st.column_config.TextColumn(width=290 if "text2" not in ex else 150),
                                "text2": st.column_config.TextColumn(width=150)})
    if target not in DEMO_TASKS and not acc.viewer:
        with st.popover("🗑️ Delete this task"):
            st.caption("Its copied data goes; runs that used it keep their results and its data hash.")
            if st.button(f"Delete {S.md(target)}", key="tasks_delete", type="primary"):
                from core.tasks.registry import delete_task
                try:
                    delete_task(target)
                except TaskError as e:
                    st.error(S.md(e), icon="🛑")
                else:
                    _overview.clear()
                    st.session_state.pop("tasks_selected", None)
                    st.session_state["tasks_flash"] = f"Deleted task {target}."
                    st.rerun()

# --------------------------------------------------------------------------- #
# rank sources for this task from its data alone
# --------------------------------------------------------------------------- #
st.subheader(f"Which prompts should {S.md(target)} start from?")
st.caption("For every source prompt of one backbone: **zs** = its zero-shot accuracy on this task's validation "
           "split through the chosen head (cosine: pooled features against the label descriptions; a label-word "
           "preset: the model's own LM head, as released prompts were trained) minus the majority rate; **ncc** = how well it "
           "separates this task's classes (leave-one-out nearest-class-centroid accuracy of the prompted text "
           "embeddings, minus the majority rate). No target prompt is trained. Cached by content.")
from pages._shared import collections_caption, library_picker, load_library, zs_head_picker  # noqa: E402

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
        from core.defaults import default_group  # the group every page opens on
        group = s3.selectbox("Backbone group", list(groups), key="tasks_rank_group",
                             index=list(groups).index(default_group(groups)))
    elif groups:
        group = next(iter(groups))
        s3.caption(f"backbone: {S.md_code(group)}")
collections_caption(chosen, index, "tasks")
rank_settings = R.RankSettings()
if index is not None and group is not None:  # zs read through a head; opens on how the group was trained
    rank_head = zs_head_picker(s3, "tasks_rank_head", index.group_prompts(group), group,
                               help_extra=" ncc stays on pooled features.")
    rank_settings = R.RankSettings(lm_head=None if rank_head == "cosine" else rank_head)
if not chosen or group is None:
    st.info("No source prompts to rank in the chosen collections: add prompts on the Library page "
            "or choose other collections.")
rank_key = (target, tuple(sorted(c.name for c in chosen)), group, rank_settings.lm_head)
if st.button("📊 Rank sources", key="tasks_rank", disabled=not chosen or group is None):
    notice.begin(st.session_state, "tasks")  # a new action: the last launch's "Queued sweep …" goes
    st.session_state["tasks_rank_n"] = st.session_state.get("tasks_rank_n", 0) + 1  # which ranking is shown
    # issue 24: priced first (sources not in the cache × examples); a viewer above the per-click ceiling is
    # refused; in full mode above it the ranking is a background job filling the ranking cache; otherwise it
    # holds one of the server's compute slots while it runs
    from core import jobs as J
    from pages import _budget as BU
    try:
        todo, _n_sources, n_ex = R.pending(target, index=index, group=group, settings=rank_settings)
    except R.RankError:
        todo, n_ex = 0, 0  # rank_sources below says what is wrong, in its own words
    units = todo * n_ex
    ledger = BU.ledger()
    d = BU.decide(J.estimate("rank", units, ledger)) if ledger is not None else None
    if d is not None and d.action == "refuse":
        st.warning(d.message, icon="🔒")
    elif d is not None and d.action == "job":
        st.caption(d.message)
        J.submit_rank_job(target, index.roots, group, index.group_prompts(group), owner=BU.owner(), est=d.cost,
                          store=ledger, lm_head=rank_settings.lm_head)
        st.session_state["tasks_rank_job"] = rank_key
    elif d is not None:
        if d.message:
            st.caption(d.message)
        bar = st.progress(0.0, text="ranking…")

        def _tick(done, total, name):
            bar.progress(done / max(1, total), text=f"{done}/{total} {S.md(name)}")

        try:
            rk_new = BU.run_inline("rank", units, lambda: R.rank_sources(target, index=index, group=group,
                                                                         metric=metric, progress=_tick,
                                                                         settings=rank_settings),
                                   title=f"ranking {units:,} source × examples for {target}",
                                   units_done=lambda r: r.computed * r.n_examples)
            if rk_new is not None:
                st.session_state["tasks_ranking"] = (rank_key, rk_new)
                st.session_state.pop("tasks_rank_error", None)
        except R.RankError as e:
            st.session_state["tasks_ranking"] = None
            st.session_state["tasks_rank_error"] = str(e)
        bar.empty()
if st.session_state.get("tasks_rank_job") == rank_key and index is not None:  # a background ranking (issue 24)
    from core import jobs as J
    from pages import _budget as BU
    rjob = BU.job_panel(J.rank_key(target, index.roots, group, index.group_prompts(group), rank_settings.lm_head))
    if rjob is not None and rjob["status"] == "finished":  # every source is in the cache now: instant
        st.session_state.pop("tasks_rank_job", None)
        try:
            st.session_state["tasks_ranking"] = (rank_key, R.rank_sources(target, index=index, group=group,
                                                                           metric=metric, settings=rank_settings))
        except R.RankError as e:
            st.session_state["tasks_rank_error"] = str(e)
if st.session_state.get("tasks_rank_error"):
    st.error(S.md(st.session_state["tasks_rank_error"]), icon="🛑")
held = st.session_state.get("tasks_ranking")
rk = held[1] if held and held[0] == rank_key else None
if rk is not None and index is not None:
    if rk.metric != metric:  # re-sort by the signal picked now (numbers are cached)
        rk = R.rank_sources(target, index=index, group=group, metric=metric, settings=rank_settings)
        st.session_state["tasks_ranking"] = (rank_key, rk)
    shown = rk.table.drop(columns=["path", "L"])
    try:
        meas = R.measured_for_target(target, list(rk.table["source"]))
    except Exception as e:  # noqa: BLE001 -- a corrupt runs.db costs the measured column, not the ranking
        meas = None
        st.warning(f"Measured gains not shown: `ATLAS_HOME/runs.db` could not be read ({S.md(type(e).__name__)}); "
                   "move it aside or restore it from a backup.")
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
    for w in rk.warnings:
        st.warning(S.md(w), icon="⚠️")
    for sig_name, why in rk.undefined.items():
        st.warning(f"{S.md(sig_name)} is undefined on this split ({S.md(why)}): shown empty, not as a number", icon="⚠️")
    st.caption(f"{fmt.count(len(rk.table), 'source')} of {S.md_code(rk.group)}, zs through {S.md(rk.head)}, "
               f"{rk.n_examples} validation examples, majority rate "
               f"{rk.majority:.3f}; {R.score_caption(rk)}; {rk.computed} computed, {rk.cached} from the cache "
               f"({rk.seconds:.1f} s)."
               + (" **measured** = relative test gain over scratch of finished PoT runs on this task, "
                  "**noise** = the scratch seeds' spread (a gain inside ±noise is not distinguishable from seed "
                  "noise)." if meas is not None else ""))

    # ----------------------------------------------------------------------- #
    # MUTATING BLOCK 2/2 -- "launch top-k sweep" (hidden in viewer mode)
    # ----------------------------------------------------------------------- #
    reg = R.demo_regime()
    if acc.viewer:
        viewer_reason("Launching runs")
    elif rk.metric in rk.undefined:  # PANDA's λ would come from a signal that is not a number here
        st.error(f"No sweep from {rk.metric}: it is undefined on this split ({S.md(rk.undefined[rk.metric])}); "
                 "rank by zs to launch.", icon="🛑")
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
                           n_scratch, S.md_list(rk.top(int(k))), rk.metric, len(rk.table), reg["beta"],
                           ", ".join(f"{S.md(s)} {lam[s]:.2f}" for s in rk.top(int(k))))
                       + (f" Every run, scratch included, trains through the **{S.md(rk.lm_head)}** head zs was read "
                          "through (as its sources were trained)." if rk.lm_head else ""))
            shown_ranking = (rank_key, st.session_state.get("tasks_rank_n", 0))  # what a launch message is about
            mix = bool(mix) and int(k) >= 2

            def planned_sweep():
                return R.ranked_sweep(rk, int(k), spot=spot, params={"steps": int(steps), "train_size": int(train_size)},
                                      scratch_seeds=list(range(int(n_scratch))), mix=mix)
            if mix:  # the plan before launch: every run, the count, the estimate (core.ranking.plan_text)
                try:
                    from core.runs.store import RunStore
                    st.code(R.plan_text(planned_sweep(), RunStore()), language=None)
                except R.RankError as e:
                    st.warning(f"Cannot mix the top {int(k)}: {S.md(e)}")
            if sat := rk.saturation_warning(rk.top(int(k))):  # the rule is core.evidence's (the CLI warns the same)
                st.warning(S.md(sat), icon="⚠️")
            try:  # how many runs and how long, before launch (core.estimate; a calibration job before any run)
                from core.estimate import sweep_estimate
                from core.runs.store import RunStore
                from pages._budget import run_estimate
                sw_ = planned_sweep()
                est, _note = run_estimate(RunStore(), int(sw_.params.get("steps") or 300), sw_.backbone, sw_.device,
                                          sw_.params.get("max_length"))
                st.caption("⏱ " + sweep_estimate(sw_, RunStore(), est=est), help="runs × the per-run estimate "
                    "(recent finished runs of this backbone on this device, else a timed calibration) ÷ the runs "
                    "this device trains at once; PANDA students start after their PoT teachers")
            except Exception as e:  # noqa: BLE001 -- an estimate must never block the launch button
                st.caption(f"⏱ Total unknown: {type(e).__name__}: {S.md(e)}")
            if st.button(f"🚀 Launch top-{int(k)} sweep", key="tasks_launch", type="primary"):
                notice.begin(st.session_state, "tasks")
                from core.runs.queue import launch_sweep
                from core.runs.spec import LaunchError, SpecError
                try:
                    sw = planned_sweep()
                    sid = launch_sweep(sw)
                except (R.RankError, SpecError, LaunchError) as e:
                    st.error(f"Nothing was launched: {S.md(e)}", icon="🛑")
                else:  # belongs to this ranking: gone on the next action or once another ranking shows
                    notice.post(st.session_state, "tasks", f"Queued sweep {sid}.", owner=shown_ranking)
            if said := notice.current(st.session_state, "tasks", owner=shown_ranking):
                st.success(said[1])
                try:
                    st.page_link("pages/runs.py", label="Watch it on the Runs page", icon="🚀")
                except Exception:  # noqa: BLE001 -- page run alone (AppTest, single file): a plain link instead
                    st.markdown("[🚀 Watch it on the Runs page](/runs)")
