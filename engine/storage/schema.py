"""The bench document's schema, declared once with pydantic, and how a stored run is read.

A ``bench --json`` document (``{schema, run, rows}``) comes from another machine, so
every field of it is checked here: :class:`BenchDocument` declares each one's type and
range (rows from :class:`~engine.core.config.ResultRow`'s own fields, machine state and
the busy check included), and the same declaration publishes the JSON Schema in
``docs/bench-document.schema.json`` (:func:`document_json_schema`). Free-form parts
(the configuration, the environment, machine state beyond its known figures) are JSON
trees checked by one walker: nested at most ``MAX_DEPTH`` levels, strings bounded and
sanitised (keys too: pydantic itself cannot read a lone surrogate), numbers finite.
Pydantic's own error text never reaches a user: :func:`problem` turns the first error
into one line that names the field ("row 3 has p50_ms nan, not a finite number").

A stored run is read with :func:`readable_run`: a run whose configuration or
environment is not an object, or whose date is not ISO, is marked damaged and the rest
of the history still reads.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import MISSING
from functools import partial
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    WrapValidator,
    create_model,
    field_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from engine.core.config import MAX_BATCH, MAX_SEED
from engine.core.results import flat_fields
from engine.core.stability import SAMPLE_CAP
from engine.core.text import safe_text
from engine.storage.notes import MAX_NOTE_CHARS, MAX_NOTES, capped_note
from engine.storage.store import JSON_SCHEMA

MAX_ROWS = 100_000
MAX_TEXT = 20_000  # characters in one string: a long reproduce command fits
MAX_DEPTH = 8  # nesting of configuration and environment objects
MAX_IMAGE_SIZE = 16_384
MAX_MS = 1e9  # eleven days for one batch: anything larger is not a measurement
MAX_NUMBER = 1e15  # any other figure (images/s, MiB, iterations)
_TAGS = ("model object", "model name")  # union branches pydantic puts in an error's path


# -- values ------------------------------------------------------------------------------


def shown(value: Any) -> str:
    """A value quoted for a message: strings in quotes and sanitised, all of it short.

    The file's characters are escaped once, by :func:`safe_text` (a newline reads
    ``\\x0a``); ``repr`` on top escaped the escape's backslash again (``\\\\x0a``).
    """
    if isinstance(value, (list, dict)):  # never str() a container: it may be nested deep
        return "an array" if isinstance(value, list) else "an object"
    if isinstance(value, str):  # cut before escaping, so no escape is cut in half
        return f"'{safe_text(value[:36])}" + ("...'" if len(value) > 36 else "'")
    text = safe_text(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _fail(value: Any, why: str, path: str = "") -> PydanticCustomError:
    """An error whose text follows the field's name: "<path> <value>, <why>"."""
    return PydanticCustomError("bench", "{text}", {"text": f"{path} {shown(value)}, {why}"})


def _check_text(value: Any, path: str = "") -> str:
    if not isinstance(value, str):
        raise _fail(value, "not a string", path)
    if len(value) > MAX_TEXT:
        text = f"{path} a string of {len(value)} characters (at most {MAX_TEXT})"
        raise PydanticCustomError("bench", "{text}", {"text": text})
    return safe_text(value)


def _check_number(low: float, high: float, whole: bool, value: Any, path: str = "") -> Any:
    if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)):
        kind = ("positive whole number" if low >= 1 else "whole number") if whole else "number"
        raise _fail(value, f"not a {kind}", path)
    if not math.isfinite(value):
        raise _fail(value, "not a finite number", path)
    if not low <= value <= high:
        raise _fail(value, f"outside {low:g}..{high:g}", path)
    return value


def _check_note(value: Any) -> str:
    """A run's note: prose from another machine, sanitised like every string, then cut
    to MAX_NOTE_CHARS (not refused: a long note still says what ran)."""
    if not isinstance(value, str):
        raise _fail(value, "not a string")
    return capped_note(safe_text(value))


def _check_date(value: Any, empty_ok: bool = False) -> str:
    if empty_ok and value in ("", None):
        return ""
    if not isinstance(value, str):
        raise _fail(value, "not a date string")
    try:
        dt.datetime.fromisoformat(value)
    except ValueError:
        raise _fail(value, "not an ISO date") from None
    return value


def _check_scalar(value: Any, path: str = "") -> Any:
    if isinstance(value, str):
        return _check_text(value, path)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return _check_number(-MAX_NUMBER, MAX_NUMBER, False, value, path)
    raise _fail(value, "not a single value", path)


def _check_tree(value: Any, path: str = "", depth: int = 0) -> Any:
    """A JSON tree at most MAX_DEPTH deep with every key and string sanitised."""
    if depth > MAX_DEPTH:
        text = f"{path} nested more than {MAX_DEPTH} levels deep"
        raise PydanticCustomError("bench", "{text}", {"text": text})
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            key = _check_scalar(k, f"{path} a key")
            out[key] = _check_tree(v, f"{path}.{key[:40]}", depth + 1)
        return out
    if isinstance(value, list):
        return [_check_tree(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)]
    return _check_scalar(value, path)


def Whole(low: int, high: float) -> Any:  # noqa: N802 - used as a type
    return Annotated[
        int, Field(ge=low, le=high), BeforeValidator(partial(_check_number, low, high, True))
    ]


def Number(low: float = -MAX_NUMBER, high: float = MAX_NUMBER) -> Any:  # noqa: N802
    check = partial(_check_number, low, high, False)
    return Annotated[float, Field(ge=low, le=high, allow_inf_nan=False), BeforeValidator(check)]


Text = Annotated[
    str, BeforeValidator(_check_text), Field(json_schema_extra={"maxLength": MAX_TEXT})
]
Note = Annotated[
    str,
    BeforeValidator(_check_note),
    Field(description=f"one note; a longer one is cut to {MAX_NOTE_CHARS} characters"),
]
Date = Annotated[
    str, BeforeValidator(_check_date), Field(json_schema_extra={"format": "date-time"})
]
DateOrEmpty = Annotated[str, BeforeValidator(partial(_check_date, empty_ok=True))]
Scalar = Annotated[
    Any,
    BeforeValidator(_check_scalar),
    WithJsonSchema({"type": ["string", "number", "boolean", "null"]}),
]
Tree = Annotated[
    Any,
    BeforeValidator(_check_tree),
    WithJsonSchema({"description": f"any JSON value nested at most {MAX_DEPTH} levels"}),
]


def _sanitised(model: type[BaseModel]) -> Any:
    """``model`` as the check of a tree whose sanitised self is kept, in its own order.

    The walker makes keys and strings safe first (pydantic cannot read a lone surrogate);
    the model then checks the fields it declares. What is stored is the tree, not the
    model's dump, so a re-imported run's configuration is byte for byte what was stored.
    """

    def check(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        if not isinstance(value, dict):
            return handler(value)  # pydantic says "not an object"
        tree = _check_tree(value)
        handler(tree)
        return tree

    return Annotated[model, WrapValidator(check)]


def fields_given(model: BaseModel) -> dict[str, Any]:
    """A checked model's fields that the document gave, as validated (no re-serialising)."""
    return {k: getattr(model, k) for k in model.model_fields_set}


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow", populate_by_name=True)


# -- the document --------------------------------------------------------------------------


class BusyCheck(_Strict):
    """What else used the machine just before the sweep (engine.hardware.machine)."""

    window_s: Number(0, 86_400) | None = None
    cpu_other_share: Number(0, 1e6) | None = None
    cpu_other_cores: Number(0, 1e6) | None = None
    top_cpu: list[Tree] = []
    gpu_others: list[dict[str, Tree]] = []
    notes: list[Text] = []


class Environment(_Strict):
    """The machine's fingerprint; keys beyond these are kept as they are."""

    host: Text | None = None
    gpu: Text | None = None
    cpu: Text | None = None
    machine: Text | None = None
    os: Text | None = None
    busy_check: _sanitised(BusyCheck) | None = None


class ModelSource(_Strict):
    name: Text | None = None
    weights: Text | None = None
    onnx_path: Text | None = None
    image_size: Whole(1, MAX_IMAGE_SIZE) | None = None
    seed: Whole(0, MAX_SEED) | None = None


def _model_kind(value: Any) -> str:
    """The union branch of a configuration's model: a source (object) or a bare name."""
    return _TAGS[1] if isinstance(value, str) else _TAGS[0]


def _object_or_name(value: Any) -> Any:
    if value is not None and not isinstance(value, (dict, str)):
        raise _fail(value, "neither an object nor a name")
    return value


class Configuration(_Strict):
    """What was run (engine.core.config.SweepConfig); other keys are kept as they are."""

    model: (
        Annotated[
            Annotated[ModelSource, Tag(_TAGS[0])] | Annotated[Text, Tag(_TAGS[1])],
            Discriminator(_model_kind),
        ]
        | None
    ) = Field(default=None, json_schema_extra={"description": "a model source or a name"})

    _kind = field_validator("model", mode="before")(_object_or_name)


class MachineState(_Strict):
    """What the machine did during one point (NVML readings, thread counts)."""

    nvml_samples: Whole(0, MAX_NUMBER) | None = None
    sm_clock_mhz_min: Number(0, 1e6) | None = None
    sm_clock_mhz_mean: Number(0, 1e6) | None = None
    sm_clock_mhz_max: Number(0, 1e6) | None = None
    mem_clock_mhz_min: Number(0, 1e6) | None = None
    mem_clock_mhz_max: Number(0, 1e6) | None = None
    power_w_mean: Number(0, 1e6) | None = None
    power_w_max: Number(0, 1e6) | None = None
    power_limit_w: Number(0, 1e6) | None = None
    clock_event_reasons: dict[Text, Number(0, 1)] | None = None
    throttled: bool | None = None
    power_capped: bool | None = None
    torch_threads: Whole(0, 1_000_000) | None = None
    ort_threads: Whole(0, 1_000_000) | None = None
    ort_intra_op_setting: Whole(0, 1_000_000) | None = None


class Run(_Strict):
    model_config = ConfigDict(strict=True, extra="ignore")  # id and source are local

    created_at: Date
    label: Text | None = None
    status: Text | None = None
    reproduce: Text | None = None
    # What really ran, as the run said it; documents made before runs kept notes have none.
    notes: Annotated[list[Note], Field(max_length=MAX_NOTES)] = []
    configuration: _sanitised(Configuration)
    environment: _sanitised(Environment)


# Per-field ranges of a row beyond "a finite number within ±MAX_NUMBER".
_ROW_RANGES: dict[str, tuple[float, float]] = {
    "batch": (1, MAX_BATCH),
    "image_size": (1, MAX_IMAGE_SIZE),
    "iters": (0, MAX_NUMBER),
    "threads": (1, 1_000_000),
    "rounds": (0, MAX_NUMBER),
    "cosine": (-1.001, 1.001),
    "top1_agree": (0.0, 1.0),
    **{k: (0.0, MAX_MS) for k in ("p50_ms", "p90_ms", "p99_ms", "p10_ms", "mean_ms")},
    **{k: (0.0, MAX_MS) for k in ("std_ms", "min_ms")},
}
_ROW_SPECIAL = {
    "options": dict[Text, Scalar],
    "machine_state": _sanitised(MachineState),
    "samples_ms": Annotated[list[Number(0, MAX_MS)], Field(max_length=SAMPLE_CAP)] | None,
    "created_at": DateOrEmpty,
}


def _row_type(name: str, annotation: str) -> Any:
    """The checked type of one ResultRow field, from its annotation ("float | None", ...)."""
    if name in _ROW_SPECIAL:
        return _ROW_SPECIAL[name]
    base = {"str": Text, "bool": bool}.get(annotation.split("|")[0].strip())
    if base is None:
        whole = annotation.startswith("int")
        low, high = _ROW_RANGES.get(name, (-MAX_NUMBER, MAX_NUMBER))
        base = Whole(low, high) if whole else Number(low, high)
    return base | None if "None" in annotation else base


def _row_model() -> type[BaseModel]:
    """The row schema, built from the flat record of a ResultRow's parts, so a new field
    of any part is checked at once."""
    spec: dict[str, Any] = {}
    for name, annotation, default in flat_fields():  # the flat record a row is stored as
        spec[name] = (_row_type(name, annotation), ... if default is MISSING else default)
    config = ConfigDict(strict=True, extra="ignore")
    return create_model("Row", __config__=config, __doc__="One measured point.", **spec)


Row = _row_model()


class BenchDocument(_Strict):
    """A ``bench --json`` document: one run and its rows."""

    model_config = ConfigDict(
        strict=True, extra="ignore", title="visionbench bench document", populate_by_name=True
    )

    version: Whole(1, MAX_NUMBER) = Field(alias="schema")
    run: Run
    rows: Annotated[list[Row], Field(max_length=MAX_ROWS)]


def document_json_schema() -> str:
    """The JSON Schema of a bench document, as committed in docs/bench-document.schema.json."""
    schema = BenchDocument.model_json_schema(by_alias=True)
    return json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


# -- errors as one line --------------------------------------------------------------------


def _dotted(parts: tuple[Any, ...]) -> str:
    # A part may be a key of the file's own (an option's name): escaped like its values.
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts).lstrip(".")
    return safe_text(text)


def _where(loc: tuple[Any, ...]) -> str:
    """Who has the field at ``loc``: "row 3 has p50_ms", "its environment has gpu"."""
    loc = tuple(p for p in loc if p not in _TAGS)
    if not loc:
        return "it"
    head, rest = loc[0], loc[1:]
    if head == "rows":
        if not rest:
            return "its rows"
        return f"row {rest[0]}" + (f" has {_dotted(rest[1:])}" if rest[1:] else "")
    if head == "run" and rest and rest[0] in ("configuration", "environment") and rest[1:]:
        return f"its {rest[0]} has {_dotted(rest[1:])}"
    if head == "run":
        return f"its run has {_dotted(rest)}" if rest else "its run"
    return f"its {_dotted(loc)}"


_REASONS = {
    "string_type": "not a string",
    "bool_type": "not true or false",
    "list_type": "not a list",
    "dict_type": "not an object",
    "model_type": "not an object",
    "model_attributes_type": "not an object",
}


def problem(error: ErrorDetails, errors: list[ErrorDetails]) -> str:
    """One line for pydantic's first error, naming the field and the value."""
    kind, loc = error["type"], tuple(error["loc"])
    if kind == "bench":
        return _where(loc) + error["msg"]
    if kind == "missing":
        parent = loc[:-1]
        keys = [
            str(e["loc"][-1]) for e in errors if e["type"] == "missing" and e["loc"][:-1] == parent
        ]
        return f"{_where(parent)} has no {', '.join(keys)}"
    if kind in ("model_type", "model_attributes_type") and not loc:
        return f"its top level is a JSON {type(error['input']).__name__}, not an object"
    if kind == "too_long":
        limit = (error.get("ctx") or {}).get("max_length")
        return f"{_where(loc)} holds {len(error['input'])} items, at most {limit}"
    reason = _REASONS.get(kind, safe_text(error["msg"]).lower())
    return f"{_where(loc)} {shown(error['input'])}, {reason}"


def check_document(doc: Any) -> tuple[BenchDocument | None, str]:
    """(the checked document, "") or (None, one line on what is wrong with it)."""
    try:
        return BenchDocument.model_validate(doc), ""
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        return None, problem(errors[0], errors)


# -- stored runs ---------------------------------------------------------------------------


class StoredRun(BaseModel):
    """The parts of a stored run that listing it needs; the rest is shown as it is."""

    model_config = ConfigDict(strict=True, extra="allow")

    configuration: dict[str, Any]
    environment: dict[str, Any]
    created_at: DateOrEmpty = ""


_DAMAGE: dict[str, tuple[str, Any]] = {
    "configuration": ("its configuration is not a JSON object", {}),
    "environment": ("its environment is not a JSON object", {}),
    "created_at": ("its created_at is not an ISO date", ""),
}


def readable_run(run: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """A stored run with its unreadable fields emptied, and what was wrong ("" if nothing).

    A database written by another tool or version may hold a configuration that is a
    list or a date that is not one: that run is shown as damaged, the others as usual.
    """
    run, wrong = dict(run), []
    try:
        StoredRun.model_validate(run)
    except ValidationError as exc:
        bad = {e["loc"][0] for e in exc.errors(include_url=False) if e["loc"]}
        for key, (why, empty) in _DAMAGE.items():
            if key in bad:
                wrong.append(why)
                run[key] = empty
    for key in ("created_at", "label", "model", "status", "source", "command", "machine"):
        if not isinstance(run.get(key), str):
            run[key] = "" if run.get(key) is None else str(run[key])
    return run, "; ".join(wrong)


__all__ = ["JSON_SCHEMA", "BenchDocument", "check_document", "document_json_schema", "readable_run"]
