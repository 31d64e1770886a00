"""The error table, the error classes, redaction and ``Retry-After`` parsing."""

from __future__ import annotations

import datetime as dt
import json
import pickle
from dataclasses import dataclass, field
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any

import pytest
from langchain_core.runnables import RunnableLambda

from langchain_lamatic import (
    RETRYABLE_ERRORS,
    LamaticAuthenticationError,
    LamaticBadRequestError,
    LamaticConnectionError,
    LamaticError,
    LamaticExecutionError,
    LamaticNotFoundError,
    LamaticPermissionError,
    LamaticRateLimitError,
    LamaticResponseError,
    LamaticServerError,
    LamaticTimeoutError,
)
from langchain_lamatic.errors import (
    BODY_EXCERPT_CHARS,
    body_excerpt,
    classify_graphql_errors,
    classify_response,
    parse_retry_after,
    redact,
)

if TYPE_CHECKING:
    from tests.unit.conftest import MockLamatic

LEAKED_KEY = "lt-" + "leaked0key0in0body0123"
LEAKED_JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJwcm9qZWN0X2lkIjoicHJvamVjdC0xMjMifQ."
    "c2lnbmF0dXJlLXRoYXQtbG9va3MtcmVhbA"
)
LEAKED_BEARER = "opaque-bearer-value-987"


def _errors(message: str, code: str | None = None) -> bytes:
    error: dict[str, Any] = {"message": message}
    if code is not None:
        error["extensions"] = {"code": code}
    return json.dumps({"errors": [error], "data": None}).encode()


def _execution(status: Any, result: Any = None, **extra: Any) -> bytes:
    data = {"status": status, "result": result, **extra}
    return json.dumps({"data": {"executeWorkflow": data}}).encode()


# Replaced by an HTTP date two minutes from the moment the test runs, not from collection.
IN_TWO_MINUTES = "<http-date in two minutes>"


def _in_two_minutes() -> str:
    when = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=120)
    return format_datetime(when, usegmt=True)


HTML_PAGE = (
    b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
    b"<body><h1>Bad Gateway</h1><p>cloudflare</p></body></html>"
)


@dataclass
class Row:
    """One row of the error table: what the server sends, and the error it must become."""

    status: int
    body: bytes
    error_class: type[LamaticError]
    headers: dict[str, str] = field(default_factory=dict)
    expected_text: str = ""
    request_id: str | None = None
    retry_after: tuple[float, float] | None = None


ERROR_TABLE: dict[str, Row] = {
    "http 400": Row(
        400,
        _errors("Syntax Error: Expected Name, found <EOF>.", "GRAPHQL_PARSE_FAILED"),
        LamaticBadRequestError,
        expected_text="Syntax Error",
    ),
    "http 401": Row(
        401,
        _errors(f"Invalid API key {LEAKED_KEY}"),
        LamaticAuthenticationError,
        expected_text="401",
    ),
    "http 403": Row(
        403,
        _errors("Forbidden: no access to project"),
        LamaticPermissionError,
        expected_text="Forbidden",
    ),
    "http 404 text body": Row(404, b"Not Found", LamaticNotFoundError, expected_text="not JSON"),
    "http 422": Row(
        422,
        _errors("Input did not match the trigger schema"),
        LamaticBadRequestError,
        expected_text="trigger schema",
    ),
    "http 418 other 4xx": Row(418, b"", LamaticBadRequestError, expected_text="empty"),
    "http 429 retry-after seconds": Row(
        429,
        _errors("Too many requests"),
        LamaticRateLimitError,
        headers={"Retry-After": "12"},
        expected_text="HTTP 429",
        retry_after=(12.0, 12.0),
    ),
    "http 429 retry-after date": Row(
        429,
        b"",
        LamaticRateLimitError,
        headers={"Retry-After": IN_TWO_MINUTES},
        retry_after=(100.0, 121.0),
    ),
    "http 429 no retry-after": Row(429, b"", LamaticRateLimitError, expected_text="HTTP 429"),
    "http 500 json": Row(
        500, _errors("Internal server error"), LamaticServerError, expected_text="500"
    ),
    "http 500 html with bearer": Row(
        500,
        b"<html><pre>Authorization: Bearer " + LEAKED_BEARER.encode() + b"</pre></html>",
        LamaticServerError,
        expected_text="not JSON",
    ),
    "http 502 html page": Row(502, HTML_PAGE, LamaticServerError, expected_text="HTTP 502"),
    "http 502 retry-after seconds": Row(
        502,
        HTML_PAGE,
        LamaticServerError,
        headers={"Retry-After": "5"},
        expected_text="the server asked to wait 5 s",
        retry_after=(5.0, 5.0),
    ),
    "http 503 empty body": Row(503, b"", LamaticServerError, expected_text="empty"),
    "http 503 retry-after seconds": Row(
        503,
        _errors("Service unavailable"),
        LamaticServerError,
        headers={"Retry-After": "12"},
        expected_text="the server asked to wait 12 s",
        retry_after=(12.0, 12.0),
    ),
    "http 503 retry-after date": Row(
        503,
        b"",
        LamaticServerError,
        headers={"Retry-After": IN_TWO_MINUTES},
        expected_text="the server asked to wait",
        retry_after=(100.0, 121.0),
    ),
    "http 503 retry-after unparsable": Row(
        503,
        b"",
        LamaticServerError,
        headers={"Retry-After": "soon"},
        expected_text="empty",
    ),
    "http 504": Row(504, b"upstream request timeout", LamaticServerError, expected_text="HTTP 504"),
    "http 504 retry-after seconds": Row(
        504,
        b"upstream request timeout",
        LamaticServerError,
        headers={"Retry-After": "3"},
        expected_text="the server asked to wait 3 s",
        retry_after=(3.0, 3.0),
    ),
    "http 500 retry-after seconds": Row(
        500,
        _errors("Internal server error"),
        LamaticServerError,
        headers={"Retry-After": "8"},
        expected_text="the server asked to wait 8 s",
        retry_after=(8.0, 8.0),
    ),
    "http 302 redirect": Row(
        302,
        b"",
        LamaticResponseError,
        headers={"Location": "https://elsewhere.example/graphql"},
        expected_text="HTTP 302",
    ),
    "200 empty body": Row(200, b"", LamaticResponseError, expected_text="empty body"),
    "200 html": Row(200, HTML_PAGE, LamaticResponseError, expected_text="not valid JSON"),
    "200 json array": Row(200, b"[1, 2]", LamaticResponseError, expected_text="not an object"),
    "200 data null": Row(
        200, b'{"data": null}', LamaticResponseError, expected_text="no data.executeWorkflow"
    ),
    "200 operation null": Row(
        200, b'{"data": {"executeWorkflow": null}}', LamaticResponseError, expected_text="no data"
    ),
    "200 operation string": Row(
        200, b'{"data": {"executeWorkflow": "ok"}}', LamaticResponseError, expected_text="str"
    ),
    "200 code UNAUTHENTICATED": Row(
        200, _errors("nope", "UNAUTHENTICATED"), LamaticAuthenticationError
    ),
    "200 code FORBIDDEN": Row(200, _errors("nope", "FORBIDDEN"), LamaticPermissionError),
    "200 code TOKEN_EXPIRED": Row(200, _errors("nope", "token_expired"), LamaticPermissionError),
    "200 code NOT_FOUND": Row(200, _errors("nope", "NOT_FOUND"), LamaticNotFoundError),
    "200 code BAD_USER_INPUT": Row(200, _errors("nope", "BAD_USER_INPUT"), LamaticBadRequestError),
    "200 code GRAPHQL_VALIDATION_FAILED": Row(
        200, _errors("nope", "GRAPHQL_VALIDATION_FAILED"), LamaticBadRequestError
    ),
    "200 code RATE_LIMITED": Row(200, _errors("nope", "RATE_LIMITED"), LamaticRateLimitError),
    "200 code INTERNAL_SERVER_ERROR": Row(
        200, _errors("nope", "INTERNAL_SERVER_ERROR"), LamaticServerError
    ),
    "200 message invalid api key": Row(
        200, _errors("Invalid API key"), LamaticAuthenticationError, expected_text="Invalid API key"
    ),
    "200 message flow not found": Row(
        200, _errors("Flow not found"), LamaticNotFoundError, expected_text="Flow not found"
    ),
    "200 message cannot query field": Row(
        200,
        _errors('Cannot query field "foo" on type "Query".'),
        LamaticBadRequestError,
        expected_text="Cannot query field",
    ),
    "200 message invalid variable": Row(
        200,
        _errors('Variable "$payload" got invalid value "x"; Expected type "JSON".'),
        LamaticBadRequestError,
        expected_text="$payload",
    ),
    "200 message token expired": Row(
        200, _errors("token expired"), LamaticPermissionError, expected_text="token expired"
    ),
    "200 message rate limit": Row(
        200, _errors("rate limit exceeded"), LamaticRateLimitError, expected_text="rate limit"
    ),
    "200 message not authorized": Row(
        200, _errors("Not authorized to access this project"), LamaticPermissionError
    ),
    "200 message jwt malformed": Row(200, _errors("jwt malformed"), LamaticAuthenticationError),
    "200 message quoted id is not a reason": Row(
        200,
        _errors("Flow 'token-expired-digest' not found"),
        LamaticNotFoundError,
        expected_text="token-expired-digest",
    ),
    "200 message not deployed": Row(
        200, _errors("Workflow is not deployed"), LamaticNotFoundError, expected_text="not deployed"
    ),
    "200 unknown message": Row(
        200,
        _errors("Something odd happened"),
        LamaticBadRequestError,
        expected_text="Something odd",
    ),
    "200 code wins over message": Row(
        200, _errors("Flow not found", "UNAUTHENTICATED"), LamaticAuthenticationError
    ),
    "200 status error": Row(
        200,
        _execution("error", {"errorMsg": "LLM node failed: quota"}, requestId="req-err-1"),
        LamaticExecutionError,
        expected_text="LLM node failed: quota",
        request_id="req-err-1",
    ),
    "200 status failed with message": Row(
        200,
        _execution("failed", None, message="Code node threw TypeError", requestId="req-f-2"),
        LamaticExecutionError,
        expected_text="Code node threw TypeError",
        request_id="req-f-2",
    ),
    "200 status FAILED upper case": Row(
        200,
        _execution("FAILED", "plain text reason"),
        LamaticExecutionError,
        expected_text="plain text",
    ),
    "200 status of wrong type": Row(
        200, _execution(42, {}), LamaticResponseError, expected_text="status of type int"
    ),
    "200 status missing": Row(
        200,
        b'{"data": {"executeWorkflow": {"result": {}}}}',
        LamaticResponseError,
        expected_text="NoneType",
    ),
}


@pytest.mark.parametrize("name", list(ERROR_TABLE))
def test_error_table(lamatic: MockLamatic, name: str) -> None:
    row = ERROR_TABLE[name]
    headers = {
        key: _in_two_minutes() if value == IN_TWO_MINUTES else value
        for key, value in row.headers.items()
    }
    lamatic.default = lamatic.reply(row.status, content=row.body, headers=headers)
    client = lamatic.client(max_retries=0)

    with pytest.raises(LamaticError) as caught:
        client.execute_flow("flow-table", {"prompt": "hi"})
    error = caught.value

    assert type(error) is row.error_class
    assert error.status_code == row.status
    assert error.operation == "executeWorkflow"
    assert error.flow_id == "flow-table"
    assert error.agent_id is None
    assert error.request_id == row.request_id
    assert error.attempts == 1
    assert row.expected_text in str(error)
    assert "flow-table" in str(error)
    assert error.hint in str(error)
    assert len(lamatic.requests) == 1
    if row.retry_after is not None:
        assert isinstance(error, (LamaticRateLimitError, LamaticServerError))
        assert error.retry_after is not None
        assert row.retry_after[0] <= error.retry_after <= row.retry_after[1]
    elif isinstance(error, (LamaticRateLimitError, LamaticServerError)):
        assert error.retry_after is None
    if row.body and error.body_excerpt is not None:
        assert len(error.body_excerpt) <= BODY_EXCERPT_CHARS + 3
    for secret in (LEAKED_KEY, LEAKED_JWT, LEAKED_BEARER, lamatic.api_key):
        assert secret not in str(error)
        assert secret not in repr(error)
        assert secret not in (error.body_excerpt or "")


def test_error_table_covers_every_error_class() -> None:
    covered = {row.error_class for row in ERROR_TABLE.values()}
    expected = {
        LamaticBadRequestError,
        LamaticAuthenticationError,
        LamaticPermissionError,
        LamaticNotFoundError,
        LamaticRateLimitError,
        LamaticServerError,
        LamaticResponseError,
        LamaticExecutionError,
    }
    assert covered == expected


def test_http_error_excerpt_shows_the_body_redacted(lamatic: MockLamatic) -> None:
    lamatic.default = lamatic.reply(401, content=_errors(f"Invalid API key {LEAKED_KEY}"))
    with pytest.raises(LamaticAuthenticationError) as caught:
        lamatic.client(max_retries=0).execute_flow("flow-1", {})
    excerpt = caught.value.body_excerpt or ""
    assert "Invalid API key [REDACTED]" in excerpt
    assert LEAKED_KEY not in excerpt


def test_agent_errors_carry_the_agent_id(lamatic: MockLamatic) -> None:
    lamatic.default = lamatic.reply(404, content=_errors("Agent not found"))
    with pytest.raises(LamaticNotFoundError) as caught:
        lamatic.client(max_retries=0).execute_agent("agent-9", {})
    assert caught.value.agent_id == "agent-9"
    assert caught.value.flow_id is None
    assert caught.value.operation == "executeAgent"
    assert "agent 'agent-9'" in str(caught.value)


def test_classify_response_returns_operation_data() -> None:
    body = b'{"data": {"checkStatus": {"status": "in-progress"}}}'
    data = classify_response(200, body, operation="checkStatus")
    assert data == {"status": "in-progress"}


def test_classify_response_redacts_given_secrets() -> None:
    with pytest.raises(LamaticAuthenticationError) as caught:
        classify_response(
            401, b"denied for custom-secret-value", operation="x", secrets=("custom-secret-value",)
        )
    assert "custom-secret-value" not in (caught.value.body_excerpt or "")


def test_empty_graphql_errors_are_response_error() -> None:
    error = classify_graphql_errors([], status_code=200, operation="executeWorkflow")
    assert type(error) is LamaticResponseError


def test_classify_graphql_errors_with_non_object_entry() -> None:
    error = classify_graphql_errors(["weird"], status_code=200, operation="executeWorkflow")
    assert type(error) is LamaticResponseError
    assert "weird" in str(error)


def test_classify_graphql_errors_joins_first_messages() -> None:
    errors = [{"message": f"problem {n}"} for n in range(5)]
    error = classify_graphql_errors(errors, status_code=200, operation="op", flow_id="f")
    assert "problem 0; problem 1; problem 2" in str(error)
    assert "problem 3" not in str(error)


def test_classify_graphql_errors_redacts_message() -> None:
    errors = [{"message": f"Invalid API key {LEAKED_KEY}"}]
    error = classify_graphql_errors(errors, status_code=200, operation="op")
    assert LEAKED_KEY not in str(error)


# --- Error classes --------------------------------------------------------------------------

ALL_ERROR_CLASSES = [
    LamaticError,
    LamaticConnectionError,
    LamaticTimeoutError,
    LamaticBadRequestError,
    LamaticAuthenticationError,
    LamaticPermissionError,
    LamaticNotFoundError,
    LamaticRateLimitError,
    LamaticServerError,
    LamaticResponseError,
    LamaticExecutionError,
]

FIELDS: dict[str, Any] = {
    "status_code": 503,
    "request_id": "req-abc",
    "operation": "executeWorkflow",
    "flow_id": "flow-1",
    "agent_id": "agent-1",
    "body_excerpt": "<html>Service Unavailable</html>",
    "attempts": 3,
}


@pytest.mark.parametrize("error_class", ALL_ERROR_CLASSES)
def test_error_pickles_with_all_attributes(error_class: type[LamaticError]) -> None:
    extra = (
        {"retry_after": 4.5} if error_class in (LamaticRateLimitError, LamaticServerError) else {}
    )
    error = error_class("Lamatic flow 'flow-1' failed", **FIELDS, **extra)
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301
    assert type(copy) is error_class
    assert copy.message == error.message
    assert copy.args == error.args
    assert str(copy) == str(error)
    for name, value in {**FIELDS, **extra}.items():
        assert getattr(copy, name) == value, name


def test_rate_limit_error_pickles_without_retry_after() -> None:
    error = LamaticRateLimitError("slow down", status_code=429)
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301
    assert copy.retry_after is None


def test_server_error_pickles_without_retry_after() -> None:
    error = LamaticServerError("unavailable", status_code=503)
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301
    assert copy.retry_after is None


def test_server_error_retry_after_defaults_to_none() -> None:
    assert LamaticServerError("unavailable", status_code=503).retry_after is None


@pytest.mark.parametrize("error_class", ALL_ERROR_CLASSES)
def test_error_str_explains_failure_and_fix(error_class: type[LamaticError]) -> None:
    error = error_class(
        "Lamatic flow 'summariser' failed with HTTP 503: upstream down",
        status_code=503,
        request_id="req-77",
        operation="executeWorkflow",
        flow_id="summariser",
        attempts=2,
    )
    text = str(error)
    assert "failed with HTTP 503: upstream down" in text
    assert "flow_id='summariser'" in text
    assert "status_code=503" in text
    assert "request_id='req-77'" in text
    assert "operation=executeWorkflow" in text
    assert "attempts=2" in text
    assert error.hint in text


@pytest.mark.parametrize("error_class", ALL_ERROR_CLASSES[1:])
def test_every_subclass_has_a_hint(error_class: type[LamaticError]) -> None:
    assert error_class.hint


def test_error_str_leaves_out_unknown_details() -> None:
    text = str(LamaticBadRequestError("bad payload"))
    assert "status_code" not in text
    assert "request_id" not in text
    assert "attempts" not in text


def test_error_repr_names_class_and_status() -> None:
    error = LamaticServerError("boom", status_code=502)
    assert repr(error) == "LamaticServerError('boom', status_code=502)"


def test_error_tree() -> None:
    for error_class in ALL_ERROR_CLASSES:
        assert issubclass(error_class, LamaticError)
        assert issubclass(error_class, Exception)
    assert issubclass(LamaticTimeoutError, LamaticConnectionError)


def test_retryable_errors_tuple() -> None:
    assert set(RETRYABLE_ERRORS) == {
        LamaticConnectionError,
        LamaticRateLimitError,
        LamaticServerError,
    }
    assert all(error_class.retryable for error_class in RETRYABLE_ERRORS)
    assert not LamaticBadRequestError.retryable
    assert not LamaticExecutionError.retryable
    assert LamaticTimeoutError.retryable


def test_retryable_errors_drive_with_retry() -> None:
    calls: list[int] = []

    def flaky(value: int) -> int:
        calls.append(value)
        if len(calls) < 3:
            raise LamaticServerError("busy", status_code=503)
        return value * 2

    runnable = RunnableLambda(flaky).with_retry(
        retry_if_exception_type=RETRYABLE_ERRORS,
        stop_after_attempt=3,
        wait_exponential_jitter=False,
    )
    assert runnable.invoke(21) == 42
    assert len(calls) == 3


def test_with_retry_does_not_retry_bad_requests() -> None:
    calls: list[int] = []

    def broken(value: int) -> int:
        calls.append(value)
        raise LamaticBadRequestError("bad payload", status_code=400)

    runnable = RunnableLambda(broken).with_retry(
        retry_if_exception_type=RETRYABLE_ERRORS,
        stop_after_attempt=3,
        wait_exponential_jitter=False,
    )
    with pytest.raises(LamaticBadRequestError):
        runnable.invoke(1)
    assert len(calls) == 1


# --- Redaction ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"key {LEAKED_KEY} rejected", LEAKED_KEY),
        (f"token={LEAKED_JWT}", LEAKED_JWT),
        (f"Authorization: Bearer {LEAKED_BEARER}", LEAKED_BEARER),
        (f"authorization: bearer {LEAKED_BEARER}, next", LEAKED_BEARER),
        (f'{{"api_key": "{LEAKED_BEARER}"}}', LEAKED_BEARER),
        (f"X-Lamatic-Signature: {LEAKED_BEARER}", LEAKED_BEARER),
        (f'{{"accessToken":"{LEAKED_BEARER}"}}', LEAKED_BEARER),
        (f"secret={LEAKED_BEARER}&x=1", LEAKED_BEARER),
    ],
)
def test_redact_removes_credentials(text: str, secret: str) -> None:
    redacted = redact(text)
    assert secret not in redacted
    assert "[REDACTED]" in redacted


def test_redact_removes_given_secret_values() -> None:
    redacted = redact("the key is plain-secret-value!", ("plain-secret-value",))
    assert redacted == "the key is [REDACTED]!"


def test_redact_ignores_empty_secrets() -> None:
    assert redact("nothing to hide", ("",)) == "nothing to hide"


def test_redact_keeps_ordinary_text() -> None:
    text = "Flow not found: article-summariser (lt is short)"
    assert redact(text) == text


def test_body_excerpt_is_short_and_on_one_line() -> None:
    excerpt = body_excerpt(b"line one\n\n  line two\t" + b"x" * 2000)
    assert excerpt.startswith("line one line two ")
    assert "\n" not in excerpt
    assert len(excerpt) == BODY_EXCERPT_CHARS + 3
    assert excerpt.endswith("...")


def test_body_excerpt_survives_invalid_utf8() -> None:
    assert body_excerpt(b"\xff\xfe broken") == "\ufffd\ufffd broken"


def test_body_excerpt_redacts_after_joining_lines() -> None:
    excerpt = body_excerpt(f"Authorization:\n  Bearer {LEAKED_BEARER}".encode())
    assert LEAKED_BEARER not in excerpt


# --- Retry-After ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("12", 12.0),
        (" 1.5 ", 1.5),
        ("0", 0.0),
        ("-3", 0.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
        ("soon", None),
        ("nan", None),
        ("inf", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_parse_retry_after_future_http_date() -> None:
    seconds = parse_retry_after(_in_two_minutes())
    assert seconds is not None
    assert 100.0 <= seconds <= 121.0


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_classify_response_reads_retry_after_header(status: int) -> None:
    with pytest.raises((LamaticRateLimitError, LamaticServerError)) as caught:
        classify_response(status, b"", operation="executeWorkflow", headers={"retry-after": "9"})
    assert caught.value.retry_after == 9.0  # type: ignore[union-attr]
    assert "the server asked to wait 9 s" in str(caught.value)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_classify_response_ignores_retry_after_on_client_errors(status: int) -> None:
    with pytest.raises(LamaticError) as caught:
        classify_response(status, b"", operation="executeWorkflow", headers={"retry-after": "9"})
    assert not hasattr(caught.value, "retry_after")
    assert "asked to wait" not in str(caught.value)


def test_flow_id_in_message_is_ignored() -> None:
    errors = [{"message": "Flow permission-audit not found"}]
    error = classify_graphql_errors(
        errors, status_code=200, operation="executeWorkflow", flow_id="permission-audit"
    )
    assert type(error) is LamaticNotFoundError
