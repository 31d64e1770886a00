"""Property tests: generated flow schemas round-trip through models, and bad input fails cleanly."""

from __future__ import annotations

import json
import keyword
import warnings
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from langchain_lamatic.schema import parse_advance_schema, payload_from_model, schema_to_model

TYPE_WORDS = ["string", "int", "integer", "float", "number", "bool", "boolean", "object", "array"]
# Names that need an alias: keywords, BaseModel attributes, leading underscores, punctuation.
AWKWARD_KEYS = [
    "class",
    "model_config",
    "schema",
    "json",
    "copy",
    "_hidden",
    "a-b",
    "two words",
    "",
]

SETTINGS = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

keys = st.one_of(
    st.from_regex(r"[a-z][a-zA-Z0-9_]{0,8}", fullmatch=True),
    st.sampled_from(AWKWARD_KEYS + keyword.kwlist),
    st.text(max_size=6),
)


@st.composite
def type_words(draw: st.DrawFn) -> str:
    """Draw a type word in any case, maybe inside brackets, with stray whitespace."""
    word = draw(st.sampled_from(TYPE_WORDS))
    word = "".join(ch.upper() if draw(st.booleans()) else ch for ch in word)
    for _ in range(draw(st.integers(0, 2))):
        inner_space = draw(st.sampled_from(["", " "]))
        word = f"[{inner_space}{word}{inner_space}]"
    return draw(st.sampled_from(["", " "])) + word + draw(st.sampled_from(["", " "]))


@st.composite
def field_types(draw: st.DrawFn) -> str:
    word = draw(type_words())
    if draw(st.booleans()):
        word = word.rstrip() + draw(st.sampled_from(["?", " ?"]))
    return word


short_values = st.recursive(
    field_types(),
    lambda children: st.one_of(
        st.dictionaries(keys, children, max_size=4),
        st.lists(st.dictionaries(keys, children, min_size=1, max_size=3), min_size=1, max_size=1),
    ),
    max_leaves=12,
)


def _not_json_schema(schema: dict[str, Any]) -> bool:
    # A short form with both a field named "type" of type object and a field named
    # "properties" is read as JSON Schema, by design.
    return "properties" not in schema


short_schemas = st.dictionaries(keys, short_values, max_size=6).filter(_not_json_schema)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=6,
)


def values_for(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Return a strategy for values that fit a JSON Schema produced from the short form."""
    json_type = schema["type"]
    if json_type == "string":
        return st.text(max_size=10)
    if json_type == "integer":
        return st.integers(-(10**6), 10**6)
    if json_type == "number":
        return st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(10**6), 10**6)
    if json_type == "boolean":
        return st.booleans()
    if json_type == "array":
        items = schema.get("items")
        return st.lists(values_for(items) if items else json_values, max_size=3)
    if "properties" not in schema:
        return st.dictionaries(st.text(max_size=5), json_values, max_size=3)
    required = set(schema.get("required", []))
    properties = schema["properties"]
    return st.fixed_dictionaries(
        {key: values_for(value) for key, value in properties.items() if key in required},
        optional={
            key: values_for(value) for key, value in properties.items() if key not in required
        },
    )


def resolve(root: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = root["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def assert_same_shape(
    root: dict[str, Any], generated: dict[str, Any], expected: dict[str, Any]
) -> None:
    node = resolve(root, generated)
    assert node["type"] == expected["type"]
    if expected["type"] == "array" and "items" in expected:
        assert_same_shape(root, node["items"], expected["items"])
    if "properties" in expected:
        assert list(node["properties"]) == list(expected["properties"])
        assert node.get("required", []) == expected.get("required", [])
        assert node["additionalProperties"] is False
        for key, value in expected["properties"].items():
            assert_same_shape(root, node["properties"][key], value)


@SETTINGS
@given(schema=short_schemas, data=st.data())
def test_short_form_round_trips_through_model(schema: dict[str, Any], data: st.DataObject) -> None:
    parsed = parse_advance_schema(json.dumps(schema))
    model = schema_to_model(schema, model_name="Generated")

    assert_same_shape(model.model_json_schema(), model.model_json_schema(), parsed)

    payload = data.draw(values_for(parsed))
    assert payload_from_model(model.model_validate(payload)) == payload


@SETTINGS
@given(schema=short_schemas)
def test_short_form_string_and_mapping_agree(schema: dict[str, Any]) -> None:
    assert parse_advance_schema(json.dumps(schema)) == parse_advance_schema(schema)


@SETTINGS
@given(word=st.text(max_size=12))
def test_any_type_word_converts_or_raises_value_error(word: str) -> None:
    message = ""
    try:
        parsed = parse_advance_schema({"field": word})
    except ValueError as exc:
        message = str(exc)
    if message:
        assert "'field" in message
    else:
        assert set(parsed["properties"]) == {"field"}


JSON_TYPES = ["string", "integer", "number", "boolean", "null", "array", "object"]
type_values = st.sampled_from([*JSON_TYPES, "date"]) | st.lists(
    st.sampled_from(JSON_TYPES), max_size=3
)
refs = st.sampled_from(["#", "#/$defs/A", "#/$defs/B", "#/properties/a", "#/$defs/missing", "#a"])
leaf_keywords = {
    "type": type_values,
    "minimum": st.integers(-3, 3) | st.floats(-3, 3) | st.just("1"),
    "exclusiveMinimum": st.booleans() | st.integers(-3, 3),
    "maxLength": st.integers(-1, 4),
    "multipleOf": st.integers(0, 3),
    "pattern": st.sampled_from(["^a", "(", "[0-9]+", "(?=a)"]),
    "enum": st.lists(json_values, max_size=3),
    "const": json_values,
    "nullable": st.booleans(),
    "default": json_values,
    "examples": json_values,
    "description": st.text(max_size=5) | st.integers(),
    "format": st.sampled_from(["date", "uri"]),
    "uniqueItems": st.booleans(),
    "$ref": refs,
}
plausible_schemas = st.recursive(
    st.fixed_dictionaries({}, optional=leaf_keywords) | st.booleans(),
    lambda children: st.fixed_dictionaries(
        {},
        optional={
            **leaf_keywords,
            "properties": st.dictionaries(keys, children, max_size=3),
            "required": st.lists(keys, max_size=2),
            "items": children,
            "anyOf": st.lists(children, max_size=3),
            "oneOf": st.lists(children, max_size=3),
            "allOf": st.lists(children, max_size=2),
            "additionalProperties": children,
            "not": children,
        },
    ),
    max_leaves=10,
)


@SETTINGS
@given(
    properties=st.dictionaries(keys, plausible_schemas, max_size=4),
    defs=st.dictionaries(st.sampled_from(["A", "B"]), plausible_schemas),
    payload=st.dictionaries(keys, json_values, max_size=4),
)
def test_arbitrary_json_schema_converts_or_raises_value_error(
    properties: dict[str, Any], defs: dict[str, Any], payload: dict[str, Any]
) -> None:
    schema = {"type": "object", "properties": properties, "$defs": defs}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            model = schema_to_model(schema, model_name="Fuzzed")
        except ValueError:
            return
        generated = model.model_json_schema()
        try:
            instance = model.model_validate(payload)
        except ValidationError:
            return
        sent = payload_from_model(instance)

    assert list(resolve(generated, generated)["properties"]) == list(properties)
    assert json.loads(json.dumps(sent)) == sent
