"""Streaming executions (Server-Sent Events) from LamaticTestServer over real sockets."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from langchain_lamatic.testing import Fault, FlowExecutionFailed, LamaticTestServer, StreamOptions

SUBSCRIBE = (
    "subscription Stream($workflowId: String, $payload: JSON!) {"
    " executeWorkflowWithStream(workflowId: $workflowId, payload: $payload) }"
)
TEXT = "Bounded queues keep latency predictable."

_shared_clients: list[httpx.Client] = []


@pytest.fixture(scope="module", autouse=True)
def shared_client() -> Iterator[httpx.Client]:
    """One pooled client for the module: a new httpx.Client costs about 0.1 s of TLS setup."""
    with httpx.Client(timeout=30) as http:
        _shared_clients.append(http)
        yield http
        _shared_clients.clear()


def answer(payload: dict[str, Any]) -> dict[str, Any]:
    return {"answer": TEXT, "topic": payload.get("topic")}


@pytest.fixture
def server() -> Iterator[LamaticTestServer]:
    with LamaticTestServer() as test_server:
        test_server.add_flow("chat", answer, schema='{"topic": "string"}')
        yield test_server


def stream_headers(server: LamaticTestServer) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {server.api_key}",
        "x-project-id": server.project_id,
        "Accept": "text/event-stream",
    }


def subscribe(
    server: LamaticTestServer,
    flow_id: str = "chat",
    payload: Any = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return _shared_clients[0].post(
        server.endpoint,
        json={
            "query": SUBSCRIBE,
            "variables": {"workflowId": flow_id, "payload": payload or {"topic": "queues"}},
        },
        headers=stream_headers(server) if headers is None else headers,
    )


def frames_of(text: str) -> list[Any]:
    """Decode every `data:` line; `[DONE]` stays a string."""
    frames: list[Any] = []
    for line in text.splitlines():
        if line.startswith("data:"):
            data = line[len("data:") :].strip()
            frames.append(
                data if data == "[DONE]" else json.loads(data)["data"]["executeWorkflowWithStream"]
            )
    return frames


def test_stream_is_sent_as_chunked_event_stream(server: LamaticTestServer) -> None:
    response = subscribe(server)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in response.headers


def test_stream_frames_follow_the_documented_order(server: LamaticTestServer) -> None:
    frames = frames_of(subscribe(server).text)
    assert frames[0]["nodeId"] == "triggerNode_1"
    assert frames[0]["data"] == {"topic": "queues"}
    assert {frame["status"] for frame in frames[1:-2]} == {"streaming"}
    assert frames[-2]["nodeId"] == "LLMNode_1"
    assert frames[-1] == {
        "status": "success",
        "nodeId": "",
        "data": {"answer": TEXT, "topic": "queues"},
        "isNodeExecutionFinished": True,
        "isFlowExecutionFinished": True,
    }


def test_token_deltas_rebuild_the_text(server: LamaticTestServer) -> None:
    frames = frames_of(subscribe(server).text)
    deltas = [
        frame["data"]["generatedResponse"] for frame in frames if frame["status"] == "streaming"
    ]
    assert "".join(deltas) == TEXT
    assert len(deltas) > 1


def test_completion_frame_repeats_the_whole_text(server: LamaticTestServer) -> None:
    completion = frames_of(subscribe(server).text)[-2]
    assert completion["data"]["generatedResponse"] == TEXT
    assert completion["data"]["_meta"]["total_tokens"] > 0


def test_stream_text_function_and_token_size(server: LamaticTestServer) -> None:
    options = StreamOptions(text=lambda payload: f"topic={payload['topic']}", token_size=2)
    server.add_flow("chat", answer, stream=options)
    frames = frames_of(subscribe(server).text)
    deltas = [
        frame["data"]["generatedResponse"] for frame in frames if frame["status"] == "streaming"
    ]
    assert deltas == ["to", "pi", "c=", "qu", "eu", "es"]


def test_server_stream_options_are_the_default() -> None:
    with LamaticTestServer(stream_options=StreamOptions(node_id="RAGNode_7")) as test_server:
        test_server.add_flow("chat", answer)
        frames = frames_of(subscribe(test_server).text)
    assert frames[1]["nodeId"] == "RAGNode_7"


def test_wire_options_crlf_keep_alive_null_and_done(server: LamaticTestServer) -> None:
    options = StreamOptions(crlf=True, keep_alive=True, null_chunks=True, done_marker=True)
    server.add_flow("chat", answer, stream=options)
    text = subscribe(server).text
    frames = frames_of(text)
    assert text.startswith(": keep-alive\r\n\r\n")
    assert "\n\n" not in text.replace("\r\n", "")
    assert frames.count(None) == 2
    assert frames[-1] == "[DONE]"


def test_frames_reach_the_client_before_the_stream_ends(server: LamaticTestServer) -> None:
    # With a long delay between frames, the first frame can only arrive if it was flushed.
    server.add_flow("chat", answer, stream=StreamOptions(frame_delay=30))
    with (
        httpx.Client(timeout=10) as http,
        http.stream(
            "POST",
            server.endpoint,
            json={
                "query": SUBSCRIBE,
                "variables": {"workflowId": "chat", "payload": {"topic": "q"}},
            },
            headers=stream_headers(server),
        ) as response,
    ):
        first_line = next(response.iter_lines())
    assert first_line.startswith("data: ")
    assert json.loads(first_line[len("data: ") :])["data"]["executeWorkflowWithStream"][
        "nodeId"
    ] == ("triggerNode_1")


def test_cut_stream_ends_without_the_finished_frame(server: LamaticTestServer) -> None:
    server.add_flow("chat", answer, stream=StreamOptions(cut_after=3))
    response = subscribe(server)
    frames = frames_of(response.text)
    assert len(frames) == 3
    assert not any(frame.get("isFlowExecutionFinished") for frame in frames)


def test_abruptly_cut_stream_is_a_transport_error(server: LamaticTestServer) -> None:
    server.add_flow("chat", answer, stream=StreamOptions(cut_after=2, cut_abruptly=True))
    with (
        httpx.Client(timeout=10) as http,
        pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)),
    ):
        http.post(
            server.endpoint,
            json={
                "query": SUBSCRIBE,
                "variables": {"workflowId": "chat", "payload": {"topic": "q"}},
            },
            headers=stream_headers(server),
        )


def test_error_option_sends_an_error_frame(server: LamaticTestServer) -> None:
    server.add_flow("chat", answer, stream=StreamOptions(error="Model quota exceeded"))
    frames = frames_of(subscribe(server).text)
    assert frames[-1] == {
        "status": "error",
        "nodeId": "LLMNode_1",
        "data": {"errorMsg": "Model quota exceeded"},
    }


def test_failing_handler_ends_with_error_frame(server: LamaticTestServer) -> None:
    def failing(payload: dict[str, Any]) -> dict[str, Any]:
        raise FlowExecutionFailed("LLM node failed")

    server.add_flow("chat", failing)
    frames = frames_of(subscribe(server).text)
    assert frames[-1]["status"] == "error"
    assert frames[-1]["data"] == {"errorMsg": "LLM node failed"}


def test_flow_without_tokens_streams_node_frames_only(server: LamaticTestServer) -> None:
    server.add_flow("chat", answer, stream=StreamOptions(tokens=False))
    frames = frames_of(subscribe(server).text)
    assert [frame["nodeId"] for frame in frames] == ["triggerNode_1", ""]


def test_streamed_run_is_counted(server: LamaticTestServer) -> None:
    subscribe(server)
    assert server.execution_count("chat") == 1
    assert server.requests[-1].operation == "executeWorkflowWithStream"


def test_authentication_failure_is_plain_json(server: LamaticTestServer) -> None:
    response = subscribe(
        server, headers={"Accept": "text/event-stream", "x-project-id": "test-project"}
    )
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def test_schema_violation_is_plain_json_422(server: LamaticTestServer) -> None:
    response = subscribe(server, payload={"topic": 5})
    assert response.status_code == 422
    assert response.json()["errors"][0]["extensions"]["field"] == "topic"
    assert server.execution_count("chat") == 0


def test_unknown_flow_is_plain_json(server: LamaticTestServer) -> None:
    response = subscribe(server, flow_id="missing")
    assert response.status_code == 200
    assert response.json()["errors"][0]["message"] == "Flow not found"


def test_rate_limit_fault_is_plain_json(server: LamaticTestServer) -> None:
    server.inject(Fault.rate_limit(retry_after=3), operation="executeWorkflowWithStream")
    response = subscribe(server)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"
    assert response.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"


def test_subscription_without_event_stream_accept_is_rejected(server: LamaticTestServer) -> None:
    headers = {"Authorization": f"Bearer {server.api_key}", "x-project-id": server.project_id}
    response = subscribe(server, headers=headers)
    assert response.status_code == 400
    assert "text/event-stream" in response.json()["errors"][0]["message"]
    assert server.execution_count("chat") == 0


def test_query_with_event_stream_accept_gets_plain_json(server: LamaticTestServer) -> None:
    response = _shared_clients[0].post(
        server.endpoint,
        json={
            "query": 'query { executeWorkflow(workflowId: "chat", payload: {topic: "q"}) '
            "{ status } }",
        },
        headers=stream_headers(server),
    )
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"data": {"executeWorkflow": {"status": "success"}}}


def test_connection_is_reused_after_a_stream(server: LamaticTestServer) -> None:
    body = json.dumps(
        {"query": SUBSCRIBE, "variables": {"workflowId": "chat", "payload": {"topic": "q"}}}
    )
    headers = {**stream_headers(server), "Content-Type": "application/json"}
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request("POST", "/graphql", body, headers)
        first = connection.getresponse().read().decode()
        connection.request("POST", "/graphql", body, headers)
        second = connection.getresponse().read().decode()
    finally:
        connection.close()
    assert frames_of(first) == frames_of(second)
    assert frames_of(first)[-1]["isFlowExecutionFinished"] is True
