"""Issue 26 stage (d): training through label-word heads inside core.training (TrainConfig.lm_head) -- the
same loop, run store, PANDA, attempt and packed training as the pooled head, on tiny random models built
from transformers configs at test time (fixtures of tests/test_heads.py; nothing downloaded).

    .venv/bin/python -m pytest -q tests/test_lmhead_training.py

What each test pins: the loss a run optimises is the cross-entropy of the scores core.heads.scorer reads
(the same scores evaluation and ``prompts eval`` read back); the saved prompt carries its preset and words;
PANDA's teacher gives the teacher prompt's label-word scores; a packed step equals the runs alone; a run in
the store records its head in the results, where it is a pairing key.
"""
from __future__ import annotations

import json

import pytest
import torch

from core.heads import HeadKind, get_preset, preset_for
from core.heads.evaluate import evaluate_prompt
from core.heads.scorer import label_scores, load_lm, token_types, text_ids, word_token_ids
from core.prompts import read_prompts
from core.tasks import Split, Task
from core.training import TrainConfig, TrainError, train, train_packed
from core.training.result import save_result
from test_heads import _tiny_t5, causal, roberta, seq2seq, tok_dir  # noqa: F401 -- fixtures

WORDS = ["negative", "positive"]


def _task(name="tiny_sent", n=16):
    """Label 1 texts say "good", label 0 texts say "bad": a prompt can move the label-word scores."""
    texts = [f"{'good' if i % 2 else 'bad'} movie number {i}" for i in range(n)]
    sp = Split(texts, [i % 2 for i in range(n)])
    return Task(name, "sentiment", ["negative", "positive"], ["a negative review", "a positive review"], sp, sp, sp)


def _cfg(folder, preset, **kw):
    base = dict(task="tiny_sent", backbone=str(folder), lm_head=preset, prompt_length=4, steps=8, lr=0.1,
                batch_size=16, eval_every=4, warmup=0, schedule="constant", device="cpu", max_length=32)
    return TrainConfig(**{**base, **kw})


def _ce_of(lm, preset_name, prompt, task, words=WORDS):
    p = get_preset(preset_name)
    with torch.no_grad():
        s = label_scores(lm, p, prompt, word_token_ids(lm, words, p), task.train.texts, max_length=32)
    return float(torch.nn.functional.cross_entropy(s, torch.tensor(task.train.labels)))


@pytest.mark.parametrize("preset", ["thunlp-roberta", "mlm-default"])
def test_an_mlm_head_run_optimises_the_scores_prompts_eval_reads_back(roberta, tmp_path, preset):
    folder, _model, _tok = roberta
    task = _task()
    events = []
    res = train(_cfg(folder, preset), task=task, callback=events.append)
    lm = load_lm(str(folder), HeadKind.mlm, "cpu", torch.float32)
    assert not any(p.requires_grad for p in lm.model.parameters())  # only the prompt trains
    ce = [e["metrics"]["ce"] for e in events if e["kind"] == "progress"]
    assert len(ce) == 8 and ce[-1] < ce[0]
    # step 1's loss is the cross-entropy of the initial prompt's label-word scores (the whole set: batch 16)
    assert ce[0] == pytest.approx(_ce_of(lm, preset, res.init_prompt, task), rel=1e-4)
    out = save_result(res, tmp_path / "p")
    back = read_prompts(out)[0]
    assert preset_for(back).name == preset and back.settings["label_words"] == WORDS
    assert back.settings["lm_head"] == preset
    # prompts eval, reading the saved prompt with its stored preset, gets the run's own test score
    ev = evaluate_prompt(back, task, split="test", backbone=str(folder), device="cpu")  # saved portably, by name
    assert ev.accuracy == pytest.approx(res.test_score)


def test_token_types_read_back_from_ids_equal_the_tokenizers(tok_dir, tmp_path):
    import transformers
    tok = transformers.AutoTokenizer.from_pretrained(tok_dir)
    cfg = transformers.BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                  intermediate_size=64, type_vocab_size=2)
    folder = tmp_path / "bert"
    transformers.BertForMaskedLM(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    lm = load_lm(str(folder), HeadKind.mlm, "cpu", torch.float32)
    for p in ("thunlp-bert", "mlm-default"):
        ids, types = text_ids(lm, get_preset(p), ["a first text", "b"], ["and its pair here", "c d"], 32)
        assert types is not None and any(1 in t for t in types)
        assert token_types(lm, ids) == types


def test_pot_starts_from_the_source_and_panda_distils_its_label_word_scores(roberta, tmp_path):
    folder, _model, _tok = roberta
    task = _task()
    # the last step is the saved checkpoint (a tiny random model's validation accuracy may never move)
    src = save_result(train(_cfg(folder, "thunlp-roberta", eval_at_start=False, eval_every=0), task=task),
                      tmp_path / "src")
    lm = load_lm(str(folder), HeadKind.mlm, "cpu", torch.float32)
    source = torch.as_tensor(read_prompts(src)[0].values)
    ev = []
    train(_cfg(folder, "thunlp-roberta", method="pot", sources=[str(src)], steps=2), task=task, callback=ev.append)
    first = [e["metrics"]["ce"] for e in ev if e["kind"] == "progress"][0]
    assert first == pytest.approx(_ce_of(lm, "thunlp-roberta", source, task), rel=1e-4)
    assert not torch.equal(source, train(_cfg(folder, "thunlp-roberta", steps=1), task=task).init_prompt)
    # PANDA: the teacher's cached logits are the teacher prompt's label-word scores
    from core.training.loop import Run
    run = Run(_cfg(folder, "thunlp-roberta", method="panda", sources=[str(src)], teacher=str(src), kd_lambda=1.0),
              None, task)
    (_w, teacher), = run.teachers
    p = get_preset("thunlp-roberta")
    with torch.no_grad():
        direct = label_scores(lm, p, source, word_token_ids(lm, WORDS, p), [task.train.texts[i] for i in range(16)],
                              max_length=32)
    torch.testing.assert_close(teacher.cache.cpu(), direct, rtol=1e-4, atol=1e-5)
    ids, idx = run.next_batch()
    loss = run.loss(run.forward(ids), ids, idx)
    assert float(run._kd) > 0 and float(loss) == pytest.approx(float(run._ce) + float(run._kd), rel=1e-5)


def test_attempt_through_an_mlm_head_trains_its_prompt_and_attention(roberta, tmp_path):
    folder, _model, _tok = roberta
    g = torch.Generator().manual_seed(5)
    srcs = [torch.randn(4, 32, generator=g) for _ in range(2)]
    res = train(_cfg(folder, "mlm-default", method="attempt", sources=srcs, steps=4, eval_at_start=False,
                     eval_every=0), task=_task())
    assert not torch.equal(res.prompt.tensor, res.init_prompt)
    att = res.prompt.settings["attempt"]["mean_attention"]
    assert sum(att.values()) == pytest.approx(1.0, abs=1e-4)


def test_a_packed_step_of_label_word_runs_equals_the_runs_alone(roberta):
    folder, _model, _tok = roberta
    other = _task("tiny_other")
    cfgs = [_cfg(folder, "thunlp-roberta", seed=0), _cfg(folder, "thunlp-roberta", seed=1, task="tiny_other",
                                                          label_words=["bad", "good"])]
    tasks = [_task(), other]
    solo = [train(c, task=t) for c, t in zip(cfgs, tasks)]
    outs = train_packed(cfgs, tasks=tasks)
    for s, o in zip(solo, outs):
        assert o.status == "finished", o.error
        assert (o.result.val_score, o.result.test_score, o.result.best_step) == (s.val_score, s.test_score, s.best_step)
        diff = float((o.result.prompt.tensor - s.prompt.tensor).abs().max())
        assert diff <= 1e-4 * float(s.prompt.tensor.abs().max())
    assert outs[1].result.prompt.settings["label_words"] == ["bad", "good"]


@pytest.mark.parametrize("preset,scoring", [("thunlp-t5", None), ("peft-seq2seq", "sequence")])
def test_seq2seq_heads_train_on_a_tiny_t5(seq2seq, tmp_path, preset, scoring):
    folder, _adapters, _tok = seq2seq
    ev = []
    res = train(_cfg(folder, preset, lm_scoring=scoring), task=_task(), callback=ev.append)
    ce = [e["metrics"]["ce"] for e in ev if e["kind"] == "progress"]
    assert ce[-1] < ce[0]
    back = read_prompts(save_result(res, tmp_path / "t5"))[0]
    assert preset_for(back).name == preset and tuple(back.tensor.shape) == (4, 32)


@pytest.mark.parametrize("scoring", ["first_token", "sequence"])
def test_a_causal_head_trains_and_packs(causal, scoring):
    folder, _pm, _adapter, _tok = causal
    cfgs = [_cfg(folder, "peft-causal", lm_scoring=scoring, seed=s, steps=4) for s in (0, 1)]
    solo = [train(c, task=_task()) for c in cfgs]
    outs = train_packed(cfgs, tasks=[_task(), _task()])
    for s, o in zip(solo, outs):
        assert o.status == "finished", o.error
        assert o.result.test_score == s.test_score
        assert float((o.result.prompt.tensor - s.prompt.tensor).abs().max()) <= 1e-4 * float(s.prompt.tensor.abs().max())


def test_label_word_settings_are_validated_and_a_bad_word_count_is_one_message(roberta):
    folder, _model, _tok = roberta
    with pytest.raises(TrainError, match="lm_head 'cosine' is not one of"):
        TrainConfig(task="t", lm_head="cosine")
    with pytest.raises(TrainError, match="go with --lm-head"):
        TrainConfig(task="t", label_words=["a", "b"])
    with pytest.raises(TrainError, match="needs a seq2seq or causal head"):
        TrainConfig(task="t", lm_head="thunlp-roberta", lm_scoring="sequence")
    with pytest.raises(TrainError, match="the label words are the head"):
        TrainConfig(task="t", lm_head="mlm-default", head="linear")
    with pytest.raises(TrainError, match="distinct"):
        TrainConfig(task="t", lm_head="mlm-default", label_words=["a", "a"])
    with pytest.raises(TrainError, match="has 3 words but the task has 2 labels"):
        train(_cfg(folder, "mlm-default", label_words=["a", "b", "c"]), task=_task())
    with pytest.raises(TrainError, match="has no seq2seq head"):
        train(_cfg(folder, "thunlp-t5"), task=_task())


def test_the_head_is_recorded_in_results_and_keeps_runs_apart(tmp_path):
    """The store's results row names the head (a pairing key): a label-word PoT run never meets a
    pooled-head scratch baseline, only one read through the same head."""
    import pandas as pd

    from core.metrics.measured import measured
    from core.results import head_label, run_head
    assert head_label({"head": "verbalizer"}) == "verbalizer"
    assert head_label({"head": "verbalizer", "lm_head": "peft-causal", "lm_scoring": "first_token",
                       "label_words": ["no", "yes"]}) == "peft-causal first_token words=no,yes"
    assert run_head(json.dumps({"lm_head": "thunlp-roberta", "head": "verbalizer"})) == "thunlp-roberta"
    rows = [dict(run_id=f"r{i}", method=m, source=s, target="t", seed=0, steps=10, train_size=16, test_score=v,
                 status="finished", head=h, device="cpu")
            for i, (m, s, v, h) in enumerate([("scratch", "", 0.5, "verbalizer"), ("scratch", "", 0.8, "thunlp-roberta"),
                                              ("pot", "a", 0.6, "thunlp-roberta")])]
    m = measured(pd.DataFrame(rows))
    assert float(m.mean.loc["a", "t"]) == pytest.approx(0.6 / 0.8 - 1)   # against its own head's scratch


def test_a_store_run_through_a_label_word_head_records_it(roberta, tmp_path):
    """A run launched through the store (pages, CLI, sweeps): its params become the TrainConfig, and its
    results row names the head, so the measured matrix pairs it with its own head's scratch runs."""
    from core.runs.spec import RunSpec, build_train_config
    from core.runs.store import RunStore
    from core.runs.worker import record_final
    folder, _model, _tok = roberta
    params = dict(lm_head="thunlp-roberta", label_words=["bad", "good"], prompt_length=4, steps=2)
    cfg = build_train_config(RunSpec(method="scratch", target="tiny_sent", seed=0, backbone=str(folder), device="cpu",
                                     params=params), None)
    assert (cfg.lm_head, cfg.label_words) == ("thunlp-roberta", ["bad", "good"])
    store = RunStore(tmp_path / "runs.db")
    store.add_run("r1", {"method": "scratch", "target": "tiny_sent", "seed": 0, "params": params})
    store.add_run("r2", {"method": "scratch", "target": "tiny_sent", "seed": 0, "params": {"steps": 2}})
    for r in ("r1", "r2"):
        store.set_status(r, "running")
        record_final(store, r, {"status": "finished", "val_score": 0.5, "test_score": 0.5})
    heads = store.results_table(status=("finished",)).set_index("run_id")["head"]
    assert heads["r1"] == "thunlp-roberta words=bad,good" and heads["r2"] != heads["r1"]


def test_ranking_reads_zs_through_a_chosen_label_word_head(roberta, tmp_path, monkeypatch):
    """Per-metric head selection: ``rank --lm-head PRESET`` reads zs through the label words (equal to a
    direct computation), keeps ncc on pooled features, and caches apart from the cosine head's numbers."""
    from core.ranking import RankError, RankSettings, rank_sources
    monkeypatch.setenv("ATLAS_CACHE", str(tmp_path / "cache"))
    folder, _model, _tok = roberta
    lib = tmp_path / "lib"
    g = torch.Generator().manual_seed(7)
    for name in ("a", "b"):
        res = train(_cfg(folder, "thunlp-roberta", steps=1, name=name), task=_task("src_" + name))
        res.prompt.tensor = torch.randn(4, 32, generator=g)
        save_result(res, lib / name)
    target = _task("tgt")
    r = rank_sources(target, libraries=[lib], backbone=str(folder), settings=RankSettings(lm_head="thunlp-roberta"),
                     use_cache=True)
    assert r.head.startswith("thunlp-roberta") and set(r.table["source"]) == {"a", "b"}
    lm = load_lm(str(folder), HeadKind.mlm, "cpu", torch.float32)
    p = get_preset("thunlp-roberta")
    for _, row in r.table.iterrows():
        P = torch.as_tensor(read_prompts(lib / row["source"])[0].values)
        with torch.no_grad():
            s = label_scores(lm, p, P, word_token_ids(lm, WORDS, p), target.validation.texts, max_length=128)
        acc = float((s.argmax(-1) == torch.tensor(target.validation.labels)).float().mean())
        assert row["accuracy"] == pytest.approx(acc) and row["zs"] == pytest.approx(acc - 0.5)
    pooled = rank_sources(target, libraries=[lib], backbone=str(folder), use_cache=True)
    assert pooled.cached == 0 and pooled.head.startswith("cosine")   # its own cache entry, computed afresh
    again = rank_sources(target, libraries=[lib], backbone=str(folder), settings=RankSettings(lm_head="thunlp-roberta"))
    assert again.cached == 2 and again.table.equals(r.table)
    with pytest.raises(RankError, match="lm_head 'cosine'"):
        RankSettings(lm_head="cosine")
    # the top-k sweep of a ranking read through a head trains through it (scratch too: one regime)
    from core.ranking import ranked_sweep
    from core.runs.sweeps import plan
    sw = ranked_sweep(r, 1, scratch_seeds=[0])
    assert sw.params["lm_head"] == "thunlp-roberta" and sw.ranking["lm_head"] == "thunlp-roberta"
    assert {p.spec.params.get("lm_head") for p in plan(sw)} == {"thunlp-roberta"}
    assert "lm_head" not in ranked_sweep(pooled, 1, scratch_seeds=[0]).params
    assert "lm_head" not in ranked_sweep(r, 1, scratch_seeds=[0], params={"lm_head": None}).params


def _sources(folder, tmp_path, n=3):
    """Three prompts trained on the tiny RoBERTa for tasks ``zt0``..: random [4, 32] values (distinct zs)."""
    from core.prompts.types import SoftPrompt
    g = torch.Generator().manual_seed(11)
    return [SoftPrompt(tensor=3 * torch.randn(4, 32, generator=g), name=f"s{i}", task=f"zt{i % 2}", backbone=str(folder))
            for i in range(n)]


def _zs_tasks(monkeypatch):
    """Two tasks of 12 and 16 rows, 1 in 4 positive in zt0 and 3 in 4 in zt1: a source that always says one
    label scores +0 on one and -0.5 on the other (majority rate 0.75), so heads that disagree show it."""
    tasks = {}
    for i in range(2):
        t = _task(f"zt{i}", n=12 + 4 * i)
        y = [int((j % 4 == 0) != bool(i)) for j in range(len(t.train))]
        sp = Split(list(t.train.texts), y)
        tasks[t.name] = Task(t.name, t.family, t.labels, t.descriptions, sp, sp, sp)
    monkeypatch.setattr("core.metrics.activations._get_task", lambda name: tasks[name])
    return tasks


def test_zs_matrix_reads_sources_through_a_chosen_label_word_head(roberta, tmp_path, monkeypatch):
    """Per-metric head selection for the metric matrix: zs through ``thunlp-roberta`` equals each source's
    position-0 label-word accuracy on the target's task minus its majority rate (a direct computation),
    is cached apart from the cosine head's zs, and a head the model does not have is one message."""
    from core.metrics import MetricError, compute_matrix, zs_params
    monkeypatch.setenv("ATLAS_CACHE", str(tmp_path / "cache"))
    folder, _model, _tok = roberta
    tasks = _zs_tasks(monkeypatch)
    src = _sources(folder, tmp_path)
    assert zs_params("cosine") == {} and zs_params(None) == {}
    counter: dict = {}
    df = compute_matrix("zs", src, counter=counter, **zs_params("thunlp-roberta"))
    assert counter["evaluations"] == 3 * 2   # one per (source, target task): s0 and s2 share zt0
    lm = load_lm(str(folder), HeadKind.mlm, "cpu", torch.float32)
    p = get_preset("thunlp-roberta")
    for s in src:
        for t in src:
            task = tasks[t.task]
            with torch.no_grad():
                sc = label_scores(lm, p, s.tensor, word_token_ids(lm, WORDS, p), task.validation.texts, max_length=128)
            acc = float((sc.argmax(-1) == torch.tensor(task.validation.labels)).float().mean())
            assert df.at[s.name, t.name] == pytest.approx(acc - 0.75)
    again: dict = {}
    assert compute_matrix("zs", src, counter=again, cache=False, **zs_params("thunlp-roberta")).equals(df)
    assert again.get("evaluations", 0) == 0     # the (prompt, task) pairs are cached by head
    cosine: dict = {}
    compute_matrix("zs", src, counter=cosine, cache=False)
    assert cosine["evaluations"] == 6           # the cosine head's numbers are other numbers
    with pytest.raises(MetricError, match="zs head 'linear'"):
        zs_params("linear")
    with pytest.raises(MetricError, match="zs through peft-seq2seq: .*roberta model has no seq2seq head"):
        compute_matrix("zs", src, cache=False, **zs_params("peft-seq2seq"))   # one message, no traceback
    from core.metrics import BackboneUnavailable
    from core.prompts.types import SoftPrompt
    gone = [SoftPrompt(tensor=s.tensor, name=s.name, task="no_data_here", backbone="no-such-org/no-such-model")
            for s in src]   # said as the cosine head says it, even where no target has data to evaluate
    with pytest.raises(BackboneUnavailable, match="zs needs backbone no-such-org/no-such-model, not available"):
        compute_matrix("zs", gone, cache=False, **zs_params("thunlp-roberta"))


def test_matrix_cli_and_job_take_the_zs_head(roberta, tmp_path, monkeypatch, capsys):
    """``python -m core matrix --metric zs --head PRESET`` prints the head's matrix; the page's background
    job carries the head in its key and spec, so a cosine job and a label-word job are two jobs."""
    from core import jobs as J
    from core.metrics import compute_matrix, zs_params
    from core.metrics.cli import cli
    from core.prompts.files import write_prompt
    from core.runs.store import RunStore
    monkeypatch.setenv("ATLAS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ATLAS_HOME", str(tmp_path / "home"))
    folder, _model, _tok = roberta
    _zs_tasks(monkeypatch)
    src = _sources(folder, tmp_path)
    lib = tmp_path / "lib"
    for s in src:
        write_prompt(s, lib / s.name)
    want = compute_matrix("zs", src, cache=False, **zs_params("thunlp-roberta"))
    monkeypatch.chdir(folder.parent)   # the saved prompts name their model by its folder name: found from here
    assert cli("matrix", ["--library", str(lib), "--metric", "zs", "--head", "thunlp-roberta", "--no-cache"]) == 0
    import io
    import pandas as pd
    got = pd.read_csv(io.StringIO(capsys.readouterr().out), index_col=0)
    assert got.loc[want.index, want.columns].to_numpy() == pytest.approx(want.to_numpy(), abs=1e-6)
    assert cli("matrix", ["--library", str(lib), "--metric", "e_avg", "--head", "thunlp-roberta"]) == 2
    assert "--head reads zs through a head" in capsys.readouterr().err
    store = RunStore(tmp_path / "home" / "runs.db")
    assert J.job_key("zs", src) != J.job_key("zs", src, zs_params("thunlp-roberta"))
    assert J.job_key("zs", src, zs_params("cosine")) == J.job_key("zs", src)
    job, created = J.submit_matrix_job("zs", src, store=store, spawn=False, params=zs_params("thunlp-roberta"))
    assert created and job["key"] == J.job_key("zs", src, zs_params("thunlp-roberta"))
    assert J.estimate_metric("zs", src, store, zs_params("thunlp-roberta")).units == 6
    assert J.work(job["job_id"], store=store) == "finished"
    assert J.zs_missing(src, store, head="thunlp-roberta") == (0, 6) and J.zs_missing(src, store) == (6, 6)


def test_a_label_word_run_on_a_checkpoint_without_that_head_is_refused_at_launch(roberta, seq2seq):
    """Refused before it queues (config.json only): the bundled sentence-embedding MiniLM (saved as BertModel)
    through any LM head, a seq2seq head on RoBERTa; the tiny RoBERTa MLM and T5 pass."""
    from core.runs.spec import RunSpec, SpecError, validate_spec
    with pytest.raises(SpecError) as e:
        validate_spec(RunSpec(method="scratch", target="sent_movie", params={"lm_head": "mlm-default", "steps": 1}))
    assert set(e.value.problems) == {"lm_head"}
    assert "saved as BertModel, without an LM head" in e.value.problems["lm_head"]
    folder = str(roberta[0])
    with pytest.raises(SpecError) as e:
        validate_spec(RunSpec(method="scratch", target="sent_movie", backbone=folder,
                              params={"lm_head": "peft-seq2seq", "steps": 1}))
    assert "is not an encoder-decoder model (roberta)" in e.value.problems["lm_head"]
    ok = validate_spec(RunSpec(method="scratch", target="sent_movie", backbone=folder,
                               params={"lm_head": "thunlp-roberta", "steps": 1}))
    assert ok.params["lm_head"] == "thunlp-roberta"
    validate_spec(RunSpec(method="scratch", target="sent_movie", backbone=str(seq2seq[0]),
                          params={"lm_head": "thunlp-t5", "steps": 1}))
