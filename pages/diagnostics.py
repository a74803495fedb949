"""Diagnostics page: where will ONNX Runtime really run, and if not where asked, why?

Shows the verdict of ``engine.diagnostics.run_diagnostics`` as a banner, its findings
with evidence and fix commands, and the markdown report for pasting into an issue.
The report is cached; "Re-check" runs the checks (and the probe process) again.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from pages import common

PROVIDERS = {
    "CUDA": "CUDAExecutionProvider",
    "TensorRT": "TensorrtExecutionProvider",
    "CPU": "CPUExecutionProvider",
}
SEVERITY_ICONS = {
    "error": ":material/error:",
    "warning": ":material/warning:",
    "info": ":material/info:",
    "ok": ":material/check_circle:",
}


@st.cache_data(show_spinner=False)
def diagnose(requested: tuple[str, ...]):
    from engine.diagnostics import run_diagnostics

    return run_diagnostics(requested)


common.ensure_entry()
st.title("Provider diagnostics")
st.caption(
    "Checks the installed packages, libraries and driver, then runs a tiny model in a fresh "
    "process to see which execution provider ONNX Runtime really uses, and why."
)
left, right = st.columns([3, 1])
wanted = left.selectbox("Provider to check", list(PROVIDERS), key="vb_diag_provider")
if right.button("Re-check", key="vb_diag_recheck"):
    diagnose.clear()

report = None
with common.guard("the diagnostics"):
    with st.spinner("Running the provider checks (a probe runs in a fresh process)…"):
        report = diagnose((PROVIDERS[wanted],))

if report is not None:
    asked = wanted.lower()
    got = report.verdict_provider.lower()
    if got == asked:
        st.success(report.verdict, icon=":material/check_circle:")
    elif got == "none":
        st.error(report.verdict, icon=":material/error:")
    else:  # asked for one provider, runs on another: the silent fallback, said out loud
        st.error(report.verdict, icon=":material/warning:")
    prov = report.providers
    st.markdown(
        "  \n".join(
            f"**{what}:** " + (", ".join(f"`{p}`" for p in prov.get(key) or []) or "none")
            for what, key in (
                ("Requested", "requested"),
                ("Available in this build", "available"),
                ("Really used", "used"),
            )
        )
    )

    st.subheader("Findings")
    table = pd.DataFrame(
        [
            {
                "severity": f.severity,
                "id": f.id,
                "finding": f.title,
                "root cause": f.root_cause,
                "fix": f.fix,
            }
            for f in report.findings
        ]
    )
    if not table.empty:
        st.dataframe(table, hide_index=True)
    for f in report.findings:
        if f.severity in ("ok",) and not f.fix:
            continue
        with st.expander(f.title, icon=SEVERITY_ICONS.get(f.severity)):
            st.markdown(f.root_cause)
            if f.evidence:
                st.caption("Evidence")
                st.code(f.evidence, language="text")
            if f.fix:
                st.caption("Fix")
                st.code(f.fix, language="bash")
    st.subheader("Report to copy")
    st.code(report.to_markdown(), language="markdown")
