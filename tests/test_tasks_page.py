"""pages/tasks.py under AppTest: tasks table, upload -> preview -> save, rank, launch the top-k sweep.

    .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_tasks_page.py
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.config import demo_dir
from core.runs import queue
from core.runs.store import RunStore
from test_heads import roberta, tok_dir  # noqa: F401 -- fixtures (tiny models built at test time)

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "tasks.py")


@pytest.fixture(autouse=True)
def env(tmp_path, monkeypatch, atlas_home):
    """A demo library of three source prompts (sentiment, topic, spam); nothing is dispatched."""
    demo = tmp_path / "demo"
    for n in ("sent_movie", "topic_usenet", "spam_sms"):
        shutil.copytree(demo_dir() / "prompts" / n, demo / "prompts" / n)
    monkeypatch.setenv("ATLAS_DEMO", str(demo))
    monkeypatch.setattr(queue, "pump", lambda store=None, dispatch=True: {})  # queue only


def _csv(n=100) -> bytes:
    pos = ["an uplifting, generous and joyful piece", "a wonderful, hopeful achievement"]
    neg = ["a bleak, cruel and dishonest failure", "an ugly, shameful disaster"]
    rows = [f"\"{(pos if i % 2 else neg)[i % 4 // 2]} number {i}\",{'pos' if i % 2 else 'neg'},{i}" for i in range(n)]
    return ("body,verdict,row\n" + "\n".join(rows) + "\n").encode()


def frame(at, column: str):
    """The first dataframe on the page with this column (dataframes are not found by key)."""
    for d in at.dataframe:
        if column in d.value.columns:
            return d.value
    raise AssertionError(f"no dataframe with column {column!r}")


def clean(at):
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_upload_save_rank_and_launch_top_k(tmp_path, monkeypatch):
    at = clean(AppTest.from_file(PAGE, default_timeout=180).run())
    table = frame(at, "mean words")
    assert "sent_movie" in set(table["task"]) and (table["kind"] == "demo").all()
    # upload: columns guessed, preview and class counts before saving
    at.file_uploader(key="tasks_upload").set_value(("my reviews.csv", _csv(), "text/csv")).run()
    clean(at)
    assert at.selectbox(key="tasks_text_col").value == "body"
    assert at.selectbox(key="tasks_label_col").value == "verdict"
    assert at.text_input(key="tasks_new_name").value == "my_reviews"
    assert RunStore().list_runs() == []
    at.text_input(key="tasks_new_name").set_value("reviews").run()
    at.button(key="tasks_save").click().run()
    clean(at)
    assert any("Saved task reviews" in s.value for s in at.success)
    table = frame(at, "mean words").set_index("task")
    assert table.loc["reviews", "kind"] == "user" and table.loc["reviews", "train"] == 70
    assert at.selectbox(key="tasks_selected").value == "reviews"
    assert frame(at, "mean words")["task"].iloc[0] == "reviews"  # your tasks first, above the demo's ten
    # the form is reset after a save: no file, no fields (a second Save was an easy duplicate)
    assert all(t.key != "tasks_new_name" for t in at.text_input) and all(b.key != "tasks_save" for b in at.button)
    # rank the three demo prompts for it, from its data alone
    at.button(key="tasks_rank").click().run()
    clean(at)
    ranked = frame(at, "ncc")
    assert len(ranked) == 3 and list(ranked["rank"]) == [1, 2, 3]
    assert ranked["zs"].is_monotonic_decreasing
    at.radio(key="tasks_rank_metric").set_value("ncc").run()
    assert frame(clean(at), "ncc")["ncc"].is_monotonic_decreasing
    # launch the top-2 sweep: scratch x 1 seed, pot and panda from each of the top 2
    at.number_input(key="tasks_top_k").set_value(2)
    at.number_input(key="tasks_steps").set_value(3)
    at.number_input(key="tasks_scratch_seeds").set_value(1).run()
    # issue 23: the run count and the order before launch (no finished run here yet: total unknown, said so)
    assert any(c.value.startswith("⏱ 5 runs (3 first, then 2 PANDA students once their teachers finish)")
               for c in at.caption), [c.value for c in at.caption]
    # issue 23: the saturation warning is core.evidence's rule on the ranking's zs scores (the CLI's too)
    from core import evidence as E
    top2 = list(frame(at, "ncc")["source"].head(2))
    ranked = frame(at, "ncc")
    zs_val = dict(zip(ranked["source"], ranked["accuracy"].astype(float)))
    said = [w.value for w in at.warning if "already saturated" in w.value]
    expected = E.saturation_warning(zs_val, top2, "reviews")
    assert said == ([expected] if expected else []), (said, zs_val)
    monkeypatch.setattr(E, "SATURATED", 0.0)   # every source saturates: the warning names the chosen two
    at.run()
    said = [w.value for w in clean(at).warning if "already saturated" in w.value]
    assert len(said) == 1 and all(f"{s} (zs" in said[0] for s in top2), said
    monkeypatch.setattr(E, "SATURATED", 0.99)
    at.run()
    at.button(key="tasks_launch").click().run()
    clean(at)
    runs = RunStore().list_runs()
    assert sorted(r["spec"]["method"] for r in runs) == ["panda", "panda", "pot", "pot", "scratch"]
    assert all(r["spec"]["target"] == "reviews" and r["spec"]["params"]["steps"] == 3 for r in runs)
    pandas_ = [r["spec"]["params"] for r in runs if r["spec"]["method"] == "panda"]
    assert sorted(p["metric_value"] for p in pandas_)[-1] == pytest.approx(1.0)  # the best source
    assert any("Queued sweep" in s.value for s in at.success)
    # issue 28: the message belongs to that launch; ranking again clears it
    at.button(key="tasks_rank").click().run()
    assert not any("Queued sweep" in s.value for s in clean(at).success)
    at.button(key="tasks_launch").click().run()
    assert any("Queued sweep" in s.value for s in clean(at).success)
    at.selectbox(key="tasks_selected").set_value("sent_movie").run()  # another target: not its launch
    assert not any("Queued sweep" in s.value for s in clean(at).success)


def test_bad_upload_is_one_clear_message():
    at = clean(AppTest.from_file(PAGE, default_timeout=60).run())
    at.file_uploader(key="tasks_upload").set_value(("notes.csv", b"only_one_column\nx\ny\n", "text/csv")).run()
    clean(at)
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and errors[0].startswith("notes.csv")


def _pair_csv(n=60) -> bytes:
    rows = []
    for i in range(n):
        yes = i % 2 == 0
        rows.append(f"{i},\"The museum opened a new wing for modern sculpture, visitor {i} said.\","
                    f"\"{'The museum has a new wing.' if yes else 'The museum closed down.'}\","
                    f"{'entailment' if yes else 'not_entailment'}")
    return ("index,sentence1,sentence2,label\n" + "\n".join(rows) + "\n").encode()


def test_pair_upload_guesses_the_second_text_previews_both_and_deletes(tmp_path):
    from core.tasks import get_task, list_tasks
    at = clean(AppTest.from_file(PAGE, default_timeout=180).run())
    at.file_uploader(key="tasks_upload").set_value(("rte_train.csv", _pair_csv(), "text/csv")).run()
    clean(at)
    assert at.selectbox(key="tasks_text_col").value == "sentence1"       # never the index column
    assert at.selectbox(key="tasks_text_col2").value == "sentence2"
    assert at.selectbox(key="tasks_label_col").value == "label"
    assert any("sentence pair: sentence1 + sentence2" in c.value for c in at.caption)
    at.text_input(key="tasks_new_name").set_value("rte").run()
    at.button(key="tasks_save").click().run()
    clean(at)
    t = get_task("rte")
    assert t.is_pair and t.train.texts2[0] in ("The museum has a new wing.", "The museum closed down.")
    ex = frame(at, "text2")                                              # the preview shows both texts
    assert list(ex["text2"]) == [x for x in t.train.texts2[:6]]
    assert frame(at, "mean words").set_index("task").loc["rte", "pair"] == "yes"
    at.button(key="tasks_delete").click().run()
    clean(at)
    assert "rte" not in list_tasks() and any("Deleted task rte" in s.value for s in at.success)


def test_upload_with_only_one_text_like_column_never_preselects_it_twice():
    at = clean(AppTest.from_file(PAGE, default_timeout=60).run())
    data = "v1,v2,,,\n" + "".join(f"{'ham' if i % 3 else 'spam'},message {i} from a friend about dinner,,,\n"
                                 for i in range(40))
    at.file_uploader(key="tasks_upload").set_value(("spam.csv", data.encode(), "text/csv")).run()
    clean(at)
    assert at.selectbox(key="tasks_text_col").value == "v2" and at.selectbox(key="tasks_label_col").value == "v1"
    assert not at.error


def test_ranking_reads_zs_through_the_chosen_head(tmp_path, monkeypatch, roberta):
    """The Tasks page's head control: zs through ``thunlp-roberta`` equals core.ranking's with that head (the
    CLI's ``rank --lm-head``), the cosine head gives its own numbers, and the caption names the head."""
    from test_lmhead_training import _sources
    from core import ranking as R
    from core.prompts import write_prompt
    from core.tasks import Split, Task
    from core.tasks.registry import save_task
    folder, _model, _tok = roberta
    texts = [f"{'good' if i % 4 == 0 else 'bad'} film number {i}" for i in range(12)]
    sp = Split(texts, [int(i % 4 == 0) for i in range(12)])
    save_task(Task("zt_target", None, ["negative", "positive"], ["a negative review", "a positive review"],
                   sp, sp, sp, source="test"))
    lib = tmp_path / "lib"
    for s in _sources(folder, tmp_path):
        write_prompt(s, lib / s.name)
    monkeypatch.setenv("ATLAS_LIBRARY", str(lib))
    monkeypatch.setenv("ATLAS_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(folder.parent)   # the prompts name their model by its folder name
    monkeypatch.setenv("ATLAS_MODE", "full")   # away from the repo its .streamlit config (localhost) is not read
    # after the first ranking the launch box starts a timing calibration (a background job holding a compute
    # slot); with the default single slot a slow machine refuses the second ranking as busy until it ends
    monkeypatch.setenv("ATLAS_MAX_COMPUTE", "2")
    at = AppTest.from_file(PAGE, default_timeout=180)
    at.query_params["task"] = "zt_target"
    clean(at.run())
    at.selectbox(key="tasks_rank_group").set_value("roberta-tiny").run()
    assert clean(at).selectbox(key="tasks_rank_head").value == "cosine"   # these were not trained through an LM head
    at.selectbox(key="tasks_rank_head").set_value("thunlp-roberta").run()
    at.button(key="tasks_rank").click().run()
    shown = frame(clean(at), "ncc").set_index("source")
    want = R.rank_sources("zt_target", libraries=[lib], group="roberta-tiny",
                          settings=R.RankSettings(lm_head="thunlp-roberta")).table.set_index("source")
    assert len(shown) == 3
    for s in want.index:
        assert shown.at[s, "zs"] == pytest.approx(want.at[s, "zs"]) and shown.at[s, "ncc"] == pytest.approx(want.at[s, "ncc"])
    assert any("zs through thunlp-roberta (label words)" in c.value for c in at.caption)
    assert any("trains through the **thunlp-roberta** head" in c.value for c in at.caption)  # the sweep too
    at.selectbox(key="tasks_rank_head").set_value("cosine").run()
    assert not [d for d in clean(at).dataframe if "ncc" in d.value.columns]   # another head: not that ranking
    at.button(key="tasks_rank").click().run()
    pooled = R.rank_sources("zt_target", libraries=[lib], group="roberta-tiny").table.set_index("source")
    shown = frame(clean(at), "ncc").set_index("source")
    assert all(shown.at[s, "zs"] == pytest.approx(pooled.at[s, "zs"]) for s in pooled.index)
    assert any("zs through cosine" in c.value for c in at.caption)
