"""Several sources at once: attempt (ATTEMPT's instance-wise mixture) and multi-teacher panda.

    .venv/bin/python -m pytest -q tests/test_multisource.py

Real demo tasks, MiniLM on CPU, tiny budgets (as tests/test_packed.py).
"""
from __future__ import annotations

import pytest
import torch

from core.backbone import load_backbone
from core.training import TrainConfig, TrainError, train, train_packed
from core.training.loop import Run

TARGETS = ("sent_tweet", "sent_movie", "sent_product")
COMMON = dict(steps=10, batch_size=8, train_size=48, val_size=24, test_size=24, eval_every=5,
              max_length=32, padding="max_length", eval_at_start=False)


@pytest.fixture(scope="module")
def bb():
    return load_backbone(None, "cpu")


@pytest.fixture(scope="module")
def tasks():
    from core.tasks import TaskError, get_task
    try:
        return {t: get_task(t) for t in TARGETS}
    except (TaskError, ValueError) as e:
        pytest.skip(f"demo tasks {TARGETS} are not prepared ({e}); run `python -m core tasks prepare`")


def _sources(bb, K=3, L=20):
    g = torch.Generator().manual_seed(11)
    return [torch.randn(L, bb.dim, generator=g) * 0.5 for _ in range(K)]


def _batch(run: Run):
    ids, idx = run.next_batch()
    return ids, idx, run.bb.pad(ids, run.pad_to)


# --------------------------------------------------------------------------- #
# attempt
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("fix", ["target", 1])
def test_attempt_with_fixed_attention_is_prompt_tuning_with_that_prompt(bb, tasks, fix):
    """Attention fixed on the target: P(x) = 2 P_t; on source s: P_s + P_t. Either way the loss is
    prompt tuning's with that fixed prompt on the same batch."""
    src = _sources(bb)
    a = Run(TrainConfig(method="attempt", task=TARGETS[0], sources=src, **COMMON), bb, tasks[TARGETS[0]])
    s = Run(TrainConfig(method="scratch", task=TARGETS[0], **COMMON), bb, tasks[TARGETS[0]])
    onehot = torch.zeros(a.mixer.K + 1)
    onehot[-1 if fix == "target" else fix] = 1.0
    a.mixer.fixed = onehot
    ids, idx, b = _batch(a)
    P = a.batch_prompt(b["input_ids"], b["attention_mask"])  # [B, L, d]
    Pt = a.prompt.detach()
    want = 2 * Pt if fix == "target" else src[fix] + Pt
    assert P.shape == (len(ids), 20, bb.dim)
    assert torch.allclose(P.detach(), want.expand_as(P), atol=1e-6)
    la = a.loss(a.head(bb.encode(b["input_ids"], b["attention_mask"], P, pool="text")), ids, idx)
    ls = s.loss(s.head(bb.encode(b["input_ids"], b["attention_mask"], want, pool="text")), ids, idx)
    assert float(la.detach()) == pytest.approx(float(ls.detach()), rel=1e-6, abs=1e-7)
    # and it is not any prompt: the other fixed choice gives another loss
    other = src[0] + Pt if fix == "target" else 2 * Pt
    lo = s.loss(s.head(bb.encode(b["input_ids"], b["attention_mask"], other, pool="text")), ids, idx).detach()
    assert abs(float(lo) - float(la.detach())) > 1e-5


def test_attempt_attention_sums_to_one_changes_with_input_and_sources_get_no_gradient(bb, tasks):
    src = _sources(bb)
    a = Run(TrainConfig(method="attempt", task=TARGETS[0], sources=src, **COMMON), bb, tasks[TARGETS[0]])
    ids, idx, b = _batch(a)
    att = a.mixer.attention(bb.embed_ids(b["input_ids"]), b["attention_mask"], a.prompt)  # [B, K+1]
    assert att.shape == (len(ids), 4)
    assert torch.allclose(att.sum(-1), torch.ones(len(ids)), atol=1e-6)
    assert float((att - att[0]).detach().abs().max()) > 1e-6  # instance-wise: rows differ
    # the sources are a buffer, not parameters; the optimiser holds prompt + module only
    names = {n for n, _ in a.mixer.named_parameters()}
    assert names == {"attn_W_down.weight", "attn_W_up.weight", "layer_norm.weight", "layer_norm.bias"}
    assert not a.mixer.sources.requires_grad
    P = a.batch_prompt(b["input_ids"], b["attention_mask"])
    a.loss(a.head(bb.encode(b["input_ids"], b["attention_mask"], P, pool="text")), ids, idx).backward()
    assert a.prompt.grad is not None and float(a.prompt.grad.abs().sum()) > 0
    assert a.mixer.attn_W_down.weight.grad is not None and float(a.mixer.attn_W_down.weight.grad.abs().sum()) > 0
    assert a.mixer.sources.grad is None
    before = a.mixer.sources.clone()
    for _ in range(3):
        a.update()
        ids, idx, b = _batch(a)
        P = a.batch_prompt(b["input_ids"], b["attention_mask"])
        a.loss(a.head(bb.encode(b["input_ids"], b["attention_mask"], P, pool="text")), ids, idx).backward()
    assert torch.equal(a.mixer.sources, before)
    assert torch.equal(a.mixer.sources[1].cpu(), src[1])


def test_sources_of_different_length_or_backbone_are_refused(bb, tasks, tmp_path):
    src = _sources(bb)
    short = torch.randn(10, bb.dim)
    with pytest.raises(TrainError, match="differ in prompt length") as e:
        train(TrainConfig(method="attempt", task=TARGETS[0], sources=[src[0], short], **COMMON), backbone=bb,
              task=tasks[TARGETS[0]])
    assert "\n" not in str(e.value)
    with pytest.raises(TrainError, match="L=10 but prompt_length is 20"):
        train(TrainConfig(method="attempt", task=TARGETS[0], sources=[short], **COMMON), backbone=bb,
              task=tasks[TARGETS[0]])
    from core.prompts import SoftPrompt
    a = SoftPrompt(tensor=src[0], name="a", backbone="org/model-a")
    b = SoftPrompt(tensor=src[1], name="b", backbone="org/model-b")
    with pytest.raises(TrainError, match="different backbones"):
        train(TrainConfig(method="attempt", task=TARGETS[0], sources=[a, b], **COMMON), backbone=bb,
              task=tasks[TARGETS[0]])


# --------------------------------------------------------------------------- #
# multi-teacher panda
# --------------------------------------------------------------------------- #
def _losses(events):
    return [e["metrics"][k] for e in events if e["kind"] == "progress" for k in ("loss", "ce", "kd")]


def test_panda_with_one_teacher_in_the_list_is_todays_panda(bb, tasks):
    src = _sources(bb)
    kw = dict(method="panda", task=TARGETS[1], sources=[src[0]], kd_lambda=0.5, **COMMON)
    ev1, ev2 = [], []
    r1 = train(TrainConfig(teacher=src[1], **kw), backbone=bb, task=tasks[TARGETS[1]], callback=ev1.append)
    r2 = train(TrainConfig(teachers=[src[1]], teacher_weights=[3.0], **kw), backbone=bb, task=tasks[TARGETS[1]],
               callback=ev2.append)
    assert _losses(ev1) == _losses(ev2) and all(x > 0 for x in _losses(ev1)[2::3])
    assert torch.equal(r1.prompt.tensor, r2.prompt.tensor) and r1.test_score == r2.test_score


def test_teacher_weights_are_normalised_and_weigh_each_mse(bb, tasks):
    src = _sources(bb)
    cfg = TrainConfig(method="panda", task=TARGETS[1], teachers=src[:2], teacher_weights=[1, 3], kd_lambda=0.5,
                      **COMMON)
    assert cfg.kd_weights() == [0.25, 0.75] and sum(TrainConfig(
        method="panda", task=TARGETS[1], teachers=src, kd_lambda=0.5, **COMMON).kd_weights()) == pytest.approx(1)
    assert cfg.settings()["teacher_weights"] == [0.25, 0.75]
    r = Run(cfg, bb, tasks[TARGETS[1]])
    ids, idx, b = _batch(r)
    logits_in = bb.encode(b["input_ids"], b["attention_mask"], r.prompt, pool="text")
    z = r.head(logits_in)
    r.loss(z, ids, idx)
    it = torch.tensor(idx)
    m = [torch.nn.functional.mse_loss(z, t.logits(ids, it, r.pad_to)) for _, t in r.teachers]
    assert float(m[0]) != pytest.approx(float(m[1]))
    assert float(r._kd) == pytest.approx(0.25 * float(m[0]) + 0.75 * float(m[1]), rel=1e-6)
    assert float(r._loss) == pytest.approx(float(r._ce) + 0.5 * float(r._kd), rel=1e-6)
    with pytest.raises(TrainError, match="2 teacher weights for 3 teachers"):
        TrainConfig(method="panda", task=TARGETS[1], teachers=src, teacher_weights=[1, 2], **COMMON)
    with pytest.raises(TrainError, match="not both"):
        TrainConfig(method="panda", task=TARGETS[1], teacher=src[0], teachers=src, **COMMON)


# --------------------------------------------------------------------------- #
# the three methods: packed = unpacked, saved, loaded back, in the Library
# --------------------------------------------------------------------------- #
def _three(bb):
    src = _sources(bb)
    return [
        TrainConfig(method="attempt", task=TARGETS[0], sources=src, seed=1, name="mix-attempt", **COMMON),
        TrainConfig(method="panda", task=TARGETS[1], teachers=src, teacher_weights=[0.5, 0.3, 0.2], kd_lambda=0.5,
                    seed=2, name="mix-panda", **COMMON),
        TrainConfig(method="pot", task=TARGETS[2], sources=src, source_weights=[0.5, 0.3, 0.2], seed=3,
                    name="mix-spot", **COMMON),
    ]


def _key(events):
    return [(e["kind"], e["step"], e["metrics"].get("state"), e["metrics"].get("val_score")) for e in events]


def test_three_methods_packed_equal_unpacked_save_load_and_library(bb, tasks, tmp_path):
    cfgs = _three(bb)
    ev0 = [[] for _ in cfgs]
    solo = [train(c, backbone=bb, task=tasks[c.task], callback=e.append) for c, e in zip(cfgs, ev0)]
    ev1 = [[] for _ in cfgs]
    outs = train_packed(_three(bb), backbone=bb, tasks=[tasks[c.task] for c in cfgs],
                        callbacks=[e.append for e in ev1])
    for s, o, e0, e1 in zip(solo, outs, ev0, ev1):
        assert o.status == "finished", o.error
        assert _key(e1) == _key(e0)
        assert _losses(e1) == pytest.approx(_losses(e0), rel=1e-4, abs=1e-6)
        assert (o.result.val_score, o.result.test_score, o.result.best_step) == (s.val_score, s.test_score,
                                                                                  s.best_step)
        assert float((o.result.prompt.tensor - s.prompt.tensor).abs().max()) <= 1e-4 * float(
            s.prompt.tensor.abs().max())
        assert not torch.equal(s.prompt.tensor, s.init_prompt)  # it trained
    # attempt's module trained too, and packed agrees on it
    a0, a1 = solo[0].mixer_state, outs[0].result.mixer_state
    assert all(torch.allclose(a0[k], a1[k], rtol=1e-4, atol=1e-6) for k in a0)
    att = solo[0].prompt.settings["attempt"]["mean_attention"]
    assert len(att) == 4 and sum(att.values()) == pytest.approx(1, abs=1e-5)

    from core.library import index_library
    from core.prompts import read_prompt
    from core.training import save_result
    from core.training.attempt import MixedPrompt, load_attempt
    from core.training.evaluation import accuracy, predict_logits
    from core.training.data import load_test_split
    lib = tmp_path / "lib"
    for s in solo:
        save_result(s, lib / s.prompt.name)
    back = read_prompt(lib / "mix-attempt")
    assert torch.equal(back.tensor, solo[0].prompt.tensor) and back.method == "attempt"
    assert back.settings["attempt"]["mean_attention"] == att
    # the instance-wise prompt is recomputed from the folder alone: the same test score
    m = load_attempt(lib / "mix-attempt")
    assert torch.equal(m.sources, torch.stack(_sources(bb)))
    cfg = cfgs[0]
    r = Run(cfg, bb, tasks[cfg.task])
    te_ids, te_labels = load_test_split(cfg, bb, tasks[cfg.task])
    score = accuracy(predict_logits(bb, r.head, te_ids, MixedPrompt(bb, m, back.tensor), cfg.pool), te_labels)
    assert score == pytest.approx(solo[0].test_score, abs=1e-6)  # float32 accuracy vs the stored float64 one
    index = index_library(lib)
    assert sorted(index.prompts) == ["mix-attempt", "mix-panda", "mix-spot"]  # attempt.safetensors is no prompt
    assert index.prompts["mix-panda"].settings["teacher_weights"] == [0.5, 0.3, 0.2]


def test_library_detail_shows_an_attempt_prompts_mean_attention(tmp_path, monkeypatch):
    """The Library's detail of an attempt prompt lists its mean attention over its sources, as recorded."""
    from apptest import no_exception, open_page
    from core.prompts import SoftPrompt, write_prompt
    att = {"sent_movie": 0.41, "sent_product": 0.25, "spam_sms": 0.04, "target": 0.30}
    lib = tmp_path / "lib"
    write_prompt(SoftPrompt(tensor=torch.randn(20, 384), name="mix-attempt", task="sent_tweet", method="attempt",
                            backbone="sentence-transformers/all-MiniLM-L6-v2",
                            settings={"attempt": {"sources": list(att)[:3], "mean_attention": att}}),
                 lib / "mix-attempt")
    monkeypatch.setenv("ATLAS_DEMO", str(tmp_path / "no-demo"))
    monkeypatch.setenv("ATLAS_LIBRARY", str(lib))
    from pathlib import Path
    at = no_exception(open_page(Path(__file__).resolve().parent.parent / "pages" / "library.py"))
    assert at.selectbox(key="library_detail").value == "mix-attempt"
    shown = [d.value for d in at.dataframe if "mean attention" in d.value.columns]
    assert len(shown) == 1
    t = shown[0]
    assert list(t["prompt"]) == ["sent_movie", "target", "sent_product", "spam_sms"]  # largest first
    assert list(t["mean attention"]) == [0.41, 0.30, 0.25, 0.04]
    assert set(t.loc[t["prompt"] == "target", "role"]) == {"target (trained)"}


# --------------------------------------------------------------------------- #
# launching several sources (no training)
# --------------------------------------------------------------------------- #
def test_specs_with_several_sources(tmp_path):
    """panda from K sources: K PoT teachers first (or K raw-source teachers); attempt; a spec whose
    sources differ in length is refused before anything starts, in one line."""
    from core.config import demo_dir
    from core.prompts import SoftPrompt, write_prompt
    from core.runs.spec import RunSpec, SpecError, validate_spec
    from core.runs.sweeps import panda_pot_sweep, plan, several_teachers
    a, b = (str(demo_dir() / "prompts" / n) for n in ("sent_movie", "sent_product"))
    spec = RunSpec(method="panda", target="spam_sms", sources=[a, b], params={"steps": 5})
    keys = [p.key for p in plan(panda_pot_sweep(spec))]
    assert keys == ["scratch|spam_sms|0", f"pot|{a}|spam_sms|0", f"pot|{b}|spam_sms|0", "mix-panda|spam_sms|0"]
    student = plan(panda_pot_sweep(spec))[-1]
    assert student.spec.teachers == [f"key:pot|{a}|spam_sms|0", f"key:pot|{b}|spam_sms|0"] and len(student.deps) == 2
    raw = several_teachers(RunSpec(method="panda", target="spam_sms", sources=[a, b],
                                   params={"teacher_mode": "source"}))
    assert raw.teachers == [a, b] and panda_pot_sweep(raw) is None
    short = write_prompt(SoftPrompt(tensor=torch.randn(10, 384), name="short",
                                    backbone="sentence-transformers/all-MiniLM-L6-v2"), tmp_path / "short")
    with pytest.raises(SpecError, match="differ in prompt length") as e:
        validate_spec(RunSpec(method="attempt", target="spam_sms", sources=[a, str(short)]))
    assert "\n" not in str(e.value) and "short L=10" in str(e.value)
    ok = validate_spec(RunSpec(method="attempt", target="spam_sms", sources=[a, b], params={"steps": 5}))
    assert ok.source_label == "sent_movie+sent_product"


def test_attempt_target_prompt_takes_the_sources_length(tmp_path):
    """Found by the browser test: a ranked mix of L=8 prompts queued attempt at the default
    prompt_length 20 and failed in the worker. The spec now takes the sources' length, and refuses
    another one asked for explicitly -- at launch, not in a worker."""
    from core.prompts import SoftPrompt, write_prompt
    from core.runs.spec import RunSpec, SpecError, validate_spec
    bbn = "sentence-transformers/all-MiniLM-L6-v2"
    a, b = (str(write_prompt(SoftPrompt(tensor=torch.randn(8, 384), name=n, backbone=bbn), tmp_path / n))
            for n in ("a8", "b8"))
    ok = validate_spec(RunSpec(method="attempt", target="spam_sms", sources=[a, b], params={"steps": 5}))
    assert ok.params["prompt_length"] == 8
    with pytest.raises(SpecError, match="needs their length 8, not 20"):
        validate_spec(RunSpec(method="attempt", target="spam_sms", sources=[a, b], params={"prompt_length": 20}))
