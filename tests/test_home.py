"""The landing page's headline numbers, recomputed independently with plain loops."""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from streamlit.testing.v1 import AppTest

from core.config import REPO_ROOT
from core.headline import headline

TASKS = ["a1", "a2", "b1", "b2"]


def make_demo(folder: Path, seed: int = 0) -> pd.DataFrame:
    """A small demo folder: results for 4 sources x 4 targets, 2 seeds, plus one metric matrix."""
    rng = np.random.default_rng(seed)
    rows = []
    for target, sd in itertools.product(TASKS, range(2)):
        rows.append(dict(method="scratch", source="", target=target, seed=sd, test_score=0.6 + 0.01 * sd))
        for src in TASKS:
            related = src[0] == target[0]
            for method in ("pot", "panda"):
                score = 0.6 + (0.1 if related else -0.02) + rng.normal(0, 0.01) + (0.01 if method == "panda" else 0)
                rows.append(dict(method=method, source=src, target=target, seed=sd, test_score=score))
    df = pd.DataFrame(rows)
    df["status"] = "finished"
    folder.mkdir(parents=True, exist_ok=True)
    df.to_csv(folder / "results.csv", index=False)
    (folder / "matrices").mkdir(exist_ok=True)
    sim = pd.DataFrame([[1.0 if s[0] == t[0] else 0.1 * i for i, t in enumerate(TASKS)] for s in TASKS],
                       index=TASKS, columns=TASKS)
    sim.to_csv(folder / "matrices" / "e_avg.csv")
    for name in TASKS:
        (folder / "prompts" / name).mkdir(parents=True, exist_ok=True)
        (folder / "prompts" / name / "atlas.json").write_text(json.dumps({"name": name, "task": name}))
    return df


def reference(df: pd.DataFrame, sim: pd.DataFrame | None, k: int = 3):
    """Plain-loop reference: per-run gains (each run against the scratch of its own seed and device kind),
    best single source per target (a mixture of sources is not one), metric scores, PANDA - PoT."""
    dev = (lambda r: str(r.device).split(":")[0] if isinstance(r.device, str) else "") if "device" in df.columns \
        else (lambda r: "")
    scratch = {}
    for r in df[df.method == "scratch"].itertuples():
        scratch.setdefault((r.target, r.seed, dev(r)), []).append(r.test_score)
    gain = {}
    for r in df[df.method.isin(["pot", "panda"])].itertuples():
        if str(r.source).startswith("mix "):  # a mixture is not a source: compared in its own table
            continue
        base = float(np.mean(scratch[(r.target, r.seed, dev(r))]))
        gain[(r.method, r.source, r.target, r.seed, dev(r))] = (r.test_score - base) / base
    targets = sorted(set(df[df.method.isin(["pot", "panda"])].target))
    sources = sorted(set(df.source) - {""} - {s for s in set(df.source) if str(s).startswith("mix ")})
    pot = {(s, t): np.mean([g for (m, s2, t2, _, _), g in gain.items() if m == "pot" and s2 == s and t2 == t])
           for s in sources for t in targets}
    best = {}
    for t in targets:
        cands = [(pot[(s, t)], s) for s in sources if s != t]
        g, s = max(cands)
        best[t] = (s, g)
    diffs = [gain[("panda", s, t, sd, d)] - gain[("pot", s, t, sd, d)]
             for (m, s, t, sd, d) in gain if m == "pot" and ("panda", s, t, sd, d) in gain]
    rhos, hits = [], []
    if sim is not None:
        for t in targets:
            cands = [s for s in sources if s != t]
            m = [sim.loc[s, t] for s in cands]
            y = [pot[(s, t)] for s in cands]
            rhos.append(spearmanr(m, y).statistic)
            top = [cands[i] for i in np.argsort(m)[::-1][:k]]
            hits.append(cands[int(np.argmax(y))] in top)
    return best, float(np.mean(diffs)), (float(np.mean(rhos)) if rhos else None), (float(np.mean(hits)) if hits else None)


def check(folder: Path):
    df = pd.read_csv(folder / "results.csv", keep_default_na=False, na_values=[""])
    df = df[df["status"] == "finished"].copy()
    df["source"] = df["source"].fillna("")
    sim_path = folder / "matrices" / "e_avg.csv"
    sim = pd.read_csv(sim_path, index_col=0) if sim_path.is_file() else None
    tasks = {}
    for meta in (folder / "prompts").glob("*/atlas.json"):
        info = json.loads(meta.read_text())
        tasks[info["name"]] = info.get("task")
    # the reference excludes a source only when its name is the target; demo names are task names
    best, panda_minus_pot, rho, hit = reference(df, sim)
    h = headline(folder)
    got = {r["target"]: (r["source"], r["gain"]) for r in h.best_source}
    assert set(got) == set(best)
    for t in best:
        assert got[t][1] == pytest.approx(best[t][1], abs=1e-9)
    assert h.panda_vs_pot == pytest.approx(panda_minus_pot, abs=1e-9)
    if rho is not None:
        e_avg = next(r for r in h.metric_scores if r["metric"] == "e_avg")
        assert e_avg["mean_rho"] == pytest.approx(rho, abs=1e-9)
        assert e_avg["top_k_hit"] == pytest.approx(hit, abs=1e-9)
    return h


def test_headline_matches_plain_loops(tmp_path):
    make_demo(tmp_path / "demo")
    h = check(tmp_path / "demo")
    # related pairs (same first letter) are the best sources and e_avg knows it
    assert all(r["source"][0] == r["target"][0] for r in h.best_source)
    assert h.best_metric["metric"] == "e_avg" and h.best_metric["mean_rho"] > 0.5
    assert h.panda_vs_pot > 0


def test_headline_of_committed_demo():
    folder = REPO_ROOT / "data" / "demo"
    if not (folder / "results.csv").is_file():
        pytest.skip("data/demo/results.csv not built yet (make demo)")
    check(folder)


def test_home_page_renders_with_and_without_demo(tmp_path, monkeypatch):
    monkeypatch.setenv("ATLAS_DEMO", str(tmp_path / "missing"))
    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    assert any("No demo library" in i.value for i in at.info)
    make_demo(tmp_path / "demo")
    monkeypatch.setenv("ATLAS_DEMO", str(tmp_path / "demo"))
    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    labels = [m.label for m in at.metric]
    assert "Finished runs" in labels and any(l.startswith("Best predictor: e_avg") for l in labels)


def test_home_first_paint_never_imports_torch(tmp_path):
    """Issue 12: the Home page computes a Spearman over a CSV; importing torch for it cost ~1 s of a cold
    first paint. A fresh interpreter runs the whole app (app.py -> Home, on the committed demo or a small
    one) and must show the headline without torch in sys.modules; the headline it shows is checked so the
    test cannot pass on an empty page."""
    import subprocess
    import sys

    folder = REPO_ROOT / "data" / "demo"
    if not (folder / "results.csv").is_file():
        folder = tmp_path / "demo"
        make_demo(folder)
    code = ("import sys; from streamlit.testing.v1 import AppTest; "
            "at = AppTest.from_file('app.py', default_timeout=90).run(); "
            "assert not at.exception, at.exception; "
            "labels = [m.label for m in at.metric]; "
            "assert 'Finished runs' in labels and any(l.startswith('Best predictor: ') for l in labels), labels; "
            "assert 'core.headline' in sys.modules, 'Home did not compute its headline'; "
            "assert 'torch' not in sys.modules, 'torch imported by the Home page'; "
            "print('ok', labels)")
    env = {**__import__("os").environ, "ATLAS_DEMO": str(folder), "ATLAS_CACHE": str(tmp_path / "cache")}
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=180,
                       env=env)
    assert r.returncode == 0 and r.stdout.startswith("ok"), (r.stdout[-1000:], r.stderr[-2000:])
