"""Every command the README and docs/ name exists (issue 28): a doc that says `python -m core report`
when only `python -m core demo report` does is a newcomer's first dead end.

    .venv/bin/python -m pytest -q tests/test_docs.py

Each `python -m core …` line (in a code block or inline) of README.md and docs/*.md (docs/notes-*.md
included) is cut to its command words — up to the first option, `[`, `\\`, `#` or `…`; `a | b ID`
alternatives become one command each — and run in-process with `--help`: argparse prints the help and
exits 0 for a command that exists, and exits 2 (or core's dispatcher returns 2) for one that does not.
"""
from __future__ import annotations

import contextlib
import io
import re
import shlex

import pytest

from core.__main__ import COMMANDS, main
from core.config import REPO_ROOT

DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
LINE = re.compile(r"python -m core((?: [^`\n#]*)?)")


def commands_in(text: str) -> list[tuple[str, ...]]:
    """The command words of every `python -m core …` in text: ('demo', 'report'), ('runs', 'show', 'ID'), …"""
    out = []
    for m in LINE.finditer(text):
        rest = re.split(r"\[|\\|…|\.\.\.|\s>\s|\s&&\s|;", m.group(1))[0]
        alts = [a.strip() for a in rest.split(" | ")]
        try:
            first = shlex.split(alts[0])
        except ValueError:  # an unbalanced quote: take the words as written
            first = alts[0].split()
        words = []
        for w in first:
            if w.startswith("-"):
                break
            words.append(w)
        out.append(tuple(words))
        for alt in alts[1:]:  # `runs list | show ID | cancel ID`: `runs show ID`, `runs cancel ID`
            sub = [w for w in alt.split() if not w.startswith("-")][:1]
            if words and sub:
                out.append((words[0], *sub))
    return out


def all_commands() -> dict[tuple[str, ...], list[str]]:
    where: dict[tuple[str, ...], list[str]] = {}
    for doc in DOCS:
        for words in commands_in(doc.read_text(encoding="utf-8")):
            where.setdefault(words, []).append(doc.relative_to(REPO_ROOT).as_posix())
    return where


def exit_code(words: tuple[str, ...]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main([*words, "--help"])
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else 1
    return int(rc or 0), err.getvalue()


def test_the_extractor_reads_commands_as_written():
    text = """
```bash
.venv/bin/python -m core runs list | show ID | cancel ID   # the store
python -m core library add FILE_OR_FOLDER... [--dest DIR]
python -m core project --library DIR --method umap|pca|tsne [--group G] \\
```
see `python -m core demo report` and `python -m core collection index "demo,my runs"`.
"""
    assert commands_in(text) == [("runs", "list"), ("runs", "show"), ("runs", "cancel"), ("library", "add", "FILE_OR_FOLDER"),
                                 ("project",), ("demo", "report"), ("collection", "index", "demo,my runs")]


def test_the_docs_name_commands():
    """Not vacuous: the README and the CLI reference name commands, and the reference covers every one."""
    found = all_commands()
    assert ("demo", "report") in found and len(found) > 30, sorted(found)
    cli = (REPO_ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert [c for c in COMMANDS if f"| `{c}` |" not in cli] == []


def test_a_command_that_does_not_exist_fails():
    """The check itself can fail: the layout table's old `python -m core report` and a bad sub-command."""
    assert exit_code(("report",))[0] != 0
    assert exit_code(("demo", "bogus"))[0] != 0
    assert exit_code(("demo", "report"))[0] == 0


@pytest.mark.parametrize("words", sorted(all_commands()), ids=" ".join)
def test_every_documented_command_exists(words):
    rc, err = exit_code(words)
    docs = all_commands()[words]
    assert rc == 0, f"`python -m core {' '.join(words)}` (in {', '.join(sorted(set(docs)))}) does not parse: {[ln for ln in err.splitlines() if 'error' in ln]}"


def test_every_relative_link_resolves():
    """README → docs/ → README: a moved section leaves no dead link (anchors are not checked)."""
    dead = []
    for doc in DOCS:
        prose = re.sub(r"`[^`\n]*`", "", doc.read_text(encoding="utf-8"))  # `[x](url)` in code is an example, not a link
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", prose):
            if "://" not in target and not (doc.parent / target).exists():
                dead.append(f"{doc.name}: {target}")
    assert dead == []
    readme = DOCS[0].read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 150  # a front door, not a manual
    for page in ("your-prompts", "tasks", "metrics-and-heatmaps", "runs-and-sweeps", "sharing", "cli", "architecture"):
        assert f"(docs/{page}.md)" in readme, page
