"""core.library: indexing (thunlp layout, groups, problems, cache), safe uploads, and its CLI.

    .venv/bin/python -m pytest tests/test_library.py -q
"""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import core.library as library
from badinput import MINILM, make_corpus, run_cli, tree_digest
from core.library import LibraryIndex, add_upload, index_library
from core.prompts import PromptError, SoftPrompt, write_prompt



@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("badinput"))


@pytest.fixture
def user_lib(tmp_path):
    """A user library that already holds one adapter and one plain file (so 'unchanged' means something)."""
    lib = tmp_path / "library"
    write_prompt(SoftPrompt(torch.randn(4, 384), name="mine", task="sent_movie", backbone=MINILM), lib / "mine")
    torch.save(torch.randn(3, 384), lib / "loose.pt")
    return lib


# --------------------------------------------------------------------------- (d) the real library

def test_index_real_prompts(real_prompts_dir):
    index = index_library(real_prompts_dir)
    assert len(index.prompts) == 46 and not index.problems
    groups = index.groups()
    assert {g: len(v) for g, v in groups.items()} == {"bert-base-uncased": 14, "roberta-base": 15, "t5-small": 17}
    assert "IMDBPromptRoberta" in groups["roberta-base"] and "IMDBPromptBert" in groups["bert-base-uncased"]
    t = index.table
    assert list(t.columns) == library.TABLE_COLUMNS and len(t) == 46
    assert t["task"].notna().all() and t["family"].notna().all()
    row = t.set_index("name").loc["QNLIPromptT5Small"]
    assert (row.task, row.family, row.backbone, row.group, row.L, row.d) == ("QNLI", "nli", "t5-small",
                                                                            "t5-small", 100, 512)
    assert row.norm == pytest.approx(float(index.prompts["QNLIPromptT5Small"].tensor.norm(dim=1).mean()))
    # same shape, different models: never in one group
    assert index.group_of("SST2PromptRoberta") != index.group_of("SST2PromptBert")
    assert all(p.backbone == "t5-small" for p in index.group_prompts("t5-small"))


def test_cli_index_real_prompts(real_prompts_dir):
    r = run_cli("library", "index", real_prompts_dir)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "46 prompts in 3 group(s)" in out
    assert "== bert-base-uncased  (14 prompts, 100x768)" in out
    assert "== roberta-base  (15 prompts, 100x768)" in out
    assert "== t5-small  (17 prompts, 100x512)" in out
    rows = [ln for ln in out.splitlines() if ln.startswith("  ") and "task=" in ln]
    assert len(rows) == 46
    assert any(ln.split()[0] == "samsumPromptT5Small" and "task=samsum" in ln and "family=generation" in ln
               for ln in rows)


def test_nearest_by_e_avg_stays_in_group(real_prompts_dir):
    index = index_library(real_prompts_dir)
    from core.metrics import e_avg
    near = index.nearest("SST2PromptRoberta", k=5, metric=e_avg)
    assert len(near) == 5 and list(near.columns) == ["name", "task", "e_avg"]
    assert set(near["name"]) <= set(index.groups()["roberta-base"]) - {"SST2PromptRoberta"}
    assert near["e_avg"].is_monotonic_decreasing
    a, b = index.prompts["SST2PromptRoberta"].tensor, index.prompts[near["name"][0]].tensor
    assert near["e_avg"][0] == pytest.approx(float(torch.cosine_similarity(a.mean(0), b.mean(0), dim=0)))


# --------------------------------------------------------------------------- indexing

def test_mixed_folder_lists_problems_and_goes_on(tmp_path):
    root = tmp_path / "lib"
    write_prompt(SoftPrompt(torch.randn(4, 384), name="a", task="t1", backbone=MINILM), root / "peft_a")
    (root / "sub" / "deeper").mkdir(parents=True)
    torch.save(torch.randn(5, 384), root / "sub" / "deeper" / "task_prompt")
    save_file({"w": torch.randn(6, 64)}, root / "sub" / "small.safetensors")
    for name in ("README.md", "LICENSE", "atlas.json", "config.json", ".hidden"):
        (root / name).write_text("not a prompt")
    (root / "broken.pt").write_bytes(b"PK\x03\x04garbage")
    (root / "notes.dat").write_bytes(b"plain text")
    index = index_library(root)
    assert set(index.prompts) == {"peft_a", "sub/deeper/task_prompt", "sub/small.safetensors"}
    assert sorted(Path(e.path).name for e in index.problems) == ["broken.pt", "notes.dat"]
    assert index.prompts["peft_a"].task == "t1" and index.prompts["peft_a"].fmt == "peft"
    assert index.group_of("sub/small.safetensors") == "unknown:d64"
    assert index.group_of("sub/deeper/task_prompt") == "unknown:d384"  # dims match MiniLM, but nobody said so


def test_groups_split_by_dim_within_a_backbone_and_names_stay_unique(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for root in (a, b):
        write_prompt(SoftPrompt(torch.randn(2, 8), name="p", backbone="my-model"), root / "p")
    write_prompt(SoftPrompt(torch.randn(2, 16), name="q", backbone="my-model"), a / "q")
    index = index_library([a, b, tmp_path / "missing"])
    assert set(index.prompts) == {"p", "q", "b/p"}
    assert index.groups() == {"my-model:8": ["b/p", "p"], "my-model:16": ["q"]}


def test_seq2seq_adapter_gives_two_library_entries(tmp_path):
    folder = tmp_path / "lib" / "s2s"
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps(
        {"peft_type": "PROMPT_TUNING", "task_type": "SEQ_2_SEQ_LM", "num_virtual_tokens": 3, "token_dim": 512,
         "base_model_name_or_path": "t5-small"}))
    save_file({"prompt_embeddings": torch.randn(6, 512)}, folder / "adapter_model.safetensors")
    index = index_library(tmp_path / "lib")
    assert set(index.prompts) == {"s2s/encoder", "s2s/decoder"}
    assert index.groups() == {"t5-small": ["s2s/decoder", "s2s/encoder"]}


def test_second_index_of_unchanged_folder_reads_nothing(tmp_path, monkeypatch):
    root = tmp_path / "lib"
    root.mkdir()
    for i in range(3):
        torch.save(torch.randn(4, 8), root / f"p{i}.pt")
    (root / "bad.pt").write_bytes(b"junk junk")
    calls = []
    real = library.read_prompts
    monkeypatch.setattr(library, "read_prompts", lambda p, **kw: calls.append(Path(p).name) or real(p, **kw))
    first = index_library(root)
    assert sorted(calls) == ["bad.pt", "p0.pt", "p1.pt", "p2.pt"]
    calls.clear()
    second = index_library(root)
    assert calls == [] and set(second.prompts) == set(first.prompts) and len(second.problems) == 1
    torch.save(torch.randn(5, 8), root / "p1.pt")  # size and mtime change
    third = index_library(root)
    assert calls == ["p1.pt"] and third.prompts["p1.pt"].L == 5
    assert second.content_hash() != third.content_hash()


def test_library_index_contract():
    index = LibraryIndex()
    assert index.groups() == {} and list(index.table.columns) == library.TABLE_COLUMNS and len(index.table) == 0


# --------------------------------------------------------------------------- uploads

def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for k, v in members.items():
            z.writestr(k, v)
    return buf.getvalue()


def test_add_upload_single_file_and_adapter_zips(tmp_path, user_lib):
    buf = io.BytesIO()
    torch.save(torch.randn(7, 384), buf)
    [p] = add_upload("C:\\Users\\me\\my_prompt.pt", buf.getvalue(), user_lib)  # browsers may send a path
    assert (user_lib / "my_prompt.pt").is_file() and p.L == 7 and p.origin == str(user_lib / "my_prompt.pt")

    src = write_prompt(SoftPrompt(torch.randn(4, 384), name="zipped", task="sent_tweet"), tmp_path / "zipped")
    files = {f.name: f.read_bytes() for f in src.iterdir()}
    [q] = add_upload("zipped.zip", _zip({f"zipped/{k}": v for k, v in files.items()}), user_lib)
    assert (user_lib / "zipped" / "adapter_config.json").is_file() and q.task == "sent_tweet"
    [r] = add_upload("flat_adapter.zip", _zip(files), user_lib)  # adapter files at the zip's top level
    assert (user_lib / "flat_adapter" / "adapter_model.safetensors").is_file() and r.name == "flat_adapter"

    before = tree_digest(user_lib)
    with pytest.raises(PromptError, match="already in the library") as e:
        add_upload("zipped.zip", _zip({f"zipped/{k}": v for k, v in files.items()}), user_lib)
    assert e.value.path == "zipped.zip" and tree_digest(user_lib) == before
    assert len(index_library(user_lib).prompts) == 5


def test_bad_uploads_change_nothing(corpus, user_lib, monkeypatch):
    before = tree_digest(user_lib)
    assert before  # non-empty: "unchanged" is a real check
    for case in corpus:
        with monkeypatch.context() as m:
            for k, v in case.env.items():
                m.setenv(k, v)
            with pytest.raises(PromptError) as e:
                add_upload(case.filename, case.data, user_lib)
        assert e.value.path == case.filename, case.name
        assert case.expect in e.value.problem, (case.name, str(e.value))
        assert tree_digest(user_lib) == before, case.name
    leftovers = [p.name for p in user_lib.parent.iterdir() if p.name.startswith(".atlas-upload-")]
    assert leftovers == []
    assert not (corpus[0].path.parent.parent / "PWNED").exists(), "a pickle executed code"
    assert not Path("/tmp/evil").exists()


def test_bad_uploads_via_cli(corpus, user_lib, tmp_path):
    """`library add` over every broken upload: one clear line each, non-zero exit, library unchanged."""
    incoming = tmp_path / "incoming"
    plain, capped = [], []
    for c in corpus:
        (incoming / c.name).mkdir(parents=True)
        (incoming / c.name / c.filename).write_bytes(c.data)
        (capped if c.env else plain).append(c)
    before = tree_digest(user_lib)
    r = run_cli("library", "add", "--dest", user_lib, *(incoming / c.name / c.filename for c in plain))
    assert r.returncode == 1
    for c in plain:
        line = next((ln for ln in r.stderr.splitlines() if ln.startswith(f"error: {c.filename}: ")), None)
        assert line and c.expect in line, (c.name, r.stderr)
    for c in capped:
        r = run_cli("library", "add", "--dest", user_lib, incoming / c.name / c.filename, env_extra=c.env)
        assert r.returncode == 1 and f"error: {c.filename}: " in r.stderr and c.expect in r.stderr
    assert "Traceback" not in r.stderr
    assert tree_digest(user_lib) == before
    assert not (corpus[0].path.parent.parent / "PWNED").exists()


def test_cli_index_reports_problems(tmp_path):
    (tmp_path / "lib").mkdir()
    torch.save(torch.randn(2, 8), tmp_path / "lib" / "ok.pt")
    (tmp_path / "lib" / "bad.safetensors").write_bytes(b"a,b\n1,2\n")
    r = run_cli("library", "index", tmp_path / "lib")
    assert r.returncode == 1
    assert "1 prompts in 1 group(s)" in r.stdout and "== unknown:d8" in r.stdout
    assert f"problem: {tmp_path / 'lib' / 'bad.safetensors'}: unknown format" in r.stderr


def test_reading_a_library_never_imports_torch(tmp_path):
    """The pages index libraries before their first paint; `import torch` there cost ~1.1 s of
    a 4 s first paint. Index, table and stored-map lookup must stay torch-free; asking for a
    prompt's ``.tensor`` is what imports it."""
    import subprocess
    import sys

    from core.config import REPO_ROOT
    code = ("import sys; from pathlib import Path; from core.library import index_library; "
            "from core import projection as proj; "
            "idx = index_library(['data/demo/prompts', 'data/demo/transfers']); idx.table; "
            "g = next(iter(idx.groups())); ps = idx.group_prompts(g); "
            "r = proj.lookup(ps, proj.ProjectionConfig(), group=g, precomputed_dir=Path('data/demo/projections')); "
            "assert len(idx.prompts) > 200 and r is not None, (len(idx.prompts), r); "
            "assert 'torch' not in sys.modules, 'torch imported while reading the library'; "
            "t = ps[0].tensor; assert 'torch' in sys.modules and t.dtype == sys.modules['torch'].float32; "
            "print('ok', len(idx.prompts))")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
                       env={**__import__("os").environ, "ATLAS_CACHE": str(tmp_path / "cache")})
    assert r.returncode == 0 and r.stdout.startswith("ok"), r.stderr[-2000:]


def test_soft_prompt_values_and_tensor_are_one_float32_copy():
    import numpy as np
    import torch

    from core.prompts import SoftPrompt
    src = torch.arange(12, dtype=torch.float64).reshape(3, 4)
    p = SoftPrompt(tensor=src, name="p")
    assert p.values.dtype == np.float32 and p.tensor.dtype == torch.float32 and (p.L, p.d) == (3, 4)
    src[0, 0] = 99.0  # a copy: the source is not aliased
    assert p.values[0, 0] == 0.0
    p.tensor[1, 1] = 7.0  # ... but tensor and values are the same numbers
    assert p.values[1, 1] == 7.0
    q = SoftPrompt(tensor=p.values.tolist(), name="q")
    assert q.content_hash() == p.content_hash()
    with pytest.raises(Exception, match="2-D"):
        SoftPrompt(tensor=np.zeros(5), name="bad")


def test_index_content_hash_is_remembered_and_follows_every_change(tmp_path):
    """The pages ask for the index's content hash on every rerun: it is remembered, and a new
    tensor, a rename, a new backbone or another prompt gives a new hash (as recomputing would)."""
    import numpy as np

    from core.library import LibraryIndex
    v = np.arange(12, dtype=np.float32).reshape(3, 4)
    ix = LibraryIndex(prompts={"a": SoftPrompt(tensor=v, name="a"), "b": SoftPrompt(tensor=v + 1, name="b")})

    def fresh() -> str:  # what an index of the same prompts computes from scratch
        return LibraryIndex(prompts=dict(ix.prompts)).content_hash()

    h0 = ix.content_hash()
    assert ix.content_hash() == h0 == fresh()
    ix.prompts["a"].tensor = v * 2  # new values
    assert ix.content_hash() not in (h0,) and ix.content_hash() == fresh()
    h1 = ix.content_hash()
    ix.prompts["a"].backbone = MINILM
    assert ix.content_hash() != h1 and ix.content_hash() == fresh()
    ix.prompts["c"] = ix.prompts.pop("b")  # renamed
    assert ix.content_hash() == fresh()
    ix.prompts["d"] = SoftPrompt(tensor=v, name="d")
    assert ix.content_hash() == fresh() and len({h0, h1, ix.content_hash()}) == 3
