"""core.access: the mode switch, the path guard for browser paths, and the bounded walk.

    .venv/bin/python -m pytest -q tests/test_access.py
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from core import access
from core.access import REFUSED, Access, AccessError, PathRefused, Walk, is_loopback, resolve
from core.library import index_library


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for var in ("ATLAS_MODE", "ATLAS_ALLOWED_ROOTS", "ATLAS_LIBRARY", "ATLAS_WALK_MAX_ENTRIES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ATLAS_DEMO", str(tmp_path / "demo"))


# --------------------------------------------------------------------------- mode

@pytest.mark.parametrize("bind, loop", [("127.0.0.1", True), ("127.0.1.1", True), ("::1", True), ("[::1]", True),
                                        ("localhost", True), ("0.0.0.0", False), ("::", False), ("", False),
                                        (None, False), ("192.168.1.5", False), ("myhost.lan", False)])
def test_loopback_only_is_recognised(bind, loop):
    assert is_loopback(bind) is loop


def test_mode_follows_the_bind_address_when_unset():
    assert resolve("127.0.0.1").mode == "full"
    assert resolve("0.0.0.0").mode == "viewer"
    assert resolve(None).mode == "viewer"  # streamlit's default: all interfaces
    assert "0.0.0.0" in resolve("0.0.0.0").why


def test_atlas_mode_overrides_the_bind_address(monkeypatch):
    monkeypatch.setenv("ATLAS_MODE", "full")
    assert resolve("0.0.0.0").mode == "full" and not resolve("0.0.0.0").restricted
    monkeypatch.setenv("ATLAS_MODE", "viewer")
    assert resolve("127.0.0.1").mode == "viewer" and resolve("127.0.0.1").restricted


def test_a_mistyped_mode_is_an_error_not_a_guess(monkeypatch):
    monkeypatch.setenv("ATLAS_MODE", "fulll")
    with pytest.raises(AccessError, match=r"ATLAS_MODE='fulll': use full or viewer"):
        resolve("127.0.0.1")


def test_ray_address_from_a_page_only_on_a_loopback_full_server(monkeypatch):
    assert resolve("127.0.0.1").ray_address_from_page
    monkeypatch.setenv("ATLAS_MODE", "full")
    assert not resolve("0.0.0.0").ray_address_from_page  # full, but shared: configuration only


# --------------------------------------------------------------------------- path rules

@pytest.fixture
def tree(tmp_path, atlas_home):
    """ATLAS_HOME (allowed), a shared folder given with a trailing slash, and an outside folder."""
    shared = tmp_path / "shared"
    (shared / "lib").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.pt").write_bytes(b"x")
    (shared / "lib" / "escape").symlink_to(outside)                # a link out of a root
    (shared / "lib" / "inside").symlink_to(shared / "lib")          # a link that stays inside
    (tmp_path / "shared-evil").mkdir()                              # a string prefix, not a child
    return {"home": atlas_home, "shared": shared, "outside": outside, "tmp": tmp_path}


def viewer(monkeypatch, t) -> Access:
    monkeypatch.setenv("ATLAS_ALLOWED_ROOTS", str(t["shared"]) + "/")  # trailing slash on purpose
    return resolve("0.0.0.0")


def test_paths_under_allowed_roots_pass_resolved(monkeypatch, tree):
    acc = viewer(monkeypatch, tree)
    assert acc.check(str(tree["shared"] / "lib")) == tree["shared"].resolve() / "lib"
    assert acc.check(str(tree["shared"]) + "/") == tree["shared"].resolve()       # the root itself, with a slash
    assert acc.check(tree["home"] / "library" / "not-yet") == tree["home"].resolve() / "library" / "not-yet"
    assert acc.check(str(tree["shared"] / "lib" / "inside")) == tree["shared"].resolve() / "lib"


@pytest.mark.parametrize("typed", ["/etc", "/", "/proc/self/environ", "~", "{outside}", "{outside}/secret.pt",
                                   "{shared}/lib/escape", "{shared}/lib/escape/secret.pt",
                                   "{shared}/../outside", "{shared}/lib/../../outside/secret.pt", "{tmp}/shared-evil"])
def test_paths_outside_the_roots_are_refused_naming_only_what_was_typed(monkeypatch, tree, typed):
    acc = viewer(monkeypatch, tree)
    typed = typed.format(**{k: str(v) for k, v in tree.items()})
    with pytest.raises(PathRefused) as e:
        acc.check(typed)
    assert str(e.value) == f"{typed}: {REFUSED}"
    assert "secret" not in e.value.problem and str(tree["outside"]) not in e.value.problem


def test_relative_paths_are_relative_to_the_working_directory(monkeypatch, tree):
    acc = viewer(monkeypatch, tree)
    monkeypatch.chdir(tree["shared"])
    assert acc.check("lib") == tree["shared"].resolve() / "lib"
    assert acc.check("./lib/../lib") == tree["shared"].resolve() / "lib"
    with pytest.raises(PathRefused, match=r"^\.\./outside: not inside a folder"):
        acc.check("../outside")
    with pytest.raises(PathRefused, match=r"^lib/escape: not inside"):
        acc.check("lib/escape")  # relative and through a link out


def test_empty_and_nul_paths_are_refused(monkeypatch, tree):
    acc = viewer(monkeypatch, tree)
    with pytest.raises(PathRefused, match="an empty path"):
        acc.check("  ")
    with pytest.raises(PathRefused, match="not a valid path"):
        acc.check("/tmp/a\0b")


def test_full_mode_on_loopback_allows_any_path(tree):
    acc = resolve("127.0.0.1")
    assert not acc.restricted and acc.check("/etc") == Path("/etc").resolve()
    assert acc.check(str(tree["shared"] / "lib" / "escape")) == tree["outside"].resolve()


def test_allowed_roots_in_full_mode_restrict_too(monkeypatch, tree):
    monkeypatch.setenv("ATLAS_ALLOWED_ROOTS", str(tree["shared"]))
    acc = resolve("127.0.0.1")
    assert acc.mode == "full" and acc.restricted
    with pytest.raises(PathRefused):
        acc.check("/etc")


def test_roots_are_home_demo_library_and_allowed(monkeypatch, tree):
    lib = tree["tmp"] / "extra"
    lib.mkdir()
    monkeypatch.setenv("ATLAS_LIBRARY", str(lib))
    acc = viewer(monkeypatch, tree)
    assert acc.roots == (tree["home"].resolve(), (tree["tmp"] / "demo").resolve(), lib.resolve(),
                         tree["shared"].resolve())
    assert acc.check(lib / "x") == lib.resolve() / "x"


def test_files_are_named_relative_to_their_root(monkeypatch, tree):
    acc = viewer(monkeypatch, tree)
    assert acc.display(tree["shared"] / "lib" / "bad.pt") == "shared/lib/bad.pt"
    assert acc.display(tree["home"] / "library" / "x.pt") == f"{tree['home'].name}/library/x.pt"
    assert acc.display("/etc/passwd") == "/etc/passwd"  # not under a root: as given


# --------------------------------------------------------------------------- bounded walk

def make_tree(root: Path, n_dirs: int, per_dir: int) -> int:
    for i in range(n_dirs):
        d = root / f"d{i:03d}"
        d.mkdir(parents=True)
        for j in range(per_dir):
            (d / f"f{j:03d}.npy").write_bytes(b"")
    return n_dirs * (per_dir + 1)


def test_walk_stops_at_the_entry_cap_with_a_message(tmp_path):
    total = make_tree(tmp_path / "big", 30, 20)  # 630 files and folders
    w = Walk(tmp_path / "big", max_entries=200)
    files = [Path(d) / f for d, _, fs in w for f in fs]
    assert w.stopped and w.seen == 200 and total > 200
    assert len(files) < 200
    assert len(w.notes) == 1 and "stopped after 200 files and folders" in w.notes[0]
    assert "ATLAS_WALK_MAX_ENTRIES" in w.notes[0]
    again = Walk(tmp_path / "big", max_entries=200)  # deterministic: the same cut every time
    assert [Path(d) / f for d, _, fs in again for f in fs] == files


def test_walk_under_the_cap_sees_everything_and_says_nothing(tmp_path):
    make_tree(tmp_path / "small", 5, 4)
    w = Walk(tmp_path / "small", max_entries=100)
    assert sum(len(fs) for _, _, fs in w) == 20 and not w.stopped and w.notes == []


def test_walk_cap_from_the_environment(monkeypatch, tmp_path):
    make_tree(tmp_path / "t", 3, 3)
    monkeypatch.setenv("ATLAS_WALK_MAX_ENTRIES", "5")
    w = Walk(tmp_path / "t")
    list(w)
    assert w.stopped and w.max_entries == 5
    monkeypatch.setenv("ATLAS_WALK_MAX_ENTRIES", "lots")
    with pytest.raises(AccessError, match="ATLAS_WALK_MAX_ENTRIES='lots'"):
        Walk(tmp_path / "t")


def test_default_cap_fits_a_3000_prompt_library():
    assert access.MAX_ENTRIES >= 20_000


def test_walk_depth_cap(tmp_path):
    deep = tmp_path / "deep"
    d = deep
    for i in range(6):
        d = d / f"l{i}"
    d.mkdir(parents=True)
    (d / "p.npy").write_bytes(b"")
    w = Walk(deep, max_depth=3)
    seen = [Path(x) for x, _, _ in w]
    assert max(len(p.relative_to(deep).parts) for p in seen) == 3
    assert any("more than 3 levels deep" in n for n in w.notes)


def test_walk_never_follows_links_out_and_lists_only_regular_files(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.npy").write_bytes(b"")
    (root / "sub" / "ok.npy").write_bytes(b"")
    (root / "out_dir").symlink_to(outside)
    (root / "out_file.npy").symlink_to(outside / "secret.npy")
    (root / "loop").symlink_to(root)                 # inside, a cycle: listed, never descended
    (root / "in_file.npy").symlink_to(root / "sub" / "ok.npy")
    os.mkfifo(root / "fifo.npy")                     # opening it would block forever
    w = Walk(root)
    listing = {Path(d).relative_to(root).as_posix(): (sorted(ds), sorted(fs)) for d, ds, fs in w}
    assert listing == {".": (["loop", "sub"], ["in_file.npy"]), "sub": ([], ["ok.npy"])}
    assert any("2 link(s) pointing outside it were not followed" in n for n in w.notes)


def test_walk_never_enters_system_folders(tmp_path):
    for sysdir in ("/proc", "/sys", "/dev", "/proc/self"):
        w = Walk(sysdir)
        assert list(w) == [] and "system folder" in w.notes[0]
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "proc").symlink_to("/proc")
    w = Walk(tmp_path / "r")
    assert [ds for _, ds, _ in w] == [[]]  # the link out is dropped


def test_walk_from_root_skips_proc_sys_dev():
    w = Walk("/", max_entries=300, max_depth=1)
    dirs = {Path(d).as_posix() for d, _, _ in w}
    assert not dirs & {"/proc", "/sys", "/dev"}


def test_index_of_a_huge_folder_stops_and_says_so(tmp_path, monkeypatch):
    root = tmp_path / "lib"
    root.mkdir()
    for i in range(30):
        torch.save(torch.randn(2, 4), root / f"p{i:02d}.pt")
    monkeypatch.setenv("ATLAS_WALK_MAX_ENTRIES", "10")
    index = index_library(root)
    assert len(index.prompts) == 10 and sorted(index.prompts)[-1] == "p09.pt"
    assert len(index.notes) == 1 and "stopped after 10 files and folders" in index.notes[0]


def test_index_never_reads_system_files(tmp_path):
    index = index_library(["/proc/self/environ", "/proc"])
    assert not index.prompts and not index.problems
    assert len(index.notes) == 2 and all("system folder" in n for n in index.notes)


def test_cli_reports_mode_and_refusals(monkeypatch, tree, capsys):
    monkeypatch.setenv("ATLAS_ALLOWED_ROOTS", str(tree["shared"]))
    rc = access.cli("access", ["--bind", "0.0.0.0", "/etc", str(tree["shared"] / "lib")])
    out = capsys.readouterr().out
    assert rc == 1
    assert "mode: viewer (bound to 0.0.0.0" in out
    assert f"refused: /etc: {REFUSED}" in out and f"allowed: {tree['shared'] / 'lib'}" in out


def test_tree_stamp_changes_with_any_file_and_only_then(tmp_path):
    """The pages' change detector (core.access.tree_stamp): same tree, same stamp; a new, resized
    or re-written file, or a different root list, gives another."""
    import os
    from core.access import tree_stamp

    (tmp_path / "a").mkdir()
    f = tmp_path / "a" / "p.npy"
    f.write_bytes(b"x" * 10)
    one = tree_stamp([str(tmp_path)])
    assert tree_stamp([str(tmp_path)]) == one and len(one) == 64
    f.write_bytes(b"x" * 11)
    two = tree_stamp([str(tmp_path)])
    assert two != one
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert tree_stamp([str(tmp_path)]) != two
    three = tree_stamp([str(tmp_path)])
    (tmp_path / "a" / "q.npy").write_bytes(b"")
    assert tree_stamp([str(tmp_path)]) != three
    assert tree_stamp([str(f)]) != tree_stamp([str(tmp_path)])  # a file root counts as itself
