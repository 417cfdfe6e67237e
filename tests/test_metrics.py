"""core.metrics against plain per-pair loops, hand-made tables, scipy, and the real thunlp prompts."""
from __future__ import annotations

import math
import zlib
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr

from core import metrics as M


def sp(name, tensor, backbone="bb-a", task=None, method=None, family=None):
    """A SoftPrompt-like object (the metrics only read these attributes)."""
    return SimpleNamespace(name=name, tensor=tensor, backbone=backbone, task=task, method=method, family=family)


def rand_prompts(n=5, L=6, d=12, seed=0, lengths=None):
    g = torch.Generator().manual_seed(seed)
    lengths = lengths or [L] * n
    return [sp(f"p{i}", torch.randn(l, d, generator=g) * (1 + i)) for i, l in enumerate(lengths)]


# ---- plain loop references, straight from DESIGN.md §3 ----------------------------------------
def ref_e_avg(a, b):
    return F.cosine_similarity(a.mean(0).double(), b.mean(0).double(), dim=0).item()


def ref_e_tok(a, b):
    return float(np.mean([F.cosine_similarity(a[i].double(), b[j].double(), dim=0).item()
                          for i in range(a.shape[0]) for j in range(b.shape[0])]))


def ref_e_flat(a, b):
    if a.shape != b.shape:
        return math.nan
    return F.cosine_similarity(a.reshape(-1).double(), b.reshape(-1).double(), dim=0).item()


def ref_euclid(a, b):
    if a.shape != b.shape:
        return math.nan
    return 1.0 / (1.0 + torch.linalg.vector_norm(a.double() - b.double()).item())


def ref_tok_max(a, b):  # a = source, b = target: each target token's best source-token cosine
    return float(np.mean([max(F.cosine_similarity(a[i].double(), b[j].double(), dim=0).item()
                              for i in range(a.shape[0])) for j in range(b.shape[0])]))


REFS = {"e_avg": ref_e_avg, "e_tok": ref_e_tok, "e_flat": ref_e_flat, "euclid": ref_euclid,
        "tok_max": ref_tok_max}


@pytest.mark.parametrize("metric", M.PROMPT_METRICS)
@pytest.mark.parametrize("lengths", [None, [6, 6, 4, 6, 3]], ids=["equal_L", "mixed_L"])
def test_prompt_metric_equals_loop(metric, lengths):
    prompts = rand_prompts(lengths=lengths)
    prompts.append(sp("dup", prompts[0].tensor + 1e-4))  # a near-duplicate: the hard case for euclid
    got = M.compute_matrix(metric, prompts, cache=False)
    assert list(got.index) == list(got.columns) == [p.name for p in prompts]
    ref = np.array([[REFS[metric](a.tensor, b.tensor) for b in prompts] for a in prompts])
    assert np.array_equal(np.isnan(got.values), np.isnan(ref))
    np.testing.assert_allclose(got.values[~np.isnan(ref)], ref[~np.isnan(ref)], atol=1e-6, rtol=0)


@pytest.mark.parametrize("metric", M.PROMPT_METRICS)
def test_symmetric_and_two_clusters(metric):
    g = torch.Generator().manual_seed(1)
    centres = [torch.randn(8, 16, generator=g) for _ in range(2)]
    prompts = [sp(f"{c}{i}", centres[c] + 0.3 * torch.randn(8, 16, generator=g)) for c in range(2) for i in range(4)]
    m = M.compute_matrix(metric, prompts, cache=False).values
    if M.METRICS[metric].symmetric:  # tok_max is directed (source -> target tokens): its own test
        np.testing.assert_allclose(m, m.T, atol=1e-12)
    label = np.array([0] * 4 + [1] * 4)
    same = label[:, None] == label[None, :]
    off = ~np.eye(8, dtype=bool)
    within, across = m[same & off], m[~same]
    assert within.min() > across.max(), f"{metric}: within {within.min():.3f} vs across {across.max():.3f}"
    # clustering puts each group together
    order = M.cluster(pd.DataFrame(m, index=[p.name for p in prompts], columns=[p.name for p in prompts])).rows
    firsts = [name[0] for name in order]
    assert firsts in (["0"] * 4 + ["1"] * 4, ["1"] * 4 + ["0"] * 4)


def test_mixed_backbones_are_split_with_a_clear_message():
    a = rand_prompts(3, d=8, seed=1)
    b = [sp(f"r{i}", torch.randn(4, 8), backbone="roberta-base") for i in range(2)]
    c = [sp("u0", torch.randn(4, 8), backbone=None), sp("u1", torch.randn(4, 5), backbone=None)]
    groups = M.split_groups(a + b + c)
    assert {g: [p.name for p in ps] for g, ps in groups.items()} == {
        "bb-a": ["p0", "p1", "p2"], "roberta-base": ["r0", "r1"], "unknown:d8": ["u0"], "unknown:d5": ["u1"]}
    with pytest.raises(M.MixedBackboneError) as e:
        M.compute_matrix("e_avg", a + b, cache=False)
    msg = str(e.value)
    assert "different backbones" in msg and "bb-a (3 prompts)" in msg and "roberta-base (2 prompts)" in msg
    ok, why = M.metric_status("e_tok", a + b)
    assert not ok and "different backbones" in why
    # each group alone works
    for ps in groups.values():
        assert M.compute_matrix("e_avg", ps, cache=False).shape == (len(ps), len(ps))


def test_backbone_metric_without_backbone_says_so():
    prompts = [sp(f"r{i}", torch.randn(4, 768), backbone="roberta-base") for i in range(2)]
    ok, why = M.metric_status("on", prompts)
    assert not ok and "needs backbone roberta-base, not available offline" in why
    with pytest.raises(M.BackboneUnavailable, match="needs backbone roberta-base, not available offline"):
        M.compute_matrix("on", prompts, cache=False)
    ok, why = M.metric_status("e_avg", prompts)
    assert ok and why == ""
    ok, why = M.metric_status("e_flat", prompts + [sp("short", torch.randn(2, 768), backbone="roberta-base")])
    assert ok and "equal length" in why


def test_cache_by_content_hash(tmp_path, monkeypatch):
    monkeypatch.setenv("ATLAS_CACHE", str(tmp_path))
    prompts = rand_prompts(4)
    m1 = M.compute_matrix("e_avg", prompts)
    files = list((tmp_path / "metrics").glob("e_avg-*.npy"))
    assert len(files) == 1
    # a cached file is what the next call returns (poison it to prove it is read)
    poisoned = m1.to_numpy().copy()
    poisoned[0, 1] = 42.0
    np.save(files[0], poisoned)
    again = M.compute_matrix("e_avg", prompts)
    assert again.iloc[0, 1] == 42.0 and list(again.index) == list(m1.index) == list(again.columns)
    assert M.cached_matrix("e_avg", prompts).iloc[0, 1] == 42.0
    np.testing.assert_allclose(M.compute_matrix("e_avg", prompts, cache=False).values, m1.values)
    # a broken or wrongly shaped cache file is recomputed and replaced, never shown
    np.save(files[0], np.zeros((2, 2)))
    assert M.cached_matrix("e_avg", prompts) is None
    np.testing.assert_allclose(M.compute_matrix("e_avg", prompts).values, m1.values)
    files[0].write_bytes(b"not an npy file")
    np.testing.assert_allclose(M.compute_matrix("e_avg", prompts).values, m1.values)
    # changed content -> a new key, a new file
    prompts[0].tensor = prompts[0].tensor + 1.0
    M.compute_matrix("e_avg", prompts)
    assert len(list((tmp_path / "metrics").glob("e_avg-*.npy"))) == 2


# ---- measured + validation ------------------------------------------------------------------------
def results_table():
    """Hand-made runs: 2 targets x 2 seeds, sources s1, s2, generic; one failed run to ignore."""
    rows = []
    scratch = {("t1", 0): 0.50, ("t1", 1): 0.60, ("t2", 0): 0.80, ("t2", 1): 0.80}
    for (t, seed), v in scratch.items():
        rows.append(dict(run_id=f"sc-{t}-{seed}", method="scratch", source="", target=t, seed=seed, test_score=v))
    score = {("s1", "t1", 0): 0.60, ("s1", "t1", 1): 0.66, ("s2", "t1", 0): 0.45, ("s2", "t1", 1): 0.60,
             ("generic", "t1", 0): 0.55, ("generic", "t1", 1): 0.60,
             ("s1", "t2", 0): 0.88, ("s2", "t2", 0): 0.84, ("s2", "t2", 1): 0.76}
    for (s, t, seed), v in score.items():
        rows.append(dict(run_id=f"pot-{s}-{t}-{seed}", method="pot", source=s, target=t, seed=seed, test_score=v))
    rows.append(dict(run_id="panda-1", method="panda", source="s1", target="t1", seed=0, test_score=0.70))
    rows.append(dict(run_id="bad", method="pot", source="s1", target="t2", seed=1, test_score=0.1, status="failed"))
    df = pd.DataFrame(rows)
    df["status"] = df["status"].fillna("finished")
    df["steps"], df["train_size"] = 300, np.nan
    return df


def test_measured_from_hand_made_results():
    m = M.measured(results_table())
    assert m.method == "pot"
    g = {("s1", "t1"): [0.1 / 0.5, 0.06 / 0.6], ("s2", "t1"): [-0.05 / 0.5, 0.0],
         ("generic", "t1"): [0.05 / 0.5, 0.0], ("s1", "t2"): [0.08 / 0.8], ("s2", "t2"): [0.04 / 0.8, -0.04 / 0.8]}
    for (s, t), vals in g.items():
        assert m.mean.at[s, t] == pytest.approx(np.mean(vals))
        assert m.n.at[s, t] == len(vals)
        if len(vals) > 1:
            assert m.std.at[s, t] == pytest.approx(np.std(vals, ddof=1))
        else:
            assert np.isnan(m.std.at[s, t])
    assert np.isnan(m.mean.at["generic", "t2"])
    # noise band: std over seeds of scratch / its mean
    assert m.noise["t1"] == pytest.approx(np.std([0.5, 0.6], ddof=1) / 0.55)
    # t2's two scratch seeds agree exactly: the band is unknown (issue 23), never 0 (any gain "real")
    assert np.isnan(m.noise["t2"])
    inside = m.inside_noise()
    assert bool(inside.at["s2", "t1"]) and not bool(inside.at["s1", "t1"])  # |-0.05| <= 0.129 ; 0.15 > 0.129
    assert not bool(inside.at["s1", "t2"])
    # gain over the generic control (same target and seed)
    assert m.generic == ["generic"]
    assert m.vs_generic.at["s1", "t1"] == pytest.approx(np.mean([0.05 / 0.55, 0.06 / 0.60]))
    assert "bad" not in set(m.runs["run_id"])
    # another method; budgets must match: a scratch run at another step count is no baseline
    p = M.measured(results_table(), method="panda")
    assert p.mean.at["s1", "t1"] == pytest.approx(0.2 / 0.5)
    df = results_table()
    df.loc[df.run_id == "sc-t1-0", "steps"] = 100
    assert M.measured(df).n.at["s1", "t1"] == 1
    assert M.compute_matrix("measured", results=results_table()).equals(m.mean)


def test_validation_agrees_with_scipy_on_hand_made_cases():
    sources = ["a", "b", "c", "d", "t1"]
    meas = pd.DataFrame({"t1": [0.30, 0.10, -0.05, 0.20, 0.9], "t2": [0.0, 0.1, 0.2, 0.3, 0.1]}, index=sources)
    pred = pd.DataFrame({"t1": [0.9, 0.2, 0.1, 0.5, 1.0], "t2": [0.4, 0.3, 0.2, 0.1, 0.0]}, index=sources)
    per = M.validate(pred, meas, source_task={"t1": "t1"}, k=2).set_index("target")
    # t1: its own prompt is left out; the rest are ranked identically
    cand = ["a", "b", "c", "d"]
    assert per.at["t1", "n"] == 4
    assert per.at["t1", "rho"] == pytest.approx(spearmanr(pred.loc[cand, "t1"], meas.loc[cand, "t1"]).statistic)
    assert per.at["t1", "rho"] == pytest.approx(1.0)
    assert per.at["t1", "hit"] and per.at["t1", "regret"] == 0.0 and per.at["t1", "chosen"] == "a"
    # t2: ranking reversed -> rho = -1 (all five sources: t1 is a source of another task here)
    assert per.at["t2", "rho"] == pytest.approx(spearmanr(pred["t2"], meas["t2"]).statistic)
    assert per.at["t2", "top_k"] == ["a", "b"] and per.at["t2", "best"] == "d" and not per.at["t2", "hit"]
    assert per.at["t2", "regret"] == pytest.approx(0.3 - 0.0)
    # a random case against scipy directly
    rng = np.random.default_rng(3)
    p2, m2 = (pd.DataFrame(rng.normal(size=(7, 3)), index=list("abcdefg"), columns=["x", "y", "z"]) for _ in range(2))
    per2 = M.validate(p2, m2, k=3).set_index("target")
    for t in "xyz":
        assert per2.at[t, "rho"] == pytest.approx(spearmanr(p2[t], m2[t]).statistic)
        top3 = list(p2[t].sort_values(ascending=False).index[:3])
        assert per2.at[t, "hit"] == (m2[t].idxmax() in top3)
    s = M.summarise(per2)
    assert s["mean_rho"] == pytest.approx(per2["rho"].mean()) and s["n_targets"] == 3
    table = M.validation_table({"good": pred, "bad": -pred}, meas, source_task={"t1": "t1"}, k=2)
    assert list(table["metric"]) == ["good", "bad"]


def test_by_task_prefers_scratch_prompts():
    prompts = [sp("A", torch.randn(2, 4), task="ta", method="scratch"), sp("A2", torch.randn(2, 4), task="ta",
               method="pot"), sp("B", torch.randn(2, 4), task="tb")]
    mat = pd.DataFrame(np.arange(9.0).reshape(3, 3), index=["A", "A2", "B"], columns=["A", "A2", "B"])
    bt = M.by_task(mat, prompts)
    assert list(bt.columns) == ["ta", "tb"]
    assert list(bt["ta"]) == [0.0, 3.0, 6.0] and list(bt["tb"]) == [2.0, 5.0, 8.0]


# ---- the real thunlp prompts -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def thunlp_index(real_prompts_dir):
    from core.library import index_library
    return index_library(real_prompts_dir)


def test_thunlp_groups_get_their_own_matrix_and_random_is_an_outlier(thunlp_index, tmp_path, monkeypatch):
    monkeypatch.setenv("ATLAS_CACHE", str(tmp_path))
    groups = thunlp_index.groups()
    assert set(groups) == {"roberta-base", "bert-base-uncased", "t5-small"}
    with pytest.raises(M.MixedBackboneError):
        M.compute_matrix("e_avg", list(thunlp_index.prompts.values()))
    for g, names in groups.items():
        ps = thunlp_index.group_prompts(g)
        for metric in M.PROMPT_METRICS:
            m = M.compute_matrix(metric, ps)
            assert list(m.index) == names and not m.isna().any().any()
            np.testing.assert_allclose(np.diag(m.values), 1.0 if metric != "e_tok" else np.diag(m.values))
        ok, why = M.metric_status("on", ps)
        assert not ok and f"needs backbone {ps[0].backbone}, not available offline" in why
    ps = thunlp_index.group_prompts("roberta-base")
    for metric in ("e_avg", "e_tok"):
        m = M.compute_matrix(metric, ps)
        off = m.where(~np.eye(len(m), dtype=bool)).mean()
        assert off.idxmin() == "randomPromptRoberta"
        assert off["randomPromptRoberta"] < 0.25 * off.drop("randomPromptRoberta").min(), off.sort_values()
    # clustering puts the random control at one end, NLI tasks together
    order = M.cluster(M.compute_matrix("e_avg", ps)).rows
    assert order.index("randomPromptRoberta") in (0, len(order) - 1)
    nli = sorted(order.index(f"{t}PromptRoberta") for t in ("MNLI", "QNLI", "snli"))
    assert nli[-1] - nli[0] <= 3


def test_cli_matrix(real_prompts_dir, tmp_path, capsys):
    from core.__main__ import main
    out = tmp_path / "roberta_e_avg.csv"
    assert main(["matrix", "--library", str(real_prompts_dir), "--metric", "e_avg", "--group", "roberta-base",
                 "--out", str(out)]) == 0
    df = pd.read_csv(out, index_col=0)
    assert df.shape == (15, 15) and "randomPromptRoberta" in df.index and list(df.index) == list(df.columns)
    assert main(["matrix", "--library", str(real_prompts_dir), "--metric", "e_avg", "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["matrix", "--library", str(real_prompts_dir), "--metric", "e_avg"]) == 2
    err = capsys.readouterr().err
    assert "several backbone groups" in err and "roberta-base (15)" in err and "--group" in err
    assert main(["matrix", "--library", str(real_prompts_dir), "--metric", "on", "--group", "t5-small"]) == 2
    assert "needs backbone t5-small, not available offline" in capsys.readouterr().err
    assert main(["matrix", "--library", str(tmp_path / "nope"), "--metric", "e_avg"]) == 2
    assert "no such folder" in capsys.readouterr().err


# ---- backbone metrics on MiniLM, tiny N ------------------------------------------------------------
@pytest.fixture(scope="module")
def minilm():
    from core.backbone import load_backbone
    return load_backbone(device="cpu")


@pytest.fixture(scope="module")
def mini_prompts(minilm):
    E = minilm.word_embeddings.weight.detach()
    g = torch.Generator().manual_seed(0)
    return [sp(f"m{i}", E[torch.randint(0, E.shape[0], (4,), generator=g)].clone(), backbone=minilm.name)
            for i in range(3)]


PROBE = ["a wonderful film", "the battery died", "who wrote hamlet ?"]


def test_on_equals_per_prompt_loop(minilm, mini_prompts):
    c = {}
    got = M.on(mini_prompts, minilm, counter=c)
    assert c["prompt_forwards"] == 3  # one forward per prompt, not per pair
    acts = [(minilm.ffn_activations(p.tensor) > 0).double().reshape(-1) for p in mini_prompts]
    ref = np.array([[float(a @ b / (a.norm() * b.norm())) for b in acts] for a in acts])
    np.testing.assert_allclose(got, ref, atol=1e-6)
    np.testing.assert_allclose(got, got.T)


def test_probe_metrics_equal_per_pair_loop(minilm, mini_prompts):
    enc = minilm.tokenize(PROBE, max_length=64)
    c = {}
    got = M.panda_sim(mini_prompts, minilm, probe_texts=PROBE, counter=c)
    assert c["prompt_forwards"] == 3
    with torch.no_grad():
        hs = [minilm.encode(enc["input_ids"], enc["attention_mask"], p.tensor) for p in mini_prompts]
    ref = np.array([[F.cosine_similarity(a, b, dim=1).mean().item() for b in hs] for a in hs])
    np.testing.assert_allclose(got, ref, atol=1e-5)
    got = M.on_probe(mini_prompts, minilm, probe_texts=PROBE)
    acts = [(minilm.ffn_activations(p.tensor, enc["input_ids"], enc["attention_mask"], position=0,
                                    mask_slot0=True) > 0).double().reshape(-1) for p in mini_prompts]
    ref = np.array([[float(a @ b / (a.norm() * b.norm())) for b in acts] for a in acts])
    np.testing.assert_allclose(got, ref, atol=1e-6)


def test_panda_sim_target_faithful_and_zs(minilm, mini_prompts, monkeypatch, tmp_path):
    """Target-faithful mode probes each target's own task; zs evaluates sources on target tasks."""
    from core import tasks as T
    splits = {n: T.Split(texts=[f"{n} text {i}" for i in range(6)], labels=[0, 1, 0, 1, 0, 0]) for n in ("ta", "tb")}
    fake = {n: T.Task(name=n, family=None, labels=["no", "yes"], descriptions=["a no", "a yes"],
                      train=splits[n], validation=splits[n], test=splits[n], source="test") for n in splits}
    monkeypatch.setattr("core.metrics.activations._get_task", lambda name: fake[name])  # where probe_set and zs look it up
    monkeypatch.setenv("ATLAS_CACHE", str(tmp_path))
    ps = [sp(p.name, p.tensor, backbone=p.backbone, task=t) for p, t in zip(mini_prompts, ["ta", "tb", "ta"])]
    got = M.panda_sim(ps, minilm, target_faithful=True, k=2)
    # the target's probe: k * (2 tasks) = 4 of tb's own texts, drawn with the fixed seed
    rng_pick = np.random.default_rng([0, zlib.crc32(b"tb")]).choice(6, size=4, replace=False)
    enc = minilm.tokenize([splits["tb"].texts[i] for i in sorted(rng_pick)], max_length=64)
    with torch.no_grad():
        h = [minilm.encode(enc["input_ids"], enc["attention_mask"], p.tensor) for p in ps]
    ref_col = [F.cosine_similarity(h[i], h[1], dim=1).mean().item() for i in range(3)]
    np.testing.assert_allclose(got[:, 1], ref_col, atol=1e-5)
    np.testing.assert_allclose(np.diag(got), 1.0, atol=1e-5)
    from core.training import evaluate
    c = {}
    z = M.zs(ps, minilm, counter=c)
    assert c["evaluations"] == 3 * 2  # per (source, target task), not per target prompt
    assert np.array_equal(z[:, 0], z[:, 2])
    ref = evaluate(ps[1].tensor, fake["ta"], split="validation", backbone=minilm) - 4 / 6
    assert z[1, 0] == pytest.approx(ref)
    c = {}
    M.zs(ps, minilm, counter=c)
    assert c.get("evaluations", 0) == 0  # cached per prompt content hash and task data


def test_precomputed_matrix_only_while_its_key_matches(tmp_path):
    prompts = rand_prompts(4)
    m = M.compute_matrix("e_avg", prompts, cache=False)
    M.save_precomputed("e_avg", m, prompts, tmp_path)
    got = M.load_precomputed("e_avg", prompts, tmp_path)
    pd.testing.assert_frame_equal(got, m, check_names=False)
    changed = [sp(p.name, p.tensor + (1.0 if i == 0 else 0.0)) for i, p in enumerate(prompts)]
    assert M.load_precomputed("e_avg", changed, tmp_path) is None          # contents changed -> not used
    assert M.cached_matrix("e_tok", prompts, precomputed=tmp_path) is None  # never computes
    m.to_csv(tmp_path / "e_tok.csv")                                        # a file without a recorded key
    assert M.load_precomputed("e_tok", prompts, tmp_path) is None
    assert M.load_precomputed("e_tok", prompts, tmp_path, trust_names=True) is not None


def test_committed_demo_matrices_match_by_key():
    """Moving the metrics code must not change a matrix key: every precomputed demo matrix is still
    found by its recorded key (strict, no trust_names), so nothing is recomputed."""
    import json
    from pathlib import Path

    from core.config import REPO_ROOT
    from core.library import index_library
    folder = REPO_ROOT / "data" / "demo" / "matrices"
    if not (folder / "index.json").is_file():
        pytest.skip("data/demo/matrices not built yet (make demo)")
    index = json.loads((folder / "index.json").read_text())
    lib = index_library(Path(REPO_ROOT / "data" / "demo" / "prompts"))
    prompts = lib.group_prompts(next(iter(lib.groups())))
    assert set(index) >= {"e_avg", "e_tok", "on", "panda_sim", "zs"}
    for metric, entry in index.items():
        df = M.load_precomputed(metric, prompts, folder, **(entry.get("params") or {}))
        assert df is not None and df.shape == (entry["n"], entry["n"]), metric
