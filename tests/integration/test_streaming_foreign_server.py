"""Streaming against a server that is not the project's own: a canned SSE body over http.server.

The server below shares no code with ``langchain_lamatic.testing``. For the
``executeWorkflowWithStream`` subscription it returns a fixed body, written the awkward way
real servers write it. The body has CRLF line endings, keep-alive comments, ``null`` chunks,
a frame spread over two ``data:`` lines and a ``[DONE]`` marker. Its bytes go out in small
flushed pieces, so frames are split across network reads.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from langchain_core.output_parsers import StrOutputParser

from langchain_lamatic import (
    LamaticAuthenticationError,
    LamaticClient,
    LamaticExecutionError,
    LamaticFlow,
    LamaticResponseError,
)
from langchain_lamatic.streaming import FlowCompleted, NodeCompleted, TextDelta

API_KEY = "lt-" + "foreign0server0key0000"
PROJECT_ID = "foreign-project"
DELTAS = ["Back", "pressure ", "keeps ", "queues ", "bounded", "."]
TEXT = "".join(DELTAS)
OUTPUT = {"answer": TEXT}
CRLF = "\r\n"


def data_line(chunk: Any) -> str:
    return "data: " + json.dumps({"data": {"executeWorkflowWithStream": chunk}}) + CRLF


def canned_frames() -> list[str]:
    """The events of one streamed run, each ending with its blank line."""
    frames = [
        ": keep-alive" + CRLF + CRLF,
        data_line(
            {
                "status": "success",
                "nodeId": "triggerNode_1",
                "data": {"question": "why backpressure?"},
                "isNodeExecutionFinished": True,
            }
        )
        + CRLF,
        data_line(None) + CRLF,
        "event: message" + CRLF + "id: 7" + CRLF + ":ping" + CRLF + CRLF,
    ]
    for delta in DELTAS:
        frames.append(
            data_line(
                {"status": "streaming", "nodeId": "LLMNode_1", "data": {"generatedResponse": delta}}
            )
            + CRLF
        )
    # The streaming node's completion frame repeats the whole text, spread over two data lines.
    completion = json.dumps(
        {
            "data": {
                "executeWorkflowWithStream": {
                    "status": "success",
                    "nodeId": "LLMNode_1",
                    "data": {"generatedResponse": TEXT, "_meta": {"total_tokens": 12}},
                    "isNodeExecutionFinished": True,
                }
            }
        }
    )
    middle = completion.index('"nodeId"')
    frames.append(
        "data: " + completion[:middle] + CRLF + "data: " + completion[middle:] + CRLF + CRLF
    )
    frames.append(": keep-alive" + CRLF + CRLF)
    frames.append(
        data_line(
            {"status": "success", "nodeId": "", "data": OUTPUT, "isFlowExecutionFinished": True}
        )
        + CRLF
    )
    frames.append("data: [DONE]" + CRLF + CRLF)
    return frames


ERROR_FRAME = (
    data_line({"status": "error", "nodeId": "LLMNode_1", "data": {"errorMsg": "model overloaded"}})
    + CRLF
)


class CannedSSEHandler(BaseHTTPRequestHandler):
    """Respond to every POST according to the server's ``scenario``."""

    protocol_version = "HTTP/1.1"
    server: ForeignServer

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length))
        self.server.record(dict(self.headers.items()), body)

        if "executeWorkflow(" in body["query"]:
            self._send_json(
                200, {"data": {"executeWorkflow": {"status": "success", "result": OUTPUT}}}
            )
            return
        scenario = self.server.scenario
        if scenario == "unauthorized":
            self._send_json(401, {"errors": [{"message": "Invalid API key"}]})
            return

        frames = canned_frames()
        if scenario == "cut_abruptly":
            self._stream("".join(frames[:6]), end=False)
        elif scenario == "cut_cleanly":
            self._stream("".join(frames[:6]), end=True)
        elif scenario == "error_frame":
            self._stream("".join(frames[:6]) + ERROR_FRAME, end=True)
        elif scenario == "endless":
            self._stream_until_client_leaves()
        else:
            self._stream("".join(frames), end=True)

    def _send_json(self, status: int, document: Any) -> None:
        payload = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _stream(self, text: str, *, end: bool) -> None:
        self._start_stream()
        raw = text.encode()
        # Seven bytes at a time, flushed, so CRLFs and frames straddle network reads.
        for start in range(0, len(raw), 7):
            self._write_chunk(raw[start : start + 7])
            time.sleep(0.001)
        if end:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        else:
            self.close_connection = True

    def _stream_until_client_leaves(self) -> None:
        self._start_stream()
        frames = canned_frames()
        try:
            self._write_chunk("".join(frames[:2]).encode())
            self.server.stream_started.set()
            for _ in range(2000):
                time.sleep(0.02)
                self._write_chunk((": keep-alive" + CRLF + CRLF).encode())
        except (BrokenPipeError, ConnectionResetError):
            self.server.client_left.set()
            self.close_connection = True


class ForeignServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), CannedSSEHandler)
        self.scenario = "complete"
        self.stream_started = threading.Event()
        self.client_left = threading.Event()
        self.received: list[tuple[dict[str, str], Any]] = []
        self._lock = threading.Lock()

    def record(self, headers: dict[str, str], body: Any) -> None:
        with self._lock:
            self.received.append((headers, body))

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/graphql"


@pytest.fixture
def foreign() -> Iterator[ForeignServer]:
    server = ForeignServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture
def client(foreign: ForeignServer) -> Iterator[LamaticClient]:
    with LamaticClient(
        endpoint=foreign.endpoint, project_id=PROJECT_ID, api_key=API_KEY, max_retries=0
    ) as lamatic_client:
        yield lamatic_client


def test_parser_chunks_join_to_final_text(foreign: ForeignServer, client: LamaticClient) -> None:
    chain = LamaticFlow(flow_id="answer", client=client, output_key="answer") | StrOutputParser()

    chunks = list(chain.stream({"question": "why backpressure?"}))

    assert len(chunks) > 1
    assert chunks == DELTAS
    assert "".join(chunks) == chain.invoke({"question": "why backpressure?"})


async def test_astream_yields_the_same_chunks(client: LamaticClient) -> None:
    flow = LamaticFlow(flow_id="answer", client=client, output_key="answer")

    chunks = [chunk async for chunk in flow.astream({"question": "why backpressure?"})]

    assert chunks == DELTAS


def test_request_is_the_streaming_subscription(
    foreign: ForeignServer, client: LamaticClient
) -> None:
    list(client.stream_flow("answer", {"question": "why backpressure?"}))

    headers, body = foreign.received[0]
    lowered = {name.lower(): value for name, value in headers.items()}
    assert lowered["accept"] == "text/event-stream"
    assert lowered["authorization"] == f"Bearer {API_KEY}"
    assert lowered["x-project-id"] == PROJECT_ID
    assert body["query"].startswith("subscription")
    assert body["variables"] == {
        "workflowId": "answer",
        "payload": {"question": "why backpressure?"},
    }


def test_client_events_survive_the_awkward_framing(client: LamaticClient) -> None:
    events = list(client.stream_flow("answer", {"question": "why backpressure?"}))

    deltas = [event.text for event in events if isinstance(event, TextDelta)]
    nodes = [event for event in events if isinstance(event, NodeCompleted)]
    final = events[-1]
    assert deltas == DELTAS
    assert [node.node_id for node in nodes] == ["triggerNode_1", "LLMNode_1"]
    assert nodes[1].metadata["_meta"] == {"total_tokens": 12}
    assert isinstance(final, FlowCompleted)
    assert final.output == OUTPUT
    assert final.text == TEXT


@pytest.mark.parametrize("scenario", ["cut_abruptly", "cut_cleanly"])
def test_cut_stream_raises_response_error(
    foreign: ForeignServer, client: LamaticClient, scenario: str
) -> None:
    foreign.scenario = scenario
    chain = LamaticFlow(flow_id="answer", client=client, output_key="answer") | StrOutputParser()

    with pytest.raises(LamaticResponseError):
        list(chain.stream({"question": "why backpressure?"}))


def test_error_frame_raises_execution_error(foreign: ForeignServer, client: LamaticClient) -> None:
    foreign.scenario = "error_frame"

    with pytest.raises(LamaticExecutionError, match="model overloaded"):
        list(client.stream_flow("answer", {}))


def test_json_error_before_stream_is_classified(
    foreign: ForeignServer, client: LamaticClient
) -> None:
    foreign.scenario = "unauthorized"

    with pytest.raises(LamaticAuthenticationError):
        list(LamaticFlow(flow_id="answer", client=client).stream({}))


def test_breaking_out_of_stream_closes_the_connection(
    foreign: ForeignServer, client: LamaticClient
) -> None:
    foreign.scenario = "endless"

    for _event in client.stream_flow("answer", {}):
        break

    assert foreign.client_left.wait(timeout=10)


async def test_cancelled_astream_closes_the_connection(
    foreign: ForeignServer, client: LamaticClient
) -> None:
    foreign.scenario = "endless"
    flow = LamaticFlow(flow_id="answer", client=client)
    task = asyncio.create_task(_drain(flow))
    assert await asyncio.to_thread(foreign.stream_started.wait, 30)

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert await asyncio.to_thread(foreign.client_left.wait, 10)


async def _drain(flow: LamaticFlow) -> None:
    async for _chunk in flow.astream({}):
        pass
