"""Label-word heads (core.heads): each head's scores equal a direct computation on tiny random models built
from transformers configs at test time (tokenizer: the bundled MiniLM's; nothing downloaded).

- causal / seq2seq: PEFT's own forward of a PromptTuning (and, for seq2seq, a multitask prompt tuning) model,
  saved and read back through core.prompts (the decoder half where PEFT's forward uses it);
- mlm / thunlp preset: a transcription of thunlp's input layout (prompt + <s> + text + </s>, the prompt
  written over placeholder ids, positions from the ids) and position-0 scoring on a tiny RobertaForMaskedLM.
"""
from __future__ import annotations

import json

import pytest
import torch
import transformers
from peft import PromptTuningConfig, TaskType, get_peft_model

from core.backbone import resolve_model_path
from core.heads import HeadError, HeadKind, HeadPreset, get_preset, label_words, preset_for, store_preset
from core.heads.cli import cli_eval
from core.heads.evaluate import decoder_half, evaluate_prompt
from core.heads.scorer import label_scores, load_lm, text_ids, word_token_ids
from core.prompts import read_prompts, write_prompt
from core.prompts.types import SoftPrompt
from core.tasks import Split, Task

TEXTS = ["a gripping film with a fine cast", "dull", "the plot never finds its feet and drags on"]
WORDS = ["negative", "positive"]


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tok")
    transformers.AutoTokenizer.from_pretrained(resolve_model_path(None)).save_pretrained(d)
    return d


def _save(model, tok_dir, folder):
    model.save_pretrained(folder)
    transformers.AutoTokenizer.from_pretrained(tok_dir).save_pretrained(folder)
    return folder


def _task(name="tiny_sent", n=6):
    texts = [TEXTS[i % 3] + f" {i}" for i in range(n)]
    sp = Split(texts, [i % 2 for i in range(n)])
    return Task(name, "sentiment", ["negative", "positive"], ["a negative review", "a positive review"], sp, sp, sp)


# ------------------------------------------------------------------------------------------- causal
@pytest.fixture(scope="module")
def causal(tok_dir, tmp_path_factory):
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("causal")
    tok = transformers.AutoTokenizer.from_pretrained(tok_dir)
    base = transformers.GPT2LMHeadModel(transformers.GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2,
                                                                n_head=2, n_positions=128)).eval()
    folder = _save(base, tok_dir, root / "gpt2-tiny")
    pm = get_peft_model(base, PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=5))
    with torch.no_grad():
        pm.prompt_encoder["default"].embedding.weight.normal_()
    pm.save_pretrained(root / "adapter")
    return folder, pm.eval(), root / "adapter", tok


def _peft_causal_scores(pm, tok, prompt_len, texts, words, sequence):
    """Scores read off PEFT's own forward (prompt prepended by PEFT)."""
    enc = [tok(t)["input_ids"] for t in texts]
    wids = [tok.encode(" " + w, add_special_tokens=False) for w in words]
    out = torch.zeros(len(texts), len(words))
    for c, w in enumerate(wids):
        for i, ids in enumerate(enc):  # one row at a time: no padding question at all
            full = ids + (w if sequence else [])
            with torch.no_grad():
                logits = pm(input_ids=torch.tensor([full]), attention_mask=torch.ones(1, len(full))).logits[0]
            at = prompt_len + len(ids) - 1
            if sequence:
                lp = logits.float().log_softmax(-1)
                out[i, c] = sum(lp[at + j, w[j]] for j in range(len(w)))
            else:
                out[i, c] = logits[at, w[0]]
    return out


@pytest.mark.parametrize("scoring", ["first_token", "sequence"])
def test_causal_scores_equal_peft_forward(causal, scoring):
    folder, pm, adapter, tok = causal
    prompt = read_prompts(adapter)[0]
    assert prompt.settings["peft_task_type"] == "CAUSAL_LM" and preset_for(prompt).name == "peft-causal"
    preset = get_preset("peft-causal").with_(scoring=scoring)
    lm = load_lm(str(folder), HeadKind.causal, "cpu", torch.float32)
    wids = word_token_ids(lm, WORDS, preset)
    ours = label_scores(lm, preset, torch.as_tensor(prompt.values), wids, TEXTS)   # batched, right-padded
    ref = _peft_causal_scores(pm, tok, prompt.L, TEXTS, WORDS, scoring == "sequence")
    assert ours.shape == (3, 2)
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)
    # the prompt matters: without it the scores move
    other = label_scores(lm, preset, torch.zeros_like(torch.as_tensor(prompt.values)), wids, TEXTS)
    assert not torch.allclose(other, ref, atol=1e-3)


# ------------------------------------------------------------------------------------------ seq2seq
def _tiny_t5(tok):
    cfg = transformers.T5Config(vocab_size=len(tok), d_model=32, d_ff=64, d_kv=16, num_layers=2, num_heads=2,
                                decoder_start_token_id=tok.pad_token_id, pad_token_id=tok.pad_token_id,
                                eos_token_id=tok.sep_token_id)
    return transformers.T5ForConditionalGeneration(cfg).eval()


@pytest.fixture(scope="module")
def seq2seq(tok_dir, tmp_path_factory):
    """A tiny T5 and two PEFT seq2seq adapters on it (2 transformer submodules: encoder + decoder halves):
    PROMPT_TUNING and MULTITASK_PROMPT_TUNING (2 tasks)."""
    from peft import MultitaskPromptTuningConfig
    torch.manual_seed(1)
    root = tmp_path_factory.mktemp("t5")
    tok = transformers.AutoTokenizer.from_pretrained(tok_dir)
    base = _tiny_t5(tok)
    folder = _save(base, tok_dir, root / "t5-tiny")
    out = {}
    for kind, cfg in (("pt", PromptTuningConfig(task_type=TaskType.SEQ_2_SEQ_LM, num_virtual_tokens=4)),
                      ("mpt", MultitaskPromptTuningConfig(task_type=TaskType.SEQ_2_SEQ_LM, num_virtual_tokens=4,
                                                          num_tasks=2, num_ranks=1))):
        pm = get_peft_model(transformers.T5ForConditionalGeneration.from_pretrained(folder).eval(), cfg)
        with torch.no_grad():
            for name, w in pm.prompt_encoder["default"].named_parameters():
                w.normal_()
        pm.save_pretrained(root / kind)
        out[kind] = (pm.eval(), root / kind)
    return folder, out, tok


def _peft_seq2seq_scores(pm, tok, texts, word_ids, sequence, task_id=None):
    """Scores read off PEFT's own forward: it shifts the labels right and puts its prompt(s) in front;
    the logits it returns cover the decoder prompt's positions too, when it prepends one."""
    enc = tok(texts, padding=True, return_tensors="pt")
    out = torch.zeros(len(texts), len(word_ids))
    kw = {} if task_id is None else {"task_ids": torch.full((len(texts),), task_id)}
    for c, w in enumerate(word_ids):
        labels = torch.tensor([w if sequence else w[:1]] * len(texts))
        with torch.no_grad():
            logits = pm(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], labels=labels, **kw).logits
        lp = logits[:, logits.shape[1] - labels.shape[1]:].float()
        if sequence:
            out[:, c] = lp.log_softmax(-1).gather(2, labels.unsqueeze(2)).squeeze(2).sum(1)
        else:
            out[:, c] = lp[:, 0, w[0]]
    return out


@pytest.mark.parametrize("scoring", ["first_token", "sequence"])
def test_seq2seq_prompt_tuning_scores_equal_peft_forward(seq2seq, scoring):
    """PEFT saves a decoder half for SEQ_2_SEQ_LM PROMPT_TUNING but its forward runs the encoder half
    alone: so do we (decoder_half is None), and the scores are PEFT's."""
    folder, adapters, tok = seq2seq
    pm, adapter = adapters["pt"]
    parts = read_prompts(adapter)
    assert [p.settings.get("part") for p in parts] == ["encoder", "decoder"]
    enc_prompt = parts[0]
    assert decoder_half(enc_prompt) is None and preset_for(enc_prompt).name == "peft-seq2seq"
    preset = get_preset("peft-seq2seq").with_(scoring=scoring)
    lm = load_lm(str(folder), HeadKind.seq2seq, "cpu", torch.float32)
    wids = word_token_ids(lm, WORDS, preset)
    if scoring == "sequence":  # the closing </s> is scored, as PEFT's training targets hold it
        assert all(w[-1] == tok.sep_token_id for w in wids)
    ours = label_scores(lm, preset, torch.as_tensor(enc_prompt.values), wids, TEXTS)
    torch.testing.assert_close(ours, _peft_seq2seq_scores(pm, tok, TEXTS, wids, scoring == "sequence"),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("scoring", ["first_token", "sequence"])
def test_seq2seq_multitask_scores_equal_peft_forward_with_decoder_half(seq2seq, scoring):
    """MULTITASK_PROMPT_TUNING on SEQ_2_SEQ_LM: PEFT prepends task t's decoder half to the decoder input."""
    folder, adapters, tok = seq2seq
    pm, adapter = adapters["mpt"]
    parts = {p.settings.get("part"): p for p in read_prompts(adapter)}
    enc_prompt = parts["task1/encoder"]
    dec = decoder_half(enc_prompt)
    assert dec is not None and dec.shape == (4, 32)
    torch.testing.assert_close(dec, torch.as_tensor(parts["task1/decoder"].values))
    preset = get_preset("peft-seq2seq").with_(scoring=scoring)
    lm = load_lm(str(folder), HeadKind.seq2seq, "cpu", torch.float32)
    wids = word_token_ids(lm, WORDS, preset)
    P = torch.as_tensor(enc_prompt.values)
    ours = label_scores(lm, preset, P, wids, TEXTS, decoder_prompt=dec)
    ref = _peft_seq2seq_scores(pm, tok, TEXTS, wids, scoring == "sequence", task_id=1)
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)
    # the decoder half is part of the adapter as PEFT runs it: leaving it out changes the scores
    assert not torch.allclose(label_scores(lm, preset, P, wids, TEXTS), ref, atol=1e-3)


# ---------------------------------------------------------------------------------- thunlp RoBERTa MLM
@pytest.fixture(scope="module")
def roberta(tok_dir, tmp_path_factory):
    torch.manual_seed(2)
    tok = transformers.AutoTokenizer.from_pretrained(tok_dir)
    cfg = transformers.RobertaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=160, pad_token_id=tok.pad_token_id,
                                     type_vocab_size=1)
    model = transformers.RobertaForMaskedLM(cfg).eval()
    return _save(model, tok_dir, tmp_path_factory.mktemp("roberta") / "roberta-tiny"), model, tok


def _thunlp_scores(model, tok, P, texts, words):
    """thunlp PromptRoberta, transcribed: input ids = L prompt placeholders + <s> text </s> (the
    formatter), the placeholders' embeddings replaced by the prompt (the model's embedding hook),
    RoBERTa's positions from the ids; score = MLM logits at position 0 over encode(word)[0]."""
    L = P.shape[0]
    rows = [[tok.mask_token_id] * L + tok.encode(t) for t in texts]
    T = max(map(len, rows))
    ids = torch.tensor([r + [tok.pad_token_id] * (T - len(r)) for r in rows])
    mask = (ids != tok.pad_token_id).long()
    emb = model.get_input_embeddings()(ids).clone()
    emb[:, :L] = P
    pos = transformers.models.roberta.modeling_roberta.RobertaEmbeddings.create_position_ids_from_input_ids(
        ids, tok.pad_token_id) if hasattr(transformers.models.roberta.modeling_roberta.RobertaEmbeddings,
                                          "create_position_ids_from_input_ids") else \
        transformers.models.roberta.modeling_roberta.create_position_ids_from_input_ids(ids, tok.pad_token_id)
    label_ids = [tok.encode(w, add_special_tokens=False)[0] for w in words]
    with torch.no_grad():
        logits = model(inputs_embeds=emb, attention_mask=mask, position_ids=pos).logits
    return logits[:, 0, label_ids]


def test_thunlp_roberta_preset_equals_their_layout_and_position0(roberta):
    folder, model, tok = roberta
    torch.manual_seed(3)
    P = torch.randn(6, 32)
    preset = get_preset("thunlp-roberta")
    words, source = label_words(preset, _task())
    assert (words, source) == (["negative", "positive"], "preset")
    lm = load_lm(str(folder), HeadKind.mlm, "cpu", torch.float32)
    ours = label_scores(lm, preset, P, word_token_ids(lm, words, preset), TEXTS)
    ref = _thunlp_scores(model, tok, P, TEXTS, words)
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)
    # position 0 is the point: the generic mask-after reading of the same prompt gives other scores
    generic = get_preset("mlm-default")
    assert not torch.allclose(label_scores(lm, generic, P, word_token_ids(lm, words, generic), TEXTS), ref, atol=1e-3)


def test_mask_after_reads_a_mask_before_the_closing_separator(roberta):
    folder, model, tok = roberta
    preset = get_preset("mlm-default")
    lm = load_lm(str(folder), HeadKind.mlm, "cpu", torch.float32)
    ids, _ = text_ids(lm, preset, ["dull"])
    assert ids[0][-2:] == [tok.mask_token_id, tok.sep_token_id] and ids[0][0] == tok.cls_token_id
    P = torch.randn(3, 32)
    emb = torch.cat([P, model.get_input_embeddings()(torch.tensor(ids[0]))], 0).unsqueeze(0)
    with torch.no_grad():
        direct = model(inputs_embeds=emb).logits[0, 3 + len(ids[0]) - 2]
    wids = word_token_ids(lm, WORDS, preset)
    torch.testing.assert_close(label_scores(lm, preset, P, wids, ["dull"])[0], direct[[w[0] for w in wids]])


def test_evaluate_prompt_is_the_argmax_of_the_scores_and_cli_prints_it(roberta, tmp_path, capsys):
    folder, model, tok = roberta
    torch.manual_seed(4)
    P = torch.randn(4, 32)
    task = _task()
    res = evaluate_prompt(SoftPrompt(tensor=P.numpy(), name="p"), task, get_preset("thunlp-roberta"),
                          backbone=str(folder), device="cpu")
    ref = _thunlp_scores(model, tok, P, task.test.texts, WORDS).argmax(1)
    expect = float((ref == torch.tensor(task.test.labels)).float().mean())
    assert res.n == 6 and res.split == "test" and res.accuracy == pytest.approx(expect)
    assert "head=mlm preset=thunlp-roberta position=first_prompt words=negative,positive (preset)" in res.line()
    # the CLI, on a prompt written as an adapter folder, with a stored preset
    sp = SoftPrompt(tensor=P.numpy(), name="p", backbone=str(folder))
    out = write_prompt(sp, tmp_path / "p", base_model=str(folder))
    rc = cli_eval([str(out), "--task", "sent_movie", "--preset", "thunlp-roberta", "--backbone", str(folder),
                   "--limit", "8", "--device", "cpu", "--save-preset"], "prompts eval")
    got = capsys.readouterr()
    if rc != 0 and "sent_movie" in got.err:
        pytest.skip(f"demo task sent_movie not prepared here: {got.err.strip()}")
    assert rc == 0, got.err
    assert "on sent_movie test (n=8) head=mlm preset=thunlp-roberta" in got.out
    stored = json.loads((out / "atlas.json").read_text())["settings"]["head"]
    assert stored["name"] == "thunlp-roberta" and stored["position"] == "first_prompt"
    assert preset_for(read_prompts(out)[0]).to_dict() == stored


# -------------------------------------------------------------------------------------- presets
def test_presets_validate_and_resolve_words():
    with pytest.raises(HeadError, match="head 'bogus': use one of cosine, mlm, seq2seq, causal"):
        HeadPreset("x", head="bogus")
    with pytest.raises(HeadError, match="scoring 'sequence' needs a seq2seq or causal head"):
        HeadPreset("x", head="mlm", scoring="sequence")
    with pytest.raises(HeadError, match="repeats a word"):
        HeadPreset("x", verbalizer={"t": ["yes", "yes"]})
    with pytest.raises(HeadError, match="unknown key"):
        HeadPreset.from_dict({"name": "x", "layout": "?"})
    task = _task()
    p = get_preset("thunlp-roberta").with_(verbalizer={"tiny_sent": ["bad", "good"]})
    assert label_words(p, task) == (["bad", "good"], "verbalizer")
    with pytest.raises(HeadError, match="has 3 words but the task has 2 labels"):
        label_words(get_preset("cosine").with_(verbalizer={"tiny_sent": ["a", "b", "c"]}), task)
    assert label_words(get_preset("mlm-default").with_(words="descriptions"), task)[0] == task.descriptions
    nli = Task("rte", "nli", ["entailment", "not_entailment"], ["e", "n"], *[Split(["x"], [0])] * 3)
    assert label_words(get_preset("thunlp-roberta"), nli)[0] == ["yes", "no"]
    assert label_words(get_preset("thunlp-t5"), nli)[0] == ["entailment", "contradiction"]
    topic = Task("topic", "topic", ["sports", "world"], ["s", "w"], *[Split(["x"], [0])] * 3)
    words, source = label_words(get_preset("thunlp-t5"), topic)
    assert words == ["sports", "world"] and "do not cover" in source


def test_released_prompts_get_their_family_preset():
    from pathlib import Path
    root = Path("/work/shared/real-prompts/thunlp-prompt-transferability/task_prompt_emb")
    if not root.is_dir():
        pytest.skip(f"{root} not on this machine")
    got = {d.name: preset_for(read_prompts(d / "task_prompt")[0]).name
           for d in root.iterdir() if (d / "task_prompt").is_file()}
    assert got["IMDBPromptRoberta"] == "thunlp-roberta"
    assert got["MNLIPromptBert"] == "thunlp-bert"
    assert got["MNLIPromptT5Small"] == "thunlp-t5"


def test_store_preset_refuses_a_plain_file(tmp_path):
    f = tmp_path / "p.pt"
    torch.save(torch.randn(4, 384), f)
    with pytest.raises(HeadError, match="plain prompt file has no atlas.json"):
        store_preset(read_prompts(f)[0], get_preset("mlm-default"))


def test_first_token_collision_is_refused(roberta):
    folder, _, _ = roberta
    lm = load_lm(str(folder), HeadKind.mlm, "cpu", torch.float32)
    with pytest.raises(HeadError, match="share their first token"):
        word_token_ids(lm, ["positive", "positive indeed"], get_preset("mlm-default"))
    with pytest.raises(HeadError, match="has no seq2seq head"):
        load_lm(str(folder), HeadKind.seq2seq, "cpu", torch.float32)


def test_thunlp_bert_reads_position0_of_the_full_forward_with_token_types(tok_dir, tmp_path):
    """BERT (thunlp-bert): only the read position goes through the MLM head (core.heads.scorer._logits_at);
    the scores equal the full BertForMaskedLM forward's, pairs with their token types included."""
    torch.manual_seed(5)
    tok = transformers.AutoTokenizer.from_pretrained(tok_dir)
    model = transformers.BertForMaskedLM(transformers.BertConfig(
        vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)).eval()
    folder = _save(model, tok_dir, tmp_path / "bert-tiny")
    lm = load_lm(str(folder), HeadKind.mlm, "cpu", torch.float32)
    preset = get_preset("thunlp-bert")
    P = torch.randn(3, 32)
    wids = word_token_ids(lm, ["no", "yes"], preset)
    ours = label_scores(lm, preset, P, wids, TEXTS[:2], TEXTS[1:])
    for i in range(2):
        enc = tok(TEXTS[i], TEXTS[i + 1], return_tensors="pt")
        assert enc["token_type_ids"].sum() > 0
        emb = torch.cat([P.unsqueeze(0), model.get_input_embeddings()(enc["input_ids"])], 1)
        tt = torch.cat([torch.zeros(1, 3, dtype=torch.long), enc["token_type_ids"]], 1)
        with torch.no_grad():
            full = model(inputs_embeds=emb, token_type_ids=tt).logits[0, 0]
        torch.testing.assert_close(ours[i], full[[w[0] for w in wids]], rtol=1e-4, atol=1e-4)


# training through a head: tests/test_lmhead_training.py (core.training with TrainConfig.lm_head)


def test_a_released_thunlp_roberta_prompt_is_read_on_a_width_768_masked_lm(tok_dir, tmp_path):
    """The real SST2PromptRoberta [100, 768] through the thunlp-roberta preset on a tiny width-768 RoBERTa MLM
    (random weights: the number is not the authors', the path is theirs): its preset comes from the folder
    name, the words from the preset, position 0 is read, and the accuracy is the argmax of those scores."""
    from pathlib import Path
    f = Path("/work/shared/real-prompts/thunlp-prompt-transferability/task_prompt_emb/SST2PromptRoberta/task_prompt")
    if not f.is_file():
        pytest.skip(f"{f} not on this machine")
    prompt = read_prompts(f)[0]
    assert (prompt.L, prompt.d, prompt.backbone) == (100, 768, "roberta-base")
    torch.manual_seed(6)
    tok = transformers.AutoTokenizer.from_pretrained(tok_dir)
    model = transformers.RobertaForMaskedLM(transformers.RobertaConfig(
        vocab_size=len(tok), hidden_size=768, num_hidden_layers=1, num_attention_heads=12, intermediate_size=64,
        max_position_embeddings=200, pad_token_id=tok.pad_token_id, type_vocab_size=1)).eval()
    folder = _save(model, tok_dir, tmp_path / "roberta-768")
    task = _task()
    res = evaluate_prompt(prompt, task, backbone=str(folder), device="cpu")
    assert res.preset.name == "thunlp-roberta" and res.words == ["negative", "positive"]
    ref = _thunlp_scores(model, tok, torch.as_tensor(prompt.values), task.test.texts, WORDS).argmax(1)
    assert res.accuracy == pytest.approx(float((ref == torch.tensor(task.test.labels)).float().mean()))


def test_too_long_for_the_models_positions_is_one_clear_error(roberta):
    folder, _, _ = roberta
    lm = load_lm(str(folder), HeadKind.mlm, "cpu", torch.float32)
    preset = get_preset("thunlp-roberta")
    with pytest.raises(HeadError, match=r"exceed the 159 positions of .*lower max_length"):
        label_scores(lm, preset, torch.zeros(150, 32), word_token_ids(lm, WORDS, preset), TEXTS)
