"""The pages' side of a computation's budget (core.budget, core.jobs): one click's decision with the
session's rate limit, an inline computation holding a compute slot, and a background job's panel
(progress, cancel, heartbeat). The rules are core's; this file only keeps the session's clicks and draws.
"""
from __future__ import annotations

import time

import streamlit as st

from core import budget as BG
from core import jobs as J
from core import safetext as S

CLICKS = "_budget_clicks"   # session_state: when this session started computations (the rate limit)
REFRESH_S = 2.0             # a shown job's panel reruns (and heartbeats) this often


def _access():
    from pages._shared import access
    return access()


def budget() -> BG.Budget:
    try:
        return BG.Budget.from_env()
    except BG.BudgetError as e:
        st.error(f"This server's compute settings are not usable: {S.md(e)}", icon="🛑")
        st.stop()


@st.cache_resource(show_spinner=False)
def _store(path: str):
    """One RunStore per runs.db for the whole server (it is thread-safe: a connection per thread)."""
    return J.RunStore(path)


def ledger():
    """The run store's compute ledger, or None (with one message) when runs.db cannot be opened."""
    try:
        from core.runs.store import default_db_path
        return _store(str(default_db_path()))
    except Exception as e:  # noqa: BLE001 -- a broken runs.db must not take the page down
        if once_per_run("ledger_broken"):  # one message per page run, however many controls ask
            st.warning(f"The run store ATLAS_HOME/runs.db cannot be opened ({type(e).__name__}): your runs are not "
                       "shown and nothing can be computed on this page. Move that file aside (or repair it) and "
                       "reload.", icon="⚠️")
        return None


def once_per_run(key: str) -> bool:
    """True the first time ``key`` is asked in this script run (a message said once however many callers)."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx
    ctx = get_script_run_ctx()
    token = id(ctx.cursors) if ctx is not None else None  # a new dict at every run's start (ScriptRunContext.reset)
    seen = st.session_state.setdefault("_atlas_once", {})
    if token is not None and seen.get(key) == token:
        return False
    seen[key] = token
    return True


def ledger_broken_said() -> bool:
    """Whether this run already said the run store cannot be opened (the page need not say it again)."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx
    ctx = get_script_run_ctx()
    return ctx is not None and st.session_state.get("_atlas_once", {}).get("ledger_broken") == id(ctx.cursors)


def owner() -> str:
    return "viewer" if _access().viewer else "full"


def decide(cost: BG.Cost, *, can_background: bool = True) -> BG.Decision:
    """The decision for one click; a click that may start work counts against the session's rate."""
    clicks = st.session_state.setdefault(CLICKS, [])
    now = time.time()
    d = budget().decide(cost, viewer=_access().viewer, clicks=clicks, now=now, can_background=can_background)
    if d.action != "refuse":
        clicks.append(now)
        del clicks[:-200]
    return d


def run_inline(kind: str, units: int, fn, *, title: str = "", units_done=None):
    """fn() while holding one compute slot; None (and one warning) when every slot is taken.
    ``units_done(result)``: the units really computed (a cache hit did none), for the measured rate."""
    if units == 0:
        return fn()  # nothing to compute (all cached): no slot, never "busy"
    store = ledger()
    if store is None:
        return None
    try:
        with J.slot(kind, units, owner=owner(), title=title or kind, store=store) as rec:
            out = fn()
            if units_done is not None:
                rec["units"] = int(units_done(out))
            return out
    except J.Busy as e:
        st.warning(S.md(e), icon="⏳")  # names the running computations' titles (a task name)
        return None


def start_job(metric: str, prompts, est: BG.Cost, *, map_cfg: dict | None = None,
              params: dict | None = None) -> dict | None:
    """Start or join the background job for a matrix (``metric``, computed with ``params``: zs's head) or,
    with ``map_cfg``, a t-SNE/UMAP map."""
    store = ledger()
    if store is None:
        return None
    if map_cfg is not None:
        job, _created = J.submit_map_job(prompts, map_cfg, owner=owner(), est=est, store=store)
    else:
        job, _created = J.submit_matrix_job(metric, prompts, owner=owner(), est=est, store=store, params=params)
    return job


def job_panel(key: str) -> dict | None:
    """The latest background job for ``key``: while it is active a self-refreshing panel (progress,
    cancel in full mode) that heartbeats it; after it ended, one line on how it ended. -> the job row."""
    store = ledger()
    if store is None:
        return None
    J.reconcile(store)
    j = J.latest_job(key, store)
    if j is None:
        return None
    if j["status"] in ("queued", "running"):
        _live(key, j["job_id"])
    elif j["status"] in ("failed", "cancelled") and j.get("done"):
        st.caption(f"The last job for this was {j['status']} after {j['done']:,} of {j['total'] or '?'} "
                   f"units ({S.md(j.get('error') or 'no reason recorded')}). What it computed is saved: computing again "
                   "resumes from there.")
    elif j["status"] == "failed":
        st.caption(f"The last job for this failed: {S.md(j.get('error') or 'no reason recorded')}.")
    return j


def _live(key: str, job_id: str) -> None:
    @st.fragment(run_every=REFRESH_S)
    def panel():
        store = ledger()
        if store is None:
            return
        j = store.get_job(job_id)
        if j is None:
            return
        if j["status"] not in ("queued", "running"):
            st.rerun()  # the whole page: the matrix is in the cache now (or the panel says how it ended)
        J.heartbeat(job_id, store)  # this session still wants it (a viewer's job ends without one)
        total, done = j.get("total") or 0, j.get("done") or 0
        if j["status"] == "queued":
            text = f"⏳ {S.md(j['title'])}: queued — waiting for a compute slot ({budget().max_compute} on this server)"
        elif done:
            eta = ""
            if j.get("started"):
                left = (time.time() - j["started"]) / done * max(total - done, 0)
                eta = f", about {BG.fmt_seconds(left)} left"
            text = f"⚙️ {S.md(j['title'])}: {done:,} of {total:,} done{eta} (job {job_id}; shared with anyone who asks)"
        else:  # a job without per-unit progress (a map), or before its first unit
            ran = time.time() - (j.get("started") or time.time())
            est = f" of an estimated {BG.fmt_seconds(j['est_s'])}" if j.get("est_s") else ""
            text = f"⚙️ {S.md(j['title'])}: running for {BG.fmt_seconds(ran)}{est} (job {job_id}; shared with anyone who asks)"
        st.progress(min(done / total, 1.0) if total else 0.0, text=text)
        if not _access().viewer:
            if st.button("Cancel job", key=f"job_cancel_{job_id}",
                         help="stops before its next unit; what it computed is kept and reused"):
                J.cancel(job_id, store)
                st.rerun()
        else:
            st.caption("This job stops when no open page asks for it for "
                       f"{BG.fmt_seconds(budget().idle_s)} (ATLAS_JOB_IDLE_S).")

    panel()


def run_estimate(store, steps: int, backbone: str | None, device: str | None, max_length: int | None = None, *,
                 panel: bool = True):
    """core.estimate's per-run Estimate; before the first finished run of this backbone on this device and
    before its calibration is cached, the calibration starts as a small background job priced and
    decided like any computation (core.budget: a viewer's may be refused) and a line says it is timing.
    panel: draw the calibration job's progress panel (once per page: it has a Cancel button).
    -> (Estimate, note): note is "" or the one line to show instead of the estimate's own text."""
    from core import estimate as E
    est = E.estimate_for(store, steps, backbone, device, max_length=max_length)
    if est.seconds is not None or est.why != E.NOT_CALIBRATED:
        return est, ""
    from core.training.trainable import backbone_missing
    why = backbone_missing(est.backbone)
    bb = est.backbone.split("/")[-1]
    if why:
        return est, f"Estimated duration: unknown — {bb} cannot be calibrated here: {why}"
    led = ledger()
    if led is None:
        return est, est.text()
    ml = int(max_length or E.MAX_LENGTH)
    key = J.calibration_key(est.backbone, est.device, ml)
    J.reconcile(led)
    if J.active_job(key, led) is None:
        last = J.latest_job(key, led)
        if last is not None and last["status"] == "failed":
            return est, f"Estimated duration: unknown — the calibration of {bb} on {est.device} failed: {last.get('error')}"
        d = decide(J.estimate("calibrate", 1, led))
        if d.action == "refuse":
            return est, f"Estimated duration: unknown until {bb} is timed on {est.device}. {d.message}"
        J.submit_calibration_job(est.backbone, est.device, ml, owner=owner(), est=d.cost, store=led)
    if panel:
        job_panel(key)
    return est, (f"Estimated duration: timing {bb} on {est.device} now (a calibration of a few prompt-tuning steps, "
                 "once per device and torch version); the estimate shows when it ends.")
