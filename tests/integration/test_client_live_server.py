"""LamaticClient against a real LamaticTestServer on 127.0.0.1: sockets, auth, faults, pooling."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

import pytest

import langchain_lamatic.client as client_module
from langchain_lamatic import (
    LamaticAuthenticationError,
    LamaticBadRequestError,
    LamaticClient,
    LamaticConnectionError,
    LamaticExecutionError,
    LamaticFlow,
    LamaticNotFoundError,
    LamaticPermissionError,
    LamaticRateLimitError,
    LamaticResponseError,
    LamaticServerError,
    LamaticTimeoutError,
    __version__,
    access_token_provider,
    create_access_token,
)
from langchain_lamatic.testing import Fault, LamaticTestServer

ARTICLE = {"url": "https://example.org/posts/bounded-queues"}
ARTICLE_SUMMARY = (
    'The post "Bounded queues" on example.org makes 2 key points and closes with practical '
    "advice for engineers."
)

Waiter = Callable[[Callable[[], bool], float], bool]


@pytest.fixture
def recorded_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the client's retry waits instead of sleeping."""
    waits: list[float] = []
    real_async_sleep = asyncio.sleep

    async def fake_async_sleep(seconds: float) -> None:
        waits.append(seconds)
        await real_async_sleep(0)

    monkeypatch.setattr(client_module.time, "sleep", waits.append)
    monkeypatch.setattr(client_module.asyncio, "sleep", fake_async_sleep)
    return waits


def _token_client(server: LamaticTestServer, token: str, **settings: object) -> LamaticClient:
    return LamaticClient(
        endpoint=server.endpoint,
        project_id=server.project_id,
        access_token=token,
        **settings,  # type: ignore[arg-type]
    )


def _closed_port() -> int:
    """Return a loopback port that was just bound and released, so nothing listens on it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# --- Success over real sockets --------------------------------------------------------------


def test_flow_runs_over_loopback(server: LamaticTestServer, client: LamaticClient) -> None:
    response = client.execute_flow("article-summariser", ARTICLE)
    assert response.status == "success"
    assert response.result == {"summary": ARTICLE_SUMMARY}
    assert server.execution_count("article-summariser") == 1


async def test_flow_runs_over_loopback_async(client: LamaticClient) -> None:
    response = await client.aexecute_flow("article-summariser", ARTICLE)
    assert response.result == {"summary": ARTICLE_SUMMARY}


def test_agent_runs_over_loopback(client: LamaticClient) -> None:
    response = client.execute_agent("research-agent", {"question": "Why use bounded queues?"})
    assert response.status == "success"
    assert isinstance(response.result, dict)
    assert response.result


def test_server_sees_the_protocol_headers(server: LamaticTestServer, client: LamaticClient) -> None:
    client.execute_flow("article-summariser", ARTICLE)
    request = server.requests[0]
    assert request.method == "POST"
    assert request.path == "/graphql"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-project-id"] == server.project_id
    assert request.headers["authorization"] == f"Bearer {server.api_key}"
    assert "x-lamatic-signature" not in request.headers
    assert request.headers["user-agent"] == f"langchain-lamatic/{__version__}"
    assert request.operation == "executeWorkflow"
    assert request.variables == {"workflowId": "article-summariser", "payload": ARTICLE}


def test_base_url_endpoint_reaches_graphql(server: LamaticTestServer) -> None:
    with LamaticClient(
        endpoint=server.base_url + "/", project_id=server.project_id, api_key=server.api_key
    ) as client:
        client.execute_flow("article-summariser", ARTICLE)
    assert server.requests[0].path == "/graphql"


def test_bypass_cache_header_reaches_the_server(server: LamaticTestServer) -> None:
    with LamaticClient(
        endpoint=server.endpoint,
        project_id=server.project_id,
        api_key=server.api_key,
        bypass_cache=True,
    ) as client:
        client.execute_flow("article-summariser", ARTICLE)
    assert server.requests[0].headers["x-bypass-cache"] == "True"


# --- Credentials ----------------------------------------------------------------------------


def test_server_minted_access_token_is_accepted(server: LamaticTestServer) -> None:
    token = server.create_access_token(expires_in=300)
    with _token_client(server, token) as client:
        assert client.execute_flow("article-summariser", ARTICLE).result is not None
    headers = server.requests[0].headers
    assert headers["x-lamatic-signature"] == token
    assert "authorization" not in headers


def test_create_access_token_is_accepted_by_the_server(server: LamaticTestServer) -> None:
    token = create_access_token(server.secret_key, server.project_id, expires_in=300)
    with _token_client(server, token) as client:
        response = client.execute_flow("article-summariser", ARTICLE)
    assert response.result == {"summary": ARTICLE_SUMMARY}


def test_token_without_expiry_is_accepted(server: LamaticTestServer) -> None:
    token = create_access_token(server.secret_key, server.project_id)
    with _token_client(server, token) as client:
        assert client.execute_flow("article-summariser", ARTICLE).status == "success"


def test_expired_token_is_a_permission_error(server: LamaticTestServer) -> None:
    expired = server.create_access_token(expires_in=-60)
    with _token_client(server, expired) as client, pytest.raises(LamaticPermissionError) as caught:
        client.execute_flow("article-summariser", ARTICLE)
    assert caught.value.status_code == 403
    assert server.execution_count("article-summariser") == 0


def test_token_for_another_project_is_rejected(server: LamaticTestServer) -> None:
    token = create_access_token(server.secret_key, "someone-elses-project", expires_in=300)
    with _token_client(server, token) as client, pytest.raises(LamaticPermissionError):
        client.execute_flow("article-summariser", ARTICLE)


def test_token_signed_with_wrong_key_is_rejected(server: LamaticTestServer) -> None:
    token = create_access_token("not-the-project-secret-0000000000", server.project_id)
    with (
        _token_client(server, token) as client,
        pytest.raises(LamaticAuthenticationError) as caught,
    ):
        client.execute_flow("article-summariser", ARTICLE)
    assert caught.value.status_code == 401


def test_wrong_api_key_is_an_authentication_error(server: LamaticTestServer) -> None:
    with (
        LamaticClient(
            endpoint=server.endpoint,
            project_id=server.project_id,
            api_key="lt-" + "wrong0key0000000",
        ) as client,
        pytest.raises(LamaticAuthenticationError) as caught,
    ):
        client.execute_flow("article-summariser", ARTICLE)
    assert caught.value.status_code == 401


def test_wrong_project_id_is_a_permission_error(server: LamaticTestServer) -> None:
    with (
        LamaticClient(
            endpoint=server.endpoint, project_id="other-project", api_key=server.api_key
        ) as client,
        pytest.raises(LamaticPermissionError),
    ):
        client.execute_flow("article-summariser", ARTICLE)


def test_provider_refreshes_an_expired_token(server: LamaticTestServer) -> None:
    expired = server.create_access_token(expires_in=-60)
    provider = access_token_provider(server.secret_key, server.project_id, expires_in=600)
    with _token_client(server, expired, access_token_provider=provider) as client:
        response = client.execute_flow("article-summariser", ARTICLE)
        client.execute_flow("article-summariser", ARTICLE)
    assert response.result == {"summary": ARTICLE_SUMMARY}
    signatures = [request.headers["x-lamatic-signature"] for request in server.requests]
    assert len(signatures) == 3
    assert signatures[0] == expired
    assert signatures[1] != expired
    assert signatures[2] == signatures[1]


async def test_async_provider_refreshes_an_expired_token_async(
    server: LamaticTestServer,
) -> None:
    calls: list[int] = []

    async def provide() -> str:
        calls.append(1)
        return server.create_access_token(expires_in=600)

    expired = server.create_access_token(expires_in=-60)
    async with _token_client(server, expired, access_token_provider=provide) as client:
        response = await client.aexecute_flow("article-summariser", ARTICLE)
    assert response.result == {"summary": ARTICLE_SUMMARY}
    assert calls == [1]


def test_provider_refreshes_only_once(server: LamaticTestServer) -> None:
    calls: list[int] = []

    def provide() -> str:
        calls.append(1)
        return server.create_access_token(expires_in=-60)

    expired = server.create_access_token(expires_in=-60)
    client = _token_client(server, expired, access_token_provider=provide)
    with client, pytest.raises(LamaticPermissionError):
        client.execute_flow("article-summariser", ARTICLE)
    assert calls == [1]
    assert len(server.requests) == 2


# --- Errors from the server -----------------------------------------------------------------


def test_unknown_flow_is_not_found(client: LamaticClient) -> None:
    with pytest.raises(LamaticNotFoundError) as caught:
        client.execute_flow("no-such-flow", {})
    assert caught.value.flow_id == "no-such-flow"


def test_unknown_agent_is_not_found(client: LamaticClient) -> None:
    with pytest.raises(LamaticNotFoundError) as caught:
        client.execute_agent("no-such-agent", {})
    assert caught.value.agent_id == "no-such-agent"


def test_payload_against_schema_is_a_bad_request(client: LamaticClient) -> None:
    with pytest.raises(LamaticBadRequestError):
        client.execute_flow("plan-trip", {"city": "Lisbon", "days": "three"})


def test_failing_node_is_an_execution_error(client: LamaticClient) -> None:
    with pytest.raises(LamaticExecutionError) as caught:
        client.execute_flow("article-summariser", {"url": "not a url"})
    assert caught.value.flow_id == "article-summariser"
    assert caught.value.request_id is not None
    assert "reported status 'error'" in str(caught.value)
    assert "Scraper node failed" in str(caught.value)


def test_rate_limit_is_retried_after_the_servers_wait(
    server: LamaticTestServer, client: LamaticClient, recorded_sleeps: list[float]
) -> None:
    server.inject(Fault.rate_limit(retry_after=2), times=2)
    response = client.execute_flow("article-summariser", ARTICLE)
    assert response.result == {"summary": ARTICLE_SUMMARY}
    assert recorded_sleeps == [2.0, 2.0]
    assert len(server.requests) == 3
    assert server.execution_count("article-summariser") == 1


def test_rate_limit_exhausted_raises_with_retry_after(
    server: LamaticTestServer, recorded_sleeps: list[float]
) -> None:
    server.inject(Fault.rate_limit(retry_after=1), times=None)
    with (
        LamaticClient(
            endpoint=server.endpoint,
            project_id=server.project_id,
            api_key=server.api_key,
            max_retries=1,
        ) as client,
        pytest.raises(LamaticRateLimitError) as caught,
    ):
        client.execute_flow("article-summariser", ARTICLE)
    assert caught.value.retry_after == 1.0
    assert caught.value.attempts == 2


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_errors_are_retried(
    server: LamaticTestServer, client: LamaticClient, recorded_sleeps: list[float], status: int
) -> None:
    server.inject(Fault.status(status))
    assert client.execute_flow("article-summariser", ARTICLE).status == "success"
    assert len(server.requests) == 2
    assert len(recorded_sleeps) == 1


def test_html_error_page_is_a_server_error(
    server: LamaticTestServer, recorded_sleeps: list[float]
) -> None:
    server.inject(Fault.html(502), times=None)
    with (
        LamaticClient(
            endpoint=server.endpoint,
            project_id=server.project_id,
            api_key=server.api_key,
            max_retries=0,
        ) as client,
        pytest.raises(LamaticServerError) as caught,
    ):
        client.execute_flow("article-summariser", ARTICLE)
    assert caught.value.status_code == 502
    assert "not JSON" in str(caught.value)


def test_server_500_is_not_retried(
    server: LamaticTestServer, client: LamaticClient, recorded_sleeps: list[float]
) -> None:
    server.inject(Fault.status(500))
    with pytest.raises(LamaticServerError):
        client.execute_flow("article-summariser", ARTICLE)
    assert len(server.requests) == 1
    assert recorded_sleeps == []


def test_invalid_json_is_a_response_error(server: LamaticTestServer, client: LamaticClient) -> None:
    server.inject(Fault.invalid_json())
    with pytest.raises(LamaticResponseError):
        client.execute_flow("article-summariser", ARTICLE)


def test_null_data_is_a_response_error(server: LamaticTestServer, client: LamaticClient) -> None:
    server.inject(Fault.null_data())
    with pytest.raises(LamaticResponseError):
        client.execute_flow("article-summariser", ARTICLE)


def test_dropped_connection_is_not_retried(
    server: LamaticTestServer, client: LamaticClient, recorded_sleeps: list[float]
) -> None:
    server.inject(Fault.drop_connection())
    with pytest.raises(LamaticConnectionError):
        client.execute_flow("article-summariser", ARTICLE)
    assert len(server.requests) == 1


def test_client_recovers_after_a_dropped_connection(
    server: LamaticTestServer, client: LamaticClient
) -> None:
    server.inject(Fault.drop_connection())
    with pytest.raises(LamaticConnectionError):
        client.execute_flow("article-summariser", ARTICLE)
    assert client.execute_flow("article-summariser", ARTICLE).status == "success"


# --- Connection failures and timeouts -------------------------------------------------------


def test_connection_refused_is_a_connection_error() -> None:
    port = _closed_port()
    with (
        LamaticClient(
            endpoint=f"http://127.0.0.1:{port}",
            project_id="p",
            api_key="lt-refused0key0000",
            max_retries=0,
        ) as client,
        pytest.raises(LamaticConnectionError) as caught,
    ):
        client.execute_flow("article-summariser", ARTICLE)
    assert not isinstance(caught.value, LamaticTimeoutError)
    assert f"127.0.0.1:{port}" in str(caught.value)


def test_connection_refused_is_retried(recorded_sleeps: list[float]) -> None:
    with (
        LamaticClient(
            endpoint=f"http://127.0.0.1:{_closed_port()}",
            project_id="p",
            api_key="lt-refused0key0000",
            max_retries=2,
        ) as client,
        pytest.raises(LamaticConnectionError) as caught,
    ):
        client.execute_flow("article-summariser", ARTICLE)
    assert caught.value.attempts == 3
    assert len(recorded_sleeps) == 2


async def test_connection_refused_is_a_connection_error_async() -> None:
    async with LamaticClient(
        endpoint=f"http://127.0.0.1:{_closed_port()}",
        project_id="p",
        api_key="lt-refused0key0000",
        max_retries=0,
    ) as client:
        with pytest.raises(LamaticConnectionError):
            await client.aexecute_flow("article-summariser", ARTICLE)


def test_read_timeout_runs_the_flow_once(server: LamaticTestServer, wait_until: Waiter) -> None:
    server.add_flow("slow", lambda payload: {"done": True}, delay=1.0)
    with (
        LamaticClient(
            endpoint=server.endpoint,
            project_id=server.project_id,
            api_key=server.api_key,
            timeout=0.3,
            max_retries=3,
        ) as client,
        pytest.raises(LamaticTimeoutError) as caught,
    ):
        client.execute_flow("slow", {})
    assert "waiting for the response" in str(caught.value)
    assert wait_until(lambda: server.execution_count("slow") >= 1, 10.0)
    assert server.execution_count("slow") == 1
    assert len(server.requests) == 1


async def test_per_call_timeout_applies_async(
    server: LamaticTestServer, client: LamaticClient
) -> None:
    server.add_flow("slow", lambda payload: {"done": True}, delay=1.0)
    with pytest.raises(LamaticTimeoutError):
        await client.aexecute_flow("slow", {}, timeout=0.3)
    assert len(server.requests) == 1


# --- Connections and event loops ------------------------------------------------------------


def _connections_opened(caplog: pytest.LogCaptureFixture) -> int:
    """Count the connections opened by httpcore (sync) and by the client's async transport."""
    return sum(
        1
        for record in caplog.records
        if (record.name.startswith("httpcore") and "connect_tcp.started" in record.getMessage())
        or (
            record.name == "langchain_lamatic._http11"
            and record.getMessage().startswith("Opened a connection")
        )
    )


def test_sequential_calls_reuse_one_connection(
    client: LamaticClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="httpcore"):
        for _ in range(20):
            client.execute_flow("article-summariser", ARTICLE)
    assert _connections_opened(caplog) == 1


async def test_sequential_async_calls_reuse_one_connection(
    client: LamaticClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="langchain_lamatic._http11"):
        for _ in range(20):
            await client.aexecute_flow("article-summariser", ARTICLE)
    assert _connections_opened(caplog) == 1


def test_asyncio_run_twice_on_one_client(client: LamaticClient) -> None:
    first = asyncio.run(client.aexecute_flow("article-summariser", ARTICLE))
    second = asyncio.run(client.aexecute_flow("article-summariser", ARTICLE))
    assert first.result == second.result == {"summary": ARTICLE_SUMMARY}


def test_asyncio_run_twice_on_one_flow(server: LamaticTestServer) -> None:
    flow = LamaticFlow(
        flow_id="article-summariser",
        endpoint=server.endpoint,
        project_id=server.project_id,
        api_key=server.api_key,
        output_key="summary",
    )
    assert asyncio.run(flow.ainvoke(ARTICLE)) == ARTICLE_SUMMARY
    assert asyncio.run(flow.ainvoke(ARTICLE)) == ARTICLE_SUMMARY
    assert asyncio.run(flow.ainvoke(ARTICLE)) == ARTICLE_SUMMARY


def test_client_works_after_close(client: LamaticClient) -> None:
    client.execute_flow("article-summariser", ARTICLE)
    client.close()
    assert client.execute_flow("article-summariser", ARTICLE).status == "success"


async def test_client_works_after_aclose(client: LamaticClient) -> None:
    await client.aexecute_flow("article-summariser", ARTICLE)
    await client.aclose()
    assert (await client.aexecute_flow("article-summariser", ARTICLE)).status == "success"


def test_server_restart_is_survived(server: LamaticTestServer) -> None:
    with LamaticClient(
        endpoint=server.endpoint, project_id=server.project_id, api_key=server.api_key
    ) as client:
        client.execute_flow("article-summariser", ARTICLE)
        port = server.port
        server.stop()
        restarted = LamaticTestServer(
            project_id=server.project_id,
            api_key=server.api_key,
            secret_key=server.secret_key,
            port=port,
        )
        restarted.add_flow("article-summariser", lambda payload: {"summary": "again"})
        with restarted:
            assert client.execute_flow("article-summariser", ARTICLE).result == {"summary": "again"}
