"""The bench document schema: declared once (engine.storage.schema), published in docs/.

The committed JSON Schema must be what the model generates, so a field added to
ResultRow or the schema shows up in the published file in the same change. The typed
checks are driven with small documents: every refusal is one line naming the field.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from engine.core.errors import BadInput
from engine.storage.documents import validate_document
from engine.storage.schema import document_json_schema, readable_run

ROOT = Path(__file__).resolve().parents[2]
DOC = {
    "schema": 1,
    "run": {
        "created_at": "2026-12-06T10:00:00+00:00",
        "configuration": {"model": {"name": "resnet18", "image_size": 64}, "batches": [1]},
        "environment": {"gpu": "NVIDIA H100", "busy_check": {"gpu_others": [], "notes": []}},
    },
    "rows": [
        {
            "model": "resnet18",
            "backend": "ort",
            "device": "cuda:0",
            "precision": "fp16",
            "batch": 8,
            "p50_ms": 1.5,
            "machine_state": {"sm_clock_mhz_min": 1500, "power_w_max": 300.0},
        }
    ],
}


def test_the_published_json_schema_is_the_models():
    committed = (ROOT / "docs" / "bench-document.schema.json").read_text()
    assert committed == document_json_schema(), (
        "regenerate docs/bench-document.schema.json from engine.storage.schema.document_json_schema"
    )
    schema = json.loads(committed)
    assert schema["required"] == ["schema", "run", "rows"]
    assert {"machine_state", "p50_ms", "batch"} <= schema["$defs"]["Row"]["properties"].keys()
    assert "busy_check" in schema["$defs"]["Environment"]["properties"]


def _refused(change) -> str:
    doc = copy.deepcopy(DOC)
    change(doc)
    with pytest.raises(BadInput) as exc:
        validate_document(doc, "d.json")
    line = exc.value.user_message()
    assert "\n" not in line and "Input should" not in line  # never pydantic's own text
    return line


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d["rows"][0]["machine_state"].update(power_w_max="lots"),
         "row 0 has machine_state.power_w_max 'lots', not a number"),
        (lambda d: d["rows"][0]["machine_state"].update(sm_clock_mhz_min=float("inf")),
         "sm_clock_mhz_min inf, not a finite number"),
        (lambda d: d["run"]["environment"]["busy_check"].update(gpu_others=5),
         "its environment has busy_check.gpu_others 5, not a list"),
        (lambda d: d["run"]["configuration"]["model"].update(image_size=10**9),
         "its configuration has model.image_size 1000000000, outside 1..16384"),
        (lambda d: d["run"]["configuration"].update(model=[1]),
         "its configuration has model an array, neither an object nor a name"),
        (lambda d: d["run"].update(environment=[1]), "its run has environment an array, not an object"),
        (lambda d: d["rows"][0].update(batch=None), "row 0 has batch None, not a positive whole number"),
        (lambda d: d["rows"].append(7), "row 1 7, not an object"),
        (lambda d: d["rows"][0].pop("backend") and d["rows"][0].pop("device"),
         "row 0 has no backend, device"),
    ],
)  # fmt: skip
def test_each_bad_field_is_named_in_one_line(change, expected):
    assert expected in _refused(change)


def test_what_is_kept_is_the_sanitised_document_in_its_own_order():
    doc = copy.deepcopy(DOC)
    doc["run"]["environment"] = {"z\ud800": "a\x1b[2J", "gpu": "G", "busy_check": None}
    run, rows = validate_document(doc)
    assert list(run["environment"]) == ["z\\ud800", "gpu", "busy_check"]
    assert run["environment"]["z\\ud800"] == "a\\x1b[2J"
    assert run["configuration"] == DOC["run"]["configuration"]
    assert rows[0].machine_state == DOC["rows"][0]["machine_state"]
    assert rows[0].created_at == DOC["run"]["created_at"]


def test_a_stored_run_that_cannot_be_read_is_marked_damaged_field_by_field():
    run, why = readable_run({"configuration": [1], "environment": {}, "created_at": "yesterday"})
    assert run["configuration"] == {} and run["created_at"] == ""
    assert why == "its configuration is not a JSON object; its created_at is not an ISO date"
    assert readable_run({"configuration": {}, "environment": {}, "created_at": ""})[1] == ""


def test_a_value_or_key_from_the_file_is_shown_escaped_once():
    """The file's bytes are escaped exactly once (``\\x0a``, not ``\\\\x0a``), and a key from
    the file in a field's path is escaped too: the message itself is one clean line."""
    line = _refused(lambda d: d["run"].update(created_at="2026\nnot a date"))
    assert "its run has created_at '2026\\x0anot a date', not an ISO date" in line, line
    line = _refused(lambda d: d["rows"][0].update(options={"a\nb\x1b[2J": [1]}))
    assert "row 0 has options.a\\x0ab\\x1b[2J an array, not a single value" in line, line
    assert not any(ord(c) < 0x20 for c in line), repr(line)
