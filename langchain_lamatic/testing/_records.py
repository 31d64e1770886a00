"""Records kept by the test server: received requests and submitted feedback."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Feedback", "Headers", "RecordedRequest"]

# Header values that carry credentials; reprs show them masked.
_SECRET_HEADERS = frozenset(
    {"authorization", "x-lamatic-signature", "cookie", "proxy-authorization"}
)


class Headers(Mapping[str, str]):
    """Read-only, case-insensitive request headers.

    Keys are stored lower-cased; a header sent several times keeps its values joined with
    `", "`. The repr masks credential headers, but indexing returns the real value.
    """

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        merged: dict[str, str] = {}
        for name, value in items:
            key = name.lower()
            merged[key] = f"{merged[key]}, {value}" if key in merged else value
        self._items = merged

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return self._items == other._items
        if isinstance(other, Mapping):
            return self._items == {str(key).lower(): value for key, value in other.items()}
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._items.items())))

    def __repr__(self) -> str:
        masked = {
            key: ("***" if key in _SECRET_HEADERS else value) for key, value in self._items.items()
        }
        return f"Headers({masked!r})"


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request as the test server received it.

    Attributes:
        method: The HTTP method, such as `POST`.
        path: The request target including any query string, such as `/graphql`.
        headers: The request headers, case-insensitive.
        body: The raw body.
        json: The body parsed as JSON, or None when it is not JSON.
        operation: The first root field of the GraphQL operation, such as `executeWorkflow`,
            or None when the body contains no parsable query.
        variables: The `variables` object of the body, or None.
        target_id: The flow, agent or request id the operation names (`workflowId`,
            `agentId` or `requestId`), or None.
        time: When the request was received, in `time.monotonic()` seconds, for measuring the
            gaps between requests.
    """

    method: str
    path: str
    headers: Headers
    body: bytes
    json: Any
    operation: str | None
    variables: dict[str, Any] | None
    target_id: str | None
    time: float


@dataclass(frozen=True)
class Feedback:
    """Feedback received through the `submitFeedback` mutation.

    Attributes:
        request_id: The execution the feedback is about.
        rating: The `rating` argument, or None.
        comment: The `comment` argument, or None.
        metadata: The `metadata` argument, or None.
        time: When it was received, in `time.monotonic()` seconds.
    """

    request_id: str
    rating: int | None
    comment: str | None
    metadata: Any
    time: float
