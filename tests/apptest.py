"""Open a page with AppTest the way a browser does: query parameters first, then the first run.

    from apptest import open_page, no_exception
"""
from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest


def open_page(path: str | Path, **query) -> AppTest:
    """AppTest of the page file ``path``, run once with ``query`` as its URL query parameters."""
    at = AppTest.from_file(str(path), default_timeout=120)
    for k, v in query.items():
        at.query_params[k] = str(v)
    return at.run()


def no_exception(at: AppTest) -> AppTest:
    """Fail with the page's exception messages, if it raised any; else hand the AppTest back."""
    assert not at.exception, [e.value for e in at.exception]
    return at
