"""Engines page: what was built for the selected model and what it cost.

The ONNX file's size and operators, the node count after ONNX Runtime's graph
optimisations (fusion made concrete), the int8 model when int8 is selected, TensorRT
layer information where TensorRT is installed, and the artifact cache with its build
times, locations and sizes.
"""

from __future__ import annotations

import json
import time

import pandas as pd
import streamlit as st

from engine.artifacts import inspection
from engine.artifacts.cache import human_bytes
from engine.artifacts.onnx_source import inputs_words
from engine.backends import backend_names, describe, get_backend
from engine.core.commands import engine_command
from engine.core.config import RunnerSpec
from engine.core.paths import default_db, short_path
from engine.core.text import markdown_text
from engine.reporting import charts
from pages import common

RESULT_KEY = "vb_engines"


def _inspect_model(sel: common.Selection, ok: bool) -> None:
    if st.button("Inspect the model", type="primary", disabled=not ok, key="vb_inspect"):
        facts: dict = {}
        with common.guard("the inspection"):
            progress = st.progress(0.0, text="loading the model")
            art = common.artifacts(sel.model)
            progress.progress(0.2, text="exporting to ONNX (or reusing the cached export)")
            t0 = time.perf_counter()
            path = art.onnx_path("fp32")
            facts["export_wait_s"] = time.perf_counter() - t0
            progress.progress(0.5, text="letting ONNX Runtime optimise the graph")
            facts["fp32"] = inspection.optimised_graph(path)
            if "int8" in sel.precisions:  # the QDQ model ONNX Runtime and TensorRT run for int8
                progress.progress(0.7, text="quantising to int8 (or reusing the cached model)")
                from engine.artifacts.quantize import quantize_int8

                t0 = time.perf_counter()
                q = quantize_int8(art)
                facts["int8_wait_s"] = time.perf_counter() - t0
                facts["int8"] = inspection.optimised_graph(q)
            progress.empty()
        st.session_state[RESULT_KEY] = (sel.model.label, facts)


def _show_model_facts() -> None:
    result = st.session_state.get(RESULT_KEY)
    if result:
        label, facts = result
        for name, title in (("fp32", "ONNX export (fp32)"), ("int8", "int8 model (QDQ)")):
            opt = facts.get(name)
            if opt is None:
                continue
            st.subheader(f"{title}: {markdown_text(label)}")
            c1, c2, c3, c4 = st.columns(4)
            c1.metric("File size", human_bytes(opt.original.size_bytes))
            c2.metric("Nodes exported", opt.original.node_count)
            c3.metric(
                "Nodes after ONNX Runtime",
                opt.optimised.node_count,
                # no delta at all for "no change": "+0" came with an up arrow
                f"{-opt.nodes_removed:+d}" if opt.nodes_removed else None,
                delta_color="inverse",
                help=f"{opt.level} on the CPU provider; optimising took {opt.optimise_s:.2f} s",
            )
            c4.metric("Opset", opt.original.opset)
            st.caption(f"File: {markdown_text(opt.original.path)}")
            st.plotly_chart(
                charts.op_histogram_chart(opt.original.op_histogram, opt.optimised.op_histogram),
                key=f"ops_{name}",
            )
            changes = opt.op_changes()
            if changes:
                st.caption("What the optimiser changed (fused, rewritten or removed operators):")
                st.dataframe(
                    pd.DataFrame(changes, columns=["operator", "exported", "after ONNX Runtime"]),
                    hide_index=True,
                )
        if "export_wait_s" in facts:
            st.caption(
                f"Getting the fp32 ONNX file took {facts['export_wait_s']:.1f} s this time "
                "(near zero means the cached export was reused)."
            )
    else:
        st.caption("Press “Inspect the model” to export it (or reuse the cache) and look inside.")


def _inspect_section(name: str, sel: common.Selection, specs: list[RunnerSpec]) -> None:
    """Built engines of one inspecting backend: facts and layers, from its declared hooks."""
    backend = get_backend(name)
    title = backend.TITLE
    st.subheader(title)
    device = sel.device if "cpu" in backend.DEVICES or sel.device != "cpu" else "cuda"
    avail = backend.availability(device)
    own = [s for s in specs if s.backend == name]
    if not avail.ok:
        fix = f" Fix: {avail.fix}" if avail.fix else ""
        st.info(markdown_text(f"{title} is not available here: {avail.reason}{fix}"))
    elif not own:
        st.caption(
            f"Select the {name} backend (and a device it runs on) to see its engines' layers."
        )
    elif st.button(f"Build or load the {title} engines", key=f"vb_inspect_{name}"):
        for spec in own:
            with common.guard(describe(spec)):
                with st.spinner(f"{title} {spec.precision}: building (or loading the cache)…"):
                    runner = common.cached_runner(sel.model, spec, max(sel.batches), sel.batches)
                st.markdown(f"**{title} {spec.precision}** on {spec.device}")
                facts = {k: v for k, v in runner.facts().items() if not isinstance(v, (dict, list))}
                if facts:
                    st.dataframe(
                        pd.DataFrame(
                            {"fact": list(facts), "value": [str(v) for v in facts.values()]}
                        ),
                        hide_index=True,
                    )
                layers = pd.DataFrame([layer.to_dict() for layer in runner.inspect()])
                if not layers.empty:
                    if "onnx_nodes" in layers:
                        layers["onnx_nodes"] = layers["onnx_nodes"].map(len)
                    st.caption(
                        f"{len(layers)} engine layers replace the ONNX graph's nodes "
                        "(onnx_nodes: how many each fused)."
                    )
                    st.dataframe(layers, hide_index=True)


def _standalone_build(name: str, sel: common.Selection, ok: bool) -> None:
    """Build without running, as the backend's own build command does: TensorRT-RTX makes a
    plan even where no GPU or driver is present."""
    from engine.running.build import build_standalone, standalone_note

    backend = get_backend(name)
    command = engine_command(backend.BUILD_COMMAND)
    st.markdown(f"**Build {backend.TITLE} engines without running them** (like `{command}`)")
    with common.guard(f"the {backend.TITLE} build"):
        options = dict(sel.options)
        note = standalone_note(name, sel.precisions, options)
        batches = ", ".join(map(str, sel.batches))
        st.caption(markdown_text(f"{sel.model.label}, batches {batches}: {note}."))
        key = f"vb_standalone_{name}"
        if st.button(f"Build {backend.TITLE} engines", key=key, disabled=not ok):
            art = common.artifacts(sel.model)
            with st.spinner("exporting (or reusing the export) and building…"):
                built = build_standalone(name, art, sel.precisions, sel.batches, options)
            st.session_state[f"{key}_built"] = built
        for engine in st.session_state.get(f"{key}_built") or []:
            _show_built(engine)


def _show_built(built) -> None:
    """One engine built without running it: its headline, its facts, its layers."""
    for column, (label, value) in zip(
        st.columns(len(built.headline)), built.headline.items(), strict=True
    ):
        column.metric(label, value)
    st.text("\n".join(built.lines))
    if built.layers:
        st.dataframe(pd.DataFrame([layer.to_dict() for layer in built.layers]), hide_index=True)


def _built_engines(name: str, sel: common.Selection, ok: bool) -> None:
    """A builder backend's cached engines (stale ones marked), one removable on its own, and
    a button that builds what auto mode would try for the selection (``python -m engine build``)."""
    from engine.artifacts.cache import prune
    from engine.backends import cache_detail, cache_state
    from engine.running.build import build_argv, build_in_child, build_specs, build_text

    backend = get_backend(name)
    st.subheader(f"{backend.TITLE} engines")
    rows = [r for r in inspection.cache_rows() if r["kind"] == backend.CACHE_KIND]
    for r in rows:
        meta = r.pop("meta", {})
        r["what"] = ", ".join(bit for bit in (r["what"], cache_detail(r["kind"], meta)) if bit)
        r["state"] = cache_state(r["kind"], meta) or "ready"
    if rows:
        st.dataframe(pd.DataFrame(rows).drop(columns=["size_bytes", "kind"]), hide_index=True)
        gone = st.selectbox("Remove one engine", [r["key"] for r in rows], index=None,
                            key=f"vb_prune_{name}")  # fmt: skip
        if gone and st.button("Remove it", key=f"vb_prune_go_{name}"):
            with common.guard("removing the engine"):
                prune(keys=[gone])
                st.rerun()
    else:
        st.caption(f"No {backend.TITLE} engine is cached yet.")
    avail = backend.availability(sel.device)
    if not avail.ok:
        st.info(markdown_text(f"{backend.TITLE} cannot build on {sel.device}: {avail.reason}"))
        return
    specs = build_specs(name, sel.device, None, {})
    art = common.artifacts(sel.model) if ok else None
    hint = backend.build_hint(specs[0], art, sel.batches) if specs and art is not None else ""
    batches = ", ".join(map(str, sel.batches))
    st.caption(
        f"Build what auto mode tries on {sel.device} for batches {batches}, once; later sweeps"
        f" and auto mode load it in seconds. Each batch size: {hint or 'minutes'}."
    )
    if st.button(
        f"Build the {backend.TITLE} engines", key=f"vb_build_{name}", disabled=art is None
    ):
        # In a child process (`python -m engine build`): a native crash while it builds or
        # loads ends that process with a message here, not this dashboard's server.
        built = False
        with st.status(f"Building {backend.TITLE} engines…", expanded=True) as status:
            with common.guard(f"the {backend.TITLE} build"):
                for spec in specs:
                    backend.ready(spec, sel.model)
                argv = build_argv(sel.model, name, sel.device, sel.batches)
                # A compile is silent for minutes: the time so far, once a second, is also
                # where leaving the page stops the build (Streamlit stops at its next call).
                clock = status.empty()
                _, out = build_in_child(
                    argv,
                    lambda m: status.write(markdown_text(m)),
                    lambda s: clock.caption(f"{s:.0f} s so far"),
                )
                clock.empty()
                for done in json.loads(out)["engines"]:
                    status.write(markdown_text(build_text(done)))
                built = True
            status.update(
                label="Engines built or found in the cache" if built else "The build stopped",
                state="complete" if built else "error",
            )


def _artifact_cache() -> None:
    st.subheader("Artifact cache")
    with common.guard("the cache listing"):
        summary = inspection.cache_summary()
        st.write(
            f"Cache folder `{summary['location']}` holds {human_bytes(summary['size_bytes'])}; "
            f"results database `{short_path(default_db())}`."
        )
        rows = inspection.cache_rows()
        if rows:
            st.dataframe(pd.DataFrame(rows).drop(columns=["size_bytes", "meta"]), hide_index=True)
            st.caption(
                "build_s: export, quantisation or engine build time where the cache recorded it."
            )
        else:
            st.caption("The cache is empty.")
        live = common.live_runners()
        st.caption(f"Runners cached in this dashboard process: {len(live)}.")


def main() -> None:
    common.ensure_entry()
    st.title("Engines")
    sel = common.selection()
    st.caption(
        f"{markdown_text(sel.model.label)} at {sel.model.hw[0]}×{sel.model.hw[1]}."
        f" Inputs: {inputs_words(sel.model.onnx_path)}."
    )
    ok = common.show_problems(sel)
    specs, _ = sel.combinations() if ok else ([], [])
    _inspect_model(sel, ok)
    _show_model_facts()
    for backend_name in backend_names():
        with common.guard(backend_name):
            if get_backend(backend_name).INSPECTS:
                _inspect_section(backend_name, sel, specs)
    from engine.running.build import builders, standalone_builders

    for name in standalone_builders():
        with common.guard(name):
            _standalone_build(name, sel, ok)
    for name in builders():
        with common.guard(name):
            _built_engines(name, sel, ok)
    _artifact_cache()


main()
