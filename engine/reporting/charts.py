"""Pure chart code: result rows in, a pandas DataFrame or a Plotly figure out.

Latency and throughput against batch size on a log-2 batch axis, each backend a p50
line with its p10–p90 spread as a band and exact numbers on hover; speed-up over the
PyTorch FP32 baseline of the same device. Quoted reference rows (``status="quoted"``)
are drawn as open markers with a label that says they were not measured here. Nothing
here measures, reads files or knows about Streamlit, so it is testable on its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from engine.backends import BASELINE, describe, is_reference, switches
from engine.core.config import ResultRow, RunnerSpec
from engine.core.results import FLAT
from engine.core.text import chart_text

PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip
QUOTED_SUFFIX = "quoted, not measured here"
TABLE_COLUMNS = [
    "series", "batch", "status", "p50_ms", "p10_ms", "p90_ms", "p99_ms", "throughput_ips",
    "provider", "parity_status", "max_rel_err", "cosine", "iters", "peak_mem_mb", "reason",
    "tflops", "peak_pct", "stable", "stability_note", "cv", "throttled", "power_capped",
]  # fmt: skip


def results_frame(rows: Iterable[ResultRow | dict[str, Any]]) -> pd.DataFrame:
    """One row per measurement with a ``series`` column; numeric columns as floats."""
    records = [r.to_dict() if isinstance(r, ResultRow) else dict(r) for r in rows]
    if not records:
        return pd.DataFrame(columns=[*FLAT, "series"])
    df = pd.DataFrame.from_records(records)
    df["series"] = [
        describe(
            {
                "backend": b,
                "precision": p,
                "device": d,
                "options": o if isinstance(o, dict) else None,
            },
            "series",
        )
        for b, p, d, o in zip(
            df["backend"], df["precision"], df["device"], df["options"], strict=True
        )
    ]
    for col in ("p50_ms", "p10_ms", "p90_ms", "p99_ms", "throughput_ips", "max_rel_err", "cosine"):
        if col in df:
            df[col] = pd.to_numeric(df[col], errors="coerce")
    df["batch"] = df["batch"].astype(int)
    return df


def landed_text(rows: Iterable[ResultRow], last: int = 12) -> str:
    """The points that have landed, as plain fixed-width text (cheap to redraw while a
    sweep runs; the charts come at its end). The newest ``last`` of them."""
    rows = list(rows)
    lines = []
    for r in rows[-last:]:
        name = describe(r, "series")
        took = f"{r.p50_ms:10.3f} ms" if r.status == "ok" and r.p50_ms else f"{r.status:>13}"
        lines.append(f"batch {r.batch:>4}  {took}  {name}")
    more = len(rows) - len(lines)
    head = f"{len(rows)} points so far" + (f" (the last {len(lines)} shown)" if more else "")
    return "\n".join([head, *lines])


def _plain(df: pd.DataFrame | None) -> pd.DataFrame | None:
    """The table with its text escaped for Plotly, which renders <a>, <b>, <br> in names."""
    if df is None:
        return None
    text = [c for c in ("series", "provider") if c in df.columns]
    if not text:
        return df
    return df.assign(**{c: [chart_text(v) for v in df[c]] for c in text})


def measured(df: pd.DataFrame) -> pd.DataFrame:
    """Only rows with a real measurement (status ``ok`` and a p50); one per series and
    batch, the first measured (auto mode can time one configuration twice when a step's
    extra options changed nothing on the model, engine.running.sweep.drop_inert_options)."""
    if df.empty:
        return df
    ok = df[(df["status"] == "ok") & df["p50_ms"].notna()]
    return ok.drop_duplicates(["series", "batch"], keep="first").sort_values(["series", "batch"])


def table_frame(df: pd.DataFrame, onnx_source: bool = False) -> pd.DataFrame:
    """The columns a results table shows, measured rows first, then skipped or failed.

    For a user's ONNX file the parity reference is the backend that offers it (ONNX Runtime
    FP32 on the CPU), so that configuration's own rows read "reference": comparing it with
    itself proves nothing.
    """
    cols = [c for c in TABLE_COLUMNS if c in df.columns]
    out = df[cols].copy()
    if onnx_source and "parity_status" in out and not df.empty:
        is_ref = [
            is_reference(RunnerSpec(b, d, p, tuple(sorted(switches(b, o).items()))), True)
            for b, d, p, o in zip(
                df["backend"], df["device"], df["precision"], df["options"], strict=True
            )
        ]
        out["parity_status"] = [
            "reference" if ref and v != "off" else v
            for ref, v in zip(is_ref, out["parity_status"], strict=True)
        ]
    out["_ok"] = out["status"] != "ok"
    return out.sort_values(["_ok", "series", "batch"]).drop(columns="_ok").reset_index(drop=True)


def _colours(names: Iterable[str]) -> dict[str, str]:
    return {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(sorted(set(names)))}


def _rgba(hex_colour: str, alpha: float) -> str:
    h = hex_colour.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def _batch_axis(batches: Iterable[int]) -> dict[str, Any]:
    # Plotly's log axes are base 10; powers-of-two ticks make it read as a log-2 axis.
    top = max([1, *batches])
    ticks = [2**i for i in range(top.bit_length() + 1) if 2**i <= top]
    return {
        "type": "log",
        "title": "batch size (log₂ axis)",
        "tickvals": ticks,
        "ticktext": [str(t) for t in ticks],
    }


def _empty(title: str, message: str) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(title=title, xaxis={"visible": False}, yaxis={"visible": False})
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    return fig


def _hover(y_label: str, y_fmt: str) -> str:
    return (
        "<b>%{fullData.name}</b><br>batch %{x}<br>"
        + f"{y_label} %{{y:{y_fmt}}}<br>"
        + "p10 %{customdata[0]:.3f} ms · p50 %{customdata[1]:.3f} ms<br>"
        + "p90 %{customdata[2]:.3f} ms · p99 %{customdata[3]:.3f} ms<br>"
        + "throughput %{customdata[4]:.1f} images/s<br>"
        + "ran on %{customdata[5]} (%{customdata[6]} iterations)<extra></extra>"
    )


def _customdata(g: pd.DataFrame) -> list[list[Any]]:
    cols = ["p10_ms", "p50_ms", "p90_ms", "p99_ms", "throughput_ips", "provider", "iters"]
    sub = g.reindex(columns=cols)
    return [["?" if pd.isna(v) else v for v in row] for row in sub.itertuples(index=False)]


REFERENCE_SYMBOLS = ("diamond-open", "square-open", "circle-open", "triangle-up-open", "x-thin")


def _value_axis(title: str, values: Iterable[float]) -> dict[str, Any]:
    """Linear, or logarithmic with one tick per decade when values span > 30×."""
    vals = [v for v in values if v and v > 0]
    if vals and max(vals) / min(vals) > 30:
        return {"title": title, "type": "log", "dtick": 1}
    return {"title": title, "type": "linear"}


def overlay_for(data: pd.DataFrame, reference: pd.DataFrame | None) -> pd.DataFrame | None:
    """The quoted study only where it describes what is charted: ResNet50 at 224 px. Drawn
    beside MobileNetV3 at 32 px or a user's own CNN it read as their T4 figure."""
    if reference is None or data.empty:
        return reference
    models = set(data["model"]) if "model" in data else set()
    sizes = set(data["image_size"]) if "image_size" in data else set()
    return reference if models == {"resnet50"} and sizes == {224} else None


def _reference_traces(fig: go.Figure, reference: pd.DataFrame | None, y: str, unit: str) -> None:
    if reference is None or reference.empty:
        return
    # One neutral colour and a symbol per quoted figure: they must not pass for our series.
    for i, (name, g) in enumerate(reference.groupby("series", sort=True)):
        symbol = REFERENCE_SYMBOLS[i % len(REFERENCE_SYMBOLS)]
        fig.add_trace(
            go.Scatter(
                x=g["batch"],
                y=g[y],
                mode="markers",
                name=f"{name}, ResNet50 224 px on a T4 ({QUOTED_SUFFIX})",
                legendgroup="reference",
                legendgrouptitle_text="Study: ResNet50 at 224 px on a T4, quoted",
                marker={
                    "symbol": symbol,
                    "size": 11,
                    "color": "#555555",
                    "line": {"width": 2, "color": "#555555"},
                },
                customdata=g["provider"].tolist(),
                hovertemplate=(
                    f"<b>%{{fullData.name}}</b><br>batch %{{x}}<br>%{{y:.1f}} {unit}<br>"
                    "%{customdata}<extra></extra>"
                ),
            )
        )


def latency_chart(df: pd.DataFrame, reference: pd.DataFrame | None = None) -> go.Figure:
    """p50 latency per batch with a p10–p90 band per series; the reference as open markers."""
    data, reference = measured(_plain(df)), _plain(reference)
    reference = overlay_for(data, reference)
    if data.empty and (reference is None or reference.empty):
        return _empty("Latency against batch size", "no measurements yet")
    colours = _colours(data["series"]) if not data.empty else {}
    fig = go.Figure()
    for name, g in data.groupby("series", sort=True):
        c = colours[name]
        band = g["p10_ms"].notna() & g["p90_ms"].notna()
        if band.any():
            fig.add_trace(
                go.Scatter(
                    x=g["batch"][band], y=g["p90_ms"][band], mode="lines",
                    line={"width": 0}, showlegend=False, hoverinfo="skip", legendgroup=name,
                )
            )  # fmt: skip
            fig.add_trace(
                go.Scatter(
                    x=g["batch"][band], y=g["p10_ms"][band], mode="lines", line={"width": 0},
                    fill="tonexty", fillcolor=_rgba(c, 0.18), showlegend=False,
                    hoverinfo="skip", legendgroup=name, name=f"{name} p10–p90",
                )
            )  # fmt: skip
        fig.add_trace(
            go.Scatter(
                x=g["batch"], y=g["p50_ms"], mode="lines+markers", name=name,
                line={"color": c, "width": 2}, legendgroup=name,
                customdata=_customdata(g), hovertemplate=_hover("p50", ".3f"),
            )
        )  # fmt: skip
    _reference_traces(fig, reference, "p50_ms", "ms")
    batches = list(data["batch"]) + ([] if reference is None else list(reference["batch"]))
    ys = list(data["p50_ms"]) + ([] if reference is None else list(reference["p50_ms"]))
    fig.update_layout(
        title="Latency against batch size (p50, band p10–p90)",
        xaxis=_batch_axis(batches),
        yaxis=_value_axis("latency per batch (ms)", ys),
        hovermode="closest",
        legend={"orientation": "v"},
        margin={"t": 60},
    )
    return fig


def throughput_chart(df: pd.DataFrame, reference: pd.DataFrame | None = None) -> go.Figure:
    """Images per second (batch / p50) against batch size."""
    data, reference = measured(_plain(df)), _plain(reference)
    reference = overlay_for(data, reference)
    if data.empty and (reference is None or reference.empty):
        return _empty("Throughput against batch size", "no measurements yet")
    colours = _colours(data["series"]) if not data.empty else {}
    fig = go.Figure()
    for name, g in data.groupby("series", sort=True):
        fig.add_trace(
            go.Scatter(
                x=g["batch"], y=g["throughput_ips"], mode="lines+markers", name=name,
                line={"color": colours[name], "width": 2}, customdata=_customdata(g),
                hovertemplate=_hover("throughput", ".1f").replace(
                    "throughput %{y:.1f}", "%{y:.1f} images/s"
                ),
            )
        )  # fmt: skip
    _reference_traces(fig, reference, "throughput_ips", "images/s")
    batches = list(data["batch"]) + ([] if reference is None else list(reference["batch"]))
    ys = list(data["throughput_ips"]) + (
        [] if reference is None else list(reference["throughput_ips"])
    )
    fig.update_layout(
        title="Throughput against batch size (batch ÷ p50)",
        xaxis=_batch_axis(batches),
        yaxis=_value_axis("throughput (images/s)", ys),
        margin={"t": 60},
    )
    return fig


def efficiency_chart(df: pd.DataFrame) -> go.Figure:
    """% of the device's dense peak per batch (TFLOP/s where no peak is known).

    Unstable points are open markers and throttled or power-capped ones say so on hover,
    so a low or high figure is read with its caveat (engine.core.stability, engine.hardware.peaks).
    """
    data = measured(df)
    if "tflops" in data:
        data = data[pd.to_numeric(data["tflops"], errors="coerce").notna()]
    if data.empty or "tflops" not in data:
        return _empty("Achieved compute", "no FLOP count for these points")
    has_peak = "peak_pct" in data and pd.to_numeric(data["peak_pct"], errors="coerce").notna().any()
    y, title = ("peak_pct", "% of dense peak") if has_peak else ("tflops", "TFLOP/s")
    colours = _colours(data["series"])
    fig = go.Figure()
    for name, g in data.groupby("series", sort=True):
        unstable = [v is False for v in g.get("stable", [None] * len(g))]
        flags = [
            ", ".join(w for w, on in (("throttled", t is True), ("power-capped", c is True)) if on)
            for t, c in zip(
                g.get("throttled", [None] * len(g)),
                g.get("power_capped", [None] * len(g)),
                strict=True,
            )
        ]
        fig.add_trace(
            go.Scatter(
                x=g["batch"], y=pd.to_numeric(g[y], errors="coerce"), mode="lines+markers",
                name=name, line={"color": colours[name], "width": 2},
                marker={"symbol": ["circle-open" if u else "circle" for u in unstable], "size": 9},
                customdata=[[t, "unstable" if u else "", f] for t, u, f in zip(g["tflops"], unstable, flags, strict=True)],
                hovertemplate="<b>%{fullData.name}</b><br>batch %{x}<br>%{y:.3g} " + title
                + "<br>%{customdata[0]:.3g} TFLOP/s %{customdata[1]} %{customdata[2]}<extra></extra>",
            )
        )  # fmt: skip
    fig.update_layout(
        title=f"Achieved compute against batch size ({title}; open markers: unstable)",
        xaxis=_batch_axis(data["batch"]),
        yaxis={"title": title, "rangemode": "tozero"},
        margin={"t": 60},
    )
    return fig


def speedup_frame(df: pd.DataFrame) -> pd.DataFrame:
    """p50 speed-up of every series over PyTorch FP32 on the same device and batch."""
    data = measured(df)
    if data.empty:
        return data.assign(speedup=pd.Series(dtype=float))
    base = data[(data["backend"] == BASELINE[0]) & (data["precision"] == BASELINE[1])]
    if "options" in base:  # a baseline with switches (channels_last, graphs) is no baseline
        base = base[base["options"].map(lambda o: not switches(BASELINE[0], o)).astype(bool)]
    base = base.groupby(["device", "batch"], as_index=False)["p50_ms"].min()
    base = base.rename(columns={"p50_ms": "baseline_p50_ms"})
    out = data.merge(base, on=["device", "batch"], how="inner")
    out["speedup"] = out["baseline_p50_ms"] / out["p50_ms"]
    return out.sort_values(["series", "batch"])


def speedup_chart(df: pd.DataFrame) -> go.Figure:
    """Speed-up (×) over the PyTorch FP32 baseline; 1× is the baseline itself."""
    sp = speedup_frame(_plain(df))
    if sp.empty:
        return _empty(
            "Speed-up over PyTorch FP32",
            "no PyTorch FP32 baseline on the same device in these results",
        )
    colours = _colours(measured(df)["series"])
    fig = go.Figure()
    for name, g in sp.groupby("series", sort=True):
        fig.add_trace(
            go.Scatter(
                x=g["batch"], y=g["speedup"], mode="lines+markers", name=name,
                line={"color": colours[name], "width": 2},
                customdata=g[["p50_ms", "baseline_p50_ms"]].values.tolist(),
                hovertemplate=(
                    "<b>%{fullData.name}</b><br>batch %{x}<br>%{y:.2f}× PyTorch FP32<br>"
                    "p50 %{customdata[0]:.3f} ms vs %{customdata[1]:.3f} ms<extra></extra>"
                ),
            )
        )  # fmt: skip
    fig.add_hline(y=1.0, line_dash="dot", line_color="grey", annotation_text="baseline")
    fig.update_layout(
        title="Speed-up over PyTorch FP32 on the same device (p50)",
        xaxis=_batch_axis(sp["batch"]),
        yaxis={"title": "speed-up (×)"},
        margin={"t": 60},
    )
    return fig


def op_histogram_chart(
    before: dict[str, int], after: dict[str, int], after_label: str = "after ONNX Runtime"
) -> go.Figure:
    """Operator counts of a graph before and after optimisation, side by side."""
    ops = sorted(
        set(before) | set(after), key=lambda op: (-(before.get(op, 0) + after.get(op, 0)), op)
    )
    fig = go.Figure(
        [
            go.Bar(name="exported", x=ops, y=[before.get(o, 0) for o in ops]),
            go.Bar(name=after_label, x=ops, y=[after.get(o, 0) for o in ops]),
        ]
    )
    fig.update_layout(
        barmode="group",
        title="Operators before and after graph optimisation",
        yaxis_title="nodes",
        margin={"t": 60},
    )
    return fig


def _noise_symbol(noise: str) -> str:
    return "circle-open" if noise == "within noise" else "circle"


def compare_chart(df: pd.DataFrame, a_name: str = "A", b_name: str = "B") -> go.Figure:
    """Speed-up of B over A against batch size, one line per backend/precision/device.

    ``df`` is :func:`engine.storage.history.compare.speedup_frame`'s table of two runs.
    """
    df = _plain(df)
    fig = go.Figure()
    if df.empty:
        fig.update_layout(title="Speed-up of B over A", xaxis={"visible": False})
        fig.update_layout(yaxis={"visible": False})
        fig.add_annotation(
            text="the two runs share no measured point (backend, precision, device, batch)",
            showarrow=False,
            x=0.5,
            y=0.5,
            xref="paper",
            yref="paper",
        )
        return fig
    for name, g in df.sort_values("batch").groupby("series", sort=True):
        noise = list(g["noise"]) if "noise" in g else [""] * len(g)
        fig.add_trace(
            go.Scatter(
                x=g["batch"],
                y=g["speedup"],
                mode="lines+markers",
                name=name,
                # open markers: within the two runs' noise (engine.core.stability), not a speed-up
                marker={"symbol": [_noise_symbol(n) for n in noise], "size": 9},
                customdata=[
                    [a, b, n] for a, b, n in zip(g["a_p50_ms"], g["b_p50_ms"], noise, strict=True)
                ],
                hovertemplate=(
                    "<b>%{fullData.name}</b><br>batch %{x}<br>%{y:.2f}× (%{customdata[2]})<br>"
                    f"{a_name} %{{customdata[0]:.3f}} ms → {b_name} %{{customdata[1]:.3f}} ms"
                    "<extra></extra>"
                ),
            )
        )
    fig.add_hline(y=1.0, line_dash="dot", line_color="grey", annotation_text="same speed")
    spread = float(df["speedup"].max() / max(df["speedup"].min(), 1e-9))
    top = int(df["batch"].max())
    ticks = [2**i for i in range(top.bit_length() + 1) if 2**i <= top]
    fig.update_layout(
        title=f"Speed-up of {b_name} over {a_name} (p50 of {a_name} ÷ p50 of {b_name})",
        xaxis={"type": "log", "title": "batch size", "tickvals": ticks},
        # Log only when the ratios spread widely, so 0.5× and 2× sit as far from 1× as they should.
        yaxis={
            "title": "speed-up (×), above 1: B is faster",
            "type": "log" if spread > 4 else "linear",
        },
        margin={"t": 60},
    )
    return fig
