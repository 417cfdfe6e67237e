"""Prompt Atlas — explore how well soft prompts transfer between tasks.

    streamlit run app.py          (cold; `make run` serves it warmed: streamlit run serve.py)

Only navigation, page config and the mode badge live here: each page in pages/ is
self-sufficient (AppTest reruns a page without this file).

Mode: ATLAS_MODE=full|viewer; unset, a server bound to loopback only is full and any other
bind address (e.g. --server.address 0.0.0.0) is viewer (core/access.py, README "Sharing the
dashboard").
"""
import streamlit as st

from core.access import AccessError, resolve  # light: no numpy/pandas before the first paint

st.set_page_config(page_title="Prompt Atlas", page_icon="🗺️", layout="wide")
try:
    access = resolve(st.get_option("server.address"))  # same as pages._shared.access()
except AccessError as e:  # fail closed: a mistyped ATLAS_MODE serves nothing
    st.error(str(e))
    st.stop()
if access.viewer:
    # a viewer never sees a traceback (server paths, source lines): the exception's type and a generic line
    st.set_option("client.showErrorDetails", "type")
    st.sidebar.caption(f"👁️ **Viewer mode** — browse and compute; nothing you own changes ({access.why}).")

pages = [
    st.Page("pages/home.py", title="Home", icon="🏠", default=True),
    st.Page("pages/library.py", title="Library", icon="📚"),
    st.Page("pages/tasks.py", title="Tasks", icon="🗂️"),
    st.Page("pages/transferability.py", title="Transferability", icon="🔥"),
    st.Page("pages/projection.py", title="Projection", icon="🧭"),
    st.Page("pages/runs.py", title="Runs", icon="🚀"),
    st.Page("pages/definitions.py", title="Definitions", icon="📖"),
]
st.navigation(pages).run()
