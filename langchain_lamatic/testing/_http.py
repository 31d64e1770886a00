"""HTTP plumbing of the test server: the threading server, request bodies and response writing.

Responses use HTTP/1.1 keep-alive with an exact `Content-Length`, so clients can pool
connections; event streams use chunked transfer encoding and are flushed after every event.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from langchain_lamatic.testing._graphql import dumps, error_body
from langchain_lamatic.testing._streaming import StreamEvent

__all__ = [
    "HTML_TYPE",
    "JSON_TYPE",
    "BodyError",
    "RequestHandler",
    "Response",
    "TrackingHTTPServer",
    "error_response",
    "json_response",
    "read_body",
    "reset_connection",
    "write_response",
    "write_stream",
]

logger = logging.getLogger(__name__)

JSON_TYPE = "application/json; charset=utf-8"
HTML_TYPE = "text/html; charset=utf-8"
MAX_BODY_BYTES = 16 * 1024 * 1024

HeaderList = tuple[tuple[str, str], ...]
Wait = Callable[[float], bool]


@dataclass(frozen=True)
class Response:
    """A complete response: status, body, content type (None sends none) and extra headers."""

    status: int
    body: bytes
    content_type: str | None
    headers: HeaderList = ()


def json_response(status: int, body: Mapping[str, Any], headers: HeaderList = ()) -> Response:
    """Build a JSON response."""
    return Response(status, dumps(body), JSON_TYPE, headers)


def error_response(status: int, message: str, code: str, headers: HeaderList = ()) -> Response:
    """Build a GraphQL error list response with one error."""
    return json_response(status, error_body(message, code), headers)


class BodyError(Exception):
    """Raised when the request body cannot be read; `response` is the error to send."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


class _App(Protocol):
    def _serve_request(self, handler: RequestHandler) -> None: ...


class TrackingHTTPServer(ThreadingHTTPServer):
    """Threading HTTP server that tracks its connections so they can be closed on stop."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: _App) -> None:
        super().__init__(address, RequestHandler)
        self.app = app
        self._connections_lock = threading.Lock()
        self._connections: dict[socket.socket, threading.Thread] = {}

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            name=f"lamatic-test-server-connection-{client_address[1]}",
            daemon=True,
        )
        with self._connections_lock:
            self._connections[request] = thread
        thread.start()

    def _serve_connection(self, request: socket.socket, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            with self._connections_lock:
                self._connections.pop(request, None)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that hang up mid-exchange are normal in fault tests; anything else is a bug.
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            logger.debug("Connection from %s ended: %s", client_address, error)
        else:
            logger.exception("Unexpected error while serving %s", client_address)

    def close_connections(self) -> list[threading.Thread]:
        """Shut down every open client socket and return the threads that served them."""
        with self._connections_lock:
            connections = list(self._connections.items())
        for sock, _thread in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        return [thread for _sock, thread in connections]


class RequestHandler(BaseHTTPRequestHandler):
    """Passes every request to the server's app; keeps connections alive between requests."""

    protocol_version = "HTTP/1.1"
    server_version = "LamaticTestServer"
    sys_version = ""
    # Headers and body go out in separate writes. With Nagle's algorithm the body would wait
    # for the client's delayed ACK, about 40 ms on Linux, on every keep-alive request.
    disable_nagle_algorithm = True
    server: TrackingHTTPServer

    def do_GET(self) -> None:
        self.server.app._serve_request(self)

    def do_POST(self) -> None:
        self.server.app._serve_request(self)

    def do_PUT(self) -> None:
        self.server.app._serve_request(self)

    def do_PATCH(self) -> None:
        self.server.app._serve_request(self)

    def do_DELETE(self) -> None:
        self.server.app._serve_request(self)

    def do_OPTIONS(self) -> None:
        self.server.app._serve_request(self)

    def do_HEAD(self) -> None:
        self.server.app._serve_request(self)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)


def _body_too_large() -> BodyError:
    return BodyError(
        error_response(413, f"Request body larger than {MAX_BODY_BYTES} bytes", "PAYLOAD_TOO_LARGE")
    )


def read_body(handler: RequestHandler) -> bytes:
    """Read the request body, by `Content-Length` or chunked transfer encoding.

    Raises:
        BodyError: The length is invalid or above 16 MiB; the connection is then closed.
        ConnectionResetError: The client closed the connection before the body ended.
    """
    transfer_encoding = handler.headers.get("Transfer-Encoding", "")
    if "chunked" in transfer_encoding.lower():
        return _read_chunked(handler)
    length_header = handler.headers.get("Content-Length")
    if length_header is None:
        return b""
    try:
        length = int(length_header)
    except ValueError:
        length = -1
    if length < 0:
        handler.close_connection = True
        raise BodyError(error_response(400, "Invalid Content-Length header", "BAD_REQUEST"))
    if length > MAX_BODY_BYTES:
        handler.close_connection = True
        raise _body_too_large()
    body = handler.rfile.read(length)
    if len(body) < length:
        handler.close_connection = True
        raise ConnectionResetError("client closed the connection before sending the whole body")
    return body


def _read_chunked(handler: RequestHandler) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        size_line = handler.rfile.readline(1024)
        if not size_line:
            raise ConnectionResetError("client closed the connection inside a chunked body")
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            handler.close_connection = True
            raise BodyError(
                error_response(400, "Invalid chunk size in chunked body", "BAD_REQUEST")
            ) from None
        if size == 0:
            # Skip trailer fields up to the blank line that ends the body.
            while handler.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(parts)
        total += size
        if total > MAX_BODY_BYTES:
            handler.close_connection = True
            raise _body_too_large()
        parts.append(handler.rfile.read(size))
        handler.rfile.readline(1024)


def write_response(
    handler: RequestHandler,
    response: Response,
    *,
    stall: float = 0.0,
    wait: Wait | None = None,
    reset_after: int | None = None,
) -> None:
    """Send a complete response.

    Args:
        handler: The connection's handler.
        response: What to send.
        stall: Seconds to wait between the headers and the body, using `wait`.
        wait: Sleeps for the given seconds and returns True when the server stops meanwhile;
            the connection is then reset.
        reset_after: Send only this many body bytes, then reset the connection.
    """
    handler.send_response(response.status)
    if response.content_type is not None:
        handler.send_header("Content-Type", response.content_type)
    handler.send_header("Content-Length", str(len(response.body)))
    for name, value in response.headers:
        handler.send_header(name, value)
    handler.end_headers()
    if handler.command == "HEAD":
        return
    if stall and wait is not None and wait(stall):
        reset_connection(handler)
        return
    if reset_after is not None:
        handler.wfile.write(response.body[:reset_after])
        handler.wfile.flush()
        reset_connection(handler)
        return
    handler.wfile.write(response.body)
    handler.wfile.flush()


def write_stream(
    handler: RequestHandler,
    events: Sequence[StreamEvent],
    *,
    abort: bool,
    frame_delay: float,
    wait: Wait,
    stall: float = 0.0,
) -> None:
    """Send Server-Sent Events, flushing each one as it is written.

    HTTP/1.1 clients get chunked transfer encoding and keep the connection; HTTP/1.0 clients
    get the raw stream and a closed connection at the end. With `abort`, the connection is
    reset after the last event instead of ending the body.
    """
    chunked = handler.request_version != "HTTP/1.0"
    handler.send_response(200)
    handler.send_header("Content-Type", "text/event-stream; charset=utf-8")
    handler.send_header("Cache-Control", "no-cache")
    if chunked:
        handler.send_header("Transfer-Encoding", "chunked")
    else:
        handler.send_header("Connection", "close")
    handler.end_headers()
    if stall and wait(stall):
        reset_connection(handler)
        return

    for index, event in enumerate(events):
        if index and wait(frame_delay):
            reset_connection(handler)
            return
        data = event.text.encode("utf-8")
        if chunked:
            handler.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))
        else:
            handler.wfile.write(data)
        handler.wfile.flush()

    if abort:
        reset_connection(handler)
        return
    if chunked:
        handler.wfile.write(b"0\r\n\r\n")
        handler.wfile.flush()
    else:
        handler.close_connection = True


def reset_connection(handler: RequestHandler) -> None:
    """Close the connection with a TCP reset (SO_LINGER 0) instead of an orderly shutdown."""
    handler.close_connection = True
    with contextlib.suppress(OSError):
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        handler.connection.close()
