"""Library page: the prompts of the chosen folders, grouped by backbone; upload; one prompt in detail.

    streamlit run app.py   -> Library        (or ?lib=/path/to/prompts)

Uploads state their limits (core.library.upload_limits) and are hidden in viewer mode; a
folder from the browser passes the path guard (core/access.py) before anything is read.
Task, family and backbone can be set on upload and later in the detail view, where prompts of
`my library` and `my runs` can also be renamed and deleted (rules: core/userlib.py).
"""
from pathlib import Path

import pandas as pd
import plotly.express as px
import streamlit as st

from pages._deeplink import ensure_whole_app  # noqa: E402

ensure_whole_app()  # a deep link on a fresh server: rerun through app.py (see the module)

from core.config import user_library_dir
from core.library import MAX_UPLOAD_FILES, upload_limits
from core.mixture import attention_rows
from core.prompts import KNOWN_DIMS, PromptError
from core import collection as C
from core import userlib
from core import fmt
from core import safetext as S
from pages._shared import (access, collections_caption, library_picker, library_view, load_library, shown_path,
                           viewer_reason)

st.title("📚 Library")
st.caption("Soft prompts as people publish them — PEFT prompt-tuning adapters, safetensors, torch.save files "
           "under any name, .npy — grouped by the backbone they were trained for. Prompts of different "
           "backbones are never compared, even when their shapes match.")

picker_box = st.container()
upload_box = st.container(border=True)

# Uploads are handled before the folder picker is drawn, so a new prompt shows in this very run.
with upload_box:
    st.markdown("**Add prompts to your library**")
    if access().viewer:
        viewer_reason("Uploads")
        files = []
    else:
        max_mb = int(st.get_option("server.maxUploadSize"))
        st.caption(upload_limits(max_mb * 2**20))
        st.caption("Say what you add (optional; applies to every prompt of the next upload, kept in its "
                   "`atlas.json`, changeable later in the detail view). A plain file you describe is stored "
                   "as a PEFT adapter folder with the same values.")
        task_opts, family_opts = userlib.suggestions()
        m1, m2, m3 = st.columns(3)
        up = dict(
            task=m1.selectbox("Task", task_opts, index=None, key="upload_task", accept_new_options=True,
                              placeholder="as read from the file"),
            family=m2.selectbox("Family", family_opts, index=None, key="upload_family", accept_new_options=True,
                                placeholder="the task's family"),
            backbone=m3.selectbox("Backbone", [*KNOWN_DIMS, userlib.UNKNOWN], index=None, key="upload_backbone",
                                  accept_new_options=True, placeholder="as read from the file",
                                  help="a backbone of another width than the prompt's is refused; "
                                       "'unknown' keeps it in its own unknown:d<d> group"))
        try:
            upload_meta = userlib.with_family(userlib.PromptMeta(**up))
        except userlib.EditError as e:
            st.error(S.md(e))
            upload_meta = None
        files = st.file_uploader(
            "Prompt files (.safetensors, .pt/.bin or no extension, .npy) or a .zip holding a PEFT adapter folder",
            accept_multiple_files=True, key="library_upload", max_upload_size=max_mb, disabled=upload_meta is None)
    if len(files or []) > MAX_UPLOAD_FILES:
        st.error(f"{len(files) - MAX_UPLOAD_FILES} file(s) not added: at most {MAX_UPLOAD_FILES} files per upload.")
        files = files[:MAX_UPLOAD_FILES]
    done: dict = st.session_state.setdefault("library_upload_done", {})
    added = False
    for f in files or []:
        if f.file_id not in done:  # the uploader keeps its files across reruns: add each once
            try:
                prompts = userlib.upload(f.name, f.getvalue(), user_library_dir(), upload_meta)
                said = ", ".join(f"{k} {v or userlib.UNKNOWN}" for k, v in upload_meta.changes().items())
                done[f.file_id] = ("ok", f"{f.name}: added {', '.join(p.name for p in prompts)} "
                                         f"to your library ({user_library_dir()})" + (f" as {said}" if said else ""))
                added = True
            except PromptError as e:
                done[f.file_id] = ("error", str(e))
        kind, message = done[f.file_id]
        (st.success if kind == "ok" else st.error)(S.md(message))  # names echoed as text (core.safetext)
    if added and "library_sources" in st.session_state and C.LIBRARY not in st.session_state["library_sources"]:
        st.session_state["library_sources"] = [*st.session_state["library_sources"], C.LIBRARY]

with picker_box:
    chosen = library_picker()

index = load_library(chosen)
table = index.table
collections_caption(chosen, index, "library")

if not index.prompts:
    st.info("No prompts in the chosen folders yet. Add some above, point the app at a folder "
            "(type a path, or open the page with `?lib=/path/to/prompts`), or build the demo library.")
else:
    groups = index.groups()
    c1, c2, c3 = st.columns(3)
    c1.metric("Prompts", len(index.prompts))
    c2.metric("Backbone groups", len(groups))
    c3.metric("Problems", len(index.problems))

    f1, f2 = st.columns(2)
    group_opts = list(groups)
    task_opts = sorted(t for t in table["task"].dropna().unique())
    for key, opts in (("library_groups", group_opts), ("library_tasks", task_opts)):
        if key in st.session_state:  # drop choices the current library no longer has
            st.session_state[key] = [v for v in st.session_state[key] if v in opts]
    chosen_groups = f1.multiselect("Backbone group", group_opts, key="library_groups",
                                   format_func=lambda g: f"{g} ({len(groups[g])})", placeholder="all groups")
    chosen_tasks = f2.multiselect("Task", task_opts, key="library_tasks", placeholder="all tasks")
    view = table
    if chosen_groups:
        view = view[view["group"].isin(chosen_groups)]
    if chosen_tasks:
        view = view[view["task"].isin(chosen_tasks)]
    shown, shown_config = library_view(view)  # columns and widths: pages/_shared.py
    picked = st.dataframe(shown, key="library_table", hide_index=True, width="stretch", column_config=shown_config,
                          on_select="rerun", selection_mode="single-row")
    st.caption(f"{len(view)} of {fmt.count(len(table), 'prompt')} shown · click a row to see it in detail below.")
    # a new click on a row leads the detail box; a selection left over from before a filter changed the
    # rows is not a click (its position now names another prompt)
    rows = list(getattr(getattr(picked, "selection", None), "rows", None) or [])
    pick = (tuple(view["name"]), rows[0] if rows else None)
    prev = st.session_state.get("_library_row_pick")
    if pick[1] is not None and pick[1] < len(view) and prev is not None and prev[0] == pick[0] and prev != pick:
        st.session_state["library_detail"] = view["name"].iloc[pick[1]]
    st.session_state["_library_row_pick"] = pick

if index.problems:
    with st.expander(f"⚠️ {len(index.problems)} file(s) could not be read", expanded=False):
        st.dataframe(pd.DataFrame([{"file": access().display(e.path), "problem": e.problem}
                                   for e in index.problems]),
                     key="library_problems", hide_index=True, width="stretch")


def released_attempt(p) -> None:
    """An ATTEMPT output folder's target prompt: what the folder is as a model (core.prompts.attempt_dir)."""
    from core.prompts.attempt_dir import TARGET_FILE, is_attempt_dir, open_released
    from core.prompts.types import PromptError
    origin = Path(str(p.origin))
    if origin.name != TARGET_FILE or not is_attempt_dir(origin.parent):
        return
    try:
        rel = open_released(origin.parent)
    except PromptError as e:
        st.warning(S.md(e.problem))
        return
    st.info(S.md(rel.describe()) + "".join(f"  \n· {S.md(n)}" for n in rel.notes))

def _do(action, p, *args) -> None:
    """Run one core.userlib change; its outcome is shown after the rerun that re-reads the library."""
    try:
        path = action(p, *args)
    except (userlib.EditError, PromptError, OSError) as e:
        st.session_state["library_edit_done"] = ("error", str(e))
        return
    if action is userlib.delete:
        st.session_state["library_edit_done"] = ("ok", f"{p.name}: deleted ({path}). Runs that used it keep "
                                                       "their record.")
        return
    new = userlib.name_after(p, path)
    said = f"renamed to {new}" if action is userlib.rename else "described" + (f"; now {new}" if new != p.name else "")
    st.session_state["library_edit_done"] = ("ok", f"{p.name}: {said}")
    st.session_state["library_detail_next"] = new  # keep the detail on this prompt under its new name


def edit_panel(p) -> None:
    """Describe / rename / delete one prompt — only prompts of my library and my runs, never in viewer mode."""
    flash = st.session_state.pop("library_edit_msg", None)
    with st.container():  # always drawn: the flash must not shift the expander below (it would close)
        if flash:
            (st.success if flash[0] == "ok" else st.error)(S.md(flash[1]))
    if access().viewer:
        viewer_reason("Describing, renaming and deleting prompts")
        return
    reason = userlib.why_not_editable(p)
    if reason:
        st.caption(f"🔒 Describing, renaming and deleting: off — {S.md(reason)}.")
        return
    if st.session_state.get("library_edit_for") != p.name:  # fields show this prompt's values, not the last one's
        st.session_state.update(library_edit_for=p.name, library_edit_task=p.task, library_edit_family=p.family,
                                library_edit_backbone=p.backbone or userlib.UNKNOWN, library_rename=p.name,
                                library_delete_ok=False)
    task_opts, family_opts = userlib.suggestions(index)
    bb_opts = userlib.backbones_for(p.d)
    for opts, v in ((task_opts, p.task), (family_opts, p.family), (bb_opts, p.backbone)):
        if v and v not in opts:
            opts.append(v)
    # keyed + tracked: it stays open across the reruns its own buttons cause
    with st.expander("✏️ Describe, rename or delete this prompt", key="library_edit_open", on_change="rerun"):
        with st.form("library_edit_form", border=False):
            e1, e2, e3 = st.columns(3)
            task = e1.selectbox("Task", task_opts, key="library_edit_task", accept_new_options=True)
            family = e2.selectbox("Family", family_opts, key="library_edit_family", accept_new_options=True)
            backbone = e3.selectbox("Backbone", bb_opts, key="library_edit_backbone", accept_new_options=True,
                                    help=f"backbones of width {p.d}; 'unknown' keeps it in unknown:d{p.d}")
            if st.form_submit_button("Save description"):
                try:
                    meta = userlib.PromptMeta(task, family, backbone)
                except userlib.EditError as e:
                    st.session_state["library_edit_done"] = ("error", str(e))
                else:
                    _do(userlib.describe, p, meta)
        r1, r2 = st.columns([3, 1], vertical_alignment="bottom")
        new = r1.text_input("New name", key="library_rename")
        if r2.button("Rename", key="library_rename_button", disabled=not new or new.strip() == p.name):
            _do(userlib.rename, p, new)
        d1, d2 = st.columns([3, 1], vertical_alignment="bottom")
        sure = d1.checkbox(f"Delete {S.md_code(p.name)} from disk (runs that used it keep their record)",
                           key="library_delete_ok")
        if d2.button("Delete", key="library_delete_button", type="primary", disabled=not sure):
            _do(userlib.delete, p)
    done = st.session_state.pop("library_edit_done", None)
    if done:
        kind, text = done
        if kind == "ok":
            st.session_state["library_edit_msg"] = ("ok", text)
            st.session_state.pop("library_edit_for", None)
            st.rerun()
        st.error(S.md(text))


def own_task_box(p) -> None:
    """A prompt's accuracy on its own task through the head it was trained with (core.heads), on a click:
    priced first and metered like every page computation (core.budget via pages._budget)."""
    from core.heads.evaluate import evaluate_prompt, own_task_plan
    plan = own_task_plan(p)
    preset = plan.preset.name if plan.preset else "?"
    head = plan.preset.head.value if plan.preset else "?"
    st.markdown(f"**Own-task accuracy** — preset {S.md_code(preset)} (head {S.md_code(head)})")
    if plan.reason:
        st.caption(f"Not available here: {S.md(plan.reason)}")
        return
    key = ("library_own_eval", p.name, str(p.origin), repr(plan.preset.to_dict()))
    if st.button(f"Evaluate on {plan.task} ({plan.split}, {plan.n:,} examples)", key="library_own_eval"):
        from core import jobs as J
        from pages import _budget as BU
        ledger = BU.ledger()
        d = BU.decide(J.estimate("head_eval", plan.n, ledger), can_background=False) if ledger is not None else None
        if d is not None and d.action == "refuse":
            st.warning(d.message, icon="🔒")
        elif d is not None:
            if d.message:
                st.caption(d.message)
            try:
                with st.spinner(f"scoring {plan.n:,} examples through the {head} head…"):
                    res = BU.run_inline("head_eval", plan.n, lambda: evaluate_prompt(p, plan.task, plan.preset,
                                                                                     split=plan.split),
                                        title=f"own-task accuracy of {p.name} ({preset})")
                if res is not None:
                    st.session_state["library_own_eval_result"] = (key, res.line())
            except Exception as e:  # noqa: BLE001 -- HeadError / BackboneError / TaskError: one line
                st.session_state["library_own_eval_result"] = (key, None)
                st.error(f"Not computed: {S.md(str(e).splitlines()[0][:300])}", icon="🛑")
    held = st.session_state.get("library_own_eval_result")
    if held and held[0] == key and held[1]:
        st.success(S.md(held[1]))


if index.prompts and len(view):
    st.subheader("One prompt in detail")
    names = list(view["name"])
    nxt = st.session_state.pop("library_detail_next", None)
    if nxt in names:
        st.session_state["library_detail"] = nxt
    if st.session_state.get("library_detail") not in names:
        # set, never just drop: a dropped value leaves the browser's box on the old name while the
        # detail below shows another prompt (a filter or another folder changed the list).
        # The detail opens on the table's first row (as filtered), and says so.
        st.session_state["library_detail"] = names[0]
    name = st.selectbox("Prompt", names, key="library_detail",
                        help="the table's first row until you click a row above or pick one here")
    if name == names[0] and pick[1] is None:
        st.caption("Showing the table's first row; click a row above (or pick a prompt here) to see another.")
    p = index.prompts[name]
    group = index.group_of(name)
    st.markdown(f"**{S.md(name)}** — task {S.md_code(p.task or '?')}, backbone {S.md_code(p.backbone or 'unknown')}, "
                f"group {S.md_code(group)}, `{p.L} × {p.d}`, format {S.md_code(p.fmt)}"
                + (f", method {S.md_code(p.method)}" if p.method else "")
                + (f", score {p.score:.3f}" if p.score is not None else ""))
    if p.settings.get("note"):
        st.caption(S.md(p.settings["note"]))
    st.caption(f"from {S.md_code(shown_path(p.origin))}")  # a viewer sees no server path
    released_attempt(p)
    att = attention_rows(p.settings)
    if att is not None:  # an attempt run: what its instance-wise prompt mixed, on average
        st.markdown("**Mean attention over its sources** (best checkpoint, target's validation split; "
                    "the prompt in front of an input is Σ a·P + the target prompt)")
        st.dataframe(att, key="library_attention", hide_index=True, width="stretch",
                     column_config={"mean attention": st.column_config.NumberColumn(format="%.3f")})
    edit_panel(p)
    own_task_box(p)
    left, right = st.columns(2)
    with left:
        norms = p.tensor.norm(dim=1).numpy()
        fig = px.bar(x=list(range(p.L)), y=norms, labels={"x": "virtual token", "y": "L2 norm"},
                     title="Per-token norm")
        st.plotly_chart(fig, key="library_norms", width="stretch")
    with right:
        from core.metrics import e_avg  # the one e_avg (lazy: torch only when a prompt is shown)
        nearest = index.nearest(name, k=10, metric=e_avg)
        st.markdown(f"**Nearest prompts by e_avg** (cosine of mean tokens) in {S.md_code(group)}")
        if nearest.empty:  # alone: which backbones here have its width, and how to describe it (core.userlib)
            st.info(userlib.lone_hint(p, group))
        else:
            note = index.closeness(name, metric=e_avg)  # against the spread of this group's similarities
            if note:
                (st.warning if note.startswith("Nothing") else st.caption)(note)
            st.dataframe(nearest.fillna({"task": "—"}), key="library_nearest", hide_index=True, width="stretch",
                         column_config={"e_avg": st.column_config.NumberColumn(format="%.3f")})
    fig = px.imshow(p.tensor.numpy(), aspect="auto", color_continuous_scale="RdBu_r", color_continuous_midpoint=0,
                    labels={"x": "dimension", "y": "virtual token", "color": "value"}, title="Prompt matrix")
    st.plotly_chart(fig, key="library_heatmap", width="stretch")
