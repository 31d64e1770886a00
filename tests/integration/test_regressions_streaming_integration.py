"""Regressions of streamed runs against real sockets on 127.0.0.1.

The server here is a small ``http.server`` that shares no code with
``langchain_lamatic.testing``. It writes hand-made event-stream bodies: one that stays open
after the final frame and keeps sending keep-alive comments, and a complete one for checking
that connections are still reused.
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

from langchain_lamatic import LamaticClient, LamaticFlow
from langchain_lamatic.streaming import FlowCompleted

API_KEY = "lt-" + "regression0stream0key0000"
PROJECT_ID = "regression-project"
DELTAS = ["Stream", "ing ", "ends ", "here."]
TEXT = "".join(DELTAS)
# Far longer than any bound asserted below, so a client that waits for the body to end fails.
LINGER_SECONDS = 120.0
# A generous bound for a loaded 2-core machine. The client returns within about a second.
RETURN_BOUND_SECONDS = 15.0


def data_frame(chunk: Any) -> bytes:
    envelope = {"data": {"executeWorkflowWithStream": chunk}}
    return b"data: " + json.dumps(envelope).encode() + b"\n\n"


def run_frames() -> list[bytes]:
    frames = [
        data_frame(
            {
                "status": "success",
                "nodeId": "triggerNode_1",
                "data": {"q": "x"},
                "isNodeExecutionFinished": True,
            }
        )
    ]
    for delta in DELTAS:
        frames.append(
            data_frame(
                {"status": "streaming", "nodeId": "LLMNode_1", "data": {"generatedResponse": delta}}
            )
        )
    frames.append(
        data_frame(
            {
                "status": "success",
                "nodeId": "",
                "data": {"answer": TEXT},
                "isNodeExecutionFinished": True,
                "isFlowExecutionFinished": True,
            }
        )
    )
    return frames


class LingeringHandler(BaseHTTPRequestHandler):
    """Stream one run, then either end the body or keep it open with keep-alive comments."""

    protocol_version = "HTTP/1.1"
    server: LingeringServer

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def setup(self) -> None:
        super().setup()
        self.server.connection_opened()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for frame in run_frames():
                self._write_chunk(frame)
            if self.server.linger:
                deadline = time.monotonic() + LINGER_SECONDS
                while time.monotonic() < deadline and not self.server.stopping.is_set():
                    self._write_chunk(b": keep-alive\n\n")
                    time.sleep(0.1)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()


class LingeringServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), LingeringHandler)
        self.linger = True
        self.stopping = threading.Event()
        self.connections = 0
        self._lock = threading.Lock()

    def connection_opened(self) -> None:
        with self._lock:
            self.connections += 1

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/graphql"


@pytest.fixture
def lingering() -> Iterator[LingeringServer]:
    server = LingeringServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.stopping.set()
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture
def client(lingering: LingeringServer) -> Iterator[LamaticClient]:
    with LamaticClient(
        endpoint=lingering.endpoint, project_id=PROJECT_ID, api_key=API_KEY, max_retries=0
    ) as lamatic_client:
        yield lamatic_client


def test_stream_returns_despite_lingering_body(client: LamaticClient) -> None:
    chain = LamaticFlow(flow_id="answer", client=client, output_key="answer") | StrOutputParser()
    outcome: dict[str, Any] = {}

    def consume() -> None:
        try:
            outcome["chunks"] = list(chain.stream({"q": "x"}))
        except BaseException as error:
            outcome["error"] = error

    worker = threading.Thread(target=consume, daemon=True)
    worker.start()
    worker.join(RETURN_BOUND_SECONDS)

    assert not worker.is_alive(), "stream() still waits for the server to end the body"
    assert "error" not in outcome
    assert outcome["chunks"] == DELTAS


async def test_astream_returns_despite_lingering_body(
    client: LamaticClient,
) -> None:
    flow = LamaticFlow(flow_id="answer", client=client, output_key="answer")

    async def consume() -> list[Any]:
        return [chunk async for chunk in flow.astream({"q": "x"})]

    chunks = await asyncio.wait_for(consume(), RETURN_BOUND_SECONDS)

    assert chunks == DELTAS


def test_stream_flow_ends_despite_lingering_body(client: LamaticClient) -> None:
    events: list[Any] = []

    def consume() -> None:
        with client.stream_flow("answer", {"q": "x"}) as stream:
            events.extend(stream)

    worker = threading.Thread(target=consume, daemon=True)
    worker.start()
    worker.join(RETURN_BOUND_SECONDS)

    assert not worker.is_alive()
    assert isinstance(events[-1], FlowCompleted)
    assert events[-1].text == TEXT


def test_complete_streams_share_one_connection(
    lingering: LingeringServer, client: LamaticClient
) -> None:
    lingering.linger = False

    for _ in range(3):
        events = list(client.stream_flow("answer", {"q": "x"}))
        assert isinstance(events[-1], FlowCompleted)

    assert lingering.connections == 1


async def test_complete_async_streams_share_one_connection(
    lingering: LingeringServer, client: LamaticClient
) -> None:
    lingering.linger = False

    for _ in range(3):
        events = [event async for event in client.astream_flow("answer", {"q": "x"})]
        assert isinstance(events[-1], FlowCompleted)

    assert lingering.connections == 1
