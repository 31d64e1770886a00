"""Which HTTP path LamaticClient takes: an environment proxy, cookies, and patched httpx.

The async client normally sends through its own ``AsyncHTTP11Transport``. httpx applies a
proxy from the environment only to a client without a transport of its own, so with a proxy
configured the client must fall back to httpx's stock transport, as the sync client does.
Every server here is a ``ScriptedServer`` on 127.0.0.1 started by the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any
from unittest import mock

import httpx
import pytest
from http11_servers import Handler, ReceivedRequest, ScriptedServer, Step, response

from langchain_lamatic import LamaticClient
from langchain_lamatic._http11 import AsyncHTTP11Transport

API_KEY = "lt-" + "transport0choice0key00"
PROJECT_ID = "transport-choice-project"
FLOW_ID = "echo-flow"

StartServer = Callable[[Handler], ScriptedServer]
MakeClient = Callable[..., LamaticClient]


def execute_workflow_body(result: dict[str, Any]) -> bytes:
    """Return a successful executeWorkflow response body with ``result``."""
    return json.dumps(
        {"data": {"executeWorkflow": {"status": "success", "result": result}}}
    ).encode()


def respond_with_result(result: dict[str, Any], headers: Iterable[tuple[str, str]] = ()) -> Handler:
    """Return a ScriptedServer handler that responds to every request with ``result``."""
    body = execute_workflow_body(result)
    all_headers = [("Content-Type", "application/json"), *headers]

    def handle(request: ReceivedRequest) -> list[Step]:
        return [response(body=body, headers=all_headers)]

    return handle


def unused_port() -> int:
    """Return a loopback port that nothing listens on once this returns."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def start_server() -> Iterator[StartServer]:
    """Start ``ScriptedServer``s on loopback, each stopped when the test ends."""
    servers: list[ScriptedServer] = []

    def start(handler: Handler) -> ScriptedServer:
        server = ScriptedServer(handler).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
async def make_client() -> AsyncIterator[MakeClient]:
    """Build LamaticClients without retries, closed when the test ends."""
    clients: list[LamaticClient] = []

    def make(endpoint: str, **options: Any) -> LamaticClient:
        client = LamaticClient(
            endpoint=endpoint, project_id=PROJECT_ID, api_key=API_KEY, max_retries=0, **options
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


def set_proxy(monkeypatch: pytest.MonkeyPatch, variable: str, proxy_url: str) -> None:
    """Set one proxy variable and clear the variables that would exempt loopback."""
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, proxy_url)


PROXY_VARIABLES = ["HTTP_PROXY", "http_proxy", "ALL_PROXY"]


# --- Proxies from the environment -----------------------------------------------------------


@pytest.mark.parametrize("variable", PROXY_VARIABLES)
def test_env_proxy_carries_sync_call(
    start_server: StartServer,
    make_client: MakeClient,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
) -> None:
    proxy = start_server(respond_with_result({"via": "proxy"}))
    endpoint = f"http://127.0.0.1:{unused_port()}/graphql"
    set_proxy(monkeypatch, variable, proxy.url)
    client = make_client(endpoint)

    result = client.execute_flow(FLOW_ID, {"topic": "proxies"})

    assert result.result == {"via": "proxy"}
    (received,) = proxy.requests
    # A request to a proxy carries the absolute URL in its request line.
    assert received.target == endpoint
    assert received.method == "POST"
    assert received.header("Authorization") == f"Bearer {API_KEY}"
    assert json.loads(received.body)["variables"]["payload"] == {"topic": "proxies"}


@pytest.mark.parametrize("variable", PROXY_VARIABLES)
async def test_env_proxy_carries_async_call(
    start_server: StartServer,
    make_client: MakeClient,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
) -> None:
    proxy = start_server(respond_with_result({"via": "proxy"}))
    endpoint = f"http://127.0.0.1:{unused_port()}/graphql"
    set_proxy(monkeypatch, variable, proxy.url)
    client = make_client(endpoint)

    first = await client.aexecute_flow(FLOW_ID, {"topic": "proxies"})
    second = await client.aexecute_flow(FLOW_ID, {"topic": "proxies"})

    assert first.result == {"via": "proxy"}
    assert second.result == {"via": "proxy"}
    assert [request.target for request in proxy.requests] == [endpoint, endpoint]
    assert len(client._own_async_transports) == 0


async def test_https_proxy_alone_selects_stock_transport(
    start_server: StartServer, make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # httpx sends only https:// URLs through HTTPS_PROXY, so this http:// call goes direct,
    # but through httpx's transport, which is where proxy settings apply.
    proxy = start_server(respond_with_result({"via": "proxy"}))
    server = start_server(respond_with_result({"via": "direct"}))
    set_proxy(monkeypatch, "HTTPS_PROXY", proxy.url)
    client = make_client(f"{server.url}/graphql")

    result = await client.aexecute_flow(FLOW_ID, {})

    assert result.result == {"via": "direct"}
    assert proxy.requests == []
    assert [request.target for request in server.requests] == ["/graphql"]
    assert len(client._own_async_transports) == 0


async def test_async_call_without_proxy_uses_own_transport(
    start_server: StartServer, make_client: MakeClient
) -> None:
    server = start_server(respond_with_result({"via": "direct"}))
    client = make_client(f"{server.url}/graphql")

    first = await client.aexecute_flow(FLOW_ID, {})
    second = await client.aexecute_flow(FLOW_ID, {})

    assert first.result == {"via": "direct"}
    assert second.result == {"via": "direct"}
    transport = client._own_async_transports[asyncio.get_running_loop()]
    assert isinstance(transport, AsyncHTTP11Transport)
    assert [connection.origin[2] for connection in transport.connections] == [server.port]
    assert [request.target for request in server.requests] == ["/graphql", "/graphql"]
    assert server.accepted == 1


# --- Cookies --------------------------------------------------------------------------------

SET_COOKIE = [("Set-Cookie", "session=from-server; Path=/")]


def cookies_sent(server: ScriptedServer) -> list[str | None]:
    return [request.header("Cookie") for request in server.requests]


def test_sync_client_sends_no_cookie_back(
    start_server: StartServer, make_client: MakeClient
) -> None:
    server = start_server(respond_with_result({"ok": True}, SET_COOKIE))
    client = make_client(f"{server.url}/graphql")

    for _ in range(3):
        client.execute_flow(FLOW_ID, {})

    assert cookies_sent(server) == [None, None, None]


@pytest.mark.parametrize("path", ["own-transport", "httpx-transport"])
async def test_async_client_sends_no_cookie_back(
    start_server: StartServer, make_client: MakeClient, path: str
) -> None:
    server = start_server(respond_with_result({"ok": True}, SET_COOKIE))
    # With a transport of httpx's, every call goes through AsyncClient.send and its cookies.
    options = {"async_transport": httpx.AsyncHTTPTransport()} if path == "httpx-transport" else {}
    client = make_client(f"{server.url}/graphql", **options)

    for _ in range(3):
        await client.aexecute_flow(FLOW_ID, {})

    assert cookies_sent(server) == [None, None, None]


# --- Patched httpx --------------------------------------------------------------------------


@pytest.mark.parametrize("autospec", [False, True], ids=["async-mock", "autospec"])
async def test_patched_async_client_send_receives_call(
    start_server: StartServer, make_client: MakeClient, autospec: bool
) -> None:
    server = start_server(respond_with_result({"via": "server"}))
    endpoint = f"{server.url}/graphql"
    client = make_client(endpoint)
    # An AsyncClient built before the patch must honour it too.
    await client.aexecute_flow(FLOW_ID, {})
    sent: list[httpx.Request] = []

    def mocked_send(*args: Any, **options: Any) -> httpx.Response:
        # An autospec mock receives the AsyncClient as its first argument, and an AsyncMock
        # does not.
        request = args[-1]
        sent.append(request)
        return httpx.Response(200, content=execute_workflow_body({"via": "mock"}), request=request)

    patch: contextlib.AbstractContextManager[Any]
    if autospec:
        patch = mock.patch.object(httpx.AsyncClient, "send", autospec=True, side_effect=mocked_send)
    else:
        patch = mock.patch.object(
            httpx.AsyncClient, "send", new=mock.AsyncMock(side_effect=mocked_send)
        )
    with patch:
        result = await client.aexecute_flow(FLOW_ID, {"topic": "mocks"})

    assert result.result == {"via": "mock"}
    (request,) = sent
    assert request.url == httpx.URL(endpoint)
    assert json.loads(request.content)["variables"]["payload"] == {"topic": "mocks"}
    # Only the call made before the patch reached the server.
    assert len(server.requests) == 1
