"""The error table over real sockets, against a server that is not the project's own.

The server here is a few lines of ``http.server`` that replay canned status, body and header
triples. It contains no GraphQL or langchain-lamatic code, so every result below comes from
the client's handling of plain HTTP.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from langchain_lamatic import (
    LamaticAuthenticationError,
    LamaticBadRequestError,
    LamaticClient,
    LamaticConnectionError,
    LamaticError,
    LamaticExecutionError,
    LamaticNotFoundError,
    LamaticPermissionError,
    LamaticRateLimitError,
    LamaticResponseError,
    LamaticServerError,
    __version__,
)

API_KEY = "lt-" + "foreign0server0key0000"
PROJECT_ID = "foreign-project"
LEAKED_KEY = "lt-" + "leaked0by0the0server00"


@dataclass(frozen=True)
class Canned:
    """One reply: HTTP status, body and extra headers. ``drop`` closes without replying."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False


@dataclass(frozen=True)
class Seen:
    path: str
    headers: dict[str, str]
    body: bytes
    client_port: int


class ForeignServer:
    """A stdlib HTTP/1.1 server on 127.0.0.1 that replies from a queue of canned replies."""

    def __init__(self) -> None:
        self.replies: deque[Canned] = deque()
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def reset(self, *replies: Canned) -> None:
        with self.lock:
            self.replies = deque(replies)
            self.seen = []

    def next_reply(self) -> Canned:
        with self.lock:
            return self.replies.popleft() if self.replies else success_reply()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Buffer each reply into one write; the handler flushes after every request.
            wbufsize = 64 * 1024

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with owner.lock:
                    owner.seen.append(
                        Seen(
                            path=self.path,
                            headers={k.lower(): v for k, v in self.headers.items()},
                            body=body,
                            client_port=self.client_address[1],
                        )
                    )
                reply = owner.next_reply()
                if reply.drop:
                    self.close_connection = True
                    return
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    if value == IN_NINETY_SECONDS:
                        value = in_ninety_seconds()
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            do_GET = do_POST

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


@pytest.fixture(scope="module")
def foreign() -> Iterator[ForeignServer]:
    running = ForeignServer()
    running.thread.start()
    yield running
    running.httpd.shutdown()
    running.httpd.server_close()
    running.thread.join(timeout=5)


@pytest.fixture
def client(foreign: ForeignServer) -> Iterator[LamaticClient]:
    foreign.reset()
    with LamaticClient(
        endpoint=foreign.url, project_id=PROJECT_ID, api_key=API_KEY, max_retries=0
    ) as lamatic_client:
        yield lamatic_client


def json_reply(status: int, document: Any, **headers: str) -> Canned:
    return Canned(
        status, json.dumps(document).encode(), {"Content-Type": "application/json", **headers}
    )


def success_reply(result: Any = None) -> Canned:
    data = {"status": "success", "result": result or {"ok": True}, "requestId": "req-ok"}
    return json_reply(200, {"data": {"executeWorkflow": data}})


def graphql_errors(message: str, code: str | None = None, status: int = 200) -> Canned:
    error: dict[str, Any] = {"message": message}
    if code is not None:
        error["extensions"] = {"code": code}
    return json_reply(status, {"errors": [error], "data": None})


def execution(status: Any, **fields: Any) -> Canned:
    return json_reply(200, {"data": {"executeWorkflow": {"status": status, **fields}}})


# Replaced by an HTTP date 90 seconds from the moment the reply is sent, not from collection.
IN_NINETY_SECONDS = "<http-date in ninety seconds>"


def in_ninety_seconds() -> str:
    return format_datetime(dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=90), usegmt=True)


HTML = (
    b"<html><head><title>502 Bad Gateway</title></head><body><center>nginx</center></body></html>"
)


@dataclass(frozen=True)
class Row:
    reply: Canned
    error_class: type[LamaticError]
    expected_text: str = ""
    request_id: str | None = None
    retry_after: tuple[float, float] | None = None


HTTP_ROWS: dict[str, Row] = {
    "400": Row(graphql_errors("Syntax Error: Unexpected Name", status=400), LamaticBadRequestError),
    "401": Row(
        graphql_errors(f"Invalid API key {LEAKED_KEY}", status=401), LamaticAuthenticationError
    ),
    "403": Row(graphql_errors("Forbidden", status=403), LamaticPermissionError),
    "404 html": Row(Canned(404, b"<html>Cannot POST /graphql</html>"), LamaticNotFoundError),
    "422": Row(graphql_errors("Input does not match schema", status=422), LamaticBadRequestError),
    "429 seconds": Row(
        Canned(429, b"Too Many Requests", {"Retry-After": "30"}),
        LamaticRateLimitError,
        retry_after=(30.0, 30.0),
    ),
    "429 http date": Row(
        Canned(429, b"", {"Retry-After": IN_NINETY_SECONDS}),
        LamaticRateLimitError,
        retry_after=(70.0, 91.0),
    ),
    "500": Row(graphql_errors("Internal server error", status=500), LamaticServerError),
    "502 html": Row(Canned(502, HTML, {"Content-Type": "text/html"}), LamaticServerError),
    "503 empty": Row(Canned(503), LamaticServerError, expected_text="empty"),
    "504": Row(Canned(504, b"upstream timed out"), LamaticServerError),
    "302 redirect": Row(Canned(302, b"", {"Location": "/elsewhere"}), LamaticResponseError),
    "204 no content": Row(Canned(204), LamaticResponseError),
    "200 empty": Row(Canned(200), LamaticResponseError, expected_text="empty body"),
    "200 html": Row(Canned(200, HTML, {"Content-Type": "text/html"}), LamaticResponseError),
    "200 data null": Row(json_reply(200, {"data": None}), LamaticResponseError),
}

GRAPHQL_200_ROWS: dict[str, Row] = {
    "code UNAUTHENTICATED": Row(graphql_errors("x", "UNAUTHENTICATED"), LamaticAuthenticationError),
    "code FORBIDDEN": Row(graphql_errors("x", "FORBIDDEN"), LamaticPermissionError),
    "code NOT_FOUND": Row(graphql_errors("x", "NOT_FOUND"), LamaticNotFoundError),
    "code BAD_USER_INPUT": Row(graphql_errors("x", "BAD_USER_INPUT"), LamaticBadRequestError),
    "code GRAPHQL_PARSE_FAILED": Row(
        graphql_errors("x", "GRAPHQL_PARSE_FAILED"), LamaticBadRequestError
    ),
    "code RATE_LIMITED": Row(graphql_errors("x", "RATE_LIMITED"), LamaticRateLimitError),
    "code INTERNAL_SERVER_ERROR": Row(
        graphql_errors("x", "INTERNAL_SERVER_ERROR"), LamaticServerError
    ),
    "invalid api key": Row(graphql_errors("Invalid API key"), LamaticAuthenticationError),
    "flow not found": Row(graphql_errors("Flow not found"), LamaticNotFoundError),
    "cannot query field": Row(
        graphql_errors('Cannot query field "summary" on type "WorkflowResponse".'),
        LamaticBadRequestError,
    ),
    "invalid variable": Row(
        graphql_errors('Variable "$payload" got invalid value 3; Expected type "JSON".'),
        LamaticBadRequestError,
    ),
    "token expired": Row(graphql_errors("token expired"), LamaticPermissionError),
    "rate limit": Row(graphql_errors("rate limit exceeded, slow down"), LamaticRateLimitError),
    "status error": Row(
        execution("error", result={"errorMsg": "API node returned 500"}, requestId="req-e"),
        LamaticExecutionError,
        expected_text="API node returned 500",
        request_id="req-e",
    ),
    "status failed": Row(
        execution("failed", result=None, message="Timeout in LLM node", requestId="req-f"),
        LamaticExecutionError,
        expected_text="Timeout in LLM node",
        request_id="req-f",
    ),
    "status of wrong type": Row(execution(["success"], result={}), LamaticResponseError),
}


def _check_row(row: Row, error: LamaticError, foreign: ForeignServer) -> None:
    assert type(error) is row.error_class
    assert error.status_code == row.reply.status
    assert error.operation == "executeWorkflow"
    assert error.flow_id == "foreign-flow"
    assert error.request_id == row.request_id
    assert row.expected_text in str(error)
    assert "foreign-flow" in str(error)
    assert len(foreign.seen) == 1
    assert LEAKED_KEY not in str(error)
    assert LEAKED_KEY not in (error.body_excerpt or "")
    assert API_KEY not in str(error)
    if row.retry_after is not None:
        assert isinstance(error, LamaticRateLimitError)
        assert error.retry_after is not None
        assert row.retry_after[0] <= error.retry_after <= row.retry_after[1]


@pytest.mark.parametrize("name", list(HTTP_ROWS))
def test_http_status_rows_hold_over_sockets(
    foreign: ForeignServer, client: LamaticClient, name: str
) -> None:
    row = HTTP_ROWS[name]
    foreign.reset(row.reply)
    with pytest.raises(LamaticError) as caught:
        client.execute_flow("foreign-flow", {"prompt": "hi"})
    _check_row(row, caught.value, foreign)


@pytest.mark.parametrize("name", list(GRAPHQL_200_ROWS))
def test_graphql_rows_with_http_200_hold_over_sockets(
    foreign: ForeignServer, client: LamaticClient, name: str
) -> None:
    row = GRAPHQL_200_ROWS[name]
    foreign.reset(row.reply)
    with pytest.raises(LamaticError) as caught:
        client.execute_flow("foreign-flow", {"prompt": "hi"})
    _check_row(row, caught.value, foreign)


@pytest.mark.parametrize("name", ["401", "429 seconds", "502 html", "200 html"])
async def test_http_status_rows_hold_over_sockets_async(
    foreign: ForeignServer, client: LamaticClient, name: str
) -> None:
    row = HTTP_ROWS[name]
    foreign.reset(row.reply)
    with pytest.raises(LamaticError) as caught:
        await client.aexecute_flow("foreign-flow", {"prompt": "hi"})
    _check_row(row, caught.value, foreign)


def test_success_over_sockets(foreign: ForeignServer, client: LamaticClient) -> None:
    foreign.reset(success_reply({"summary": "fine"}))
    response = client.execute_flow("foreign-flow", {"prompt": "hi"})
    assert response.result == {"summary": "fine"}
    assert response.request_id == "req-ok"


def test_redirect_is_not_followed(foreign: ForeignServer, client: LamaticClient) -> None:
    foreign.reset(HTTP_ROWS["302 redirect"].reply)
    with pytest.raises(LamaticResponseError):
        client.execute_flow("foreign-flow", {})
    assert [seen.path for seen in foreign.seen] == ["/graphql"]


def test_dropped_connection_is_a_connection_error(
    foreign: ForeignServer, client: LamaticClient
) -> None:
    foreign.reset(Canned(drop=True))
    with pytest.raises(LamaticConnectionError):
        client.execute_flow("foreign-flow", {})
    assert len(foreign.seen) == 1


def test_retryable_status_is_retried_over_sockets(
    foreign: ForeignServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import langchain_lamatic.client as client_module

    waits: list[float] = []
    monkeypatch.setattr(client_module.time, "sleep", waits.append)
    foreign.reset(Canned(503), Canned(429, b"", {"Retry-After": "4"}), success_reply())
    with LamaticClient(endpoint=foreign.url, project_id=PROJECT_ID, api_key=API_KEY) as client:
        assert client.execute_flow("foreign-flow", {}).status == "success"
    assert len(foreign.seen) == 3
    assert waits[1] == 4.0


def test_request_headers_as_the_server_sees_them(
    foreign: ForeignServer, client: LamaticClient
) -> None:
    client.execute_flow("foreign-flow", {"prompt": 'say "hi"'})
    seen = foreign.seen[0]
    assert seen.path == "/graphql"
    assert seen.headers["content-type"] == "application/json"
    assert seen.headers["x-project-id"] == PROJECT_ID
    assert seen.headers["authorization"] == f"Bearer {API_KEY}"
    assert seen.headers["user-agent"] == f"langchain-lamatic/{__version__}"
    body = json.loads(seen.body)
    assert body["variables"] == {"workflowId": "foreign-flow", "payload": {"prompt": 'say "hi"'}}


def test_sequential_calls_use_one_connection(foreign: ForeignServer, client: LamaticClient) -> None:
    for _ in range(15):
        client.execute_flow("foreign-flow", {})
    assert len(foreign.seen) == 15
    assert len({seen.client_port for seen in foreign.seen}) == 1


async def test_sequential_async_calls_use_one_connection(
    foreign: ForeignServer, client: LamaticClient
) -> None:
    for _ in range(15):
        await client.aexecute_flow("foreign-flow", {})
    assert len({seen.client_port for seen in foreign.seen}) == 1


def test_connection_is_reopened_after_an_error_page(
    foreign: ForeignServer, client: LamaticClient
) -> None:
    foreign.reset(Canned(502, HTML), success_reply())
    with pytest.raises(LamaticServerError):
        client.execute_flow("foreign-flow", {})
    assert client.execute_flow("foreign-flow", {}).status == "success"
