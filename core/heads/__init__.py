"""Label-word heads: read a soft prompt as it was trained (masked-LM, seq2seq, causal) beside the cosine head.

    python -m core prompts eval PATH --task sent_movie --preset thunlp-roberta

Modules (arrows point down): ``evaluate`` (a prompt's accuracy on a task; ``prompts eval``) <- ``scorer``
(frozen LM with its head, ``label_scores`` [B, C]) <- ``presets`` (HeadPreset, the released families'
presets, label words, atlas.json storage; torch-free). Only the torch-free names are imported here:
import ``core.heads.scorer`` / ``core.heads.evaluate`` by path.
"""
from __future__ import annotations

from core.heads.presets import (PRESETS, THUNLP_WORDS, HeadError, HeadKind, HeadPreset, Position, Scoring,
                                WordSource, get_preset, label_words, preset_for, store_preset, trained_head)

__all__ = ["PRESETS", "THUNLP_WORDS", "HeadError", "HeadKind", "HeadPreset", "Position", "Scoring", "WordSource",
           "get_preset", "label_words", "preset_for", "store_preset", "trained_head"]
