"""Payload validation against a flow's API trigger schema.

Lamatic's API Request trigger stores `advance_schema`, a JSON string mapping input names to
types. The short form accepts `string`, `int`, `float`, `number`, `bool`, `boolean`, `object`,
`array`, `[T]` (a list of T), a nested object of the same form and a one-element list holding
an object (a list of such objects). A `?` suffix marks an optional field; every other field is
required. Some flows store JSON Schema instead (`{"type": "object", "properties": ...,
"required": [...]}`), which is recognised by a top-level `"type": "object"` next to a
`"properties"` object.

Keys not named in the schema are allowed, as a trigger passes them through.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["SchemaViolation", "TriggerSchema", "compile_trigger_schema", "describe_value"]

_Kind = Literal["string", "int", "number", "bool", "object", "array"]

_SHORT_FORM_KINDS: dict[str, _Kind] = {
    "string": "string",
    "int": "int",
    "integer": "int",
    "float": "number",
    "number": "number",
    "bool": "bool",
    "boolean": "bool",
    "object": "object",
    "array": "array",
}

_KIND_NAMES: dict[_Kind, str] = {
    "string": "a string",
    "int": "an int",
    "number": "a number",
    "bool": "a boolean",
    "object": "an object",
    "array": "an array",
}


@dataclass(frozen=True)
class SchemaViolation:
    """The first place where a payload breaks the trigger schema.

    Attributes:
        field: Path of the offending value, such as `days`, `budget.total` or `stops[0].city`;
            empty for the payload itself.
        message: A sentence naming the field, the expected type and what was sent.
    """

    field: str
    message: str


def describe_value(value: Any) -> str:
    """Describe a JSON value for messages, such as `a string ("x")` or `an array`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({json.dumps(value)})"
    if isinstance(value, int):
        return f"an int ({value})"
    if isinstance(value, float):
        return f"a number ({value})"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"a string ({json.dumps(shown)})"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _has_kind(value: Any, kind: _Kind) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        if isinstance(value, bool):
            return False
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "object":
        return isinstance(value, dict)
    return isinstance(value, list)


def _child(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _field_label(path: str) -> str:
    return f"field '{path}'" if path else "the payload"


class _Node:
    def check(self, value: Any, path: str) -> Iterator[SchemaViolation]:
        raise NotImplementedError


@dataclass(frozen=True)
class _ShortScalar(_Node):
    kind: _Kind

    def check(self, value: Any, path: str) -> Iterator[SchemaViolation]:
        if not _has_kind(value, self.kind):
            expected = _KIND_NAMES[self.kind]
            yield SchemaViolation(
                path, f"{_field_label(path)} must be {expected}, got {describe_value(value)}"
            )


@dataclass(frozen=True)
class _ShortList(_Node):
    item: _Node

    def check(self, value: Any, path: str) -> Iterator[SchemaViolation]:
        if not isinstance(value, list):
            yield SchemaViolation(
                path, f"{_field_label(path)} must be an array, got {describe_value(value)}"
            )
            return
        for index, item in enumerate(value):
            yield from self.item.check(item, _child(path, index))


@dataclass(frozen=True)
class _ShortObject(_Node):
    fields: tuple[tuple[str, _Node, bool], ...]

    def check(self, value: Any, path: str) -> Iterator[SchemaViolation]:
        if not isinstance(value, dict):
            yield SchemaViolation(
                path, f"{_field_label(path)} must be an object, got {describe_value(value)}"
            )
            return
        for name, node, required in self.fields:
            field_path = _child(path, name)
            if name not in value:
                if required:
                    yield SchemaViolation(field_path, f"field '{field_path}' is required")
                continue
            item = value[name]
            if item is None:
                if required:
                    yield SchemaViolation(field_path, f"field '{field_path}' must not be null")
                continue
            yield from node.check(item, field_path)


def _compile_short_type(spec: Any, path: str) -> tuple[_Node, bool]:
    """Compile one short-form type into a node and whether the field is required."""
    if isinstance(spec, dict):
        return _compile_short_object(spec, path), True
    if isinstance(spec, list):
        if len(spec) != 1:
            raise ValueError(
                f"Invalid trigger schema at '{path}': a list type must contain exactly one item "
                f"type, got {len(spec)}"
            )
        item, _ = _compile_short_type(spec[0], f"{path}[]")
        return _ShortList(item), True
    if not isinstance(spec, str):
        raise ValueError(
            f"Invalid trigger schema at '{path}': expected a type name, an object or a list, "
            f"got {describe_value(spec)}"
        )

    text = spec.strip()
    required = not text.endswith("?")
    text = text.rstrip("?").strip()
    if text.startswith("[") and text.endswith("]"):
        item, _ = _compile_short_type(text[1:-1], f"{path}[]")
        return _ShortList(item), required
    kind = _SHORT_FORM_KINDS.get(text.lower())
    if kind is None:
        known = ", ".join(sorted(_SHORT_FORM_KINDS))
        raise ValueError(
            f"Invalid trigger schema at '{path}': unknown type {spec!r}; use one of {known}, "
            "'[type]', a nested object or a one-element list, optionally with a '?' suffix"
        )
    return _ShortScalar(kind), required


def _compile_short_object(spec: Mapping[str, Any], path: str) -> _ShortObject:
    fields = []
    for name, field_spec in spec.items():
        node, required = _compile_short_type(field_spec, _child(path, name))
        fields.append((name, node, required))
    return _ShortObject(tuple(fields))


_JSON_SCHEMA_TYPES: dict[str, str] = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "object": "an object",
    "array": "an array",
    "null": "null",
}


def _matches_json_type(value: Any, type_name: str) -> bool:
    if type_name == "null":
        return value is None
    if type_name == "integer":
        return _has_kind(value, "int")
    kind: dict[str, _Kind] = {
        "string": "string",
        "number": "number",
        "boolean": "bool",
        "object": "object",
        "array": "array",
    }
    return _has_kind(value, kind[type_name])


@dataclass(frozen=True)
class _JsonSchemaNode(_Node):
    """The subset of JSON Schema that flow exports use.

    NOTE: Only type, enum, const, properties, required, additionalProperties, items,
    minLength, maxLength, minimum, maximum, minItems and maxItems are checked. Other keywords,
    such as format, pattern, oneOf and $ref, are accepted and ignored.
    """

    schema: Mapping[str, Any]

    def check(self, value: Any, path: str) -> Iterator[SchemaViolation]:
        schema = self.schema
        label = _field_label(path)

        types = schema.get("type")
        if types is not None:
            names = [types] if isinstance(types, str) else list(types)
            if not any(_matches_json_type(value, name) for name in names):
                wanted = " or ".join(_JSON_SCHEMA_TYPES[name] for name in names)
                yield SchemaViolation(
                    path, f"{label} must be {wanted}, got {describe_value(value)}"
                )
                return
        if "enum" in schema and value not in schema["enum"]:
            allowed = ", ".join(json.dumps(item) for item in schema["enum"])
            yield SchemaViolation(
                path, f"{label} must be one of {allowed}, got {describe_value(value)}"
            )
            return
        if "const" in schema and value != schema["const"]:
            yield SchemaViolation(
                path, f"{label} must be {json.dumps(schema['const'])}, got {describe_value(value)}"
            )
            return

        if isinstance(value, str):
            yield from self._check_bounds(len(value), path, "minLength", "maxLength", "characters")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            yield from self._check_bounds(value, path, "minimum", "maximum", "")
        elif isinstance(value, list):
            yield from self._check_bounds(len(value), path, "minItems", "maxItems", "items")
            items = schema.get("items")
            if isinstance(items, dict):
                for index, item in enumerate(value):
                    yield from _JsonSchemaNode(items).check(item, _child(path, index))
        elif isinstance(value, dict):
            yield from self._check_object(value, path)

    def _check_bounds(
        self, measure: float, path: str, low_key: str, high_key: str, unit: str
    ) -> Iterator[SchemaViolation]:
        label = _field_label(path)
        verb, suffix = ("must have", f" {unit}") if unit else ("must be", "")
        low = self.schema.get(low_key)
        high = self.schema.get(high_key)
        if isinstance(low, (int, float)) and measure < low:
            yield SchemaViolation(path, f"{label} {verb} at least {low}{suffix}, got {measure}")
        elif isinstance(high, (int, float)) and measure > high:
            yield SchemaViolation(path, f"{label} {verb} at most {high}{suffix}, got {measure}")

    def _check_object(self, value: Mapping[str, Any], path: str) -> Iterator[SchemaViolation]:
        properties = self.schema.get("properties") or {}
        for name in self.schema.get("required") or ():
            if name not in value:
                field_path = _child(path, name)
                yield SchemaViolation(field_path, f"field '{field_path}' is required")
        extra = self.schema.get("additionalProperties", True)
        for name, item in value.items():
            field_path = _child(path, name)
            if name in properties:
                yield from _JsonSchemaNode(properties[name]).check(item, field_path)
            elif extra is False:
                yield SchemaViolation(field_path, f"field '{field_path}' is not allowed")
            elif isinstance(extra, dict):
                yield from _JsonSchemaNode(extra).check(item, field_path)


def _validate_json_schema_definition(schema: Mapping[str, Any], path: str) -> None:
    where = path or "$"
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else types
        if not isinstance(names, list) or not all(
            isinstance(name, str) and name in _JSON_SCHEMA_TYPES for name in names
        ):
            known = ", ".join(_JSON_SCHEMA_TYPES)
            raise ValueError(
                f"Invalid JSON Schema at '{where}': type must be one of {known} or a list "
                f"of them, got {types!r}"
            )

    properties = schema.get("properties", {})
    if not isinstance(properties, dict):
        raise ValueError(f"Invalid JSON Schema at '{where}': properties must be an object")
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(name, str) for name in required):
        raise ValueError(
            f"Invalid JSON Schema at '{where}': required must be a list of field names"
        )
    if "enum" in schema and not isinstance(schema["enum"], list):
        raise ValueError(f"Invalid JSON Schema at '{where}': enum must be a list")

    for name, child in properties.items():
        if not isinstance(child, dict):
            raise ValueError(
                f"Invalid JSON Schema at '{_child(path, name)}': a property schema must be an "
                "object"
            )
        _validate_json_schema_definition(child, _child(path, name))
    items = schema.get("items")
    if isinstance(items, dict):
        _validate_json_schema_definition(items, f"{path}[]")
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        _validate_json_schema_definition(extra, f"{path}.*")


@dataclass(frozen=True)
class TriggerSchema:
    """A compiled trigger schema.

    Attributes:
        form: `"short"` for Lamatic's `advance_schema` mapping, `"json_schema"` otherwise.
        source: The decoded schema object.
    """

    form: Literal["short", "json_schema"]
    source: Mapping[str, Any]
    _root: _Node

    def validate(self, payload: Any) -> SchemaViolation | None:
        """Return the first violation in `payload`, or None when it matches."""
        return next(self._root.check(payload, ""), None)


def _is_json_schema(schema: Mapping[str, Any]) -> bool:
    return schema.get("type") == "object" and isinstance(schema.get("properties"), dict)


def compile_trigger_schema(schema: str | Mapping[str, Any] | None) -> TriggerSchema | None:
    """Compile a trigger schema, given as exported JSON text or as an already decoded object.

    Args:
        schema: `advance_schema` text, its decoded mapping, or a JSON Schema object. None, an
            empty string and `{}` mean the flow takes any payload object.

    Returns:
        The compiled schema, or None when there is nothing to check.

    Raises:
        ValueError: The text is not JSON, is not an object, or names an unknown type; the
            message gives the path of the bad entry.
    """
    if schema is None:
        return None
    if isinstance(schema, str):
        if not schema.strip():
            return None
        try:
            decoded = json.loads(schema)
        except json.JSONDecodeError as error:
            raise ValueError(f"Invalid trigger schema: not valid JSON ({error})") from error
    else:
        decoded = schema
    if not isinstance(decoded, Mapping):
        raise ValueError(
            f"Invalid trigger schema: expected a JSON object mapping input names to types, "
            f"got {describe_value(decoded)}"
        )
    if not decoded:
        return None
    source = dict(decoded)
    if _is_json_schema(source):
        _validate_json_schema_definition(source, "")
        return TriggerSchema("json_schema", source, _JsonSchemaNode(source))
    return TriggerSchema("short", source, _compile_short_object(source, ""))
