"""Fault tests over real loopback sockets: each failure gives its documented result or error.

Every test here is one row of the table in docs/reliability.md. Most faults come from
``LamaticTestServer.inject``; a response the test server cannot produce (a ``status`` of the
wrong type) comes from ``FixedResponseServer`` below.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import pytest

from langchain_lamatic import (
    LamaticClient,
    LamaticConnectionError,
    LamaticExecutionError,
    LamaticFlow,
    LamaticRateLimitError,
    LamaticResponse,
    LamaticResponseError,
    LamaticServerError,
    LamaticTimeoutError,
)
from langchain_lamatic.testing import Fault, FlowExecutionFailed, LamaticTestServer

FLOW = "fault-flow"
SLOW_FLOW = "slow-flow"
CRASHING_FLOW = "crashing-flow"
FAILING_FLOW = "failing-flow"
BIG_FLOW = "big-flow"
PAYLOAD = {"topic": "faults"}
TEN_MB = 10 * 1024 * 1024

Mode = Literal["sync", "async"]


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> Mode:
    """Run the test through ``execute_flow`` and through ``aexecute_flow``."""
    return request.param  # type: ignore[no-any-return]


class SlowFlow:
    """A flow handler that blocks until released, so a client can time out while it runs."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def __call__(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.release.wait(30)
        return {"done": True}


@pytest.fixture
def slow_flow() -> Iterator[SlowFlow]:
    handler = SlowFlow()
    yield handler
    handler.release.set()


def crash(payload: dict[str, Any]) -> dict[str, Any]:
    raise RuntimeError("database connection lost")


def fail(payload: dict[str, Any]) -> dict[str, Any]:
    raise FlowExecutionFailed("The LLM node returned no text")


@pytest.fixture
def server(slow_flow: SlowFlow) -> Iterator[LamaticTestServer]:
    with LamaticTestServer() as test_server:
        test_server.add_flow(FLOW, lambda payload: {"echo": payload})
        test_server.add_flow(SLOW_FLOW, slow_flow)
        test_server.add_flow(CRASHING_FLOW, crash)
        test_server.add_flow(FAILING_FLOW, fail)
        test_server.add_flow(BIG_FLOW, lambda payload: {"blob": "x" * TEN_MB})
        yield test_server


def make_client(
    endpoint: str, project_id: str, api_key: str, *, fast_backoff: bool = True, **settings: Any
) -> LamaticClient:
    """A client whose computed backoff is a few milliseconds, so retries keep tests short.

    ``Retry-After`` is still honoured in full: only the computed backoff is shortened.
    """
    client = LamaticClient(endpoint=endpoint, project_id=project_id, api_key=api_key, **settings)
    if fast_backoff:
        client.retry_policy = dataclasses.replace(
            client.retry_policy, initial_delay=0.01, max_delay=0.05
        )
    return client


def client_for(server: LamaticTestServer, **settings: Any) -> LamaticClient:
    return make_client(server.endpoint, server.project_id, server.api_key, **settings)


def execute(
    client: LamaticClient, mode: Mode, flow_id: str = FLOW, payload: Any = PAYLOAD
) -> LamaticResponse:
    """Run one execution through the sync or the async method, then close the client."""
    if mode == "sync":
        with client:
            return client.execute_flow(flow_id, payload)

    async def run() -> LamaticResponse:
        async with client:
            return await client.aexecute_flow(flow_id, payload)

    return asyncio.run(run())


def wait_until_idle(server: LamaticTestServer, timeout: float = 10.0) -> None:
    """Wait until the server finished every request, so its counters are final."""
    deadline = time.monotonic() + timeout
    while server.in_flight and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.in_flight == 0, "the server is still handling a request"


def gaps(server: LamaticTestServer) -> list[float]:
    times = [record.time for record in server.requests]
    return [later - earlier for earlier, later in itertools.pairwise(times)]


# --- Rate limits and gateway errors: retried within the policy ------------------------------


def test_rate_limit_honours_retry_after_seconds(server: LamaticTestServer, mode: Mode) -> None:
    server.inject(Fault.rate_limit(retry_after=1), times=1)

    response = execute(client_for(server), mode)

    assert response.result == {"echo": PAYLOAD}
    assert len(server.requests) == 2
    assert gaps(server)[0] >= 0.9


def test_rate_limit_honours_retry_after_http_date(server: LamaticTestServer, mode: Mode) -> None:
    # An HTTP-date has whole seconds, so "now + 3 s" requests a wait of 2 to 3 seconds, which
    # leaves a second of slack for a slow machine before the 0.9 s bound below.
    retry_at = datetime.now(timezone.utc) + timedelta(seconds=3)
    server.inject(Fault.rate_limit(retry_after=retry_at), times=1)

    response = execute(client_for(server), mode)

    assert response.result == {"echo": PAYLOAD}
    assert len(server.requests) == 2
    assert gaps(server)[0] >= 0.9


def test_rate_limit_without_retry_after_backs_off(server: LamaticTestServer, mode: Mode) -> None:
    server.inject(Fault.rate_limit(retry_after=None), times=3)

    with pytest.raises(LamaticRateLimitError) as caught:
        execute(client_for(server), mode)

    assert caught.value.attempts == 3
    assert caught.value.retry_after is None
    assert caught.value.status_code == 429
    assert len(server.requests) == 3
    assert server.execution_count(FLOW) == 0


def test_rate_limit_retries_stop_at_max_retries(server: LamaticTestServer, mode: Mode) -> None:
    server.inject(Fault.rate_limit(retry_after=0), times=10)

    with pytest.raises(LamaticRateLimitError) as caught:
        execute(client_for(server, max_retries=4), mode)

    assert caught.value.attempts == 5
    assert len(server.requests) == 5


def test_retry_after_over_cap_raises_at_once(server: LamaticTestServer, mode: Mode) -> None:
    server.inject(Fault.rate_limit(retry_after=3600), times=1)

    with pytest.raises(LamaticRateLimitError) as caught:
        execute(client_for(server), mode)

    assert caught.value.attempts == 1
    assert caught.value.retry_after == pytest.approx(3600, abs=1)
    assert len(server.requests) == 1


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_error_is_retried_then_raises_with_attempts(
    server: LamaticTestServer, mode: Mode, status: int
) -> None:
    server.inject(Fault.status(status), times=3)

    with pytest.raises(LamaticServerError) as caught:
        execute(client_for(server), mode)

    assert caught.value.status_code == status
    assert caught.value.attempts == 3
    assert "attempts=3" in str(caught.value)
    assert len(server.requests) == 3
    assert server.execution_count(FLOW) == 0


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_error_then_success_returns_the_result(
    server: LamaticTestServer, mode: Mode, status: int
) -> None:
    server.inject(Fault.status(status), times=2)

    response = execute(client_for(server), mode)

    assert response.result == {"echo": PAYLOAD}
    assert len(server.requests) == 3
    assert server.execution_count(FLOW) == 1


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_error_honours_retry_after_seconds(
    server: LamaticTestServer, mode: Mode, status: int
) -> None:
    # The shortened backoff is at most 0.05 s, so a gap of 0.9 s comes from Retry-After.
    server.inject(Fault.status(status, retry_after=1), times=1)

    response = execute(client_for(server), mode)

    assert response.result == {"echo": PAYLOAD}
    assert len(server.requests) == 2
    assert gaps(server)[0] >= 0.9


def test_unavailable_honours_retry_after_http_date(server: LamaticTestServer, mode: Mode) -> None:
    # As for 429 above: "now + 3 s" as an HTTP-date requests a wait of 2 to 3 seconds.
    retry_at = datetime.now(timezone.utc) + timedelta(seconds=3)
    server.inject(Fault.status(503, retry_after=retry_at), times=1)

    response = execute(client_for(server), mode)

    assert response.result == {"echo": PAYLOAD}
    assert len(server.requests) == 2
    assert gaps(server)[0] >= 0.9


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_retry_after_over_cap_raises_at_once(
    server: LamaticTestServer, mode: Mode, status: int
) -> None:
    server.inject(Fault.status(status, retry_after=3600), times=1)

    with pytest.raises(LamaticServerError) as caught:
        execute(client_for(server), mode)

    assert caught.value.status_code == status
    assert caught.value.attempts == 1
    assert caught.value.retry_after == pytest.approx(3600, abs=1)
    assert "the server asked to wait 3600 s" in str(caught.value)
    assert len(server.requests) == 1
    assert server.execution_count(FLOW) == 0


def test_retried_503_raises_with_retry_after(server: LamaticTestServer, mode: Mode) -> None:
    server.inject(Fault.status(503, retry_after=0), times=3)

    with pytest.raises(LamaticServerError) as caught:
        execute(client_for(server), mode)

    assert caught.value.status_code == 503
    assert caught.value.retry_after == 0
    assert caught.value.attempts == 3
    assert "attempts=3" in str(caught.value)
    assert len(server.requests) == 3
    assert server.execution_count(FLOW) == 0


def test_gateway_retry_waits_for_the_backoff(server: LamaticTestServer) -> None:
    # The default policy waits 0.25 to 0.5 s before the first retry ("equal jitter").
    server.inject(Fault.status(503), times=1)

    execute(client_for(server, fast_backoff=False), "sync")

    assert gaps(server)[0] >= 0.2


# --- Failures during an execution: never retried, exactly one execution ----------------------


def test_server_error_500_is_not_retried(server: LamaticTestServer, mode: Mode) -> None:
    with pytest.raises(LamaticServerError) as caught:
        execute(client_for(server), mode, CRASHING_FLOW)

    wait_until_idle(server)
    assert caught.value.status_code == 500
    assert caught.value.attempts == 1
    assert len(server.requests) == 1
    assert server.execution_count(CRASHING_FLOW) == 1


def test_read_timeout_during_execution_is_not_retried(
    server: LamaticTestServer, slow_flow: SlowFlow, mode: Mode
) -> None:
    with pytest.raises(LamaticTimeoutError) as caught:
        execute(client_for(server, timeout=0.5), mode, SLOW_FLOW)

    slow_flow.release.set()
    wait_until_idle(server)
    assert caught.value.attempts == 1
    assert "waiting for the response" in str(caught.value)
    assert len(server.requests) == 1
    assert server.execution_count(SLOW_FLOW) == 1


def test_response_stalled_after_headers_times_out(server: LamaticTestServer, mode: Mode) -> None:
    server.inject(Fault.stall(5), times=1)

    with pytest.raises(LamaticTimeoutError) as caught:
        execute(client_for(server, timeout=0.5), mode)

    assert caught.value.attempts == 1
    assert len(server.requests) == 1
    assert server.execution_count(FLOW) == 1


def test_connection_reset_mid_response_is_not_retried(
    server: LamaticTestServer, mode: Mode
) -> None:
    server.inject(Fault.reset_mid_body(), times=1)

    with pytest.raises(LamaticConnectionError) as caught:
        execute(client_for(server), mode)

    assert not isinstance(caught.value, LamaticTimeoutError)
    assert caught.value.attempts == 1
    assert len(server.requests) == 1
    assert server.execution_count(FLOW) == 1


def test_connection_dropped_before_any_answer_is_not_retried(
    server: LamaticTestServer, mode: Mode
) -> None:
    # The request reached the server, so the flow may have run: it is not sent again.
    server.inject(Fault.drop_connection(), times=1)

    with pytest.raises(LamaticConnectionError) as caught:
        execute(client_for(server), mode)

    assert caught.value.attempts == 1
    assert len(server.requests) == 1


def test_flow_reporting_failure_raises_execution_error(
    server: LamaticTestServer, mode: Mode
) -> None:
    with pytest.raises(LamaticExecutionError) as caught:
        execute(client_for(server), mode, FAILING_FLOW)

    assert "The LLM node returned no text" in str(caught.value)
    assert caught.value.attempts == 1
    assert server.execution_count(FAILING_FLOW) == 1


# --- Connection failures before the request is sent: retried --------------------------------


def unused_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_connection_refused_is_retried_then_raises(mode: Mode) -> None:
    client = make_client(
        f"http://127.0.0.1:{unused_port()}/graphql", "project", "lt-refused-key-000000"
    )

    with pytest.raises(LamaticConnectionError) as caught:
        execute(client, mode)

    assert not isinstance(caught.value, LamaticTimeoutError)
    assert caught.value.attempts == 3
    assert "could not reach" in str(caught.value)


# --- Broken bodies ---------------------------------------------------------------------------


def test_html_error_page_raises_server_error(server: LamaticTestServer, mode: Mode) -> None:
    server.inject(Fault.html(502), times=3)

    with pytest.raises(LamaticServerError) as caught:
        execute(client_for(server), mode)

    assert caught.value.status_code == 502
    assert "not JSON" in str(caught.value)
    assert "502 Bad Gateway" in (caught.value.body_excerpt or "")
    assert caught.value.attempts == 3


def test_html_page_with_status_200_raises_response_error(
    server: LamaticTestServer, mode: Mode
) -> None:
    server.inject(Fault.html(200, body="<html><body>Welcome</body></html>"), times=1)

    with pytest.raises(LamaticResponseError) as caught:
        execute(client_for(server), mode)

    assert "not valid JSON" in str(caught.value)
    assert caught.value.attempts == 1


def test_empty_body_raises_response_error(server: LamaticTestServer, mode: Mode) -> None:
    server.inject(Fault.empty_body(200), times=1)

    with pytest.raises(LamaticResponseError) as caught:
        execute(client_for(server), mode)

    assert "empty body" in str(caught.value)
    assert len(server.requests) == 1


def test_empty_body_with_gateway_status_raises_server_error(
    server: LamaticTestServer, mode: Mode
) -> None:
    server.inject(Fault.empty_body(502), times=3)

    with pytest.raises(LamaticServerError) as caught:
        execute(client_for(server), mode)

    assert "the body is empty" in str(caught.value)
    assert caught.value.attempts == 3


def test_truncated_json_raises_response_error_without_retry(
    server: LamaticTestServer, mode: Mode
) -> None:
    server.inject(Fault.truncated_json(), times=1)

    with pytest.raises(LamaticResponseError) as caught:
        execute(client_for(server), mode)

    assert "not valid JSON" in str(caught.value)
    assert caught.value.attempts == 1
    assert server.execution_count(FLOW) == 1


def test_invalid_json_raises_response_error(server: LamaticTestServer, mode: Mode) -> None:
    server.inject(Fault.invalid_json(200), times=1)

    with pytest.raises(LamaticResponseError) as caught:
        execute(client_for(server), mode)

    assert "not valid JSON" in str(caught.value)


def test_null_data_raises_response_error(server: LamaticTestServer, mode: Mode) -> None:
    server.inject(Fault.null_data(), times=1)

    with pytest.raises(LamaticResponseError) as caught:
        execute(client_for(server), mode)

    assert "no data.executeWorkflow" in str(caught.value)


class FixedResponseServer:
    """A loopback HTTP/1.1 server that responds to every request with one fixed JSON body."""

    def __init__(self, body: bytes, status: int = 200) -> None:
        self.body = body
        self.status = status
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.requests += 1
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(outer.body)))
                self.end_headers()
                self.wfile.write(outer.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/graphql"

    def __enter__(self) -> FixedResponseServer:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize("status_value", [42, None, True, ["success"], {"value": "success"}])
def test_wrong_typed_status_raises_response_error(status_value: Any, mode: Mode) -> None:
    body = json.dumps(
        {"data": {"executeWorkflow": {"status": status_value, "result": {"ok": 1}}}}
    ).encode()

    with FixedResponseServer(body) as fixed:
        client = make_client(fixed.endpoint, "project", "lt-fixed-response-key")
        with pytest.raises(LamaticResponseError) as caught:
            execute(client, mode)

    assert "status of type" in str(caught.value)
    assert fixed.requests == 1


def test_ten_megabyte_result_is_returned_whole(server: LamaticTestServer, mode: Mode) -> None:
    response = execute(client_for(server), mode, BIG_FLOW)

    assert len(response.result["blob"]) == TEN_MB
    assert set(response.result["blob"]) == {"x"}


def test_ten_megabyte_result_reaches_the_runnable_output(server: LamaticTestServer) -> None:
    flow = LamaticFlow(
        flow_id=BIG_FLOW,
        output_key="blob",
        endpoint=server.endpoint,
        project_id=server.project_id,
        api_key=server.api_key,
    )

    output = flow.invoke({})

    assert len(output) == TEN_MB
    flow.lamatic_client.close()
