"""Async flows, checkStatus and submitFeedback in LamaticTestServer over real sockets."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from langchain_lamatic.testing import Feedback, FlowExecutionFailed, LamaticTestServer

EXECUTE = (
    "query Run($workflowId: String!, $payload: JSON) {"
    " executeWorkflow(workflowId: $workflowId, payload: $payload) { status result requestId } }"
)
CHECK_STATUS = "query Check($requestId: String!) { checkStatus(requestId: $requestId) }"
CHECK_STATUS_SELECTED = (
    "query Check($requestId: String!) { checkStatus(requestId: $requestId) { status result } }"
)
FEEDBACK = (
    "mutation Feedback($requestId: String!, $rating: Int, $comment: String, $metadata: JSON) {"
    " submitFeedback(requestId: $requestId, rating: $rating, comment: $comment,"
    " metadata: $metadata) { success message data error } }"
)
TERMINAL = ("success", "error", "failed")

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
        yield test_server


def post(server: LamaticTestServer, query: str, variables: dict[str, Any]) -> httpx.Response:
    return _shared_clients[0].post(
        server.endpoint,
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {server.api_key}", "x-project-id": server.project_id},
    )


def start(server: LamaticTestServer, flow_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    body = post(server, EXECUTE, {"workflowId": flow_id, "payload": payload}).json()
    answer: dict[str, Any] = body["data"]["executeWorkflow"]
    return answer


def status_of(server: LamaticTestServer, request_id: str) -> Any:
    return post(server, CHECK_STATUS, {"requestId": request_id}).json()["data"]["checkStatus"]


def poll(server: LamaticTestServer, request_id: str, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status: dict[str, Any] = status_of(server, request_id)
        if status["status"] in TERMINAL or time.monotonic() > deadline:
            return status
        time.sleep(0.02)


def gated(
    result: dict[str, Any],
) -> tuple[Callable[[dict[str, Any]], dict[str, Any]], threading.Event]:
    """A handler that returns `result` only after the returned event is set."""
    release = threading.Event()

    def handler(payload: dict[str, Any]) -> dict[str, Any]:
        release.wait(10)
        return {**result, "input": payload}

    return handler, release


def test_async_flow_answers_a_request_id_at_once(server: LamaticTestServer) -> None:
    handler, release = gated({"done": True})
    server.add_flow("report", handler, response_type="async")
    answer = start(server, "report", {"topic": "x"})
    release.set()
    assert answer["status"] == "success"
    assert answer["result"] == {"requestId": answer["requestId"]}
    assert len(answer["requestId"]) == 36


def test_in_progress_until_handler_returns(server: LamaticTestServer) -> None:
    handler, release = gated({"done": True})
    server.add_flow("report", handler, response_type="async")
    request_id = start(server, "report", {})["requestId"]
    running = status_of(server, request_id)
    release.set()
    assert running == {"status": "in-progress"}
    assert poll(server, request_id)["status"] == "success"


def test_running_status_can_use_an_underscore(server: LamaticTestServer) -> None:
    handler, release = gated({"done": True})
    server.add_flow("report", handler, response_type="async", running_status="in_progress")
    request_id = start(server, "report", {})["requestId"]
    running = status_of(server, request_id)
    release.set()
    assert running == {"status": "in_progress"}


def test_documented_shape_after_completion(server: LamaticTestServer) -> None:
    server.add_flow(
        "report", lambda payload: {"summary": payload["topic"]}, response_type="async", run_time=0.2
    )
    request_id = start(server, "report", {"topic": "queues"})["requestId"]
    done = poll(server, request_id)
    assert done["status"] == "success"
    assert done["input"] == {"topic": "queues"}
    assert done["output"] == {"summary": "queues"}
    assert done["statusCode"] == 200
    assert done["timeTakenInSeconds"] >= 0.2
    assert [node["nodeId"] for node in done["nodes"]] == ["triggerNode_1", "responseNode_1"]


def test_data_output_shape_after_completion(server: LamaticTestServer) -> None:
    server.add_flow(
        "triage",
        lambda payload: {"severity": "high"},
        response_type="async",
        completed_shape="data_output",
    )
    request_id = start(server, "triage", {})["requestId"]
    assert poll(server, request_id) == {
        "status": "success",
        "data": {"output": {"result": {"severity": "high"}}},
    }


def failing(payload: dict[str, Any]) -> dict[str, Any]:
    raise FlowExecutionFailed("Triage node failed: quota exceeded")


def test_data_output_failure_carries_error_msg(server: LamaticTestServer) -> None:
    server.add_flow("triage", failing, response_type="async", completed_shape="data_output")
    request_id = start(server, "triage", {})["requestId"]
    assert poll(server, request_id) == {
        "status": "error",
        "data": {"output": {"result": {"errorMsg": "Triage node failed: quota exceeded"}}},
    }


def test_documented_failure_carries_an_error_field(server: LamaticTestServer) -> None:
    server.add_flow("report", failing, response_type="async")
    done = poll(server, start(server, "report", {})["requestId"])
    assert done["status"] == "error"
    assert done["error"] == "Triage node failed: quota exceeded"
    assert done["output"] is None
    assert done["nodes"][-1]["status"] == "error"


def test_failure_status_can_be_failed(server: LamaticTestServer) -> None:
    def quota(payload: dict[str, Any]) -> dict[str, Any]:
        raise FlowExecutionFailed("quota", status="failed")

    server.add_flow("report", quota, response_type="async")
    assert poll(server, start(server, "report", {})["requestId"])["status"] == "failed"


def test_crashing_async_handler_reports_an_internal_error(server: LamaticTestServer) -> None:
    def crashing(payload: dict[str, Any]) -> dict[str, Any]:
        raise ZeroDivisionError("division by zero")

    server.add_flow("report", crashing, response_type="async")
    done = poll(server, start(server, "report", {})["requestId"])
    assert done["status"] == "error"
    assert "ZeroDivisionError" in done["error"]
    assert [type(error) for error in server.handler_errors] == [ZeroDivisionError]


def test_check_status_with_selection_returns_selected_keys(server: LamaticTestServer) -> None:
    server.add_flow("report", lambda payload: {"ok": True}, response_type="async")
    request_id = start(server, "report", {})["requestId"]
    poll(server, request_id)
    selected = post(server, CHECK_STATUS_SELECTED, {"requestId": request_id}).json()
    assert selected == {"data": {"checkStatus": {"status": "success", "result": None}}}


def test_realtime_request_id_can_be_checked(server: LamaticTestServer) -> None:
    server.add_flow("echo", lambda payload: {"echo": payload})
    request_id = start(server, "echo", {"a": 1})["requestId"]
    done = status_of(server, request_id)
    assert done["status"] == "success"
    assert done["output"] == {"echo": {"a": 1}}


def test_unknown_request_id_is_a_graphql_error(server: LamaticTestServer) -> None:
    response = post(server, CHECK_STATUS, {"requestId": "no-such-request"})
    body = response.json()
    assert response.status_code == 200
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert "no-such-request" in body["errors"][0]["message"]
    assert body["data"] == {"checkStatus": None}


def test_unknown_request_id_can_answer_404() -> None:
    with LamaticTestServer(not_found_status=404) as test_server:
        response = post(test_server, CHECK_STATUS, {"requestId": "no-such-request"})
    assert response.status_code == 404


def test_async_execution_is_counted_once(server: LamaticTestServer) -> None:
    server.add_flow("report", lambda payload: {}, response_type="async")
    request_id = start(server, "report", {})["requestId"]
    poll(server, request_id)
    status_of(server, request_id)
    assert server.execution_count("report") == 1


def test_feedback_for_a_known_request_is_recorded(server: LamaticTestServer) -> None:
    server.add_flow("echo", lambda payload: {})
    request_id = start(server, "echo", {})["requestId"]
    variables = {"requestId": request_id, "rating": 4, "comment": "useful", "metadata": {"k": 1}}
    answer = post(server, FEEDBACK, variables).json()["data"]["submitFeedback"]
    assert answer == {"success": True, "message": "Feedback submitted", "data": None, "error": None}
    (feedback,) = server.feedback
    assert isinstance(feedback, Feedback)
    assert (feedback.request_id, feedback.rating, feedback.comment) == (request_id, 4, "useful")
    assert feedback.metadata == {"k": 1}


def test_feedback_for_an_unknown_request_fails(server: LamaticTestServer) -> None:
    answer = post(server, FEEDBACK, {"requestId": "nope"}).json()["data"]["submitFeedback"]
    assert answer["success"] is False
    assert "nope" in answer["error"]
    assert server.feedback == []


def test_stop_interrupts_a_long_async_run() -> None:
    test_server = LamaticTestServer().start()
    test_server.add_flow("long", lambda payload: {}, response_type="async", run_time=60)
    start(test_server, "long", {})
    started = time.perf_counter()
    test_server.stop()
    assert time.perf_counter() - started < 5.0
    assert not [t for t in threading.enumerate() if t.name.startswith("lamatic-test-server")]
