"""Reports to share a result: one self-contained HTML page, or a markdown summary.

The HTML page carries Plotly's JavaScript inline (once, with the first chart), so it opens
from a file or an e-mail with no network: latency and throughput charts per run, the
speed-up between runs with the differences that explain it, results, parity and
environment tables, where each backend really ran (a CUDA request served by the CPU is
called out), the provider diagnostics verdict of the machine that wrote the report, and
the markdown summary. The markdown is the part that fits a pull request or an issue.
``python -m engine report`` and the dashboard's download buttons call the same functions.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from markupsafe import Markup

from engine.backends import library_keys
from engine.core.config import ResultRow, parity_label
from engine.core.devices import is_cuda
from engine.core.errors import BadInput
from engine.core.paths import python_command
from engine.core.stability import POINT_COLUMNS, point_cells, speedup_text
from engine.core.text import code_fence, markdown_text, safe_text
from engine.storage.history import (
    RunRecord,
    env_diff,
    load_run,
    speedup_frame,
    speedups,
    unmatched_points,
)
from engine.storage.store import Store

if TYPE_CHECKING:  # plotly loads only for the HTML page; markdown needs none of it
    import plotly.graph_objects as go


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, bool):
        return "ok" if v else "FAIL"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def fell_back(row: ResultRow) -> bool:
    """A GPU request that a CPU served: the failure this product exists to catch."""
    return row.status == "ok" and is_cuda(row.device) and "cpu" in row.provider.lower()


def load_runs(store: Store, run_ids: Sequence[int | str]) -> list[RunRecord]:
    """The runs to report, in order; no ids means the newest stored run."""
    ids = list(run_ids)
    if not ids:
        latest = store.runs(limit=1)
        if not latest:
            raise BadInput(
                f"{store.path.name} holds no runs to report",
                fix=f"run {python_command()} -m engine bench first, or pass --db with another results file",
            )
        ids = [latest[0]["id"]]
    return [load_run(store, i) for i in ids]


def diagnostics_summary(probe: bool = False) -> dict[str, Any]:
    """The provider diagnostics verdict now, on this machine; ``available`` False if it cannot run."""
    try:
        from engine.diagnostics import run_diagnostics
    except ImportError as exc:
        return {"available": False, "why": f"engine.diagnostics cannot be imported: {exc}"}
    try:
        rep = run_diagnostics(probe=probe)
    except Exception as exc:  # noqa: BLE001 - a report must still be written when diagnostics break
        return {"available": False, "why": f"{type(exc).__name__}: {exc}"}
    return {
        "available": True,
        "verdict": rep.verdict,
        "provider": rep.verdict_provider,
        "probed": probe,
        "findings": [
            {"severity": f.severity, "id": f.id, "title": f.title, "fix": f.fix}
            for f in rep.findings
        ],
    }


def _ok_rows(rec: RunRecord) -> list[ResultRow]:
    return [r for r in rec.rows if r.status in ("ok", "quoted") and r.p50_ms is not None]


def _parity_rows(rec: RunRecord) -> list[ResultRow]:
    # Parity is checked once per runner configuration, so one line per configuration.
    seen, out = set(), []
    for r in rec.rows:
        key = (r.backend, r.precision, r.device, tuple(sorted(r.options.items())))
        if r.parity_status != "off" and key not in seen:
            seen.add(key)
            out.append(r)
    return out


def _run_heading(rec: RunRecord) -> str:
    i = rec.info
    size = f", {i.size_label}" if i.image_size else ""
    return f"Run {i.id}: {i.model}{size} on {i.machine}"


def _source_note(rec: RunRecord) -> str:
    i = rec.info
    if i.damaged:
        return f"Damaged in the results database ({i.damaged}): shown with what could be read."
    if i.quoted:
        return "Quoted figures from the study this product grew from: not measured here."
    if i.source == "import":
        return f"Imported from a bench document; measured on {i.machine}, not on this machine."
    return f"Measured on {i.machine}."


def best_line(rec: RunRecord, esc: Callable[[Any], str] = str) -> str:
    """The run's highest throughput and where it ran, or why there is none.

    ``esc`` escapes the fields that come from the run (for markdown); the HTML
    template escapes the whole line instead.
    """
    rows = [r for r in _ok_rows(rec) if r.throughput_ips and not fell_back(r)]
    if not rows:
        return "No point was measured."
    r = max(rows, key=lambda r: r.throughput_ips or 0.0)
    return (
        f"Best throughput: {r.throughput_ips:.1f} images/s with {esc(r.backend)} "
        f"{esc(r.precision)} on {esc(r.device)} at batch {r.batch} "
        f"(p50 {r.p50_ms:.3f} ms, ran on {esc(r.provider)})."
    )


# -- markdown ------------------------------------------------------------------------------


# Every field of a run may come from another machine's document: each one is escaped
# (or fenced) so it renders as its own characters, never as markup or HTML.
_md = markdown_text


def _md_code(text: Any) -> list[str]:
    """A fenced block that ``text`` cannot close: one line, fence longer than its backticks."""
    line = safe_text(text)
    fence = code_fence(line)
    return [fence, line, fence]


def _md_table(head: list[str], lines: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(_md(c) for c in line) + " |" for line in lines]
    return out


def _results_lines(rec: RunRecord) -> list[list[str]]:
    lines = []
    for r in sorted(rec.rows, key=lambda r: (r.backend, r.precision, r.device, r.batch)):
        if r.status in ("ok", "quoted"):
            ran = r.provider + (" ⚠ fell back to the CPU" if fell_back(r) else "")
            parity = parity_label(r.parity_status)
            lines.append(
                [
                    r.backend,
                    r.precision,
                    r.device,
                    ran,
                    str(r.batch),
                    _fmt(r.p50_ms),
                    _fmt(r.p90_ms),
                    _fmt(r.throughput_ips, 1),
                    parity,
                    *point_cells(r),
                ]
            )
        else:
            lines.append(
                [r.backend, r.precision, r.device, r.status, str(r.batch), "-", "-", "-", r.reason]
                + ["-"] * len(POINT_COLUMNS)
            )
    return lines


_RESULT_HEAD = ["backend", "precision", "device", "ran on", "batch", "p50 ms", "p90 ms"]
_RESULT_HEAD += ["images/s", "parity", *POINT_COLUMNS]


def _speedup_lines(a: RunRecord, b: RunRecord) -> list[list[str]]:
    return [
        [
            s.backend,
            s.precision,
            s.device,
            str(s.batch),
            _fmt(s.a_p50_ms),
            _fmt(s.b_p50_ms),
            speedup_text(s.speedup, s.noise).replace("x", "×"),
        ]
        for s in speedups(a.rows, b.rows)
    ]


_SPEEDUP_HEAD = ["backend", "precision", "device", "batch", "A p50 ms", "B p50 ms", "speed-up"]


def _md_run(rec: RunRecord) -> list[str]:
    i, env = rec.info, rec.info.environment
    size = f", {i.size_label}" if i.image_size else ""
    out = [f"### Run {_md(i.id)}: {_md(i.model)}{size} on {_md(i.machine)}", ""]
    out += [f"_{_md(_source_note(rec))}_ {_md(i.label)}", ""]
    facts = [f"started {_md(i.created_at or 'date unknown')}"]
    facts += [f"{_md(k)} {_md(env[k])}" for k in library_keys() if env.get(k)]
    out += [" · ".join(facts), "", best_line(rec, _md), ""]
    falls = [r for r in rec.rows if fell_back(r)]
    if falls:
        names = sorted({f"{r.backend} {r.precision}" for r in falls})
        out += [
            f"> **Warning:** {_md(', '.join(names))} asked for the GPU but ran on the CPU "
            "(provider shown per row).",
            "",
        ]
    out += _md_table(_RESULT_HEAD, _results_lines(rec)) + [""]
    if rec.notes:  # what really ran, as the run said it; each one line, escaped
        out += ["What ran (the run's notes):", "", *(f"- {_md(n)}" for n in rec.notes), ""]
    if i.command:
        out += ["Reproduce:", "", *_md_code(i.command), ""]
    return out


def _md_compare(a: RunRecord, b: RunRecord) -> list[str]:
    out = [
        f"### Speed-up of run {_md(b.info.id)} over run {_md(a.info.id)}",
        "",
        "p50 of A ÷ p50 of B; above 1× run B is faster.",
        "",
    ]
    lines = _speedup_lines(a, b)
    out += _md_table(_SPEEDUP_HEAD, lines) if lines else ["No point measured by both."]
    out.append("")
    diff = env_diff(a, b)
    if diff:
        out += ["Differences that may explain it:", ""]
        out += _md_table(
            ["kind", "setting", f"run {a.info.id}", f"run {b.info.id}"],
            [[d.kind, d.key, d.a, d.b] for d in diff],
        )
        out.append("")
    return out


def _markdown(recs: list[RunRecord], diag: dict[str, Any] | None, generated_at: str) -> str:
    out = [f"## visionbench report ({len(recs)} run{'s' if len(recs) != 1 else ''})", ""]
    for rec in recs:
        out += _md_run(rec)
    for b in recs[1:]:
        out += _md_compare(recs[0], b)
    if diag is not None:  # written on this machine, not read from a file
        if diag["available"]:
            out += [
                f"**ONNX Runtime diagnostics** (on the machine that wrote this report, "
                f"{generated_at}): {diag['verdict']}",
                "",
            ]
        else:
            out += [f"**ONNX Runtime diagnostics:** unavailable ({diag['why']})", ""]
    out += [f"<sub>Written by visionbench at {generated_at}.</sub>", ""]
    return "\n".join(out)


def markdown_report(
    store: Store,
    run_ids: Sequence[int | str],
    diagnostics: bool = True,
    probe: bool = False,
) -> str:
    """A markdown summary of the runs, fit for a pull request or an issue."""
    recs = load_runs(store, run_ids)
    diag = diagnostics_summary(probe) if diagnostics else None
    return _markdown(recs, diag, _now())


# -- HTML ----------------------------------------------------------------------------------
# The page is a Jinja2 template with autoescape: every value from a run is text, and the
# only markup the template takes as is, plotly's chart divs, is marked so here.
_TEMPLATES = Path(__file__).with_name("templates")


def _finalize(value: Any) -> Any:
    """Every value the template prints: controls and bidi overrides shown, then escaped."""
    if isinstance(value, Markup):
        return value
    return safe_text("" if value is None else value, newlines=True)


@functools.cache
def _template() -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        finalize=_finalize,
        keep_trailing_newline=True,
    )
    return env.get_template("report.html.j2")


def _table(head: list[str], lines: list[list[str]], numeric: Sequence[int] = ()) -> dict:
    return {"head": head, "lines": lines, "numeric": tuple(numeric)}


class _Figures:
    """Turns figures into divs; only the first carries plotly.js, inline, never from a CDN."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, fig: go.Figure) -> Markup:
        import plotly.io as pio

        self.count += 1
        # Plotly writes the div and its script; every label in it went through chart_text.
        return Markup(
            pio.to_html(
                fig,
                include_plotlyjs=self.count == 1,
                full_html=False,
                config={"displaylogo": False, "responsive": True},
                default_height="460px",
            )
        )


def _run_charts(rec: RunRecord, figure: _Figures) -> Markup:
    """Latency and throughput figures of one run (the quoted study as reference markers)."""
    from engine.reporting.charts import latency_chart, results_frame, throughput_chart

    if rec.info.quoted:
        empty = results_frame([])
        ref = results_frame(_ok_rows(rec))
        return figure(latency_chart(empty, reference=ref)) + figure(
            throughput_chart(empty, reference=ref)
        )
    df = results_frame(rec.rows)
    return figure(latency_chart(df)) + figure(throughput_chart(df))


def _environment_table(recs: list[RunRecord]) -> dict:
    keys: list[str] = []
    for rec in recs:
        keys += [k for k in rec.info.environment if k not in keys]
    lines = [
        [k] + [_fmt(rec.info.environment.get(k)) for rec in recs]
        for k in keys
        if not isinstance(recs[0].info.environment.get(k), dict)
    ]
    return _table(["setting"] + [f"run {r.info.id}" for r in recs], lines)


def _parity_table(rec: RunRecord) -> dict | None:
    parity = _parity_rows(rec)
    if not parity:
        return None
    lines = [
        [
            r.backend,
            r.precision,
            r.device,
            parity_label(r.parity_status) + (f" ({r.parity_reason})" if r.parity_reason else ""),
            _fmt(r.max_rel_err, 6),
            _fmt(r.cosine, 6),
            _fmt(r.top1_agree, 3),
        ]
        for r in parity
    ]
    head = ["backend", "precision", "device", "parity", "max rel err", "cosine", "top-1 agree"]
    return _table(head, lines, numeric=(4, 5, 6))


def _html_run(rec: RunRecord, figure: _Figures) -> dict:
    i = rec.info
    falls = sorted(
        {f"{r.backend} {r.precision} (ran on {r.provider})" for r in rec.rows if fell_back(r)}
    )
    return {
        "id": i.id,
        "heading": _run_heading(rec),
        "cls": "quoted" if i.quoted or i.source == "import" else "",
        "source_note": _source_note(rec),
        "label": i.label,
        "created_at": i.created_at or "date unknown",
        "status": i.status,
        "best": best_line(rec),
        "falls": "; ".join(falls),
        "charts": _run_charts(rec, figure),
        "results": _table(_RESULT_HEAD, _results_lines(rec), numeric=(4, 5, 6, 7)),
        "parity": _parity_table(rec),
        "notes": list(rec.notes),
        "command": i.command,
    }


def _html_compare(a: RunRecord, b: RunRecord, figure: _Figures) -> dict:
    from engine.reporting.charts import compare_chart

    sp = speedups(a.rows, b.rows)
    only_a, only_b = unmatched_points(a, b)
    diff = env_diff(a, b)
    return {
        "a": a.info.id,
        "b": b.info.id,
        "chart": figure(compare_chart(speedup_frame(sp), f"run {a.info.id}", f"run {b.info.id}")),
        "speedups": _table(_SPEEDUP_HEAD, _speedup_lines(a, b), numeric=(3, 4, 5, 6))
        if sp
        else None,
        "only": [(who.info.id, "; ".join(pts)) for who, pts in ((a, only_a), (b, only_b)) if pts],
        "diff": _table(
            ["kind", "setting", f"run {a.info.id}", f"run {b.info.id}"],
            [[d.kind, d.key, d.a, d.b] for d in diff],
        )
        if diff
        else None,
    }


def _html(recs: list[RunRecord], diag: dict[str, Any] | None, generated_at: str) -> str:
    figure = _Figures()
    diag_table = None
    if diag is not None and diag["available"]:
        lines = [[f["severity"], f["id"], f["title"], f["fix"]] for f in diag["findings"]]
        diag_table = _table(["severity", "id", "finding", "fix"], lines)
    return _template().render(
        ids=", ".join(str(r.info.id) for r in recs),
        titles=[r.info.title for r in recs],
        generated_at=generated_at,
        runs=[_html_run(rec, figure) for rec in recs],
        compares=[_html_compare(recs[0], b, figure) for b in recs[1:]],
        environment=_environment_table(recs),
        diag=diag,
        diag_table=diag_table,
        markdown=_markdown(recs, diag, generated_at),
    )


def html_report(
    store: Store,
    run_ids: Sequence[int | str],
    diagnostics: bool = True,
    probe: bool = False,
) -> str:
    """A self-contained HTML page of the runs: opens with no network, charts included."""
    recs = load_runs(store, run_ids)
    diag = diagnostics_summary(probe) if diagnostics else None
    return _html(recs, diag, _now())
