"""Label-word scores of a soft prompt read through a frozen LM head: masked-LM, seq2seq, causal.

    python -c "from core.heads.scorer import load_lm, label_scores; help(label_scores)"

:func:`load_lm` loads the model *with* its LM head (``AutoModelForMaskedLM`` / ``ForSeq2SeqLM`` /
``ForCausalLM``; core.backbone loads the bare encoder, which has none), frozen, from the same places
core.backbone finds models (a local folder, the bundled MiniLM, the local Hugging Face cache; never
the network). :func:`label_scores` returns ``[B, C]`` scores, one per label word, differentiable in
the prompt (so training can use them: cross-entropy over the labels' scores):

- ``mlm``: input = prompt + the tokenizer's ids for the text (``<s> text </s>``); logits at position 0
  (``first_prompt``, thunlp) or at a mask token inserted before the closing separator
  (``mask_after``), over each label word's first token;
- ``seq2seq``: encoder input = prompt + text ids; decoder input = [decoder prompt +] the start token
  (+ the label word's tokens but the last, for ``sequence``); ``first_token``: the first decoder step's
  logits over the words' first tokens; ``sequence``: sum_j log p(w_j | w_<j) over the word's tokens and
  the closing ``</s>`` (what PEFT's seq2seq training targets: ``tokenizer(label)``);
- ``causal``: input = prompt + text ids, the label word continues the text; ``first_token``: the
  logits after the text's last token; ``sequence``: sum_j log p(w_j | text, w_<j).

First-token scores are raw logits (thunlp takes cross-entropy over them); sequence scores are
log-probabilities. Either way argmax is the prediction. Prompts and scores are float32; the model's
own dtype inside (bf16 weights on CUDA).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import torch
import transformers

from core.backbone import BackboneError, _default_dtype, pair_token_types, resolve_device, resolve_model_path
from core.heads.presets import HeadError, HeadKind, HeadPreset, Position, Scoring

_CLASSES = {HeadKind.mlm: "AutoModelForMaskedLM", HeadKind.seq2seq: "AutoModelForSeq2SeqLM",
            HeadKind.causal: "AutoModelForCausalLM"}


@dataclass(eq=False)
class LM:
    """A frozen model with its LM head. dim: d, the width of the prompt it takes."""
    name: str
    path: str
    model: torch.nn.Module
    tokenizer: object
    head: HeadKind
    device: torch.device
    dtype: torch.dtype
    dim: int

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model.get_input_embeddings()(ids.to(self.device))


_CACHE: dict[tuple, LM] = {}
_LOCK = threading.Lock()


def load_lm(name_or_path: str | None, head: HeadKind | str, device: str = "auto",
            dtype: torch.dtype | None = None) -> LM:
    """Load (or reuse) a frozen LM for ``head``; HeadError says why not (no LM head of that kind, not here)."""
    head = HeadKind(head)
    if head == HeadKind.cosine:
        raise HeadError("the cosine head uses core.backbone's pooled features, not an LM head")
    try:
        path = resolve_model_path(name_or_path)
        dev = resolve_device(device)
    except BackboneError as e:
        raise HeadError(str(e)) from None
    dt = dtype or _default_dtype(dev)
    key = (path, head.value, str(dev), str(dt))
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
        try:
            config = transformers.AutoConfig.from_pretrained(path)
        except Exception as e:  # noqa: BLE001
            raise HeadError(f"{path}: cannot read the model config ({type(e).__name__})") from None
        cls = getattr(transformers, _CLASSES[head])
        if config.__class__ not in cls._model_mapping:
            raise HeadError(f"{name_or_path}: a {config.model_type} model has no {head.value} head "
                            f"({_CLASSES[head]} does not take it); pick another --head")
        try:
            tok = transformers.AutoTokenizer.from_pretrained(path)
            model, info = cls.from_pretrained(path, dtype=dt, output_loading_info=True)
        except Exception as e:  # noqa: BLE001
            raise HeadError(f"{path}: cannot load the {head.value} model or tokenizer ({type(e).__name__}: "
                            f"{str(e).splitlines()[0][:200]})") from None
        missing = sorted(info.get("missing_keys") or [])
        if missing:   # e.g. a sentence-embedding checkpoint (the bundled MiniLM) has no LM head: it would be random
            raise HeadError(f"{name_or_path or path}: the checkpoint has no trained {head.value} head ({len(missing)} weight(s) "
                            f"missing, e.g. {missing[0]}): its scores would come from random weights; use the "
                            "model with its LM head (or the cosine head)")
        if head == HeadKind.causal and tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        model.to(dev).eval()
        model.requires_grad_(False)
        lm = LM(name=str(name_or_path), path=path, model=model, tokenizer=tok, head=head, device=dev, dtype=dt,
                dim=int(model.get_input_embeddings().weight.shape[1]))
        _CACHE[key] = lm
        return lm


def word_token_ids(lm: LM, words: list[str], preset: HeadPreset) -> list[list[int]]:
    """Each label word's token ids: ``encode(prefix + word, add_special_tokens=False)`` (thunlp's
    rule), plus ``</s>`` (the tokenizer's eos, else the model config's) for seq2seq sequence scoring. Refuses an empty encoding and, for first-token
    scoring, two words that share their first token (their labels could not be told apart)."""
    out = []
    eos = lm.tokenizer.eos_token_id
    eos = eos if eos is not None else getattr(lm.model.config, "eos_token_id", None)   # the tokenizer's, else the model's
    for w in words:
        ids = list(lm.tokenizer.encode(preset.word_prefix + w, add_special_tokens=False))
        if not ids:
            raise HeadError(f"label word {w!r} encodes to no tokens with {lm.name}'s tokenizer")
        if lm.head == HeadKind.seq2seq and preset.scoring == Scoring.sequence and isinstance(eos, int):
            ids.append(int(eos))
        out.append(ids)
    if lm.head == HeadKind.mlm or preset.scoring == Scoring.first_token:
        first: dict[int, str] = {}
        for w, ids in zip(words, out):
            if ids[0] in first:
                raise HeadError(f"label words {first[ids[0]]!r} and {w!r} share their first token with "
                                f"{lm.name}'s tokenizer: first-token scores cannot tell them apart (set other "
                                "words, or use --scoring sequence with a seq2seq/causal head)")
            first[ids[0]] = w
    return out


def text_ids(lm: LM, preset: HeadPreset, texts: list[str], texts2: list[str] | None = None,
             max_length: int = 128) -> tuple[list[list[int]], list[list[int]] | None]:
    """Unpadded ids per text as the tokenizer encodes it (pairs as pairs), and token types where the
    model uses them (BERT-style); ``mask_after`` inserts the mask token before the closing separator."""
    tok = lm.tokenizer
    args = (list(texts),) if texts2 is None else (list(texts), list(texts2))
    ml = max_length - (1 if preset.head == HeadKind.mlm and preset.position == Position.mask_after else 0)
    enc = tok(*args, truncation="longest_first", max_length=ml, padding=False)
    ids = [list(x) for x in enc["input_ids"]]
    types = None
    if "token_type_ids" in enc and int(getattr(lm.model.config, "type_vocab_size", 0) or 0) >= 2:
        types = [list(x) for x in enc["token_type_ids"]]
    if preset.head == HeadKind.mlm and preset.position == Position.mask_after:
        if tok.mask_token_id is None:
            raise HeadError(f"{lm.name}: its tokenizer has no mask token, so 'mask_after' cannot be used")
        special = set(tok.all_special_ids)
        for i, row in enumerate(ids):
            at = len(row) - 1 if row and row[-1] in special else len(row)
            row.insert(at, int(tok.mask_token_id))
            if types is not None:
                types[i].insert(at, types[i][at - 1] if at else 0)
    return ids, types


def _pad(rows: list[list[int]], value: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    T = max(len(r) for r in rows)
    ids = torch.tensor([r + [value] * (T - len(r)) for r in rows], dtype=torch.long, device=device)
    mask = torch.tensor([[1] * len(r) + [0] * (T - len(r)) for r in rows], dtype=torch.long, device=device)
    return ids, mask


def pad_ids(lm: LM, ids: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded input_ids and mask [B, T] on the LM's device (its pad id, else 0)."""
    pad_id = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
    return _pad(ids, pad_id, lm.device)


def _with_prompt(lm: LM, prompt: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor):
    """inputs_embeds [B, L+T, d] (prompt [L, d], or one per row [B, L, d], in front) and the mask [B, L+T]."""
    emb = lm.embed(ids)
    B, L = ids.shape[0], prompt.shape[-2]
    p = prompt.to(device=lm.device, dtype=emb.dtype)
    p = p.unsqueeze(0).expand(B, -1, -1) if p.dim() == 2 else p
    return torch.cat([p, emb], 1), torch.cat([mask.new_ones((B, L)), mask], 1)


def uses_token_types(lm: LM) -> bool:
    """The model has a segment embedding the tokenizer fills for pairs (BERT; not RoBERTa, T5, decoders)."""
    return (lm.head == HeadKind.mlm and int(getattr(lm.model.config, "type_vocab_size", 0) or 0) >= 2
            and "token_type_ids" in getattr(lm.tokenizer, "model_input_names", ())
            and getattr(lm.tokenizer, "sep_token_id", None) is not None)


def token_types(lm: LM, ids: list[list[int]]) -> list[list[int]] | None:
    """Token types of encoded rows as a BERT tokenizer gives them for a pair: 0 up to and including
    the first separator, 1 after it (a single text: all 0); None where the model has none. A training
    run keeps ids only, so it reads the types back from them (equal to the tokenizer's: tested)."""
    if not uses_token_types(lm):
        return None
    x, m = _pad(ids, 0, "cpu")
    tt = pair_token_types(x, m, int(lm.tokenizer.sep_token_id)).tolist()   # the backbone's rule
    return [t[:len(r)] for t, r in zip(tt, ids)]


# model types whose LM head is one module on the base model's last hidden states: ``head(h)`` equals the
# full forward's logits at those positions, so only the positions read are projected onto the vocabulary
# (a [B, T, V] logit tensor for every position is most of a masked LM's cost: bench/head_cost.py)
_HEAD_MODULE = {"roberta": "lm_head", "xlm-roberta": "lm_head", "camembert": "lm_head", "bert": "cls",
                "gpt2": "lm_head", "llama": "lm_head", "bloom": "lm_head", "qwen2": "lm_head", "mistral": "lm_head",
                "gpt_neox": "embed_out", "opt": "lm_head"}


def _logits_at(lm: LM, embeds: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor, **kw) -> torch.Tensor:
    """The LM's logits at positions ``pos`` [B, K] of each row -> [B, K, V] float32."""
    rows = torch.arange(embeds.shape[0], device=lm.device).unsqueeze(1)
    head = getattr(lm.model, _HEAD_MODULE.get(lm.model.config.model_type, ""), None)
    if head is None:   # any other model: the full forward, then read
        return lm.model(inputs_embeds=embeds, attention_mask=mask, **kw).logits[rows, pos].float()
    h = lm.model.base_model(inputs_embeds=embeds, attention_mask=mask, **kw)[0]
    return head(h[rows, pos]).float()


def _check_positions(lm: LM, n: int) -> None:
    """Absolute-position models hold max_position_embeddings positions (RoBERTa: less its padding_idx + 1,
    where its positions start); T5's are relative (no cap)."""
    cfg = lm.model.config
    cap = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None)
    if lm.head == HeadKind.seq2seq or not cap:
        return
    if cfg.model_type in ("roberta", "xlm-roberta", "camembert"):
        cap -= int(cfg.pad_token_id or 0) + 1
    if n > cap:
        raise HeadError(f"prompt + text ({n} positions) exceed the {cap} positions of {lm.name}: lower max_length")


def label_scores(lm: LM, preset: HeadPreset, prompt: torch.Tensor, word_ids: list[list[int]],
                 texts: list[str], texts2: list[str] | None = None, *, decoder_prompt: torch.Tensor | None = None,
                 max_length: int = 128) -> torch.Tensor:
    """Scores [B, C] float32 of the C label words for B texts. prompt: [L, d]; decoder_prompt: [Ld, d]
    (seq2seq only, a PEFT adapter's decoder half). Differentiable in the prompt(s)."""
    ids, types = text_ids(lm, preset, texts, texts2, max_length)
    return scores_from_ids(lm, preset, prompt, word_ids, ids, types, decoder_prompt=decoder_prompt)


def scores_from_ids(lm: LM, preset: HeadPreset, prompt: torch.Tensor, word_ids: list[list[int]],
                    ids: list[list[int]], types: list[list[int]] | None = None, *,
                    decoder_prompt: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`label_scores` of rows already encoded by :func:`text_ids` (a training run encodes its
    data once). prompt: [L, d], or [B, L, d] one per row (attempt's instance-wise prompt, a packed
    step's rows of several runs); types: None reads them back from the ids (:func:`token_types`)."""
    if prompt.dim() not in (2, 3) or prompt.shape[-1] != lm.dim or (prompt.dim() == 3 and prompt.shape[0] != len(ids)):
        raise HeadError(f"prompt shape {tuple(prompt.shape)} does not fit {lm.name} (d={lm.dim}): expected "
                        f"[L, {lm.dim}] or [{len(ids)}, L, {lm.dim}]")
    if decoder_prompt is not None and (lm.head != HeadKind.seq2seq or decoder_prompt.shape[-1] != lm.dim):
        raise HeadError("a decoder prompt goes with a seq2seq head of the same width only")
    if types is None:
        types = token_types(lm, ids)
    x, m = pad_ids(lm, ids)
    embeds, mask = _with_prompt(lm, prompt, x, m)
    B, L = x.shape[0], prompt.shape[-2]
    _check_positions(lm, L + x.shape[1] + (max(map(len, word_ids)) if lm.head == HeadKind.causal else 0))
    if lm.head == HeadKind.mlm:
        kw = {}
        if types is not None:  # prompt slots: segment 0, in front of the text's types
            tt, _ = _pad(types, 0, lm.device)
            kw["token_type_ids"] = torch.cat([tt.new_zeros((B, L)), tt], 1)
        if preset.position == Position.first_prompt:
            at = torch.zeros(B, dtype=torch.long, device=lm.device)
        else:
            at = L + (x == lm.tokenizer.mask_token_id).long().argmax(1)
        read = _logits_at(lm, embeds, mask, at.unsqueeze(1), **kw)[:, 0]          # [B, V]
        return read[:, [w[0] for w in word_ids]]
    if lm.head == HeadKind.seq2seq:
        enc = lm.model.get_encoder()(inputs_embeds=embeds, attention_mask=mask)
        start = lm.model.config.decoder_start_token_id
        if start is None:
            raise HeadError(f"{lm.name}: the config names no decoder_start_token_id")
        Ld = 0 if decoder_prompt is None else decoder_prompt.shape[0]

        def decode(dec_ids: torch.Tensor) -> torch.Tensor:   # [B, S] -> log-softmax-free logits [B, S, V]
            demb = lm.embed(dec_ids)
            if decoder_prompt is not None:
                dp = decoder_prompt.to(device=lm.device, dtype=demb.dtype).unsqueeze(0).expand(B, -1, -1)
                demb = torch.cat([dp, demb], 1)
            out = lm.model(encoder_outputs=(enc.last_hidden_state,), attention_mask=mask, decoder_inputs_embeds=demb)
            return out.logits[:, Ld:].float()

        if preset.scoring == Scoring.first_token:
            logits = decode(torch.full((B, 1), int(start), dtype=torch.long, device=lm.device))[:, 0]
            return logits[:, [w[0] for w in word_ids]]
        cols = []
        for w in word_ids:
            tgt = torch.tensor(w, device=lm.device)
            dec_in = torch.tensor([int(start)] + w[:-1], device=lm.device).unsqueeze(0).expand(B, -1)
            lp = decode(dec_in).log_softmax(-1)                             # [B, |w|, V]
            cols.append(lp.gather(2, tgt.view(1, -1, 1).expand(B, -1, 1)).squeeze(2).sum(1))
        return torch.stack(cols, 1)
    # causal: the word continues the text; position L + n_i - 1 predicts its first token
    last = L + m.sum(1) - 1
    if preset.scoring == Scoring.first_token:
        return _logits_at(lm, embeds, mask, last.unsqueeze(1))[:, 0, [w[0] for w in word_ids]]
    cols = []
    for w in word_ids:
        rows = [r + w for r in ids]
        xw, mw = pad_ids(lm, rows)
        e, mk = _with_prompt(lm, prompt, xw, mw)
        pos = last.unsqueeze(1) + torch.arange(len(w), device=lm.device).unsqueeze(0)      # [B, |w|]
        lp = _logits_at(lm, e, mk, pos).log_softmax(-1)                                   # [B, |w|, V]
        tgt = torch.tensor(w, device=lm.device).view(1, -1, 1).expand(B, -1, 1)
        cols.append(lp.gather(2, tgt).squeeze(2).sum(1))
    return torch.stack(cols, 1)
