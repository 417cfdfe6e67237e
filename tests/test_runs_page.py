"""pages/runs.py under AppTest: empty state, pre-fill from query params, inline validation,
a real tiny run launched from the form, the live view, cancel / retry / delete, and the
start-up reconcile of a run whose process died.

    .venv/bin/python -m pytest -q tests/test_runs_page.py
"""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from apptest import no_exception, open_page

from core.runs import local, queue
from core.runs.store import RunStore, hostname

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "runs.py")
from test_heads import roberta, tok_dir  # noqa: F401,E402 -- fixtures (tiny models built at test time)

TARGET = "spam_sms"


@pytest.fixture(autouse=True)
def env(tmp_path, monkeypatch, atlas_home):
    """No demo library; one extra library folder holding two prompts: src_a (MiniLM, d=384) and wide (d=768)."""
    monkeypatch.setenv("ATLAS_DEMO", str(tmp_path / "no-demo"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    from core.prompts import SoftPrompt, write_prompt

    lib = tmp_path / "lib"
    for name, d, bb in (("src_a", 384, "sentence-transformers/all-MiniLM-L6-v2"), ("wide", 768, "roberta-base")):
        write_prompt(SoftPrompt(tensor=torch.randn(20, d) * 0.05, name=name, task="sent_movie", backbone=bb,
                                method="scratch"), lib / name)
    monkeypatch.setenv("ATLAS_LIBRARY", str(lib))
    yield
    s = RunStore()
    local.stop_dispatcher(s)
    for run in s.list_runs(status=["running"]):
        if run["pid"] and run["pid"] != os.getpid() and local.pid_alive(run["pid"], run["pid_start"]):
            os.killpg(run["pid"], signal.SIGKILL)


def page(**query) -> AppTest:
    return open_page(PAGE, **query)


clean = no_exception


def fake_run(store: RunStore, run_id: str, status: str, *, pid: int | None = None, steps: int = 4) -> None:
    """A run row with events, as a worker would have left it (no training: fast). Its spec is a
    valid tiny scratch run, so a retry of it is accepted."""
    store.add_run(run_id, {"method": "scratch", "target": TARGET, "sources": [], "seed": 0, "device": "cpu",
                           "params": {"steps": steps, "train_size": 16, "max_length": 16}, "backend": "local"})
    store.update_run(run_id, status="running", started=time.time() - 60, pid=pid, host=hostname(),
                     device="cpu")
    for s in range(1, steps + 1):
        store.add_event(run_id, "progress", s, {"loss": 1 / s, "ce": 1 / s, "kd": 0.1 / s, "examples_per_s": 50.0,
                                                "eta_s": steps - s, "rss_mb": 600.0})
        if s % 2 == 0:
            store.add_event(run_id, "eval", s, {"val_acc": 0.5 + s / 20, "best_val_acc": 0.5 + s / 20})
    if status != "running":
        store.set_status(run_id, status, test_score=0.8 if status == "finished" else None,
                         error="boom" if status == "failed" else None)


def test_empty_store_shows_form_and_info():
    at = clean(page())
    assert at.title[0].value.endswith("Runs")
    assert any("No runs yet" in i.value for i in at.info)
    assert at.button(key="runs_launch") is not None and at.selectbox(key="runs_target").value
    assert any(o.startswith("src_a") for o in at.multiselect(key="runs_sources").options)


def test_query_params_prefill_the_form():
    at = clean(page(target=TARGET, source="src_a", method="panda"))
    assert at.selectbox(key="runs_target").value == TARGET
    assert at.selectbox(key="runs_method").value == "panda"
    assert at.multiselect(key="runs_sources").value == ["src_a"]
    assert at.selectbox(key="runs_teacher_mode").value == "pot"  # panda options shown
    at = clean(page(target=TARGET, source="not_in_library", method="pot"))
    assert any("not_in_library" in w.value for w in at.warning)


def test_bad_spec_is_shown_inline_and_nothing_launches():
    at = clean(page(target=TARGET, source="wide", method="pot"))
    at.button(key="runs_launch").click().run()
    clean(at)
    errors = " ".join(e.value for e in at.error)
    # the run uses the sources' backbone (roberta-base): not here, so refused naming that model
    assert "need the model 'roberta-base'" in errors and "Nothing was launched" in errors
    assert RunStore().list_runs() == []
    # pot with no source: refused by the spec itself
    at.multiselect(key="runs_sources").set_value([]).run()
    at.button(key="runs_launch").click().run()
    assert "needs at least one source" in " ".join(e.value for e in clean(at).error)
    # a bad extra hyper-parameter: TrainConfig's own message, inline
    at.selectbox(key="runs_method").set_value("scratch").run()
    at.text_input(key="runs_extra").set_value('{"head": "mlp"}').run()
    at.button(key="runs_launch").click().run()
    assert "head 'mlp'" in " ".join(e.value for e in clean(at).error)
    assert RunStore().list_runs() == []


def test_launch_a_real_run_and_watch_it_finish():
    at = clean(page(target=TARGET, source="src_a", method="pot"))
    at.number_input(key="runs_steps").set_value(6)
    at.number_input(key="runs_train_size").set_value(32)
    at.number_input(key="runs_eval_every").set_value(3)
    at.selectbox(key="runs_device").set_value("cpu")
    at.text_input(key="runs_extra").set_value('{"max_length": 32, "val_size": 32, "batch_size": 8}')
    at.button(key="runs_launch").click().run()
    clean(at)
    store = RunStore()
    runs = store.list_runs()
    assert len(runs) == 1 and runs[0]["method"] == "pot" and runs[0]["source"] == "src_a"
    assert runs[0]["spec"]["params"] == {"steps": 6, "lr": 0.03, "eval_every": 3, "train_size": 32,
                                         "max_length": 32, "val_size": 32, "batch_size": 8}
    rid = runs[0]["run_id"]
    assert at.selectbox(key="runs_selected").value == rid
    t0 = time.monotonic()
    while store.get_run(rid)["status"] in ("queued", "running") and time.monotonic() - t0 < 180:
        time.sleep(1)
    at = clean(page())  # a fresh session rebuilds everything from the store
    run = store.get_run(rid)
    assert run["status"] == "finished", run["error"]
    assert any("Prompt saved in your library" in s.value and "measured" in s.value for s in at.success)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["test acc"] == f"{run['test_score']:.3f}" and metrics["device"] == "cpu"
    assert len(at.get("plotly_chart")) >= 2  # loss + eval curves


def test_live_view_cancel_retry_delete_and_reconcile():
    store = RunStore()
    fake_run(store, "r-done", "finished")
    fake_run(store, "r-failed", "failed")
    fake_run(store, "r-dead", "running", pid=2**22 + 12345)  # no such process: reconciled on page load
    at = clean(page())
    assert store.get_run("r-dead")["status"] == "failed"
    assert "exited without a final event" in store.get_run("r-dead")["error"]
    table = at.dataframe[0].value  # the runs table (no sweeps here)
    assert set(table["run"]) == {"r-done", "r-failed", "r-dead"}
    assert table.set_index("run").loc["r-done", "progress"] == 1.0

    at.selectbox(key="runs_selected").set_value("r-done").run()
    clean(at)
    assert {m.label: m.value for m in at.metric}["examples/s"] == "50.0"
    assert len(at.get("plotly_chart")) >= 2
    # fake_run writes eval events under the old names (val_acc, best_val_acc): they still read
    assert {m.label: m.value for m in at.metric}["best val acc"] == "0.700"
    curve = json.loads(at.get("plotly_chart")[1].proto.spec)["data"]
    assert [t["name"] for t in curve] == ["val accuracy"]  # the validation curve is drawn
    # compare two runs on one chart
    at.multiselect(key="runs_compare").set_value(["r-done", "r-failed"]).run()
    charts = clean(at).get("plotly_chart")
    assert len(charts) == 3
    assert len(json.loads(charts[-1].proto.spec)["data"]) == 2  # one line per compared run

    # retry: a new queued run from the same spec, selected
    at.button(key="runs_retry").click().run()
    clean(at)
    new = at.selectbox(key="runs_selected").value
    assert new != "r-done" and store.get_run(new)["retry_of"] == "r-done"
    queue.cancel(new, store)  # queued or running: stop it (nothing to train for a fake spec)

    # delete asks first: the button is disabled until the box is ticked
    at.selectbox(key="runs_selected").set_value("r-failed").run()
    assert clean(at).button(key="runs_delete").disabled
    at.checkbox(key="runs_delete_confirm_r-failed").check().run()
    at.button(key="runs_delete").click().run()
    clean(at)
    assert store.get_run("r-failed") is None and store.get_run("r-done") is not None


def test_cancel_a_queued_run_from_the_page():
    store = RunStore()
    # a 'running' run holding the CPU slot (its pid: this live test process), and one queued behind it
    fake_run(store, "r-busy", "running", pid=os.getpid())
    store.update_run("r-busy", pid_start=local.proc_start_time(os.getpid()))
    store.add_run("r-q", {"method": "scratch", "target": TARGET, "sources": [], "seed": 0, "device": "cpu",
                          "params": {"steps": 5}, "backend": "local"})
    at = clean(page())
    assert store.get_run("r-q")["status"] == "queued"  # the cap of 1 CPU run holds it back
    at.selectbox(key="runs_selected").set_value("r-q").run()
    at.button(key="runs_cancel").click().run()
    clean(at)
    assert store.get_run("r-q")["status"] == "cancelled" and store.get_run("r-q")["pid"] is None
    store.set_status("r-busy", "finished")


def test_run_selector_names_the_run_and_the_heading_carries_its_status():
    """Issue 15 defect 4: the selector never shows a status that the heading contradicts."""
    store = RunStore()
    fake_run(store, "r-done", "finished")
    fake_run(store, "r-failed", "failed")
    at = clean(page())
    box = at.selectbox(key="runs_selected")
    assert sorted(box.options) == [f"r-done · scratch · {TARGET} · seed 0", f"r-failed · scratch · {TARGET} · seed 0"]
    assert not any(icon in o for o in box.options for icon in ("⏳", "🏃", "✅", "❌", "🛑"))
    box.set_value("r-done").run()
    assert any(h.value == "✅ r-done" for h in clean(at).subheader)
    at.selectbox(key="runs_selected").set_value("r-failed").run()
    assert any(h.value == "❌ r-failed" for h in clean(at).subheader)


def test_a_link_with_a_target_the_form_cannot_take_warns_and_selects_nothing():
    """Issue 15 defect 2: `generic` (a prompt's task, not a dataset) used to open the form on sent_movie."""
    at = clean(page(target="generic", source="src_a", method="panda"))
    assert at.selectbox(key="runs_target").value is None
    assert any(w.value.startswith("The link's target cannot be trained here: `generic` is not a registered task")
               for w in at.warning)
    at.selectbox(key="runs_target").set_value(TARGET).run()
    assert clean(at).selectbox(key="runs_target").value == TARGET
    assert not any("cannot be trained" in w.value for w in at.warning)


def test_sweep_measured_heatmap_reads_gains_in_percent():
    """A sweep's measured matrix on the Runs page labels its cells in core.fmt's words: +10.0% for a
    10% gain over scratch, 0.0% (never -0.0%) for a gain that rounds to nothing."""
    import json

    store = RunStore()
    store.add_sweep("sw-pct", {"targets": [TARGET], "methods": ["pot"]})
    params = {"steps": 4, "train_size": 16, "max_length": 16}
    for run_id, method, sources, score in (("s0", "scratch", [], 0.5), ("p-a", "pot", ["src_a"], 0.55),
                                           ("p-w", "pot", ["wide"], 0.4998)):
        store.add_run(run_id, {"method": method, "target": TARGET, "sources": sources, "source_names": sources,
                               "seed": 0, "device": "cpu", "params": params, "backend": "local"}, sweep_id="sw-pct")
        store.set_status(run_id, "finished", test_score=score)
    at = page().run()
    clean(at)
    chart = next(c for c in at.get("plotly_chart") if "runs_sweep_measured" in c.proto.id)
    spec = json.loads(chart.proto.spec)
    heat = spec["data"][0]
    # issue 23 item 9: Transferability's figure (pages._transfer_figs): cell labels in whole percent, the
    # hover gives the gain to 0.1% with its absolute numbers
    ys, xs = spec["layout"]["yaxis"]["ticktext"], spec["layout"]["xaxis"]["ticktext"]
    cells = {(y, x): t for y, row in zip(ys, heat["text"]) for x, t in zip(xs, row)}
    assert cells[("src_a", TARGET)] == "+10%"
    assert cells[("wide", TARGET)] == "0%"          # -0.04 %: no "-0%"
    assert heat["colorbar"]["tickformat"] == ".0%"
    assert heat["zmid"] == 0 and heat["zmin"] == -heat["zmax"]


def test_the_detail_opens_on_the_last_finished_run_not_the_newest_row_and_accuracy_axes_are_0_to_1():
    """Issue 28: the detail opened on the newest row (a failed or waiting run); with nothing running it opens
    on the most recent finished run (core.runs.display.detail_run); the validation axis is [0, 1]; no tile
    row holds more than three metrics (six in one row cut "3.6 min" at 1280 px); no "None" cell."""
    store = RunStore()
    fake_run(store, "r-1-done", "finished")
    time.sleep(0.01)
    fake_run(store, "r-2-failed", "failed")
    at = clean(page())
    assert at.selectbox(key="runs_selected").value == "r-1-done"
    assert any(h.value == "✅ r-1-done" for h in at.subheader)
    spec = json.loads(at.get("plotly_chart")[1].proto.spec)
    assert spec["layout"]["yaxis"]["range"] == [0, 1]
    table = at.dataframe[0].value
    assert table.set_index("run").loc["r-2-failed", "test"] == "–"  # not None
    assert "None" not in table.astype(str).to_numpy().ravel().tolist()


def test_a_sweep_cell_of_flagged_runs_is_greyed_not_a_coloured_loss():
    """Issue 23: the user's sweep whose validation saturated at step 0: scratch scored 1.000 on every seed
    (noise band unknown, target at the ceiling) and the PoT run kept its initial prompt (best_step 0):
    the cell is drawn grey and marked ⚠, not a dark-red "-7.5%"."""
    import json

    from core import evidence as E
    store = RunStore()
    store.add_sweep("sw-sat", {"targets": [TARGET], "methods": ["pot"]})
    params = {"steps": 4, "train_size": 16, "max_length": 16}
    runs = [(f"s{k}", "scratch", [], k, 1.0, "clean") for k in range(3)] + [
        ("p-a", "pot", ["src_a"], 0, 0.925, E.flags_text([E.FLAG_KEPT_INIT, E.FLAG_VAL_SATURATED]))]
    for run_id, method, sources, seed, score, flags in runs:
        store.add_run(run_id, {"method": method, "target": TARGET, "sources": sources, "source_names": sources,
                               "seed": seed, "device": "cpu", "params": params, "backend": "local"}, sweep_id="sw-sat")
        store.set_status(run_id, "finished", test_score=score, event={"test_score": score, "flags": flags})
    at = page().run()
    clean(at)
    chart = next(c for c in at.get("plotly_chart") if "runs_sweep_measured" in c.proto.id)
    spec = json.loads(chart.proto.spec)
    grey = [t for t in spec["data"] if t.get("name") == E.FLAGGED]
    x = grey[0]["x"] if grey else []
    if isinstance(x, dict):  # plotly >= 6 typed array
        import base64

        import numpy as np
        x = np.frombuffer(base64.b64decode(x["bdata"]), dtype=np.dtype(x["dtype"]))
    assert len(x) == 1                                            # the one cell, drawn grey
    import base64

    import numpy as np
    z = spec["data"][0]["z"]
    z = (np.frombuffer(base64.b64decode(z["bdata"]), dtype=np.dtype(z["dtype"])) if isinstance(z, dict)  # plotly 6
         else np.array(z, dtype=float))
    assert np.isnan(z).all(), z                                   # and not coloured by its -7.5%
    marks = next(t for t in spec["data"] if t.get("name") == "evidence marks")
    assert marks["text"] == [E.MARK_SYMBOL[E.FLAGGED]]
    hover = spec["data"][0]["customdata"][0][0]
    assert "[flagged runs]" in hover and "-7.5%" in hover and "scratch 1.000" in hover  # the hover says what it was
    # the detail of the flagged run names its flags (core.evidence.flags_line); a run without events reads
    # "not recorded", never "clean"; the sweeps table has an ETA (all finished: "done")
    at.selectbox(key="runs_selected").set_value("p-a").run()
    assert any("Sanity flags: kept initial prompt (best_step 0); validation saturated at first eval" in w.value
               for w in clean(at).warning)
    at.selectbox(key="runs_selected").set_value("s0").run()
    assert any(c.value.startswith("Sanity flags: clean") for c in clean(at).caption)
    store.add_run("old", {"method": "scratch", "target": TARGET, "sources": [], "seed": 5, "device": "cpu",
                          "params": params, "backend": "local"})
    store.set_status("old", "finished", test_score=0.5)                 # no flags recorded with it
    at = page().run()
    at.selectbox(key="runs_selected").set_value("old").run()
    assert any(c.value.startswith("Sanity flags: not recorded") for c in clean(at).caption)
    sweeps = next(d.value for d in at.dataframe if "ETA" in d.value.columns)
    assert list(sweeps["ETA"]) == ["done"]


def test_validation_chart_names_the_runs_score_kind():
    """Issue 25: a task scored by balanced accuracy had its curve labelled "val accuracy"."""
    store = RunStore()
    fake_run(store, "r-bal", "finished")
    store.add_event("r-bal", "eval", 6, {"val_score": 0.8, "best_val_score": 0.8, "score_kind": "balanced_accuracy"})
    at = clean(page())
    at.selectbox(key="runs_selected").set_value("r-bal").run()
    spec = json.loads(clean(at).get("plotly_chart")[1].proto.spec)
    assert [t["name"] for t in spec["data"]] == ["val balanced accuracy"]
    assert spec["layout"]["title"]["text"] == "Validation balanced accuracy"


def test_the_head_select_puts_a_label_word_head_in_the_runs_params(roberta, tmp_path, monkeypatch):
    """The form's Head: the pooled cosine head by default (nothing added to params), a label-word preset
    goes into params.lm_head (core.training.lmhead) and is stored with the run's spec; on a backbone saved
    without an LM head (the bundled MiniLM, a scratch run's default) it is refused at launch, by field."""
    at = clean(page(target=TARGET, method="scratch"))
    assert at.selectbox(key="runs_lm_head").value == "pooled"
    assert any("thunlp-roberta" in o for o in at.selectbox(key="runs_lm_head").options)
    at.selectbox(key="runs_method").set_value("scratch")
    at.selectbox(key="runs_lm_head").set_value("thunlp-roberta")
    at.number_input(key="runs_steps").set_value(2)
    at.selectbox(key="runs_device").set_value("cpu")
    at.button(key="runs_launch").click().run()
    assert RunStore().list_runs() == []
    assert any(e.value.startswith("lm_head:") and "without an LM head" in e.value for e in clean(at).error)
    # a PoT run from a prompt trained on a masked LM: queued with its head
    from core.prompts import SoftPrompt, write_prompt
    folder = roberta[0]
    write_prompt(SoftPrompt(tensor=torch.randn(4, 32) * 0.05, name="mlm_src", task="sent_movie",
                            backbone=str(folder), method="scratch"), tmp_path / "lib" / "mlm_src")
    monkeypatch.chdir(folder.parent)   # the prompt names its model by its folder name
    monkeypatch.setenv("ATLAS_MODE", "full")   # away from the repo its .streamlit config (localhost) is not read
    at = clean(page(target=TARGET, method="pot", source="mlm_src"))
    at.selectbox(key="runs_lm_head").set_value("thunlp-roberta")
    at.number_input(key="runs_steps").set_value(2)
    at.selectbox(key="runs_device").set_value("cpu")
    at.button(key="runs_launch").click().run()
    clean(at)
    runs = RunStore().list_runs()
    assert len(runs) == 1 and runs[0]["spec"]["params"]["lm_head"] == "thunlp-roberta", [e.value for e in at.error]
    queue.cancel(runs[0]["run_id"], RunStore())
