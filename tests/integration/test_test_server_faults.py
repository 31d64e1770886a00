"""Fault injection in LamaticTestServer over real sockets."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import pytest

from langchain_lamatic.testing import Fault, LamaticTestServer

EXECUTE = (
    "query Run($workflowId: String!, $payload: JSON) {"
    " executeWorkflow(workflowId: $workflowId, payload: $payload) { status result } }"
)
CHECK_STATUS = "query Check($requestId: String!) { checkStatus(requestId: $requestId) }"

_shared_clients: list[httpx.Client] = []


@pytest.fixture(scope="module", autouse=True)
def shared_client() -> Iterator[httpx.Client]:
    """One pooled client for the module: a new httpx.Client costs about 0.1 s of TLS setup."""
    with httpx.Client(timeout=30) as http:
        _shared_clients.append(http)
        yield http
        _shared_clients.clear()


@pytest.fixture
def server() -> Iterator[LamaticTestServer]:
    with LamaticTestServer() as test_server:
        test_server.add_flow("echo", lambda payload: {"echo": payload})
        test_server.add_flow("other", lambda payload: {"other": True})
        yield test_server


def headers(server: LamaticTestServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.api_key}", "x-project-id": server.project_id}


def run_flow(
    server: LamaticTestServer, flow_id: str = "echo", http: httpx.Client | None = None
) -> httpx.Response:
    return (http or _shared_clients[0]).post(
        server.endpoint,
        json={"query": EXECUTE, "variables": {"workflowId": flow_id, "payload": {"a": 1}}},
        headers=headers(server),
    )


def check_status(server: LamaticTestServer, request_id: str) -> httpx.Response:
    return _shared_clients[0].post(
        server.endpoint,
        json={"query": CHECK_STATUS, "variables": {"requestId": request_id}},
        headers=headers(server),
    )


def fresh_client(timeout: float = 30) -> httpx.Client:
    """A client of its own, for faults that break the connection."""
    return httpx.Client(timeout=timeout)


def test_status_fault_answers_json_error_with_code(server: LamaticTestServer) -> None:
    server.inject(Fault.status(503))
    response = run_flow(server)
    assert response.status_code == 503
    assert response.json() == {
        "errors": [
            {"message": "Service Unavailable", "extensions": {"code": "SERVICE_UNAVAILABLE"}}
        ]
    }
    assert server.execution_count("echo") == 0


@pytest.mark.parametrize(
    ("status", "code"),
    [(500, "INTERNAL_SERVER_ERROR"), (502, "BAD_GATEWAY"), (504, "GATEWAY_TIMEOUT")],
)
def test_server_error_statuses_carry_their_codes(
    server: LamaticTestServer, status: int, code: str
) -> None:
    server.inject(Fault.status(status))
    response = run_flow(server)
    assert response.status_code == status
    assert response.json()["errors"][0]["extensions"]["code"] == code


def test_fault_applies_the_given_number_of_times(server: LamaticTestServer) -> None:
    server.inject(Fault.status(502), times=2)
    statuses = [run_flow(server).status_code for _ in range(3)]
    assert statuses == [502, 502, 200]
    assert server.execution_count("echo") == 1
    assert server.pending_faults == 0


def test_status_fault_with_empty_body(server: LamaticTestServer) -> None:
    server.inject(Fault.status(502, body="empty"))
    response = run_flow(server)
    assert response.status_code == 502
    assert response.content == b""
    assert "content-type" not in response.headers


def test_rate_limit_sends_retry_after_seconds(server: LamaticTestServer) -> None:
    server.inject(Fault.rate_limit(retry_after=2))
    response = run_flow(server)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"
    assert response.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"


def test_rate_limit_defaults_to_one_second(server: LamaticTestServer) -> None:
    server.inject(Fault.rate_limit())
    assert run_flow(server).headers["retry-after"] == "1"


def test_retry_after_as_http_date(server: LamaticTestServer) -> None:
    moment = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    server.inject(Fault.status(429, retry_after=moment))
    header = run_flow(server).headers["retry-after"]
    assert header == "Wed, 02 Jan 2030 03:04:05 GMT"
    assert parsedate_to_datetime(header) == moment


def test_retry_after_string_is_sent_verbatim(server: LamaticTestServer) -> None:
    server.inject(Fault.status(503, retry_after="1.5"))
    assert run_flow(server).headers["retry-after"] == "1.5"


def test_status_fault_custom_message_and_headers(server: LamaticTestServer) -> None:
    server.inject(Fault.status(429, message="Slow down", headers={"X-RateLimit-Remaining": "0"}))
    response = run_flow(server)
    assert response.json()["errors"][0]["message"] == "Slow down"
    assert response.headers["x-ratelimit-remaining"] == "0"


def test_html_fault_answers_a_proxy_page(server: LamaticTestServer) -> None:
    server.inject(Fault.html(502))
    response = run_flow(server)
    assert response.status_code == 502
    assert response.headers["content-type"].startswith("text/html")
    assert response.text.startswith("<!DOCTYPE html>")
    assert "502 Bad Gateway" in response.text


def test_html_fault_with_status_200_and_custom_body(server: LamaticTestServer) -> None:
    server.inject(Fault.html(200, body="<html>maintenance</html>"))
    response = run_flow(server)
    assert response.status_code == 200
    assert response.text == "<html>maintenance</html>"


def test_delay_fault_answers_normally_after_waiting(server: LamaticTestServer) -> None:
    server.inject(Fault.delay(0.3))
    response = run_flow(server)
    assert response.status_code == 200
    assert response.elapsed.total_seconds() >= 0.3
    assert server.execution_count("echo") == 1


def test_stall_fault_times_out_a_short_read_timeout(server: LamaticTestServer) -> None:
    server.inject(Fault.stall(30))
    with fresh_client(timeout=0.3) as http, pytest.raises(httpx.ReadTimeout):
        run_flow(server, http=http)


def test_stall_fault_sends_the_body_after_the_stall(server: LamaticTestServer) -> None:
    server.inject(Fault.stall(0.2))
    with fresh_client() as http:
        response = run_flow(server, http=http)
    assert response.json()["data"]["executeWorkflow"]["status"] == "success"


def test_invalid_json_fault_breaks_parsing(server: LamaticTestServer) -> None:
    server.inject(Fault.invalid_json())
    response = run_flow(server)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    with pytest.raises(ValueError, match="Expecting"):
        response.json()
    assert server.execution_count("echo") == 0


def test_truncated_json_fault_cuts_the_real_answer(server: LamaticTestServer) -> None:
    server.inject(Fault.truncated_json())
    response = run_flow(server)
    assert response.text.startswith('{"data":{"executeWorkflow":')
    with pytest.raises(ValueError, match=r"Unterminated|Expecting"):
        response.json()
    assert server.execution_count("echo") == 1


def test_empty_body_fault(server: LamaticTestServer) -> None:
    server.inject(Fault.empty_body())
    response = run_flow(server)
    assert response.status_code == 200
    assert response.content == b""


def test_null_data_fault(server: LamaticTestServer) -> None:
    server.inject(Fault.null_data())
    assert run_flow(server).json() == {"data": None}


def test_graphql_error_fault_carries_message_and_code(server: LamaticTestServer) -> None:
    server.inject(Fault.graphql_error("Invalid API key", code="UNAUTHENTICATED"))
    response = run_flow(server)
    assert response.status_code == 200
    assert response.json() == {
        "errors": [{"message": "Invalid API key", "extensions": {"code": "UNAUTHENTICATED"}}],
        "data": None,
    }


def test_graphql_error_fault_without_code(server: LamaticTestServer) -> None:
    server.inject(Fault.graphql_error("Flow not found", status=404))
    response = run_flow(server)
    assert response.status_code == 404
    assert "extensions" not in response.json()["errors"][0]


def test_drop_connection_fault_closes_without_answer(server: LamaticTestServer) -> None:
    server.inject(Fault.drop_connection())
    with fresh_client() as http, pytest.raises(httpx.RemoteProtocolError):
        run_flow(server, http=http)
    assert server.execution_count("echo") == 0


def test_reset_mid_body_runs_the_flow(server: LamaticTestServer) -> None:
    server.inject(Fault.reset_mid_body())
    with fresh_client() as http, pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        run_flow(server, http=http)
    assert server.execution_count("echo") == 1


def test_reset_mid_body_sends_part_of_the_body() -> None:
    with LamaticTestServer() as test_server:
        test_server.add_flow("echo", lambda payload: {"text": "x" * 5000})
        test_server.inject(Fault.reset_mid_body())
        body = b'{"query": "{ executeWorkflow(workflowId: \\"echo\\") { result } }"}'
        request = (
            f"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {test_server.api_key}\r\n"
            f"x-project-id: {test_server.project_id}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        received = b""
        with socket.create_connection(("127.0.0.1", test_server.port), timeout=10) as raw:
            raw.sendall(request)
            try:
                while chunk := raw.recv(65536):
                    received += chunk
            except ConnectionResetError:
                pass
    head, _, partial = received.partition(b"\r\n\r\n")
    declared = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    assert head.startswith(b"HTTP/1.1 200")
    assert 0 < len(partial) < declared


def test_fault_targets_one_operation(server: LamaticTestServer) -> None:
    server.inject(Fault.status(503), operation="checkStatus")
    assert run_flow(server).status_code == 200
    assert check_status(server, "unknown").status_code == 503


def test_fault_targets_one_flow_id(server: LamaticTestServer) -> None:
    server.inject(Fault.status(503), target_id="other")
    assert run_flow(server, "echo").status_code == 200
    assert run_flow(server, "other").status_code == 503
    assert run_flow(server, "other").status_code == 200


def test_fault_targets_a_request_id(server: LamaticTestServer) -> None:
    server.inject(Fault.status(500), operation="checkStatus", target_id="req-1")
    assert check_status(server, "req-2").status_code == 200
    assert check_status(server, "req-1").status_code == 500


def test_unlimited_fault_lasts_until_cleared(server: LamaticTestServer) -> None:
    server.inject(Fault.status(503), times=None)
    statuses = [run_flow(server).status_code for _ in range(4)]
    server.clear_faults()
    assert statuses == [503] * 4
    assert run_flow(server).status_code == 200


def test_faults_are_used_in_injection_order(server: LamaticTestServer) -> None:
    server.inject(Fault.status(502))
    server.inject(Fault.status(503))
    statuses = [run_flow(server).status_code for _ in range(3)]
    assert statuses == [502, 503, 200]


def test_faults_apply_before_authentication(server: LamaticTestServer) -> None:
    server.inject(Fault.rate_limit())
    response = _shared_clients[0].post(server.endpoint, json={"query": EXECUTE})
    assert response.status_code == 429


def test_keep_alive_connection_survives_error_faults(server: LamaticTestServer) -> None:
    server.inject(Fault.status(503, body="empty"))
    server.inject(Fault.html(502))
    with fresh_client() as http:
        statuses = [run_flow(server, http=http).status_code for _ in range(3)]
    assert statuses == [503, 502, 200]


@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        ({"times": 0}, ValueError, "times"),
        ({"times": True}, ValueError, "times"),
        ({"operation": "runFlow"}, ValueError, "operation"),
    ],
)
def test_inject_rejects_invalid_arguments(
    server: LamaticTestServer, kwargs: dict[str, Any], error: type[Exception], fragment: str
) -> None:
    with pytest.raises(error, match=fragment):
        server.inject(Fault.status(503), **kwargs)


def test_inject_rejects_the_bare_fault_base_class(server: LamaticTestServer) -> None:
    with pytest.raises(TypeError, match="Fault constructor"):
        server.inject(Fault())


@pytest.mark.parametrize(
    ("build", "fragment"),
    [
        (lambda: Fault.status(99), "HTTP status"),
        (lambda: Fault.status(503, retry_after=-1), "retry_after"),
        (lambda: Fault.status(503, body="html"), "body"),  # type: ignore[arg-type]
        (lambda: Fault.delay(-1), "seconds"),
        (lambda: Fault.stall(float("inf")), "seconds"),
        (lambda: Fault.graphql_error(""), "message"),
    ],
)
def test_fault_constructors_reject_invalid_values(build: Any, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        build()
