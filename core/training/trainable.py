"""Can a run of this target, from a source of this backbone, be launched here? One rule for every link.

    python -c "from core.training.trainable import why_not; print(why_not('generic', 'sentence-transformers/all-MiniLM-L6-v2'))"

A page offers "Run PANDA on T from S" only where ``why_not(T, backbone of S)`` is None;
otherwise it says what is missing. The Runs form uses the same rule for a target that
arrives in a link: it warns and selects nothing, never another task silently.
"""
from __future__ import annotations


def why_not(target: str, backbone: str | None = None) -> str | None:
    """None when ``target`` is a registered task with data here and ``backbone`` loads here;
    else one sentence saying what is missing."""
    from core import tasks as T

    if target not in T.list_tasks():
        return (f"`{target}` is not a registered task here (a prompt's task is not a dataset; register one with "
                "`python -m core tasks add NAME PATH`)")
    if target in T.DEMO_TASKS and T.demo_status(target) == "missing":
        return f"task `{target}` has no prepared data here (`python -m core tasks prepare`)"
    if backbone is not None:
        from core.backbone import unavailable_reason
        why = unavailable_reason(backbone)
        if why:
            return f"the source's backbone {why}"
    return None


def backbone_missing(backbone: str | None) -> str | None:
    """None when prompts of ``backbone`` can seed a run here; else the one line a page shows instead
    of any launch offer (which model to put in the Hugging Face cache: core.backbone.unavailable_reason)."""
    from core.backbone import unavailable_reason
    return unavailable_reason(backbone)
