"""Tasks from uploaded files (core/task_upload.py) and the Tasks page (pages/tasks.py).

    .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_task_upload.py
"""
from __future__ import annotations

import io
import json
import zipfile

import pandas as pd
import pytest

from core.task_upload import build_task, overview, read_upload, summary
from core.tasks import TaskError, get_task, save_task


def _csv(n=40, extra=True) -> bytes:
    lines = ["id,review,stars" + (",note" if extra else "")]
    for i in range(n):
        text = ("a wonderful, moving film that I loved" if i % 2 else "a dull, tedious mess of a film") + f" #{i}"
        lines.append(f"{i},\"{text}\",{'good' if i % 2 else 'bad'}" + (",x" if extra else ""))
    return ("\n".join(lines) + "\n").encode()


def test_csv_upload_guesses_columns_and_builds_the_same_task_as_the_cli(tmp_path):
    up = read_upload("reviews.csv", _csv(), tmp_path / "w")
    assert up.guess_columns() == ("review", "stars") and not up.has_splits
    task = build_task(up, "reviews", "review", "stars", descriptions=["a bad review", "a good review"])
    assert task.labels == ["bad", "good"] and task.descriptions == ["a bad review", "a good review"]
    assert [len(task.split(s)) for s in ("train", "validation", "test")] == [28, 4, 8]  # seeded 70/10/20
    assert summary(task)[["train", "validation", "test"]].sum(axis=1).tolist() == [20, 20]  # stratified
    from core.tasks import load_csv_task
    (tmp_path / "same.csv").write_bytes(_csv())
    cli = load_csv_task(tmp_path / "same.csv", text_col="review", label_col="stars", name="reviews")
    assert cli.train.texts == task.train.texts and cli.test.labels == task.test.labels
    save_task(task, origin="upload:reviews.csv")
    assert get_task("reviews").validation.texts == task.validation.texts


def test_jsonl_parquet_and_zip_of_splits(tmp_path):
    rows = [{"sentence": f"text number {i} " + ("yes" if i % 2 else "no"), "intent": f"c{i % 3}"} for i in range(30)]
    jl = "\n".join(json.dumps(r) for r in rows).encode()
    up = read_upload("x.jsonl", jl, tmp_path / "a")
    assert up.guess_columns() == ("sentence", "intent")
    assert build_task(up, "x", "sentence", "intent").labels == ["c0", "c1", "c2"]
    buf = io.BytesIO()
    pd.DataFrame(rows).to_parquet(buf)
    up = read_upload("x.parquet", buf.getvalue(), tmp_path / "b")
    t = build_task(up, "x", "sentence", "intent")
    assert sorted(t.train.texts + t.validation.texts + t.test.texts) == sorted(r["sentence"] for r in rows)
    z = io.BytesIO()
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("data/train.jsonl", "\n".join(json.dumps(r) for r in rows[:20]))
        f.writestr("data/validation.jsonl", "\n".join(json.dumps(r) for r in rows[20:25]))
        f.writestr("data/test.jsonl", "\n".join(json.dumps(r) for r in rows[25:]))
    up = read_upload("splits.zip", z.getvalue(), tmp_path / "c")
    assert up.has_splits and set(up.split_files) == {"train", "validation", "test"}
    t = build_task(up, "x", "sentence", "intent")
    assert (len(t.train), len(t.validation), len(t.test)) == (20, 5, 5)


@pytest.mark.parametrize("name,data,match", [
    ("x.txt", b"a,b\n", "unsupported file type '.txt'"),
    ("x.csv", b"", "the file is empty"),
    ("x.jsonl", b"[1, 2]\n", "cannot read it as JSONL"),
    ("x.parquet", b"not parquet", "cannot read it as Parquet"),
    ("x.zip", b"PK\x03\x04garbage", "not a readable zip"),
])
def test_bad_uploads_get_one_message_naming_the_file(tmp_path, name, data, match):
    with pytest.raises(TaskError, match=match) as e:
        read_upload(name, data, tmp_path / "w")
    assert str(e.value).startswith(name)


def test_bad_columns_name_the_uploaded_file_not_the_temp_path(tmp_path):
    up = read_upload("reviews.csv", _csv(), tmp_path / "w")
    with pytest.raises(TaskError, match="must differ"):
        build_task(up, "r", "review", "review")
    with pytest.raises(TaskError) as e:
        build_task(up, "r", "review", "note")   # a single label value
    assert str(e.value).startswith("reviews.csv:") and str(tmp_path) not in str(e.value)


def test_overview_lists_demo_and_user_tasks(tmp_path):
    up = read_upload("reviews.csv", _csv(), tmp_path / "w")
    save_task(build_task(up, "reviews", "review", "stars"))
    df = overview(["sent_movie", "reviews"]).set_index("task")
    assert df.loc["reviews", "kind"] == "user" and df.loc["reviews", "train"] == 28
    assert df.loc["sent_movie", "kind"] == "demo" and df.loc["sent_movie", "classes"] == "negative, positive"


def test_cli_tasks_add_takes_parquet_like_the_page(tmp_path, capsys):
    from core.tasks import cli
    rows = [{"sentence": f"text number {i}", "intent": "a" if i % 2 else "b"} for i in range(30)]
    pd.DataFrame(rows).to_parquet(tmp_path / "d.parquet")
    assert cli("tasks", ["add", "pq", str(tmp_path / "d.parquet"), "--text-col", "sentence",
                         "--label-col", "intent"]) == 0
    (tmp_path / "d.parquet").unlink()
    t = get_task("pq")
    # labels that are not integral keep their first appearance order (issue 14): row 0 is "b"
    assert t.labels == ["b", "a"] and sum(len(t.split(s)) for s in ("train", "validation", "test")) == 30
    assert cli("tasks", ["add", "pq2", str(tmp_path / "missing.parquet")]) == 1
    assert "no such file" in capsys.readouterr().err


def test_measured_gain_beside_the_ranking():
    from core.ranking import measured_for_target
    res = pd.DataFrame([
        {"run_id": f"s{k}", "method": "scratch", "source": "", "target": "mine", "seed": k, "test_score": v,
         "status": "finished"} for k, v in enumerate([0.60, 0.62, 0.58])] + [
        {"run_id": "p1", "method": "pot", "source": "sent_movie", "target": "mine", "seed": 0, "test_score": 0.75,
         "status": "finished"}])
    df = measured_for_target("mine", ["sent_movie", "spam_sms"], results=res).set_index("source")
    assert df.loc["sent_movie", "measured"] == pytest.approx((0.75 - 0.60) / 0.60)
    assert pd.isna(df.loc["spam_sms", "measured"])
    assert df.loc["sent_movie", "noise"] == pytest.approx(pd.Series([0.60, 0.62, 0.58]).std() / 0.60)
    assert measured_for_target("other", ["sent_movie"], results=res) is None


def test_blank_description_means_the_label_name(tmp_path):
    up = read_upload("reviews.csv", _csv(), tmp_path / "w")
    t = build_task(up, "r", "review", "stars", descriptions={"bad": "  ", "good": "a good review"})
    assert t.descriptions == ["bad", "a good review"]
