"""The metrics a matrix can show, what each needs, and the errors a metric raises.

    python -m core matrix --list

Torch-free: the pages read the registry (labels, descriptions, flags) before any prompt is loaded.
"""
from __future__ import annotations

from dataclasses import dataclass


# --------------------------------------------------------------------------- errors
class MetricError(ValueError):
    """A metric that cannot be computed for these inputs; the message says why."""


class BackboneUnavailable(MetricError):
    """The metric needs the prompts' frozen model, which cannot be loaded here."""

    def __init__(self, backbone: str | None, metric: str, reason: str = ""):
        self.backbone = backbone
        self.metric = metric
        self.reason = reason
        what = backbone or "(unknown: the prompts do not name their backbone)"
        msg = f"{metric} needs backbone {what}, not available offline"
        super().__init__(msg + (f" ({reason})" if reason else ""))


class MixedBackboneError(MetricError):
    """Prompts of several backbone groups were passed together."""

    def __init__(self, groups: dict[str, list[str]]):
        self.groups = groups
        parts = ", ".join(f"{g} ({len(n)} prompts)" for g, n in groups.items())
        super().__init__(
            f"cannot compare prompts of different backbones: {parts}. A prompt's vectors live in its own "
            "model's embedding space, so a similarity between a RoBERTa prompt and a BERT prompt means "
            "nothing; compute one matrix per backbone group")


# --------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class MetricSpec:
    """What a metric needs and how to read it."""

    name: str
    label: str
    description: str
    source: str
    needs_backbone: bool = False
    needs_tasks: bool = False     # task data (probe set, validation split)
    symmetric: bool = True
    our_reading: bool = False     # our own reading/variant: the UI must say so
    equal_length: bool = False    # only defined between prompts of the same L
    kind: str = "prompt"          # prompt | activation | eval | runs


METRICS: dict[str, MetricSpec] = {m.name: m for m in [
    MetricSpec("e_avg", "E_avg (cosine of mean tokens)",
               "cos(mean_i P_s[i], mean_j P_t[j])", "SPoT (Vu et al. 2022) §3.2"),
    MetricSpec("e_tok", "E_tok (mean token-pair cosine)",
               "(1/(L_s L_t)) Σ_i Σ_j cos(P_s[i], P_t[j])", "SPoT §3.2; thunlp CosineSimilarity_per_token"),
    MetricSpec("e_flat", "E_flat (cosine of flattened prompts)",
               "cos(vec(P_s), vec(P_t)); equal L only", "thunlp Prompt-Transferability 1.0",
               equal_length=True),
    MetricSpec("euclid", "Euclidean similarity",
               "1 / (1 + ‖P_s − P_t‖_F); equal L only", "thunlp Prompt-Transferability 1.0",
               equal_length=True),
    MetricSpec("on", "ON (overlap of activated neurons)",
               "cosine of the binarised FFN activations (> 0), every layer, prompt alone, first position",
               "Su et al. 2022", needs_backbone=True, kind="activation"),
    MetricSpec("on_probe", "ON on a probe set (ours)",
               "ON's activations on a shared probe set of real inputs (k per task), concatenated",
               "our variant of Su et al. 2022", needs_backbone=True, needs_tasks=True, our_reading=True,
               kind="activation"),
    MetricSpec("panda_sim", "PANDA similarity (our reading)",
               "mean_x cos(h(x; P_s), h(x; P_t)), h = pooled final hidden state, x = shared probe set",
               "our reading of PANDA (Zhong et al. 2022): the paper gives no formula", needs_backbone=True,
               needs_tasks=True, our_reading=True, kind="activation"),
    MetricSpec("zs", "Zero-shot transfer (ours)",
               "accuracy of the source prompt on the target's validation split (verbalizer head, target's "
               "label descriptions) minus the target's majority-class rate",
               "ours", needs_backbone=True, needs_tasks=True, symmetric=False, our_reading=True, kind="eval"),
    MetricSpec("measured", "Measured transfer (relative gain over scratch)",
               "mean over seeds of (score[transfer, s, t, seed] − score[scratch, t, seed]) / score[scratch, t, seed]",
               "PANDA, SPoT, Su et al.", symmetric=False, kind="runs"),
]}
# token-wise maximum similarity (Lin et al. 2024), registered right after e_tok
METRICS = {k: v for name, spec in METRICS.items() for k, v in (
    [(name, spec)] + ([("tok_max", MetricSpec(
        "tok_max", "Token-wise max similarity",
        "(1/L_t) Σ_j max_i cos(P_s[i], P_t[j]): for each target token the cosine (as in e_tok) of its "
        "most similar source token, averaged over target tokens",
        "Lin et al. 2024, Exploring the Effectiveness and Consistency of Task Selection in "
        "Intermediate-Task Transfer Learning", symmetric=False))] if name == "e_tok" else []))}
PROMPT_METRICS = [n for n, m in METRICS.items() if m.kind == "prompt"]
BACKBONE_METRICS = [n for n, m in METRICS.items() if m.needs_backbone]


def get_spec(metric: str) -> MetricSpec:
    if metric not in METRICS:
        raise MetricError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
    return METRICS[metric]



# --------------------------------------------------------------------------- zs's head
COSINE_HEADS = (None, "", "cosine", "verbalizer")   # zs's default: the cosine head on pooled features


def zs_lm_head(head: str | None) -> str | None:
    """The label-word preset zs reads sources through (core.heads.presets: thunlp-roberta, peft-causal,
    ...), or None for the cosine head on pooled features. MetricError for any other name."""
    if head in COSINE_HEADS:
        return None
    from core.heads.presets import LABEL_WORD_PRESETS
    if head not in LABEL_WORD_PRESETS:
        raise MetricError(f"zs head {head!r}: use cosine or a label-word preset ({', '.join(zs_heads()[1:])})")
    return head


def zs_heads() -> list[str]:
    """The heads zs can read through: ``cosine`` first, then the label-word presets."""
    from core.heads.presets import LABEL_WORD_PRESETS
    return ["cosine", *LABEL_WORD_PRESETS]


def zs_params(head: str | None) -> dict:
    """compute_matrix / job keyword arguments for zs through ``head``: {} for the cosine head (so its
    cached and precomputed matrices keep the keys they always had), else {"head": preset}."""
    lm = zs_lm_head(head)
    return {} if lm is None else {"head": lm}
