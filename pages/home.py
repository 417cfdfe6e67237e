"""Landing page: what prompt transferability is, the three steps, and the demo's
headline numbers computed live from data/demo/."""
import json

import pandas as pd
import streamlit as st

from pages._deeplink import ensure_whole_app  # noqa: E402

ensure_whole_app()  # a deep link on a fresh server: rerun through app.py (see the module)

from core.config import demo_dir
from core import collection as C
from core import fmt
from core import safetext as S
from core import evidence as E
from core.headline import headline, load_prompt_tasks, summary_lines
from core.results import ResultsError
from pages._shared import gain_column, keep_library_in_url, shown_path, validation_view

keep_library_in_url()  # a link copied here reopens the folders and collections opened elsewhere

st.title("🗺️ Prompt Atlas")
st.markdown(
    "A **soft prompt** is a small matrix of trained vectors that steers a frozen language model "
    "towards one task. **Transferability** asks whether the prompt of a *source* task gives a head start "
    "on a new *target* task — by initialising from it (vanilla prompt transfer, PoT) or by distilling "
    "from it (PANDA). Prompt Atlas shows which sources help which targets, how well cheap similarity "
    "metrics predict that, and lets you launch the runs that check it."
)


def steps() -> None:
    """The three steps, each with its page: after the headline numbers (at 1280×800 those are on the
    first screen, issue 28), or alone when there is no demo."""
    c1, c2, c3 = st.columns(3)
    with c1:
        st.subheader("1 · Look")
        st.write("Source × target heatmaps of every similarity metric and of measured transfer.")
        st.page_link("pages/transferability.py", label="Transferability heatmap", icon="🔥")
    with c2:
        st.subheader("2 · Pick")
        st.write("See the task space the prompts live in and choose a source for your target.")
        st.page_link("pages/projection.py", label="Prompt projection", icon="🧭")
    with c3:
        st.subheader("3 · Launch")
        st.write("Run PANDA (or PoT / scratch) for a target and watch it train live.")
        st.page_link("pages/runs.py", label="Runs", icon="🚀")


@st.cache_data(show_spinner=False)
def cached_headline(folder: str, stamp: float):
    return headline(folder)


folder = demo_dir()
results_path = folder / "results.csv"
if not results_path.is_file():
    steps()
    st.info(f"No demo library at {S.md_code(shown_path(folder))} yet: build it with `make demo` "
            "(or point ATLAS_DEMO at one). The other pages work on any prompt folder meanwhile.")
    st.stop()

manifest = {}
if (folder / "manifest.json").is_file():
    try:  # a bad manifest costs its label only, never the page (and never a traceback)
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        if not isinstance(manifest, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as e:
        manifest = {}
        st.warning(f"{S.md_code(folder.name + '/manifest.json')} could not be read ({S.md(type(e).__name__)}): the demo's label "
                   "is not shown. Rebuild the demo (`make demo`) or fix that file.", icon="⚠️")
label = manifest.get("label", "MiniLM-L6 (all-MiniLM-L6-v2) on small real text tasks")
try:
    h = cached_headline(str(folder), results_path.stat().st_mtime)
except ResultsError as e:  # one message naming the file, never a traceback
    st.error(S.md(e))
    st.stop()
# the headline numbers first: at 1280×800 they are on the first screen (issue 28); with their chance levels
# (issue 23); where they come from below
m1, m2, m3 = st.columns(3)
m1.metric("Finished runs", h.n_runs, help="training runs of the demo that finished: scratch baselines and PoT / PANDA "
                                          "transfers, every seed")
v = h.validation
if v and v.get("best"):
    # the chance level and the ceiling beside the number: without them ρ reads as "good"
    m2.metric(f"Best predictor: {S.md(v['best'])}", f"ρ = {fmt.num(v['best_rho'])}",
              help="mean Spearman ρ over targets between the metric and measured PoT gain; top-3 hit = share of "
                   "targets whose best measured source is in the metric's top 3")
    m2.caption(f"permutation p = {v['p']:.3f} (best of {v['n_metrics']} metrics) · top-{v['k']} hit "
               f"{v['top_k_hit']:.0%} vs {v['random_top_k']:.0%} random · seed ceiling ρ = {fmt.num(v['ceiling'])}"
               + (f" · NDCG@{v['k']} {v['retrieval']['ndcg_k']:.2f} vs {v['retrieval']['random_ndcg_k']:.2f} random"
                  if (v.get("retrieval") or {}).get("n_targets") else ""))
elif h.best_metric:
    m2.metric(f"Best predictor: {S.md(h.best_metric['metric'])}", f"ρ = {fmt.num(h.best_metric['mean_rho'])}")
m3.metric("Evidence of transfer", f"{h.n_evidence} of {h.n_tested} cells",
          help="cells whose gain is above the noise band and above the target's generic control by more "
               "than the band (core.evidence)")
m3.caption(f"≈ {h.chance:.1f} expected by chance alone")
st.caption(f"**What this demo is:** {S.md(label)}. Every number on this page is computed now from "
           f"`{results_path.relative_to(folder.parent.parent) if folder.is_relative_to(folder.parent.parent) else results_path}`.")
st.subheader("The honest summary")
for line in summary_lines(h, label):
    st.markdown("- " + line)

n_demo = len(load_prompt_tasks(folder))
st.markdown(f"These numbers come from the **`{C.DEMO}` collection**: the demo's {n_demo} source prompts and "
            f"its {h.n_runs} finished runs. Your uploads and your own runs never change them; the Transferability "
            f"page on the `{C.DEMO}` collection shows the same validation.")
try:
    st.page_link("pages/transferability.py", label="Open the demo collection on the Transferability page",
                 icon="🔥", query_params={"col": C.DEMO})
except Exception:  # noqa: BLE001 -- page run alone (AppTest, single file): a plain link instead
    st.markdown(f"[🔥 Open the demo collection on the Transferability page](/transferability?col={C.DEMO})")
st.divider()
steps()
st.divider()

# stacked, each full width: the best-source table has ten columns (issue 28's tour: no column off-screen)
left, right = st.container(), st.container()
with left:
    st.subheader("Best source per target (PoT)")
    if h.best_held_out:
        df = pd.DataFrame(h.best_held_out)
        view = pd.DataFrame({
            "target": df["target"], "source": df["source"],
            "mark": [E.MARK_SYMBOL.get(m, "") or "" for m in df["mark"]],
            "picked s0": fmt.gain_pct(df["picked_gain"]),
            "held-out": fmt.gain_pct(df["held_out_gain"]),
            "run acc.": df["source_acc"].round(3),
            "scratch acc.": [f"{m:.3f} ± {s:.3f}" for m, s in zip(df["scratch_mean"], df["scratch_spread"])],
            "majority": df["majority"].round(3),
            "generic": fmt.gain_pct(df["generic_gain"]),
            "noise": fmt.gain_pct(df["noise"])})
        cc = st.column_config
        st.dataframe(view, hide_index=True, width="stretch", key="home_best_source", column_config={
            "target": cc.TextColumn(width=110), "source": cc.TextColumn(width=105),
            "mark": cc.TextColumn(width=42, help="the cell's evidence rule over all seeds (core.evidence): "
                                  + ", ".join(f"{sym} {m}" for m, sym in E.MARK_SYMBOL.items())),
            "picked s0": gain_column("picked s0", "gain over scratch on seed 0, where this source was picked", width=66),
            "held-out": gain_column("held-out", "gain over scratch on the other seeds (not used to pick it)", width=66),
            "run acc.": cc.NumberColumn(width=62, help="the source's PoT runs' test accuracy"),
            "scratch acc.": cc.TextColumn(width=100, help="scratch test accuracy, mean ± spread over seeds"),
            "majority": cc.NumberColumn(width=66, help="always answering the majority class, same test split"),
            "generic": gain_column("generic", "gain of the generic control on this target", width=66),
            "noise": gain_column("noise", "the target's noise band: the scratch seeds' spread", width=66)})
        st.caption("Picked on seed 0 and scored on the other seeds: the best of many noisy means, scored on the "
                   "seeds it was picked on, overstates it. Self-transfer and the `generic` control are never picked; "
                   "mark = the cell's evidence rule over all seeds (" + ", ".join(
                       f"{sym} {m}" for m, sym in E.MARK_SYMBOL.items()) + ").")
with right:
    st.subheader("Which metric predicts measured transfer?")
    if h.metric_scores:
        df, config = validation_view(pd.DataFrame(h.metric_scores).sort_values("mean_rho", ascending=False))
        st.dataframe(df, hide_index=True, width="stretch", key="home_metric_scores", column_config=config)
        if v:
            st.caption(f"A random top 3 hits {v['random_top_k']:.0%} of targets; the measurements themselves "
                       f"(seed 0 vs the other seeds) reach ρ = {fmt.num(v['ceiling'])}.")
    else:
        st.info("No metric matrices in the demo library yet.")

# several sources at once (issue 27): the measurement's own table, computed by core.mixreport like the rest
if h.multisource:
    st.subheader("Several sources at once (measured)")
    st.markdown(S.md(h.multisource_sentence))
    df = pd.DataFrame(h.multisource)
    view = pd.DataFrame({
        "target": df["target"], "method": df["method"],
        "acc.": [f"{a:.3f} ± {s:.3f}" if s == s else f"{a:.3f}" for a, s in zip(df["acc"], df["acc_spread"])],
        "gain": fmt.gain_pct(df["gain"]),
        "± seeds": fmt.gain_pct(df["gain_spread"]),
        "noise": fmt.gain_pct(df["noise"]),
        "in noise": ["○" if not o else "" for o in df["outside_noise"]],
        "head start": df["head_start"],
        "scratch acc.": [f"{a:.3f} ± {s:.3f}" for a, s in zip(df["scratch_acc"], df["scratch_spread"])]})
    cc = st.column_config
    st.dataframe(view, hide_index=True, width="stretch", key="home_multisource", column_config={
        "target": cc.TextColumn(width=100), "method": cc.TextColumn(width=118, help=(
            "best single = the first source by the zs ranking (data only); mix = the top 3 by the same ranking, "
            "weights from it")),
        "acc.": cc.TextColumn(width=95, help="test accuracy, mean ± spread over the seeds"),
        "gain": gain_column("gain", "mean relative gain over the same sweep's scratch (paired by seed, same CPU)",
                            width=56),
        "± seeds": gain_column("± seeds", "the gain's spread over seeds", width=56),
        "noise": gain_column("noise", "the target's noise band: its scratch seeds' spread / mean", width=56),
        "in noise": cc.TextColumn(width=48, help="○ = |gain| is inside the noise band: not distinguishable from seed "
                                                 "noise"),
        "head start": cc.TextColumn(width=96, help="steps the run needs to reach scratch's final validation score "
                                                   "(median over seeds; core.curves)"),
        "scratch acc.": cc.TextColumn(width=95, help="scratch test accuracy, mean ± spread over its seeds")})
    st.caption("Every run of this table trained in the demo's regime on one CPU; the grid above ran on a GPU, so the "
               "two are never paired. `python -m core demo multisource --launch` reruns it; "
               "`python -m core demo report` prints it.")
