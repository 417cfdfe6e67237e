"""The demo library: the build pipeline resumes, and the committed prompts are what they claim.

A tiny real build (MiniLM, one real task, a few steps) checks the pipeline end to end;
the committed data/demo is checked by re-evaluating every prompt on its test split.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from core import demo
from core.config import REPO_ROOT
from core.tasks import list_tasks

DEMO = REPO_ROOT / "data" / "demo"


def rows(folder: Path) -> dict[str, dict]:
    return {r["run_id"]: r for r in demo.read_results(folder / "results.csv")}


def test_tiny_build_plans_the_grid_and_resumes(tmp_path):
    if "sent_tweet" not in list_tasks():
        pytest.fail("demo task sent_tweet is not prepared: run `python -m core tasks prepare`")
    out, work = tmp_path / "demo", tmp_path / "work"
    prof = demo.PROFILES["tiny"]
    # a deadline already past: nothing is launched, nothing is half-written
    assert demo.build(out, prof, work, deadline_s=1e-9, finalize_after=False, tasks=["sent_tweet"]) == 1
    assert all(r["status"] != "finished" for r in rows(out).values()) if (out / "results.csv").exists() else True
    # resume: everything finishes
    assert demo.build(out, prof, work, finalize_after=False, tasks=["sent_tweet"]) == 0
    first = rows(out)
    methods = sorted(r["method"] for r in first.values())
    # sources: sent_tweet + generic; grid: 2 scratch seeds, pot and panda from 2 sources
    assert methods == ["panda", "panda", "pot", "pot", "scratch", "scratch", "source", "source"]
    for r in first.values():
        assert r["status"] == "finished" and 0.0 <= float(r["test_score"]) <= 1.0
        s = json.loads(r["settings"])
        if r["method"] == "panda":
            assert s["lambda_mode"] == "metric" and 0.0 <= s["metric_value"] <= 1.0
    # PANDA's teacher is the PoT run of the same pair: it must exist as a saved prompt
    assert (out / "transfers" / "pot-generic-to-sent_tweet-s0" / "atlas.json").is_file()
    # a second call retrains nothing
    assert demo.build(out, prof, work, finalize_after=False, tasks=["sent_tweet"]) == 0
    assert rows(out) == first


def test_tiny_build_with_packing(tmp_path, monkeypatch):
    """The GPU build's packed workers (forced on CPU here): ready runs share a worker and a
    forward, PANDA students still wait for their PoT teachers, every run finishes."""
    if "sent_tweet" not in list_tasks():
        pytest.fail("demo task sent_tweet is not prepared: run `python -m core tasks prepare`")
    monkeypatch.setenv("ATLAS_PACK_CPU", "1")
    out, work = tmp_path / "demo", tmp_path / "work"
    prof = dataclasses.replace(demo.PROFILES["tiny"], pack=4)
    submitted = []  # (function, run ids) of every job handed to the worker pool
    from concurrent.futures import ProcessPoolExecutor  # the pool core.demo's workers run in
    orig_submit = ProcessPoolExecutor.submit

    def submit(self, fn, *args):
        submitted.append((fn.__name__, [j["run_id"] for j in (args[0] if isinstance(args[0], list) else [args[0]])]))
        return orig_submit(self, fn, *args)

    monkeypatch.setattr(ProcessPoolExecutor, "submit", submit)
    assert demo.build(out, prof, work, finalize_after=False, tasks=["sent_tweet"]) == 0
    got = rows(out)
    assert sorted(r["method"] for r in got.values()) == ["panda", "panda", "pot", "pot", "scratch", "scratch",
                                                         "source", "source"]
    assert all(r["status"] == "finished" for r in got.values()), {k: r["settings"] for k, r in got.items()}
    packed = [ids for fn, ids in submitted if fn == "_run_pack"]
    assert packed and max(len(ids) for ids in packed) > 1  # runs really shared a worker
    order = [rid for _, ids in submitted for rid in ids]
    for rid in order:  # every PANDA student was submitted after its PoT teacher's submission
        if rid.startswith("panda-"):
            assert order.index("pot-" + rid[len("panda-"):]) < order.index(rid)


def committed_prompts() -> list[tuple[str, dict]]:
    if not (DEMO / "results.csv").is_file():
        return []
    by_path = {r["prompt_path"]: r for r in rows(DEMO).values() if r["prompt_path"]}
    return sorted(by_path.items())


def test_committed_demo_is_complete():
    if not (DEMO / "results.csv").is_file():
        pytest.skip("data/demo/results.csv not built yet (python -m core demo build)")
    rs = rows(DEMO)
    assert all(r["status"] == "finished" for r in rs.values()), "every run of the grid finished"
    manifest = json.loads((DEMO / "manifest.json").read_text())
    assert manifest["command"].startswith("python -m core demo build") and manifest["wheels"]
    for rel, _ in committed_prompts():
        assert (DEMO / rel / "adapter_model.safetensors").is_file(), rel


def test_committed_prompts_reproduce_their_test_scores():
    """Every committed prompt loads with its recorded shape and metadata and reproduces its
    recorded test score: ``python -m core demo verify --write`` re-evaluated all of them on
    their full test splits on the CPU (within one point of the GPU-recorded score, or it writes
    nothing) and stored the per-example predictions; here every prompt is re-run live on a
    seeded slice of its test split and must predict what was recorded, and the recorded
    predictions must give results.csv's score. ATLAS_FULL_DEMO_CHECK=1: the full re-evaluation
    (~15 min on 2 cores)."""
    import os
    items = committed_prompts()
    if not items:
        pytest.skip("data/demo/results.csv not built yet (python -m core demo build)")
    from core.prompts import read_prompt
    for rel, row in items:
        p = read_prompt(DEMO / rel)
        assert p.L == 20 and p.d == 384, rel
        assert p.task == row["target"] and p.score == pytest.approx(float(row["test_score"]), abs=1e-4)
    full = os.environ.get("ATLAS_FULL_DEMO_CHECK") == "1"
    res = demo.verify(DEMO, sample=None if full else 24, log=print)
    assert res["prompts"] == len(items)
    assert not res["problems"], "\n".join(res["problems"])
    if not full:  # the live slice really ran, for every prompt
        assert res["checked"] == 24 * len(items)
        assert res["disagree"] <= 0.01 * res["checked"]


def test_verify_catches_a_prompt_that_does_not_match_its_record(tmp_path):
    """The check above can fail: a committed prompt whose values changed (here: swapped
    for another task's prompt) no longer predicts what was recorded."""
    import shutil
    if not committed_prompts() or not (DEMO / demo.PREDICTIONS).is_file():
        pytest.skip("data/demo not built yet")
    demo_copy = tmp_path / "demo"
    demo_copy.mkdir()
    keep = ["prompts/sent_tweet", "prompts/topic_usenet"]
    for rel in keep:
        shutil.copytree(DEMO / rel, demo_copy / rel)
    shutil.copy(DEMO / demo.PREDICTIONS, demo_copy / demo.PREDICTIONS)
    demo.write_results(demo_copy / "results.csv",
                       [r for r in demo.read_results(DEMO / "results.csv") if r["prompt_path"] in keep])
    ok = demo.verify(demo_copy, sample=40, log=lambda *_: None)
    assert ok["prompts"] == 2 and not ok["problems"], ok["problems"]
    # swap the sentiment prompt's weights for the topic prompt's
    shutil.copy(demo_copy / "prompts/topic_usenet/adapter_model.safetensors",
                demo_copy / "prompts/sent_tweet/adapter_model.safetensors")
    bad = demo.verify(demo_copy, sample=40, log=lambda *_: None)
    assert any("prompts/sent_tweet" in p for p in bad["problems"]), bad
