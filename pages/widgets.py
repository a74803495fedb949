"""Sidebar widgets that keep their values across pages, and the backend option controls.

Not a page: ``dashboard.py`` lists its pages explicitly. The option controls are generated
from each backend's declared options (:mod:`engine.core.options`): one control per option
name, so a new backend's options appear without any change to the pages.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from engine.backends import declared_options
from engine.core.options import OptionField, dashboard_values, fields_of


def _save(key: str) -> None:
    st.session_state[key] = st.session_state["_" + key]


save_kept = _save  # for a widget whose own on_change also saves (the live batch slider)


def kept(key: str, default: Any, options: list | None = None) -> dict[str, Any]:
    """Widget arguments that keep a value across pages.

    Streamlit forgets a widget's value on a run that does not draw it (another page), so
    each widget writes through to a plain session key, which seeds it when drawn again.
    """
    state = st.session_state
    value = state.get(key, default)
    if options is not None:
        if isinstance(value, list):
            value = [v for v in value if v in options]
        elif value not in options:
            value = default if default in options else options[0]
    state[key] = value
    state["_" + key] = value
    return {"key": "_" + key, "on_change": _save, "args": (key,)}


def option_controls(sb: Any, backends: list[str]) -> dict[str, Any]:
    """One control per option the selected backends declare; the values set away from default.

    Generated from the backends' option dataclasses: a new backend's options appear here
    without any change to the pages. A name several backends share is one control.
    """
    merged = {
        name: (f, [b for b in owners if b in backends])
        for name, (f, owners) in declared_options().items()
        if f.cli and any(b in backends for b in owners)
    }
    values: dict[str, Any] = {}
    if not merged:
        return values
    with sb.expander("Backend options (defaults: each library as shipped)"):
        for name, (f, owners) in merged.items():
            label = f"{f.label} ({', '.join(owners)})"
            key = f"vb_opt_{name}"
            if f.kind is bool:
                value = st.checkbox(label, help=f.help, **kept(key, f.default))
            elif f.choices:
                shown = ["library default", *f.choices] if f.optional else list(f.choices)
                first = "library default" if f.default is None else f.default
                value = st.selectbox(label, shown, help=f.help, **kept(key, first, shown))
                value = None if value == "library default" else value
            elif f.kind is str:  # a word or a list (TensorRT-RTX targets "8.6,8.9"), not a number
                value = st.text_input(label, help=f.help, **kept(key, f.default or "")).strip()
                value = (value or None) if f.optional else value
            else:
                value = st.number_input(
                    f"{label}, 0: library default" if f.optional else label,
                    min_value=0 if f.optional else (f.minimum or 0),
                    max_value=f.maximum,
                    help=f.help,
                    **kept(key, 0 if f.default is None else f.default),
                )
                value = None if f.optional and not value else f.kind(value)
            if value != f.default:
                values[name] = value
    return values


def setting_controls(sb: Any, settings_cls: type) -> Any:
    """The sweep settings (engine.core.config.BenchSettings) as sidebar controls, generated
    from their declaration: one control per setting with a ``dashboard`` value, the CLI's
    defaults for the rest. A new setting declared there appears here unchanged."""
    values = {}
    for f in fields_of(settings_cls):
        if f.in_sidebar:
            values[f.name] = _setting_control(sb, f)
    return settings_cls(**{**dashboard_values(settings_cls), **values})


def _setting_control(sb: Any, f: OptionField) -> Any:
    key, help_ = f"vb_{f.name}", f"{f.help} (the CLI's {f.flag})"
    if f.kind is bool:
        return sb.toggle(f.label, help=help_, **kept(key, bool(f.dashboard)))
    if f.choices:
        return sb.selectbox(f.label, list(f.choices), help=help_, **kept(key, f.dashboard))
    if f.optional:  # 0 stands for "not set": the libraries' default
        low, start = 0, f.dashboard or 0
    else:
        low, start = f.minimum or 0, f.dashboard
    value = sb.number_input(
        f.label,
        f.kind(low),
        f.kind(f.maximum) if f.maximum is not None else None,
        help=help_,
        **kept(key, f.kind(start)),
    )
    return (f.kind(value) or None) if f.optional else f.kind(value)
