"""Sentence-pair tasks end to end: read, tokenised as the tokenizer's pairs, trained, evaluated,
ranked, probed, hashed, cached and saved with both texts (issue 25).

    .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_pair_tasks.py
"""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from core.backbone import load_backbone
from core.config import demo_dir
from core.tasks import Split, Task, get_task, load_csv_task, register_task, task_data_hash

DEMO_PROMPTS = demo_dir() / "prompts"

# RTE-shaped rows: a premise, a hypothesis, entailment / not_entailment
PREMISES = ["The cat sat on the warm mat near the door all afternoon.",
            "The company reported record profits in the third quarter of the year.",
            "Heavy rain flooded the streets of the old town overnight.",
            "The museum opened a new wing dedicated to modern sculpture.",
            "She finished the marathon in under four hours despite the heat.",
            "The bridge was closed for repairs after the storm damaged it."]
HYP_YES = ["A cat was on a mat.", "The company made money.", "Streets were flooded.",
           "The museum has a new wing.", "She ran a marathon.", "The bridge was closed."]
HYP_NO = ["The cat was outside in the snow.", "The company lost money.", "The town had a drought.",
          "The museum closed down.", "She did not finish the race.", "The bridge was never damaged."]


def rte_rows(n: int = 48) -> list[tuple[int, str, str, str]]:
    rows = []
    for i in range(n):
        k = i % len(PREMISES)
        yes = (i // len(PREMISES)) % 2 == 0
        rows.append((i, f"{PREMISES[k]} ({i})", HYP_YES[k] if yes else HYP_NO[k],
                     "entailment" if yes else "not_entailment"))
    return rows


def write_rte(path: Path, rows=None) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter="\t")
        w.writerow(["index", "sentence1", "sentence2", "label"])
        w.writerows(rows or rte_rows())
    return path


@pytest.fixture(scope="module")
def bb():
    return load_backbone(None, "cpu")


@pytest.fixture
def rte(tmp_path):
    return load_csv_task(write_rte(tmp_path / "train.tsv"), text_col=["sentence1", "sentence2"], name="rte")


def test_pair_task_reads_both_texts_and_says_how_it_is_encoded(rte):
    assert rte.is_pair and rte.train.texts2 is not None
    by_first = {r[1]: (r[2], r[3]) for r in rte_rows()}
    for s in ("train", "validation", "test"):
        sp = rte.split(s)
        for i in range(len(sp)):
            second, label = by_first[sp.texts[i]]
            assert sp.texts2[i] == second and rte.labels[sp.labels[i]] == label
    assert rte.meta["pair"] == "sentence1 + sentence2" and rte.meta["truncation"] == "longest_first"
    assert any("longest-first" in n for n in rte.meta["notes"])
    assert sum(len(rte.split(s)) for s in ("train", "validation", "test")) == 48


def test_pair_tokenisation_is_the_tokenizers_pair_with_its_token_types(bb):
    a, b = "the cat sat on the mat", "a cat was on a mat"
    ids = bb.token_ids([a], 64, [b])[0]
    ref = bb.tokenizer(a, b)
    assert ids == ref["input_ids"]
    sep = bb.tokenizer.sep_token_id
    assert ids.count(sep) == 2 and ids[0] == bb.tokenizer.cls_token_id
    # the token types the model gets, read back from the ids, are the tokenizer's own
    t = torch.tensor([ids + [0, 0]])
    m = torch.tensor([[1] * len(ids) + [0, 0]])
    assert bb.token_types(t, m)[0, :len(ids)].tolist() == ref["token_type_ids"]
    assert bb.token_types(t, m)[0, len(ids):].tolist() == [0, 0]
    # a single text: all type 0 (what the model uses when given none)
    single = torch.tensor([bb.token_ids([a], 64)[0]])
    assert bb.token_types(single, torch.ones_like(single)).sum() == 0


def test_over_long_pair_is_truncated_longest_first_and_keeps_both(bb):
    long_a = " ".join(["premise"] * 80)
    short_b = "short hypothesis here"
    ids = bb.token_ids([long_a], 32, [short_b])[0]
    assert len(ids) == 32
    sep = bb.tokenizer.sep_token_id
    first_sep = ids.index(sep)
    second = ids[first_sep + 1:-1]
    assert bb.tokenizer.decode(second) == short_b          # the short part whole
    assert 0 < first_sep - 1 < 80                           # the long part cut, not dropped


def test_pair_task_trains_10_steps_with_pairs_in_every_batch(bb, rte, monkeypatch):
    from core.training import TrainConfig, train
    seen = []
    orig = bb._forward

    def spy(*args, **kw):
        if kw.get("token_type_ids") is not None:   # what the model itself receives
            seen.append(kw["token_type_ids"].detach().cpu())
        return orig(*args, **kw)

    hidden_ids = []
    orig_hidden = bb.hidden

    def hidden_spy(input_ids, attention_mask, prompt=None):
        if prompt is not None:  # task rows (the label descriptions are embedded without a prompt)
            hidden_ids.append(input_ids.detach().cpu())
        return orig_hidden(input_ids, attention_mask, prompt)

    monkeypatch.setattr(bb, "_forward", spy)
    monkeypatch.setattr(bb, "hidden", hidden_spy)
    cfg = TrainConfig(task="rte", method="scratch", steps=10, batch_size=4, train_size=16, val_size=8, test_size=8,
                      eval_every=0, eval_at_start=False, seed=0, prompt_length=4)
    res = train(cfg, backbone=bb, task=rte)
    assert res.steps == 10
    sep = bb.tokenizer.sep_token_id
    # every forward is a batch of pairs: two separators per row, token type 1 after the first one
    assert len(hidden_ids) >= 10
    for ids in hidden_ids:
        assert ((ids == sep).sum(1) == 2).all()
    L = 4
    pair_forwards = [tt for tt in seen if (tt.sum(1) > 0).all()]
    assert len(pair_forwards) >= 10              # the 10 steps' batches: every row has a second segment
    for tt in pair_forwards:
        assert (tt[:, :L] == 0).all()            # prompt positions first, type 0
    # the training rows are the task's pairs: the first batch row decodes to a premise + its hypothesis
    row = [x for x in hidden_ids[0][0].tolist() if x != bb.tokenizer.pad_token_id]
    text = bb.tokenizer.decode(row, skip_special_tokens=False)
    assert text.count(bb.tokenizer.sep_token) == 2


def test_packed_training_takes_pairs_too(bb, rte):
    from core.training import TrainConfig, train_packed
    cfgs = [TrainConfig(task="rte", method="scratch", steps=3, batch_size=4, train_size=8, val_size=4, test_size=4,
                        eval_every=0, eval_at_start=False, seed=s, prompt_length=4) for s in (0, 1)]
    outs = train_packed(cfgs, backbone=bb, tasks=[rte, rte])
    assert all(o.error is None for o in outs), [o.error for o in outs]


def test_evaluate_and_data_hashes_cover_the_second_text(bb, rte):
    from core.metrics.activations import zs_data_key
    from core.ranking import task_data_hash as rank_hash
    from core.training import evaluate
    acc = evaluate(None, rte, "validation", bb)
    assert 0.0 <= acc <= 1.0
    changed = Task(name=rte.name, family=None, labels=rte.labels, descriptions=rte.descriptions, train=rte.train,
                   validation=Split(list(rte.validation.texts), list(rte.validation.labels),
                                    [t + " indeed" if i == 0 else t for i, t in enumerate(rte.validation.texts2)]),
                   test=rte.test)
    assert task_data_hash(changed) != task_data_hash(rte)
    assert rank_hash(changed, 50) != rank_hash(rte, 50)
    assert zs_data_key(changed) != zs_data_key(rte)
    # a single-text task keeps the keys it always had (no second text, same bytes hashed)
    single = Task(name="s", family=None, labels=["a", "b"], descriptions=["a", "b"],
                  train=Split(["x", "y"], [0, 1]), validation=Split(["x", "y"], [0, 1]), test=Split(["x", "y"], [0, 1]))
    import hashlib
    h = hashlib.sha256(json.dumps([single.labels, single.descriptions]).encode())
    for s in ("train", "validation", "test"):
        h.update(f"\n[{s}]\n".encode())
        for t, y in zip(["x", "y"], [0, 1]):
            h.update(f"{y}\t{t}\n".encode())
    assert task_data_hash(single) == h.hexdigest()[:16]


def test_registered_pair_task_round_trips_and_is_exported_with_both_texts(tmp_path):
    from core.tasks import export_task
    register_task("rte", write_rte(tmp_path / "train.tsv"), text_col=["sentence1", "sentence2"])
    t = get_task("rte")
    assert t.is_pair and len(t.validation.texts2) == len(t.validation)
    out = export_task("rte", tmp_path / "bundle")
    spec = json.loads(out.read_text())
    first = json.loads((out.parent / spec["data"] / "train.jsonl").read_text().splitlines()[0])
    assert set(first) == {"text", "text2", "label"}


def test_cli_text_col_twice_and_show(tmp_path, capsys):
    from core.tasks import cli
    path = write_rte(tmp_path / "train.tsv")
    assert cli("tasks", ["add", "rte", str(path), "--text-col", "sentence1", "--text-col", "sentence2"]) == 0
    assert cli("tasks", ["show", "rte"]) == 0
    out = capsys.readouterr().out
    assert "sentence pair: sentence1 + sentence2" in out and "longest_first" in out and " || " in out


def test_zs_metric_on_a_pair_target(bb, rte, monkeypatch, tmp_path):
    import core.metrics as M
    from core.training import evaluate
    monkeypatch.setattr("core.metrics.activations._get_task", lambda name: rte)
    monkeypatch.setenv("ATLAS_CACHE", str(tmp_path))
    E = bb.word_embeddings.weight.detach()
    g = torch.Generator().manual_seed(0)
    ps = [SimpleNamespace(name=f"p{i}", tensor=E[torch.randint(0, E.shape[0], (4,), generator=g)].clone(),
                          backbone=bb.name, task="rte", method=None, family=None) for i in range(2)]
    z = M.zs(ps, bb)
    maj = rte.majority_rate("validation")
    assert z[0, 0] == pytest.approx(evaluate(ps[0].tensor, rte, "validation", bb) - maj)
    # the probe-set metrics read the pairs as pairs
    got = M.panda_sim(ps, bb, target_faithful=True, k=2)
    assert np.isfinite(got).all()


def test_rank_sources_on_a_pair_target(tmp_path, monkeypatch):
    from core.ranking import RankSettings, rank_sources
    register_task("rte", write_rte(tmp_path / "train.tsv", rte_rows(96)), text_col=["sentence1", "sentence2"])
    monkeypatch.setenv("ATLAS_CACHE", str(tmp_path / "cache"))
    lib = tmp_path / "lib"
    for n in ("sent_movie", "topic_usenet"):
        shutil.copytree(DEMO_PROMPTS / n, lib / n)
    r = rank_sources("rte", libraries=[lib], settings=RankSettings(max_examples=20))
    assert r.computed == 2 and set(r.table["source"]) == {"sent_movie", "topic_usenet"}
    from core.prompts import read_prompt
    from core.training import evaluate
    t = get_task("rte")
    for _, row in r.table.iterrows():
        acc = evaluate(read_prompt(row["path"]).tensor, t, "validation", limit=20)
        assert row["accuracy"] == pytest.approx(acc, abs=1e-9)


def test_probe_set_carries_pairs(rte, monkeypatch):
    from core.metrics.activations import probe_set
    monkeypatch.setattr("core.metrics.activations._get_task", lambda name: rte)
    texts, owner, _ = probe_set(["rte"], k=3)
    assert len(texts) == 3 and all(isinstance(t, tuple) and len(t) == 2 for t in texts)
