"""Typed errors raised by langchain-lamatic, and the one function that classifies responses.

The tree::

    LamaticError
    ├── LamaticConnectionError        the endpoint could not be reached (refused, DNS, TLS)
    │   └── LamaticTimeoutError       a connect, read or overall deadline passed
    ├── LamaticBadRequestError        HTTP 400 or 422, or a GraphQL error about query or payload
    ├── LamaticAuthenticationError    HTTP 401, or a GraphQL error: invalid key or token
    ├── LamaticPermissionError        HTTP 403: wrong project, no permission, or an expired token
    ├── LamaticNotFoundError          HTTP 404, or the flow or agent is missing or not deployed
    ├── LamaticRateLimitError         HTTP 429; ``retry_after`` is the server's wait in seconds
    ├── LamaticServerError            HTTP 5xx, including a proxy's HTML page; ``retry_after`` too
    ├── LamaticResponseError          a 2xx body that is not JSON or lacks the expected fields
    └── LamaticExecutionError         the flow or agent ran and reported "error" or "failed"

Every error carries ``status_code``, ``request_id`` (when known), ``operation``, ``flow_id`` or
``agent_id``, ``body_excerpt`` (short and redacted) and ``attempts``, and pickles with them.
``retryable`` is True when sending the same request again can help.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar

__all__ = [
    "RETRYABLE_ERRORS",
    "LamaticAuthenticationError",
    "LamaticBadRequestError",
    "LamaticConnectionError",
    "LamaticError",
    "LamaticExecutionError",
    "LamaticNotFoundError",
    "LamaticPermissionError",
    "LamaticRateLimitError",
    "LamaticResponseError",
    "LamaticServerError",
    "LamaticTimeoutError",
    "classify_graphql_errors",
    "classify_response",
    "redact",
]

BODY_EXCERPT_CHARS = 300


class LamaticError(Exception):
    """Base class of every error raised by langchain-lamatic."""

    retryable: ClassVar[bool] = False
    hint: str = ""
    """Suggested next step: the class default, unless the error was raised with its own hint."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        request_id: str | None = None,
        operation: str | None = None,
        flow_id: str | None = None,
        agent_id: str | None = None,
        body_excerpt: str | None = None,
        attempts: int = 1,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint
        self.message = message
        self.status_code = status_code
        self.request_id = request_id
        self.operation = operation
        self.flow_id = flow_id
        self.agent_id = agent_id
        self.body_excerpt = body_excerpt
        self.attempts = attempts

    def _fields(self) -> dict[str, Any]:
        return {
            "status_code": self.status_code,
            "request_id": self.request_id,
            "operation": self.operation,
            "flow_id": self.flow_id,
            "agent_id": self.agent_id,
            "body_excerpt": self.body_excerpt,
            "attempts": self.attempts,
            "hint": self.__dict__.get("hint"),
        }

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_error, (type(self), self.message, self._fields()))

    def __str__(self) -> str:
        details = []
        if self.flow_id is not None:
            details.append(f"flow_id={self.flow_id!r}")
        if self.agent_id is not None:
            details.append(f"agent_id={self.agent_id!r}")
        if self.operation is not None:
            details.append(f"operation={self.operation}")
        if self.status_code is not None:
            details.append(f"status_code={self.status_code}")
        if self.request_id is not None:
            details.append(f"request_id={self.request_id!r}")
        if self.attempts > 1:
            details.append(f"attempts={self.attempts}")
        text = self.message
        if details:
            text = f"{text} ({', '.join(details)})"
        if self.hint:
            text = f"{text}. {self.hint}"
        return text

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status_code={self.status_code!r})"


def _rebuild_error(cls: type[LamaticError], message: str, fields: dict[str, Any]) -> LamaticError:
    retry_after = fields.pop("retry_after", None)
    error = cls(message, **fields)
    if isinstance(error, _RetryAfterError):
        error.retry_after = retry_after
    return error


class LamaticConnectionError(LamaticError):
    """The endpoint could not be reached: connection refused, DNS failure, TLS error or reset."""

    retryable = True
    hint = "Check LAMATIC_ENDPOINT and the network, then try again"


class LamaticTimeoutError(LamaticConnectionError):
    """A connect, read or overall deadline passed before Lamatic responded."""

    hint = (
        "Raise the timeout if the flow runs long, or make the flow async so it can be polled; "
        "a flow that timed out may still have run"
    )


class LamaticBadRequestError(LamaticError):
    """HTTP 400 or 422, or a GraphQL error about an invalid query, variables or payload."""

    hint = "Check the payload against the flow's API Request schema"


class LamaticAuthenticationError(LamaticError):
    """HTTP 401, or a GraphQL error saying the API key or access token is invalid."""

    hint = "Check LAMATIC_API_KEY or LAMATIC_ACCESS_TOKEN"


class LamaticPermissionError(LamaticError):
    """HTTP 403: the credential may not use this project or flow, or the access token expired."""

    hint = (
        "Check that LAMATIC_PROJECT_ID matches the credential's project, and mint a new access "
        "token if it may have expired"
    )


class LamaticNotFoundError(LamaticError):
    """HTTP 404, or a GraphQL error saying the flow or agent does not exist or is not deployed."""

    hint = (
        "Check the flow, agent or request id, that the flow or agent is deployed, and that the "
        "endpoint ends in /graphql"
    )


class _RetryAfterError(LamaticError):
    """An error that carries ``retry_after``, read from the response's ``Retry-After`` header."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after

    def _fields(self) -> dict[str, Any]:
        return {**super()._fields(), "retry_after": self.retry_after}


class LamaticRateLimitError(_RetryAfterError):
    """HTTP 429. ``retry_after`` is the server's requested wait in seconds, when it sent one."""

    retryable = True
    hint = "Slow down, or raise max_retries so the client waits and retries"


class LamaticServerError(_RetryAfterError):
    """HTTP 5xx, including bodies that are not JSON, such as a proxy's HTML error page.

    ``retry_after`` is the wait in seconds that the response's ``Retry-After`` header
    requested, or None when it sent none. Servers send it mostly with 503.
    """

    retryable = True
    hint = "The Lamatic service or a proxy in front of it failed; try again later"


class LamaticResponseError(LamaticError):
    """A 2xx response whose body is not valid JSON or lacks the expected fields."""

    hint = "The endpoint may not be a Lamatic GraphQL endpoint; check that it ends in /graphql"


class LamaticExecutionError(LamaticError):
    """The flow or agent ran and reported status "error" or "failed"."""

    hint = "The flow itself failed; see its run log in Lamatic Studio"


RETRYABLE_ERRORS: tuple[type[LamaticError], ...] = (
    LamaticConnectionError,
    LamaticRateLimitError,
    LamaticServerError,
)
"""Errors worth retrying, for ``Runnable.with_retry(retry_if_exception_type=RETRYABLE_ERRORS)``.

Lamatic has no idempotency key, so retrying a timeout or a 5xx may run a flow twice. Use this
only for flows without side effects, or accept duplicates.
"""


# --- Redaction -------------------------------------------------------------------------------

_SECRET_PATTERNS = (
    re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"),
    re.compile(r"\blt-[A-Za-z0-9_-]{6,}"),
    re.compile(r"(?i)(bearer\s+)[^\s\"',]+"),
    re.compile(
        r"(?i)(\"?(?:authorization|x-lamatic-signature|api_?key|access_?token|secret)"
        r"\"?\s*[:=]\s*\"?)[^\s\"',}]+"
    ),
)


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Replace credential-shaped strings and the given secret values with ``[REDACTED]``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[REDACTED]")
    for pattern in _SECRET_PATTERNS:
        if pattern.groups:
            text = pattern.sub(lambda match: match.group(1) + "[REDACTED]", text)
        else:
            text = pattern.sub("[REDACTED]", text)
    return text


def body_excerpt(body: bytes | str, secrets: tuple[str, ...] = ()) -> str:
    """Return the first characters of a response body, redacted, on one line."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    # Known secrets are removed from the whole body before it is cut, because a cut could
    # leave the start of one behind, which exact matching would then miss.
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[REDACTED]")
    text = " ".join(text[: BODY_EXCERPT_CHARS * 2].split())
    text = redact(text, secrets)
    if len(text) > BODY_EXCERPT_CHARS:
        text = text[:BODY_EXCERPT_CHARS] + "..."
    return text


# --- Classification --------------------------------------------------------------------------

_STATUS_ERRORS: dict[int, type[LamaticError]] = {
    400: LamaticBadRequestError,
    401: LamaticAuthenticationError,
    403: LamaticPermissionError,
    404: LamaticNotFoundError,
    422: LamaticBadRequestError,
    429: LamaticRateLimitError,
}

# GraphQL ``extensions.code`` values (Apollo's names and common variants), upper-cased.
_GRAPHQL_CODE_ERRORS: dict[str, type[LamaticError]] = {
    "UNAUTHENTICATED": LamaticAuthenticationError,
    "UNAUTHORIZED": LamaticAuthenticationError,
    "INVALID_API_KEY": LamaticAuthenticationError,
    "INVALID_TOKEN": LamaticAuthenticationError,
    "FORBIDDEN": LamaticPermissionError,
    "TOKEN_EXPIRED": LamaticPermissionError,
    "NOT_FOUND": LamaticNotFoundError,
    "FLOW_NOT_FOUND": LamaticNotFoundError,
    "AGENT_NOT_FOUND": LamaticNotFoundError,
    "GRAPHQL_PARSE_FAILED": LamaticBadRequestError,
    "GRAPHQL_VALIDATION_FAILED": LamaticBadRequestError,
    "BAD_USER_INPUT": LamaticBadRequestError,
    "BAD_REQUEST": LamaticBadRequestError,
    "VALIDATION_ERROR": LamaticBadRequestError,
    "RATE_LIMITED": LamaticRateLimitError,
    "TOO_MANY_REQUESTS": LamaticRateLimitError,
    "INTERNAL_SERVER_ERROR": LamaticServerError,
    "SERVICE_UNAVAILABLE": LamaticServerError,
}

# Tried in order when no code matched; the first pattern found in the message wins.
_GRAPHQL_MESSAGE_ERRORS: tuple[tuple[re.Pattern[str], type[LamaticError]], ...] = (
    (
        re.compile(
            r"expired|permission|forbidden|not allowed|access denied|not authori[sz]ed|"
            r"(do not|does not|don't) have access|no access"
        ),
        LamaticPermissionError,
    ),
    (
        re.compile(
            r"invalid (api[ _-]?key|token|access token|signature|credential)|"
            r"unauthori[sz]ed|unauthenticated|authentication|api key|\bjwt\b"
        ),
        LamaticAuthenticationError,
    ),
    (re.compile(r"rate limit|too many requests"), LamaticRateLimitError),
    (
        re.compile(
            r"not found|does not exist|doesn't exist|not deployed|no such|unknown (flow|agent)"
        ),
        LamaticNotFoundError,
    ),
    (
        re.compile(
            r"syntax error|cannot query field|unknown argument|variable|expected type|"
            r"invalid (query|payload|input|value)|must not have a selection|"
            r"validation|required"
        ),
        LamaticBadRequestError,
    ),
    (
        re.compile(r"internal server error|internal error|bad gateway|service unavailable"),
        LamaticServerError,
    ),
)

# Quoted names in a message ("Flow 'token-expired-digest' not found") are not reasons, so they
# are removed before the patterns above are tried. An apostrophe inside a word is kept.
_QUOTED_NAME = re.compile(r"\"[^\"]*\"|(?<!\w)'[^']*'(?!\w)")


def _graphql_error_class(error: Any, target_ids: tuple[str | None, ...] = ()) -> type[LamaticError]:
    if not isinstance(error, Mapping):
        return LamaticResponseError
    extensions = error.get("extensions")
    if isinstance(extensions, Mapping):
        code = extensions.get("code")
        if isinstance(code, str) and code.upper() in _GRAPHQL_CODE_ERRORS:
            return _GRAPHQL_CODE_ERRORS[code.upper()]
    message = _QUOTED_NAME.sub(" ", str(error.get("message", "")))
    for target_id in target_ids:
        if target_id:
            message = re.sub(rf"(?<![\w-]){re.escape(target_id)}(?![\w-])", " ", message)
    message = message.lower()
    for pattern, error_class in _GRAPHQL_MESSAGE_ERRORS:
        if pattern.search(message):
            return error_class
    return LamaticBadRequestError


def _graphql_messages(errors: list[Any]) -> str:
    messages = []
    for error in errors[:3]:
        if isinstance(error, Mapping) and error.get("message"):
            messages.append(str(error["message"]))
        else:
            messages.append(str(error)[:100])
    return "; ".join(messages) or "no message"


def classify_graphql_errors(
    errors: list[Any],
    *,
    status_code: int,
    operation: str | None,
    flow_id: str | None = None,
    agent_id: str | None = None,
    body_excerpt: str | None = None,
    request_id: str | None = None,
    secrets: tuple[str, ...] = (),
    retry_after: float | None = None,
) -> LamaticError:
    """Map a GraphQL ``errors`` list (from a body or a stream frame) to the matching typed error.

    The first error decides the class: ``extensions.code`` when it is a known code, otherwise
    the message. A message that matches nothing counts as a bad request, because GraphQL puts
    query and variable problems there. ``retry_after``, the parsed ``Retry-After`` header, is
    kept only by ``LamaticRateLimitError`` and ``LamaticServerError``.
    """
    error_class = (
        _graphql_error_class(errors[0], (flow_id, agent_id)) if errors else LamaticResponseError
    )
    what = describe_target(operation, flow_id, agent_id)
    message = redact(f"{what} failed: {_graphql_messages(errors)}", secrets)
    return _build_error(
        error_class,
        message,
        retry_after,
        status_code=status_code,
        request_id=request_id,
        operation=operation,
        flow_id=flow_id,
        agent_id=agent_id,
        body_excerpt=body_excerpt,
    )


def _build_error(
    error_class: type[LamaticError], message: str, retry_after: float | None, **fields: Any
) -> LamaticError:
    """Build ``error_class``, adding the server's requested wait when the class carries it."""
    if not issubclass(error_class, _RetryAfterError):
        return error_class(message, **fields)
    if retry_after is not None:
        # A wait longer than the client's cap raises at once, so the caller needs to see it.
        message = f"{message}; the server asked to wait {retry_after:g} s"
    return error_class(message, retry_after=retry_after, **fields)


def _retry_after_of(headers: Mapping[str, str] | None) -> float | None:
    """Return the parsed ``Retry-After`` header. Only error paths read it."""
    return parse_retry_after((headers or {}).get("retry-after"))


def describe_target(operation: str | None, flow_id: str | None, agent_id: str | None) -> str:
    """Return the subject of an error message, such as "Lamatic flow 'id'"."""
    if flow_id is not None:
        return f"Lamatic flow {flow_id!r}"
    if agent_id is not None:
        return f"Lamatic agent {agent_id!r}"
    return f"Lamatic {operation or 'request'}"


def parse_retry_after(value: str | None) -> float | None:
    """Parse a ``Retry-After`` header given in seconds or as an HTTP date, in seconds from now."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=_dt.timezone.utc)
        seconds = (when - _dt.datetime.now(_dt.timezone.utc)).total_seconds()
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        return None
    return max(0.0, seconds)


def classify_response(
    status_code: int,
    body: bytes,
    *,
    operation: str,
    headers: Mapping[str, str] | None = None,
    flow_id: str | None = None,
    agent_id: str | None = None,
    secrets: tuple[str, ...] = (),
) -> Any:
    """Return the ``data[operation]`` value of a response, or raise the typed error it carries.

    Order: HTTP status, then GraphQL ``errors``, then the shape of ``data``. A 2xx body that is
    not JSON or has no ``data[operation]`` raises ``LamaticResponseError``. The caller
    interprets the value (for example an execution's ``status``). A ``Retry-After`` header
    (seconds or HTTP-date) becomes the ``retry_after`` of a ``LamaticRateLimitError`` or
    ``LamaticServerError``, whatever the status, and is ignored for the other errors.

    Raises:
        LamaticError: the subclass the response calls for.
    """
    try:
        document: Any = json.loads(body) if body.strip() else None
    except (ValueError, RecursionError):
        # ValueError covers invalid JSON and invalid UTF-8. RecursionError comes from JSON
        # nested deeper than the interpreter's recursion limit.
        document = None
    errors = document.get("errors") if isinstance(document, Mapping) else None
    has_errors = isinstance(errors, list) and len(errors) > 0

    # Success returns before the redacted excerpt is built: redaction costs more than parsing.
    if 200 <= status_code < 300 and not has_errors and isinstance(document, Mapping):
        data = document.get("data")
        if isinstance(data, Mapping) and data.get(operation) is not None:
            return data[operation]

    excerpt = body_excerpt(body, secrets)
    common: dict[str, Any] = {
        "status_code": status_code,
        "operation": operation,
        "flow_id": flow_id,
        "agent_id": agent_id,
        "body_excerpt": excerpt,
    }
    what = describe_target(operation, flow_id, agent_id)

    if status_code >= 400 or not 200 <= status_code < 300:
        error_class = _STATUS_ERRORS.get(status_code)
        if error_class is None and status_code >= 500:
            error_class = LamaticServerError
        elif error_class is None and status_code >= 400:
            error_class = LamaticBadRequestError
        elif error_class is None:
            # 1xx and 3xx: redirects are not followed, so the endpoint is probably wrong.
            error_class = LamaticResponseError
        if has_errors:
            reason = _graphql_messages(errors)  # type: ignore[arg-type]
        elif document is None:
            reason = "the body is not JSON" if body.strip() else "the body is empty"
        else:
            reason = "no GraphQL errors in the body"
        message = redact(f"{what} failed with HTTP {status_code}: {reason}", secrets)
        raise _build_error(error_class, message, _retry_after_of(headers), **common)

    if has_errors:
        raise classify_graphql_errors(
            errors,  # type: ignore[arg-type]
            status_code=status_code,
            operation=operation,
            flow_id=flow_id,
            agent_id=agent_id,
            body_excerpt=excerpt,
            secrets=secrets,
            retry_after=_retry_after_of(headers),
        )
    if document is None:
        reason = "an empty body" if not body.strip() else "a body that is not valid JSON"
        raise LamaticResponseError(f"{what} returned {reason} with HTTP {status_code}", **common)
    if not isinstance(document, Mapping):
        raise LamaticResponseError(f"{what} returned JSON that is not an object", **common)
    data = document.get("data")
    if not isinstance(data, Mapping) or data.get(operation) is None:
        raise LamaticResponseError(
            f"{what} returned no data.{operation} in the response body", **common
        )
    return data[operation]
