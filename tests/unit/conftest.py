"""Unit-test fixtures: no sockets, and a scripted Lamatic endpoint on an httpx MockTransport."""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import pytest_socket

from langchain_lamatic import LamaticClient

ENDPOINT = "https://demo-project.lamatic.dev/graphql"
PROJECT_ID = "project-123"
API_KEY = "lt-" + "unit0test0key0abcdef123456"
ACCESS_TOKEN = "unit-access-token-0123456789"

Reply = Callable[[httpx.Request], httpx.Response]


@pytest.fixture(autouse=True)
def _no_network() -> Iterator[None]:
    """Block every socket except unix sockets, which asyncio needs for its self-pipe."""
    pytest_socket.disable_socket(allow_unix_socket=True)
    yield
    pytest_socket.enable_socket()


def reply(
    status: int = 200,
    *,
    json_body: Any = None,
    content: bytes | str | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """Return a handler that builds a fresh response each time it is called."""

    def build(request: httpx.Request) -> httpx.Response:
        if json_body is not None:
            return httpx.Response(status, json=json_body, headers=headers, request=request)
        return httpx.Response(status, content=content or b"", headers=headers, request=request)

    return build


def success(
    result: Any = None,
    *,
    operation: str | None = None,
    status: Any = "success",
    request_id: str | None = "req-1",
) -> Reply:
    """Return a handler that returns a successful execution with ``result``.

    Without ``operation``, the data key is the operation that the request's query names.
    """
    data: dict[str, Any] = {"status": status, "result": result if result is not None else {}}
    if request_id is not None:
        data["requestId"] = request_id

    def build(request: httpx.Request) -> httpx.Response:
        name = operation
        if name is None:
            query = json.loads(request.content)["query"]
            name = "executeAgent" if "executeAgent(" in query else "executeWorkflow"
        return httpx.Response(200, json={"data": {name: data}}, request=request)

    return build


def graphql_errors(message: str, *, code: str | None = None, status: int = 200) -> Reply:
    """Return a handler that returns a GraphQL ``errors`` body."""
    error: dict[str, Any] = {"message": message}
    if code is not None:
        error["extensions"] = {"code": code}
    return reply(status, json_body={"errors": [error], "data": None})


class MockLamatic:
    """A scripted Lamatic endpoint: replies from a queue and records every request.

    Queue items are handlers (``reply``, ``success``...) or exceptions to raise from the
    transport. When the queue is empty, the ``default`` handler replies.
    """

    endpoint = ENDPOINT
    project_id = PROJECT_ID
    api_key = API_KEY
    access_token = ACCESS_TOKEN

    reply = staticmethod(reply)
    success = staticmethod(success)
    graphql_errors = staticmethod(graphql_errors)

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.queue: deque[Reply | BaseException] = deque()
        self.default: Reply = success({"answer": 42})

    def respond(self, *items: Reply | BaseException) -> None:
        self.queue.extend(items)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        item = self.queue.popleft() if self.queue else self.default
        if isinstance(item, BaseException):
            raise item
        return item(request)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def client(self, **overrides: Any) -> LamaticClient:
        """Build a ``LamaticClient`` wired to this endpoint, with an API key by default."""
        settings: dict[str, Any] = {
            "endpoint": self.endpoint,
            "project_id": self.project_id,
            "transport": self.transport,
            "async_transport": self.transport,
        }
        if "access_token" not in overrides:
            settings["api_key"] = self.api_key
        settings.update(overrides)
        return LamaticClient(**settings)

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(request.content) for request in self.requests]


@pytest.fixture
def lamatic() -> MockLamatic:
    """A scripted Lamatic endpoint; build clients with ``lamatic.client()``."""
    return MockLamatic()


class SleepRecorder:
    """Records the waits requested from ``time.sleep`` and ``asyncio.sleep`` without waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []


@pytest.fixture
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> SleepRecorder:
    """Replace ``time.sleep`` and ``asyncio.sleep`` as the client module sees them."""
    import langchain_lamatic.client as client_module

    recorder = SleepRecorder()
    real_async_sleep = asyncio.sleep

    def fake_sleep(seconds: float) -> None:
        recorder.waits.append(seconds)

    async def fake_async_sleep(seconds: float, result: Any = None) -> Any:
        recorder.waits.append(seconds)
        await real_async_sleep(0)
        return result

    monkeypatch.setattr(client_module.time, "sleep", fake_sleep)
    monkeypatch.setattr(client_module.asyncio, "sleep", fake_async_sleep)
    assert time.sleep is fake_sleep
    return recorder
