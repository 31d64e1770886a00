"""Input schemas for Lamatic flows, converted to pydantic models.

A flow's API trigger declares its inputs in ``advance_schema``, a JSON string in one of two
forms. This module turns either form into a pydantic model, so a tool validates its arguments
on the client before any request and the language model receives an accurate JSON Schema.

**Short form.** A JSON object that maps each input name to a type:

- ``"string"``, ``"int"`` (or ``"integer"``), ``"float"``, ``"number"``, ``"bool"``,
  ``"boolean"``, ``"object"`` (any JSON object) and ``"array"`` (any JSON array);
- ``"[<type>]"``, an array of ``<type>``, for example ``"[string]"`` or ``"[[int]]"``;
- a nested object of the same form;
- a one-element list that contains a nested object (an array of such objects) or a type word.

A trailing ``?`` makes a field optional (``"string?"``, ``"[int]?"``). Type words are read
without regard to case or surrounding whitespace. Nested objects and lists cannot carry ``?``,
so they are always required. Every object of the short form rejects unknown keys, so a language
model that invents an argument gets a validation error it can act on.

**JSON Schema.** ``{"type": "object", "properties": {...}, "required": [...]}``, given as a
mapping or as a JSON string.

**Telling the forms apart.** A mapping is read as JSON Schema when its ``"type"`` is
``"object"`` and its ``"properties"`` is a mapping whose values are all mappings or booleans,
as JSON Schema requires. A mapping with ``"type": "object"`` and a ``"properties"`` mapping
that contains anything else is rejected as a malformed JSON Schema. Every other mapping is the
short form, so ``{"type": "string", "name": "string"}`` has the two fields ``type`` and
``name``. A short-form schema with a field ``type`` of type ``object`` next to a field
``properties`` cannot be written. Give such a flow's schema as JSON Schema.

**Conversion rules.**

- Objects with ``properties`` become models and other objects become ``dict``. A JSON Schema
  object without ``additionalProperties`` accepts extra keys, as JSON Schema specifies. With
  ``additionalProperties: false`` extra keys are rejected, and with a schema their values are
  validated against it. A schema without ``type`` but with ``properties`` is read as an object.
- A ``null`` given for an optional field whose schema does not allow ``null`` counts as absent,
  because language models often send ``null`` for "not given".
- Validated on the client: ``type`` (also as a list), ``enum``, ``const``, ``anyOf``, ``oneOf``
  (as ``anyOf``: a value that matches several members passes), ``allOf`` (merged into one
  schema), ``nullable``, local ``$ref`` (any ``#/...`` pointer, recursion through objects
  included), ``properties``, ``required``, ``additionalProperties``, ``items``, lengths,
  numeric bounds, ``multipleOf``, ``pattern`` (with Python's ``re``), ``uniqueItems``,
  ``minProperties`` and ``maxProperties``.
- Kept in the generated JSON Schema: ``description``, ``title``, ``default``, ``examples``,
  ``format`` and every keyword not listed above. Validation keywords among them, such as
  ``not``, ``if``, ``patternProperties`` or ``prefixItems``, are not checked on the client.
  ``format`` is an annotation in JSON Schema and is not checked either.
- :func:`payload_from_model` leaves out every field the caller did not set, including fields
  that have a ``default``. The flow applies its own defaults.

Field names that are not Python identifiers, are keywords, start with ``_`` or shadow a
``BaseModel`` attribute (``model_config``, ``schema``, ``json``, ``copy``) get a Python
attribute name such as ``class_`` and keep the original name as their alias. The JSON Schema,
validation and :func:`payload_from_model` use the original name. Validation also accepts the
attribute name.

Example:
    >>> Model = schema_to_model('{"city": "string", "days": "int?"}', model_name="PlanTrip")
    >>> payload_from_model(Model.model_validate({"city": "Lisbon"}))
    {'city': 'Lisbon'}
"""

from __future__ import annotations

import copy
import json
import keyword
import logging
import re
import typing
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, ClassVar, ForwardRef, TypeGuard

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    PydanticUserError,
    TypeAdapter,
    ValidationError,
    create_model,
    model_validator,
)
from pydantic.json_schema import WithJsonSchema
from pydantic_core import SchemaError, to_jsonable_python

__all__ = [
    "model_from_input_names",
    "parse_advance_schema",
    "payload_from_model",
    "schema_to_model",
    "single_input_model",
]

logger = logging.getLogger(__name__)

_Schema = dict[str, Any]

_SHORT_FORM_TYPES: Mapping[str, _Schema] = {
    "string": {"type": "string"},
    "int": {"type": "integer"},
    "integer": {"type": "integer"},
    "float": {"type": "number"},
    "number": {"type": "number"},
    "bool": {"type": "boolean"},
    "boolean": {"type": "boolean"},
    "object": {"type": "object"},
    "array": {"type": "array"},
}

_ACCEPTED_SHORT_FORM = (
    "accepted types are string, int, integer, float, number, bool, boolean, object, array, "
    "[<type>] (an array of <type>), a nested object, or a one-element list containing a nested "
    "object; append '?' to make a field optional, for example 'string?' or '[int]?'"
)

_JSON_TYPES = ("string", "integer", "number", "boolean", "null", "array", "object")

_LOWER_BOUNDS = frozenset({"minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties"})
_UPPER_BOUNDS = frozenset({"maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties"})

# NOTE: These keywords reach the language model's schema but are not validated on the client.
_UNENFORCED_KEYWORDS = frozenset(
    {
        "additionalItems",
        "contains",
        "dependencies",
        "dependentRequired",
        "dependentSchemas",
        "else",
        "if",
        "maxContains",
        "minContains",
        "not",
        "patternProperties",
        "prefixItems",
        "propertyNames",
        "then",
        "unevaluatedItems",
        "unevaluatedProperties",
    }
)

# Keywords whose value is a schema, or a list or mapping of schemas. Local references inside
# them are inlined when they are copied into the generated JSON Schema, whose $defs only
# contain the generated models.
_SCHEMA_VALUED_KEYWORDS = frozenset(
    {
        "additionalItems",
        "additionalProperties",
        "contains",
        "contentSchema",
        "dependentSchemas",
        "else",
        "if",
        "items",
        "not",
        "patternProperties",
        "prefixItems",
        "propertyNames",
        "then",
        "unevaluatedItems",
        "unevaluatedProperties",
    }
)

# Annotations are allowed next to $ref and are not merged by allOf.
_ANNOTATION_KEYWORDS = frozenset(
    {
        "$comment",
        "default",
        "deprecated",
        "description",
        "examples",
        "readOnly",
        "title",
        "writeOnly",
    }
)

# Keywords that the generated pydantic types reproduce in model_json_schema(), or that only
# matter while converting. All other keywords are copied into the generated schema.
_REGENERATED_KEYWORDS = frozenset(
    {
        "$anchor",
        "$defs",
        "$dynamicAnchor",
        "$id",
        "$ref",
        "$schema",
        "$vocabulary",
        "allOf",
        "anyOf",
        "const",
        "definitions",
        "enum",
        "exclusiveMaximum",
        "exclusiveMinimum",
        "maxItems",
        "maxLength",
        "maximum",
        "minItems",
        "minLength",
        "minimum",
        "multipleOf",
        "nullable",
        "oneOf",
        "pattern",
        "properties",
        "required",
        "type",
    }
)

# Deeper schemas are rejected. Real flow schemas nest a few levels, and the limit keeps a
# schema that refers to itself without an object in between from exhausting the stack.
_MAX_NESTING = 48


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def parse_advance_schema(schema: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """Convert a flow's ``advance_schema`` to a JSON Schema object.

    Args:
        schema: The short form or JSON Schema, as a JSON string or as a mapping. ``None``, an
            empty string and a string of whitespace mean that the flow declares no schema.

    Returns:
        A new JSON Schema dict with ``"type": "object"``. A flow without a schema gets
        ``{"type": "object", "properties": {}}``, which accepts any object. The short form
        gets ``"additionalProperties": false`` on every object with fields. A JSON Schema
        input is returned as a deep copy.

    Raises:
        ValueError: If the string is not valid JSON, the top level is not an object, an object
            repeats a key, or a type is not one of the accepted types. The message names the
            field path and the value.
        TypeError: If ``schema`` is neither a string, a mapping nor ``None``.
    """
    if schema is None:
        return {"type": "object", "properties": {}}
    if isinstance(schema, str):
        if not schema.strip():
            return {"type": "object", "properties": {}}
        parsed = _load_json_object(schema)
    elif isinstance(schema, Mapping):
        parsed = schema
    else:
        raise TypeError(
            f"advance_schema must be a JSON string, a mapping or None, not {type(schema).__name__}"
        )

    if _is_json_schema(parsed):
        result = copy.deepcopy(dict(parsed))
        _check_json_schema_object(result, "")
        return result
    if parsed.get("type") == "object" and isinstance(parsed.get("properties"), Mapping):
        raise ValueError(
            'advance_schema has "type": "object" and "properties", so it is read as '
            'JSON Schema, but the values in "properties" must be schema objects such as '
            f'{{"type": "string"}}; got {json.dumps(parsed.get("properties"))[:200]}'
        )
    return _short_object_to_json_schema(parsed, path="")


def schema_to_model(
    schema: str | Mapping[str, Any] | type[BaseModel] | None,
    *,
    model_name: str,
) -> type[BaseModel]:
    """Build a pydantic model that validates a flow's input.

    Args:
        schema: A pydantic model class (returned unchanged), a JSON Schema mapping, a short-form
            mapping such as ``{"city": "string"}``, or a JSON string of either. ``None`` or an
            empty string give a model without fields that accepts any keys.
        model_name: The model's class name. Characters that cannot appear in a Python
            identifier are dropped and the words are joined in CamelCase, so ``"plan-trip"``
            becomes ``PlanTrip``. Nested models get this name followed by their field name.

    Returns:
        A new model class. Each call builds new classes and nothing is shared between calls.

    Raises:
        ValueError: If the schema is malformed, uses an unknown type, contains a ``$ref`` that
            cannot be resolved, or lists a required field that is not among the properties.
            The message names the path of the field.
        TypeError: If ``schema`` has an unsupported type.
    """
    if isinstance(schema, type):
        if issubclass(schema, BaseModel):
            return schema
        raise TypeError(
            f"schema must be a pydantic BaseModel subclass, a mapping or a string, "
            f"not the class {schema.__name__}"
        )
    return _ModelBuilder(parse_advance_schema(schema), model_name).build()


def model_from_input_names(
    names: Sequence[str],
    *,
    model_name: str,
    descriptions: Mapping[str, str] | None = None,
) -> type[BaseModel]:
    """Build a model for a flow whose inputs are known only by name.

    Flows with an empty ``advance_schema`` read their inputs through references such as
    ``{{triggerNode_1.output.url}}``. Each name becomes a required string field, and unknown
    keys are rejected.

    Args:
        names: The input names, in the order the model should list them.
        model_name: The model's class name, converted as in :func:`schema_to_model`.
        descriptions: Optional descriptions by input name, shown to the language model.

    Returns:
        A new model class.

    Raises:
        TypeError: If ``names`` is a single string rather than a sequence of names.
        ValueError: If a name is empty or repeated, or ``descriptions`` has a key that is not
            in ``names``.
    """
    if isinstance(names, str):
        raise TypeError(
            f"names must be a sequence of input names, not the string {names!r}; "
            "use single_input_model() for a flow with one input"
        )
    name_list = list(names)
    for name in name_list:
        if not isinstance(name, str) or not name:
            raise ValueError(f"input names must be non-empty strings, got {name!r}")
    duplicates = sorted({name for name in name_list if name_list.count(name) > 1})
    if duplicates:
        raise ValueError(f"input names must be unique, got {duplicates} more than once")
    descriptions = dict(descriptions or {})
    unknown = sorted(set(descriptions) - set(name_list))
    if unknown:
        raise ValueError(
            f"descriptions has keys {unknown} that are not input names; input names are {name_list}"
        )

    properties: _Schema = {}
    for name in name_list:
        field_schema: _Schema = {"type": "string"}
        if name in descriptions:
            field_schema["description"] = descriptions[name]
        properties[name] = field_schema
    json_schema: _Schema = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if name_list:
        json_schema["required"] = name_list
    return _ModelBuilder(json_schema, model_name).build()


def single_input_model(
    input_key: str,
    *,
    model_name: str,
    description: str | None = None,
) -> type[BaseModel]:
    """Build a model with one required string field named ``input_key``.

    This suits flows that take one text input, such as chat-trigger flows with
    ``input_key="chatMessage"``.

    Args:
        input_key: The name of the flow input.
        model_name: The model's class name, converted as in :func:`schema_to_model`.
        description: Optional description of the input, shown to the language model.

    Returns:
        A new model class.

    Raises:
        ValueError: If ``input_key`` is empty.
    """
    if not isinstance(input_key, str) or not input_key:
        raise ValueError(f"input_key must be a non-empty string, got {input_key!r}")
    descriptions = {input_key: description} if description is not None else None
    return model_from_input_names([input_key], model_name=model_name, descriptions=descriptions)


def payload_from_model(instance: BaseModel) -> dict[str, Any]:
    """Convert a validated model instance to the ``payload`` of a flow execution.

    Fields the caller did not set are left out at every level, rather than sent as ``null``
    or as their default. Keys are the original input names (the aliases) and values are
    JSON-compatible.

    Args:
        instance: A validated instance of a model from this module or of any pydantic model.

    Returns:
        A new dict.

    Raises:
        TypeError: If ``instance`` is not a pydantic model instance or does not serialise to
            a JSON object.
    """
    if not isinstance(instance, BaseModel):
        raise TypeError(
            f"payload_from_model expects a pydantic model instance, not {type(instance).__name__}"
        )
    payload = instance.model_dump(mode="json", by_alias=True, exclude_unset=True)
    if not isinstance(payload, dict):
        raise TypeError(
            f"{type(instance).__name__} serialises to {type(payload).__name__}, but a flow "
            "payload must be a JSON object"
        )
    return payload


# --------------------------------------------------------------------------------------------
# advance_schema parsing
# --------------------------------------------------------------------------------------------


def _load_json_object(text: str) -> Mapping[str, Any]:
    def reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                raise ValueError(f"advance_schema repeats the key {key!r} in one object")
            result[key] = value
        return result

    try:
        parsed = json.loads(text, object_pairs_hook=reject_duplicates)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"advance_schema is not valid JSON: {exc.msg} at line {exc.lineno} column "
            f'{exc.colno}; expected an object such as {{"city": "string"}}'
        ) from exc
    except RecursionError as exc:
        raise ValueError("advance_schema nests too deeply to parse") from exc
    if isinstance(parsed, str):
        raise ValueError(
            "advance_schema must be a JSON object, got a JSON string; "
            "the schema may have been JSON-encoded twice"
        )
    if not isinstance(parsed, dict):
        raise ValueError(
            f"advance_schema must be a JSON object, got {type(parsed).__name__}: {text[:80]!r}"
        )
    return parsed


def _is_json_schema(value: Mapping[str, Any]) -> bool:
    properties = value.get("properties")
    return (
        value.get("type") == "object"
        and isinstance(properties, Mapping)
        and all(isinstance(item, (Mapping, bool)) for item in properties.values())
    )


def _check_json_schema_object(schema: Mapping[str, Any], path: str) -> None:
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(name, str) for name in required):
        raise ValueError(f"'required' {_at(path)} must be a list of strings, got {required!r}")


def _at(path: str) -> str:
    """Describe a field path for an error message."""
    return f"at {path!r}" if path else "at the top level"


def _join_path(path: str, key: str) -> str:
    part = key if key.isidentifier() else json.dumps(key)
    return f"{path}.{part}" if path else part


def _short_object_to_json_schema(mapping: Mapping[str, Any], path: str, depth: int = 0) -> _Schema:
    properties: _Schema = {}
    required: list[str] = []
    for key, value in mapping.items():
        if not isinstance(key, str):
            raise ValueError(f"field names must be strings, got {key!r} {_at(path)}")
        field_path = _join_path(path, key)
        field_schema, optional = _short_value_to_json_schema(value, field_path, depth + 1)
        properties[key] = field_schema
        if not optional:
            required.append(key)

    result: _Schema = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        result["required"] = required
    return result


def _short_value_to_json_schema(value: object, path: str, depth: int) -> tuple[_Schema, bool]:
    """Return the JSON Schema of one short-form value and whether the field is optional."""
    if depth > _MAX_NESTING:
        raise ValueError(f"advance_schema nests more than {_MAX_NESTING} levels deep {_at(path)}")
    if isinstance(value, str):
        return _type_word_to_json_schema(value, path)
    if isinstance(value, Mapping):
        return _short_object_to_json_schema(value, path, depth), False
    if isinstance(value, list):
        if len(value) != 1:
            raise ValueError(
                f"invalid advance_schema type for field {path!r}: a list must contain exactly one "
                f"element, the item type, got {len(value)} elements in {value!r}; "
                f"{_ACCEPTED_SHORT_FORM}"
            )
        item_schema, item_optional = _short_value_to_json_schema(value[0], f"{path}[]", depth + 1)
        if item_optional:
            raise ValueError(
                f"invalid advance_schema type for field {path!r}: array items cannot be "
                f"optional, got {value!r}; put '?' after the whole type instead, as in '[int]?'"
            )
        return {"type": "array", "items": item_schema}, False
    raise ValueError(
        f"invalid advance_schema type {value!r} for field {path!r}; {_ACCEPTED_SHORT_FORM}"
    )


def _type_word_to_json_schema(word: str, path: str) -> tuple[_Schema, bool]:
    if word.count("[") > _MAX_NESTING:
        raise ValueError(
            f"invalid advance_schema type for field {path!r}: more than {_MAX_NESTING} nested "
            "arrays"
        )
    text = word.strip()
    optional = text.endswith("?")
    if optional:
        text = text[:-1].rstrip()
    return _required_type_word_to_json_schema(text, word, path), optional


def _required_type_word_to_json_schema(text: str, word: str, path: str) -> _Schema:
    if text.startswith("[") and text.endswith("]"):
        inner = text[1:-1].strip()
        if inner.endswith("?"):
            raise ValueError(
                f"invalid advance_schema type {word!r} for field {path!r}: array items cannot "
                "be optional; put '?' after the whole type instead, as in '[int]?'"
            )
        if inner:
            return {
                "type": "array",
                "items": _required_type_word_to_json_schema(inner, word, f"{path}[]"),
            }
    schema = _SHORT_FORM_TYPES.get(text.lower())
    if schema is None:
        raise ValueError(
            f"invalid advance_schema type {word!r} for field {path!r}; {_ACCEPTED_SHORT_FORM}"
        )
    return dict(schema)


# --------------------------------------------------------------------------------------------
# Model generation
# --------------------------------------------------------------------------------------------


class _FlowInputModel(BaseModel):
    """Base class of the generated models.

    Each generated subclass sets these class variables:
    ``__lamatic_null_means_unset__`` contains the keys (aliases and attribute names) of optional
    fields whose schema does not allow ``null``. ``__lamatic_additional__`` validates the
    values of keys that are not fields, when ``additionalProperties`` is a schema.
    ``__lamatic_property_count__`` contains ``minProperties`` and ``maxProperties``.
    """

    __lamatic_null_means_unset__: ClassVar[frozenset[str]] = frozenset()
    __lamatic_additional__: ClassVar[TypeAdapter[Any] | None] = None
    __lamatic_property_count__: ClassVar[tuple[int | None, int | None]] = (None, None)

    @model_validator(mode="before")
    @classmethod
    def lamatic_prepare_input(cls, data: Any) -> Any:
        """Drop ``null`` optional fields, count properties and validate additional ones."""
        if not isinstance(data, Mapping):
            return data
        null_keys = cls.__lamatic_null_means_unset__
        if null_keys:
            data = {k: v for k, v in data.items() if not (v is None and k in null_keys)}
        min_count, max_count = cls.__lamatic_property_count__
        if min_count is not None and len(data) < min_count:
            raise ValueError(f"expected at least {min_count} properties, got {len(data)}")
        if max_count is not None and len(data) > max_count:
            raise ValueError(f"expected at most {max_count} properties, got {len(data)}")
        adapter = cls.__lamatic_additional__
        if adapter is not None:
            known: set[str] = set()
            for name, info in cls.model_fields.items():
                known.add(name)
                if info.alias is not None:
                    known.add(info.alias)
            data = dict(data)
            for key, value in data.items():
                if key in known:
                    continue
                try:
                    validated = adapter.validate_python(value)
                except ValidationError as exc:
                    raise ValueError(f"additional property {key!r} is invalid: {exc}") from exc
                data[key] = adapter.dump_python(
                    validated, mode="json", by_alias=True, exclude_unset=True
                )
        return data


# Field names that would shadow an attribute of the generated model classes.
_RESERVED_FIELD_NAMES = frozenset(dir(_FlowInputModel))


def _absent() -> None:
    """Return the value of an optional field the caller left out.

    A ``default_factory`` rather than ``default=None`` keeps ``"default": null`` out of the
    JSON Schema of fields that do not accept ``null``.
    """
    return None


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _reject_bool(value: Any) -> Any:
    # pydantic's lax mode reads True as 1, but JSON Schema keeps booleans apart from numbers.
    if isinstance(value, bool):
        raise ValueError("expected a number, got a boolean")
    return value


def _json_equal(left: Any, right: Any) -> bool:
    """Compare JSON values as JSON Schema does: 1 equals 1.0, but true does not equal 1."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, (int, float)) and isinstance(right, (int, float)):
        return left == right
    if isinstance(left, Mapping) and isinstance(right, Mapping):
        return left.keys() == right.keys() and all(_json_equal(left[k], right[k]) for k in left)
    if isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
        return len(left) == len(right) and all(
            _json_equal(a, b) for a, b in zip(left, right, strict=True)
        )
    if left is None or right is None:
        return left is None and right is None
    return type(left) is type(right) and bool(left == right)


def _enum_validator(members: list[Any]) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        plain = to_jsonable_python(value)
        for member in members:
            if _json_equal(plain, member):
                return copy.deepcopy(member)
        if len(members) == 1:
            raise ValueError(f"value must be {json.dumps(members[0])}")
        allowed = ", ".join(json.dumps(member) for member in members)
        raise ValueError(f"value must be one of {allowed}")

    return check


def _canonical(value: Any) -> Any:
    """Return a JSON value in which equal JSON values compare and serialise equal."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _canonical(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_canonical(item) for item in value]
    return value


def _check_unique_items(items: list[Any]) -> list[Any]:
    seen: set[str] = set()
    for item in to_jsonable_python(items):
        text = json.dumps(_canonical(item), sort_keys=True)
        if text in seen:
            raise ValueError(f"array items must be unique, but {text} repeats")
        seen.add(text)
    return items


class _ExtraJsonSchema:
    """Annotation metadata that adds keywords to a type's generated JSON Schema."""

    def __init__(self, keywords: Mapping[str, Any], *, one_of: bool = False) -> None:
        self.keywords = dict(keywords)
        self.one_of = one_of

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: Any) -> _Schema:
        json_schema: _Schema = dict(handler(core_schema))
        if self.one_of and "anyOf" in json_schema:
            json_schema["oneOf"] = json_schema.pop("anyOf")
        json_schema.update(copy.deepcopy(self.keywords))
        return json_schema


def _model_identifier(name: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"model_name must be a string, not {type(name).__name__}")
    if name.isidentifier() and not keyword.iskeyword(name) and not name.startswith("_"):
        return name
    words = [word for word in re.split(r"[\W_]+", name) if word]
    identifier = "".join(word[:1].upper() + word[1:] for word in words)
    if not identifier:
        raise ValueError(
            f"model_name {name!r} has no letters or digits; pass a name such as 'PlanTripInput'"
        )
    if not identifier[0].isalpha():
        identifier = "Model" + identifier
    if not identifier.isidentifier():
        identifier = "Model" + "".join(ch for ch in identifier if ("a" + ch).isidentifier())
    if keyword.iskeyword(identifier):
        identifier += "Model"
    return identifier


def _python_field_name(key: str, wire_keys: set[str], used: set[str]) -> str:
    """Choose a Python attribute name for the input ``key``, unique within one model."""
    if key.isidentifier() and not keyword.iskeyword(key):
        candidate = key
    else:
        candidate = re.sub(r"\W", "_", key)
    candidate = candidate.lstrip("_")
    if not candidate or not candidate.isidentifier():
        candidate = "field_" + candidate
    if not candidate.isidentifier():
        candidate = "field"
    while (
        keyword.iskeyword(candidate)
        or candidate in _RESERVED_FIELD_NAMES
        or candidate in used
        or (candidate != key and candidate in wire_keys)
    ):
        candidate += "_"
    used.add(candidate)
    return candidate


class _ModelBuilder:
    """Convert one JSON Schema document to pydantic models.

    A builder lives for one conversion, so generated class names are unique within the
    document and no state is shared between tools.
    """

    def __init__(self, root: _Schema, model_name: str) -> None:
        self._root = root
        self._root_name = _model_identifier(model_name)
        self._used_model_names: set[str] = set()
        self._model_names_by_pointer: dict[str, str] = {}
        self._models: dict[str, type[BaseModel]] = {}
        self._ref_annotations: dict[str, Any] = {}
        self._refs_in_progress: set[str] = set()
        self._nesting = 0

    # -- entry point -------------------------------------------------------------------------

    def build(self) -> type[BaseModel]:
        root = self._flatten(self._root, "")
        if not self._is_model_node(root):
            raise ValueError(
                "the root of a flow input schema must be an object with 'properties', got "
                f"{json.dumps(self._root)[:200]}"
            )
        model = self._model(root, "", self._root_name, pointer="")
        if isinstance(model, ForwardRef):  # pragma: no cover - the root is built first
            raise AssertionError("the root model was referenced before it was built")

        # Models that reference a model still under construction hold a ForwardRef by name.
        for generated in self._models.values():
            if not generated.__pydantic_complete__:
                generated.model_rebuild(force=True, _types_namespace=dict(self._models))
        return model

    # -- schema navigation -------------------------------------------------------------------

    def _resolve(self, ref: object, path: str) -> tuple[str, Any]:
        """Return the normalised pointer and the target of a local ``$ref``."""
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise ValueError(
                f"unsupported $ref {ref!r} {_at(path)}: only local references such as "
                "'#/$defs/Name' are supported"
            )
        pointer = urllib.parse.unquote(ref[1:])
        if pointer and not pointer.startswith("/"):
            raise ValueError(
                f"unsupported $ref {ref!r} {_at(path)}: anchors are not supported, use a JSON "
                "pointer such as '#/$defs/Name'"
            )
        node: Any = self._root
        for token in pointer.split("/")[1:]:
            token = token.replace("~1", "/").replace("~0", "~")
            if isinstance(node, Mapping) and token in node:
                node = node[token]
            elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
                node = node[int(token)]
            else:
                raise ValueError(
                    f"$ref {ref!r} {_at(path)} does not point to anything in the schema"
                )
        return pointer, node

    def _flatten(self, node: Any, path: str, active: frozenset[str] = frozenset()) -> Any:
        """Merge ``allOf`` members, and a ``$ref`` that has validation keywords next to it.

        ``active`` contains the pointers being merged, to detect a reference cycle.
        """
        if not isinstance(node, Mapping):
            return node
        members = node.get("allOf", [])
        if not isinstance(members, list) or (not members and "allOf" in node):
            raise ValueError(f"'allOf' {_at(path)} must be a non-empty list, got {members!r}")
        rest = {key: value for key, value in node.items() if key != "allOf"}
        members = list(members)
        validation_keys = set(rest) - _ANNOTATION_KEYWORDS - {"$ref", "nullable"}
        if "$ref" in rest and (members or validation_keys):
            members.insert(0, {"$ref": rest.pop("$ref")})
        if not members:
            return node

        merged: _Schema = rest
        for index, member in enumerate(members):
            member_path = f"{path}.allOf[{index}]"
            if member is True:
                continue
            if not isinstance(member, Mapping):
                raise ValueError(
                    f"unsupported allOf member {_at(member_path)}: expected a schema object, "
                    f"got {member!r}"
                )
            member_active = active
            if "$ref" in member:
                pointer, target = self._resolve(member["$ref"], member_path)
                if pointer in active:
                    raise ValueError(f"circular $ref {member['$ref']!r} in allOf {_at(path)}")
                member_active = active | {pointer}
                target = self._flatten(target, member_path, member_active)
                siblings = {key: value for key, value in member.items() if key != "$ref"}
                member = self._merge(siblings, target, member_path) if siblings else target
            merged = self._merge(merged, self._flatten(member, member_path, member_active), path)
        return merged

    def _merge(self, left: _Schema, right: Any, path: str) -> _Schema:
        """Merge schema ``right`` into ``left``, which is modified and returned."""
        if right is True:
            return left
        if not isinstance(right, Mapping):
            raise ValueError(f"cannot merge {right!r} into the schema {_at(path)}")
        for key, value in right.items():
            if key not in left:
                left[key] = copy.deepcopy(value)
            elif key in _ANNOTATION_KEYWORDS or _json_equal(left[key], value):
                continue
            elif key == "properties" and isinstance(value, Mapping):
                if not isinstance(left[key], Mapping):
                    raise ValueError(f"'properties' {_at(path)} must be an object")
                properties = dict(left[key])
                for name, schema in value.items():
                    if name in properties and not _json_equal(properties[name], schema):
                        properties[name] = {"allOf": [properties[name], schema]}
                    else:
                        properties.setdefault(name, copy.deepcopy(schema))
                left[key] = properties
            elif key == "required":
                names = [left[key], value]
                if not all(
                    isinstance(n, list) and all(isinstance(x, str) for x in n) for n in names
                ):
                    raise ValueError(f"'required' {_at(path)} must be a list of strings")
                left[key] = list(dict.fromkeys([*left[key], *value]))
            elif key == "type":
                left[key] = self._intersect_types(left[key], value, path)
            elif key in _LOWER_BOUNDS or key in _UPPER_BOUNDS:
                if not (_is_number(left[key]) and _is_number(value)):
                    raise ValueError(
                        f"{key!r} {_at(path)} must be a number, got {left[key]!r} and {value!r}"
                    )
                pick = max if key in _LOWER_BOUNDS else min
                left[key] = pick(left[key], value)
            else:
                raise ValueError(
                    f"allOf {_at(path)} combines different values of {key!r} ({left[key]!r} and "
                    f"{value!r}); merge these schemas by hand"
                )
        return left

    @staticmethod
    def _intersect_types(left: Any, right: Any, path: str) -> Any:
        left_types = [left] if isinstance(left, str) else left
        right_types = [right] if isinstance(right, str) else right
        if not isinstance(left_types, list) or not isinstance(right_types, list):
            raise ValueError(f"invalid 'type' {_at(path)}: got {left!r} and {right!r}")
        common = [t for t in left_types if t in right_types]
        if "number" in left_types and "integer" in right_types and "integer" not in common:
            common.append("integer")
        if "integer" in left_types and "number" in right_types and "integer" not in common:
            common.append("integer")
        if not common:
            raise ValueError(
                f"allOf {_at(path)} combines the disjoint types {left!r} and {right!r}"
            )
        return common[0] if len(common) == 1 else common

    def _accepts_null(self, node: Any, seen: frozenset[str] = frozenset()) -> bool:
        if node is True:
            return True
        if not isinstance(node, Mapping):
            return False
        if node.get("nullable") is True:
            return True
        if "$ref" in node:
            pointer, target = self._resolve(node["$ref"], "a $ref")
            return pointer not in seen and self._accepts_null(target, seen | {pointer})
        if isinstance(node.get("enum"), list):
            return any(member is None for member in node["enum"])
        if "const" in node:
            return node["const"] is None
        for key in ("anyOf", "oneOf"):
            if isinstance(node.get(key), list):
                return any(self._accepts_null(member, seen) for member in node[key])
        if isinstance(node.get("allOf"), list):
            return all(self._accepts_null(member, seen) for member in node["allOf"])
        types = node.get("type")
        if types is None:
            return "properties" not in node
        return types == "null" or (isinstance(types, list) and "null" in types)

    @staticmethod
    def _is_model_node(node: Any) -> bool:
        if not isinstance(node, Mapping):
            return False
        if any(key in node for key in ("enum", "const", "anyOf", "oneOf")):
            return False
        types = node.get("type")
        is_object = types == "object" or (types is None and "properties" in node)
        return is_object and (
            "properties" in node or "required" in node or node.get("additionalProperties") is False
        )

    def _inline_refs(self, value: Any, path: str, active: frozenset[str] = frozenset()) -> Any:
        """Copy a schema with every local ``$ref`` replaced by its target."""
        if isinstance(value, list):
            return [self._inline_refs(item, path, active) for item in value]
        if not isinstance(value, Mapping):
            return copy.deepcopy(value)
        if "$ref" in value:
            pointer, target = self._resolve(value["$ref"], path)
            if pointer in active:
                raise ValueError(
                    f"circular $ref {value['$ref']!r} {_at(path)} inside a keyword that is "
                    "copied into the generated schema"
                )
            resolved = self._inline_refs(target, path, active | {pointer})
            siblings = {key: item for key, item in value.items() if key != "$ref"}
            if isinstance(resolved, Mapping):
                return {**resolved, **self._inline_refs(siblings, path, active)}
            return resolved
        # Without refs left to resolve, $defs is dead weight that pydantic would try to remap.
        return {
            key: self._inline_refs(item, path, active)
            for key, item in value.items()
            if key != "$defs"
        }

    def _extra_keywords(self, node: Mapping[str, Any], path: str, skip: frozenset[str]) -> _Schema:
        """Return the keywords of ``node`` that pydantic does not regenerate."""
        extras: _Schema = {}
        for key, value in node.items():
            if key in _REGENERATED_KEYWORDS or key in skip:
                continue
            if key in {"items", "additionalProperties"} and not isinstance(value, list):
                # pydantic writes these from the converted item and value types, except
                # draft 4's tuple form of items, which is copied.
                continue
            if key in _SCHEMA_VALUED_KEYWORDS:
                extras[key] = self._inline_refs(value, f"{path}.{key}")
            else:
                extras[key] = _embeddable(value, path, key)
        unenforced = sorted(set(extras) & _UNENFORCED_KEYWORDS)
        if unenforced:
            logger.debug(
                "JSON Schema keywords %s at %s are kept in the schema but not validated",
                unenforced,
                path,
            )
        return extras

    # -- annotations -------------------------------------------------------------------------

    def _annotation(
        self,
        node: Any,
        path: str,
        name: str,
        pointer: str | None,
        *,
        skip: frozenset[str] = frozenset(),
    ) -> Any:
        """Return the Python type annotation that validates ``node``.

        ``skip`` lists keywords that the caller applies itself, such as a field's description.
        """
        self._nesting += 1
        try:
            if self._nesting > _MAX_NESTING:
                raise ValueError(
                    f"the schema {_at(path)} nests more than {_MAX_NESTING} levels deep, or "
                    "refers to itself without an object schema in between"
                )
            return self._convert(node, path, name, pointer, skip)
        finally:
            self._nesting -= 1

    def _convert(
        self, node: Any, path: str, name: str, pointer: str | None, skip: frozenset[str]
    ) -> Any:
        if node is True:
            return Any
        if node is False:
            raise ValueError(
                f"unsupported schema false {_at(path)}: a field that must never be present "
                "cannot be converted; remove it from 'properties'"
            )
        if not isinstance(node, Mapping):
            raise ValueError(f"invalid JSON Schema {_at(path)}: expected an object, got {node!r}")

        flattened = self._flatten(node, path)
        if flattened is not node:
            node, pointer = flattened, None

        if "$ref" in node:
            annotation = self._ref_annotation(node["$ref"], path)
        elif "anyOf" in node or "oneOf" in node:
            annotation = self._union_annotation(node, path, name)
        elif "enum" in node or "const" in node:
            annotation = self._enum_annotation(node, path)
        else:
            annotation = self._typed_annotation(node, path, name, pointer)

        if node.get("nullable") is True:
            annotation = _union([annotation, None])

        # A model carries its own keywords in its JSON Schema (see _model).
        extras = {} if self._is_model_node(node) else self._extra_keywords(node, path, skip)
        if "oneOf" in node or extras:
            annotation = Annotated[annotation, _ExtraJsonSchema(extras, one_of="oneOf" in node)]
        return annotation

    def _ref_annotation(self, ref: object, path: str) -> Any:
        pointer, target = self._resolve(ref, path)
        if pointer in self._ref_annotations:
            return self._ref_annotations[pointer]
        if pointer in self._model_names_by_pointer:
            model_name = self._model_names_by_pointer[pointer]
            return self._models.get(model_name, ForwardRef(model_name))
        if pointer in self._refs_in_progress:
            raise ValueError(
                f"circular $ref {ref!r} {_at(path)}: recursion is supported only through "
                "object schemas with 'properties'"
            )

        self._refs_in_progress.add(pointer)
        try:
            hint = pointer.rsplit("/", 1)[-1] or self._root_name
            name = _model_identifier(hint) if re.search(r"\w", hint) else "Ref"
            annotation = self._annotation(target, f"{path} -> {ref}", name, pointer)
        finally:
            self._refs_in_progress.discard(pointer)
        self._ref_annotations[pointer] = annotation
        return annotation

    def _union_annotation(self, node: Mapping[str, Any], path: str, name: str) -> Any:
        if "anyOf" in node and "oneOf" in node:
            raise ValueError(f"unsupported schema {_at(path)}: 'anyOf' and 'oneOf' in one schema")
        # NOTE: oneOf is validated like anyOf, so a value that matches several members passes.
        key = "anyOf" if "anyOf" in node else "oneOf"
        members = node[key]
        if not isinstance(members, list) or not members:
            raise ValueError(f"{key!r} {_at(path)} must be a non-empty list, got {members!r}")

        # Validation keywords next to anyOf apply to every member, because A and (B or C)
        # equals (A and B) or (A and C).
        shared = {
            k: v
            for k, v in node.items()
            if k not in _ANNOTATION_KEYWORDS and k not in {key, "nullable"}
        }
        annotations = []
        for index, member in enumerate(members):
            member_path = f"{path}.{key}[{index}]"
            if shared and isinstance(member, Mapping):
                member = self._merge(copy.deepcopy(shared), member, member_path)
            annotations.append(
                self._annotation(member, member_path, f"{name}Option{index + 1}", None)
            )
        return _union(annotations)

    def _enum_annotation(self, node: Mapping[str, Any], path: str) -> Any:
        if "enum" in node:
            members = node["enum"]
            if not isinstance(members, list) or not members:
                raise ValueError(f"'enum' {_at(path)} must be a non-empty list, got {members!r}")
            schema: _Schema = {"enum": _embeddable(members, path, "enum")}
        else:
            members = [node["const"]]
            schema = {"const": _embeddable(node["const"], path, "const")}
        if "type" in node:
            schema["type"] = copy.deepcopy(node["type"])
        return Annotated[
            Any, AfterValidator(_enum_validator(copy.deepcopy(members))), WithJsonSchema(schema)
        ]

    def _typed_annotation(
        self, node: Mapping[str, Any], path: str, name: str, pointer: str | None
    ) -> Any:
        types = node.get("type")
        if types is None:
            if "properties" in node:
                return self._object_annotation(node, path, name, pointer)
            return Any
        type_list = [types] if isinstance(types, str) else types
        if not isinstance(type_list, list) or not type_list:
            raise ValueError(
                f"invalid 'type' {types!r} {_at(path)}: expected one of {', '.join(_JSON_TYPES)} "
                "or a list of them"
            )
        annotations = [
            self._single_type_annotation(node, t, path, name, pointer) for t in type_list
        ]
        return _union(annotations)

    def _single_type_annotation(
        self, node: Mapping[str, Any], json_type: object, path: str, name: str, pointer: str | None
    ) -> Any:
        if json_type == "string":
            return self._constrained(str, self._string_constraints(node, path))
        if json_type == "integer":
            return self._constrained(int, self._number_constraints(node, path), _reject_bool)
        if json_type == "number":
            constraints = {"allow_inf_nan": False, **self._number_constraints(node, path)}
            return self._constrained(float, constraints, _reject_bool)
        if json_type == "boolean":
            return bool
        if json_type == "null":
            return None
        if json_type == "array":
            return self._array_annotation(node, path, name, pointer)
        if json_type == "object":
            return self._object_annotation(node, path, name, pointer)
        raise ValueError(
            f"unknown JSON Schema type {json_type!r} {_at(path)}; accepted types are "
            f"{', '.join(_JSON_TYPES)}"
        )

    @staticmethod
    def _constrained(
        base: Any, constraints: Mapping[str, Any], before: Callable[[Any], Any] | None = None
    ) -> Any:
        # Constraints go before the validator. Behind a BeforeValidator, pydantic 2.14 writes
        # them into the JSON Schema under their Python names (gt, le) instead of JSON Schema's.
        metadata: list[Any] = []
        if constraints:
            metadata.append(Field(**constraints))
        if before is not None:
            metadata.append(BeforeValidator(before))
        return _annotated(base, metadata)

    @staticmethod
    def _count(node: Mapping[str, Any], key: str, path: str) -> int | None:
        value = node.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{key!r} {_at(path)} must be a non-negative integer, got {value!r}")
        return value

    @staticmethod
    def _number(node: Mapping[str, Any], key: str, path: str) -> float | int | None:
        value = node.get(key)
        if value is None:
            return None
        if not _is_number(value):
            raise ValueError(f"{key!r} {_at(path)} must be a number, got {value!r}")
        return value

    def _string_constraints(self, node: Mapping[str, Any], path: str) -> dict[str, Any]:
        constraints: dict[str, Any] = {}
        min_length = self._count(node, "minLength", path)
        max_length = self._count(node, "maxLength", path)
        if min_length is not None:
            constraints["min_length"] = min_length
        if max_length is not None:
            constraints["max_length"] = max_length
        pattern = node.get("pattern")
        if pattern is not None:
            if not isinstance(pattern, str):
                raise ValueError(f"'pattern' {_at(path)} must be a string, got {pattern!r}")
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid 'pattern' {pattern!r} {_at(path)}: {exc}") from exc
            constraints["pattern"] = pattern
        return constraints

    def _number_constraints(self, node: Mapping[str, Any], path: str) -> dict[str, Any]:
        constraints: dict[str, Any] = {}
        minimum = self._number(node, "minimum", path)
        maximum = self._number(node, "maximum", path)
        exclusive_minimum = node.get("exclusiveMinimum")
        exclusive_maximum = node.get("exclusiveMaximum")

        # Draft 4 writes exclusive bounds as booleans that modify minimum and maximum.
        if isinstance(exclusive_minimum, bool):
            if exclusive_minimum and minimum is not None:
                constraints["gt"] = minimum
                minimum = None
        elif exclusive_minimum is not None:
            constraints["gt"] = self._number(node, "exclusiveMinimum", path)
        if isinstance(exclusive_maximum, bool):
            if exclusive_maximum and maximum is not None:
                constraints["lt"] = maximum
                maximum = None
        elif exclusive_maximum is not None:
            constraints["lt"] = self._number(node, "exclusiveMaximum", path)

        if minimum is not None:
            constraints["ge"] = minimum
        if maximum is not None:
            constraints["le"] = maximum
        multiple_of = self._number(node, "multipleOf", path)
        if multiple_of is not None:
            if multiple_of <= 0:
                raise ValueError(
                    f"'multipleOf' {_at(path)} must be greater than 0, got {multiple_of}"
                )
            constraints["multiple_of"] = multiple_of
        return constraints

    def _array_annotation(
        self, node: Mapping[str, Any], path: str, name: str, pointer: str | None
    ) -> Any:
        items = node.get("items", True)
        constraints: dict[str, Any] = {}
        if items is False and "prefixItems" not in node:
            constraints["max_length"] = 0
        if items is True or items is False or isinstance(items, list):
            # A list is draft 4's tuple form. It is kept in the schema but not validated.
            item_annotation: Any = Any
        else:
            item_pointer = None if pointer is None else f"{pointer}/items"
            item_annotation = self._annotation(items, f"{path}[]", f"{name}Item", item_pointer)

        min_items = self._count(node, "minItems", path)
        max_items = self._count(node, "maxItems", path)
        if min_items is not None:
            constraints["min_length"] = min_items
        if max_items is not None:
            constraints["max_length"] = max_items
        metadata: list[Any] = []
        if constraints:
            metadata.append(Field(**constraints))
        if node.get("uniqueItems") is True:
            metadata.append(AfterValidator(_check_unique_items))
        return _annotated(list[item_annotation], metadata)

    def _object_annotation(
        self, node: Mapping[str, Any], path: str, name: str, pointer: str | None
    ) -> Any:
        if self._is_model_node({**node, "type": "object"}):
            return self._model(node, path, name, pointer)

        additional = node.get("additionalProperties", True)
        if additional is True or additional == {}:
            value_annotation: Any = Any
        elif additional is False:  # pragma: no cover - such a node is a model
            raise AssertionError("an object without additional properties is a model")
        else:
            value_pointer = None if pointer is None else f"{pointer}/additionalProperties"
            value_annotation = self._annotation(
                additional, f"{path}.*", f"{name}Value", value_pointer
            )

        constraints: dict[str, Any] = {}
        min_properties = self._count(node, "minProperties", path)
        max_properties = self._count(node, "maxProperties", path)
        if min_properties is not None:
            constraints["min_length"] = min_properties
        if max_properties is not None:
            constraints["max_length"] = max_properties
        metadata = [Field(**constraints)] if constraints else []
        return _annotated(dict[str, value_annotation], metadata)

    # -- models ------------------------------------------------------------------------------

    def _unique_model_name(self, name: str) -> str:
        candidate = name
        counter = 2
        while candidate in self._used_model_names:
            candidate = f"{name}{counter}"
            counter += 1
        self._used_model_names.add(candidate)
        return candidate

    def _model(
        self, node: Mapping[str, Any], path: str, name: str, pointer: str | None
    ) -> type[BaseModel] | ForwardRef:
        if pointer is not None and pointer in self._model_names_by_pointer:
            existing = self._model_names_by_pointer[pointer]
            return self._models.get(existing, ForwardRef(existing))

        model_name = self._unique_model_name(name)
        if pointer is not None:
            self._model_names_by_pointer[pointer] = model_name

        properties = node.get("properties", {})
        if not isinstance(properties, Mapping):
            raise ValueError(f"'properties' {_at(path)} must be an object, got {properties!r}")
        _check_json_schema_object(node, path)
        required = list(node.get("required", []))
        missing = [key for key in required if key not in properties]
        if missing:
            raise ValueError(
                f"'required' {_at(path)} lists {missing}, which are not in 'properties' "
                f"({sorted(properties)}); add them to 'properties' or remove them from 'required'"
            )

        fields: dict[str, Any] = {}
        null_means_unset: set[str] = set()
        wire_keys = set(properties)
        used_names: set[str] = set()
        for key, field_schema in properties.items():
            python_name = _python_field_name(key, wire_keys, used_names)
            field_path = _join_path(path, key)
            field_pointer = None if pointer is None else f"{pointer}/properties/{_escape(key)}"
            fields[python_name] = self._field(
                key,
                field_schema,
                is_required=key in required,
                path=field_path,
                name=_child_model_name(model_name, key),
                pointer=field_pointer,
            )
            if key not in required and not self._accepts_null(field_schema):
                null_means_unset.update({key, python_name})

        additional = node.get("additionalProperties", True)
        config: dict[str, Any] = {
            "extra": "forbid" if additional is False else "allow",
            "populate_by_name": True,
            "protected_namespaces": (),
            "regex_engine": "python-re",
        }
        if isinstance(node.get("title"), str):
            config["title"] = node["title"]
        extras = self._extra_keywords(node, path, frozenset({"title"}))
        additional_adapter: TypeAdapter[Any] | None = None
        if isinstance(additional, Mapping) and additional:
            value_annotation = self._annotation(additional, f"{path}.*", f"{model_name}Value", None)
            additional_adapter = TypeAdapter(value_annotation)
            extras["additionalProperties"] = self._inline_refs(additional, path)
        if extras:
            config["json_schema_extra"] = extras
        property_count = (
            self._count(node, "minProperties", path),
            self._count(node, "maxProperties", path),
        )

        try:
            model = create_model(
                model_name,
                __base__=_FlowInputModel,
                __module__=__name__,
                __cls_kwargs__=config,
                **fields,
            )
        except (PydanticUserError, SchemaError, TypeError) as exc:
            raise ValueError(f"cannot build a model for the schema {_at(path)}: {exc}") from exc
        model.__lamatic_null_means_unset__ = frozenset(null_means_unset)
        model.__lamatic_additional__ = additional_adapter
        model.__lamatic_property_count__ = property_count
        self._models[model_name] = model
        return model

    def _field(
        self,
        key: str,
        schema: Any,
        *,
        is_required: bool,
        path: str,
        name: str,
        pointer: str | None,
    ) -> tuple[Any, Any]:
        field_keywords = frozenset({"description", "title", "examples", "default"})
        annotation = self._annotation(schema, path, name, pointer, skip=field_keywords)
        options: dict[str, Any] = {"alias": key}
        schema_extra: _Schema = {}
        if isinstance(schema, Mapping):
            for keyword_name in ("description", "title"):
                value = schema.get(keyword_name)
                if isinstance(value, str):
                    options[keyword_name] = value
                elif keyword_name in schema:
                    schema_extra[keyword_name] = _embeddable(value, path, keyword_name)
            if "examples" in schema:
                schema_extra["examples"] = _embeddable(schema["examples"], path, "examples")
            if "default" in schema:
                # The default is also written through json_schema_extra, because pydantic 2.14
                # leaves out a default that its type's serializer rejects, such as a dict
                # default of a model field. A required field keeps its default there only.
                schema_extra["default"] = _embeddable(schema["default"], path, "default")
                if not is_required:
                    options["default"] = copy.deepcopy(schema["default"])
        if not is_required and "default" not in options:
            options["default_factory"] = _absent
        if schema_extra:
            options["json_schema_extra"] = schema_extra
        return annotation, Field(**options)


def _embeddable(value: Any, path: str, keyword_name: str) -> Any:
    """Check and copy a JSON value that goes into the generated JSON Schema.

    pydantic 2.14 rewrites every ``$ref`` and ``$defs`` key in the JSON Schema it generates and
    fails on the ones it did not create, so the value must not contain them.
    """
    if isinstance(value, Mapping):
        for key in ("$ref", "$defs"):
            if key in value:
                raise ValueError(
                    f"unsupported value of {keyword_name!r} {_at(path)}: it contains an object "
                    f"with a {key!r} key, which cannot be copied into the generated JSON Schema"
                )
        for item in value.values():
            _embeddable(item, path, keyword_name)
    elif isinstance(value, list):
        for item in value:
            _embeddable(item, path, keyword_name)
    return copy.deepcopy(value)


def _annotated(base: Any, metadata: Sequence[Any]) -> Any:
    """Return ``Annotated[base, *metadata]``, or ``base`` when there is no metadata."""
    if not metadata:
        return base
    params = (base, *metadata)
    return Annotated[params]


def _union(members: Sequence[Any]) -> Any:
    """Return ``Union[*members]`` for a list of member types built at run time."""
    return typing.Union[tuple(members)]  # noqa: UP007


def _child_model_name(parent: str, key: str) -> str:
    words = [word for word in re.split(r"[\W_]+", key) if word]
    suffix = "".join(word[:1].upper() + word[1:] for word in words) or "Field"
    return parent + suffix


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")
