"""Tasks as the field keeps them (issue 25): Hugging Face datasets, labels checked, columns guessed
by content, splits that can measure, targets checked before ranking, deleting a task, text length
for scripts without spaces.

    .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_field_tasks.py
"""
from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from core.tasks import Split, Task, TaskError, get_task, list_tasks, load_csv_task, register_task

datasets = pytest.importorskip("datasets", reason="the Hugging Face datasets package is not installed")

POS = ["a gorgeous , witty , seductive movie .", "the performances are uniformly excellent .",
       "one of the best films of the year .", "it 's a charming and often affecting journey ."]
NEG = ["the plot is nothing but boilerplate cliches .", "a dull , simple-minded and stereotypical tale .",
       "it 's a mess of a movie .", "the acting is wooden and the script is worse ."]


def write_csv(path: Path, header: list[str], rows: list) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def sst2_dict(hidden_test: bool = True):
    feats = datasets.Features({"sentence": datasets.Value("string"),
                               "label": datasets.ClassLabel(names=["negative", "positive"]),
                               "idx": datasets.Value("int32")})

    def mk(n, tag, hidden=False):
        rows = {"sentence": [], "label": [], "idx": []}
        for i in range(n):
            y = i % 2
            rows["sentence"].append(f"{(POS if y else NEG)[i % 4]} ({tag} {i})")
            rows["label"].append(-1 if hidden else y)
            rows["idx"].append(i)
        return datasets.Dataset.from_dict(rows, features=feats)

    parts = {"train": mk(40, "train"), "validation": mk(12, "val")}
    if hidden_test:
        parts["test"] = mk(10, "test", hidden=True)
    return datasets.DatasetDict(parts)


# --------------------------------------------------------------------------- Hugging Face datasets

def test_save_to_disk_with_hidden_test_labels_leaves_them_out_with_a_count(tmp_path, capsys):
    from core.tasks import cli
    sst2_dict().save_to_disk(str(tmp_path / "sst2"))
    assert cli("tasks", ["add", "sst2", str(tmp_path / "sst2"), "--text-col", "sentence"]) == 0   # no --kind hf
    t = get_task("sst2")
    assert t.labels == ["negative", "positive"]
    assert t.meta["unlabelled_left_out"] == 10
    assert len(t.validation) == 12 and len(t.train) + len(t.test) == 40   # the test split carved from train
    assert any("test 10" in n for n in t.meta["notes"])
    assert "unlabelled rows left out" in capsys.readouterr().out
    # one split saved alone (a Dataset, not a DatasetDict)
    sst2_dict()["train"].save_to_disk(str(tmp_path / "one"))
    one = load_csv_task(tmp_path / "one", text_col="sentence")
    assert one.labels == ["negative", "positive"] and sum(len(one.split(s)) for s in ("train", "validation", "test")) == 40


def test_parquet_with_classlabel_names_in_its_schema_metadata(tmp_path):
    from core.tasks.upload import build_task, read_upload
    names = ["sadness", "joy", "love", "anger", "fear", "surprise"]
    feats = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=names)})
    ds = datasets.Dataset.from_dict({"text": [f"i feel it, number {i} of them, today" for i in range(60)],
                                     "label": [i % 6 for i in range(60)]}, features=feats)
    ds.to_parquet(str(tmp_path / "emotion.parquet"))
    t = load_csv_task(tmp_path / "emotion.parquet")
    assert t.labels == names and t.descriptions == names
    assert [t.labels[y] for y in t.train.labels[:5]] == [names[int(x.split("number ")[1].split(" ")[0]) % 6]
                                                          for x in t.train.texts[:5]]
    up = read_upload("emotion.parquet", (tmp_path / "emotion.parquet").read_bytes(), tmp_path / "w")
    assert build_task(up, "emo", "text", "label").labels == names       # the page takes the same path


def test_hub_layout_and_glue_split_names_without_kind_hf(tmp_path):
    d = tmp_path / "mnli" / "data"
    d.mkdir(parents=True)
    feats = datasets.Features({"premise": datasets.Value("string"), "hypothesis": datasets.Value("string"),
                               "label": datasets.ClassLabel(names=["entailment", "neutral", "contradiction"])})

    def mk(n, tag):
        return datasets.Dataset.from_dict({"premise": [f"premise {tag} {i} about a thing" for i in range(n)],
                                           "hypothesis": [f"hypothesis {i % 7}" for i in range(n)],
                                           "label": [i % 3 for i in range(n)]}, features=feats)
    mk(60, "tr").to_parquet(str(d / "train-00000-of-00001.parquet"))
    mk(15, "vm").to_parquet(str(d / "validation_matched-00000-of-00001.parquet"))
    mk(15, "vmm").to_parquet(str(d / "validation_mismatched-00000-of-00001.parquet"))
    t = load_csv_task(tmp_path / "mnli", text_col=["premise", "hypothesis"])
    assert t.is_pair and t.labels == ["entailment", "neutral", "contradiction"]
    assert len(t.validation) == 15 and all("vm " in x for x in t.validation.texts)
    assert any("validation_mismatched" in n for n in t.meta["notes"])


def test_zip_of_a_saved_dataset_and_several_files_reach_the_page_reader(tmp_path):
    from core.tasks.upload import build_task, read_upload, read_uploads
    sst2_dict().save_to_disk(str(tmp_path / "sst2"))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for p in (tmp_path / "sst2").rglob("*"):
            if p.is_file():
                z.write(p, "sst2/" + str(p.relative_to(tmp_path / "sst2")))
    up = read_upload("sst2.zip", buf.getvalue(), tmp_path / "w")
    assert up.hf == "saved" and up.guess_columns() == ("sentence", "label")
    assert build_task(up, "s", "sentence", "label").meta["unlabelled_left_out"] == 10
    files = [("train.csv", b"text,label\n" + b"".join(f"good film {i} here,pos\nbad film {i} here,neg\n".encode()
                                                      for i in range(10))),
             ("test.csv", b"text,label\nnice film indeed,pos\nawful film indeed,neg\n")]
    up = read_uploads(files, tmp_path / "w2")
    t = build_task(up, "m", "text", "label")
    assert len(t.test) == 2 and len(t.train) + len(t.validation) == 20


def test_dataset_info_json_names_the_classes_of_an_exported_csv(tmp_path):
    folder = tmp_path / "export"
    folder.mkdir()
    write_csv(folder / "train.csv", ["text", "label"], [(f"text number {i} here", i % 3) for i in range(30)])
    write_csv(folder / "test.csv", ["text", "label"], [(f"test text {i} here", -1) for i in range(4)]
              + [(f"held text {i} here", i % 3) for i in range(6)])
    (folder / "dataset_info.json").write_text(json.dumps(
        {"features": {"text": {"dtype": "string", "_type": "Value"},
                      "label": {"names": ["world", "sports", "business"], "_type": "ClassLabel"}}}))
    t = load_csv_task(folder)
    assert t.labels == ["world", "sports", "business"]
    assert t.meta["unlabelled_left_out"] == 4 and len(t.test) == 6


def test_boolean_labels_are_two_classes_and_regression_is_refused(tmp_path):
    p = tmp_path / "boolq.jsonl"
    p.write_text("".join(json.dumps({"question": f"is it {i}?", "passage": f"passage {i} says so", "answer": i % 2 == 0})
                         + "\n" for i in range(30)))
    t = load_csv_task(p, text_col=["question", "passage"], label_col="answer")
    assert sorted(t.labels) == ["false", "true"] and t.is_pair
    sts = write_csv(tmp_path / "stsb.csv", ["sentence1", "sentence2", "label"],
                    [(f"a {i}", f"b {i}", f"{(i % 50) / 10:.1f}") for i in range(30)])
    with pytest.raises(TaskError, match="regression target"):
        load_csv_task(sts, text_col=["sentence1", "sentence2"])
    feats = datasets.Features({"s": datasets.Value("string"), "label": datasets.Value("float32")})
    datasets.Dataset.from_dict({"s": [f"x {i}" for i in range(10)], "label": [i / 3 for i in range(10)]},
                               features=feats).save_to_disk(str(tmp_path / "stsb_saved"))
    with pytest.raises(TaskError, match="regression target"):
        load_csv_task(tmp_path / "stsb_saved", text_col="s")


def test_latin1_file_gets_one_message_and_reads_with_encoding(tmp_path):
    p = tmp_path / "spam.csv"
    body = "v1,v2,,,\n" + "".join(f"ham,Hi \xa3{i} for the caf\xe9 tonight,,,\nspam,WIN \xa3{i}000 now call,,,\n"
                                  for i in range(20))
    p.write_bytes(body.encode("latin-1"))
    with pytest.raises(TaskError, match=r"not UTF-8 text .*--encoding latin-1"):
        load_csv_task(p, text_col="v2", label_col="v1")
    t = load_csv_task(p, text_col="v2", label_col="v1", encoding="latin-1")
    assert any("\xa3" in x for x in t.train.texts) and sorted(t.labels) == ["ham", "spam"]
    from core.tasks.upload import read_upload
    with pytest.raises(TaskError, match="spam.csv: not UTF-8 text"):
        read_upload("spam.csv", p.read_bytes(), tmp_path / "w")
    up = read_upload("spam.csv", p.read_bytes(), tmp_path / "w2", encoding="latin-1")
    assert up.guess_columns() == ("v2", "v1")


# --------------------------------------------------------------------------- labels checked

def test_label_variants_are_one_error_and_merge_on_request(tmp_path):
    rows = [(f"review {i} was fine or not", lab) for i, lab in
            enumerate(["positive", "Positive", "POSITIVE", "negative", " Negative", "negative"] * 6)]
    p = write_csv(tmp_path / "r.csv", ["review", "sentiment"], rows)
    with pytest.raises(TaskError) as e:
        load_csv_task(p, text_col="review", label_col="sentiment")
    msg = str(e.value)
    assert "'positive' (6) / 'Positive' (6) / 'POSITIVE' (6)" in msg and "--merge-label-variants" in msg
    t = load_csv_task(p, text_col="review", label_col="sentiment", merge_label_variants=True)
    assert sorted(t.labels) == ["negative", "positive"]
    assert sum(sum(t.split(s).counts(2)) for s in ("train", "validation", "test")) == 36


def test_a_class_missing_from_train_is_an_error_naming_it(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    write_csv(folder / "train.csv", ["text", "label"], [(f"train text {i}", ["pos", "neg"][i % 2]) for i in range(20)])
    write_csv(folder / "test.csv", ["text", "label"], [(f"test text {i}", ["pos", "neutral"][i % 2]) for i in range(6)])
    with pytest.raises(TaskError, match="the test split has label 'neutral' that the train split never has"):
        load_csv_task(folder)


# --------------------------------------------------------------------------- columns by content

def test_columns_guessed_by_content_never_an_id_or_one_column_twice(tmp_path):
    from core.tasks.upload import read_upload
    jig = "id,comment_text,toxic\n" + "".join(f"{i:016x},this comment number {i} says something long,{i % 2}\n"
                                             for i in range(200))
    assert read_upload("j.csv", jig.encode(), tmp_path / "a").guess_columns() == ("comment_text", "toxic")
    ints = "id,body,label\n" + "".join(f"{i},short words {i} here and there,{'ab'[i % 2]}\n" for i in range(200))
    assert read_upload("i.csv", ints.encode(), tmp_path / "b").guess_columns() == ("body", "label")
    rte = "index,sentence1,sentence2,label\n" + "".join(f"{i},premise {i} is a sentence,hyp {i},entailment\n"
                                                       f"{i + 100},other premise {i} here,no {i},not_entailment\n"
                                                       for i in range(10))
    up = read_upload("rte.csv", rte.encode(), tmp_path / "c")
    assert up.guess_columns() == ("sentence1", "label") and up.guess_text2() == "sentence2"
    # a column of integers is never the text, even when nothing else is text-like
    nums = "a,b\n" + "".join(f"{i},{i % 2}\n" for i in range(50))
    text, label = read_upload("n.csv", nums.encode(), tmp_path / "d").guess_columns()
    assert text is None and label != text


# --------------------------------------------------------------------------- splits that can measure

def test_product_split_gives_every_class_the_validation_minimum_or_says_why(tmp_path):
    from core.tasks.userfiles import VAL_MIN_PER_CLASS
    rows = [(f"majority text number {i}", "maj") for i in range(990)] + [(f"minority text {i}", "min") for i in range(10)]
    t = load_csv_task(write_csv(tmp_path / "skew.csv", ["text", "label"], rows))
    counts = t.counts("validation")
    assert counts["min"] >= VAL_MIN_PER_CLASS and counts["maj"] == 99
    assert t.meta["score"] == "balanced_accuracy"
    from core.tasks.target import score_kind
    k = score_kind(t)
    assert k.key == "balanced_accuracy" and k.chance == 0.5
    few = [(f"common {i}", "a") for i in range(30)] + [("rare one", "b"), ("rare two", "b")]
    t2 = load_csv_task(write_csv(tmp_path / "few.csv", ["text", "label"], few))
    assert any("too few examples" in n and "b (2)" in n for n in t2.meta["notes"])


def test_duplicates_removed_before_splitting_reported_across_given_splits(tmp_path):
    rows = [(f"tweet {i % 40}  text", "ab"[i % 2]) for i in range(200)]   # retweets: 40 distinct texts
    t = load_csv_task(write_csv(tmp_path / "rt.csv", ["text", "label"], rows))
    assert t.meta["duplicates_removed"] == 160
    seen = [" ".join(x.split()) for s in ("train", "validation", "test") for x in t.split(s).texts]
    assert len(seen) == len(set(seen)) == 40
    folder = tmp_path / "leaky"
    folder.mkdir()
    write_csv(folder / "train.csv", ["text", "label"], [(f"sentence {i}", "ab"[i % 2]) for i in range(30)])
    write_csv(folder / "test.csv", ["text", "label"], [(f"sentence {i}", "ab"[i % 2]) for i in range(5)]
              + [(f"new sentence {i}", "ab"[i % 2]) for i in range(5)])
    kept = load_csv_task(folder)
    assert kept.meta["cross_split_duplicates"] == 5 and len(kept.test) == 10
    dropped = load_csv_task(folder, drop_duplicates=True)
    assert len(dropped.test) == 5 and all(x.startswith("new") for x in dropped.test.texts)
    two = [("same text here", "a"), ("same text here", "b")] + [(f"t {i}", "ab"[i % 2]) for i in range(20)]
    assert load_csv_task(write_csv(tmp_path / "two.csv", ["text", "label"], two)).meta["conflicting_labels"] == 1


def test_summary_says_it_in_tasks_show(tmp_path, capsys):
    from core.tasks import cli
    rows = [(f"tweet {i % 40} text", "ab"[i % 2]) for i in range(100)]
    assert cli("tasks", ["add", "rt", str(write_csv(tmp_path / "rt.csv", ["text", "label"], rows))]) == 0
    capsys.readouterr()
    assert cli("tasks", ["show", "rt"]) == 0
    out = capsys.readouterr().out
    assert "duplicate texts removed before splitting: 60" in out and "score: accuracy" in out


# --------------------------------------------------------------------------- target checks

def _task(val_texts, val_labels, labels=("a", "b")):
    tr = Split([f"train {i}" for i in range(20)], [i % len(labels) for i in range(20)])
    return Task(name="t", family=None, labels=list(labels), descriptions=list(labels), train=tr,
                validation=Split(val_texts, val_labels), test=tr)


def test_target_check_refuses_one_class_and_marks_ncc_undefined():
    from core.ranking import RankError, rank_sources
    from core.tasks.target import target_check
    one = _task([f"v {i}" for i in range(10)], [0] * 10)
    assert "holds one class only" in target_check(one).errors[0]
    with pytest.raises(RankError, match="holds one class only"):
        rank_sources(one, libraries=["/nonexistent"])
    per_class = _task(["v0", "v1", "v2"], [0, 1, 2], labels=("a", "b", "c"))
    chk = target_check(per_class)
    assert not chk.errors and "ncc" in chk.undefined and any("fewer than 5" in w for w in chk.warnings)


def test_ranking_shows_an_undefined_ncc_as_nan_with_a_warning(tmp_path, monkeypatch):
    import shutil
    from core.config import demo_dir
    from core.ranking import RankSettings, rank_sources
    rows = [(f"sentence {i} about {'good things' if i % 2 else 'bad things'}", "ab"[i % 2]) for i in range(20)]
    folder = tmp_path / "f"
    folder.mkdir()
    write_csv(folder / "train.csv", ["text", "label"], rows)
    write_csv(folder / "validation.csv", ["text", "label"], [("a fine day", "a"), ("a dull day", "b")])
    write_csv(folder / "test.csv", ["text", "label"], [("ok day", "a"), ("bad day", "b")])
    register_task("one_each", folder)
    monkeypatch.setenv("ATLAS_CACHE", str(tmp_path / "cache"))
    lib = tmp_path / "lib"
    shutil.copytree(demo_dir() / "prompts" / "sent_movie", lib / "sent_movie")
    r = rank_sources("one_each", libraries=[lib], settings=RankSettings(max_examples=20))
    assert np.isnan(r.table["ncc"]).all() and np.isfinite(r.table["zs"]).all()
    assert "ncc" in r.undefined and r.warnings


# --------------------------------------------------------------------------- delete, length

def test_delete_task_removes_data_and_runs_keep_the_hash(tmp_path, capsys):
    from core.runs.spec import RunSpec, validate_spec
    from core.tasks import cli, user_tasks_dir
    from core.tasks.registry import deleted_tasks
    rows = [(f"text {i} is here", "ab"[i % 2]) for i in range(30)]
    register_task("gone", write_csv(tmp_path / "g.csv", ["text", "label"], rows))
    h = get_task("gone").meta["data_hash"]
    spec = validate_spec(RunSpec(method="scratch", target="gone", params={"steps": 1}))
    assert spec.target_data_hash == h
    assert cli("tasks", ["delete", "gone"]) == 0
    assert "gone" not in list_tasks() and not list(user_tasks_dir().glob("gone*"))
    assert deleted_tasks() == {"gone": h}
    assert h in capsys.readouterr().out
    assert cli("tasks", ["delete", "gone"]) == 1
    assert cli("tasks", ["delete", "sent_movie"]) == 1     # a demo task
    # the same name registered again with other data has another hash
    register_task("gone", write_csv(tmp_path / "g2.csv", ["text", "label"], rows[:20]))
    assert get_task("gone").meta["data_hash"] != h and deleted_tasks() == {}


def test_text_length_counts_characters_for_scripts_without_spaces(tmp_path):
    rows = [("这部电影非常好看，演员的表演很出色" + str(i), "pos") for i in range(15)] + \
           [("剧情拖沓，浪费了两个小时的时间" + str(i), "neg") for i in range(15)]
    t = load_csv_task(write_csv(tmp_path / "zh.csv", ["text", "label"], rows))
    assert "mean_words" not in t.meta and t.meta["length_unit"] == "chars"
    assert t.meta["mean_chars"] == pytest.approx(np.mean([len(x) for x, _ in rows]), abs=0.05)
    from core.task_upload import overview
    register_task("zh", tmp_path / "zh.csv")
    row = overview(["zh"]).iloc[0]
    assert row["mean chars"] == t.meta["mean_chars"]
    assert row["mean words"] is None or np.isnan(row["mean words"])
