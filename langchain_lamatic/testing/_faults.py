"""Faults the test server can inject into its next responses.

Build a fault with one of the `Fault` constructors and pass it to
`LamaticTestServer.inject`::

    server.inject(Fault.status(429, retry_after=2), times=3)
    server.inject(Fault.html(502), operation="executeWorkflow", target_id="plan-trip")
    server.inject(Fault.reset_mid_body())

Most faults replace the response and skip the flow (`runs_flow` is False): status codes, HTML
pages, invalid or empty bodies, `data: null`, GraphQL errors and dropped connections. The others
change how the real response is delivered after the flow ran (`runs_flow` is True): delays,
stalls, truncated bodies and connections reset in the middle of the body. That second kind lets
a test prove that a retried request runs a flow twice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import format_datetime
from http import HTTPStatus
from typing import Any, ClassVar, Literal

__all__ = [
    "DelayFault",
    "DropConnectionFault",
    "EmptyBodyFault",
    "Fault",
    "GraphQLErrorFault",
    "HtmlFault",
    "HttpStatusFault",
    "InvalidJsonFault",
    "NullDataFault",
    "ResetMidBodyFault",
    "StallFault",
    "TruncatedJsonFault",
]

RetryAfter = float | str | datetime | None

_CODES_BY_STATUS = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    408: "REQUEST_TIMEOUT",
    422: "BAD_USER_INPUT",
    429: "RATE_LIMITED",
    500: "INTERNAL_SERVER_ERROR",
    502: "BAD_GATEWAY",
    503: "SERVICE_UNAVAILABLE",
    504: "GATEWAY_TIMEOUT",
}


def _check_status(status: int) -> None:
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise ValueError(f"HTTP status must be an int from 100 to 599, got {status!r}")


def _check_seconds(name: str, seconds: float) -> None:
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, (int, float))
        or not math.isfinite(seconds)
        or seconds < 0
    ):
        raise ValueError(f"{name} must be a finite number of seconds >= 0, got {seconds!r}")


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def format_retry_after(value: RetryAfter) -> str | None:
    """Render a `Retry-After` value: seconds as a number, a datetime as an HTTP-date."""
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return format_datetime(moment.astimezone(timezone.utc), usegmt=True)
    if isinstance(value, str):
        return value
    if float(value).is_integer():
        return str(int(value))
    return str(value)


@dataclass(frozen=True)
class Fault:
    """A scripted misbehaviour for the next matching responses of the test server.

    Use the constructors (`Fault.status`, `Fault.rate_limit`, `Fault.html`, `Fault.delay`,
    `Fault.stall`, `Fault.invalid_json`, `Fault.truncated_json`, `Fault.empty_body`,
    `Fault.null_data`, `Fault.graphql_error`, `Fault.drop_connection`,
    `Fault.reset_mid_body`); each returns an instance of the matching subclass.

    Attributes:
        runs_flow: Whether the request is still executed before the fault shapes the response.
    """

    runs_flow: ClassVar[bool] = False

    @staticmethod
    def status(
        status: int,
        *,
        retry_after: RetryAfter = None,
        body: Literal["json", "empty"] = "json",
        message: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> HttpStatusFault:
        """Respond with an HTTP status such as 429, 500, 502, 503 or 504.

        Args:
            status: The HTTP status code.
            retry_after: `Retry-After` header value: seconds (int or float), an aware or UTC
                `datetime` sent as an HTTP-date, or a string sent verbatim.
            body: `"json"` for a GraphQL error list naming the status, `"empty"` for no body.
            message: The error message in the JSON body; the reason phrase when None.
            headers: More response headers.
        """
        return HttpStatusFault(
            status_code=status,
            retry_after=retry_after,
            body=body,
            message=message,
            headers=tuple((headers or {}).items()),
        )

    @staticmethod
    def rate_limit(
        retry_after: RetryAfter = 1, *, body: Literal["json", "empty"] = "json"
    ) -> HttpStatusFault:
        """Respond HTTP 429 with `Retry-After`: 1 second unless given, none when None."""
        return HttpStatusFault(status_code=429, retry_after=retry_after, body=body)

    @staticmethod
    def html(status: int = 502, *, body: str | None = None) -> HtmlFault:
        """Respond with an HTML page, as a proxy or CDN in front of the service would."""
        return HtmlFault(status_code=status, body=body)

    @staticmethod
    def delay(seconds: float) -> DelayFault:
        """Wait `seconds` before handling the request, then respond normally."""
        return DelayFault(seconds=seconds)

    @staticmethod
    def stall(seconds: float) -> StallFault:
        """Send the status line and headers, wait `seconds`, then send the body."""
        return StallFault(seconds=seconds)

    @staticmethod
    def invalid_json(status: int = 200) -> InvalidJsonFault:
        """Respond with a body labelled `application/json` that is not JSON; no flow runs."""
        return InvalidJsonFault(status_code=status)

    @staticmethod
    def truncated_json() -> TruncatedJsonFault:
        """Run the request, then send only the first half of its JSON body.

        `Content-Length` matches the bytes sent, so the HTTP exchange is complete and only the
        JSON is broken.
        """
        return TruncatedJsonFault()

    @staticmethod
    def empty_body(status: int = 200) -> EmptyBodyFault:
        """Respond with `Content-Length: 0`."""
        return EmptyBodyFault(status_code=status)

    @staticmethod
    def null_data() -> NullDataFault:
        """Respond HTTP 200 with `{"data": null}` and no errors."""
        return NullDataFault()

    @staticmethod
    def graphql_error(
        message: str, *, code: str | None = None, status: int = 200
    ) -> GraphQLErrorFault:
        """Respond with `{"errors": [{"message": message, "extensions": {"code": code}}]}`.

        Args:
            message: The error message, for example "Invalid API key".
            code: `extensions.code`; omitted from the body when None.
            status: The HTTP status, 200 by default as in the real service.
        """
        return GraphQLErrorFault(message=message, code=code, status_code=status)

    @staticmethod
    def drop_connection() -> DropConnectionFault:
        """Close the connection after reading the request, without a response."""
        return DropConnectionFault()

    @staticmethod
    def reset_mid_body() -> ResetMidBodyFault:
        """Run the request, send the headers and half the body, then reset the connection."""
        return ResetMidBodyFault()


@dataclass(frozen=True)
class HttpStatusFault(Fault):
    """An HTTP error status with a GraphQL error list body or no body."""

    status_code: int
    retry_after: RetryAfter = None
    body: Literal["json", "empty"] = "json"
    message: str | None = None
    headers: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        _check_status(self.status_code)
        if self.body not in ("json", "empty"):
            raise ValueError(f"body must be 'json' or 'empty', got {self.body!r}")
        if isinstance(self.retry_after, (int, float)) and not isinstance(self.retry_after, bool):
            _check_seconds("retry_after", self.retry_after)

    @property
    def code(self) -> str:
        """The `extensions.code` sent in the JSON body."""
        return _CODES_BY_STATUS.get(self.status_code, f"HTTP_{self.status_code}")

    def json_body(self) -> dict[str, Any]:
        """Return the GraphQL error list sent when `body` is `"json"`."""
        message = self.message or _reason(self.status_code)
        return {"errors": [{"message": message, "extensions": {"code": self.code}}]}


_DEFAULT_HTML = (
    "<!DOCTYPE html>\n<html>\n<head><title>{status} {reason}</title></head>\n"
    "<body>\n<center><h1>{status} {reason}</h1></center>\n<hr><center>proxy</center>\n"
    "</body>\n</html>\n"
)


@dataclass(frozen=True)
class HtmlFault(Fault):
    """An HTML page with any status, such as a proxy's 502 page."""

    status_code: int = 502
    body: str | None = None

    def __post_init__(self) -> None:
        _check_status(self.status_code)

    def page(self) -> str:
        """Return the HTML to send: `body`, or a proxy error page naming the status."""
        if self.body is not None:
            return self.body
        return _DEFAULT_HTML.format(status=self.status_code, reason=_reason(self.status_code))


@dataclass(frozen=True)
class DelayFault(Fault):
    """A wait before the request is handled, followed by the normal response."""

    runs_flow: ClassVar[bool] = True
    seconds: float = 1.0

    def __post_init__(self) -> None:
        _check_seconds("seconds", self.seconds)


@dataclass(frozen=True)
class StallFault(Fault):
    """A wait between the response headers and the body."""

    runs_flow: ClassVar[bool] = True
    seconds: float = 1.0

    def __post_init__(self) -> None:
        _check_seconds("seconds", self.seconds)


@dataclass(frozen=True)
class InvalidJsonFault(Fault):
    """A body labelled `application/json` that does not parse."""

    status_code: int = 200

    def __post_init__(self) -> None:
        _check_status(self.status_code)


@dataclass(frozen=True)
class TruncatedJsonFault(Fault):
    """The real JSON response cut to half its length."""

    runs_flow: ClassVar[bool] = True


@dataclass(frozen=True)
class EmptyBodyFault(Fault):
    """A response with no body."""

    status_code: int = 200

    def __post_init__(self) -> None:
        _check_status(self.status_code)


@dataclass(frozen=True)
class NullDataFault(Fault):
    """HTTP 200 with `{"data": null}`."""


@dataclass(frozen=True)
class GraphQLErrorFault(Fault):
    """A GraphQL error list with a chosen message and code."""

    message: str = "Internal server error"
    code: str | None = None
    status_code: int = 200

    def __post_init__(self) -> None:
        _check_status(self.status_code)
        if not isinstance(self.message, str) or not self.message:
            raise ValueError(f"message must be a non-empty string, got {self.message!r}")

    def json_body(self) -> dict[str, Any]:
        """Return the JSON body to send."""
        error: dict[str, Any] = {"message": self.message}
        if self.code is not None:
            error["extensions"] = {"code": self.code}
        return {"errors": [error], "data": None}


@dataclass(frozen=True)
class DropConnectionFault(Fault):
    """The connection closed without any response."""


@dataclass(frozen=True)
class ResetMidBodyFault(Fault):
    """The real response's headers and half its body, then a TCP reset."""

    runs_flow: ClassVar[bool] = True
