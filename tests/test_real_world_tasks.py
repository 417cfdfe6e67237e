"""Task files as people publish them (issue 14; ../shared/cases/): each kind built here, read through
load_csv_task / register_task and `python -m core tasks add` (the one path every caller takes).

    .venv/bin/python -m pytest -q tests/test_real_world_tasks.py
"""
from __future__ import annotations

import json

import pytest

from badinput import run_cli
from core import tasks as T
from core.tasks import TaskError, get_task, load_csv_task, register_task


def _rows(task) -> list[tuple[str, str]]:
    return sorted((x, task.labels[y]) for s in T.SPLITS for x, y in zip(task.split(s).texts, task.split(s).labels))


# --------------------------------------------------------------------------- 6. TSV quotes

LEADING_QUOTE = [
    ("the film is a delight from start to finish", "1"),
    ('"the best movie of the year , says nobody', "0"),          # opening quote, never closed
    ("a dull , lifeless retread", "0"),
    ("warm , funny and genuinely moving", "1"),
    ('he called it "a masterpiece" and meant it', "1"),
    ("i walked out after twenty minutes", "0"),
    ("sharp writing and a great cast", "1"),
    ("nothing happens , slowly", "0"),
]


def test_tsv_is_read_without_quote_processing_and_the_other_count_is_said(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("sentence\tlabel\n" + "".join(f"{s}\t{l}\n" for s, l in LEADING_QUOTE), encoding="utf-8")
    task = load_csv_task(path, text_col="sentence")
    assert _rows(task) == sorted(LEADING_QUOTE)           # 8 rows, texts verbatim, each with its own label
    assert any("8 rows" in n and "5 rows" in n for n in task.meta["notes"])
    quoted = load_csv_task(path, text_col="sentence", quoting=True)  # asked for: read that way, and said
    assert sum(len(quoted.split(s)) for s in T.SPLITS) == 5
    assert any("5 rows" in n and "8 rows" in n for n in quoted.meta["notes"])
    # a plain GLUE TSV without stray quotes: no note
    path.write_text("sentence\tlabel\n" + "".join(f"{s}\t{l}\n" for s, l in LEADING_QUOTE if '"' not in s))
    # (3 rows per class are too few for 2 validation examples each: that note, and no quoting note)
    assert not any("quot" in n for n in load_csv_task(path, text_col="sentence").meta.get("notes", []))


def test_cli_tasks_add_tsv_reports_the_row_counts(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("sentence\tlabel\n" + "".join(f"{s}\t{l}\n" for s, l in LEADING_QUOTE), encoding="utf-8")
    r = run_cli("tasks", "add", "quotes", path, "--text-col", "sentence", env_extra={"ATLAS_HOME": str(tmp_path / "h")})
    assert r.returncode == 0, r.stderr
    assert "note: train.tsv: read without quote processing: 8 rows; with CSV quoting it would be 5 rows" in r.stdout


# --------------------------------------------------------------------------- 7. header-less files

COLA = [("our friends won't buy this analysis , let alone the next one we propose .", 1),
        ("one more pseudo generalization and i'm giving up .", 1), ("they drank the pub .", 0),
        ("the professor talked us .", 0), ("we yelled ourselves hoarse .", 1), ("we yelled ourselves .", 0),
        ("the harder it rains , the faster who runs ?", 0), ("i'll fix you a drink .", 1)]


def _cola(tmp_path):
    path = tmp_path / "in_domain_train.tsv"
    path.write_text("".join(f"src{i % 3}\t{l}\t{'' if l else '*'}\t{s}\n" for i, (s, l) in enumerate(COLA)))
    return path


def test_headerless_file_by_column_index(tmp_path):
    path = _cola(tmp_path)
    with pytest.raises(TaskError) as e:
        load_csv_task(path, text_col="sentence")
    assert "no column 'sentence'" in e.value.problem and "first row" in e.value.problem
    assert "looks like data" in e.value.problem and "--no-header" in e.value.problem
    assert "our friends" not in str(e.value)  # the data row is not echoed
    task = load_csv_task(path, text_col=3, label_col=1, header=False,
                         descriptions=["an unacceptable sentence", "an acceptable sentence"])
    assert _rows(task) == sorted((s, str(l)) for s, l in COLA)  # every row, the first one too
    assert task.labels == ["0", "1"] and task.descriptions == ["an unacceptable sentence", "an acceptable sentence"]
    with pytest.raises(TaskError, match="0-based index"):
        load_csv_task(path, text_col="sentence", label_col=1, header=False)
    with pytest.raises(TaskError, match="no column 7"):
        load_csv_task(path, text_col=7, label_col=1, header=False)


def test_cli_no_header(tmp_path):
    path = _cola(tmp_path)
    env = {"ATLAS_HOME": str(tmp_path / "h")}
    r = run_cli("tasks", "add", "cola", path, "--text-col", "sentence", env_extra=env)
    assert r.returncode == 1 and "looks like data" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("tasks", "add", "cola", path, "--no-header", "--text-col", "3", "--label-col", "1",
                "--descriptions", "unacceptable", "acceptable", env_extra=env)
    assert r.returncode == 0, r.stderr
    assert "train" in r.stdout and json.loads((tmp_path / "h" / "tasks" / "cola.json").read_text())["read_with"]["header"] is False


# --------------------------------------------------------------------------- 8. labels

def _nan_jsonl(tmp_path, token="NaN"):
    rows = [{"text": f"example sentence number {i}", "label": float("nan") if i in (7, 19) else i % 2}
            for i in range(30)]
    path = tmp_path / f"data_{token}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows).replace("NaN", token))
    return path


@pytest.mark.parametrize("token", ["NaN", "null"])
def test_missing_labels_are_an_error_naming_the_line(tmp_path, token):
    with pytest.raises(TaskError) as e:
        load_csv_task(_nan_jsonl(tmp_path, token))
    assert e.value.problem.startswith("line 8: missing label") and token in e.value.problem


@pytest.mark.parametrize("cell", ["NaN", "nan", "null", ""])
def test_missing_labels_in_csv_and_tsv(tmp_path, cell):
    for sep, suffix in ((",", "csv"), ("\t", "tsv")):
        path = tmp_path / f"d.{suffix}"
        path.write_text(f"text{sep}label\n" + "".join(f"t{i}{sep}{cell if i == 3 else i % 2}\n" for i in range(10)))
        with pytest.raises(TaskError, match="line 5: (missing|empty) label"):
            load_csv_task(path)


def test_list_labels_say_multi_label_is_not_supported(tmp_path):
    path = tmp_path / "ml.jsonl"
    path.write_text("".join(json.dumps({"text": f"t{i}", "label": ["a", "b"] if i == 4 else "a" if i % 2 else "b"})
                            + "\n" for i in range(10)))
    with pytest.raises(TaskError, match="line 5: .*multi-label is not supported"):
        load_csv_task(path)
    path = tmp_path / "ml.csv"  # pandas writes a list column as "['a', 'b']"
    listed = '"[\'a\', \'b\']"'
    path.write_text("text,label\n" + "".join(f"t{i},{listed if i == 2 else 'a' if i % 2 else 'b'}\n" for i in range(10)))
    with pytest.raises(TaskError, match="line 4: .*multi-label is not supported"):
        load_csv_task(path)


TOPICS = [f"a document about topic {i}" for i in range(12)]


def _float_label_files(tmp_path) -> dict[str, object]:
    """The same 12-class data as pandas writes it (labels 0.0 .. 11.0) in CSV, TSV and JSONL, and
    as 1 / 01 integers."""
    import pandas as pd
    texts = [f"document {i} about topic{i % 12} words" for i in range(240)]
    labels = [float(i % 12) for i in range(240)]
    df = pd.DataFrame({"text": texts, "label": labels})
    df.to_csv(tmp_path / "topics.csv", index=False)
    df.to_csv(tmp_path / "topics.tsv", index=False, sep="\t")
    (tmp_path / "topics.jsonl").write_text("".join(json.dumps({"text": t, "label": y}) + "\n"
                                                   for t, y in zip(texts, labels)))
    (tmp_path / "padded.csv").write_text("text,label\n" + "".join(f"{t},{int(y):02d}\n" for t, y in zip(texts, labels)))
    assert (tmp_path / "topics.csv").read_text().splitlines()[1].endswith(",0.0")
    return {"csv": tmp_path / "topics.csv", "tsv": tmp_path / "topics.tsv", "jsonl": tmp_path / "topics.jsonl",
            "padded": tmp_path / "padded.csv"}


def test_integral_labels_are_normalised_and_ordered_numerically_in_every_format(tmp_path):
    for fmt, path in _float_label_files(tmp_path).items():
        task = load_csv_task(path, descriptions=TOPICS)
        assert task.labels == [str(i) for i in range(12)], fmt
        for s in T.SPLITS:  # each description sits on the class the user meant: topic k <-> label k
            for x, y in zip(task.split(s).texts, task.split(s).labels):
                assert x.endswith(f"topic{int(x.split()[1]) % 12} words")
                assert task.descriptions[y] == f"a document about topic {int(x.split()[1]) % 12}", (fmt, x)
    # a dict of descriptions keyed as the file writes them works too
    task = load_csv_task(_float_label_files(tmp_path)["csv"], descriptions={f"{i}.0": TOPICS[i] for i in range(12)})
    assert task.descriptions == TOPICS


def test_other_labels_stay_verbatim_in_first_appearance_or_given_order(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,label\n" + "".join(f"t{i},{['neutral', 'Pos', 'neg', '0.5'][i % 4]}\n" for i in range(16)))
    task = load_csv_task(path)
    assert task.labels == ["neutral", "Pos", "neg", "0.5"]
    task = load_csv_task(path, labels=["neg", "neutral", "Pos", "0.5"], descriptions=["bad", "meh", "good", "half"])
    assert task.labels == ["neg", "neutral", "Pos", "0.5"]
    assert dict(zip(task.labels, task.descriptions)) == {"neg": "bad", "neutral": "meh", "Pos": "good", "0.5": "half"}
    assert _rows(task) == sorted((f"t{i}", ["neutral", "Pos", "neg", "0.5"][i % 4]) for i in range(16))


def test_cli_registration_prints_each_label_beside_its_description(tmp_path):
    path = _float_label_files(tmp_path)["csv"]
    r = run_cli("tasks", "add", "topics", path, "--descriptions", *TOPICS, env_extra={"ATLAS_HOME": str(tmp_path / "h")})
    assert r.returncode == 0, r.stderr
    pairs = [ln.split(None, 1) for ln in r.stdout.splitlines() if ln.startswith("  ") and "about topic" in ln]
    assert [(lab, rest.rsplit("  (", 1)[0]) for lab, rest in pairs] == [(str(i), TOPICS[i]) for i in range(12)]


def test_registered_order_is_kept_and_old_registrations_read_as_before(tmp_path, atlas_home):
    path = tmp_path / "d.csv"
    path.write_text("text,label\n" + "".join(f"t{i},{['pos', 'neg'][i % 2]}\n" for i in range(12)))
    register_task("new", path, descriptions=["good", "bad"])
    assert dict(zip(get_task("new").labels, get_task("new").descriptions)) == {"pos": "good", "neg": "bad"}
    # a task file written before first-appearance order: its list descriptions were written for sorted labels
    spec = {"name": "old", "kind": "file", "path": str(path), "text_col": "text", "label_col": "label",
            "family": None, "labels": None, "descriptions": ["bad", "good"], "config": None, "seed": 0}
    (atlas_home / "tasks" / "old.json").write_text(json.dumps(spec))
    old = get_task("old")
    assert dict(zip(old.labels, old.descriptions)) == {"neg": "bad", "pos": "good"}


# --------------------------------------------------------------------------- spreadsheet exports (regression + bonus)

EXCEL_ROWS = [("I loved it, truly", "pos"), ("Meh.\nNot again", "neg")] + [
    (f"text {i} is {'good' if i % 2 else 'bad'}", "pos" if i % 2 else "neg") for i in range(20)]


def test_spreadsheet_exports(tmp_path):
    def q(s):
        return '"' + s.replace('"', '""') + '"' if any(c in s for c in ',"\n') else s
    (tmp_path / "utf8.csv").write_bytes(("\ufeff" + "text,label\r\n" + "".join(f"{q(t)},{l}\r\n" for t, l in EXCEL_ROWS))
                                        .encode("utf-8"))
    flat = [(t.replace("\n", " "), l) for t, l in EXCEL_ROWS]
    (tmp_path / "unicode.txt").write_bytes(("\ufeff" + "text\tlabel\r\n" + "".join(f"{t}\t{l}\r\n" for t, l in flat))
                                           .encode("utf-16-le"))
    (tmp_path / "semicolon.csv").write_bytes(("\ufeff" + "text;label\r\n" + "".join(f"{t};{l}\r\n" for t, l in flat))
                                             .encode("utf-8"))
    task = load_csv_task(tmp_path / "utf8.csv")
    assert _rows(task) == sorted(EXCEL_ROWS)   # the quoted comma and line break kept, 22 rows
    for f in ("unicode.txt", "semicolon.csv"):
        assert _rows(load_csv_task(tmp_path / f)) == sorted(flat), f
