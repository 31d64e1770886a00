"""Property tests: response classification never raises anything but a ``LamaticError``.

``classify_response`` parses bodies that come from outside (a Lamatic server, a proxy, a CDN),
so any status code with any bytes must end in a returned value or a typed error.
"""

from __future__ import annotations

import json
import pickle
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from langchain_lamatic.errors import (
    LamaticError,
    LamaticRateLimitError,
    LamaticResponseError,
    classify_response,
    parse_retry_after,
)

OPERATIONS = ("executeWorkflow", "executeAgent", "checkStatus", "submitFeedback")
# Not shaped like a Lamatic key or a JWT, so only exact matching can redact it.
SECRET = "zq7SENTINELfuzzkey0000abcdefgh"
SECRET_START = SECRET[:5]

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=25,
)
status_codes = st.integers(min_value=100, max_value=599) | st.integers(-1, 1000)
operations = st.sampled_from(OPERATIONS)

graphql_error_items = st.fixed_dictionaries(
    {},
    optional={
        "message": json_values,
        "extensions": st.fixed_dictionaries(
            {},
            optional={
                "code": st.sampled_from(
                    ["UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND", "RATE_LIMITED", "bad_user_input"]
                )
                | json_values
            },
        )
        | json_values,
        "path": json_values,
    },
)


@st.composite
def graphql_shaped_documents(draw: st.DrawFn) -> Any:
    """Documents shaped like GraphQL responses, with every part possibly of the wrong type."""
    operation = draw(operations)
    document: dict[str, Any] = {}
    if draw(st.booleans()):
        document["data"] = draw(
            st.none()
            | json_values
            | st.fixed_dictionaries({operation: json_values | st.none()})
            | st.fixed_dictionaries(
                {
                    operation: st.fixed_dictionaries(
                        {"status": json_values, "result": json_values},
                        optional={"requestId": json_values, "message": json_values},
                    )
                }
            )
        )
    if draw(st.booleans()):
        document["errors"] = draw(
            st.lists(graphql_error_items | json_values, max_size=3) | json_values
        )
    return document


def encode(document: Any) -> bytes:
    return json.dumps(document).encode()


def classify(status: int, body: bytes, operation: str, **kwargs: Any) -> Any:
    return classify_response(
        status, body, operation=operation, flow_id="fuzz-flow", secrets=(SECRET,), **kwargs
    )


def raised_error(status: int, body: bytes, operation: str, **kwargs: Any) -> LamaticError | None:
    """Classify a response; return the typed error, or None when it returned a value.

    Any exception that is not a ``LamaticError`` propagates and fails the test.
    """
    try:
        classify(status, body, operation, **kwargs)
    except LamaticError as error:
        return error
    return None


def assert_only_typed_errors(status: int, body: bytes, operation: str, **kwargs: Any) -> None:
    error = raised_error(status, body, operation, **kwargs)
    if error is None:
        return
    # The error must also be usable: printable, and picklable across processes.
    assert str(error)
    assert repr(error)
    assert type(pickle.loads(pickle.dumps(error))) is type(error)  # noqa: S301


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(status=status_codes, body=st.binary(max_size=2000), operation=operations)
@example(status=200, body=b"", operation="executeWorkflow")
@example(status=200, body=b"\xff\xfe\x00garbage", operation="executeWorkflow")
@example(status=200, body=b"[" * 50_000 + b"]" * 50_000, operation="executeWorkflow")
@example(status=502, body=b"<html><body>Bad gateway</body></html>", operation="executeAgent")
def test_arbitrary_bytes_raise_only_lamatic_errors(
    status: int, body: bytes, operation: str
) -> None:
    assert_only_typed_errors(status, body, operation)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(status=status_codes, document=json_values, operation=operations)
def test_arbitrary_json_raises_only_lamatic_errors(
    status: int, document: Any, operation: str
) -> None:
    assert_only_typed_errors(status, encode(document), operation)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(status=status_codes, document=graphql_shaped_documents(), operation=operations)
def test_graphql_shaped_json_raises_only_lamatic_errors(
    status: int, document: Any, operation: str
) -> None:
    assert_only_typed_errors(status, encode(document), operation)


@settings(max_examples=200)
@given(
    status=st.sampled_from([429, 503, 200]),
    retry_after=st.text(max_size=40)
    | st.sampled_from(["0", "-5", "1e400", "nan", "inf", "Wed, 21 Oct 2015 07:28:00 GMT"]),
    body=st.binary(max_size=200),
)
def test_any_retry_after_header_raises_only_lamatic_errors(
    status: int, retry_after: str, body: bytes
) -> None:
    assert_only_typed_errors(status, body, "executeWorkflow", headers={"retry-after": retry_after})


@settings(max_examples=150)
@given(value=st.text(max_size=60))
@example(value="Fri, 31 Dec 9999 23:59:59 GMT")
@example(value="Mon, 01 Jan 0001 00:00:00 GMT")
@example(value="1e400")
def test_retry_after_parses_to_finite_wait(value: str) -> None:
    seconds = parse_retry_after(value)
    if seconds is not None:
        assert seconds >= 0
        assert seconds != float("inf")


@settings(max_examples=150)
@given(
    status=st.integers(min_value=200, max_value=299),
    operation=operations,
    value=json_values.filter(lambda value: value is not None),
    extra=st.dictionaries(st.sampled_from(["extensions", "meta"]), json_values, max_size=2),
    empty_errors=st.booleans(),
)
def test_well_formed_success_always_returns_its_value(
    status: int, operation: str, value: Any, extra: dict[str, Any], empty_errors: bool
) -> None:
    document: dict[str, Any] = {"data": {operation: value}, **extra}
    if empty_errors:
        document["errors"] = []

    assert classify(status, encode(document), operation) == value


@settings(max_examples=200)
@given(
    status=st.integers(min_value=200, max_value=299),
    operation=operations,
    document=graphql_shaped_documents(),
)
def test_success_without_data_raises(status: int, operation: str, document: dict[str, Any]) -> None:
    data = document.get("data")
    has_value = isinstance(data, dict) and data.get(operation) is not None
    errors = document.get("errors")
    has_errors = isinstance(errors, list) and len(errors) > 0
    if has_value or has_errors:
        return

    with pytest.raises(LamaticResponseError):
        classify(status, encode(document), operation)


@settings(max_examples=200)
@given(body=st.binary(max_size=300), status=st.integers(min_value=400, max_value=599))
def test_error_status_never_returns(body: bytes, status: int) -> None:
    with pytest.raises(LamaticError) as caught:
        classify(status, body, "executeWorkflow")

    assert caught.value.status_code == status


padding = (
    st.text(max_size=100)
    | st.integers(min_value=0, max_value=800).map(lambda count: " " * count)
    | st.integers(min_value=0, max_value=200).map(lambda count: "ab \n" * count)
)


@settings(max_examples=200)
@given(prefix=padding, suffix=st.text(max_size=50), status=status_codes, as_json=st.booleans())
@example(prefix=" " * 590, suffix="", status=502, as_json=False)
@example(prefix="x" * 590, suffix="", status=200, as_json=False)
def test_secret_in_body_never_reaches_the_error(
    prefix: str, suffix: str, status: int, as_json: bool
) -> None:
    assume(SECRET_START not in prefix + suffix)
    text = f"{prefix}{SECRET}{suffix}"
    body = json.dumps({"errors": [{"message": text}]}).encode() if as_json else text.encode()

    error = raised_error(status, body, "executeWorkflow")

    assert error is not None
    # Not even the start of the secret may survive, wherever the excerpt is cut.
    assert SECRET_START not in str(error)
    assert SECRET_START not in repr(error)
    assert SECRET_START not in (error.body_excerpt or "")


def test_rate_limit_error_keeps_retry_after_through_pickle() -> None:
    with pytest.raises(LamaticRateLimitError) as caught:
        classify(429, b"", "executeWorkflow", headers={"retry-after": "7"})

    restored = pickle.loads(pickle.dumps(caught.value))  # noqa: S301
    assert restored.retry_after == 7.0
