"""Payload validation against Lamatic trigger schemas in the test server."""

from __future__ import annotations

import json
from typing import Any

import pytest

from langchain_lamatic.testing._trigger_schema import compile_trigger_schema

SHORT_FORM = json.dumps(
    {
        "city": "string",
        "note": "string?",
        "days": "int",
        "ratio": "float",
        "score": "number",
        "flag": "bool",
        "done": "boolean",
        "meta": "object",
        "items": "array",
        "tags": "[string]",
        "budget": {"total": "int", "currency": "string"},
        "stops": [{"city": "string", "nights": "int?"}],
    }
)

VALID = {
    "city": "Lisbon",
    "days": 3,
    "ratio": 0.5,
    "score": 7,
    "flag": True,
    "done": False,
    "meta": {},
    "items": [1, "a"],
    "tags": ["x"],
    "budget": {"total": 900, "currency": "EUR"},
    "stops": [{"city": "Porto"}],
}


def violation_of(schema: Any, payload: Any) -> tuple[str, str] | None:
    compiled = compile_trigger_schema(schema)
    assert compiled is not None
    found = compiled.validate(payload)
    return None if found is None else (found.field, found.message)


@pytest.mark.parametrize("schema", [None, "", "   ", "{}", {}])
def test_empty_schema_means_no_validation(schema: Any) -> None:
    assert compile_trigger_schema(schema) is None


def test_valid_payload_passes_every_short_form_type() -> None:
    assert violation_of(SHORT_FORM, VALID) is None


def test_extra_keys_are_allowed() -> None:
    assert violation_of(SHORT_FORM, {**VALID, "unexpected": 1}) is None


@pytest.mark.parametrize(
    ("change", "field", "fragment"),
    [
        ({"days": "three"}, "days", "must be an int, got a string"),
        ({"days": True}, "days", "must be an int, got a boolean"),
        ({"days": 2.5}, "days", "must be an int"),
        ({"ratio": "0.5"}, "ratio", "must be a number"),
        ({"flag": "yes"}, "flag", "must be a boolean"),
        ({"meta": []}, "meta", "must be an object"),
        ({"items": {}}, "items", "must be an array"),
        ({"tags": ["a", 3]}, "tags[1]", "must be a string"),
        ({"budget": {"total": "x", "currency": "EUR"}}, "budget.total", "must be an int"),
        ({"stops": [{"nights": 2}]}, "stops[0].city", "is required"),
        ({"city": None}, "city", "must not be null"),
    ],
)
def test_violation_names_the_field(change: dict[str, Any], field: str, fragment: str) -> None:
    found = violation_of(SHORT_FORM, {**VALID, **change})
    assert found is not None
    assert found[0] == field
    assert fragment in found[1]


def test_missing_required_field_is_reported() -> None:
    payload = dict(VALID)
    del payload["city"]
    assert violation_of(SHORT_FORM, payload) == ("city", "field 'city' is required")


def test_optional_field_may_be_missing_or_null() -> None:
    assert violation_of(SHORT_FORM, {**VALID, "note": None}) is None


def test_integral_float_counts_as_int() -> None:
    assert violation_of(SHORT_FORM, {**VALID, "days": 3.0}) is None


def test_payload_that_is_not_an_object_is_reported() -> None:
    assert violation_of(SHORT_FORM, ["a"]) == ("", "the payload must be an object, got an array")


@pytest.mark.parametrize(
    ("schema", "fragment"),
    [
        ("{not json", "not valid JSON"),
        ('["string"]', "expected a JSON object"),
        ('{"a": "text"}', "unknown type 'text'"),
        ('{"a": ["string", "int"]}', "exactly one item type"),
        ('{"a": 5}', "expected a type name"),
        ('{"type": "object", "properties": {"a": {"type": "strng"}}}', "type must be one of"),
    ],
)
def test_invalid_schema_raises_with_the_path(schema: str, fragment: str) -> None:
    with pytest.raises(ValueError, match="Invalid") as caught:
        compile_trigger_schema(schema)
    assert fragment in str(caught.value)


JSON_SCHEMA = {
    "type": "object",
    "properties": {
        "repo": {"type": "string", "minLength": 3},
        "branch": {"type": ["string", "null"]},
        "files": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
        "mode": {"enum": ["fast", "full"]},
        "depth": {"type": "integer", "minimum": 1},
    },
    "required": ["repo"],
}


def test_json_schema_form_is_detected() -> None:
    compiled = compile_trigger_schema(json.dumps(JSON_SCHEMA))
    assert compiled is not None
    assert compiled.form == "json_schema"
    assert compiled.validate({"repo": "acme/ledger", "branch": None, "depth": 2}) is None


@pytest.mark.parametrize(
    ("payload", "field", "fragment"),
    [
        ({}, "repo", "is required"),
        ({"repo": "ab"}, "repo", "at least 3 characters"),
        ({"repo": "abc", "files": ["a", 1]}, "files[1]", "must be a string"),
        ({"repo": "abc", "files": ["a", "b", "c"]}, "files", "at most 2 items"),
        ({"repo": "abc", "mode": "slow"}, "mode", 'one of "fast", "full"'),
        ({"repo": "abc", "depth": 0}, "depth", "must be at least 1"),
        ({"repo": "abc", "depth": 1.5}, "depth", "must be an integer"),
    ],
)
def test_json_schema_violations_name_the_field(
    payload: dict[str, Any], field: str, fragment: str
) -> None:
    found = violation_of(JSON_SCHEMA, payload)
    assert found is not None
    assert found[0] == field
    assert fragment in found[1]


def test_json_schema_rejects_extra_keys_when_closed() -> None:
    closed = {**JSON_SCHEMA, "additionalProperties": False}
    assert violation_of(closed, {"repo": "abc", "other": 1}) == (
        "other",
        "field 'other' is not allowed",
    )


def test_field_named_type_stays_short_form() -> None:
    compiled = compile_trigger_schema('{"type": "object", "name": "string"}')
    assert compiled is not None
    assert compiled.form == "short"
