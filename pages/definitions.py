"""Definitions page: what every metric, method, the noise band and the validation measures mean.

    streamlit run app.py   -> Definitions        (renders docs/DEFINITIONS.md, shipped with the product)

Other pages link here (``/definitions``) instead of citing design notes users do not have.
"""
import streamlit as st

from pages._deeplink import ensure_whole_app

ensure_whole_app()  # a deep link on a fresh server: rerun through app.py (see the module)

from core.config import REPO_ROOT  # noqa: E402
from pages._shared import keep_library_in_url  # noqa: E402

keep_library_in_url()  # a link copied here reopens the folders and collections opened elsewhere

DEFINITIONS = REPO_ROOT / "docs" / "DEFINITIONS.md"

st.title("📖 Definitions")
if not DEFINITIONS.is_file():
    st.error(f"{DEFINITIONS}: missing — this copy of Prompt Atlas is incomplete.")
    st.stop()
text = DEFINITIONS.read_text(encoding="utf-8")
# The user guides beside this file (README's "Where to go next"), each named by its own title; the
# lead's folded-in notes-*.md are working notes, not guides.
guides = [(p.name, p.read_text(encoding="utf-8").split("\n", 1)[0].lstrip("# ").strip())
          for p in sorted(DEFINITIONS.parent.glob("*.md")) if p != DEFINITIONS and not p.name.startswith("notes-")]
if guides:
    st.caption("How to use each page and command: the guides in this copy's `docs/` folder — "
               + " · ".join(f"**{title}** (`docs/{name}`)" for name, title in guides) + ".")
st.markdown(text.split("\n", 1)[1] if text.startswith("# ") else text)  # the page title replaces the file's
