"""core.notice: a page's message belongs to the action that made it (issue 28).

    .venv/bin/python -m pytest -q tests/test_notice.py
"""
from core import notice


def test_the_next_action_clears_the_message():
    state = {}
    notice.post(state, "tasks", "Queued sweep s1.", owner=("sent_tweet", 1))
    assert notice.current(state, "tasks", owner=("sent_tweet", 1)) == ("success", "Queued sweep s1.")
    assert notice.current(state, "tasks", owner=("sent_tweet", 1)) is not None  # reruns keep it
    notice.begin(state, "tasks")  # ranking again
    assert notice.current(state, "tasks", owner=("sent_tweet", 1)) is None


def test_a_message_about_something_no_longer_shown_is_dropped_for_good():
    state = {}
    notice.post(state, "tasks", "Queued sweep s1.", owner=("sent_tweet", 1))
    assert notice.current(state, "tasks", owner=("spam_sms", 1)) is None  # another target shown
    assert notice.current(state, "tasks", owner=("sent_tweet", 1)) is None  # and it does not come back
    notice.post(state, "tasks", "a", owner=None)
    notice.post(state, "runs", "b", kind="error")
    assert notice.current(state, "tasks") == ("success", "a") and notice.current(state, "runs") == ("error", "b")
