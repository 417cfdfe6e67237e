"""Deep links on a fresh server open the whole app: the one private Streamlit hook we use.

    from pages._deeplink import ensure_whole_app; ensure_whole_app()   # first line of every page

Why: Streamlit 1.67 keeps a process-wide flag, ``PagesManager.uses_pages_directory``, set when
the first session starts to "is there a pages/ folder next to the main script" (here: yes).
While it is True the script runner does not execute app.py: it builds an old-style ("v1")
navigation from pages/*.py and runs the linked page alone (no navigation titles, narrow
layout, ``_shared`` listed as a page). Only app.py's ``st.navigation`` clears the flag, so a
link like ``/transferability?metric=e_tok`` opened before anyone visited ``/`` ran without
app.py. We keep pages/ (the product's layout) and, when a page finds itself run that way,
clear the flag and rerun: the rerun executes app.py, whose ``st.navigation`` resolves the
same page (v1 and ``st.Page`` both hash the url path) with the same query string.

tests/test_deeplink.py fails loudly if a Streamlit upgrade renames or removes the flag or
changes how the runner consults it.
"""
from __future__ import annotations

import streamlit as st


def ensure_whole_app() -> None:
    """If this page runs without app.py (Streamlit's v1 pages/ mode), rerun through app.py."""
    from streamlit.runtime.pages_manager import PagesManager  # private: see the module docstring

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()
