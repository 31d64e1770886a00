"""Tests for converting Lamatic flow input schemas to pydantic models."""

from __future__ import annotations

import copy
import json
import math
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.tools import StructuredTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, Field, RootModel, ValidationError

from langchain_lamatic.schema import (
    model_from_input_names,
    parse_advance_schema,
    payload_from_model,
    schema_to_model,
    single_input_model,
)

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "agentkit-flows.json"
FLOWS: list[dict[str, Any]] = json.loads(FIXTURE.read_text(encoding="utf-8"))["flows"]

# Modelled on the JSON Schema trigger of the github-commit-agent flow in the fixture file. It
# has one required request in plain words, and optional inputs that exercise descriptions, a
# pattern, a default, bounds, an enum and a boolean.
GITHUB_COMMIT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "message": {
            "type": "string",
            "description": "A request in plain words, such as: what changed since v1.0.0?",
        },
        "repository": {"type": "string", "pattern": "^[\\w.-]+/[\\w.-]+$"},
        "base": {"type": "string", "description": "The older git ref."},
        "head": {"type": "string", "default": "main"},
        "max_commits": {"type": "integer", "minimum": 1, "maximum": 250},
        "group_by": {"type": "string", "enum": ["type", "author"]},
        "include_merges": {"type": "boolean"},
    },
    "required": ["message"],
}
GITHUB_COMMIT_SAMPLE = {"message": "What changed in acme/ledger since v1.0.0?"}


def model_for(flow: dict[str, Any]) -> type[BaseModel]:
    if flow["advance_schema"]:
        return schema_to_model(flow["advance_schema"], model_name=flow["name"])
    return model_from_input_names(flow["implied_inputs"], model_name=flow["name"])


def flow_named(name: str) -> dict[str, Any]:
    return next(flow for flow in FLOWS if flow["name"] == name)


def resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Follow a local $ref in a generated JSON Schema."""
    while "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    return node


@pytest.fixture(autouse=True)
def _warnings_are_errors() -> Iterator[None]:
    """Conversion must not emit pydantic warnings, such as a field shadowing a method."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# --------------------------------------------------------------------------------------------
# The real flow contracts
# --------------------------------------------------------------------------------------------

FLOW_IDS = [flow["name"] for flow in FLOWS]


@pytest.mark.parametrize("flow", FLOWS, ids=FLOW_IDS)
def test_fixture_flow_accepts_its_sample_payload(flow: dict[str, Any]) -> None:
    model = model_for(flow)

    instance = model.model_validate(flow["sample_payload"])

    assert payload_from_model(instance) == flow["sample_payload"]


@pytest.mark.parametrize("flow", FLOWS, ids=FLOW_IDS)
def test_fixture_flow_schema_lists_every_input(flow: dict[str, Any]) -> None:
    model = model_for(flow)
    if flow["advance_schema"]:
        declared = json.loads(flow["advance_schema"])
    else:
        declared = dict.fromkeys(flow["implied_inputs"], "string")
    required = [name for name, word in declared.items() if not word.endswith("?")]

    schema = model.model_json_schema()

    assert list(schema["properties"]) == list(declared)
    assert schema["required"] == required
    assert schema["additionalProperties"] is False


@pytest.mark.parametrize("flow", FLOWS, ids=FLOW_IDS)
def test_fixture_flow_rejects_wrong_type(flow: dict[str, Any]) -> None:
    model = model_for(flow)
    field = next(iter(flow["sample_payload"]))
    payload = {**flow["sample_payload"], field: {"unexpected": "object"}}

    with pytest.raises(ValidationError) as caught:
        model.model_validate(payload)

    assert caught.value.errors()[0]["loc"] == (field,)


@pytest.mark.parametrize("flow", FLOWS, ids=FLOW_IDS)
def test_fixture_flow_rejects_missing_required_field(flow: dict[str, Any]) -> None:
    model = model_for(flow)
    field = next(iter(flow["sample_payload"]))
    payload = {k: v for k, v in flow["sample_payload"].items() if k != field}

    with pytest.raises(ValidationError) as caught:
        model.model_validate(payload)

    error = caught.value.errors()[0]
    assert error["type"] == "missing"
    assert error["loc"] == (field,)


@pytest.mark.parametrize("flow", FLOWS, ids=FLOW_IDS)
def test_fixture_flow_rejects_invented_argument(flow: dict[str, Any]) -> None:
    model = model_for(flow)

    with pytest.raises(ValidationError) as caught:
        model.model_validate({**flow["sample_payload"], "verbose": True})

    assert caught.value.errors()[0]["type"] == "extra_forbidden"


def test_plan_trip_rejects_text_for_int_field() -> None:
    flow = flow_named("plan-trip")
    model = model_for(flow)

    with pytest.raises(ValidationError) as caught:
        model.model_validate({**flow["sample_payload"], "days": "three"})

    assert caught.value.errors()[0]["loc"] == ("days",)


def test_plan_trip_int_fields_are_integers_in_schema() -> None:
    schema = model_for(flow_named("plan-trip")).model_json_schema()

    assert schema["properties"]["days"]["type"] == "integer"
    assert schema["properties"]["budget"]["type"] == "integer"


def test_repo_analyzer_github_token_is_optional() -> None:
    schema = model_for(flow_named("repo-analyzer")).model_json_schema()

    assert "github_token" in schema["properties"]
    assert "github_token" not in schema["required"]
    assert "default" not in schema["properties"]["github_token"]


def test_repo_analyzer_omits_unset_github_token() -> None:
    flow = flow_named("repo-analyzer")
    instance = model_for(flow).model_validate(flow["sample_payload"])

    assert "github_token" not in payload_from_model(instance)


def test_repo_analyzer_sends_given_github_token() -> None:
    flow = flow_named("repo-analyzer")
    payload = {**flow["sample_payload"], "github_token": "ghp_example"}

    instance = model_for(flow).model_validate(payload)

    assert payload_from_model(instance) == payload


def test_repo_analyzer_treats_null_github_token_as_absent() -> None:
    flow = flow_named("repo-analyzer")
    payload = {**flow["sample_payload"], "github_token": None}

    instance = model_for(flow).model_validate(payload)

    assert payload_from_model(instance) == flow["sample_payload"]


def test_repo_analyzer_rejects_number_for_github_token() -> None:
    flow = flow_named("repo-analyzer")

    with pytest.raises(ValidationError):
        model_for(flow).model_validate({**flow["sample_payload"], "github_token": 12345})


def test_chat_trigger_flow_fits_single_input_model() -> None:
    flow = flow_named("legal-rag-chatbot")
    model = single_input_model("chatMessage", model_name=flow["name"])

    instance = model.model_validate(flow["sample_payload"])

    assert payload_from_model(instance) == flow["sample_payload"]


# --------------------------------------------------------------------------------------------
# A JSON Schema trigger
# --------------------------------------------------------------------------------------------

GITHUB_FORMS = {
    "mapping": GITHUB_COMMIT_SCHEMA,
    "string": json.dumps(GITHUB_COMMIT_SCHEMA),
}


@pytest.mark.parametrize("schema", GITHUB_FORMS.values(), ids=GITHUB_FORMS.keys())
def test_json_schema_flow_accepts_sample(schema: Any) -> None:
    model = schema_to_model(schema, model_name="github-commit-agent")

    instance = model.model_validate(GITHUB_COMMIT_SAMPLE)

    assert payload_from_model(instance) == GITHUB_COMMIT_SAMPLE


@pytest.mark.parametrize("schema", GITHUB_FORMS.values(), ids=GITHUB_FORMS.keys())
def test_json_schema_flow_rejects_wrong_type(schema: Any) -> None:
    model = schema_to_model(schema, model_name="github-commit-agent")

    with pytest.raises(ValidationError) as caught:
        model.model_validate({**GITHUB_COMMIT_SAMPLE, "max_commits": "many"})

    assert caught.value.errors()[0]["loc"] == ("max_commits",)


@pytest.mark.parametrize("schema", GITHUB_FORMS.values(), ids=GITHUB_FORMS.keys())
def test_json_schema_flow_rejects_missing_message(schema: Any) -> None:
    model = schema_to_model(schema, model_name="github-commit-agent")

    with pytest.raises(ValidationError) as caught:
        model.model_validate({"repository": "acme/ledger"})

    assert caught.value.errors()[0]["loc"] == ("message",)


def test_json_schema_flow_omits_unset_optional_fields() -> None:
    model = schema_to_model(GITHUB_COMMIT_SCHEMA, model_name="github-commit-agent")
    arguments = {**GITHUB_COMMIT_SAMPLE, "max_commits": 20}

    payload = payload_from_model(model.model_validate(arguments))

    assert payload == arguments


def test_json_schema_flow_leaves_defaults_to_the_flow() -> None:
    model = schema_to_model(GITHUB_COMMIT_SCHEMA, model_name="github-commit-agent")

    payload = payload_from_model(model.model_validate(GITHUB_COMMIT_SAMPLE))

    assert "head" not in payload


def test_json_schema_flow_keeps_keywords_in_model_schema() -> None:
    model = schema_to_model(GITHUB_COMMIT_SCHEMA, model_name="github-commit-agent")

    properties = model.model_json_schema()["properties"]

    assert (
        properties["message"]["description"]
        == GITHUB_COMMIT_SCHEMA["properties"]["message"]["description"]
    )
    assert properties["repository"]["pattern"] == "^[\\w.-]+/[\\w.-]+$"
    assert properties["head"]["default"] == "main"
    assert properties["max_commits"]["minimum"] == 1
    assert properties["max_commits"]["maximum"] == 250
    assert properties["group_by"]["enum"] == ["type", "author"]
    assert properties["include_merges"]["type"] == "boolean"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("repository", "not a repository"),
        ("max_commits", 0),
        ("max_commits", 251),
        ("group_by", "date"),
        ("include_merges", {"yes": True}),
    ],
)
def test_json_schema_flow_rejects_out_of_contract_values(field: str, value: Any) -> None:
    model = schema_to_model(GITHUB_COMMIT_SCHEMA, model_name="github-commit-agent")

    with pytest.raises(ValidationError) as caught:
        model.model_validate({**GITHUB_COMMIT_SAMPLE, field: value})

    assert caught.value.errors()[0]["loc"][0] == field


# --------------------------------------------------------------------------------------------
# The short form
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("string", {"type": "string"}),
        ("int", {"type": "integer"}),
        ("integer", {"type": "integer"}),
        ("float", {"type": "number"}),
        ("number", {"type": "number"}),
        ("bool", {"type": "boolean"}),
        ("boolean", {"type": "boolean"}),
        ("object", {"type": "object"}),
        ("array", {"type": "array"}),
        ("[string]", {"type": "array", "items": {"type": "string"}}),
        ("[int]", {"type": "array", "items": {"type": "integer"}}),
        ("[bool]", {"type": "array", "items": {"type": "boolean"}}),
        ("[object]", {"type": "array", "items": {"type": "object"}}),
        (
            "[[float]]",
            {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
        ),
    ],
)
def test_short_form_type_word_maps_to_json_schema(word: str, expected: dict[str, Any]) -> None:
    schema = parse_advance_schema({"field": word})

    assert schema["properties"]["field"] == expected
    assert schema["required"] == ["field"]


@pytest.mark.parametrize(
    "word",
    ["string?", "int?", "float?", "number?", "bool?", "boolean?", "object?", "array?", "[string]?"],
)
def test_short_form_optional_marker_works_on_every_type(word: str) -> None:
    schema = parse_advance_schema({"field": word, "other": "string"})

    assert schema["required"] == ["other"]
    assert (
        schema["properties"]["field"] == parse_advance_schema({"f": word[:-1]})["properties"]["f"]
    )


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        (" String ", {"type": "string"}),
        ("INT", {"type": "integer"}),
        ("Boolean", {"type": "boolean"}),
        ("[ string ]", {"type": "array", "items": {"type": "string"}}),
        ("[STRING]", {"type": "array", "items": {"type": "string"}}),
    ],
)
def test_type_words_ignore_case_and_spaces(word: str, expected: dict[str, Any]) -> None:
    schema = parse_advance_schema({"field": word})

    assert schema["properties"]["field"] == expected


@pytest.mark.parametrize("word", ["string ?", " int? ", "[ string ] ?", "BOOL?"])
def test_short_form_optional_marker_tolerates_spaces_and_case(word: str) -> None:
    schema = parse_advance_schema({"field": word})

    assert "required" not in schema


def test_short_form_nested_object_forbids_unknown_keys() -> None:
    schema = parse_advance_schema({"user": {"name": "string", "age": "int?"}})

    assert schema["properties"]["user"] == {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name"],
        "additionalProperties": False,
    }


def test_list_of_object_is_object_array() -> None:
    schema = parse_advance_schema({"files": [{"path": "string", "lines": "int?"}]})

    files = schema["properties"]["files"]
    assert files["type"] == "array"
    assert files["items"]["properties"] == {
        "path": {"type": "string"},
        "lines": {"type": "integer"},
    }
    assert files["items"]["required"] == ["path"]


def test_short_form_list_of_type_word_is_array() -> None:
    schema = parse_advance_schema({"tags": ["string"]})

    assert schema["properties"]["tags"] == {"type": "array", "items": {"type": "string"}}


@pytest.mark.parametrize("empty", [None, "", "   \n"])
def test_empty_schema_accepts_any_object(empty: str | None) -> None:
    assert parse_advance_schema(empty) == {"type": "object", "properties": {}}


def test_empty_short_form_object_has_no_fields() -> None:
    schema = parse_advance_schema("{}")

    assert schema == {"type": "object", "properties": {}, "additionalProperties": False}


def test_empty_schema_model_passes_arguments_through() -> None:
    model = schema_to_model("", model_name="anything")

    instance = model.model_validate({"url": "https://example.org"})

    assert payload_from_model(instance) == {"url": "https://example.org"}


@pytest.mark.parametrize(
    ("schema", "path", "bad"),
    [
        ({"city": "strnig"}, "'city'", "'strnig'"),
        ({"user": {"address": {"zip": "postcode"}}}, "'user.address.zip'", "'postcode'"),
        ({"files": [{"path": "str"}]}, "'files[].path'", "'str'"),
        ({"tags": "[text]"}, "'tags[]'", "'[text]'"),
        ({"count": 5}, "'count'", "5"),
        ({"count": None}, "'count'", "None"),
        ({"flag": True}, "'flag'", "True"),
        ({"odd key": "date"}, "'\"odd key\"'", "'date'"),
    ],
)
def test_unknown_type_error_names_field_and_value(
    schema: dict[str, Any], path: str, bad: str
) -> None:
    with pytest.raises(ValueError, match="accepted types") as caught:
        schema_to_model(schema, model_name="Broken")

    message = str(caught.value)
    assert path in message
    assert bad in message
    assert "string, int, integer, float, number, bool, boolean, object, array" in message


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"tags": []}, "exactly one element"),
        ({"tags": ["string", "int"]}, "exactly one element"),
        ({"tags": "[string?]"}, "array items cannot be optional"),
        ({"tags": ["string?"]}, "array items cannot be optional"),
        ({"name": "string??"}, "invalid advance_schema type 'string??'"),
        ({"tags": "[]"}, "invalid advance_schema type '[]'"),
        ({"tags": "[string"}, "invalid advance_schema type '[string'"),
    ],
)
def test_short_form_malformed_type_raises(schema: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValueError, match=expected.replace("[", r"\[").replace("?", r"\?")):
        parse_advance_schema(schema)


def test_deeply_nested_short_form_raises() -> None:
    schema: Any = "string"
    for _ in range(200):
        schema = {"inner": schema}

    with pytest.raises(ValueError, match="nests more than"):
        schema_to_model(schema, model_name="Deep")


def test_deeply_nested_array_type_raises() -> None:
    with pytest.raises(ValueError, match="nested arrays"):
        parse_advance_schema({"grid": "[" * 500 + "int" + "]" * 500})


def test_deeply_nested_json_schema_raises() -> None:
    node: dict[str, Any] = {"type": "string"}
    for _ in range(200):
        node = {"type": "array", "items": node}

    with pytest.raises(ValueError, match="nests more than"):
        schema_to_model(object_schema({"a": node}), model_name="Deep")


def test_malformed_json_reports_position() -> None:
    with pytest.raises(ValueError, match="not valid JSON") as caught:
        parse_advance_schema('{\n  "city": "string",\n}')

    assert "line 3" in str(caught.value)


def test_top_level_array_raises() -> None:
    with pytest.raises(ValueError, match="must be a JSON object, got list"):
        parse_advance_schema('["string"]')


def test_twice_encoded_schema_raises_with_hint() -> None:
    with pytest.raises(ValueError, match="encoded twice"):
        parse_advance_schema(json.dumps('{"city": "string"}'))


def test_repeated_key_raises() -> None:
    with pytest.raises(ValueError, match="repeats the key 'city'"):
        parse_advance_schema('{"city": "string", "city": "int"}')


def test_schema_of_unsupported_python_type_raises_type_error() -> None:
    with pytest.raises(TypeError, match="not int"):
        parse_advance_schema(42)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Telling the short form from JSON Schema
# --------------------------------------------------------------------------------------------


def test_field_named_type_stays_short_form() -> None:
    schema = parse_advance_schema({"type": "string", "name": "string"})

    assert list(schema["properties"]) == ["type", "name"]


def test_lone_type_object_stays_short_form() -> None:
    schema = parse_advance_schema('{"type": "object"}')

    assert schema["properties"] == {"type": {"type": "object"}}


def test_short_form_field_named_type_validates() -> None:
    model = schema_to_model({"type": "string", "name": "string"}, model_name="Typed")

    instance = model.model_validate({"type": "invoice", "name": "Northwind"})

    assert payload_from_model(instance) == {"type": "invoice", "name": "Northwind"}


def test_json_schema_mapping_is_recognised() -> None:
    assert parse_advance_schema(GITHUB_COMMIT_SCHEMA) == GITHUB_COMMIT_SCHEMA


def test_json_schema_string_is_recognised() -> None:
    assert parse_advance_schema(json.dumps(GITHUB_COMMIT_SCHEMA)) == GITHUB_COMMIT_SCHEMA


def test_json_schema_result_is_a_copy() -> None:
    original = copy.deepcopy(GITHUB_COMMIT_SCHEMA)

    parse_advance_schema(GITHUB_COMMIT_SCHEMA)["properties"]["message"]["type"] = "integer"

    assert original == GITHUB_COMMIT_SCHEMA


def test_json_schema_with_short_form_properties_raises() -> None:
    with pytest.raises(ValueError, match="must be schema objects"):
        parse_advance_schema({"type": "object", "properties": {"city": "string"}})


def test_json_schema_with_malformed_required_raises() -> None:
    with pytest.raises(ValueError, match="'required' at the top level must be a list"):
        parse_advance_schema({"type": "object", "properties": {}, "required": "city"})


# --------------------------------------------------------------------------------------------
# schema_to_model: inputs, names and isolation
# --------------------------------------------------------------------------------------------


def test_pydantic_model_is_returned_unchanged() -> None:
    class Args(BaseModel):
        city: str

    assert schema_to_model(Args, model_name="Ignored") is Args


def test_other_class_raises_type_error() -> None:
    with pytest.raises(TypeError, match="BaseModel subclass"):
        schema_to_model(dict, model_name="X")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("model_name", "expected"),
    [
        ("PlanTripInput", "PlanTripInput"),
        ("plan-trip", "PlanTrip"),
        ("plan trip v2", "PlanTripV2"),
        ("sre.incident_postmortem", "SreIncidentPostmortem"),
        ("123 flow", "Model123Flow"),
        ("class", "Class"),
        ("_private", "Private"),
    ],
)
def test_model_name_becomes_identifier(model_name: str, expected: str) -> None:
    model = schema_to_model({"city": "string"}, model_name=model_name)

    assert model.__name__ == expected


@pytest.mark.parametrize("model_name", ["", "---", "  "])
def test_model_name_without_letters_raises(model_name: str) -> None:
    with pytest.raises(ValueError, match="model_name"):
        schema_to_model({"city": "string"}, model_name=model_name)


def test_nested_model_names_derive_from_model_name() -> None:
    model = schema_to_model(
        {"trip-plan": {"stops": [{"name": "string"}]}, "budget": {"total": "float"}},
        model_name="plan-trip",
    )

    names = set(model.model_json_schema()["$defs"])

    assert names == {"PlanTripTripPlan", "PlanTripTripPlanStopsItem", "PlanTripBudget"}
    assert all(name.isidentifier() for name in names)


def test_clashing_nested_model_names_get_suffixes() -> None:
    model = schema_to_model({"a_b": {"x": "int"}, "a-b": {"y": "int"}}, model_name="Root")

    assert set(model.model_json_schema()["$defs"]) == {"RootAB", "RootAB2"}


def test_each_conversion_builds_new_classes() -> None:
    first = schema_to_model({"city": "string"}, model_name="Same")
    second = schema_to_model({"city": "int"}, model_name="Same")

    assert first is not second
    assert first.model_json_schema()["properties"]["city"]["type"] == "string"
    assert second.model_json_schema()["properties"]["city"]["type"] == "integer"


def test_generated_model_has_no_inherited_description() -> None:
    model = schema_to_model({"city": "string"}, model_name="City")

    assert "description" not in model.model_json_schema()


# --------------------------------------------------------------------------------------------
# Field names
# --------------------------------------------------------------------------------------------

AWKWARD_NAMES = [
    "class",
    "from",
    "repo-url",
    "travel date",
    "_private",
    "__dunder__",
    "model_config",
    "model_fields",
    "model_dump",
    "schema",
    "json",
    "copy",
    "dict",
    "validate",
    "construct",
    "lamatic_prepare_input",
    "",
    "9lives",
    "名前",
    "a.b",
]


def test_awkward_names_keep_wire_name_in_schema() -> None:
    model = schema_to_model({name: "string" for name in AWKWARD_NAMES}, model_name="Awkward")

    schema = model.model_json_schema()

    assert list(schema["properties"]) == AWKWARD_NAMES
    assert schema["required"] == AWKWARD_NAMES


def test_awkward_names_round_trip_by_wire_name() -> None:
    model = schema_to_model({name: "string" for name in AWKWARD_NAMES}, model_name="Awkward")
    payload = {name: f"value {index}" for index, name in enumerate(AWKWARD_NAMES)}

    instance = model.model_validate(payload)

    assert payload_from_model(instance) == payload


def test_attribute_names_are_python_identifiers() -> None:
    model = schema_to_model({name: "string" for name in AWKWARD_NAMES}, model_name="Awkward")

    for attribute in model.model_fields:
        assert attribute.isidentifier(), attribute
        assert not attribute.startswith("_"), attribute


def test_validation_accepts_attribute_name() -> None:
    model = schema_to_model({"class": "string"}, model_name="Keyword")
    (attribute,) = model.model_fields

    instance = model.model_validate({attribute: "economy"})

    assert payload_from_model(instance) == {"class": "economy"}


def test_attribute_name_never_takes_another_field_name() -> None:
    model = schema_to_model({"class": "string", "class_": "int"}, model_name="Both")

    instance = model.model_validate({"class": "economy", "class_": 2})

    assert payload_from_model(instance) == {"class": "economy", "class_": 2}


def test_awkward_names_in_nested_object_keep_wire_name() -> None:
    model = schema_to_model({"outer": {"model_config": "int?", "x-y": "int"}}, model_name="N")

    instance = model.model_validate({"outer": {"x-y": 1}})

    assert payload_from_model(instance) == {"outer": {"x-y": 1}}


# --------------------------------------------------------------------------------------------
# JSON Schema features
# --------------------------------------------------------------------------------------------


def object_schema(properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, **extra}


def test_json_schema_object_allows_additional_properties_by_default() -> None:
    model = schema_to_model(object_schema({"a": {"type": "string"}}), model_name="Open")

    instance = model.model_validate({"a": "x", "b": [1, 2]})

    assert payload_from_model(instance) == {"a": "x", "b": [1, 2]}


def test_json_schema_additional_properties_false_rejects_extra_keys() -> None:
    schema = object_schema({"a": {"type": "string"}}, additionalProperties=False)
    model = schema_to_model(schema, model_name="Closed")

    with pytest.raises(ValidationError) as caught:
        model.model_validate({"a": "x", "b": 1})

    assert caught.value.errors()[0]["type"] == "extra_forbidden"


def test_json_schema_additional_properties_schema_validates_extra_values() -> None:
    schema = object_schema({"a": {"type": "string"}}, additionalProperties={"type": "integer"})
    model = schema_to_model(schema, model_name="Typed")

    with pytest.raises(ValidationError, match="additional property 'b'"):
        model.model_validate({"a": "x", "b": "not a number"})


def test_json_schema_additional_properties_schema_accepts_matching_values() -> None:
    schema = object_schema({"a": {"type": "string"}}, additionalProperties={"type": "integer"})
    model = schema_to_model(schema, model_name="Typed")

    instance = model.model_validate({"a": "x", "b": 3})

    assert payload_from_model(instance) == {"a": "x", "b": 3}


def test_json_schema_additional_properties_schema_survives() -> None:
    schema = object_schema({"a": {"type": "string"}}, additionalProperties={"type": "integer"})

    generated = schema_to_model(schema, model_name="Typed").model_json_schema()

    assert generated["additionalProperties"] == {"type": "integer"}


def test_object_without_properties_becomes_typed_mapping() -> None:
    schema = object_schema(
        {"labels": {"type": "object", "additionalProperties": {"type": "string"}}}
    )
    model = schema_to_model(schema, model_name="Labels")

    with pytest.raises(ValidationError):
        model.model_validate({"labels": {"env": 3}})
    generated = model.model_json_schema()["properties"]["labels"]
    assert generated["additionalProperties"] == {"type": "string"}


def test_nested_json_schema_object_becomes_model() -> None:
    schema = object_schema(
        {
            "address": {
                "type": "object",
                "description": "Where to ship.",
                "properties": {"city": {"type": "string"}, "zip": {"type": "string"}},
                "required": ["city"],
                "additionalProperties": False,
            }
        },
        required=["address"],
    )
    model = schema_to_model(schema, model_name="Ship")

    generated = model.model_json_schema()
    address = resolve(generated, generated["properties"]["address"])
    seen_by_model = convert_to_openai_tool(model)["function"]["parameters"]

    assert seen_by_model["properties"]["address"]["description"] == "Where to ship."
    assert address["required"] == ["city"]
    assert address["additionalProperties"] is False
    assert payload_from_model(model.model_validate({"address": {"city": "Porto"}})) == {
        "address": {"city": "Porto"}
    }


def test_enum_survives_and_validates() -> None:
    schema = object_schema({"mode": {"type": "string", "enum": ["text", "image", "json"]}})
    model = schema_to_model(schema, model_name="Mode")

    generated = model.model_json_schema()["properties"]["mode"]

    assert generated["enum"] == ["text", "image", "json"]
    assert generated["type"] == "string"
    with pytest.raises(ValidationError, match="must be one of"):
        model.model_validate({"mode": "audio"})


def test_enum_keeps_booleans_apart_from_numbers() -> None:
    model = schema_to_model(object_schema({"level": {"enum": [0, 1, 2]}}), model_name="Level")

    with pytest.raises(ValidationError):
        model.model_validate({"level": True})


def test_enum_matches_equal_numbers() -> None:
    model = schema_to_model(object_schema({"level": {"enum": [0, 1, 2]}}), model_name="Level")

    payload = payload_from_model(model.model_validate({"level": 1.0}))

    assert payload == {"level": 1}


def test_enum_of_objects_validates_by_value() -> None:
    schema = object_schema({"size": {"enum": [{"w": 1, "h": 2}, [1, 2]]}})
    model = schema_to_model(schema, model_name="Size")

    assert payload_from_model(model.model_validate({"size": {"h": 2, "w": 1}})) == {
        "size": {"w": 1, "h": 2}
    }
    with pytest.raises(ValidationError):
        model.model_validate({"size": {"w": 1}})


def test_const_survives_and_validates() -> None:
    model = schema_to_model(object_schema({"version": {"const": 2}}), model_name="Version")

    assert model.model_json_schema()["properties"]["version"]["const"] == 2
    with pytest.raises(ValidationError, match="must be 2"):
        model.model_validate({"version": 3})


def test_any_of_becomes_union() -> None:
    schema = object_schema(
        {"when": {"anyOf": [{"type": "string", "format": "date"}, {"type": "integer"}]}}
    )
    model = schema_to_model(schema, model_name="When")

    members = model.model_json_schema()["properties"]["when"]["anyOf"]

    assert members == [{"type": "string", "format": "date"}, {"type": "integer"}]
    assert payload_from_model(model.model_validate({"when": 1712700000})) == {"when": 1712700000}
    with pytest.raises(ValidationError):
        model.model_validate({"when": [1]})


def test_one_of_keeps_its_keyword() -> None:
    schema = object_schema({"id": {"oneOf": [{"type": "string"}, {"type": "integer"}]}})

    generated = schema_to_model(schema, model_name="Id").model_json_schema()

    assert generated["properties"]["id"]["oneOf"] == [{"type": "string"}, {"type": "integer"}]


def test_any_of_shares_sibling_keywords_with_members() -> None:
    schema = object_schema(
        {"code": {"minLength": 3, "anyOf": [{"type": "string"}, {"type": "null"}]}}
    )
    model = schema_to_model(schema, model_name="Code")

    with pytest.raises(ValidationError):
        model.model_validate({"code": "ab"})


def test_union_of_objects_picks_matching_member() -> None:
    schema = object_schema(
        {
            "target": {
                "anyOf": [
                    object_schema({"url": {"type": "string"}}, required=["url"]),
                    object_schema({"path": {"type": "string"}}, required=["path"]),
                ]
            }
        }
    )
    model = schema_to_model(schema, model_name="Target")

    payload = payload_from_model(model.model_validate({"target": {"path": "docs/readme.md"}}))

    assert payload == {"target": {"path": "docs/readme.md"}}


def test_type_list_becomes_union() -> None:
    schema = object_schema({"limit": {"type": ["integer", "string"]}})
    model = schema_to_model(schema, model_name="Limit")

    generated = model.model_json_schema()["properties"]["limit"]

    assert generated["anyOf"] == [{"type": "integer"}, {"type": "string"}]
    assert payload_from_model(model.model_validate({"limit": "all"})) == {"limit": "all"}


@pytest.mark.parametrize(
    "field_schema",
    [
        {"type": ["string", "null"]},
        {"type": "string", "nullable": True},
        {"anyOf": [{"type": "string"}, {"type": "null"}]},
    ],
    ids=["type-list", "openapi-nullable", "any-of"],
)
def test_nullable_field_accepts_and_sends_null(field_schema: dict[str, Any]) -> None:
    model = schema_to_model(object_schema({"note": field_schema}), model_name="Note")

    generated = model.model_json_schema()["properties"]["note"]

    assert {"type": "null"} in generated["anyOf"]
    assert payload_from_model(model.model_validate({"note": None})) == {"note": None}


def test_nullable_optional_field_unset_is_omitted() -> None:
    model = schema_to_model(object_schema({"note": {"type": ["string", "null"]}}), model_name="N")

    assert payload_from_model(model.model_validate({})) == {}


def test_required_field_rejects_null() -> None:
    schema = object_schema({"note": {"type": "string"}}, required=["note"])
    model = schema_to_model(schema, model_name="Note")

    with pytest.raises(ValidationError):
        model.model_validate({"note": None})


def test_null_for_optional_nested_field_is_omitted() -> None:
    model = schema_to_model({"user": {"name": "string", "age": "int?"}}, model_name="U")

    instance = model.model_validate({"user": {"name": "Ada", "age": None}})

    assert payload_from_model(instance) == {"user": {"name": "Ada"}}


def test_local_ref_to_defs_becomes_shared_model() -> None:
    schema = {
        "type": "object",
        "$defs": {
            "Address": object_schema({"city": {"type": "string"}}, required=["city"]),
        },
        "properties": {
            "home": {"$ref": "#/$defs/Address", "description": "Home address."},
            "work": {"$ref": "#/$defs/Address"},
        },
        "required": ["home"],
    }
    model = schema_to_model(schema, model_name="People")

    generated = model.model_json_schema()

    assert generated["properties"]["home"]["$ref"] == generated["properties"]["work"]["$ref"]
    assert generated["properties"]["home"]["description"] == "Home address."
    assert resolve(generated, generated["properties"]["home"])["required"] == ["city"]
    with pytest.raises(ValidationError):
        model.model_validate({"home": {}})


def test_draft7_definitions_ref_resolves() -> None:
    schema = {
        "type": "object",
        "definitions": {"Colour": {"type": "string", "enum": ["red", "green"]}},
        "properties": {"colour": {"$ref": "#/definitions/Colour"}},
    }
    model = schema_to_model(schema, model_name="Paint")

    assert model.model_json_schema()["properties"]["colour"]["enum"] == ["red", "green"]
    with pytest.raises(ValidationError):
        model.model_validate({"colour": "blue"})


def test_recursive_ref_validates_every_level() -> None:
    schema = {
        "type": "object",
        "$defs": {
            "Node": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
                },
                "required": ["name"],
            }
        },
        "properties": {"root": {"$ref": "#/$defs/Node"}},
        "required": ["root"],
    }
    model = schema_to_model(schema, model_name="Tree")
    tree = {"root": {"name": "a", "children": [{"name": "b", "children": [{"name": "c"}]}]}}

    assert payload_from_model(model.model_validate(tree)) == tree
    with pytest.raises(ValidationError):
        model.model_validate({"root": {"name": "a", "children": [{"children": []}]}})


def test_mutually_recursive_refs_validate() -> None:
    schema = {
        "type": "object",
        "$defs": {
            "Person": object_schema(
                {"name": {"type": "string"}, "team": {"$ref": "#/$defs/Team"}}, required=["name"]
            ),
            "Team": object_schema(
                {"members": {"type": "array", "items": {"$ref": "#/$defs/Person"}}}
            ),
        },
        "properties": {"lead": {"$ref": "#/$defs/Person"}},
        "required": ["lead"],
    }
    model = schema_to_model(schema, model_name="Org")
    org = {"lead": {"name": "Ada", "team": {"members": [{"name": "Grace"}]}}}

    assert payload_from_model(model.model_validate(org)) == org
    with pytest.raises(ValidationError):
        model.model_validate({"lead": {"name": "Ada", "team": {"members": [{}]}}})


def test_ref_to_root_is_recursive_model() -> None:
    schema = object_schema({"label": {"type": "string"}, "next": {"$ref": "#"}}, required=["label"])
    model = schema_to_model(schema, model_name="Chain")
    chain = {"label": "a", "next": {"label": "b"}}

    assert payload_from_model(model.model_validate(chain)) == chain


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("#/$defs/Missing", "does not point to anything"),
        ("https://example.org/schema.json", "only local references"),
        ("other.json#/$defs/A", "only local references"),
        ("#anchor", "anchors are not supported"),
    ],
)
def test_unsupported_ref_raises_at_conversion(ref: str, message: str) -> None:
    schema = object_schema({"a": {"$ref": ref}})

    with pytest.raises(ValueError, match=message) as caught:
        schema_to_model(schema, model_name="Refs")

    assert "'a'" in str(caught.value)


def test_circular_ref_without_object_raises() -> None:
    schema = {
        "type": "object",
        "$defs": {"Loop": {"anyOf": [{"type": "string"}, {"$ref": "#/$defs/Loop"}]}},
        "properties": {"a": {"$ref": "#/$defs/Loop"}},
    }

    with pytest.raises(ValueError, match="circular"):
        schema_to_model(schema, model_name="Loop")


def test_all_of_merges_object_members() -> None:
    schema = {
        "type": "object",
        "$defs": {"Named": object_schema({"name": {"type": "string"}}, required=["name"])},
        "properties": {
            "pet": {
                "allOf": [
                    {"$ref": "#/$defs/Named"},
                    object_schema({"legs": {"type": "integer"}}, required=["legs"]),
                ]
            }
        },
    }
    model = schema_to_model(schema, model_name="Zoo")

    generated = model.model_json_schema()
    pet = resolve(generated, generated["properties"]["pet"])

    assert pet["required"] == ["name", "legs"]
    with pytest.raises(ValidationError):
        model.model_validate({"pet": {"name": "Rex"}})


def test_all_of_with_conflicting_values_raises() -> None:
    schema = object_schema({"a": {"allOf": [{"format": "date"}, {"format": "uri"}]}})

    with pytest.raises(ValueError, match="merge these schemas by hand"):
        schema_to_model(schema, model_name="Conflict")


def test_all_of_with_disjoint_types_raises() -> None:
    schema = object_schema({"a": {"allOf": [{"type": "string"}, {"type": "integer"}]}})

    with pytest.raises(ValueError, match="disjoint types"):
        schema_to_model(schema, model_name="Conflict")


CONSTRAINT_CASES = [
    ({"type": "string", "minLength": 2}, "ab", "a", {"minLength": 2}),
    ({"type": "string", "maxLength": 3}, "abc", "abcd", {"maxLength": 3}),
    ({"type": "string", "pattern": "^[a-z]+$"}, "abc", "ABC", {"pattern": "^[a-z]+$"}),
    ({"type": "string", "pattern": "(?=a)a"}, "a", "b", {"pattern": "(?=a)a"}),
    ({"type": "integer", "minimum": 1}, 1, 0, {"minimum": 1}),
    ({"type": "integer", "maximum": 9}, 9, 10, {"maximum": 9}),
    ({"type": "number", "exclusiveMinimum": 0}, 0.5, 0, {"exclusiveMinimum": 0}),
    ({"type": "number", "exclusiveMaximum": 1}, 0.5, 1, {"exclusiveMaximum": 1}),
    ({"type": "integer", "multipleOf": 5}, 10, 11, {"multipleOf": 5}),
    (
        {"type": "number", "minimum": 0, "exclusiveMinimum": True},
        0.1,
        0,
        {"exclusiveMinimum": 0},
    ),
    ({"type": "array", "minItems": 1}, [1], [], {"minItems": 1}),
    ({"type": "array", "maxItems": 1}, [1], [1, 2], {"maxItems": 1}),
    ({"type": "array", "uniqueItems": True}, [1, 2], [1, 1], {"uniqueItems": True}),
    ({"type": "array", "uniqueItems": True}, [1, True], [{"a": 1}, {"a": 1.0}], {}),
    ({"type": "object", "minProperties": 1}, {"a": 1}, {}, {"minProperties": 1}),
    ({"type": "object", "maxProperties": 1}, {"a": 1}, {"a": 1, "b": 2}, {"maxProperties": 1}),
    ({"type": "array", "items": False}, [], [1], {}),
]


@pytest.mark.parametrize(
    ("field_schema", "good", "bad", "keywords"),
    CONSTRAINT_CASES,
    ids=[json.dumps(case[0]) for case in CONSTRAINT_CASES],
)
def test_constraint_survives_and_validates(
    field_schema: dict[str, Any], good: Any, bad: Any, keywords: dict[str, Any]
) -> None:
    model = schema_to_model(object_schema({"value": field_schema}), model_name="Constrained")

    generated = model.model_json_schema()["properties"]["value"]

    assert generated.items() >= keywords.items()
    assert payload_from_model(model.model_validate({"value": good})) == {"value": good}
    with pytest.raises(ValidationError):
        model.model_validate({"value": bad})


@pytest.mark.parametrize(
    ("keywords", "bad"),
    [({"minProperties": 2}, {"a": 1}), ({"maxProperties": 1}, {"a": 1, "b": 2})],
)
def test_property_count_is_enforced_on_models(keywords: dict[str, Any], bad: Any) -> None:
    field_schema = object_schema({"a": {"type": "integer"}}, **keywords)
    model = schema_to_model(object_schema({"value": field_schema}), model_name="Counted")

    assert model.model_json_schema()["$defs"]["CountedValue"].items() >= keywords.items()
    with pytest.raises(ValidationError, match="properties, got"):
        model.model_validate({"value": bad})


@pytest.mark.parametrize("json_type", ["integer", "number"])
def test_numeric_field_rejects_boolean(json_type: str) -> None:
    model = schema_to_model(object_schema({"n": {"type": json_type}}), model_name="Num")

    with pytest.raises(ValidationError, match="got a boolean"):
        model.model_validate({"n": True})


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_number_field_rejects_values_json_cannot_carry(value: float) -> None:
    model = schema_to_model({"ratio": "float"}, model_name="Ratio")

    with pytest.raises(ValidationError):
        model.model_validate({"ratio": value})


def test_integer_field_accepts_integral_float() -> None:
    model = schema_to_model({"days": "int"}, model_name="Days")

    assert payload_from_model(model.model_validate({"days": 3.0})) == {"days": 3}


def test_annotations_survive() -> None:
    field_schema = {
        "type": "string",
        "title": "Start date",
        "description": "First day of the trip.",
        "format": "date",
        "examples": ["2027-04-10"],
        "deprecated": False,
        "x-ui-widget": "calendar",
    }
    model = schema_to_model(object_schema({"start": field_schema}), model_name="Trip")

    generated = model.model_json_schema()["properties"]["start"]

    assert generated == field_schema


def test_root_description_and_title_survive() -> None:
    schema = object_schema({}, title="Trip request", description="Plan a trip.")

    generated = schema_to_model(schema, model_name="Trip").model_json_schema()

    assert generated["title"] == "Trip request"
    assert generated["description"] == "Plan a trip."


def test_unenforced_keyword_is_kept_but_not_checked() -> None:
    field_schema = {"type": "string", "not": {"const": "admin"}}
    model = schema_to_model(object_schema({"user": field_schema}), model_name="User")

    assert model.model_json_schema()["properties"]["user"]["not"] == {"const": "admin"}
    assert payload_from_model(model.model_validate({"user": "admin"})) == {"user": "admin"}


def test_refs_inside_kept_keywords_are_inlined() -> None:
    schema = {
        "type": "object",
        "$defs": {"Reserved": {"enum": ["admin", "root"]}},
        "properties": {"user": {"type": "string", "not": {"$ref": "#/$defs/Reserved"}}},
    }

    generated = schema_to_model(schema, model_name="User").model_json_schema()

    assert generated["properties"]["user"]["not"] == {"enum": ["admin", "root"]}


def test_default_survives_but_is_not_sent() -> None:
    model = schema_to_model(
        object_schema({"lang": {"type": "string", "default": "en"}}), model_name="Lang"
    )

    assert model.model_json_schema()["properties"]["lang"]["default"] == "en"
    assert payload_from_model(model.model_validate({})) == {}


def test_default_on_required_field_keeps_it_required() -> None:
    schema = object_schema({"lang": {"type": "string", "default": "en"}}, required=["lang"])
    model = schema_to_model(schema, model_name="Lang")

    with pytest.raises(ValidationError):
        model.model_validate({})
    assert model.model_json_schema()["properties"]["lang"]["default"] == "en"


def test_typeless_property_accepts_any_json_value() -> None:
    model = schema_to_model(object_schema({"data": {}, "flag": True}), model_name="Loose")
    payload = {"data": {"nested": [1, None]}, "flag": "anything"}

    assert payload_from_model(model.model_validate(payload)) == payload


def test_schema_without_type_but_with_properties_is_object() -> None:
    schema = object_schema({"point": {"properties": {"x": {"type": "number"}}}})
    model = schema_to_model(schema, model_name="Point")

    with pytest.raises(ValidationError):
        model.model_validate({"point": "origin"})


@pytest.mark.parametrize(
    ("field_schema", "message"),
    [
        ({"type": "date"}, "unknown JSON Schema type 'date' at 'a'"),
        ({"type": []}, "invalid 'type'"),
        ({"type": "string", "pattern": "("}, "invalid 'pattern'"),
        ({"type": "string", "minLength": -1}, "'minLength' at 'a' must be a non-negative"),
        ({"type": "integer", "minimum": "5"}, "'minimum' at 'a' must be a number"),
        ({"type": "integer", "multipleOf": 0}, "'multipleOf' at 'a' must be greater than 0"),
        ({"enum": []}, "'enum' at 'a' must be a non-empty list"),
        ({"anyOf": []}, "'anyOf' at 'a' must be a non-empty list"),
        ({"anyOf": [{}], "oneOf": [{}]}, "'anyOf' and 'oneOf' in one schema"),
        (False, "unsupported schema false at 'a'"),
        ({"type": "array", "items": "string"}, "at 'a[]': expected an object, got 'string'"),
    ],
)
def test_invalid_json_schema_raises_at_conversion(field_schema: Any, message: str) -> None:
    schema = {"type": "object", "properties": {"a": field_schema}}

    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        schema_to_model(schema, model_name="Invalid")


def test_required_name_missing_from_properties_raises() -> None:
    schema = object_schema({"repo_url": {"type": "string"}}, required=["repo_ur"])

    with pytest.raises(ValueError, match=r"lists \['repo_ur'\], which are not in 'properties'"):
        schema_to_model(schema, model_name="Typo")


def test_root_that_is_not_an_object_raises() -> None:
    with pytest.raises(ValueError, match="must be an object with 'properties'"):
        schema_to_model({"type": "object", "properties": {}, "anyOf": [{}]}, model_name="Root")


# --------------------------------------------------------------------------------------------
# payload_from_model
# --------------------------------------------------------------------------------------------


def test_payload_omits_unset_fields_at_every_level() -> None:
    model = schema_to_model(
        {
            "trip": {
                "city": "string",
                "days": "int?",
                "stops": [{"name": "string", "note": "string?"}],
            }
        },
        model_name="Deep",
    )
    arguments = {"trip": {"city": "Lisbon", "stops": [{"name": "Alfama"}]}}

    assert payload_from_model(model.model_validate(arguments)) == arguments


def test_payload_is_json_compatible() -> None:
    model = schema_to_model({"meta": "object", "items": "array"}, model_name="Any")
    instance = model.model_validate({"meta": {"when": "2027-01-01"}, "items": [1, "a", None]})

    assert json.loads(json.dumps(payload_from_model(instance))) == payload_from_model(instance)


def test_payload_from_user_model_uses_aliases() -> None:
    class Args(BaseModel):
        repo_url: str = Field(alias="repo-url")
        token: str | None = None

    instance = Args.model_validate({"repo-url": "https://example.org/x"})

    assert payload_from_model(instance) == {"repo-url": "https://example.org/x"}


def test_payload_from_non_model_raises() -> None:
    with pytest.raises(TypeError, match="pydantic model instance, not dict"):
        payload_from_model({"a": 1})  # type: ignore[arg-type]


def test_payload_from_root_model_of_list_raises() -> None:
    instance = RootModel[list[int]]([1, 2])

    with pytest.raises(TypeError, match="must be a JSON object"):
        payload_from_model(instance)


# --------------------------------------------------------------------------------------------
# model_from_input_names and single_input_model
# --------------------------------------------------------------------------------------------


def test_input_names_become_required_strings_in_order() -> None:
    model = model_from_input_names(["url", "email", "name"], model_name="Hiring")

    schema = model.model_json_schema()

    assert list(schema["properties"]) == ["url", "email", "name"]
    assert schema["required"] == ["url", "email", "name"]
    assert {p["type"] for p in schema["properties"].values()} == {"string"}


def test_input_names_model_rejects_unknown_keys() -> None:
    model = model_from_input_names(["url"], model_name="Summariser")

    with pytest.raises(ValidationError):
        model.model_validate({"url": "https://example.org", "lang": "en"})


def test_input_names_descriptions_reach_schema() -> None:
    model = model_from_input_names(
        ["url"], model_name="Summariser", descriptions={"url": "Article to summarise."}
    )

    assert model.model_json_schema()["properties"]["url"]["description"] == (
        "Article to summarise."
    )


def test_no_input_names_give_model_without_fields() -> None:
    model = model_from_input_names([], model_name="NoInputs")

    assert payload_from_model(model.model_validate({})) == {}


def test_input_names_as_one_string_raises() -> None:
    with pytest.raises(TypeError, match="single_input_model"):
        model_from_input_names("url", model_name="Oops")


@pytest.mark.parametrize(
    ("names", "descriptions", "message"),
    [
        (["url", "url"], None, r"unique, got \['url'\]"),
        (["url", ""], None, "non-empty strings, got ''"),
        (["url"], {"uri": "typo"}, r"keys \['uri'\] that are not input names"),
    ],
)
def test_invalid_input_names_raise(
    names: list[str], descriptions: dict[str, str] | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        model_from_input_names(names, model_name="Bad", descriptions=descriptions)


def test_single_input_model_has_one_required_string() -> None:
    model = single_input_model("chatMessage", model_name="Chat", description="The question.")

    schema = model.model_json_schema()

    assert schema["properties"] == {
        "chatMessage": {"type": "string", "title": "Chatmessage", "description": "The question."}
    }
    assert schema["required"] == ["chatMessage"]


def test_single_input_model_with_empty_key_raises() -> None:
    with pytest.raises(ValueError, match="input_key must be a non-empty string"):
        single_input_model("", model_name="Chat")


# --------------------------------------------------------------------------------------------
# The schema a language model receives through LangChain
# --------------------------------------------------------------------------------------------


def test_openai_tool_schema_keeps_nested_required_and_optional() -> None:
    model = schema_to_model(
        flow_named("repo-analyzer")["advance_schema"], model_name="repo-analyzer"
    )

    parameters = convert_to_openai_tool(model)["function"]["parameters"]

    assert parameters["required"] == ["repo_url", "developer_role"]
    assert parameters["properties"]["github_token"] == {"type": "string"}
    assert parameters["additionalProperties"] is False


def test_openai_tool_schema_inlines_nested_objects() -> None:
    model = schema_to_model({"files": [{"path": "string", "why": "string?"}]}, model_name="F")

    parameters = convert_to_openai_tool(model)["function"]["parameters"]

    assert parameters["properties"]["files"]["items"] == {
        "type": "object",
        "properties": {"path": {"type": "string"}, "why": {"type": "string"}},
        "required": ["path"],
        "additionalProperties": False,
    }


def test_structured_tool_validates_before_calling() -> None:
    calls: list[dict[str, Any]] = []

    def run(**kwargs: Any) -> str:
        calls.append(kwargs)
        return "ran"

    model = schema_to_model(flow_named("plan-trip")["advance_schema"], model_name="plan-trip")
    tool = StructuredTool.from_function(run, name="plan_trip", description="d", args_schema=model)

    with pytest.raises(ValidationError):
        tool.invoke({"city": "Lisbon", "days": "three"})
    assert calls == []


def test_module_exports_public_api() -> None:
    import langchain_lamatic.schema as schema_module

    assert sorted(schema_module.__all__) == [
        "model_from_input_names",
        "parse_advance_schema",
        "payload_from_model",
        "schema_to_model",
        "single_input_model",
    ]
