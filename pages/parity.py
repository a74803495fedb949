"""Parity page: does every chosen backend and precision agree with the reference?

The reference is PyTorch FP32 on the CPU (ONNX Runtime FP32 on the CPU for a user's
ONNX file); every runner sees the same seeded inputs, and the engine's measures compare
the batch-centred logits against a tolerance stated per precision.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from engine.backends import describe, get_backend, is_reference, reference_spec
from engine.core.config import RunnerSpec
from engine.core.parity import PARITY_BATCH, compare
from engine.core.text import markdown_text
from engine.running.reference import (
    infer_in_calls,
    parity_batch,
    parity_images,
    reference_outputs,
)
from pages import common

RESULT_KEY = "vb_parity"


def _check(sel: common.Selection, specs: list[RunnerSpec], ref_name: str) -> None:
    """Run every spec on the same seeded inputs and keep one row per spec for the table."""
    rows = []
    with common.guard("the reference"):
        progress = st.progress(0.0, text="loading the model")
        art = common.artifacts(sel.model)
        pbatch = parity_batch(art)
        x = parity_images(art, pbatch)
        progress.progress(0.0, text=f"computing the reference ({ref_name})")
        reference = reference_outputs(art, x)
        for i, spec in enumerate(specs):
            name = describe(spec, "series")
            progress.progress(i / len(specs), text=f"{name}: building and running")
            row = {"series": name, "provider": "", "result": "error"}
            try:
                runner = common.cached_runner(sel.model, spec, pbatch, sel.batches)
                judged_at = get_backend(spec.backend).parity_precision(spec)
                p = compare(reference, infer_in_calls(art, runner.infer, x), judged_at)
                # For an ONNX file this configuration is the reference: no comparison.
                is_ref = sel.model.onnx_path and is_reference(spec, True)
                row.update(
                    provider=runner.provider,
                    max_rel_err=p.max_rel_err,
                    mean_rel_err=p.mean_rel_err,
                    cosine=p.cosine,
                    top1_agree=p.top1_agree,
                    result=(
                        "reference"
                        if is_ref
                        else {"ok": "pass", "failed": "FAIL"}.get(p.status, p.status)
                    ),
                    tolerance=p.reason or p.tolerance,
                )
            except Exception as exc:  # noqa: BLE001 - one backend failing must not hide the rest
                common.show_error(exc, name)
                row["tolerance"] = str(exc).splitlines()[0][:200] if str(exc) else ""
            rows.append(row)
        progress.empty()
    st.session_state[RESULT_KEY] = (sel.model.label, ref_name, rows, sel.key)


def _show_result(sel: common.Selection) -> None:
    result = st.session_state.get(RESULT_KEY)
    if result and result[3] != sel.key:  # made for another selection: not shown under this one
        st.session_state.pop(RESULT_KEY, None)
        result = None
    if result:
        label, ref, rows, _ = result
        st.subheader(f"{label} against {ref}")
        df = pd.DataFrame(rows)
        st.dataframe(
            df,
            hide_index=True,
            column_config={
                "max_rel_err": st.column_config.NumberColumn("max rel err", format="%.2e"),
                "mean_rel_err": st.column_config.NumberColumn("mean rel err", format="%.2e"),
                "cosine": st.column_config.NumberColumn("cosine", format="%.6f"),
                "top1_agree": st.column_config.NumberColumn("top-1 agree", format="%.3f"),
            },
        )
        unjudged = df[df["result"] == "not judged"]
        failed = df[~df["result"].isin(["pass", "reference", "not judged"])]
        if not unjudged.empty:
            st.info(
                f"{len(unjudged)} of {len(df)} configurations were not judged: the reference's"
                " input-dependent part is too small for their precision (see the reason)."
            )
        if (df["result"] == "reference").all():
            st.info(
                f"Only {ref} itself was chosen, and it is the reference: pick another precision"
                " or device to compare with it."
            )
        elif failed.empty and unjudged.empty:
            st.success("Every backend agrees with the reference within its tolerance.")
        elif not failed.empty:
            st.warning(
                f"{len(failed)} of {len(df)} configurations are outside tolerance or failed."
            )
    else:
        st.caption("Press “Check parity” to build each runner (cached) and compare it.")


def main() -> None:
    common.ensure_entry()
    st.title("Parity")
    sel = common.selection()
    ref_name = describe(reference_spec(sel.model.onnx_path is not None))
    st.caption(
        f"Every backend × precision against {ref_name}, on the same {PARITY_BATCH} seeded inputs. "
        "Logits are centred by their batch mean first, so random weights still give a meaningful "
        "check; errors are relative to the spread of the centred reference."
    )
    ok = common.show_problems(sel)
    specs, left_out = sel.combinations() if ok else ([], [])
    if left_out:
        st.caption("Not checked: " + markdown_text("; ".join(left_out)) + ".")
    if st.button("Check parity", type="primary", disabled=not specs, key="vb_parity_run"):
        _check(sel, specs, ref_name)
    _show_result(sel)


main()
