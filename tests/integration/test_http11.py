"""AsyncHTTP11Transport over real loopback sockets, against servers that send exact bytes.

Every server here is a ``ScriptedServer`` (see ``http11_servers.py``) started by the test,
on 127.0.0.1 or ::1. Server-side counts (accepted, open and in-flight connections) show what
the transport did on the wire. Timeouts of ``HANG_BOUND`` seconds only detect hangs.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import gzip
import logging
import os
import random
import select
import socket
import ssl
import threading
import time
import types
import warnings
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

import httpx
import pytest
import respx
from http11_servers import (
    CLOSE,
    HOLD,
    RESET,
    Handler,
    RawServer,
    ReceivedRequest,
    ScriptedServer,
    Sleep,
    Step,
    WaitFor,
    chunked,
    listener_with_full_backlog,
    read_request_head,
    read_until_closed,
    respond_ok,
    response,
    unaccepted_listener,
)

from langchain_lamatic import _http11
from langchain_lamatic._http11 import (
    MAX_HEAD_BYTES,
    MAX_LINE_BYTES,
    READ_HIGH_WATER,
    AsyncHTTP11Transport,
    RawResponse,
    _Connection,
)

# Seconds after which a request that has not finished counts as hung.
HANG_BOUND = 5.0
# A short timeout for the phase a test makes time out.
SHORT_TIMEOUT = 0.3
TEN_MB = 10 * 1024 * 1024

StartServer = Callable[..., ScriptedServer]
MakeTransport = Callable[..., AsyncHTTP11Transport]


# --- Fixtures and helpers -------------------------------------------------------------------


@pytest.fixture
def start_server() -> Iterator[StartServer]:
    """Start ``ScriptedServer``s on loopback, each stopped when the test ends."""
    servers: list[ScriptedServer] = []

    def start(handler: Handler = respond_ok, **options: Any) -> ScriptedServer:
        server = ScriptedServer(handler, **options).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
async def make_transport() -> AsyncIterator[MakeTransport]:
    """Build transports that are closed when the test ends."""
    transports: list[AsyncHTTP11Transport] = []

    def make(**options: Any) -> AsyncHTTP11Transport:
        transport = AsyncHTTP11Transport(**options)
        transports.append(transport)
        return transport

    yield make
    for transport in transports:
        await transport.aclose()


def client_of(transport: AsyncHTTP11Transport) -> httpx.AsyncClient:
    """Return a client on ``transport``, which the ``make_transport`` fixture closes."""
    return httpx.AsyncClient(transport=transport, timeout=HANG_BOUND)


def build_request(method: str, url: str, **options: Any) -> httpx.Request:
    """Build a request for the transport itself, with ``HANG_BOUND`` as every timeout."""
    return httpx.Request(
        method, url, extensions={"timeout": httpx.Timeout(HANG_BOUND).as_dict()}, **options
    )


async def eventually(condition: Callable[[], bool], bound: float = HANG_BOUND) -> bool:
    """Poll ``condition`` every 10 ms until it is true or ``bound`` seconds pass."""
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.01)
    return condition()


def wait_until(condition: Callable[[], bool], bound: float = HANG_BOUND) -> bool:
    """Poll ``condition`` every 10 ms, blocking, until it is true or ``bound`` seconds pass."""
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def assert_pool_settled(transport: AsyncHTTP11Transport) -> None:
    """Check that no request has a slot or a connection, and that the idle count adds up."""
    assert transport._active == 0
    assert len(transport._waiters) == 0
    assert [connection for connection in transport.connections if connection.in_use] == []
    assert transport.idle_count == len(transport.connections)
    assert len(transport.connections) <= transport.max_connections


def by_target(routes: dict[str, list[Step]], default: Handler = respond_ok) -> Handler:
    """Return a handler that responds with ``routes[target]``, or else with ``default``."""

    def handle(request: ReceivedRequest) -> Iterable[Step]:
        if request.target in routes:
            return routes[request.target]
        return default(request)

    return handle


async def assert_slot_is_free(client: httpx.AsyncClient, url: str) -> None:
    """Send one more request with a short pool timeout: it fails if a slot leaked."""
    later = await client.get(url, timeout=httpx.Timeout(HANG_BOUND, pool=2.0))
    assert later.text == "ok"


# --- Response framing -----------------------------------------------------------------------


async def test_content_length_body_reuses_connection(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    server = start_server()
    client = client_of(make_transport())

    first = await client.get(server.url)
    second = await client.get(server.url)

    assert first.text == "ok"
    assert second.text == "ok"
    assert server.accepted == 1


async def test_zero_length_body_reuses_connection(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    server = start_server(lambda request: [response(body=b"")])
    client = client_of(make_transport())

    first = await client.get(server.url)
    await client.get(server.url)

    assert first.content == b""
    assert server.accepted == 1


async def test_slow_reader_keeps_buffer_bounded(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    body = bytes(range(256)) * (TEN_MB // 256)
    server = start_server(lambda request: [response(body=body)])
    transport = make_transport()
    client = client_of(transport)
    received = bytearray()
    largest_buffer = 0
    reading_was_paused = False

    async with client.stream("GET", server.url) as streamed:
        (connection,) = transport.connections
        async for chunk in streamed.aiter_raw():
            received += chunk
            largest_buffer = max(largest_buffer, len(connection._buffer))
            reading_was_paused = reading_was_paused or connection._reading_paused
            # A slow consumer: the server sends faster than this loop reads.
            await asyncio.sleep(0.002)

    assert len(received) == len(body)
    assert bytes(received) == body
    assert reading_was_paused
    # Reading pauses above READ_HIGH_WATER, and asyncio's socket transport reads at most
    # 256 KiB at a time, so one read can add that much before the pause.
    assert largest_buffer <= 2 * READ_HIGH_WATER


async def test_chunked_body_skips_extensions_and_trailers(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    body = (
        b"5;name=value\r\nhello\r\n6;flag\r\n world\r\n0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n"
    )
    server = start_server(
        lambda request: [
            response(body=body, headers=[("Transfer-Encoding", "chunked")], content_length=False)
        ]
    )
    client = client_of(make_transport())

    first = await client.get(server.url)
    await client.get(server.url)

    assert first.text == "hello world"
    assert "x-checksum" not in first.headers
    assert server.accepted == 1


async def test_tiny_chunks_across_writes_decode(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    letters = [bytes([ord("a") + index % 26]) for index in range(150)]
    encoded = chunked(*letters)
    head = response(body=b"", headers=[("Transfer-Encoding", "chunked")], content_length=False)

    def dribble(request: ReceivedRequest) -> Iterator[Step]:
        yield head
        # Three bytes per TCP segment (the server sets TCP_NODELAY), so sizes, data and
        # CRLFs are split at every possible place.
        for start in range(0, len(encoded), 3):
            yield encoded[start : start + 3]
            yield Sleep(0.001)

    server = start_server(dribble)
    client = client_of(make_transport())

    first = await client.get(server.url)
    await client.get(server.url)

    assert first.content == b"".join(letters)
    assert server.accepted == 1


async def test_close_delimited_body_closes_connection(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    server = start_server(
        lambda request: [response(body=b"until close", content_length=False), CLOSE]
    )
    transport = make_transport()
    client = client_of(transport)

    first = await client.get(server.url)
    second = await client.get(server.url)

    assert first.text == "until close"
    assert second.text == "until close"
    assert server.accepted == 2
    assert transport.connections == []


async def test_head_response_has_no_body(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    def handle(request: ReceivedRequest) -> list[Step]:
        if request.method == "HEAD":
            return [response(body=b"", headers=[("Content-Length", "100")], content_length=False)]
        return [response()]

    server = start_server(handle)
    client = client_of(make_transport())

    head = await client.head(server.url)
    after = await client.get(server.url)

    assert head.content == b""
    assert head.headers["content-length"] == "100"
    assert after.text == "ok"
    assert server.accepted == 1


async def test_no_content_response_has_no_body(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    server = start_server(
        by_target({"/empty": [response(204, b"", reason="No Content", content_length=False)]})
    )
    client = client_of(make_transport())

    empty = await client.get(f"{server.url}/empty")
    after = await client.get(server.url)

    assert empty.status_code == 204
    assert empty.content == b""
    assert after.text == "ok"
    assert server.accepted == 1


async def test_not_modified_ignores_content_length(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    not_modified = response(
        304, b"", reason="Not Modified", headers=[("Content-Length", "10")], content_length=False
    )
    server = start_server(by_target({"/cached": [not_modified]}))
    client = client_of(make_transport())

    cached = await client.get(f"{server.url}/cached")
    after = await client.get(server.url)

    assert cached.status_code == 304
    assert cached.content == b""
    # Had the client taken the next response as the 304's body, this would not be "ok".
    assert after.text == "ok"
    assert server.accepted == 1


INFORMATIONAL = {
    100: b"HTTP/1.1 100 Continue\r\n\r\n",
    103: b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n",
}


@pytest.mark.parametrize("statuses", [[100], [103], [100, 103]], ids=["100", "103", "100-103"])
async def test_informational_responses_are_skipped(
    start_server: StartServer, make_transport: MakeTransport, statuses: list[int]
) -> None:
    prefix = b"".join(INFORMATIONAL[status] for status in statuses)
    server = start_server(lambda request: [prefix + response()])
    client = client_of(make_transport())

    final = await client.get(server.url)
    await client.get(server.url)

    assert final.status_code == 200
    assert final.text == "ok"
    assert server.accepted == 1


async def test_switching_protocols_is_rejected(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    switching = response(
        101,
        b"",
        reason="Switching Protocols",
        headers=[("Upgrade", "websocket"), ("Connection", "Upgrade")],
        content_length=False,
    )
    server = start_server(lambda request: [switching, HOLD])
    transport = make_transport()
    client = client_of(transport)

    with pytest.raises(httpx.RemoteProtocolError, match="switched protocols"):
        await client.get(server.url)

    assert transport.connections == []
    assert_pool_settled(transport)


async def test_http10_response_closes_connection(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    # The server keeps the connection open, so only the client can decide not to reuse it.
    server = start_server(lambda request: [response(version="HTTP/1.0")])
    client = client_of(make_transport())

    first = await client.get(server.url)
    await client.get(server.url)

    assert first.http_version == "HTTP/1.0"
    assert server.accepted == 2
    assert await eventually(lambda: server.closed_by_client >= 1)


async def test_server_connection_close_prevents_reuse(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    server = start_server(lambda request: [response(headers=[("Connection", "close")])])
    client = client_of(make_transport())

    await client.get(server.url)
    await client.get(server.url)

    assert server.accepted == 2
    assert await eventually(lambda: server.closed_by_client >= 1)


async def test_request_connection_close_prevents_reuse(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    server = start_server()
    client = client_of(make_transport())

    await client.get(server.url, headers={"Connection": "close"})
    await client.get(server.url, headers={"Connection": "close"})

    assert server.accepted == 2


async def test_chunked_with_content_length_prevents_reuse(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    both = response(
        body=chunked(b"hello"),
        headers=[("Transfer-Encoding", "chunked"), ("Content-Length", "999")],
        content_length=False,
    )
    server = start_server(lambda request: [both])
    client = client_of(make_transport())

    first = await client.get(server.url)
    await client.get(server.url)

    assert first.text == "hello"
    assert server.accepted == 2


async def test_bare_lf_response_is_read(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    # RFC 9112 section 2.2 lets a recipient accept a bare LF as a line end, and h11 does.
    server = start_server(lambda request: [b"HTTP/1.1 200 OK\nContent-Length: 5\n\nhello"])
    client = client_of(make_transport())

    first = await client.get(server.url)
    second = await client.get(server.url)

    assert first.status_code == 200
    assert first.headers["content-length"] == "5"
    assert first.text == "hello"
    assert second.text == "hello"
    assert server.accepted == 1


async def test_bare_lf_chunked_body_is_read(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    encoded = (
        b"HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n5\nhello\n6;ext\n world\n0\nX-T: 1\n\n"
    )
    server = start_server(lambda request: [encoded])
    client = client_of(make_transport())

    first = await client.get(server.url)
    second = await client.get(server.url)

    assert first.text == "hello world"
    assert second.text == "hello world"
    assert server.accepted == 1


async def test_folded_header_is_unfolded(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    folded = b"HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\n\tc\r\nContent-Length: 2\r\n\r\nok"
    server = start_server(lambda request: [folded])
    client = client_of(make_transport())

    first = await client.get(server.url)

    assert first.headers["x-folded"] == "a b c"
    assert first.text == "ok"


async def test_http10_chunked_body_is_read_and_not_reused(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    # The server keeps the connection open, so only the client can decide not to reuse it.
    head = b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    server = start_server(lambda request: [head + chunked(b"hello")])
    transport = make_transport()
    client = client_of(transport)

    first = await client.get(server.url)
    second = await client.get(server.url)

    assert first.text == "hello"
    assert second.text == "hello"
    assert server.accepted == 2
    assert await eventually(lambda: server.closed_by_client >= 1)


async def test_whitespace_after_chunk_size_is_accepted(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    body = b"5 \r\nhello\r\n6\t;ext\r\n world\r\n0 \t\r\n\r\n"
    server = start_server(lambda request: [CHUNKED_HEAD + body])
    client = client_of(make_transport())

    first = await client.get(server.url)
    await client.get(server.url)

    assert first.text == "hello world"
    assert server.accepted == 1


# --- Malformed responses --------------------------------------------------------------------

CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
TEN_BYTE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"
MALFORMED_STATUS_LINE = (
    "Malformed response status line: expected 'HTTP/1.1', a 3-digit status code and a "
    "reason phrase, got"
)
INVALID_CHUNK_SIZE = "Invalid chunk size line in the response body: expected a hexadecimal size"

# Each case: the steps of the server's response, the expected error, and a part of its message.
# HOLD keeps the connection open, so the transport must find the fault in the bytes alone: a
# transport that waited for more would raise ReadTimeout after HANG_BOUND instead.
MALFORMED_RESPONSES = [
    pytest.param(
        [b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n", HOLD],
        httpx.RemoteProtocolError,
        f"{MALFORMED_STATUS_LINE} 16 bytes that are not",
        id="four-digit-status",
    ),
    pytest.param(
        [b"HTTP/2 200 OK\r\nContent-Length: 0\r\n\r\n", HOLD],
        httpx.RemoteProtocolError,
        f"{MALFORMED_STATUS_LINE} 13 bytes that are not",
        id="unsupported-version",
    ),
    pytest.param(
        [b"hello there\r\n\r\n", HOLD],
        httpx.RemoteProtocolError,
        f"{MALFORMED_STATUS_LINE} 11 bytes that are not",
        id="no-status-line",
    ),
    pytest.param(
        [b"HTTP/1.1 099 Odd\r\nContent-Length: 0\r\n\r\n", HOLD],
        httpx.RemoteProtocolError,
        "Invalid response status code 99",
        id="status-below-100",
    ),
    pytest.param(
        [b"HTTP/1.1 200 OK\r\nBad Name: x\r\nContent-Length: 0\r\n\r\n", HOLD],
        httpx.RemoteProtocolError,
        "Malformed response header on line 2 of the response head",
        id="space-in-header-name",
    ),
    pytest.param(
        [b"HTTP/1.1 200 OK\r\n folded: a\r\nContent-Length: 0\r\n\r\n", HOLD],
        httpx.RemoteProtocolError,
        "Malformed response header on line 2 of the response head",
        id="fold-before-first-header",
    ),
    pytest.param(
        # A bare LF ends the line, so "b" is a header line without a colon.
        [b"HTTP/1.1 200 OK\r\nX-Value: a\nb\r\nContent-Length: 0\r\n\r\n", HOLD],
        httpx.RemoteProtocolError,
        "Malformed response header on line 3 of the response head",
        id="bare-line-feed-in-value",
    ),
    pytest.param(
        [b"HTTP/1.1 200 OK\r\nX-Value: a\rb\r\nContent-Length: 0\r\n\r\n", HOLD],
        httpx.RemoteProtocolError,
        "The response header on line 2 contains a CR or NUL byte",
        id="carriage-return-in-value",
    ),
    pytest.param(
        [b"HTTP/1.1 200 OK\r\nX-Pad: " + b"a" * (MAX_HEAD_BYTES + 1024), HOLD],
        httpx.RemoteProtocolError,
        "The response head is longer than 102400 bytes",
        id="head-over-100-kib",
    ),
    pytest.param(
        [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok", HOLD],
        httpx.RemoteProtocolError,
        "The response has 2 different Content-Length values",
        id="conflicting-content-length",
    ),
    pytest.param(
        [b"HTTP/1.1 200 OK\r\nContent-Length: two\r\n\r\nok", HOLD],
        httpx.RemoteProtocolError,
        "The response's Content-Length is not a whole number",
        id="non-numeric-content-length",
    ),
    pytest.param(
        [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n" + chunked(b"x"), HOLD],
        httpx.RemoteProtocolError,
        "Unsupported Transfer-Encoding in the response; only 'chunked' is supported",
        id="gzip-then-chunked",
    ),
    pytest.param(
        [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\nok", HOLD],
        httpx.RemoteProtocolError,
        "Unsupported Transfer-Encoding in the response; only 'chunked' is supported",
        id="identity-coding",
    ),
    pytest.param(
        [CHUNKED_HEAD + b"zz\r\nhello\r\n0\r\n\r\n", HOLD],
        httpx.RemoteProtocolError,
        INVALID_CHUNK_SIZE,
        id="bad-chunk-size",
    ),
    pytest.param(
        [CHUNKED_HEAD + b" 5\r\nhello\r\n0\r\n\r\n", HOLD],
        httpx.RemoteProtocolError,
        INVALID_CHUNK_SIZE,
        id="space-before-chunk-size",
    ),
    pytest.param(
        [CHUNKED_HEAD + b"3\r\nhello\r\n0\r\n\r\n", HOLD],
        httpx.RemoteProtocolError,
        "longer than its size",
        id="chunk-longer-than-size",
    ),
    pytest.param(
        [CHUNKED_HEAD + b"5;" + b"x" * (MAX_LINE_BYTES + 1024) + b"\r\nhello\r\n0\r\n\r\n", HOLD],
        httpx.RemoteProtocolError,
        "A line of the chunked body is longer than 102400 bytes",
        id="chunk-line-over-100-kib",
    ),
    pytest.param(
        [CHUNKED_HEAD + b"5;" + b"x" * (MAX_LINE_BYTES + 1024), HOLD],
        httpx.RemoteProtocolError,
        "A line of the chunked body is longer than 102400 bytes",
        id="unterminated-chunk-line-over-100-kib",
    ),
    pytest.param(
        [CLOSE],
        httpx.RemoteProtocolError,
        "without sending a response",
        id="close-before-response",
    ),
    pytest.param(
        [b"HTTP/1.1 200 OK\r\nContent-", CLOSE],
        httpx.RemoteProtocolError,
        "middle of the response head",
        id="close-mid-head",
    ),
    pytest.param(
        [TEN_BYTE_HEAD + b"abc", CLOSE],
        httpx.RemoteProtocolError,
        "received 3 of 10 bytes",
        id="close-mid-body",
    ),
    pytest.param(
        [CHUNKED_HEAD + b"5\r\nhe", CLOSE],
        httpx.RemoteProtocolError,
        "middle of a chunk",
        id="close-mid-chunk",
    ),
    pytest.param(
        [CHUNKED_HEAD + b"5;ext", CLOSE],
        httpx.RemoteProtocolError,
        "middle of a chunked body",
        id="close-mid-chunk-size-line",
    ),
    pytest.param(
        # The pause lets the client read the first bytes before the reset arrives.
        [TEN_BYTE_HEAD + b"abc", Sleep(0.2), RESET],
        httpx.ReadError,
        "",
        id="reset-mid-body",
    ),
]


@pytest.mark.parametrize(("steps", "error_type", "message"), MALFORMED_RESPONSES)
async def test_malformed_response_raises_httpx_error(
    start_server: StartServer,
    make_transport: MakeTransport,
    steps: list[Step],
    error_type: type[httpx.TransportError],
    message: str,
) -> None:
    server = start_server(lambda request: steps)
    transport = make_transport()
    client = client_of(transport)

    with pytest.raises(httpx.TransportError) as caught:
        await client.get(server.url)

    assert type(caught.value) is error_type
    assert message in str(caught.value)
    assert transport.connections == []
    assert_pool_settled(transport)


# A credential that the server echoes into a malformed response.
ECHOED_SECRET = "lmt_sk_Q7vR2xN9pK4wZ8mT3c"
ECHOED_SECRET_RESPONSES = [
    pytest.param(f"HTTP/1.1 2x0 {ECHOED_SECRET}\r\n\r\n", id="status-line"),
    pytest.param(f"{ECHOED_SECRET} 200 OK\r\n\r\n", id="status-line-start"),
    pytest.param(f"HTTP/1.1 200 OK\r\nBad {ECHOED_SECRET}: x\r\n\r\n", id="header-line"),
    pytest.param(f"HTTP/1.1 200 OK\r\n{ECHOED_SECRET}\r\n\r\n", id="header-line-no-colon"),
    pytest.param(f"HTTP/1.1 200 OK\r\nX-Echo: {ECHOED_SECRET}\r\x00\r\n\r\n", id="cr-in-value"),
    pytest.param(
        f"HTTP/1.1 200 OK\r\nContent-Length: {ECHOED_SECRET}\r\n\r\nok", id="content-length"
    ),
    pytest.param(
        f"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: {ECHOED_SECRET}\r\n\r\nok",
        id="conflicting-content-length",
    ),
    pytest.param(
        f"HTTP/1.1 200 OK\r\nTransfer-Encoding: {ECHOED_SECRET}\r\n\r\nok",
        id="transfer-encoding",
    ),
    pytest.param(
        f"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{ECHOED_SECRET}\r\nok\r\n",
        id="chunk-size-line",
    ),
]


def error_texts(error: BaseException) -> list[str]:
    """Return str() and repr() of ``error`` and of every exception it was raised from."""
    texts = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        texts += [str(current), repr(current)]
        current = current.__cause__ or current.__context__
    return texts


@pytest.mark.parametrize("raw_response", ECHOED_SECRET_RESPONSES)
async def test_protocol_error_omits_echoed_secret(
    start_server: StartServer, make_transport: MakeTransport, raw_response: str
) -> None:
    server = start_server(lambda request: [raw_response.encode(), HOLD])
    client = client_of(make_transport())

    with pytest.raises(httpx.RemoteProtocolError) as caught:
        await client.get(server.url)

    fragments = {ECHOED_SECRET[start : start + 6] for start in range(len(ECHOED_SECRET) - 5)}
    for text in error_texts(caught.value):
        assert [fragment for fragment in fragments if fragment in text] == [], text


OVERSIZED_HEAD_PAD = "a" * (110 * 1024)


async def test_oversized_complete_head_is_rejected(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    oversized = response(headers=[("X-Pad", OVERSIZED_HEAD_PAD)])
    go = threading.Event()
    sent = threading.Event()

    def handle(request: ReceivedRequest) -> Iterator[Step]:
        yield WaitFor(go)
        yield oversized
        sent.set()

    server = start_server(handle)
    client = client_of(make_transport())
    task = asyncio.create_task(client.get(server.url))
    assert await eventually(lambda: len(server.requests) == 1)

    # Blocking the loop until the whole response sits in the socket makes the transport
    # receive it in one read of up to 256 KiB.
    go.set()
    assert sent.wait(HANG_BOUND)
    time.sleep(0.1)  # noqa: ASYNC251 - the loop must not run until every byte has arrived

    with pytest.raises(httpx.RemoteProtocolError) as caught:
        await task
    assert str(caught.value) == "The response head is longer than 102400 bytes"


@pytest.mark.parametrize("terminated", [True, False], ids=["complete", "unterminated"])
async def test_oversized_head_in_pieces_is_rejected(
    start_server: StartServer, make_transport: MakeTransport, terminated: bool
) -> None:
    encoded = response(headers=[("X-Pad", OVERSIZED_HEAD_PAD)])
    if not terminated:
        encoded = encoded.split(b"\r\n\r\n")[0]

    def dribble(request: ReceivedRequest) -> Iterator[Step]:
        # Pieces of 8 KiB with pauses between them arrive in separate reads.
        for start in range(0, len(encoded), 8192):
            yield encoded[start : start + 8192]
            yield Sleep(0.002)
        yield HOLD

    server = start_server(dribble)
    transport = make_transport()

    with pytest.raises(httpx.RemoteProtocolError) as caught:
        await client_of(transport).get(server.url)

    assert str(caught.value) == "The response head is longer than 102400 bytes"
    assert transport.connections == []
    assert_pool_settled(transport)


async def test_90_kib_head_is_accepted(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    pad = "a" * (90 * 1024)
    server = start_server(lambda request: [response(headers=[("X-Pad", pad)])])
    client = client_of(make_transport())

    first = await client.get(server.url)
    second = await client.get(server.url)

    assert first.headers["x-pad"] == pad
    assert first.text == "ok"
    assert second.text == "ok"
    assert server.accepted == 1


async def test_90_kib_chunk_extension_is_accepted(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    body = b"5;name=" + b"x" * (90 * 1024) + b"\r\nhello\r\n0\r\n\r\n"
    server = start_server(lambda request: [CHUNKED_HEAD + body])
    client = client_of(make_transport())

    first = await client.get(server.url)
    await client.get(server.url)

    assert first.text == "hello"
    assert server.accepted == 1


# --- Keep-alive -----------------------------------------------------------------------------


async def test_sequential_requests_share_one_connection(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    server = start_server()
    client = client_of(make_transport())

    for _ in range(5):
        await client.get(server.url)

    assert server.accepted == 1
    assert server.connection_ids() == [1] * 5


@pytest.mark.parametrize("released_last", [0, 1], ids=["first-opened", "second-opened"])
async def test_last_released_connection_reused_first(
    start_server: StartServer, make_transport: MakeTransport, released_last: int
) -> None:
    server = start_server()
    transport = make_transport()
    # Neither body is read yet, so each request needs its own connection.
    responses = [
        await transport.handle_async_request(build_request("GET", f"{server.url}/{index}"))
        for index in range(2)
    ]

    await responses[1 - released_last].aread()
    await responses[released_last].aread()
    reused = await transport.handle_async_request(build_request("GET", f"{server.url}/next"))
    await reused.aread()

    first_id, second_id, reused_id = server.connection_ids()
    assert first_id != second_id
    assert reused_id == [first_id, second_id][released_last]


async def test_server_closed_idle_connection_not_reused(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    server = start_server(lambda request: [response(), Sleep(0.1), CLOSE])
    transport = make_transport()
    client = client_of(transport)
    await client.get(server.url)
    (connection,) = transport.connections

    assert await eventually(lambda: connection.closed)
    second = await client.get(server.url)

    assert second.text == "ok"
    assert server.accepted == 2
    assert connection not in transport.connections


async def test_unprocessed_server_close_found_by_poll(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    server = start_server(lambda request: [response(), Sleep(0.1), CLOSE])
    transport = make_transport()
    client = client_of(transport)
    await client.get(server.url)
    (connection,) = transport.connections

    # The server closes during this sleep, and the loop cannot process the FIN.
    time.sleep(0.5)  # noqa: ASYNC251 - blocking the event loop is the point of this test
    assert not connection._eof
    second = await client.get(server.url)

    assert second.text == "ok"
    assert server.accepted == 2


async def test_connections_exclude_server_closed_idle(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    server = start_server(lambda request: [response(), Sleep(0.1), CLOSE])
    transport = make_transport()
    client = client_of(transport)
    await client.get(server.url)
    (connection,) = transport.connections

    assert await eventually(lambda: connection.closed)

    assert transport.connections == []
    assert transport.idle_count == 0


async def test_idle_connection_closes_its_socket_on_server_fin(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    server = start_server(lambda request: [response(), Sleep(0.1), CLOSE])
    transport = make_transport()
    await client_of(transport).get(server.url)
    (connection,) = transport.connections
    assert connection.transport is not None
    sock = connection.transport.get_extra_info("socket")

    assert await eventually(lambda: sock.fileno() == -1)
    assert transport.connections == []
    assert transport.idle_count == 0


async def test_expired_idle_connection_is_replaced(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    server = start_server()
    client = client_of(make_transport(keepalive_expiry=0.2))
    await client.get(server.url)

    await asyncio.sleep(0.5)
    await client.get(server.url)

    assert server.accepted == 2
    assert await eventually(lambda: server.closed_by_client == 1)


async def test_expired_idle_connection_closes_without_next_request(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    server = start_server()
    transport = make_transport(keepalive_expiry=0.2)
    await client_of(transport).get(server.url)

    await asyncio.sleep(1.0)

    assert transport.connections == []
    assert transport.idle_count == 0
    assert await eventually(lambda: server.closed_by_client == 1)
    # With no idle connection left, the timer is not armed again.
    assert transport._sweep is None


async def test_idle_connections_expire_one_after_another(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    server = start_server()
    transport = make_transport(keepalive_expiry=0.3)
    first = await transport.handle_async_request(build_request("GET", f"{server.url}/first"))
    second = await transport.handle_async_request(build_request("GET", f"{server.url}/second"))

    # The second connection goes idle later, so the first expiry check finds it still fresh
    # and must arm the timer again for it.
    await first.aread()
    await asyncio.sleep(0.15)
    await second.aread()
    await asyncio.sleep(1.5)

    assert transport.connections == []
    assert transport.idle_count == 0
    assert await eventually(lambda: server.closed_by_client == 2)


async def test_aclose_cancels_expiry_timer(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    server = start_server()
    transport = make_transport(keepalive_expiry=60)
    await client_of(transport).get(server.url)
    timer = transport._sweep
    assert timer is not None

    await transport.aclose()

    assert timer.cancelled()
    assert transport._sweep is None


@pytest.fixture
def select_without_poll(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make the transport check sockets as on Windows, which has no select.poll.

    Returns the file descriptors that ``select.select`` was called with, in order.
    """
    checked: list[int] = []

    def recording_select(
        readable: list[int], writable: list[int], errors: list[int], timeout: float
    ) -> tuple[list[int], list[int], list[int]]:
        checked.extend(readable)
        return select.select(readable, writable, errors, timeout)

    monkeypatch.setattr(_http11, "_HAS_POLL", False)
    # Without a poll attribute, any call to select.poll() fails the test.
    monkeypatch.setattr(_http11, "select", types.SimpleNamespace(select=recording_select))
    return checked


async def test_reuse_check_without_poll_reuses_connection(
    start_server: StartServer, make_transport: MakeTransport, select_without_poll: list[int]
) -> None:
    server = start_server()
    transport = make_transport()
    client = client_of(transport)

    await client.get(server.url)
    (connection,) = transport.connections
    second = await client.get(server.url)

    assert second.text == "ok"
    assert server.accepted == 1
    assert connection.fileno in select_without_poll


async def test_reuse_check_without_poll_finds_server_close(
    start_server: StartServer, make_transport: MakeTransport, select_without_poll: list[int]
) -> None:
    server = start_server(lambda request: [response(), Sleep(0.1), CLOSE])
    transport = make_transport()
    client = client_of(transport)
    await client.get(server.url)
    (connection,) = transport.connections

    # The server closes during this sleep, and the loop cannot process the FIN.
    time.sleep(0.5)  # noqa: ASYNC251 - blocking the event loop is the point of this test
    assert not connection._eof
    second = await client.get(server.url)

    assert second.text == "ok"
    assert server.accepted == 2
    assert connection.fileno in select_without_poll


async def test_unexpected_bytes_after_response_prevent_reuse(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    server = start_server(lambda request: [response() + b"unexpected"])
    client = client_of(make_transport())

    first = await client.get(server.url)
    second = await client.get(server.url)

    assert first.text == "ok"
    assert second.text == "ok"
    assert server.accepted == 2


# --- Connection limits ----------------------------------------------------------------------


async def test_concurrent_requests_never_exceed_max_connections(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    server = start_server(lambda request: [Sleep(0.05), response()])
    transport = make_transport(max_connections=3)
    client = client_of(transport)

    responses = await asyncio.gather(*(client.get(server.url) for _ in range(9)))

    assert [item.text for item in responses] == ["ok"] * 9
    assert server.accepted <= 3
    assert server.peak_open_connections <= 3
    assert server.peak_in_flight <= 3
    assert_pool_settled(transport)


async def test_waiters_served_in_arrival_order(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    server = start_server()
    transport = make_transport(max_connections=1)
    client = client_of(transport)
    holder = await transport.handle_async_request(build_request("GET", f"{server.url}/holder"))

    waiting = []
    for index in range(1, 6):
        waiting.append(asyncio.create_task(client.get(f"{server.url}/{index}")))
        # Each request joins the queue before the next one is sent.
        assert await eventually(lambda: len(transport._waiters) == len(waiting))
    await holder.aread()
    await asyncio.gather(*waiting)

    targets = [request.target for request in server.requests]
    assert targets == ["/holder", "/1", "/2", "/3", "/4", "/5"]


async def test_pool_timeout_names_the_limit(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    server = start_server()
    transport = make_transport(max_connections=3)
    client = client_of(transport)
    holders = [
        await transport.handle_async_request(build_request("GET", server.url)) for _ in range(3)
    ]

    with pytest.raises(httpx.PoolTimeout) as caught:
        await client.get(server.url, timeout=httpx.Timeout(HANG_BOUND, pool=SHORT_TIMEOUT))

    assert "one of 3 connections" in str(caught.value)
    assert len(transport._waiters) == 0
    for holder in holders:
        await holder.aread()
    await assert_slot_is_free(client, server.url)


async def test_idle_connection_evicted_for_other_origin(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    first_server = start_server()
    second_server = start_server()
    transport = make_transport(max_connections=1)
    client = client_of(transport)
    await client.get(first_server.url)

    second = await client.get(second_server.url)

    assert second.text == "ok"
    assert await eventually(lambda: first_server.open_connections == 0)
    assert [connection.origin[2] for connection in transport.connections] == [second_server.port]


# --- Timeouts -------------------------------------------------------------------------------


async def test_connect_timeout_raises_and_frees_slot(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    server = start_server()
    transport = make_transport(max_connections=1)
    client = client_of(transport)

    with listener_with_full_backlog() as address:
        if address is None:
            pytest.skip("this system does not hold a connection to a full accept queue pending")
        host, port = address
        with pytest.raises(httpx.ConnectTimeout):
            await client.get(
                f"http://{host}:{port}/", timeout=httpx.Timeout(HANG_BOUND, connect=SHORT_TIMEOUT)
            )

    assert transport.connections == []
    assert_pool_settled(transport)
    await assert_slot_is_free(client, server.url)


async def test_read_timeout_waiting_for_head_frees_slot(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    server = start_server(by_target({"/stall": [b"HTTP/1.1 200 OK\r\n", HOLD]}))
    transport = make_transport(max_connections=1)
    client = client_of(transport)

    with pytest.raises(httpx.ReadTimeout):
        await client.get(
            f"{server.url}/stall", timeout=httpx.Timeout(HANG_BOUND, read=SHORT_TIMEOUT)
        )

    assert transport.connections == []
    assert_pool_settled(transport)
    await assert_slot_is_free(client, server.url)


async def test_read_timeout_mid_body_frees_slot(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    server = start_server(by_target({"/stall": [TEN_BYTE_HEAD + b"abc", HOLD]}))
    transport = make_transport(max_connections=1)
    client = client_of(transport)

    with pytest.raises(httpx.ReadTimeout):
        await client.get(
            f"{server.url}/stall", timeout=httpx.Timeout(HANG_BOUND, read=SHORT_TIMEOUT)
        )

    assert transport.connections == []
    assert_pool_settled(transport)
    await assert_slot_is_free(client, server.url)


# Far more than the kernel buffers for a connection whose receiver never reads, so sending
# it blocks.
UNREAD_BODY_SIZE = 32 * 1024 * 1024


async def test_write_timeout_frees_slot(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    server = start_server()
    transport = make_transport(max_connections=1)
    client = client_of(transport)

    with unaccepted_listener() as (host, port), pytest.raises(httpx.WriteTimeout):
        await client.post(
            f"http://{host}:{port}/",
            content=bytes(UNREAD_BODY_SIZE),
            timeout=httpx.Timeout(HANG_BOUND, write=SHORT_TIMEOUT),
        )

    assert transport.connections == []
    assert_pool_settled(transport)
    await assert_slot_is_free(client, server.url)


async def test_write_timeout_closes_the_socket(make_transport: MakeTransport) -> None:
    transport = make_transport(max_connections=1)
    client = client_of(transport)

    with unaccepted_listener() as (host, port):
        task = asyncio.create_task(
            client.post(
                f"http://{host}:{port}/",
                content=bytes(UNREAD_BODY_SIZE),
                timeout=httpx.Timeout(HANG_BOUND, write=SHORT_TIMEOUT),
            )
        )
        assert await eventually(lambda: len(transport.connections) == 1)
        (connection,) = transport.connections
        assert connection.transport is not None
        sock = connection.transport.get_extra_info("socket")
        with pytest.raises(httpx.WriteTimeout):
            await task

        assert await eventually(lambda: sock.fileno() == -1, bound=2.0)


# --- Cancellation ---------------------------------------------------------------------------


async def test_cancel_while_connecting_frees_slot(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    server = start_server()
    transport = make_transport(max_connections=1)
    client = client_of(transport)

    with listener_with_full_backlog() as address:
        if address is None:
            pytest.skip("this system does not hold a connection to a full accept queue pending")
        host, port = address
        task = asyncio.create_task(client.get(f"http://{host}:{port}/"))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    assert transport.connections == []
    assert_pool_settled(transport)
    await assert_slot_is_free(client, server.url)


@pytest.mark.parametrize("loop_iterations", [0, 1, 2, 3, 4, 6, 8])
async def test_early_cancel_frees_slot(
    start_server: StartServer, make_transport: MakeTransport, loop_iterations: int
) -> None:
    server = start_server(by_target({"/stall": [HOLD]}))
    transport = make_transport(max_connections=1)
    client = client_of(transport)

    task = asyncio.create_task(client.get(f"{server.url}/stall"))
    for _ in range(loop_iterations):
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # A connection attempt that was abandoned closes once it completes.
    await asyncio.sleep(0.05)

    assert_pool_settled(transport)
    await assert_slot_is_free(client, server.url)


async def test_cancel_while_waiting_for_head_frees_slot(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    server = start_server(by_target({"/stall": [HOLD]}))
    transport = make_transport(max_connections=1)
    client = client_of(transport)

    task = asyncio.create_task(client.get(f"{server.url}/stall"))
    assert await eventually(lambda: len(server.requests) == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert transport.connections == []
    assert_pool_settled(transport)
    assert await eventually(lambda: server.open_connections == 0)
    await assert_slot_is_free(client, server.url)


async def test_cancel_mid_body_frees_slot(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    server = start_server(by_target({"/stall": [TEN_BYTE_HEAD + b"abc", HOLD]}))
    transport = make_transport(max_connections=1)
    client = client_of(transport)
    got_first_bytes = asyncio.Event()

    async def read_body() -> None:
        async with client.stream("GET", f"{server.url}/stall") as streamed:
            async for _ in streamed.aiter_raw():
                got_first_bytes.set()

    task = asyncio.create_task(read_body())
    await asyncio.wait_for(got_first_bytes.wait(), HANG_BOUND)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert transport.connections == []
    assert_pool_settled(transport)
    await assert_slot_is_free(client, server.url)


async def test_cancel_while_waiting_for_slot_leaves_queue(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    server = start_server()
    transport = make_transport(max_connections=1)
    client = client_of(transport)
    holder = await transport.handle_async_request(build_request("GET", server.url))

    task = asyncio.create_task(client.get(server.url))
    assert await eventually(lambda: len(transport._waiters) == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert len(transport._waiters) == 0
    assert transport._active == 1
    await holder.aread()
    assert_pool_settled(transport)
    await assert_slot_is_free(client, server.url)


def random_delays(request: ReceivedRequest) -> list[Step]:
    """Respond with a 20-byte body, with pauses between parts drawn from the request target."""
    rng = random.Random(request.target)
    return [
        Sleep(rng.uniform(0, 0.015)),
        b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n",
        Sleep(rng.uniform(0, 0.015)),
        b"0123456789",
        Sleep(rng.uniform(0, 0.015)),
        b"0123456789",
    ]


async def cancel_after_loop_iterations(task: asyncio.Task[Any], iterations: int) -> None:
    for _ in range(iterations):
        await asyncio.sleep(0)
    task.cancel()


@pytest.mark.parametrize("max_connections", [1, 2])
@pytest.mark.parametrize("seed", range(4))
async def test_random_cancellations_keep_pool_consistent(
    start_server: StartServer, make_transport: MakeTransport, max_connections: int, seed: int
) -> None:
    server = start_server(random_delays)
    transport = make_transport(max_connections=max_connections)
    client = client_of(transport)
    rng = random.Random(seed)
    loop = asyncio.get_running_loop()
    outcomes: list[object] = []

    # Each round sends one request more than there are slots, and cancels each after a few
    # loop iterations, after a few milliseconds, or not at all. With these seeds the
    # cancellations land in every phase: before the start, in the slot queue, during
    # connect, while waiting for the head, and in the body.
    for round_number in range(10):
        tasks = []
        cancellers = []
        for index in range(max_connections + 1):
            url = f"{server.url}/random/{seed}/{round_number}-{index}"
            task = asyncio.create_task(client.get(url))
            tasks.append(task)
            moment = rng.choice(["iterations", "milliseconds", "never"])
            if moment == "iterations":
                cancellers.append(cancel_after_loop_iterations(task, rng.randrange(8)))
            elif moment == "milliseconds":
                loop.call_later(rng.uniform(0, 0.04), task.cancel)
        await asyncio.gather(*cancellers)
        outcomes += await asyncio.gather(*tasks, return_exceptions=True)

    unexpected = [
        outcome
        for outcome in outcomes
        if not isinstance(outcome, asyncio.CancelledError)
        and not (isinstance(outcome, httpx.Response) and outcome.text == "01234567890123456789")
    ]
    assert unexpected == []
    # Abandoned connection attempts close once they complete.
    await asyncio.sleep(0.05)
    assert_pool_settled(transport)
    for index in range(3):
        later = await client.get(
            f"{server.url}/random/{seed}/after-{index}",
            timeout=httpx.Timeout(HANG_BOUND, pool=2.0),
        )
        assert later.status_code == 200
    assert_pool_settled(transport)
    assert await eventually(lambda: server.open_connections == len(transport.connections))


async def test_abandoned_stream_closes_connection(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    server = start_server(by_target({"/large": [response(body=bytes(300_000))]}))
    transport = make_transport(max_connections=1)
    client = client_of(transport)

    async with client.stream("GET", f"{server.url}/large") as streamed:
        async for _ in streamed.aiter_raw():
            break

    assert transport.connections == []
    assert_pool_settled(transport)
    assert await eventually(lambda: server.open_connections == 0)
    await assert_slot_is_free(client, server.url)


# --- Request bodies -------------------------------------------------------------------------


async def test_bytes_body_sent_with_content_length(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    server = start_server()
    client = client_of(make_transport())

    await client.post(server.url, content=b'{"query": "{ ping }"}')

    (received,) = server.requests
    assert received.body == b'{"query": "{ ping }"}'
    assert received.header("Content-Length") == "21"


async def test_streamed_body_is_sent_chunked(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    server = start_server()
    client = client_of(make_transport())

    async def parts() -> AsyncIterator[bytes]:
        yield b"hello"
        # An empty part must not end the chunked body early.
        yield b""
        yield b" world"

    await client.post(server.url, content=parts())

    (received,) = server.requests
    assert received.header("Transfer-Encoding") == "chunked"
    assert received.raw_body == b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"


@pytest.mark.parametrize("character", ["\r", "\n", "\x00"], ids=["CR", "LF", "NUL"])
async def test_header_injection_rejected_before_connecting(
    start_server: StartServer, make_transport: MakeTransport, character: str
) -> None:
    server = start_server()
    transport = make_transport()
    client = client_of(transport)

    with pytest.raises(httpx.LocalProtocolError, match="X-Injected"):
        await client.get(server.url, headers={"X-Injected": f"a{character}Injected: 1"})
    await asyncio.sleep(0.1)

    assert transport.connections == []
    assert server.accepted == 0
    assert_pool_settled(transport)


# --- Responses sent before the request body was read ---------------------------------------

TWENTY_MB = 20 * 1024 * 1024
TOO_LARGE = response(
    413, b"too large", reason="Payload Too Large", headers=[("Connection", "close")]
)


@pytest.fixture
def start_raw_server() -> Iterator[Callable[[Callable[[socket.socket], None]], RawServer]]:
    """Start ``RawServer``s on loopback, each stopped when the test ends."""
    servers: list[RawServer] = []

    def start(handler: Callable[[socket.socket], None]) -> RawServer:
        server = RawServer(handler).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def reject_unread_body(sock: socket.socket) -> None:
    """Respond 413 after the request head, close the sending side, then drain the body.

    This is nginx's lingering close. Closing at once with unread bytes would make the kernel
    send an RST, and Linux drops received data that the client has not read yet when the
    RST arrives, so whether any client sees the 413 would depend on timing.
    """
    read_request_head(sock)
    sock.sendall(TOO_LARGE)
    sock.shutdown(socket.SHUT_WR)
    read_until_closed(sock)


def close_after_head(sock: socket.socket) -> None:
    """Close without a response after the request head, with the body unread."""
    read_request_head(sock)


def respond_ok_once(sock: socket.socket) -> None:
    read_request_head(sock)
    sock.sendall(response())


async def twenty_mb_in_parts() -> AsyncIterator[bytes]:
    for _ in range(20):
        yield bytes(1024 * 1024)


@pytest.mark.parametrize("body_kind", ["bytes", "stream"])
async def test_response_before_unread_body_is_returned(
    start_raw_server: Callable[..., RawServer], make_transport: MakeTransport, body_kind: str
) -> None:
    server = start_raw_server(reject_unread_body)
    transport = make_transport()
    client = client_of(transport)

    rejected = []
    for _ in range(2):
        content = bytes(TWENTY_MB) if body_kind == "bytes" else twenty_mb_in_parts()
        rejected.append(await client.post(server.url, content=content))

    assert [item.status_code for item in rejected] == [413, 413]
    assert rejected[0].text == "too large"
    # The connection of the first request was not reused for the second.
    assert server.accepted == 2
    assert transport.connections == []
    assert_pool_settled(transport)
    assert server.errors == []


async def test_request_bytes_returns_response_before_unread_body(
    start_raw_server: Callable[..., RawServer], make_transport: MakeTransport
) -> None:
    server = start_raw_server(reject_unread_body)
    transport = make_transport()

    raw = await request_bytes(transport, server.url, body=bytes(TWENTY_MB))

    assert raw.status_code == 413
    assert raw.content == b"too large"
    assert transport.connections == []
    assert_pool_settled(transport)


@pytest.mark.parametrize("body_kind", ["bytes", "stream"])
async def test_unread_body_without_response_raises_write_error(
    start_raw_server: Callable[..., RawServer], make_transport: MakeTransport, body_kind: str
) -> None:
    server = start_raw_server(close_after_head)
    transport = make_transport(max_connections=1)
    client = client_of(transport)
    content = bytes(TWENTY_MB) if body_kind == "bytes" else twenty_mb_in_parts()

    with pytest.raises(httpx.WriteError) as caught:
        await client.post(server.url, content=content)

    assert not str(caught.value).endswith(": None")
    assert transport.connections == []
    assert_pool_settled(transport)
    ok_server = start_raw_server(respond_ok_once)
    await assert_slot_is_free(client, ok_server.url)


async def test_half_closed_server_receives_whole_body(
    start_raw_server: Callable[..., RawServer], make_transport: MakeTransport
) -> None:
    half_closed = threading.Event()
    received_bodies: list[bytes] = []

    def respond_then_half_close(sock: socket.socket) -> None:
        _, early = read_request_head(sock)
        sock.sendall(response(body=b"accepted"))
        sock.shutdown(socket.SHUT_WR)
        half_closed.set()
        received_bodies.append(early + read_until_closed(sock))

    server = start_raw_server(respond_then_half_close)
    transport = make_transport()
    client = client_of(transport)

    async def parts() -> AsyncIterator[bytes]:
        (connection,) = transport.connections
        yield b"first part"
        # The rest is sent after the client has seen the server's FIN.
        assert await eventually(lambda: connection._eof)
        yield b"second part"

    accepted = await client.post(server.url, content=parts())

    assert accepted.status_code == 200
    assert accepted.text == "accepted"
    assert half_closed.is_set()
    assert transport.connections == []
    assert await eventually(lambda: len(received_bodies) == 1)
    assert received_bodies == [b"a\r\nfirst part\r\nb\r\nsecond part\r\n0\r\n\r\n"]
    assert server.errors == []


# --- request_bytes --------------------------------------------------------------------------


async def request_bytes(
    transport: AsyncHTTP11Transport,
    url: str,
    headers: list[tuple[bytes, bytes]] | None = None,
    body: bytes = b"{}",
) -> RawResponse:
    return await transport.request_bytes(
        "POST", httpx.URL(url), headers or [], body, httpx.Timeout(HANG_BOUND)
    )


async def test_request_bytes_adds_host_and_content_length(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    server = start_server()
    transport = make_transport()

    raw = await request_bytes(transport, f"{server.url}/graphql", [(b"X-Api-Key", b"key")])

    assert raw.status_code == 200
    assert raw.content == b"ok"
    (received,) = server.requests
    assert received.target == "/graphql"
    assert received.headers == [
        ("Host", f"127.0.0.1:{server.port}"),
        ("X-Api-Key", "key"),
        ("Content-Length", "2"),
    ]
    assert received.body == b"{}"


async def test_request_bytes_reuses_connection(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    server = start_server()
    transport = make_transport()

    for _ in range(3):
        await request_bytes(transport, server.url)

    assert server.accepted == 1
    assert_pool_settled(transport)


async def test_request_bytes_reads_chunked_body(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    server = start_server(lambda request: [CHUNKED_HEAD + chunked(b"hello", b" world")])
    transport = make_transport()

    raw = await request_bytes(transport, server.url)

    assert raw.content == b"hello world"


async def test_request_bytes_decodes_gzip_body(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    compressed = gzip.compress(b'{"data": {}}')
    server = start_server(
        lambda request: [response(body=compressed, headers=[("Content-Encoding", "gzip")])]
    )
    transport = make_transport()

    raw = await request_bytes(transport, server.url)

    assert raw.content == b'{"data": {}}'
    assert (b"Content-Encoding", b"gzip") in raw.headers


async def test_request_bytes_short_body_frees_slot(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    server = start_server(by_target({"/cut": [TEN_BYTE_HEAD + b"abc", CLOSE]}))
    transport = make_transport(max_connections=1)

    with pytest.raises(httpx.RemoteProtocolError, match="received 3 of 10 bytes"):
        await request_bytes(transport, f"{server.url}/cut")

    assert transport.connections == []
    assert_pool_settled(transport)
    later = await request_bytes(transport, server.url)
    assert later.content == b"ok"


async def test_request_bytes_cancel_frees_slot(
    start_server: StartServer, make_transport: MakeTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = start_server(by_target({"/stall": [TEN_BYTE_HEAD + b"abc", HOLD]}))
    transport = make_transport(max_connections=1)
    got_body_bytes = asyncio.Event()
    read_some = _Connection.read_some

    async def spying_read_some(self: _Connection, limit: int, timeout: float | None) -> bytes:
        data = await read_some(self, limit, timeout)
        got_body_bytes.set()
        return data

    monkeypatch.setattr(_Connection, "read_some", spying_read_some)

    task = asyncio.create_task(request_bytes(transport, f"{server.url}/stall"))
    await asyncio.wait_for(got_body_bytes.wait(), HANG_BOUND)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert transport.connections == []
    assert_pool_settled(transport)
    assert await eventually(lambda: server.open_connections == 0)


async def test_request_bytes_rejects_header_injection(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    server = start_server()
    transport = make_transport()

    with pytest.raises(httpx.LocalProtocolError, match="X-Injected"):
        await request_bytes(transport, server.url, [(b"X-Injected", b"a\r\nInjected: 1")])
    await asyncio.sleep(0.1)

    assert server.accepted == 0
    assert_pool_settled(transport)


async def test_request_bytes_after_aclose_raises_runtime_error(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    server = start_server()
    transport = make_transport()
    await transport.aclose()

    with pytest.raises(RuntimeError, match="transport is closed"):
        await request_bytes(transport, server.url)


# --- Mock fallback --------------------------------------------------------------------------


async def test_respx_mock_receives_request(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    server = start_server()
    transport = make_transport()
    client = client_of(transport)

    with respx.mock:
        route = respx.get(f"{server.url}/flows").respond(200, text="mocked")
        mocked = await client.get(f"{server.url}/flows")

    assert mocked.text == "mocked"
    assert route.called
    assert transport.stock_transport is not None
    assert server.accepted == 0


async def test_request_bytes_goes_through_respx_mock(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    server = start_server()
    transport = make_transport()

    with respx.mock:
        route = respx.post(f"{server.url}/graphql").respond(200, text="mocked")
        raw = await request_bytes(transport, f"{server.url}/graphql", [(b"X-Api-Key", b"key")])

    assert raw.content == b"mocked"
    assert route.calls.last.request.headers["X-Api-Key"] == "key"
    assert route.calls.last.request.content == b"{}"
    assert transport.stock_transport is not None
    assert server.accepted == 0


async def test_patched_transport_method_receives_request(
    start_server: StartServer, make_transport: MakeTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pytest-httpx replaces this method with a function of its own module.
    server = start_server()
    transport = make_transport()
    client = client_of(transport)
    seen: list[httpx.URL] = []

    async def fake_handle(self: httpx.AsyncHTTPTransport, request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return httpx.Response(200, text="patched")

    monkeypatch.setattr(httpx.AsyncHTTPTransport, "handle_async_request", fake_handle)
    patched = await client.get(f"{server.url}/flows")

    assert patched.text == "patched"
    assert seen == [httpx.URL(f"{server.url}/flows")]
    assert transport.stock_transport is not None
    assert server.accepted == 0


async def test_wrapped_transport_method_receives_request(
    start_server: StartServer, make_transport: MakeTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = start_server()
    transport = make_transport()
    client = client_of(transport)
    original = httpx.AsyncHTTPTransport.handle_async_request
    seen: list[httpx.URL] = []

    # functools.wraps keeps the module name of the original and adds __wrapped__.
    @functools.wraps(original)
    async def recording_handle(
        self: httpx.AsyncHTTPTransport, request: httpx.Request
    ) -> httpx.Response:
        seen.append(request.url)
        return await original(self, request)

    monkeypatch.setattr(httpx.AsyncHTTPTransport, "handle_async_request", recording_handle)
    recorded = await client.get(f"{server.url}/flows")

    assert recorded.text == "ok"
    assert seen == [httpx.URL(f"{server.url}/flows")]
    assert transport.stock_transport is not None
    assert server.accepted == 1


async def test_stock_transport_unused_without_mock(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    server = start_server()
    transport = make_transport()
    client = client_of(transport)

    await client.get(server.url)

    assert transport.stock_transport is None
    assert server.accepted == 1


# --- Lifecycle ------------------------------------------------------------------------------


async def test_aclose_closes_every_connection(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    server = start_server()
    transport = make_transport()
    idle = await transport.handle_async_request(build_request("GET", server.url))
    in_use = await transport.handle_async_request(build_request("GET", server.url))
    await idle.aread()
    assert len(transport.connections) == 2
    assert transport.idle_count == 1

    await transport.aclose()

    assert transport.connections == []
    assert transport.idle_count == 0
    assert await eventually(lambda: server.open_connections == 0)
    await in_use.aclose()


async def test_request_after_aclose_raises_runtime_error(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    server = start_server()
    transport = make_transport()
    await transport.aclose()

    with pytest.raises(RuntimeError, match="transport is closed"):
        await transport.handle_async_request(build_request("GET", server.url))


async def test_aclose_fails_waiting_requests(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    server = start_server()
    transport = make_transport(max_connections=1)
    client = client_of(transport)
    holder = await transport.handle_async_request(build_request("GET", server.url))
    task = asyncio.create_task(client.get(server.url))
    assert await eventually(lambda: len(transport._waiters) == 1)

    await transport.aclose()

    with pytest.raises(RuntimeError, match="closed while the request waited for a slot"):
        await task
    await holder.aclose()


async def test_cancel_after_aclose_raises_cancelled_error(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    server = start_server()
    transport = make_transport(max_connections=1)
    client = client_of(transport)
    holder = await transport.handle_async_request(build_request("GET", server.url))
    task = asyncio.create_task(client.get(server.url))
    assert await eventually(lambda: len(transport._waiters) == 1)

    # Without a stock transport, aclose() never suspends, so the waiter's future has
    # failed and its task is cancelled before the task resumes.
    await transport.aclose()
    task.cancel()

    try:
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        await holder.aclose()


@pytest.fixture
def dead_loop_transport() -> Iterator[AsyncHTTP11Transport]:
    """A transport for tests that run and close event loops of their own.

    Its connections outlive their loop. Teardown closes their sockets and collects their
    asyncio transports, which would otherwise emit a ResourceWarning during a later test:
    asyncio warns about every transport that its loop did not close.
    """
    transport = AsyncHTTP11Transport()
    yield transport
    transport.close_sockets_of_dead_loop()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def fetch_in_new_loop(transport: AsyncHTTP11Transport, url: str) -> None:
    """Send one request and read its body in a new event loop, then close that loop."""
    loop = asyncio.new_event_loop()
    try:
        fetched = loop.run_until_complete(transport.handle_async_request(build_request("GET", url)))
        loop.run_until_complete(fetched.aread())
    finally:
        loop.close()


def test_transport_rejects_second_event_loop(
    start_server: StartServer, dead_loop_transport: AsyncHTTP11Transport
) -> None:
    server = start_server()
    fetch_in_new_loop(dead_loop_transport, server.url)

    with pytest.raises(RuntimeError, match="belongs to another event loop"):
        fetch_in_new_loop(dead_loop_transport, server.url)


def test_dead_loop_sockets_are_closed(
    start_server: StartServer, dead_loop_transport: AsyncHTTP11Transport
) -> None:
    server = start_server()
    fetch_in_new_loop(dead_loop_transport, server.url)
    (connection,) = dead_loop_transport.connections
    assert connection.transport is not None
    sock = connection.transport.get_extra_info("socket")
    descriptor = sock.fileno()

    dead_loop_transport.close_sockets_of_dead_loop()

    assert sock.fileno() == -1
    assert dead_loop_transport.connections == []
    if os.path.isdir("/proc/self/fd"):
        assert str(descriptor) not in os.listdir("/proc/self/fd")
    assert wait_until(lambda: server.open_connections == 0)


HAS_PROC_FD = os.path.isdir("/proc/self/fd")


def open_socket_count() -> int:
    """Return how many sockets this process has open, from /proc/self/fd (Linux)."""
    count = 0
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                count += 1
    return count


async def fetch_and_drop_transport(url: str) -> None:
    """Send one request on a new transport, read the body, and drop it without aclose()."""
    transport = AsyncHTTP11Transport()
    fetched = await transport.handle_async_request(build_request("GET", url))
    await fetched.aread()


async def test_dropped_transport_closes_its_connections(start_server: StartServer) -> None:
    server = start_server()
    baseline = open_socket_count() if HAS_PROC_FD else 0

    for _ in range(5):
        await fetch_and_drop_transport(server.url)
    gc.collect()

    # The finalizer hands each close to the loop, which runs while eventually() polls.
    assert await eventually(lambda: server.closed_by_client == 5)
    assert await eventually(lambda: server.open_connections == 0)
    if HAS_PROC_FD:
        assert await eventually(lambda: open_socket_count() <= baseline)


def test_dropped_transport_of_closed_loop_closes_its_sockets(start_server: StartServer) -> None:
    server = start_server()
    # Holding the asyncio transports keeps them from closing their sockets when collected,
    # so only the pool's finalizer can close them.
    kept: list[asyncio.BaseTransport] = []
    try:
        for _ in range(3):
            transport = AsyncHTTP11Transport()
            fetch_in_new_loop(transport, server.url)
            kept += [
                connection.transport
                for connection in transport.connections
                if connection.transport is not None
            ]
            del transport
        gc.collect()

        assert len(kept) == 3
        assert [item.get_extra_info("socket").fileno() for item in kept] == [-1, -1, -1]
        assert wait_until(lambda: server.closed_by_client == 3)
    finally:
        # asyncio warns about every transport whose loop did not close it.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            kept.clear()
            gc.collect()


# --- Constructor and URLs -------------------------------------------------------------------


async def test_unsupported_scheme_raises_unsupported_protocol(
    make_transport: MakeTransport,
) -> None:
    transport = make_transport()

    with pytest.raises(httpx.UnsupportedProtocol, match="ftp://"):
        await transport.handle_async_request(build_request("GET", "ftp://127.0.0.1/file"))

    assert_pool_settled(transport)


async def test_refused_connection_raises_connect_error(make_transport: MakeTransport) -> None:
    # The kernel picks a free port; once its socket is closed, nothing listens there.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    transport = make_transport(max_connections=1)

    with pytest.raises(httpx.ConnectError):
        await client_of(transport).get(f"http://127.0.0.1:{port}/")

    assert_pool_settled(transport)


# --- IPv6 -----------------------------------------------------------------------------------


def ipv6_loopback_available() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not ipv6_loopback_available(), reason="::1 is not configured on this host")
async def test_ipv6_loopback_reuses_connection(
    start_server: StartServer, make_transport: MakeTransport
) -> None:
    server = start_server(host="::1")
    transport = make_transport()
    client = client_of(transport)

    first = await client.get(server.url)
    await client.get(server.url)

    assert first.text == "ok"
    assert server.accepted == 1
    assert [connection.origin for connection in transport.connections] == [
        ("http", "::1", server.port)
    ]


# --- TLS ------------------------------------------------------------------------------------


@pytest.fixture
def trustme() -> Any:
    """The trustme module, which issues certificates from a throwaway CA."""
    return pytest.importorskip("trustme", reason="the TLS tests need trustme for certificates")


def tls_server_context(ca: Any, hostname: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(hostname).configure_cert(context)
    return context


def tls_client_context(ca: Any) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def test_tls_trusted_ca_reuses_connection(
    trustme: Any, start_server: StartServer, make_transport: MakeTransport
) -> None:
    ca = trustme.CA()
    server = start_server(ssl_context=tls_server_context(ca, "127.0.0.1"))
    client = client_of(make_transport(ssl_context=tls_client_context(ca)))

    first = await client.get(server.url)
    second = await client.get(server.url)

    assert first.text == "ok"
    assert second.text == "ok"
    assert server.accepted == 1


async def test_tls_default_context_rejects_unknown_ca(
    trustme: Any, start_server: StartServer, make_transport: MakeTransport
) -> None:
    ca = trustme.CA()
    server = start_server(ssl_context=tls_server_context(ca, "127.0.0.1"))
    transport = make_transport(max_connections=1)

    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        await client_of(transport).get(server.url)

    assert_pool_settled(transport)


async def test_tls_hostname_mismatch_raises_connect_error(
    trustme: Any, start_server: StartServer, make_transport: MakeTransport
) -> None:
    ca = trustme.CA()
    server = start_server(ssl_context=tls_server_context(ca, "other-host.test"))
    transport = make_transport(max_connections=1, ssl_context=tls_client_context(ca))

    with pytest.raises(httpx.ConnectError, match="mismatch"):
        await client_of(transport).get(server.url)

    assert_pool_settled(transport)


async def test_tls_server_close_mid_response_logs_no_warning(
    trustme: Any,
    start_server: StartServer,
    make_transport: MakeTransport,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ca = trustme.CA()
    # A body without Content-Length ends at the server's close, which arrives while the
    # response is still being read.
    server = start_server(
        lambda request: [response(body=b"until close", content_length=False), CLOSE],
        ssl_context=tls_server_context(ca, "127.0.0.1"),
    )
    client = client_of(make_transport(ssl_context=tls_client_context(ca)))
    caplog.set_level(logging.WARNING, logger="asyncio")

    first = await client.get(server.url)
    second = await client.get(server.url)

    assert first.text == "until close"
    assert second.text == "until close"
    assert [record.getMessage() for record in caplog.records if record.name == "asyncio"] == []
