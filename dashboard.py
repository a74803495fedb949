"""The dashboard's entry: ``streamlit run dashboard.py``.

It hands over to the page picked in the navigation. The pages are thin: each draws
the shared sidebar from ``pages/common.py`` (its choices survive moving between pages),
calls ``engine/`` and draws.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

HERE = Path(__file__).resolve().parent

st.set_page_config(page_title="visionbench", page_icon="⏱️", layout="wide")

pages = [
    st.Page("pages/benchmark.py", title="Benchmark", icon="⏱️", default=True),
    st.Page("pages/parity.py", title="Parity", icon="🎯"),
    st.Page("pages/engines.py", title="Engines", icon="🧱"),
    st.Page("pages/diagnostics.py", title="Diagnostics", icon="🩺"),
]
# The history page is written separately; navigation works with or without it.
if (HERE / "pages" / "history.py").is_file():
    pages.append(st.Page("pages/history.py", title="History", icon="🗂️"))

st.navigation(pages).run()
