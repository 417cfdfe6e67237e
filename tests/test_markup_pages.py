"""No link, image, HTML, shortcode or maths from a URL, a file name or a stored field (AppTest, every
page): hostile values in every echoed query parameter and in stored prompt/task/family names; the
rendered texts (errors, captions, chips, headings, widget labels) hold no live markup
(tests/markup_check.py renders them the way Streamlit does) and no plotly figure holds an ``<a href`` or
``<img``. Each page test also checks that the payload was echoed at all, so it can fail.

    .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_markup_pages.py
"""
from __future__ import annotations

import json

import pytest
import torch
from streamlit.testing.v1 import AppTest

from apptest import no_exception, open_page
from core.config import REPO_ROOT
from core.prompts import DEFAULT_BACKBONE as MINILM
from core.prompts import SoftPrompt, write_prompt
from markup_check import PAYLOADS, live_markup, page_texts

PAGES = REPO_ROOT / "pages"
P = PAYLOADS


def hostile_library(folder):
    """Prompts whose stored task, family and name are payloads (a name is a folder: no '/')."""
    stored = [("[click me](javascript:alert(1))", P["link"], P["image"]), ("www.evil.example", P["html"], P["color"]),
              ("math $x$ `tick", P["bare"], P["math"])]
    g = torch.Generator().manual_seed(0)
    for name, task, family in stored:
        write_prompt(SoftPrompt(torch.randn(4, 384, generator=g), name=name, task=task, family=family,
                                backbone=MINILM, method="scratch"), folder / name)


@pytest.fixture(autouse=True)
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("ATLAS_DEMO", str(tmp_path / "no-demo"))
    hostile_library(tmp_path / "lib")
    monkeypatch.setenv("ATLAS_LIBRARY", str(tmp_path / "lib"))


def charts(at) -> list[str]:
    out = []
    for el in at.get("plotly_chart"):
        spec = getattr(el.proto, "spec", "") or ""
        out.append(spec)
    return out


def assert_inert(at, must_echo: list[str]):
    no_exception(at)
    shown = page_texts(at)
    live = {t: live_markup(t) for t in shown if live_markup(t)}
    assert not live, live
    for spec in charts(at):
        for bad in ("<a href", "<a  href", "<img", "<A HREF"):
            assert bad not in spec, spec[spec.find(bad) - 80: spec.find(bad) + 80]
    blob = "\n".join(shown)
    for needle in must_echo:  # the payload reached the page: the checks above were not vacuous
        assert needle in blob, (needle, blob[:2000])


def test_transferability_echoes_link_values_as_text():
    at = open_page(PAGES / "transferability.py", metric=P["link"], order=P["image"], view=P["html"],
                   group=P["bare"], target=f"{P['www']},{P['backtick']}", lib=P["math"])
    assert_inert(at, ["click me", "127.0.0.1", "evil.example"])
    # the hostile stored names reach the heatmap's ticks and hover as text, never as a link
    assert "click me" in "\n".join(charts(at))
    at = open_page(PAGES / "transferability.py", col=P["color"], lib=P["link"])
    assert_inert(at, ["click me", "red"])


def test_projection_echoes_link_values_and_legend_as_text():
    at = open_page(PAGES / "projection.py", highlight=P["link"], group=P["image"], lib=P["www"])
    assert_inert(at, ["click me"])
    specs = "\n".join(charts(at))
    assert "&lt;a href" in specs  # the task <a href=...> is in the legend, escaped


def test_library_shows_stored_names_as_text():
    at = open_page(PAGES / "library.py", lib=P["link"], col=P["image"])
    assert_inert(at, ["click me", "127.0.0.1"])
    at = open_page(PAGES / "library.py")
    names = sorted(at.selectbox(key="library_detail").options)
    for name in names:  # every prompt's detail line: name, task, family, backbone
        at.selectbox(key="library_detail").set_value(name).run()
        assert_inert(at, [])
    assert any("evil" in t for t in page_texts(at))


def test_runs_page_echoes_link_values_as_text():
    at = open_page(PAGES / "runs.py", target=P["link"], source=P["image"], method=P["html"],
                   steps="40", params=json.dumps({"batch_size": P["bare"]}))
    assert_inert(at, ["click me", "127.0.0.1"])


def test_tasks_page_echoes_link_values_as_text():
    at = AppTest.from_file(str(PAGES / "tasks.py"), default_timeout=180)
    at.query_params["col"] = P["link"]
    at.query_params["lib"] = P["image"]
    at.run()
    assert_inert(at, ["click me", "127.0.0.1"])


def test_projection_csv_download_neutralises_formulas(tmp_path, monkeypatch):
    """The Coordinates CSV a visitor downloads: a stored task '=HYPERLINK(…)' starts with ' (OWASP), numbers stay."""
    import io

    import pandas as pd
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    formula = '=HYPERLINK("https://evil.example","x")'
    write_prompt(SoftPrompt(torch.randn(4, 384), name="formula", task=formula, family="@SUM(A1)",
                            backbone=MINILM), tmp_path / "lib" / "formula")
    saved: list[tuple[bytes, str]] = []
    real = MemoryMediaFileStorage.load_and_get_id

    def keep(self, path_or_data, mimetype, kind, filename=None):
        if mimetype == "text/csv":
            saved.append((path_or_data, filename))
        return real(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", keep)
    no_exception(open_page(PAGES / "projection.py", method="pca"))  # a centred map: negative x values
    [(data, name)] = saved
    df = pd.read_csv(io.BytesIO(data), keep_default_na=False)
    row = df[df["name"] == "formula"].iloc[0]
    assert row["task"] == "'" + formula and row["family"] == "'@SUM(A1)"
    assert pd.api.types.is_float_dtype(df["x"]) and (df["x"] < 0).any()  # negative numbers untouched (centred map)
    assert not any(str(v).startswith(("=", "+", "@")) for v in df.select_dtypes("object").to_numpy().ravel())


def hostile_demo(folder):
    """The committed demo with one not-measurable target task (it is named in Home's honest summary) and
    the manifest's label replaced by payloads."""
    import shutil

    demo = REPO_ROOT / "data" / "demo"
    if not (demo / "results.csv").is_file():
        pytest.skip("data/demo/results.csv not built yet (make demo)")
    shutil.copytree(demo, folder)
    bad_task = f"{P['link']} {P['image']} {P['backtick']} {P['color']} {P['math']}"
    text = (folder / "results.csv").read_text(encoding="utf-8")
    assert "party_parliament" in text
    (folder / "results.csv").write_text(text.replace("party_parliament", bad_task), encoding="utf-8")
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    manifest["label"] = f"{P['www']} {P['html']} {P['bare']}"
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return bad_task


def test_home_summary_shows_stored_task_names_and_label_as_text(tmp_path, monkeypatch):
    """core.headline.summary_lines echoes stored task names (not-measurable targets) and the manifest's label:
    a hostile name renders no link, image, code-span break, colour or maths on Home."""
    from core.headline import headline, summary_lines

    bad_task = hostile_demo(tmp_path / "demo")
    lines = summary_lines(headline(tmp_path / "demo"), f"{P['link']}")
    assert any("click me" in line and "127.0.0.1" in line for line in lines)  # the name is there, as text
    assert {line: live_markup(line) for line in lines if live_markup(line)} == {}
    monkeypatch.setenv("ATLAS_DEMO", str(tmp_path / "demo"))
    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=120).run()
    assert_inert(at, ["click me", "127.0.0.1", "evil.example"])
    rendered = "\n".join(m.value for m in at.markdown)
    assert "Not measurable" in rendered and "click me" in rendered


def test_runs_page_shows_a_stored_run_id_target_and_source_as_text():
    """A run recorded with hostile names (run id, target, source; a sweep id reaches the measured heatmap's
    title as plotly text) is shown on the Runs page as text."""
    import time

    from core.runs.store import RunStore, hostname

    store = RunStore()
    rid = f"r {P['link']}"
    store.add_run(rid, {"method": "pot", "target": P["image"], "sources": [P["html"]], "source_names": [P["www"]],
                        "seed": 0, "device": "cpu", "params": {"steps": 4, "train_size": 16, "max_length": 16},
                        "backend": "local"}, sweep_id=f"sw {P['color']}")
    store.update_run(rid, status="running", started=time.time() - 60, host=hostname(), device="cpu")
    store.set_status(rid, "finished", test_score=0.8)
    at = open_page(PAGES / "runs.py")
    assert_inert(at, ["click me", "127.0.0.1"])
    assert any("click me" in s.value for s in at.subheader)   # the run's view, headed by its id


def test_job_panel_shows_a_stored_job_title_and_error_as_text():
    """The compute ledger's job rows carry stored text (a ranking job's title names the target task, an
    error quotes what failed): pages/_budget.py shows them as text, queued or failed."""
    from core.runs.store import RunStore

    store = RunStore()
    store.submit_job("j-1", "rank:x", "rank", {}, title=f"ranking sources for {P['link']}", owner="full",
                     background=True, total=10)
    store.submit_job("j-2", "rank:y", "rank", {}, title="ranking", owner="full", background=True, total=10)
    store.finish_job("j-2", "failed", error=f"TaskError: {P['image']} {P['color']} {P['math']}")

    def panel(key):
        from pages import _budget as BU
        BU.job_panel(key)

    for key, needle in (("rank:x", "click me"), ("rank:y", "127.0.0.1")):
        at = AppTest.from_function(panel, args=(key,), default_timeout=60)
        at.run()
        no_exception(at)
        texts = page_texts(at) + [str(getattr(p.proto, "text", "")) for p in at.get("progress")]
        assert any(needle in t for t in texts), texts
        assert {t: live_markup(t) for t in texts if live_markup(t)} == {}


def test_lone_hint_shows_a_stored_backbone_group_and_name_as_text():
    """core.userlib.lone_hint is Markdown with the prompt's stored backbone, group and name in code spans:
    a backtick in them cannot close the span early."""
    from core.userlib import lone_hint

    g = torch.Generator().manual_seed(0)
    hostile = SoftPrompt(torch.randn(4, 384, generator=g), name=f"n{P['backtick']}{P['link']}", task="t",
                         backbone=f"bb{P['backtick']} {P['link']}", method="scratch")
    hint = lone_hint(hostile, f"g{P['backtick']}{P['image']}")
    assert "click me" in hint and live_markup(hint) == []
    hostile.backbone = None
    hint = lone_hint(hostile, f"g{P['backtick']}{P['image']}")
    assert "127.0.0.1" in hint and live_markup(hint) == []


def test_tasks_page_shows_a_stored_task_s_labels_as_text():
    """A user task's stored labels reach the Tasks page's summary lines (core.tasks.target's check names the
    classes validation lacks): shown as text, and its name on the Delete button too."""
    from core import tasks as T
    from core.tasks.registry import save_task

    labels = ["no", P["link"], P["image"], P["color"]]
    sp = T.Split(texts=[f"example number {i}" for i in range(8)], labels=[0, 0, 0, 0, 0, 0, 1, 1])
    va = T.Split(texts=[f"held out {i}" for i in range(8)], labels=[0, 1, 0, 1, 0, 1, 0, 1])
    save_task(T.Task(name="hostile_labels", family=None, labels=labels, descriptions=["a", "b", "c", "d"],
                     train=sp, validation=va, test=va, source="test"))
    at = AppTest.from_file(str(PAGES / "tasks.py"), default_timeout=180)
    at.query_params["task"] = "hostile_labels"
    at.run()
    assert_inert(at, ["127.0.0.1"])   # "no example of 2 class(es): ![b](…), :red[x]"
    assert any("no example of" in c.value for c in at.caption)
