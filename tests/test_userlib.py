"""core.userlib: describe (task/family/backbone in atlas.json), rename and delete your own prompts.

    .venv/bin/python -m pytest tests/test_userlib.py -q
"""
from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
import torch

from badinput import tree_digest
from core import collection as C
from core.__main__ import main as cli_main
from core.config import user_library_dir
from core.library import add_upload, index_library
from core.prompts import DEFAULT_BACKBONE as MINILM
from core.prompts import PromptError, SoftPrompt, write_prompt
from core.userlib import EditError, PromptMeta, backbones_for, delete, describe, rename, upload, why_not_editable


def _pt(shape) -> tuple[bytes, np.ndarray]:
    t = torch.randn(*shape)
    buf = io.BytesIO()
    torch.save(t, buf)
    return buf.getvalue(), t.numpy()


def _mine() -> dict:
    return C.index([C.LIBRARY, C.RUNS]).prompts


def test_upload_with_metadata_stores_it_beside_the_prompt():
    lib = user_library_dir()
    data, values = _pt((20, 384))
    meta = PromptMeta(task="sent_tweet", family="sentiment", backbone=MINILM)
    [p] = upload("mine.pt", data, lib, meta)
    # a plain file has no folder for atlas.json: it is stored as an adapter folder, same values
    assert sorted(x.name for x in lib.iterdir()) == ["mine"]
    saved = json.loads((lib / "mine" / "atlas.json").read_text())
    assert (saved["task"], saved["family"], saved["backbone"]) == ("sent_tweet", "sentiment", MINILM)
    assert "mine.pt (torch)" in saved["settings"]["converted_from"]
    index = index_library(lib)
    q = index.prompts["mine"]
    assert (q.task, q.family, q.backbone) == ("sent_tweet", "sentiment", MINILM) and p.task == "sent_tweet"
    assert np.array_equal(q.values, values)
    assert "no model named" not in q.settings.get("note", "")  # the plain file's note no longer holds
    assert index.group_of("mine") == MINILM  # the index groups it with MiniLM, not unknown:d384
    row = index.table.set_index("name").loc["mine"]
    assert (row["task"], row["backbone"], row["group"]) == ("sent_tweet", MINILM, MINILM)


def test_upload_without_metadata_and_unknown_width():
    lib = user_library_dir()
    data, _ = _pt((20, 500))
    [p] = add_upload("wide.pt", data, lib)  # a width no model we know has: read, in its own group
    assert index_library(lib).group_of("wide.pt") == "unknown:d500" and p.backbone is None
    before = tree_digest(lib)
    with pytest.raises(PromptError) as e:  # naming a known backbone of another width is refused
        upload("wide2.pt", data, lib, PromptMeta(backbone=MINILM))
    assert str(e.value) == (f"wide2.pt: backbone {MINILM} has width 384, the prompt's is 500; "
                            "choose a backbone of width 500 or 'unknown'")
    assert tree_digest(lib) == before
    [q] = upload("wide3.pt", data, lib, PromptMeta(task="my_task", backbone="unknown"))
    index = index_library(lib)
    assert index.group_of("wide3") == "unknown:d500" and q.task == "my_task" and q.backbone is None
    assert backbones_for(500) == ["unknown"] and backbones_for(384) == [MINILM, "unknown"]


def test_upload_adapter_zip_with_metadata_merges_atlas_json(tmp_path):
    src = write_prompt(SoftPrompt(torch.randn(4, 384), name="zipped", task="old", method="pot", score=0.5),
                       tmp_path / "zipped")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for f in src.iterdir():
            z.write(f, f"zipped/{f.name}")
    [p] = upload("zipped.zip", buf.getvalue(), user_library_dir(), PromptMeta(task="sent_movie"))
    assert (p.task, p.method, p.score) == ("sent_movie", "pot", 0.5)  # the rest of atlas.json kept


def test_meta_validation_messages():
    with pytest.raises(EditError, match="task is empty"):
        PromptMeta(task="  ")
    with pytest.raises(EditError, match="one line of at most 100"):
        PromptMeta(family="a\nb")
    assert PromptMeta(backbone="Unknown").changes() == {"backbone": None}
    assert PromptMeta().is_empty()


def test_describe_rename_delete_in_my_library_and_my_runs():
    lib = user_library_dir()
    data, values = _pt((6, 384))
    add_upload("loose.pt", data, lib)
    write_prompt(SoftPrompt(torch.randn(5, 384), name="r-abc", task="sent_tweet", method="scratch"),
                 C.runs_dir() / "r-abc")

    # describe a plain file later: stored as an adapter folder, same values
    describe(_mine()["loose.pt"], PromptMeta(task="spam_sms", family="spam"))
    got = _mine()["loose"]
    assert (got.task, got.family) == ("spam_sms", "spam") and np.array_equal(got.values, values)
    assert not (lib / "loose.pt").exists()

    # rename: the folder and the name in atlas.json; a taken or bad name is refused, nothing changed
    rename(_mine()["loose"], "spam prompt")
    assert "spam prompt" in _mine() and json.loads((lib / "spam prompt" / "atlas.json").read_text())["name"] \
        == "spam prompt"
    with pytest.raises(EditError, match="already taken"):
        rename(_mine()["spam prompt"], "runs")
    with pytest.raises(EditError, match="a name is at most"):
        rename(_mine()["spam prompt"], "../escape")
    # a run's prompt (my runs) too; the run that made it follows it
    from core.runs.store import RunStore
    store = RunStore()
    store.add_run("r-abc", {"method": "scratch", "target": "sent_tweet"})
    store.update_run("r-abc", status="finished", prompt_path=str(C.runs_dir() / "r-abc"), test_score=0.5)
    rename(_mine()["r-abc"], "tweet-scratch")
    assert _mine()["tweet-scratch"].task == "sent_tweet" and (C.runs_dir() / "tweet-scratch").is_dir()
    assert store.get_run("r-abc")["prompt_path"] == str(C.runs_dir().resolve() / "tweet-scratch")

    # a plain file keeps its suffix on rename
    add_upload("other.pt", data, lib)
    rename(_mine()["other.pt"], "renamed")
    assert (lib / "renamed.pt").is_file() and "renamed.pt" in _mine()

    delete(_mine()["renamed.pt"])
    delete(_mine()["tweet-scratch"])
    assert sorted(_mine()) == ["spam prompt"]
    assert [p.name for p in lib.iterdir() if p.name.startswith(".")] == []  # nothing half-deleted left


def test_demo_and_opened_folders_are_read_only(tmp_path, monkeypatch):
    folder = tmp_path / "opened"
    write_prompt(SoftPrompt(torch.randn(4, 384), name="theirs"), folder / "theirs")
    p = index_library(folder).prompts["theirs"]
    reason = why_not_editable(p)
    assert reason.startswith("theirs is in a folder you opened or added") and "my library" in reason
    with pytest.raises(EditError, match="folder you opened"):
        delete(p)
    assert (folder / "theirs").is_dir()
    demo = tmp_path / "demo"
    monkeypatch.setenv("ATLAS_DEMO", str(demo))
    write_prompt(SoftPrompt(torch.randn(4, 384), name="d"), demo / "prompts" / "d")
    q = index_library(demo / "prompts").prompts["d"]
    assert why_not_editable(q).startswith("d is in the demo, which the Atlas never changes")
    with pytest.raises(EditError):
        rename(q, "x")


def test_runs_keep_the_source_name_after_rename_and_delete():
    """A run records its source by the name it had at launch (runs.validate_spec -> source_names);
    renaming or deleting that prompt later leaves the run's record and results as they were."""
    from core.runs.store import RunStore
    from core.runs.spec import RunSpec, resolve_prompt_ref

    lib = user_library_dir()
    write_prompt(SoftPrompt(torch.randn(4, 384), name="src", task="sent_movie", backbone=MINILM), lib / "src")
    path, prompt = resolve_prompt_ref("src")  # what validate_spec records
    spec = RunSpec(method="pot", target="sent_tweet", sources=[str(path)], source_names=[prompt.name])
    store = RunStore()
    store.add_run("r-1", spec.to_dict())
    store.update_run("r-1", status="finished", val_score=0.7, test_score=0.6)
    rename(_mine()["src"], "src-v2")
    rid_row = store.results_table().set_index("run_id").loc["r-1"]
    assert rid_row["source"] == "src" and rid_row["test_score"] == 0.6
    delete(_mine()["src-v2"])
    assert store.results_table().set_index("run_id").loc["r-1", "source"] == "src"
    assert store.get_run("r-1")["spec"]["source_names"] == ["src"]


def test_cli_tag_rename_delete(capsys, tmp_path):
    lib = user_library_dir()
    write_prompt(SoftPrompt(torch.randn(4, 384), name="c"), lib / "c")
    assert cli_main(["library", "tag", "c", "--task", "sent_tweet", "--backbone", MINILM]) == 0
    assert _mine()["c"].task == "sent_tweet"
    assert cli_main(["library", "tag", "c", "--backbone", "roberta-base"]) == 1
    assert "backbone roberta-base has width 768, the prompt's is 384" in capsys.readouterr().err
    assert cli_main(["library", "rename", "c", "d"]) == 0 and "d" in _mine()
    assert cli_main(["library", "delete", "nope"]) == 1
    assert "'nope': no prompt of that name in my library or my runs" in capsys.readouterr().err
    assert cli_main(["library", "delete", "d"]) == 0 and _mine() == {}
    # `library add` takes the same metadata (written before the file lands)
    src = tmp_path / "incoming.pt"
    torch.save(torch.randn(3, 384), src)
    assert cli_main(["library", "add", str(src), "--task", "spam_sms", "--backbone", "roberta-base"]) == 1
    assert "incoming.pt: backbone roberta-base has width 768, the prompt's is 384" in capsys.readouterr().err
    assert _mine() == {}
    assert cli_main(["library", "add", str(src), "--task", "spam_sms"]) == 0
    assert (_mine()["incoming"].task, _mine()["incoming"].family) == ("spam_sms", "spam")


def test_a_folder_of_several_prompts_is_changed_one_prompt_at_a_time():
    """Deleting or renaming one file of an uploaded folder never touches its neighbours."""
    lib = user_library_dir()
    (lib / "batch").mkdir(parents=True)
    torch.save(torch.randn(4, 384), lib / "batch" / "a.pt")
    torch.save(torch.randn(4, 384), lib / "batch" / "b.pt")
    delete(_mine()["batch/a.pt"])
    assert sorted(_mine()) == ["batch/b.pt"]
    rename(_mine()["batch/b.pt"], "c")
    assert sorted(_mine()) == ["batch/c.pt"]
    torch.save(torch.randn(4, 384), lib / "batch" / "d.pt")
    (lib / "batch" / "broken.pt").write_bytes(b"not a prompt")
    describe(_mine()["batch/d.pt"], PromptMeta(task="x"))  # only d.pt becomes an adapter folder
    assert sorted(_mine()) == ["batch/c.pt", "batch/d"] and _mine()["batch/d"].task == "x"
    assert _mine()["batch/c.pt"].task is None
    from core.userlib import name_after
    assert name_after(_mine()["batch/c.pt"], lib / "batch" / "e.pt") == "batch/e.pt"
    delete(_mine()["batch/c.pt"])  # the folder still holds d/ and a broken file: only c.pt goes
    delete(_mine()["batch/d"])
    assert sorted(p.name for p in (lib / "batch").iterdir()) == ["broken.pt"]


def test_a_thunlp_named_prompt_keeps_its_metadata_through_a_rename():
    lib = user_library_dir()
    (lib / "SST2PromptRoberta").mkdir(parents=True)
    torch.save(torch.randn(10, 768), lib / "SST2PromptRoberta" / "task_prompt")
    p = _mine()["SST2PromptRoberta"]
    assert (p.task, p.backbone) == ("SST2", "roberta-base")
    with pytest.raises(EditError, match="save its description first"):
        rename(p, "sst2-mine")
    describe(p, PromptMeta(family="sentiment"))  # now an adapter folder whose atlas.json holds task + backbone
    rename(_mine()["SST2PromptRoberta"], "sst2-mine")
    q = _mine()["sst2-mine"]
    assert (q.task, q.backbone, q.family) == ("SST2", "roberta-base", "sentiment")


# --------------------------------------------------------------------------- issue 28: a lone prompt
def test_describing_a_plain_file_inherits_the_task_family_and_stores_its_final_name(tmp_path):
    """Issue 28: a [20, 384] .npy described as spam_sms (no family given) got no family, and its atlas.json
    held the temp folder's name `.atlas-new-af5023bc-my_review_prompt`."""
    lib = user_library_dir()
    lib.mkdir(parents=True, exist_ok=True)
    np.save(tmp_path / "my_review_prompt.npy", np.random.default_rng(0).standard_normal((20, 384)).astype("float32"))
    add_upload("my_review_prompt.npy", (tmp_path / "my_review_prompt.npy").read_bytes(), lib)
    describe(_mine()["my_review_prompt.npy"], PromptMeta(task="spam_sms", backbone=MINILM))
    saved = json.loads((lib / "my_review_prompt" / "atlas.json").read_text())
    assert saved["name"] == "my_review_prompt" and not saved["name"].startswith(".atlas")
    assert (saved["task"], saved["family"]) == ("spam_sms", "spam")  # the registered task's family
    q = _mine()["my_review_prompt"]
    assert (q.task, q.family, q.backbone) == ("spam_sms", "spam", MINILM)
    # the same on upload (a staged folder: its temp name never reaches atlas.json either)
    [p] = upload("second.pt", _pt((20, 384))[0], lib, PromptMeta(task="sent_tweet", backbone=MINILM))
    saved = json.loads((lib / "second" / "atlas.json").read_text())
    assert saved["name"] == "second" and p.name == "second"
    assert not any(".atlas-" in json.dumps(json.loads(f.read_text())) for f in lib.rglob("atlas.json"))


def test_the_cli_tag_inherits_the_family_too(capsys):
    lib = user_library_dir()
    add_upload("tagme.pt", _pt((20, 384))[0], lib)
    assert cli_main(["library", "tag", "tagme.pt", "--task", "sent_movie"]) == 0
    assert (_mine()["tagme"].task, _mine()["tagme"].family) == ("sent_movie", "sentiment")


def test_a_lone_prompt_says_which_backbones_here_have_its_width_and_how_to_describe_it():
    from core.userlib import backbones_here, lone_hint

    lib = user_library_dir()
    add_upload("alone.pt", _pt((20, 384))[0], lib)
    add_upload("odd.pt", _pt((20, 500))[0], lib)
    index = index_library(lib)
    assert (MINILM, "bundled") in backbones_here(384)
    hint = lone_hint(index.prompts["alone.pt"], index.group_of("alone.pt"))
    assert "No other prompt in `unknown:d384`" in hint and f"`{MINILM}` (bundled)" in hint
    assert "Describe, rename or delete this prompt" in hint and f"--backbone {MINILM}" in hint
    odd = lone_hint(index.prompts["odd.pt"], index.group_of("odd.pt"))
    assert "No backbone on this machine has width 500" in odd and "bundled" not in odd


def test_nearest_prompts_say_when_nothing_is_close():
    """Against the spread of the group's own pairs: four prompts near one direction, one random."""
    from core.metrics import e_avg

    lib = user_library_dir()
    rng = np.random.default_rng(1)
    base = rng.standard_normal(384)
    lib.mkdir(parents=True, exist_ok=True)
    for i in range(4):
        np.save(lib / f"near{i}.npy", (base + 0.3 * rng.standard_normal((20, 384))).astype("float32"))
    np.save(lib / "random.npy", rng.standard_normal((20, 384)).astype("float32"))
    index = index_library(lib)
    note = index.closeness("random.npy", metric=e_avg)
    assert note.startswith("Nothing here is close: the nearest (") and "median" in note
    close = index.closeness("near0.npy", metric=e_avg)
    assert close.startswith("3 of 4 at or above the median")
    index_two = index_library([lib / "near0.npy", lib / "near1.npy"])
    assert index_two.closeness("near0.npy", metric=e_avg) is None  # one pair: no spread to judge by
