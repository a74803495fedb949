"""Backend options declared once, as a dataclass per backend, and everything made from them.

Each backend module declares its switches as a frozen dataclass of :func:`option` fields
(type, default, help, a short label word). From that one declaration come the CLI flags
(:func:`add_cli_flags`), the dashboard's sidebar controls, the words in labels
(:func:`option_words`), validation (:func:`validate`) and the reproduce command
(:func:`cli_args`). A :class:`~engine.core.config.RunnerSpec` stores only values that differ
from the default, so two specs that run the same thing compare equal.

Two rules hold everywhere:

- **An option a backend does not declare is ignored, with a note.** The CLI's flags apply
  to every selected backend that declares them; ``run_sweep`` drops the others from a
  backend's spec before anything is stored and says so in the outcome's notes
  (``"ort ignores channels_last: not one of its options"``). Nothing unknown is passed on.
- **A name several backends declare (``cuda_graph``, ``intra_threads``) is one option**
  with one value: ``--cuda-graph`` switches it on for every selected backend that has it,
  and the sidebar draws one control for it. Backends that share a name must declare the
  same type and default (the contract test checks this).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.core.errors import BadInput

# Every number an option passes reaches a C library as a 32-bit int at most: an option
# declared without a maximum still gets this one, so 10**12 is refused here, in one line.
INT_CEILING = 2**31 - 1
# More CPU threads per core only makes every step slower (engine.core.limits.check_threads).
MAX_THREADS_PER_CORE = 4


class _NotShown:
    def __repr__(self) -> str:
        return "NOT_SHOWN"


NOT_SHOWN: Any = _NotShown()  # a sweep setting the sidebar does not draw


def max_threads() -> int:
    """The most CPU threads a thread-count option accepts: MAX_THREADS_PER_CORE per core.

    More only makes every step slower (999 threads on 2 cores crawled for minutes).
    """
    return MAX_THREADS_PER_CORE * (os.cpu_count() or 1)


def option(
    default: Any,
    help: str,  # noqa: A002 - the word optimum-benchmark and argparse use
    label: str = "",
    choices: tuple[Any, ...] = (),
    off_label: str = "",
    cli: bool = True,
    minimum: int | None = None,
    maximum: int | None = None,
    setting: str = "",
    flag: str = "",
    dashboard: Any = NOT_SHOWN,
    threads: bool = False,
    check: Callable[[Any], None] | None = None,
) -> Any:
    """A declared option: default, help, and the word labels use for it.

    ``label`` names a switched-on bool (or prefixes ``label=value``); ``off_label`` names a
    bool switched off from a default of on. ``cli=False`` hides it from the generated
    flags when another flag sets it (``intra_threads`` comes from ``--threads``);
    ``setting`` names that sweep setting (``"threads"``), so generic code fills the option
    from the setting without naming it. ``flag`` overrides the generated flag name
    (``max_time_s`` is ``--max-time``); ``dashboard`` is a sweep setting's starting value
    in the sidebar, which draws a control only for the settings that have one.
    ``threads`` marks a thread count: it changes how many cores a configuration gets, not
    what it runs, so labels and comparisons leave it out (so does ``setting``).
    ``check`` refuses a value its type and range let through (BadInput in its own words):
    every front end's values pass it (:func:`validate`, :func:`from_cli`), so a value that
    can never work is refused before anything runs, in one place.
    """
    meta = {
        "help": help,
        "label": label,
        "choices": tuple(choices),
        "off_label": off_label,
        "cli": cli,
        "min": minimum,
        "max": maximum,
        "setting": setting,
        "flag": flag,
        "dashboard": dashboard,
        "threads": threads,
        "check": check,
    }
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class NoOptions:
    """A backend without options of its own."""


@dataclass(frozen=True)
class OptionField:
    """One declared option, read from a backend's dataclass."""

    name: str
    kind: type  # bool, int, float or str
    default: Any
    help: str
    label: str
    choices: tuple[Any, ...]
    off_label: str
    cli: bool
    minimum: int | None
    maximum: int | None
    optional: bool  # None is a valid value ("not set")
    setting: str = ""  # the sweep setting that fills it ("threads"), if any
    flag_name: str = ""  # the flag, where it is not the field's name
    dashboard: Any = NOT_SHOWN  # a sweep setting's starting value in the sidebar
    threads: bool = False  # a thread count, not a switch of what runs
    check: Callable[[Any], None] | None = None  # the option's own check of a value

    @property
    def flag(self) -> str:
        return self.flag_name or "--" + self.name.replace("_", "-")

    @property
    def in_sidebar(self) -> bool:
        return self.dashboard is not NOT_SHOWN


def _kind(annotation: Any) -> tuple[type, bool]:
    args = typing.get_args(annotation)
    if args:  # X | None
        inner = [a for a in args if a is not type(None)]
        return inner[0], len(inner) < len(args)
    return annotation, False


def fields_of(options_cls: type) -> list[OptionField]:
    hints = typing.get_type_hints(options_cls)
    out = []
    for f in dataclasses.fields(options_cls):
        kind, optional = _kind(hints[f.name])
        m = f.metadata
        out.append(
            OptionField(
                f.name,
                kind,
                f.default,
                m.get("help", ""),
                m.get("label", "") or f.name,
                m.get("choices", ()),
                m.get("off_label", ""),
                m.get("cli", True),
                m.get("min"),
                m.get("max"),
                optional,
                m.get("setting", ""),
                m.get("flag", ""),
                m.get("dashboard", NOT_SHOWN),
                m.get("threads", False),
                m.get("check"),
            )
        )
    return out


_KIND_WORDS = {int: "whole number", float: "number", bool: "yes/no switch", str: "word"}


def _coerce(f: OptionField, value: Any, owner: str) -> Any:
    if value is None and f.optional:
        return None
    ok = isinstance(value, f.kind) and not (f.kind is not bool and isinstance(value, bool))
    if f.kind is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if not ok:
        kind = _KIND_WORDS.get(f.kind, f.kind.__name__)
        raise BadInput(
            f"the {owner} option {f.name}={value!r} is not a {kind}",
            f.help,
            f"give {f.flag} a {kind}",
        )
    if f.choices and value not in f.choices:
        raise BadInput(
            f"the {owner} option {f.name}={value!r} is not one of {', '.join(map(str, f.choices))}",
            f.help,
        )
    value = _in_range(f, value, owner)
    if f.check is not None and value is not None:
        f.check(value)
    return value


def _in_range(f: OptionField, value: Any, owner: str) -> Any:
    if f.kind not in (int, float) or value is None:
        return value
    lo = f.minimum if f.minimum is not None else -INT_CEILING
    hi = f.maximum if f.maximum is not None else INT_CEILING
    if not (math.isfinite(value) and lo <= value <= hi):
        raise BadInput(
            f"the {owner} option {f.flag} {value!r} is out of range",
            f"it must be a {_KIND_WORDS[f.kind]} from {lo} to {hi}",
            f"use e.g. {f.flag} {max(lo, 1)}",
        )
    return value


def validate(options_cls: type, values: Mapping[str, Any], owner: str) -> Any:
    """The typed options object for ``values`` (declared names only); BadInput if wrong."""
    known = {f.name: f for f in fields_of(options_cls)}
    kw = {k: _coerce(known[k], v, owner) for k, v in values.items() if k in known}
    return options_cls(**kw)


def non_default(options_cls: type, values: Mapping[str, Any]) -> dict[str, Any]:
    """The declared values that differ from their defaults (what a spec stores)."""
    known = {f.name: f for f in fields_of(options_cls)}
    return {k: v for k, v in values.items() if k in known and v != known[k].default}


def unknown(options_cls: type, values: Iterable[str]) -> list[str]:
    names = {f.name for f in fields_of(options_cls)}
    return sorted(k for k in values if k not in names)


def check_known(options_cls: type, values: Iterable[str], owner: str) -> None:
    """BadInput naming the first option ``options_cls`` does not declare and the ones it
    does: a misspelt name given through the Python API was dropped without a word, and
    the runner ran with the default (the CLI's flags and the sidebar's controls can only
    give declared names; a sweep drops another backend's names with a note first)."""
    names = [f.name for f in fields_of(options_cls)]
    wrong = unknown(options_cls, values)
    if not wrong:
        return
    import difflib

    close = difflib.get_close_matches(wrong[0], names, n=1)
    raise BadInput(
        f"{owner} has no option '{wrong[0]}'"
        + (f" (and {len(wrong) - 1} more unknown)" if len(wrong) > 1 else ""),
        f"its options are {', '.join(sorted(names))}" if names else "it has no options",
        f"did you mean {close[0]}?" if close else "leave it out, or use one of those names",
    )


def option_words(
    options_cls: type, values: Mapping[str, Any], quiet: Iterable[str] = ()
) -> list[str]:
    """Label words for the non-default values, e.g. ``['channels-last', 'CUDA graph']``."""
    words = []
    skip = set(quiet)
    for f in fields_of(options_cls):
        if f.name not in values or f.name in skip or values[f.name] == f.default:
            continue
        v = values[f.name]
        if f.kind is bool:
            words.append(f.label if v else (f.off_label or f"no {f.label}"))
        else:
            words.append(f"{f.label}={v}")
    return words


def merged_fields(
    options_classes: Iterable[tuple[str, type]],
) -> dict[str, tuple[OptionField, list[str]]]:
    """Option name → (its field, the backends that declare it), in declaration order."""
    out: dict[str, tuple[OptionField, list[str]]] = {}
    for backend, cls in options_classes:
        for f in fields_of(cls):
            if f.name in out:
                out[f.name][1].append(backend)
            else:
                out[f.name] = (f, [backend])
    return out


def add_cli_flags(
    parser: Any,
    merged: dict[str, tuple[OptionField, list[str]]],
    aliases: Mapping[str, tuple[str, ...]] | None = None,
) -> None:
    """One flag per option name; its default None means "not given". ``aliases``: other
    names a command already gave a flag (``trt-build --flavour`` for ``--trt-flavour``),
    unlisted in its help, so that the flag's own errors read as bench's."""
    for f, owners in merged.values():
        if not f.cli:
            continue
        who = ", ".join(owners)
        help_ = f"{who}: {f.help}"
        if f.default is not None and f.kind is not bool:
            help_ = f"{help_} (default {f.default})"
        for i, name in enumerate((f.flag, *(aliases or {}).get(f.flag, ()))):
            dest = f.flag[2:].replace("-", "_")
            shown = help_ if i == 0 else argparse.SUPPRESS
            if f.kind is bool:
                action = argparse.BooleanOptionalAction
                parser.add_argument(name, dest=dest, action=action, default=None, help=shown)
            else:
                choices = list(f.choices) or None
                parser.add_argument(
                    name, dest=dest, type=f.kind, default=None, choices=choices, help=shown
                )


def from_cli(args: Any, merged: dict[str, tuple[OptionField, list[str]]]) -> dict[str, Any]:
    """The option values given on the command line (flags not given are left out).

    Each is checked against its declaration here, so a value out of range is a usage
    error (one line, exit 2) before anything runs, not a skipped row per backend.
    """
    out = {}
    for name, (f, owners) in merged.items():
        value = getattr(args, name, None) if f.cli else None
        if value is not None:
            out[name] = _coerce(f, value, "/".join(owners))
    return out


def cli_args(
    merged: dict[str, tuple[OptionField, list[str]]], values: Mapping[str, Any]
) -> list[str]:
    """The flags that give ``values`` back (for the reproduce command)."""
    out: list[str] = []
    for name, value in sorted(values.items()):
        entry = merged.get(name)
        if entry is None or not entry[0].cli:
            continue
        f = entry[0]
        if f.kind is bool:
            out.append(f.flag if value else "--no-" + f.flag[2:])
        elif value is not None:
            out += [f.flag, str(value)]
    return out


# -- sweep settings (engine.core.config.BenchSettings): the same declarations ----------------


def add_setting_flags(parser: Any, settings_cls: type) -> None:
    """The sweep settings' flags, each with its declared default (``--iters 50``)."""
    for f in fields_of(settings_cls):
        if f.kind is bool:
            parser.add_argument(f.flag, dest=f.name, action="store_true", help=f.help)
            continue
        shown = f"{f.default:g}" if f.kind is float else f.default
        parser.add_argument(
            f.flag,
            dest=f.name,
            type=f.kind,
            default=f.default,
            choices=list(f.choices) or None,
            metavar=None if f.choices else f.flag[2:].upper().replace("-", "_"),
            help=f.help if f.default is None else f"{f.help} (default {shown})",
        )


def settings_from_cli(args: Any, settings_cls: type) -> Any:
    """The sweep settings the flags give (every one has its default there)."""
    return settings_cls(**{f.name: getattr(args, f.name) for f in fields_of(settings_cls)})


def setting_args(settings: Any) -> list[str]:
    """The flags that give ``settings`` back (for the reproduce command): every value,
    a switch only when on, nothing for a value left unset."""
    out: list[str] = []
    for f in fields_of(type(settings)):
        value = getattr(settings, f.name)
        if f.kind is bool:
            out += [f.flag] if value else []
        elif value is not None:
            out += [f.flag, f"{value:g}" if f.kind is float else str(value)]
    return out


def dashboard_values(settings_cls: type) -> dict[str, Any]:
    """The sweep settings the sidebar draws, at their starting values there."""
    return {f.name: f.dashboard for f in fields_of(settings_cls) if f.in_sidebar}
