"""LamaticTestServer over real sockets: lifecycle, authentication, routing, flows and records."""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt as pyjwt
import pytest

from langchain_lamatic.testing import FlowExecutionFailed, LamaticTestServer, RecordedRequest

API_KEY = "lt-integration-test-key"
SECRET_KEY = "integration-test-secret-0123456789abcdef"
EXECUTE = (
    "query Run($workflowId: String!, $payload: JSON) {"
    " executeWorkflow(workflowId: $workflowId, payload: $payload)"
    " { status result requestId message } }"
)
EXECUTE_AGENT = (
    "query Run($agentId: String!, $payload: JSON!) {"
    " executeAgent(agentId: $agentId, payload: $payload) { status result } }"
)


def echo(payload: dict[str, Any]) -> dict[str, Any]:
    return {"echo": payload}


_shared_clients: list[httpx.Client] = []


@pytest.fixture(scope="module", autouse=True)
def shared_client() -> Iterator[httpx.Client]:
    """One pooled client for the module: a new httpx.Client costs about 0.1 s of TLS setup."""
    with httpx.Client(timeout=30) as http:
        _shared_clients.append(http)
        yield http
        _shared_clients.clear()


def client() -> httpx.Client:
    return _shared_clients[0]


@pytest.fixture
def server() -> Iterator[LamaticTestServer]:
    with LamaticTestServer(api_key=API_KEY, secret_key=SECRET_KEY) as test_server:
        test_server.add_flow("echo", echo)
        yield test_server


def key_headers(server: LamaticTestServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.api_key}", "x-project-id": server.project_id}


def run_flow(
    server: LamaticTestServer,
    flow_id: str = "echo",
    payload: Any = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return client().post(
        server.endpoint,
        json={"query": EXECUTE, "variables": {"workflowId": flow_id, "payload": payload or {}}},
        headers=key_headers(server) if headers is None else headers,
    )


def first_error(response: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["errors"][0]
    return error


def server_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("lamatic-test-server")]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# Lifecycle


def test_start_and_stop_take_well_under_a_second() -> None:
    started = time.perf_counter()
    with LamaticTestServer() as test_server:
        client().get(test_server.base_url)
    assert time.perf_counter() - started < 2.0


def test_endpoint_and_base_url_point_at_loopback(server: LamaticTestServer) -> None:
    assert server.base_url == f"http://127.0.0.1:{server.port}"
    assert server.endpoint == f"{server.base_url}/graphql"


def test_start_and_stop_are_idempotent() -> None:
    test_server = LamaticTestServer()
    test_server.start()
    port = test_server.port
    test_server.start()
    assert test_server.port == port
    test_server.stop()
    test_server.stop()
    assert not test_server.running


def test_server_serves_again_after_restart() -> None:
    test_server = LamaticTestServer(api_key=API_KEY)
    test_server.add_flow("echo", echo)
    with test_server:
        first = run_flow(test_server)
    with test_server:
        second = run_flow(test_server)
    assert first.status_code == 200
    assert second.status_code == 200


def test_endpoint_before_start_raises() -> None:
    with pytest.raises(RuntimeError, match="not running"):
        _ = LamaticTestServer().endpoint


def test_stop_leaves_no_threads_and_closes_the_port() -> None:
    fds_before = open_fds()
    test_server = LamaticTestServer(api_key=API_KEY)
    test_server.add_flow("echo", echo)
    test_server.start()
    with httpx.Client() as client:
        for _ in range(3):
            client.post(
                test_server.endpoint,
                json={"query": EXECUTE, "variables": {"workflowId": "echo", "payload": {}}},
                headers=key_headers(test_server),
            )
        port = test_server.port
        test_server.stop()
    assert server_threads() == []
    assert open_fds() <= fds_before
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_stop_closes_idle_keep_alive_connections() -> None:
    test_server = LamaticTestServer(api_key=API_KEY).start()
    test_server.add_flow("echo", echo)
    connection = http.client.HTTPConnection("127.0.0.1", test_server.port, timeout=10)
    body = json.dumps({"query": EXECUTE, "variables": {"workflowId": "echo", "payload": {}}})
    connection.request(
        "POST",
        "/graphql",
        body,
        {**key_headers(test_server), "Content-Type": "application/json"},
    )
    assert connection.getresponse().read()
    started = time.perf_counter()
    test_server.stop()
    elapsed = time.perf_counter() - started
    connection.close()
    assert elapsed < 2.0
    assert server_threads() == []


def test_stop_interrupts_a_slow_flow() -> None:
    test_server = LamaticTestServer(api_key=API_KEY).start()
    test_server.add_flow("slow", echo, delay=60)
    outcome: list[Any] = []

    def call() -> None:
        try:
            outcome.append(run_flow(test_server, "slow"))
        except httpx.HTTPError as error:
            outcome.append(error)

    caller = threading.Thread(target=call)
    caller.start()
    while test_server.in_flight == 0:
        time.sleep(0.01)
    started = time.perf_counter()
    test_server.stop()
    caller.join(10)
    assert time.perf_counter() - started < 5.0
    assert len(outcome) == 1
    assert server_threads() == []


def test_keep_alive_serves_several_requests_on_one_connection(server: LamaticTestServer) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    body = json.dumps({"query": EXECUTE, "variables": {"workflowId": "echo", "payload": {}}})
    headers = {**key_headers(server), "Content-Type": "application/json"}
    try:
        connection.request("POST", "/graphql", body, headers)
        first = connection.getresponse()
        first.read()
        first_socket = connection.sock
        connection.request("POST", "/graphql", body, headers)
        second = connection.getresponse()
        second.read()
    finally:
        connection.close()
    assert first.status == 200
    assert second.status == 200
    assert first_socket is not None
    assert connection.sock is None or connection.sock is first_socket
    assert first.getheader("Content-Length") is not None


def test_default_credentials_are_generated_per_server() -> None:
    first, second = LamaticTestServer(), LamaticTestServer()
    assert first.api_key.startswith("lt-")
    assert first.api_key != second.api_key
    assert first.secret_key != second.secret_key
    assert len(first.secret_key) >= 32


def test_repr_hides_credentials(server: LamaticTestServer) -> None:
    text = repr(server)
    assert server.api_key not in text
    assert server.secret_key not in text
    assert server.endpoint in text


def test_recorded_request_repr_masks_credentials(server: LamaticTestServer) -> None:
    run_flow(server)
    token = server.create_access_token(60)
    run_flow(server, headers={"X-Lamatic-Signature": token, "x-project-id": server.project_id})
    text = repr(server.requests)
    assert server.api_key not in text
    assert token not in text


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"project_id": ""}, "project_id"),
        ({"api_key": ""}, "api_key"),
        ({"not_found_status": 500}, "not_found_status"),
    ],
)
def test_constructor_rejects_invalid_settings(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        LamaticTestServer(**kwargs)


# Authentication


def test_api_key_is_accepted(server: LamaticTestServer) -> None:
    response = run_flow(server, payload={"a": 1})
    assert response.status_code == 200
    assert response.json()["data"]["executeWorkflow"]["result"] == {"echo": {"a": 1}}


def test_unknown_api_key_is_unauthenticated(server: LamaticTestServer) -> None:
    response = run_flow(
        server, headers={"Authorization": "Bearer lt-wrong", "x-project-id": "test-project"}
    )
    assert response.status_code == 401
    assert first_error(response)["extensions"]["code"] == "UNAUTHENTICATED"
    assert first_error(response)["message"] == "Invalid API key"


def test_missing_credentials_are_unauthenticated(server: LamaticTestServer) -> None:
    response = run_flow(server, headers={"x-project-id": server.project_id})
    assert response.status_code == 401
    assert "Missing credentials" in first_error(response)["message"]


def test_authorization_without_bearer_scheme_is_unauthenticated(server: LamaticTestServer) -> None:
    headers = {"Authorization": f"Basic {server.api_key}", "x-project-id": server.project_id}
    response = run_flow(server, headers=headers)
    assert response.status_code == 401
    assert "Bearer" in first_error(response)["message"]


def test_access_token_is_accepted(server: LamaticTestServer) -> None:
    token = server.create_access_token(expires_in=60)
    headers = {"X-Lamatic-Signature": token, "x-project-id": server.project_id}
    assert run_flow(server, headers=headers).status_code == 200


def test_token_without_exp_is_accepted(server: LamaticTestServer) -> None:
    headers = {"X-Lamatic-Signature": server.create_access_token(), "x-project-id": "test-project"}
    assert run_flow(server, headers=headers).status_code == 200


def test_token_minted_by_pyjwt_is_accepted(server: LamaticTestServer) -> None:
    claims = {"project_id": server.project_id, "exp": int(time.time()) + 60}
    token = pyjwt.encode(claims, server.secret_key, algorithm="HS256")
    headers = {"X-Lamatic-Signature": token, "x-project-id": server.project_id}
    assert run_flow(server, headers=headers).status_code == 200


def test_expired_token_is_forbidden(server: LamaticTestServer) -> None:
    token = server.create_access_token(expires_in=-5)
    response = run_flow(
        server, headers={"X-Lamatic-Signature": token, "x-project-id": "test-project"}
    )
    assert response.status_code == 403
    assert first_error(response)["extensions"]["code"] == "FORBIDDEN"
    assert "expired" in first_error(response)["message"]


def test_token_with_bad_signature_is_unauthenticated(server: LamaticTestServer) -> None:
    token = pyjwt.encode(
        {"project_id": server.project_id},
        "another-secret-0123456789abcdefghijkl",
        algorithm="HS256",
    )
    response = run_flow(
        server, headers={"X-Lamatic-Signature": token, "x-project-id": "test-project"}
    )
    assert response.status_code == 401
    assert first_error(response)["extensions"]["code"] == "UNAUTHENTICATED"


def test_token_for_another_project_is_forbidden(server: LamaticTestServer) -> None:
    token = server.create_access_token(60, project_id="other-project")
    response = run_flow(
        server, headers={"X-Lamatic-Signature": token, "x-project-id": "test-project"}
    )
    assert response.status_code == 403
    assert "another project" in first_error(response)["message"]


def test_wrong_project_header_is_forbidden(server: LamaticTestServer) -> None:
    headers = {"Authorization": f"Bearer {server.api_key}", "x-project-id": "other-project"}
    response = run_flow(server, headers=headers)
    assert response.status_code == 403
    assert first_error(response)["extensions"]["code"] == "FORBIDDEN"


def test_missing_project_header_is_forbidden(server: LamaticTestServer) -> None:
    response = run_flow(server, headers={"Authorization": f"Bearer {server.api_key}"})
    assert response.status_code == 403
    assert "x-project-id" in first_error(response)["message"]


def test_access_token_wins_over_a_wrong_api_key(server: LamaticTestServer) -> None:
    headers = {
        "Authorization": "Bearer lt-wrong",
        "X-Lamatic-Signature": server.create_access_token(60),
        "x-project-id": server.project_id,
    }
    assert run_flow(server, headers=headers).status_code == 200


def test_expired_token_wins_over_valid_key(server: LamaticTestServer) -> None:
    headers = {
        **key_headers(server),
        "X-Lamatic-Signature": server.create_access_token(expires_in=-1),
    }
    assert run_flow(server, headers=headers).status_code == 403


# Routing and GraphQL errors


def test_root_path_answers_an_html_404(server: LamaticTestServer) -> None:
    response = client().get(server.base_url + "/")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "Cannot GET /" in response.text


def test_post_to_base_url_answers_an_html_404(server: LamaticTestServer) -> None:
    response = client().post(server.base_url, json={"query": EXECUTE}, headers=key_headers(server))
    assert response.status_code == 404
    assert response.text.lstrip().startswith("<!DOCTYPE html>")


def test_head_request_gets_headers_without_body(server: LamaticTestServer) -> None:
    response = client().head(server.base_url + "/")
    assert response.status_code == 404
    assert response.content == b""
    assert server.requests[-1].method == "HEAD"


def test_get_on_graphql_is_not_allowed(server: LamaticTestServer) -> None:
    response = client().get(server.endpoint, headers=key_headers(server))
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


def test_non_json_content_type_is_a_bad_request(server: LamaticTestServer) -> None:
    response = client().post(
        server.endpoint,
        content=b"query=x",
        headers={**key_headers(server), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400
    assert first_error(response)["extensions"]["code"] == "BAD_REQUEST"


def test_invalid_json_body_is_a_bad_request(server: LamaticTestServer) -> None:
    response = client().post(
        server.endpoint,
        content=b'{"query": ',
        headers={**key_headers(server), "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert "not valid JSON" in first_error(response)["message"]


def test_malformed_query_answers_parse_failed(server: LamaticTestServer) -> None:
    response = client().post(
        server.endpoint, json={"query": "query {"}, headers=key_headers(server)
    )
    assert response.status_code == 400
    assert first_error(response)["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"


def test_execute_workflow_sent_as_mutation_fails(server: LamaticTestServer) -> None:
    query = EXECUTE.replace("query Run", "mutation Run")
    response = client().post(
        server.endpoint,
        json={"query": query, "variables": {"workflowId": "echo", "payload": {}}},
        headers=key_headers(server),
    )
    assert response.status_code == 400
    assert first_error(response)["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert server.execution_count("echo") == 0


def test_wrong_variable_type_answers_bad_user_input(server: LamaticTestServer) -> None:
    response = client().post(
        server.endpoint,
        json={"query": EXECUTE, "variables": {"workflowId": ["echo"], "payload": {}}},
        headers=key_headers(server),
    )
    assert response.status_code == 400
    assert first_error(response)["extensions"]["code"] == "BAD_USER_INPUT"


def test_inline_payload_with_variables_reaches_the_handler(server: LamaticTestServer) -> None:
    query = (
        'query Run($topic: String!, $days: Int) { executeWorkflow(workflowId: "echo",'
        " payload: {topic: $topic, days: $days, fixed: [1, 2]}) { status result } }"
    )
    response = client().post(
        server.endpoint,
        json={"query": query, "variables": {"topic": "queues", "days": 2}},
        headers=key_headers(server),
    )
    result = response.json()["data"]["executeWorkflow"]["result"]
    assert result == {"echo": {"topic": "queues", "days": 2, "fixed": [1, 2]}}


# Flows and agents


def test_request_id_is_returned_for_realtime_flows(server: LamaticTestServer) -> None:
    data = run_flow(server).json()["data"]["executeWorkflow"]
    assert data["status"] == "success"
    assert len(data["requestId"]) == 36
    assert data["message"] is None


def test_payload_violating_the_schema_answers_422(server: LamaticTestServer) -> None:
    server.add_flow("typed", echo, schema='{"city": "string", "days": "int"}')
    response = run_flow(server, "typed", {"city": "Lisbon", "days": "three"})
    error = first_error(response)
    assert response.status_code == 422
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["field"] == "days"
    assert "field 'days' must be an int" in error["message"]
    assert server.execution_count("typed") == 0


def test_payload_that_is_not_an_object_answers_422(server: LamaticTestServer) -> None:
    response = run_flow(server, "echo", ["not", "an", "object"])
    assert response.status_code == 422
    assert "must be a JSON object" in first_error(response)["message"]


def test_unknown_flow_answers_200_with_flow_not_found(server: LamaticTestServer) -> None:
    response = run_flow(server, "missing")
    assert response.status_code == 200
    assert first_error(response)["message"] == "Flow not found"
    assert first_error(response)["extensions"]["code"] == "NOT_FOUND"
    assert response.json()["data"] == {"executeWorkflow": None}


def test_unknown_flow_can_answer_404() -> None:
    with LamaticTestServer(api_key=API_KEY, not_found_status=404) as test_server:
        response = run_flow(test_server, "missing")
    assert response.status_code == 404
    assert first_error(response)["message"] == "Flow not found"


def test_flow_execution_failed_answers_status_error(server: LamaticTestServer) -> None:
    def failing(payload: dict[str, Any]) -> dict[str, Any]:
        raise FlowExecutionFailed("LLM node timed out")

    server.add_flow("failing", failing)
    response = run_flow(server, "failing")
    data = response.json()["data"]["executeWorkflow"]
    assert response.status_code == 200
    assert data["status"] == "error"
    assert data["message"] == "LLM node timed out"
    assert data["result"] == {"errorMsg": "LLM node timed out"}


def test_flow_execution_failed_can_report_failed(server: LamaticTestServer) -> None:
    def failing(payload: dict[str, Any]) -> dict[str, Any]:
        raise FlowExecutionFailed("quota exceeded", status="failed")

    server.add_flow("failing", failing)
    assert run_flow(server, "failing").json()["data"]["executeWorkflow"]["status"] == "failed"


def test_crashing_handler_answers_500_and_is_kept(server: LamaticTestServer) -> None:
    def crashing(payload: dict[str, Any]) -> dict[str, Any]:
        raise KeyError("city")

    server.add_flow("crashing", crashing)
    response = run_flow(server, "crashing")
    assert response.status_code == 500
    assert first_error(response)["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert "KeyError" in first_error(response)["message"]
    assert [type(error) for error in server.handler_errors] == [KeyError]


def test_handler_returning_a_non_dict_answers_500(server: LamaticTestServer) -> None:
    server.add_flow("bad", lambda payload: ["not", "a", "dict"])  # type: ignore[arg-type, return-value]
    response = run_flow(server, "bad")
    assert response.status_code == 500
    assert "must return a dict" in first_error(response)["message"]


def test_handler_gets_a_copy_of_the_payload(server: LamaticTestServer) -> None:
    def mutating(payload: dict[str, Any]) -> dict[str, Any]:
        payload["added"] = True
        return {}

    server.add_flow("mutating", mutating)
    run_flow(server, "mutating", {"a": 1})
    assert server.requests[-1].variables == {"workflowId": "mutating", "payload": {"a": 1}}


def test_agent_runs_through_execute_agent(server: LamaticTestServer) -> None:
    server.add_agent("assistant", lambda payload: {"answer": payload["question"].upper()})
    response = client().post(
        server.endpoint,
        json={
            "query": EXECUTE_AGENT,
            "variables": {"agentId": "assistant", "payload": {"question": "hi"}},
        },
        headers=key_headers(server),
    )
    assert response.json()["data"]["executeAgent"] == {
        "status": "success",
        "result": {"answer": "HI"},
    }
    assert server.execution_count("assistant") == 1


def test_unknown_agent_answers_agent_not_found(server: LamaticTestServer) -> None:
    response = client().post(
        server.endpoint,
        json={"query": EXECUTE_AGENT, "variables": {"agentId": "nobody", "payload": {}}},
        headers=key_headers(server),
    )
    assert first_error(response)["message"] == "Agent not found"


def test_agents_and_flows_have_separate_ids(server: LamaticTestServer) -> None:
    server.add_agent("assistant", echo)
    assert run_flow(server, "assistant").json()["errors"][0]["message"] == "Flow not found"


@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        ({"response_type": "sync"}, ValueError, "response_type"),
        ({"completed_shape": "other"}, ValueError, "completed_shape"),
        ({"running_status": "running"}, ValueError, "running_status"),
        ({"delay": -1}, ValueError, "delay"),
        ({"run_time": float("nan")}, ValueError, "run_time"),
        ({"schema": '{"a": "text"}'}, ValueError, "unknown type 'text'"),
        ({"stream": {"token_size": 2}}, TypeError, "StreamOptions"),
    ],
)
def test_add_flow_rejects_invalid_settings(
    server: LamaticTestServer, kwargs: dict[str, Any], error: type[Exception], fragment: str
) -> None:
    with pytest.raises(error, match=fragment):
        server.add_flow("flow", echo, **kwargs)


def test_add_flow_rejects_empty_id_and_non_callable(server: LamaticTestServer) -> None:
    with pytest.raises(ValueError, match="non-empty"):
        server.add_flow("", echo)
    with pytest.raises(TypeError, match="callable"):
        server.add_flow("flow", "not callable")  # type: ignore[arg-type]


def test_add_flow_replaces_same_id(server: LamaticTestServer) -> None:
    server.add_flow("echo", lambda payload: {"replaced": True})
    assert run_flow(server).json()["data"]["executeWorkflow"]["result"] == {"replaced": True}
    assert server.flow_ids == ("echo",)


# Records and counters


def test_requests_are_recorded_with_operation_and_variables(server: LamaticTestServer) -> None:
    run_flow(server, payload={"a": 1})
    record = server.requests[-1]
    assert isinstance(record, RecordedRequest)
    assert record.method == "POST"
    assert record.path == "/graphql"
    assert record.headers["X-Project-Id"] == server.project_id
    assert record.headers["authorization"] == f"Bearer {server.api_key}"
    assert record.json["variables"]["payload"] == {"a": 1}
    assert json.loads(record.body) == record.json
    assert record.operation == "executeWorkflow"
    assert record.variables == {"workflowId": "echo", "payload": {"a": 1}}
    assert record.target_id == "echo"
    assert record.time <= time.monotonic()


def test_rejected_and_non_graphql_requests_are_recorded(server: LamaticTestServer) -> None:
    run_flow(server, headers={})
    client().get(server.base_url + "/health")
    records = server.requests
    assert [record.operation for record in records] == ["executeWorkflow", None]
    assert records[1].path == "/health"
    assert records[1].json is None


def test_clear_requests_forgets_the_record(server: LamaticTestServer) -> None:
    run_flow(server)
    server.clear_requests()
    assert server.requests == []


def test_execution_count_counts_runs_per_flow(server: LamaticTestServer) -> None:
    server.add_flow("other", echo)
    for _ in range(3):
        run_flow(server)
    run_flow(server, "other")
    run_flow(server, headers={})
    assert server.execution_count("echo") == 3
    assert server.execution_count("other") == 1
    assert server.execution_count("never") == 0


def test_concurrent_requests_are_served_in_parallel(server: LamaticTestServer) -> None:
    parallel = 4
    barrier = threading.Barrier(parallel, timeout=10)

    def meet(payload: dict[str, Any]) -> dict[str, Any]:
        # Every call waits for the others; a server handling one request at a time would
        # break the barrier instead.
        barrier.wait()
        return {"met": True}

    server.add_flow("meet", meet)
    with httpx.Client(timeout=20) as client:
        threads = [
            threading.Thread(
                target=client.post,
                args=(server.endpoint,),
                kwargs={
                    "json": {"query": EXECUTE, "variables": {"workflowId": "meet", "payload": {}}},
                    "headers": key_headers(server),
                },
            )
            for _ in range(parallel)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
    assert not barrier.broken
    assert server.max_in_flight >= parallel
    assert server.execution_count("meet") == parallel


def wait_until_idle(server: LamaticTestServer) -> None:
    # The server decrements in_flight after writing a response, so a client may see it first.
    deadline = time.monotonic() + 10
    while server.in_flight and time.monotonic() < deadline:
        time.sleep(0.01)


def test_in_flight_returns_to_zero_after_responses(server: LamaticTestServer) -> None:
    for _ in range(3):
        run_flow(server)
    wait_until_idle(server)
    assert server.in_flight == 0
    assert server.max_in_flight >= 1


def test_reset_counters_clears_counts_and_max_in_flight(server: LamaticTestServer) -> None:
    run_flow(server)
    wait_until_idle(server)
    server.reset_counters()
    assert server.execution_count("echo") == 0
    assert server.max_in_flight == 0
