"""Diagnostics page: where will ONNX Runtime really run, and if not where asked, why?

Shows the verdict of ``engine.diagnostics.run_diagnostics`` as a banner, its findings with
evidence and fix commands, and the report as text to copy or as files to download. Text from
the report (package names, log lines, paths) is shown as plain text or code, never rendered
as Markdown. The report is cached; "Re-check" runs the checks (and the probe process) again.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from engine.core.text import markdown_text as plain
from pages import common

DEFAULT = "Default (CUDA with a GPU, else CPU)"
PROVIDERS = {
    DEFAULT: "",
    "CUDA": "CUDAExecutionProvider",
    "TensorRT": "TensorrtExecutionProvider",
    "CPU": "CPUExecutionProvider",
}
SHORT = {v: k for k, v in PROVIDERS.items() if v}
SEVERITY_ICONS = {
    "error": ":material/error:",
    "warning": ":material/warning:",
    "info": ":material/info:",
    "ok": ":material/check_circle:",
}


@st.cache_data(show_spinner=False)
def diagnose(requested: tuple[str, ...]):
    from engine.diagnostics import run_diagnostics

    return run_diagnostics(requested or None)


def show_verdict(report) -> None:
    asked = SHORT.get((report.providers.get("requested") or [""])[0], "")
    got = report.verdict_provider
    if got == asked:
        st.success(plain(report.verdict), icon=":material/check_circle:")
    elif got == "none":
        st.error(plain(report.verdict), icon=":material/error:")
    else:  # asked for one provider, runs on another: the silent fallback, said out loud
        st.error(plain(report.verdict), icon=":material/warning:")
    if report.note:
        st.caption(plain(f"Note: {report.note}"))
    prov = report.providers
    st.text(
        "\n".join(
            f"{what}: " + (", ".join(prov.get(key) or []) or "none")
            for what, key in (
                ("Requested", "requested"),
                ("Available in this build", "available"),
                ("Really used", "used"),
            )
        )
    )


def show_findings(report) -> None:
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
        if f.severity == "ok" and not f.fix:
            continue
        with st.expander(plain(f.title), icon=SEVERITY_ICONS.get(f.severity)):
            st.text(f.root_cause)
            if f.evidence:
                st.caption("Evidence")
                st.code(f.evidence, language="text")
            if f.fix:
                st.caption("Fix")
                st.code(f.fix, language="bash")


def show_report_to_copy(report) -> None:
    st.subheader("Report to copy")
    with st.expander("The report as text (paste it into a bug report)"):
        st.code(report.to_text(), language="text")
    left, right = st.columns(2)
    left.download_button(
        "Download as Markdown",
        report.to_markdown(),
        file_name="diagnostics.md",
        mime="text/markdown",
        key="vb_diag_md",
    )
    right.download_button(
        "Download as JSON",
        report.to_json(),
        file_name="diagnostics.json",
        mime="application/json",
        key="vb_diag_json",
    )


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
        requested = (PROVIDERS[wanted],) if PROVIDERS[wanted] else ()
        report = diagnose(requested)

if report is not None:
    show_verdict(report)
    show_findings(report)
    show_report_to_copy(report)
