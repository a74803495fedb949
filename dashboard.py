"""The dashboard's entry: ``streamlit run dashboard.py``.

It hands over to the page picked in the navigation. The pages are thin: each draws
the shared sidebar from ``pages/common.py`` (its choices survive moving between pages),
calls ``engine/`` and draws.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from engine.core.text import sanitise_stderr_for_good
from pages.common import ENTRY_KEY

HERE = Path(__file__).resolve().parent

# ONNX Runtime logs model node names (file-borne text) straight to the server's terminal.
sanitise_stderr_for_good()

# The tab icon is an emoji: Streamlit fetches a ":material/…" favicon from fonts.gstatic.com
# (the icons in the page itself come from its bundled font), and nothing may leave the machine.
st.set_page_config(page_title="visionbench", page_icon="⏱️", layout="wide")

pages = [
    st.Page("pages/benchmark.py", title="Benchmark", icon=":material/speed:", default=True),
    st.Page("pages/parity.py", title="Parity", icon=":material/rule:"),
    st.Page("pages/engines.py", title="Engines", icon=":material/memory:"),
    st.Page("pages/diagnostics.py", title="Diagnostics", icon=":material/troubleshoot:"),
]
# The history page is written separately; navigation works with or without it.
if (HERE / "pages" / "history.py").is_file():
    pages.append(st.Page("pages/history.py", title="History", icon=":material/history:"))

# Pages opened before this entry ran (a bookmarked page URL on a fresh server, which
# Streamlit's old pages/ folder routing serves directly) hand over to it; see
# pages/common.py:ensure_entry.
st.session_state[ENTRY_KEY] = True
st.navigation(pages).run()
