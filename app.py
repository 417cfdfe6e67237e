"""Prompt Atlas — explore how well soft prompts transfer between tasks.

    streamlit run app.py          (or: make run)

Only navigation and page config live here: each page in pages/ is
self-sufficient (AppTest reruns a page without this file).
"""
import streamlit as st

st.set_page_config(page_title="Prompt Atlas", page_icon="🗺️", layout="wide")

pages = [
    st.Page("pages/home.py", title="Home", icon="🏠", default=True),
    st.Page("pages/library.py", title="Library", icon="📚"),
    st.Page("pages/tasks.py", title="Tasks", icon="🗂️"),
    st.Page("pages/transferability.py", title="Transferability", icon="🔥"),
    st.Page("pages/projection.py", title="Projection", icon="🧭"),
    st.Page("pages/runs.py", title="Runs", icon="🚀"),
]
st.navigation(pages).run()
