"""Prompt Atlas server: app.py, warmed before its first visitor.

    streamlit run serve.py --server.port 8501        (what `make run` does)

``streamlit run app.py`` serves the same pages; this entry adds only a start-up hook (Streamlit's
``st.App`` lifespan) that runs pages/_warm.py, so the first visit to a freshly started server does
not pay for the imports and the library read (bench/page_scale.py).

The server prints its URL at once but answers only once the warm-up is done (~2-3 s), or after
ATLAS_WARM_WAIT seconds (default 20; 0 = answer at once), whichever comes first: a request that
arrives meanwhile is held, not refused. Past that wait the warm-up finishes in the background, and
a page opened meanwhile shares its work instead of repeating it.
"""
import asyncio
import os
from contextlib import asynccontextmanager

import streamlit as st
from streamlit.logger import get_logger


@asynccontextmanager
async def lifespan(_app):
    from pages._warm import start

    thread = start()
    text = os.environ.get("ATLAS_WARM_WAIT", "20")
    try:
        wait = max(0.0, float(text))
    except ValueError:  # a typo must not stop the server, but it is said, not guessed silently
        get_logger("atlas.warm").warning("ATLAS_WARM_WAIT=%r is not a number of seconds: waiting 20 s", text)
        wait = 20.0
    if wait:
        await asyncio.to_thread(thread.join, wait)
    yield {"warm_thread": thread}


app = st.App("app.py", lifespan=lifespan)
