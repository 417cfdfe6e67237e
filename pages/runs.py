"""Runs: launch scratch / PoT / PANDA runs or a source x target sweep, watch them live, compare them.

    streamlit run app.py   -> Runs        (this page alone: streamlit run pages/runs.py)

Everything shown is read from the run store (ATLAS_HOME/runs.db), so a reload or a
server restart loses nothing. On load the page reconciles the store once per server
(runs whose process died are marked failed) and pumps the queue; the live part is a
fragment that re-reads the store every second while runs are active. Query params
``target``, ``source``, ``method`` (set by the Transferability page) pre-fill the form; a link
from a measured cell adds that cell's regime (``steps``, ``train_size``, ``lr``, ``eval_every``,
``params``: core.estimate.Regime). Before launch the form shows an estimated duration
(core.estimate: recent finished runs of that backbone on that device).

Viewer mode (core/access.py) hides the form and the cancel / retry / delete / resume
controls, each with a one-line reason; source paths of a spec made here pass the path
guard; a server bound beyond loopback takes the Ray address from RAY_ADDRESS only.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core import fmt
from core import safetext as S
from core.config import atlas_home, user_library_dir
from core.estimate import Regime, sweep_eta_text
from core.evidence import flags_line, is_flagged
from core.ranking import source_backbone
from core.runs import local, queue
from core.runs.display import TASK_DELETED, detail_run, run_label, score_label, short_id, task_states
from core.runs.ray_jobs import ray_available
from core.runs.spec import DEFAULT_RAY_ADDRESS, METHODS, LaunchError, RunSpec, SpecError
from core.runs.store import ACTIVE, TERMINAL, RunStore, default_db_path
from core.runs.sweeps import SweepSpec, target_checks
from core.runs.worker import pack_note
from core.training.config import LM_HEAD_PRESETS
from pages._deeplink import ensure_whole_app

ensure_whole_app()  # a deep link on a fresh server: rerun through app.py (see the module)

from core.access import PathRefused  # noqa: E402
from pages._shared import access, event_table, keep_library_in_url, shown_path, viewer_reason, waiting_figure  # noqa: E402

keep_library_in_url()  # a link copied here reopens the folders and collections opened elsewhere

ACTIVE_POLL_S = 1.0   # event -> screen within ~1 s (+ render); measured in bench/runs_store_speed.py
IDLE_POLL_S = 5.0     # still notices runs launched from the CLI
STATUS_ICON = {"queued": "⏳", "running": "🏃", "finished": "✅", "failed": "❌", "cancelled": "🛑"}

try:  # the page runs alone under AppTest; app.py sets the config otherwise
    st.set_page_config(page_title="Runs · Prompt Atlas", page_icon="🚀", layout="wide")
except Exception:  # noqa: BLE001 -- already set by app.py
    pass


# --------------------------------------------------------------------------- #
# cached resources
# --------------------------------------------------------------------------- #
@st.cache_resource(show_spinner=False)
def _store(db: str) -> RunStore:
    return RunStore(db)


@st.cache_resource(show_spinner=False)
def _reconciled(db: str) -> dict:
    """Once per server (and store): runs left 'running' by a dead process -> failed."""
    return local.reconcile(_store(db))


@st.cache_resource(show_spinner=False)
def _ray_problem() -> str | None:
    return ray_available()


@st.cache_data(show_spinner=False, ttl=60)
def _task_names() -> list[str]:
    from core.tasks import list_tasks

    return list_tasks()


def _library() -> pd.DataFrame:
    """name, task, backbone, d, origin of every prompt the library pages show."""
    try:
        from core import collection as C
        from pages._shared import load_library, opened_folders

        paths = [c for c in C.available(opened_folders()).values() if c.exists()]  # every collection
        if not paths:
            return pd.DataFrame(columns=["name", "task", "backbone", "d", "origin"])
        return load_library(paths).table
    except Exception as e:  # noqa: BLE001 -- the form still works with typed paths
        st.warning(f"Could not read the prompt library: {S.md(e)}")
        return pd.DataFrame(columns=["name", "task", "backbone", "d", "origin"])


acc = access()  # viewer mode: browse only, no launch/cancel/retry/delete
db = str(default_db_path())
try:
    store = _store(db)
    _reconciled(db)  # once per server; the live fragment below pumps the queue on every refresh
except Exception as e:  # noqa: BLE001 -- a corrupt runs.db: one message naming it, no traceback
    st.title("🚀 Runs")
    st.error(f"`ATLAS_HOME/runs.db` is not a readable run store ({S.md(type(e).__name__)}: {S.md(str(e)[:120])}). "
             "Move that file aside and reload (a new, empty store is made), or restore it from a backup; "
             "the other pages still work meanwhile.", icon="🛑")
    st.stop()

st.title("🚀 Runs")
st.caption("Train a soft prompt from scratch, by vanilla prompt transfer (PoT) or by PANDA distillation, "
           "on this machine or a Ray cluster. Finished prompts join your library "
           f"({S.md_code(shown_path(user_library_dir() / 'runs'))}) and their scores feed the **measured** matrix on the "
           "Transferability page.")


# --------------------------------------------------------------------------- #
# the form
# --------------------------------------------------------------------------- #
def _prefill(tasks: list[str], names: list[str]) -> None:
    """Query params -> form state, once per distinct link (a new link overrides old edits)."""
    qp = {k: st.query_params.get(k) for k in ("target", "source", "method", *REGIME_PARAMS)}
    sig = json.dumps(qp, sort_keys=True)
    if st.session_state.get("runs_qp_applied") == sig:
        return
    st.session_state["runs_qp_applied"] = sig
    st.session_state.pop("runs_target_refused", None)
    # the regime of the measured cell the link came from: its steps and train size, not the defaults
    regime, problems = Regime.from_query({k: qp[k] for k in REGIME_PARAMS})
    st.session_state["runs_link_problems"] = problems
    st.session_state.pop("runs_regime_note", None)
    if regime is not None:
        st.session_state["runs_steps"] = regime.steps
        st.session_state["runs_train_size"] = regime.train_size or 0
        if regime.lr is not None:
            st.session_state["runs_lr"] = regime.lr
        if regime.eval_every is not None:
            st.session_state["runs_eval_every"] = regime.eval_every
        # the cell's method settings too (core.estimate.METHOD_SETTINGS): the form's widgets where it has
        # them (teacher, λ mode, metric value), the other hyper-parameters (β, student init) otherwise
        method = dict(regime.method)
        for key, state in (("teacher_mode", "runs_teacher_mode"), ("lambda_mode", "runs_lambda_mode"),
                           ("metric_value", "runs_metric_value")):
            if key in method:
                st.session_state[state] = method.pop(key)
        extra = {**regime.extra, **method}
        st.session_state["runs_lm_head"] = extra.pop("lm_head", None) if extra.get("lm_head") in LM_HEAD_PRESETS \
            else POOLED   # the Head selectbox; an unknown one stays in the JSON, where validation names it
        st.session_state["runs_extra"] = json.dumps(extra, sort_keys=True) if extra else ""
        st.session_state["runs_regime_note"] = (f"Prefilled in the regime the measured cell was trained in: "
                                                f"{regime.describe()}" + (f", {', '.join(f'{k} {v}' for k, v in {**regime.extra, **regime.method}.items())}"
                                                                          if regime.extra or regime.method else "") + ".")
    if qp["target"] in tasks:
        st.session_state["runs_target"] = qp["target"]
        st.session_state["runs_targets"] = [qp["target"]]
    elif qp["target"]:  # never another task silently: warn and select nothing (core.training.trainable)
        from core.training.trainable import why_not
        st.session_state["runs_target_refused"] = (why_not(qp["target"]) or f"{qp['target']!r} is not a task here")
        st.session_state.pop("runs_target", None)
    if qp["method"] in METHODS:
        st.session_state["runs_method"] = qp["method"]
    if qp["source"]:
        if qp["source"] in names:
            st.session_state["runs_sources"] = [qp["source"]]
            st.session_state["runs_sweep_sources"] = [qp["source"]]
        else:
            st.session_state["runs_missing_source"] = qp["source"]


REGIME_PARAMS = ("steps", "train_size", "lr", "eval_every", "params", "method_params")
_shown_errors: set[str] = set()


def _keep_valid(key: str, options: list[str]) -> None:
    """Drop values that are no longer options (a deleted prompt/run) before the widget is drawn;
    only when needed: rewriting a widget's state every run fights the user's own edits."""
    cur = st.session_state.get(key)
    if cur is not None and any(v not in options for v in cur):
        st.session_state[key] = [v for v in cur if v in options]


def _errors(*fields: str) -> None:
    """Show the launch problems of these fields right here (below their widgets)."""
    problems = st.session_state.get("runs_errors") or {}
    for f in fields:
        if f in problems:
            st.error(f"{f}: {S.md(problems[f])}", icon="⚠️")
            _shown_errors.add(f)


POOLED = "pooled"   # the Head selectbox's default: the cosine head on pooled features


def _params(prefix: str = "runs") -> dict:
    p = {"steps": int(st.session_state[f"{prefix}_steps"]), "lr": float(st.session_state[f"{prefix}_lr"]),
         "eval_every": int(st.session_state[f"{prefix}_eval_every"])}
    if int(st.session_state[f"{prefix}_train_size"]) > 0:
        p["train_size"] = int(st.session_state[f"{prefix}_train_size"])
    if st.session_state.get(f"{prefix}_lm_head", POOLED) != POOLED:   # a label-word head (core.training.lmhead)
        p["lm_head"] = st.session_state[f"{prefix}_lm_head"]
    extra = (st.session_state.get(f"{prefix}_extra") or "").strip()
    if extra:
        try:
            more = json.loads(extra)
        except json.JSONDecodeError as e:
            raise SpecError({"params": f"other hyper-parameters: not valid JSON ({e})"}) from None
        if not isinstance(more, dict):
            raise SpecError({"params": "other hyper-parameters: a JSON object, e.g. {\"max_length\": 64}"})
        p.update(more)
    return p


def _launch(make) -> None:
    try:
        with st.spinner("Checking the spec…"):
            kind, new_id = make()
    except SpecError as e:
        st.session_state["runs_errors"] = e.problems
        return
    except LaunchError as e:
        st.session_state["runs_errors"] = {"backend": str(e)}
        return
    st.session_state["runs_errors"] = {}
    if kind == "run":
        st.session_state["runs_selected"] = new_id
        st.session_state["runs_flash"] = f"Queued run {new_id}."
    else:  # the detail follows core.runs.display.detail_run (the running run), not the last queued one
        st.session_state["runs_sweep_selected"] = new_id
        st.session_state.pop("runs_selected", None)
        st.session_state["runs_flash"] = f"Queued sweep {new_id}."


tasks = _task_names()
lib = _library()
names = sorted(lib["name"].astype(str).unique()) if len(lib) else []
origin = dict(zip(lib["name"].astype(str), lib["origin"].astype(str))) if len(lib) else {}
_prefill(tasks, names)


def _label(name: str) -> str:
    row = lib[lib["name"] == name]
    if row.empty:
        return name
    r = row.iloc[0]
    return f"{name}  ·  {r.get('task') or '?'}  ·  d={r.get('d')}"


def _max_length() -> int | None:
    try:
        return _params().get("max_length")
    except SpecError:
        return None


def _estimate_text(mode: str) -> str:
    """The form's estimated duration (core.estimate, else a calibration job: pages._budget.run_estimate)
    for the backbone of the chosen sources."""
    from pages._budget import run_estimate
    key = "runs_sources" if mode == "Single run" else "runs_sweep_sources"
    chosen = [] if (mode == "Single run" and st.session_state.get("runs_method") == "scratch") \
        else st.session_state.get(key) or []
    backbones = set(lib[lib["name"].isin(chosen)]["backbone"].dropna()) if len(lib) and chosen else set()
    if len(backbones) > 1:
        return "Estimated duration: unknown — the sources are of several backbones."
    steps = int(st.session_state.get("runs_steps") or 300)
    est, note = run_estimate(store, steps, next(iter(backbones), None), st.session_state.get("runs_device", "auto"),
                             _max_length())
    return note or est.text()


def _sweep_total_text() -> str:
    """The grid's run count and total before launch (core.estimate.sweep_estimate); a grid not filled
    in yet says what is missing."""
    from core.estimate import sweep_estimate
    from pages._budget import run_estimate
    try:
        seeds = [int(x) for x in str(st.session_state.get("runs_seeds", "0")).replace(" ", "").split(",") if x]
        srcs = [origin.get(n, n) for n in st.session_state.get("runs_sweep_sources", [])]
        sw = SweepSpec(sources=srcs, targets=list(st.session_state.get("runs_targets", [])),
                       methods=list(st.session_state.get("runs_sweep_methods", [])), seeds=seeds,
                       backbone=source_backbone(srcs) if srcs else None, params=_params(),
                       device=st.session_state.get("runs_device", "auto"))
        est, _note = run_estimate(store, int(sw.params.get("steps") or 300), sw.backbone, sw.device,
                                  sw.params.get("max_length"), panel=False)
        return sweep_estimate(sw, store, est=est)
    except (SpecError, ValueError) as e:
        return f"Total: fill in the grid first ({e})."


def _checked(paths: list[str]) -> list[str]:
    """Source paths of a spec made on this page pass the server's path guard (core.access)."""
    for p in paths:
        try:
            acc.check(p)
        except PathRefused as e:
            raise SpecError({"sources": str(e)}) from None
    return paths


def _ray_address() -> str:
    """A typed address only on a loopback-only server; otherwise the configured one (RAY_ADDRESS)."""
    if acc.ray_address_from_page:
        return st.session_state.get("runs_ray_address") or DEFAULT_RAY_ADDRESS
    return os.environ.get("RAY_ADDRESS") or DEFAULT_RAY_ADDRESS


if acc.viewer:
    viewer_reason("Launching runs")
else:
    with st.expander("New run", expanded=bool(st.query_params.get("target")) or not store.list_runs(limit=1)):
        if st.session_state.get("runs_regime_note"):
            st.info(S.md(st.session_state["runs_regime_note"]), icon="📏")  # params values come from the link
        if st.session_state.get("runs_link_problems"):
            st.warning("The link's run settings were not all usable, the form keeps its own for: "
                       + "; ".join(map(S.md, st.session_state["runs_link_problems"])) + ".")
        if st.session_state.get("runs_missing_source"):
            st.warning(f"Source prompt {S.md_code(st.session_state['runs_missing_source'])} from the link is not in the "
                       "library folders; pick one below.")
        mode = st.radio("What to launch", ["Single run", "Sweep (grid)"], horizontal=True, key="runs_mode")
        c1, c2, c3 = st.columns(3)
        if mode == "Single run":
            with c1:
                if st.session_state.get("runs_target") not in tasks:
                    st.session_state.pop("runs_target", None)
                refused = st.session_state.get("runs_target") is None and st.session_state.get("runs_target_refused")
                if refused:
                    st.warning(f"The link's target cannot be trained here: {S.md_message(refused)}. Pick a target task.")
                st.selectbox("Target task", tasks, key="runs_target", index=None if refused else 0,
                             placeholder="pick a target task")
                _errors("target")
                method = st.selectbox("Method", METHODS, key="runs_method",
                                      help="scratch: no source; pot: start from the source prompt; "
                                           "panda: distil from a teacher holding the source knowledge; "
                                           "attempt: mix frozen sources per input (ATTEMPT)")
                _errors("method")
            with c2:
                _keep_valid("runs_sources", names)
                st.multiselect("Source prompt(s)", names, key="runs_sources", format_func=_label,
                               disabled=method == "scratch",
                               help="several sources: PoT averages them (SPoT); panda learns from one teacher "
                                    "per source (equal weights); attempt mixes them per input. They need one "
                                    "prompt length and one backbone")
                _errors("sources")
                if method == "panda":
                    st.selectbox("Teacher", ["pot", "source"], key="runs_teacher_mode",
                                 format_func=lambda m: {"pot": "PoT on the target first (PANDA code)",
                                                        "source": "the source prompt itself"}[m])
                    _errors("teacher")
                    if st.session_state.get("runs_teacher_mode", "pot") == "pot":
                        k = max(1, len(st.session_state.get("runs_sources") or []))
                        st.caption("Launches a small sweep: the scratch baseline, "
                                   + ("the PoT teacher" if k == 1 else f"{k} PoT teachers (one per source)")
                                   + ", then the PANDA student once its teacher" + ("s have" if k > 1 else " has")
                                   + " finished.")
                    st.radio("λ mode", ["fixed", "metric"], horizontal=True, key="runs_lambda_mode",
                             help="fixed: PANDA code's weight; metric: λ = β · metric(s, t) (our reading)")
                    if st.session_state.get("runs_lambda_mode") == "metric":
                        st.number_input("metric(s, t), normalised to [0, 1]", 0.0, 1.0, 0.5, 0.05,
                                        key="runs_metric_value")
            with c3:
                st.number_input("Seed", 0, 10_000, 0, key="runs_seed")
        else:
            with c1:
                _keep_valid("runs_targets", tasks)
                st.multiselect("Target tasks", tasks, key="runs_targets")
                st.multiselect("Methods", ["pot", "panda"], default=["pot"], key="runs_sweep_methods",
                               help="scratch baselines are always added; panda adds the PoT teacher it needs")
            with c2:
                _keep_valid("runs_sweep_sources", names)
                st.multiselect("Source prompts", names, key="runs_sweep_sources", format_func=_label)
            with c3:
                st.text_input("Seeds", "0", key="runs_seeds", help="comma-separated, e.g. 0,1,2")
            _errors("targets", "methods", "sources", "seeds", "sweep", "target")
        d1, d2, d3, d4, d5 = st.columns(5)
        d1.number_input("Steps", 1, 100_000, 300, key="runs_steps")
        d2.number_input("Learning rate", 1e-5, 10.0, 0.03, format="%.4f", key="runs_lr")
        d3.number_input("Train size (0 = all)", 0, 1_000_000, 0, key="runs_train_size")
        d4.number_input("Eval every (steps)", 0, 100_000, 50, key="runs_eval_every")
        d5.selectbox("Device", ["auto", "cpu", "cuda"], key="runs_device")
        st.selectbox("Head", [POOLED, *LM_HEAD_PRESETS], key="runs_lm_head",
                     format_func=lambda h: "pooled features vs label descriptions (cosine)" if h == POOLED
                     else f"label words: {h}",
                     help="what reads the prompt: the cosine head on pooled features (any backbone), or a "
                          "label-word head as released prompts were trained (thunlp-roberta/-bert: masked LM at "
                          "position 0; thunlp-t5 / peft-seq2seq: T5 decoder; peft-causal: the word as the text's "
                          "continuation). A label-word head needs the backbone with its LM head; label words: "
                          "\"label_words\" below, else the preset's, else the label names. The head is recorded "
                          "with the result and pairs a run only with scratch runs read the same way.")
        st.text_input("Other hyper-parameters (JSON, any core.training.TrainConfig field)", "", key="runs_extra",
                      placeholder='{"max_length": 64, "batch_size": 32, "head": "linear"}')
        _errors("params")
        _errors("device")
        st.caption(_estimate_text(mode), help="median seconds per step of the last finished runs of this backbone "
                                              "on this device (wall time: loading and evaluation included); before "
                                              "the first, a timed calibration of a few steps on this device")
        if mode != "Single run":
            st.caption("⏱ " + _sweep_total_text(), help="runs × the per-run estimate ÷ the runs this device trains "
                                                          "at once; PANDA students start after their PoT teachers")
        b1, b2 = st.columns([1, 2])
        backend = b1.radio("Backend", ["local", "ray"], horizontal=True, key="runs_backend")
        if backend == "ray":
            problem = _ray_problem()
            if problem:
                b2.warning(f"{problem}  \nEnable it with `pip install -r requirements-ray.txt`.")
            if acc.ray_address_from_page:
                b2.text_input("Ray dashboard address", os.environ.get("RAY_ADDRESS") or DEFAULT_RAY_ADDRESS,
                              key="runs_ray_address")
            else:  # a shared server connects only where its operator configured
                b2.caption(f"Ray dashboard address: `{_ray_address()}` (from the server's RAY_ADDRESS; a shared "
                           "server takes no address from a page)")
        _errors("backend")

        def make_run():
            m = st.session_state["runs_method"]
            params = _params()
            teacher = None
            if m == "panda":
                params["teacher_mode"] = st.session_state.get("runs_teacher_mode", "pot")
                params["lambda_mode"] = st.session_state.get("runs_lambda_mode", "fixed")
                if params["lambda_mode"] == "metric":
                    params["metric_value"] = float(st.session_state.get("runs_metric_value", 0.5))
            srcs = _checked([origin.get(n, n) for n in st.session_state.get("runs_sources", [])]) \
                if m != "scratch" else []
            spec = RunSpec(method=m, target=st.session_state["runs_target"], sources=srcs, teacher=teacher,
                           backbone=source_backbone(srcs), params=params, seed=int(st.session_state["runs_seed"]), device=st.session_state["runs_device"],
                           backend=backend, address=_ray_address() if backend == "ray" else None)
            return queue.launch(spec, store)  # PANDA with a PoT teacher: a 1x1 sweep (core.runs.sweeps)

        def make_sweep():
            try:
                seeds = [int(s) for s in str(st.session_state.get("runs_seeds", "0")).replace(" ", "").split(",") if s]
            except ValueError:
                raise SpecError({"sweep": "seeds: comma-separated integers, e.g. 0,1,2"}) from None
            srcs = _checked([origin.get(n, n) for n in st.session_state.get("runs_sweep_sources", [])])
            sw = SweepSpec(sources=srcs, targets=list(st.session_state.get("runs_targets", [])),
                           methods=list(st.session_state.get("runs_sweep_methods", [])), seeds=seeds,
                           backbone=source_backbone(srcs),
                           params=_params(), device=st.session_state["runs_device"], backend=backend,
                           address=_ray_address() if backend == "ray" else None)
            warns = target_checks(list(sw.targets))[1]  # refusals: launch_sweep raises them (core.runs.sweeps)
            sid = queue.launch_sweep(sw, store)
            st.session_state["runs_target_warnings"] = warns
            return "sweep", sid

        if st.button("🚀 Launch", key="runs_launch", type="primary"):
            _launch(make_run if mode == "Single run" else make_sweep)
            st.rerun()  # draw the problems beside their fields (they were drawn before this click)
        if st.session_state.get("runs_errors"):
            _errors(*[f for f in st.session_state["runs_errors"] if f not in _shown_errors])
            st.error("Nothing was launched: fix the fields marked above.", icon="🛑")


if st.session_state.get("runs_flash"):
    # popped at the end of the script, not here: a launch makes a run active, and the live part's
    # switch to the fast refresh reruns the page once more, which ate the "Queued run …" line
    st.success(S.md(st.session_state["runs_flash"]))  # names run and sweep ids from the store
    for w in st.session_state.get("runs_target_warnings") or []:  # the target checks, one line each
        st.warning(S.md(w), icon="⚠️")


# --------------------------------------------------------------------------- #
# live part
# --------------------------------------------------------------------------- #
def _progress(r: dict) -> float:
    total = r.get("total_steps") or 0
    if r["status"] == "finished":
        return 1.0
    return min(1.0, (r.get("step") or 0) / total) if total else 0.0


def _runs_frame(runs: list[dict]) -> pd.DataFrame:
    rows = []
    marks = task_states(runs)  # a deleted target, or one now holding other data (core.runs.display)
    for r in runs:
        m = r.get("last_metrics") or {}
        target = r["target"] + (f" ({marks[r['run_id']]})" if r["run_id"] in marks else "")
        rows.append({"run": short_id(r), "status": f"{STATUS_ICON.get(r['status'], '')} {r['status']}",
                     "method": r["method"], "target": target, "source": r["source"] or "",
                     "seed": r["seed"], "progress": _progress(r), "step": f"{r['step']}/{r.get('total_steps') or '?'}",
                     "best val": fmt.num(m.get("best_val_score"), 3), "test": fmt.num(r.get("test_score"), 3),
                     "score": score_label(r, short=True),  # what "best val" and "test" are
                     "sweep": r.get("sweep_id") or ""})  # device and backend: in the detail's tiles
    return pd.DataFrame(rows)


def _fmt_s(x) -> str:
    if x is None:
        return "–"
    x = float(x)
    return f"{x:.0f}s" if x < 120 else f"{x / 60:.1f} min"


LOSS_CURVES = (("ce", "CE"), ("kd", "KD (MSE to teacher)"))


def _loss_chart(ev: pd.DataFrame) -> go.Figure:
    """The training losses of one run; the title names the curves drawn (a scratch or PoT run has no KD)."""
    fig = go.Figure()
    prog = ev[ev["kind"] == "progress"] if len(ev) else ev
    drawn = []
    for col, name in LOSS_CURVES:
        if col in prog and prog[col].notna().any() and (col != "kd" or prog[col].abs().sum() > 0):
            fig.add_trace(go.Scatter(x=prog["step"], y=prog[col], mode="lines", name=name))
            drawn.append(name.split(" ")[0])
    fig.update_layout(title="Loss: " + " and ".join(drawn) if drawn else "Loss", xaxis_title="step",
                      yaxis_title="loss", height=320, margin=dict(l=10, r=10, t=40, b=10),
                      legend=dict(orientation="h"))
    return fig if drawn else waiting_figure(fig, "waiting for the first step")


def _eval_chart(ev: pd.DataFrame, kind: str = "accuracy") -> go.Figure:
    """The validation curve, labelled with the run's score kind (accuracy or balanced accuracy)."""
    fig = go.Figure()
    evals = ev[ev["kind"] == "eval"] if len(ev) else ev
    drawn = "val_score" in evals and evals["val_score"].notna().any()
    if drawn:
        fig.add_trace(go.Scatter(x=evals["step"], y=evals["val_score"], mode="lines+markers", name=f"val {kind}"))
        fig.data[0].cliponaxis = False  # a marker at 1.0 is drawn whole on the fixed axis
    fig.update_layout(title=f"Validation {kind}", xaxis_title="step", yaxis_title=kind, height=320,
                      yaxis_range=[0, 1], margin=dict(l=10, r=10, t=40, b=10))  # a rate: always [0, 1]
    return fig if drawn else waiting_figure(fig, "waiting for the first evaluation")


def _run_view(run: dict) -> None:
    rid = run["run_id"]
    m = run.get("last_metrics") or {}
    spec = run["spec"]
    st.subheader(f"{STATUS_ICON.get(run['status'], '')} {S.md(rid)}")
    st.caption(f"{S.md(run['method'])} on **{S.md(run['target'])}**" + (f" from **{S.md(run['source'])}**" if run["source"] else "")
               + f" · seed {run['seed']} · {S.md(run['backend'])}" + (f" ({S.md(run['address'])})" if run.get("address") else "")
               + (f" · sweep {S.md(run['sweep_id'])}" if run.get("sweep_id") else ""))
    st.progress(_progress(run), text=f"{run['status']} · step {run['step']}/{run.get('total_steps') or '?'}")
    k = [*st.columns(3), *st.columns(3)]  # two rows of three: six tiles in one row cut "3.6 min" at 1280 px
    k[0].metric("examples/s", f"{m['examples_per_s']:.1f}" if m.get("examples_per_s") else "–")
    k[1].metric("ETA", _fmt_s(m.get("eta_s")) if run["status"] == "running" else "–")
    k[2].metric("device", run.get("device") or spec.get("device") or "?")
    mem = m.get("gpu_mem_mb") or m.get("rss_mb")
    k[3].metric("GPU memory" if m.get("gpu_mem_mb") else "memory (RSS)", f"{mem:.0f} MB" if mem else "–")
    kind = score_label(run, short=True)  # the task's registered score kind (the other is kept in the results)
    k[4].metric(f"best val {S.md(kind)}", f"{m['best_val_score']:.3f}" if m.get("best_val_score") is not None else "–")
    k[5].metric(f"test {S.md(kind)}", f"{run['test_score']:.3f}" if run.get("test_score") is not None else "–")
    if mark := task_states([run]).get(rid):
        st.caption(f"⚠ target {S.md(run['target'])}: {mark} — "
                   + ("the task was deleted; this run keeps its results and the data hash it trained on"
                      if mark == TASK_DELETED else
                      "a task registered later under this name holds other data; this run's numbers "
                      "are not merged with its runs"))
    if note := pack_note(store, run):
        st.caption(note)
    flags = store.run_flags(run)  # core.evidence.run_flags, stored by the worker with its final event
    if line := flags_line(flags):
        (st.warning if is_flagged(flags) else st.caption)(S.md(line))

    ev = store.events_frame([rid])
    c1, c2 = st.columns(2)
    c1.plotly_chart(_loss_chart(ev), key=f"runs_loss_{rid}", width="stretch")
    c2.plotly_chart(_eval_chart(ev, score_label(run)), key=f"runs_eval_{rid}", width="stretch")

    if run["status"] == "failed":
        st.error(f"Failed: {S.md(run.get('error') or 'no message')}")
    elif run["status"] == "finished" and run.get("prompt_path") and not Path(run["prompt_path"]).exists():
        st.info(f"Its prompt was deleted from your library ({S.md_code(shown_path(run['prompt_path']))}); the run's record and scores "
                "stay in the results.")
    elif run["status"] == "finished" and run.get("prompt_path"):
        st.success(f"Prompt saved in your library: {S.md_code(shown_path(run['prompt_path']))}. Its test score is part of the "
                   "results table that the Transferability page's **measured** matrix is computed from.")
    elif run["status"] == "queued" and run.get("depends_on"):
        st.info(f"Waiting for {S.md_list(run['depends_on'])} (its PoT teacher) to finish.")

    if acc.viewer:
        viewer_reason("Cancel, retry and delete")
    a1, a2, a3, a4 = st.columns([1, 1, 1, 2])
    if not acc.viewer and run["status"] in ACTIVE and a1.button("🛑 Cancel", key="runs_cancel"):
        queue.cancel(rid, store)
        st.rerun()
    if not acc.viewer and run["status"] in TERMINAL and a2.button("🔁 Retry", key="runs_retry"):
        try:
            new = queue.retry(rid, store)
            st.session_state["runs_select_next"] = new
            st.session_state["runs_flash"] = f"Retry queued as {new}."
            st.rerun()
        except SpecError as e:
            st.error(f"Cannot retry: {S.md(e)}")
    if not acc.viewer and run["status"] in TERMINAL:
        sure = a4.checkbox("Yes, delete this run's record", key=f"runs_delete_confirm_{rid}",
                           help="its prompt stays in the library")
        if a3.button("🗑️ Delete", key="runs_delete", disabled=not sure):
            store.delete_run(rid)
            st.session_state["runs_select_next"] = None
            st.session_state["runs_flash"] = f"Deleted run {rid}."
            st.rerun()
    with st.expander("Spec, events and log"):
        st.json(spec, expanded=False)
        tail = store.events(rid)[-15:]
        st.dataframe(event_table(tail), hide_index=True, width="stretch", key=f"runs_events_{rid}")
        log = atlas_home() / "runs" / rid / "log.txt"
        if log.is_file():
            st.code(local.run_log_tail(run, 40), language=None)


def _compare(runs: list[dict]) -> None:
    ids = [r["run_id"] for r in runs]
    _keep_valid("runs_compare", ids)
    by_id = {r["run_id"]: r for r in runs}
    chosen = st.multiselect("Compare runs", ids, key="runs_compare", max_selections=12,
                            format_func=lambda i: run_label(by_id[i]))
    metric = st.selectbox("Curve", ["ce", "loss", "kd", "val_score", "examples_per_s"], key="runs_compare_metric")
    if not chosen:
        return
    ev = store.events_frame(chosen)
    fig = go.Figure()
    for rid in chosen:
        part = ev[(ev["run_id"] == rid)] if len(ev) else ev
        if metric not in part:
            continue
        part = part[part[metric].notna()]
        r = by_id[rid]
        fig.add_trace(go.Scatter(x=part["step"], y=part[metric], mode="lines+markers" if metric == "val_score" else "lines",
                                 name=S.plotly(f"{r.get('sweep_id') or ''} {run_label(r)}".strip())))
    fig.update_layout(xaxis_title="step", yaxis_title=metric, height=380, margin=dict(l=10, r=10, t=30, b=10))
    if metric == "val_score":  # an accuracy: the axis is [0, 1] whatever the runs reached
        fig.update_yaxes(range=[0, 1])
    if not any(len(t.x) for t in fig.data):
        fig = waiting_figure(fig, f"no {metric} logged yet by these runs")
    st.plotly_chart(fig, key="runs_compare_chart", width="stretch")


def _sweeps_view() -> None:
    rows = store.list_sweeps()
    if not rows:
        return
    st.markdown("#### Sweeps")
    table = pd.DataFrame([{"sweep": s["sweep_id"], "runs": s["n_runs"],
                           "progress": (s["counts"].get("finished", 0) / s["n_runs"]) if s["n_runs"] else 0.0,
                           "ETA": sweep_eta_text(store, s),
                           **{k: s["counts"].get(k, 0) for k in ("finished", "running", "queued", "failed", "cancelled")},
                           "targets": ", ".join(s["spec"].get("targets", [])),
                           "methods": ", ".join(s["spec"].get("methods", []))} for s in rows])
    st.dataframe(table, hide_index=True, width="stretch", key="runs_sweeps_table",
                 column_config={"progress": st.column_config.ProgressColumn("progress", min_value=0, max_value=1),
                                "ETA": st.column_config.TextColumn(
                                    "ETA", help="runs not finished × the per-run estimate ÷ the runs this device "
                                    "trains at once, PANDA students after their teachers (core.estimate.sweep_eta_s)")})
    ids = [s["sweep_id"] for s in rows]
    if st.session_state.get("runs_sweep_selected") not in ids:
        st.session_state["runs_sweep_selected"] = ids[0]
    sid = st.selectbox("Sweep", ids, key="runs_sweep_selected")
    sel = next(s for s in rows if s["sweep_id"] == sid)
    undone = sum(v for k, v in sel["counts"].items() if k in ("failed", "cancelled"))
    if undone and acc.viewer:
        viewer_reason("Resuming sweeps")
    elif undone and st.button(f"▶️ Resume (relaunch {undone} failed/cancelled)", key="runs_sweep_resume"):
        try:
            _, new = queue.resume_sweep(sid, store)
            st.session_state["runs_flash"] = f"Relaunched {len(new)} run(s) of {sid}."
        except (SpecError, LaunchError) as e:
            st.error(f"Cannot resume: {S.md(e)}")
        st.rerun()
    # the measured matrix of this sweep, filling in as its runs finish
    results = store.results_table(status=("finished",))
    results = results[results["sweep_id"] == sid]
    if results.empty or not (results["method"] != "scratch").any():
        st.caption("The measured matrix appears here as this sweep's transfer runs finish.")
        return
    from core import results as results_mod
    methods = results_mod.transfer_methods(results)
    method = st.radio("Method shown", methods, horizontal=True, key="runs_sweep_method",
                      index=methods.index(results_mod.default_method(methods))) if len(methods) > 1 else methods[0]
    try:  # the same rule, colours, marks and number format as Transferability (core.evidence, _transfer_figs)
        from core import evidence as E
        from pages._transfer_figs import heatmap_figure

        ev = E.evidence(results, method=method)
        mat = ev.gain
    except Exception as e:  # noqa: BLE001
        st.caption(f"measured matrix unavailable: {S.md(e)}")
        return
    if mat.empty:
        st.caption("Waiting for the scratch baselines of these targets.")
        return
    hover = pd.DataFrame({t: {s_: E.cell_text(ev, s_, t) for s_ in mat.index} for t in mat.columns})
    fig = heatmap_figure(mat, annotate=True, diverging=True, zlabel="relative gain", gain=True, clickable=False,
                         height=220 + 40 * len(mat), marks=ev.marks, hover=hover)
    fig.update_layout(title=f"measured {method} (relative gain over scratch) · {S.plotly(sid)}")
    st.caption(ev.summary() + ". Marks: " + ", ".join(f"{v} {k}" for k, v in E.MARK_SYMBOL.items())
               + "; grey = self-transfer, or every run of the cell flagged (its value is not a finding).")
    st.plotly_chart(fig, key="runs_sweep_measured", width="stretch")


def live() -> None:
    queue.pump(store)
    runs = store.list_runs(limit=500)
    if not runs:
        st.info("No runs yet. Launch one above, or from a terminal: `python -m core run --spec spec.json`.")
        return
    active = sum(r["status"] in ACTIVE for r in runs)
    st.markdown(f"#### Runs · {active} active · {len(runs)} in the store")
    cc = st.column_config  # widths: every column fits a 1280-px window (without a sweep column: 755 px)
    frame = _runs_frame(runs)
    if not frame["sweep"].astype(bool).any():  # no run belongs to a sweep: no empty column
        frame = frame.drop(columns=["sweep"])
    if "score" in frame and (frame["score"] == score_label({}, short=True)).all():
        frame = frame.drop(columns=["score"])  # every run scored by accuracy (the default): the column says nothing
    st.dataframe(frame, hide_index=True, width="stretch", key="runs_table",
                 column_config={"run": cc.TextColumn(width=150, help="a sweep's runs by their place in it (#004); "
                                                                 "other runs by their id"), "status": cc.TextColumn(width=90),
                                "method": cc.TextColumn(width=60), "target": cc.TextColumn(width=90),
                                "source": cc.TextColumn(width=90), "seed": cc.NumberColumn(width=40),
                                "progress": cc.ProgressColumn("progress", min_value=0, max_value=1, width=70),
                                "step": cc.TextColumn(width=55),
                                "best val": cc.TextColumn(width=60),  # "–" before an evaluation, never "None"
                                "test": cc.TextColumn(width=50),
                                "score": cc.TextColumn(width=60, help="the score kind of best val and test: "
                                                       "the task's registered kind (accuracy, or balanced "
                                                       "accuracy for an imbalanced task)"),
                                "sweep": cc.TextColumn(width=120)})
    _sweeps_view()
    ids = [r["run_id"] for r in runs]
    if "runs_select_next" in st.session_state:  # set by a button below, applied before the widget exists
        st.session_state["runs_selected"] = st.session_state.pop("runs_select_next")
    if st.session_state.get("runs_selected") not in ids:  # nothing chosen: the running run, else the last finished
        st.session_state["runs_selected"] = detail_run(runs)
    # the label names the run, not its status: a browser keeps an open box's label while the status
    # changes under it (a finished run still read 🏃); the heading below carries the live status
    rid = st.selectbox("Run", ids, key="runs_selected",
                       format_func=lambda i: next(run_label(r) + (f" · {r['sweep_id']}" if r.get("sweep_id") else "")
                                                  for r in runs if r["run_id"] == i))
    _run_view(next(r for r in runs if r["run_id"] == rid))
    st.markdown("#### Compare runs")
    _compare(runs)
    st.caption(f"Refreshed {time.strftime('%H:%M:%S')} · store {S.md_code(shown_path(store.path))}")
    # switch between the fast and the idle refresh when activity changes
    if bool(active) != st.session_state.get("runs_was_active", bool(active)):
        st.session_state["runs_was_active"] = bool(active)
        st.rerun()
    st.session_state["runs_was_active"] = bool(active)


_active_now = bool(store.list_runs(status=list(ACTIVE), limit=1))
st.session_state.setdefault("runs_was_active", _active_now)
st.fragment(run_every=ACTIVE_POLL_S if _active_now else IDLE_POLL_S)(live)()
st.session_state.pop("runs_target_warnings", None)
st.session_state.pop("runs_flash", None)  # shown by a run that got this far: once is enough
