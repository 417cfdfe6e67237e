"""Retrieval measures (NDCG@k, regret@k) and token-wise max similarity (core/metrics/validation.py, core/metrics/prompt_space.py).

    .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_metrics_retrieval.py
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from core import metrics as M


def test_ndcg_at_k_by_hand_relevance_is_gain_clipped_at_zero():
    gain = [0.3, 0.1, -0.2, 0.0]
    pred = [0.5, 0.1, 0.9, 0.0]          # order: s2 (gain<0 -> rel 0), s0, s1
    dcg = 0 / math.log2(2) + 0.3 / math.log2(3) + 0.1 / math.log2(4)
    idcg = 0.3 / math.log2(2) + 0.1 / math.log2(3)
    assert M.ndcg_at_k(pred, gain, k=3) == pytest.approx(dcg / idcg)
    assert M.ndcg_at_k([3, 2, 1, 0], gain, k=2) == pytest.approx(1.0)
    assert math.isnan(M.ndcg_at_k(pred, [-0.1, 0.0, -0.3, -0.2], k=3))  # nothing helps: undefined


def test_regret_at_k():
    gain = [0.3, 0.1, -0.2, 0.0]
    pred = [0.5, 0.1, 0.9, 0.0]
    assert M.regret_at_k(pred, gain, k=1) == pytest.approx(0.5)
    assert M.regret_at_k(pred, gain, k=2) == pytest.approx(0.0)


def test_retrieval_table_beside_rho_and_hit():
    src = ["a", "b", "c", "d"]
    measured = pd.DataFrame({"t1": [0.3, 0.1, -0.2, 0.0], "t2": [0.0, 0.2, 0.1, 0.4]}, index=src)
    good = measured.copy()                       # predicts the measured order exactly
    bad = -measured                              # the reverse
    per = M.validate_retrieval(good, measured, k=2)
    assert list(per["ndcg_k"]) == pytest.approx([1.0, 1.0]) and list(per["regret_k"]) == [0.0, 0.0]
    tab = M.retrieval_table({"good": good, "bad": bad}, measured, k=2).set_index("metric")
    assert tab.loc["good", "mean_rho"] == pytest.approx(1.0) and tab.loc["good", "top_k_hit"] == 1.0
    assert tab.loc["bad", "ndcg_k"] < tab.loc["good", "ndcg_k"]
    assert tab.loc["bad", "regret_k"] == pytest.approx(((0.3 - 0.0) + (0.4 - 0.1)) / 2)
    assert list(tab.index) == ["good", "bad"]


def test_tok_max_definition_and_registry():
    rng = np.random.default_rng(0)
    P = {f"p{i}": rng.normal(size=(L, 8)).astype(np.float32) for i, L in enumerate((3, 5, 4))}
    out = M.tok_max(P, chunk_tokens=2)  # chunks smaller than one prompt on purpose

    def ref(s, t):
        a = P[s] / np.linalg.norm(P[s], axis=1, keepdims=True)
        b = P[t] / np.linalg.norm(P[t], axis=1, keepdims=True)
        return float((b.astype(np.float64) @ a.T.astype(np.float64)).max(1).mean())

    names = list(P)
    expect = np.array([[ref(s, t) for t in names] for s in names])
    assert np.allclose(out, expect, atol=1e-6)
    assert np.allclose(np.diag(out), 1.0)
    assert not np.allclose(out, out.T)  # asymmetric: rows are sources, columns targets
    # a source holding every target token scores 1 for that target
    P["super"] = np.concatenate([P["p0"], P["p1"]])
    assert M.tok_max(P)[3, 0] == pytest.approx(1.0)
    assert "tok_max" in M.PROMPT_METRICS and M.METRICS["tok_max"].symmetric is False
    assert "cos" in M.METRICS["tok_max"].description and "e_tok" in M.METRICS["tok_max"].description
    assert list(M.METRICS).index("tok_max") == list(M.METRICS).index("e_tok") + 1
    df = M.compute_matrix("tok_max", P, cache=False)
    assert df.loc["p0", "p1"] == pytest.approx(expect[0, 1], abs=1e-6)
