"""The published cases of ../shared/cases/ (issue 14) as a user meets them: each case folder is copied
to a tmp dir, its build.py run there, and the result checked through the CLI (`python -m core ...`).
tests/test_real_world_*.py build the same kinds inside the tests; this file runs the cases as published.

    .venv/bin/python -m pytest -q tests/test_shared_cases.py
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from badinput import REPO, run_cli

# shared/ beside the repository (main), or beside the worktrees' folder (a worktree in <repo>/../wt/<name>)
CASES = next((b / "shared" / "cases" for b in (REPO.parent, REPO.parent.parent) if (b / "shared" / "cases").is_dir()),
             REPO.parent / "shared" / "cases")


def build(case: str, tmp_path: Path) -> Path:
    if not (CASES / case / "build.py").is_file():
        pytest.skip(f"{CASES / case} not found (shared/ missing beside the repo)")
    dst = tmp_path / case
    shutil.copytree(CASES / case, dst)
    r = subprocess.run([sys.executable, str(dst / "build.py")], cwd=REPO, capture_output=True, text=True,
                       timeout=300, env={**__import__("os").environ, "HF_HUB_OFFLINE": "1",
                                         "TRANSFORMERS_OFFLINE": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    return dst


def rows(stdout: str) -> list[list[str]]:
    return [ln.split("\t") for ln in stdout.splitlines() if ln.strip()]


def test_peft_seq2seq(tmp_path):
    d = build("peft-seq2seq", tmp_path) / "t5_prompt_adapter"
    for path in (d, d / "adapter_model.safetensors"):
        r = run_cli("prompts", "inspect", path)
        assert r.returncode == 0, r.stderr
        assert [x[2:5] for x in rows(r.stdout)] == [["L=10", "d=512", "backbone=t5-small"]] * 2
        assert [x[-1] for x in rows(r.stdout)] == ["t5_prompt_adapter/encoder", "t5_prompt_adapter/decoder"]


def test_peft_ptuning(tmp_path):
    from core.prompts import read_prompt
    d = build("peft-ptuning", tmp_path) / "ptuning_adapter"
    r = run_cli("prompts", "inspect", d)
    assert r.returncode == 0 and rows(r.stdout)[0][2:4] == ["L=20", "d=384"], r.stderr
    assert read_prompt(d).method == "p_tuning"


def test_peft_mpt_cpt(tmp_path):
    """MPT: one prompt per task (shared x that task's factors) plus the shared prompt; CPT: its prompt."""
    import numpy as np
    import torch
    import peft
    import transformers
    from core.prompts import read_prompts
    d = build("peft-mpt-cpt", tmp_path)
    r = run_cli("prompts", "inspect", d / "mpt_adapter", d / "cpt_adapter")
    assert r.returncode == 0, r.stderr
    assert [x[-1] for x in rows(r.stdout)[:4]] == ["mpt_adapter/shared", "mpt_adapter/task0", "mpt_adapter/task1",
                                                   "mpt_adapter/task2"]
    assert len(rows(r.stdout)) == 5 and rows(r.stdout)[4][0].endswith("cpt_adapter")
    assert all(x[2:5] == ["L=10", "d=64", "backbone=gpt2"] for x in rows(r.stdout))
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_embd=64, n_layer=2, n_head=2, vocab_size=1000, n_positions=128)
    model = peft.PeftModel.from_pretrained(transformers.GPT2LMHeadModel(cfg), str(d / "mpt_adapter"))
    got = {p.name: p.values for p in read_prompts(d / "mpt_adapter")}
    for t in range(3):
        want = model.get_prompt(batch_size=1, task_ids=torch.tensor([t]))[0].detach().numpy()
        assert np.array_equal(got[f"mpt_adapter/task{t}"], want)


def test_ptv2_prefix_encoder(tmp_path):
    d = build("ptv2-prefix-encoder", tmp_path)
    paths = [d / "ptuning_out" / "pytorch_model.bin", d / "prefix_weights.safetensors", d / "prefix_adapter"]
    r = run_cli("prompts", "inspect", *paths)
    assert r.returncode == 1 and r.stdout == ""
    for p in paths:
        line = next(ln for ln in r.stderr.splitlines() if ln.startswith(f"error: {p}: "))
        assert "per-layer key/value prefixes" in line and "not an input prompt" in line, line


def test_attempt_outdir(tmp_path):
    d = build("attempt-outdir", tmp_path) / "attempt_out"
    r = run_cli("library", "index", d)
    assert "1 prompts in 1 group(s)" in r.stdout and "prefix_embeddings.pt" in r.stdout
    problems = [ln for ln in r.stderr.splitlines() if ln.startswith("problem: ")]
    assert len(problems) == 4 and all("looks like" in ln for ln in problems), problems


def test_t5x_npy_bf16(tmp_path):
    import numpy as np

    from core.prompts import read_prompt
    d = build("t5x-npy-bf16", tmp_path)
    r = run_cli("prompts", "inspect", d / "prompt_fp32.npy", d / "prompt_bf16.npy")
    assert r.returncode == 0 and [x[2:4] for x in rows(r.stdout)] == [["L=100", "d=768"]] * 2, r.stderr
    np.testing.assert_allclose(read_prompt(d / "prompt_bf16.npy").values, read_prompt(d / "prompt_fp32.npy").values,
                               rtol=1e-2)


def test_macos_zip(tmp_path):
    d = build("macos-zip", tmp_path)
    lib = tmp_path / "library"
    for name in ("sst2_prompt", "imdb_prompt"):
        r = run_cli("library", "add", "--dest", lib, d / f"{name}.zip")
        assert r.returncode == 0 and f"added {name}\t" in r.stdout, r.stderr
    assert sorted(p.name for p in lib.iterdir()) == ["imdb_prompt", "sst2_prompt"]


def test_peft_legacy_variants(tmp_path):
    d = build("peft-legacy-variants", tmp_path)
    r = run_cli("library", "index", d)
    assert "3 prompts in 1 group(s)" in r.stdout and "== sentence-transformers/all-MiniLM-L6-v2" in r.stdout
    [problem] = [ln for ln in r.stderr.splitlines() if ln.startswith("problem: ")]
    assert "c_zero3_empty" in problem and "expected a 2-D" in problem


def tasks_add(tmp_path, *args):
    return run_cli("tasks", "add", *args, env_extra={"ATLAS_HOME": str(tmp_path / "home")})


def total(stdout: str) -> int:
    head = next(ln for ln in stdout.splitlines() if ln.startswith("registered"))
    return sum(int(part.split()[-1]) for part in head.split(": ", 1)[1].split(", "))


def test_tsv_leading_quote(tmp_path):
    d = build("tsv-leading-quote", tmp_path)
    r = tasks_add(tmp_path, "q", d / "train.tsv", "--text-col", "sentence")
    assert r.returncode == 0 and total(r.stdout) == 8, r.stderr
    assert "5 rows" in r.stdout  # the other reading's count is said


def test_tsv_headerless_cola(tmp_path):
    d = build("tsv-headerless-cola", tmp_path)
    r = tasks_add(tmp_path, "cola", d / "in_domain_train.tsv", "--text-col", "sentence")
    assert r.returncode == 1 and "first row" in r.stderr and "looks like data" in r.stderr
    r = tasks_add(tmp_path, "cola", d / "in_domain_train.tsv", "--no-header", "--text-col", "3", "--label-col", "1")
    assert r.returncode == 0 and total(r.stdout) == 12, r.stderr


def test_jsonl_nan_label(tmp_path):
    d = build("jsonl-nan-label", tmp_path)
    for f, token in (("data.jsonl", "NaN"), ("data_null.jsonl", "null")):
        r = tasks_add(tmp_path, "n", d / f)
        assert r.returncode == 1 and f"error: {d / f}: line 8: missing label ({token})" in r.stderr, r.stderr


def test_csv_float_labels(tmp_path):
    d = build("csv-float-labels", tmp_path)
    descs = [f"a document about topic{i}" for i in range(12)]
    for i, f in enumerate(("topics.csv", "topics.jsonl")):
        if not (d / f).exists():  # build.py writes the CSV; the JSONL is the published copy
            shutil.copy(CASES / "csv-float-labels" / f, d / f)
        r = tasks_add(tmp_path, f"topics{i}", d / f, "--descriptions", *descs)
        assert r.returncode == 0, r.stderr
        pairs = [ln.split(None, 1) for ln in r.stdout.splitlines() if "about topic" in ln]
        assert [(lab, rest.rsplit("  (", 1)[0]) for lab, rest in pairs] == [(str(k), descs[k]) for k in range(12)]


def test_csv_excel_exports(tmp_path):
    d = build("csv-excel-exports", tmp_path)
    for i, f in enumerate(("excel_utf8.csv", "excel_unicode.txt", "excel_semicolon.csv")):
        r = tasks_add(tmp_path, f"x{i}", d / f)
        assert r.returncode == 0 and total(r.stdout) == 22, (f, r.stderr)


# --------------------------------------------------------------------------- issue 25: tasks as the field keeps them

def test_glue_rte_pairs(tmp_path):
    d = build("glue-rte-pairs", tmp_path)
    for i, f in enumerate((d / "RTE" / "train.tsv", d / "rte_train.csv")):
        r = tasks_add(tmp_path, f"rte{i}", f, "--text-col", "sentence1", "--text-col", "sentence2")
        assert r.returncode == 0 and "sentence pairs (sentence1, sentence2)" in r.stdout, r.stderr
    from core.tasks.upload import read_upload
    up = read_upload("rte_train.csv", (d / "rte_train.csv").read_bytes(), tmp_path / "w")
    assert up.guess_columns() == ("sentence1", "label") and up.guess_text2() == "sentence2"


def test_hf_save_to_disk(tmp_path):
    d = build("hf-save-to-disk", tmp_path)
    r = tasks_add(tmp_path, "sst2", d / "sst2_saved", "--text-col", "sentence")
    assert r.returncode == 0 and "unlabelled rows left out" in r.stdout and "test 40" in r.stdout, r.stderr
    r = tasks_add(tmp_path, "sst2b", d / "sst2_saved_no_test", "--text-col", "sentence")
    assert r.returncode == 0 and "unlabelled" not in r.stdout, r.stderr


def test_kaggle_latin1_upload(tmp_path):
    from core.tasks import TaskError
    from core.tasks.upload import read_upload
    d = build("kaggle-latin1-upload", tmp_path)
    r = tasks_add(tmp_path, "spam", d / "spam.csv", "--text-col", "v2", "--label-col", "v1")
    assert r.returncode == 1 and "not UTF-8" in r.stderr and "--encoding latin-1" in r.stderr
    r = tasks_add(tmp_path, "spam", d / "spam.csv", "--text-col", "v2", "--label-col", "v1", "--encoding", "latin-1")
    assert r.returncode == 0, r.stderr
    with pytest.raises(TaskError, match="spam.csv: not UTF-8 text"):   # the page: the CLI's message
        read_upload("spam.csv", (d / "spam.csv").read_bytes(), tmp_path / "a")
    assert read_upload("spam.csv", (d / "spam.csv").read_bytes(), tmp_path / "b",
                       encoding="latin-1").guess_columns() == ("v2", "v1")
    assert read_upload("spam_utf8.csv", (d / "spam_utf8.csv").read_bytes(), tmp_path / "c").guess_columns() == ("v2", "v1")
    text, label = read_upload("jigsaw_style.csv", (d / "jigsaw_style.csv").read_bytes(), tmp_path / "d").guess_columns()
    assert text == "comment_text" and label not in ("id", "comment_text")


def test_banking77_many_classes(tmp_path):
    d = build("banking77-many-classes", tmp_path)
    r = tasks_add(tmp_path, "b77", d / "banking_data", "--label-col", "category")
    assert r.returncode == 0, r.stderr
    r = run_cli("tasks", "show", "b77", env_extra={"ATLAS_HOME": str(tmp_path / "home")})
    counts = [ln.split() for ln in r.stdout.splitlines()[2:79]]
    assert all(int(c[-2]) >= 2 for c in counts), r.stdout      # validation column: the stated minimum
    assert "warning: validation has fewer than 5 examples" in r.stdout


def test_label_variants(tmp_path):
    d = build("label-variants", tmp_path)
    r = tasks_add(tmp_path, "lv", d / "reviews_annotated.csv", "--text-col", "review", "--label-col", "sentiment")
    assert r.returncode == 1 and "differ only by case or spaces" in r.stderr and "--merge-label-variants" in r.stderr
    r = tasks_add(tmp_path, "lv", d / "reviews_annotated.csv", "--text-col", "review", "--label-col", "sentiment",
                  "--merge-label-variants")
    assert r.returncode == 0 and "labels merged" in r.stdout, r.stderr
    r = tasks_add(tmp_path, "lv2", d / "split_folder")
    assert r.returncode == 1 and "'positive'" in r.stderr and "'Positive'" in r.stderr
