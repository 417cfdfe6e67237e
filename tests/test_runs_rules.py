"""core/runs/ rules that need no training: PANDA with a PoT teacher becomes a 1x1 sweep (page and CLI),
the store's claims (the only place with SQL), and what resuming a sweep relaunches.

    .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_runs_rules.py
"""
from __future__ import annotations

import json
import time

import pytest

from core.config import demo_dir
from core.runs import queue, sweeps
from core.runs.spec import RunSpec
from core.runs.store import RunStore
from core.runs.sweeps import SweepSpec, panda_pot_sweep, plan, plan_resume

TARGET = "spam_sms"
SRC = str(demo_dir() / "prompts" / "sent_movie")


def _task_ready() -> str | None:
    try:
        from core.tasks import get_task

        get_task(TARGET)
    except Exception as e:  # noqa: BLE001
        return f"demo task {TARGET} not prepared ({e}); run `make tasks`"
    return None


needs_task = pytest.mark.skipif(_task_ready() is not None, reason=str(_task_ready()))


# --------------------------------------------------------------------------- the PANDA rule
def test_panda_with_a_pot_teacher_becomes_a_1x1_sweep():
    spec = RunSpec(method="panda", target=TARGET, sources=[SRC], seed=3, device="cpu",
                   params={"steps": 5, "teacher_mode": "pot", "lambda_mode": "fixed"})
    sw = panda_pot_sweep(spec)
    assert isinstance(sw, SweepSpec)
    assert (sw.sources, sw.targets, sw.methods, sw.seeds, sw.device) == ([SRC], [TARGET], ["panda"], [3], "cpu")
    assert sw.params == {"steps": 5, "lambda_mode": "fixed"}  # teacher_mode is the sweep's business now
    planned = plan(sw)
    assert [p.key for p in planned] == [f"scratch|{TARGET}|3", f"pot|{SRC}|{TARGET}|3", f"panda|{SRC}|{TARGET}|3"]
    panda = planned[-1]
    assert panda.deps == [f"pot|{SRC}|{TARGET}|3"] and panda.spec.teacher == f"key:pot|{SRC}|{TARGET}|3"
    # teacher_mode "pot" is TrainConfig's default: a spec that does not say it gets the same sweep
    plain = panda_pot_sweep(RunSpec(method="panda", target=TARGET, sources=[SRC]))
    assert plain is not None and plain.methods == ["panda"] and plain.panda_teacher == "pot"


@pytest.mark.parametrize("kw", [
    dict(method="panda", sources=[SRC], params={"teacher_mode": "source"}),  # the source is the teacher
    dict(method="panda", sources=[SRC], teacher=SRC),  # a PoT teacher prompt given
    dict(method="panda", sources=[SRC], teacher="run:r1"),  # a run's prompt (a sweep's own cell)
    dict(method="pot", sources=[SRC]),
    dict(method="scratch"),
])
def test_every_other_spec_launches_as_it_is(kw):
    assert panda_pot_sweep(RunSpec(target=TARGET, **kw)) is None


@needs_task
def test_launch_applies_the_rule_for_the_page_and_the_cli(atlas_home, tmp_path, monkeypatch, capsys):
    from core.runs.cli import cli

    monkeypatch.setattr(queue, "pump", lambda store=None, dispatch=True: {})  # queue only, start nothing
    store = RunStore()
    kind, sid = queue.launch(RunSpec(method="panda", target=TARGET, sources=[SRC], device="cpu",
                                     params={"steps": 4}), store)
    assert kind == "sweep"
    runs = store.latest_sweep_runs(sid)
    assert sorted(r["method"] for r in runs.values()) == ["panda", "pot", "scratch"]
    pot, panda = runs[f"pot|{SRC}|{TARGET}|0"], runs[f"panda|{SRC}|{TARGET}|0"]
    assert panda["depends_on"] == [pot["run_id"]] and panda["spec"]["teacher"] == f"run:{pot['run_id']}"
    kind, rid = queue.launch(RunSpec(method="panda", target=TARGET, sources=[SRC], device="cpu",
                                     params={"steps": 4, "teacher_mode": "source"}), store)
    assert kind == "run" and store.get_run(rid)["sweep_id"] is None
    # the CLI: `python -m core run --spec panda.json` queues the same sweep and prints its id
    f = tmp_path / "panda.json"
    f.write_text(json.dumps({"method": "panda", "target": TARGET, "sources": [SRC], "device": "cpu",
                             "params": {"steps": 4}}))
    assert cli("run", ["--spec", str(f)]) == 0
    out = capsys.readouterr()
    new_sid = out.out.strip()
    assert "PoT teacher" in out.err and new_sid != sid
    assert len(store.latest_sweep_runs(new_sid)) == 3 and store.get_sweep(new_sid)["spec"]["methods"] == ["panda"]


# --------------------------------------------------------------------------- the store's claims
def _queued(store: RunStore, rid: str, device: str = "cpu", backend: str = "local", deps=()) -> None:
    store.add_run(rid, {"method": "scratch", "target": "t", "device": device, "backend": backend, "params": {}},
                  depends_on=list(deps))


def test_claim_local_offers_only_ready_runs_and_records_the_choice(atlas_home):
    store = RunStore()
    for rid in ("a", "b", "c"):
        _queued(store, rid)
    _queued(store, "d", deps=["a"])  # waits for a
    seen = {}

    def choose(ready, used):
        seen.update(ready=[r["run_id"] for r in ready], used=dict(used))
        return [{"run_ids": ["a", "b"], "device": "cpu"}, {"run_ids": ["c"], "device": "cpu"}]

    claims = store.claim_local("h1", choose)
    assert seen == {"ready": ["a", "b", "c"], "used": {}}
    assert claims[0]["pack_id"] and claims[1]["pack_id"] is None
    a, c = store.get_run("a"), store.get_run("c")
    assert (a["status"], a["host"], a["pack_id"], c["status"], c["pack_id"]) == \
        ("running", "h1", claims[0]["pack_id"], "running", None)
    assert store.events("a")[-1]["metrics"] == {"status": "running", "device": "cpu",
                                                "pack_id": claims[0]["pack_id"], "pack_size": 2}
    # d waits for a: nothing is ready, so nothing is asked and no write lock is taken
    seen.clear()
    assert store.claim_local("h1", choose) == [] and seen == {}
    store.set_status("a", "finished")
    assert store.deps_finished(["a"]) and not store.deps_finished(["a", "b"])
    # now d is ready; running on h1: b (its pack counts once) and c = 2 processes; on another host: none
    assert store.claim_local("h1", lambda ready, used: seen.update(ready=[r["run_id"] for r in ready],
                                                                   used=dict(used)) or []) == []
    assert seen == {"ready": ["d"], "used": {"cpu": 2}}
    store.claim_local("h2", lambda ready, used: seen.update(used=dict(used)) or [])
    assert seen["used"] == {}


def test_claim_job_claims_queued_runs_once(atlas_home):
    store = RunStore()
    for rid in ("x", "y"):
        _queued(store, rid, backend="ray")
    store.request_cancel("y")  # a queued run is cancelled at once: not claimable
    assert store.claim_job(["x", "y"], "p1", "p1") == ["x"]
    assert store.claim_job(["x"], "p1", "p1") == []  # a second pump does not submit it again
    x = store.get_run("x")
    assert (x["status"], x["job_id"], x["pack_id"]) == ("running", "p1", "p1")
    assert store.events("x")[-1]["metrics"]["backend"] == "ray"


def test_swap_meta_reads_and_writes_in_one_transaction(atlas_home):
    store = RunStore()
    assert store.swap_meta("dispatcher", lambda cur: cur or "first") == "first"
    assert store.swap_meta("dispatcher", lambda cur: cur or "second") == "first"  # kept
    assert store.swap_meta("dispatcher", lambda cur: None) is None and store.get_meta("dispatcher") is None


def test_add_runs_is_all_or_nothing(atlas_home):
    store = RunStore()
    rows = [dict(run_id="s-000", spec={"method": "scratch", "target": "t"}, sweep_id="s"),
            dict(run_id="s-000", spec={"method": "scratch", "target": "t"}, sweep_id="s")]  # duplicate id
    with pytest.raises(Exception):
        store.add_runs(rows, sweep=dict(sweep_id="s", spec={}))
    assert store.list_runs() == [] and store.get_sweep("s") is None


# --------------------------------------------------------------------------- resume
def test_plan_resume_keeps_what_finished_and_redoes_dependents():
    sw = SweepSpec(sources=["src"], targets=["t"], methods=["panda"], seeds=[0])
    planned = plan(sw)  # scratch, pot, panda (depends on pot)
    now = time.time()
    runs = [dict(run_id="s-000", sweep_key="scratch|t|0", status="finished", created=now),
            dict(run_id="s-001", sweep_key="pot|src|t|0", status="failed", created=now),
            dict(run_id="s-002", sweep_key="panda|src|t|0", status="queued", created=now)]
    r = sweeps.plan_resume("s", planned, runs)
    assert r.ids["scratch|t|0"] == "s-000" and r.todo == {"pot|src|t|0", "panda|src|t|0"}
    assert r.ids["pot|src|t|0"] == "s-001-2" and r.ids["panda|src|t|0"] == "s-002-2"
    assert r.replaced == ["s-002"]  # queued behind a teacher that is redone: cancelled, then relaunched
    runs[1]["status"] = "finished"
    assert plan_resume("s", planned, runs).todo == set()


@needs_task
def test_runs_page_launches_panda_with_a_pot_teacher_as_the_sweep(atlas_home, monkeypatch):
    """The page's form calls the same core rule (AppTest, nothing dispatched)."""
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    monkeypatch.setattr(queue, "pump", lambda store=None, dispatch=True: {})
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "pages" / "runs.py"), default_timeout=120)
    for k, v in dict(target=TARGET, source="sent_movie", method="panda").items():
        at.query_params[k] = v
    at.run()
    assert at.selectbox(key="runs_teacher_mode").value == "pot"
    at.selectbox(key="runs_device").set_value("cpu")
    at.button(key="runs_launch").click().run()
    assert not at.exception, [e.value for e in at.exception]
    (sweep,) = RunStore().list_sweeps()
    assert sweep["n_runs"] == 3 and sweep["spec"]["methods"] == ["panda"] and sweep["spec"]["targets"] == [TARGET]
    assert at.session_state["runs_sweep_selected"] == sweep["sweep_id"]
