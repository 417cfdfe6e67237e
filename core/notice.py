"""A page's messages belong to the action that made them (issue 28: "Queued sweep s261206-…" from an
earlier launch still showed after ranking again).

    notice.post(state, "tasks", "Queued sweep s1.", owner=rank_key)   # the action's outcome
    notice.begin(state, "tasks")                                     # the next action: it goes
    notice.current(state, "tasks", owner=rank_key)                   # ("success", "Queued sweep s1.") or None

``state`` is any mutable mapping (a page passes ``st.session_state``; this module never imports
Streamlit). ``owner`` ties a message to what it is about — the ranking a sweep was launched from: once
the page shows another one (another target, a new ranking) the message is not shown and is dropped.
"""
from __future__ import annotations

from collections.abc import Hashable, MutableMapping

_KEY = "_notice:"


def post(state: MutableMapping, page: str, text: str, *, kind: str = "success", owner: Hashable = None) -> None:
    """The outcome of the action just taken; replaces any earlier message of the page."""
    state[_KEY + page] = (kind, text, owner)


def begin(state: MutableMapping, page: str) -> None:
    """A new action starts on ``page``: the messages of earlier actions are cleared."""
    state.pop(_KEY + page, None)


def current(state: MutableMapping, page: str, *, owner: Hashable = None) -> tuple[str, str] | None:
    """(kind, text) of the page's message while it still belongs to what is shown (``owner``), else None
    (and the message is dropped: it never comes back)."""
    held = state.get(_KEY + page)
    if held is None:
        return None
    kind, text, who = held
    if who != owner:
        state.pop(_KEY + page, None)
        return None
    return kind, text
