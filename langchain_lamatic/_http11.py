"""An HTTP/1.1 connection pool on asyncio protocols, as the async client's httpx transport.

httpcore 1.0's async pool rescans every connection whenever one changes state, and closes
connections beyond its keep-alive limit only to open new ones. With 50 requests in flight on
a 2-CPU machine that doubles the time of a batch (see docs/benchmarks.md). This transport
keeps the same contract as httpx's own (``httpx.AsyncBaseTransport``, httpx exceptions, a
streamed body) at a constant cost per request:

- Idle connections wait on a stack per origin, so the most recently used one is reused
  first. All connections stay alive until ``keepalive_expiry`` passes, the server closes
  them, or a new connection needs their place under ``max_connections``.
- Requests beyond ``max_connections`` wait in first-in, first-out order for a free slot.
- Timeouts are timers on futures rather than tasks. Releasing a connection never awaits,
  so a cancellation at any moment cannot leak it or its slot.

It speaks HTTP/1.1 only, without proxies, which httpx mounts as separate transports.

HTTP mocking libraries (respx, pytest-httpx, vcrpy) patch httpx's or httpcore's stock
transport classes. While such a patch is in place, requests go through a stock
``httpx.AsyncHTTPTransport`` instead, so that the mock sees them.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import re
import select
import ssl
import sys
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any, Final, NamedTuple

import httpx

logger = logging.getLogger(__name__)

# A response head larger than this is rejected as malformed, as httpcore 1.0 does.
MAX_HEAD_BYTES: Final = 100 * 1024
# The maximum length of a line in a chunked body: a chunk size with extensions, or a trailer.
MAX_LINE_BYTES: Final = 100 * 1024
# Reading pauses while this many received bytes wait for the caller, and resumes below a
# quarter of it, so a slow reader of a large body does not buffer it all.
READ_HIGH_WATER: Final = 256 * 1024
READ_CHUNK: Final = 64 * 1024

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_TOKEN: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# The end of a response head: a blank line, with CR LF or, leniently, bare LF line ends
# (RFC 9112 section 2.2 lets a recipient accept a bare LF, and h11 does).
_HEAD_END: Final = re.compile(rb"\r?\n\r?\n")
_LINE_END: Final = re.compile(rb"\r?\n")
_FORBIDDEN_IN_VALUES: Final = re.compile(rb"[\r\n\x00]")
# A reason phrase: tabs, spaces, visible ASCII and obsolete non-ASCII text (RFC 9112).
_REASON: Final = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")
# HTTP/1.0, HTTP/1.1 or a later minor version, which RFC 9110 section 2.5 asks recipients to
# treat as 1.1.
_VERSION: Final = re.compile(rb"HTTP/1\.[0-9]")

Origin = tuple[str, str, int]

_HAS_POLL: Final = hasattr(select, "poll")

# Kinds of response body framing.
_EMPTY: Final = 0
_LENGTH: Final = 1
_CHUNKED: Final = 2
_UNTIL_CLOSE: Final = 3


def _is_stock(function: object, module_prefix: str) -> bool:
    """Return whether ``function`` is the library's own method rather than a patch of it.

    A patch is a mock object, a function from another module, or a wrapper made with
    ``functools.wraps``, which keeps the module name but adds ``__wrapped__``.
    """
    # A function made by mock's autospec has no module name.
    module = getattr(function, "__module__", None) or ""
    return (
        inspect.isfunction(function)
        and module.startswith(module_prefix)
        and not hasattr(function, "__wrapped__")
    )


# The last function seen at each patchable place, and whether it was the stock one. A call
# costs a few attribute reads while nothing changes, instead of inspecting each function.
_stock_memo: dict[str, tuple[object, bool]] = {}


def _is_stock_at(place: str, function: object, module_prefix: str) -> bool:
    memo = _stock_memo.get(place)
    if memo is not None and memo[0] is function:
        return memo[1]
    stock = _is_stock(function, module_prefix)
    _stock_memo[place] = (function, stock)
    return stock


def is_mocking_active() -> bool:
    """Return whether a mock has patched httpx's async client or transport, or httpcore's pool.

    A patch of ``AsyncClient.send`` counts too, so that the client's direct path, which skips
    ``send``, is not taken while a test replaces it.
    """
    if not (
        _is_stock_at("transport", httpx.AsyncHTTPTransport.handle_async_request, "httpx.")
        and _is_stock_at("send", httpx.AsyncClient.send, "httpx.")
        and _is_stock_at(
            "send_single", getattr(httpx.AsyncClient, "_send_single_request", None), "httpx."
        )
    ):
        return True
    httpcore = sys.modules.get("httpcore")
    if httpcore is None:
        return False
    pool_class = getattr(httpcore, "AsyncConnectionPool", None)
    return pool_class is not None and not _is_stock_at(
        "pool", getattr(pool_class, "handle_async_request", None), "httpcore."
    )


class _Timeouts(NamedTuple):
    """Seconds allowed per phase of a request; None waits for ever."""

    connect: float | None
    read: float | None
    write: float | None
    pool: float | None

    @classmethod
    def of(cls, request: httpx.Request) -> _Timeouts:
        timeouts = request.extensions.get("timeout") or {}
        return cls(*(_seconds(timeouts.get(phase)) for phase in cls._fields))


def _seconds(value: float | None) -> float | None:
    return None if value is None else float(value)


class RawResponse(NamedTuple):
    """A response read whole by ``AsyncHTTP11Transport.request_bytes``."""

    status_code: int
    headers: list[tuple[bytes, bytes]]
    content: bytes


# --- One connection -------------------------------------------------------------------------


class _Connection(asyncio.Protocol):
    """One TCP or TLS connection: a receive buffer that requests read with timeouts."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        origin: Origin,
        on_lost: Callable[[_Connection], None],
    ) -> None:
        self.loop = loop
        self.origin = origin
        # A pool's method is held weakly, so that connections registered with the event loop
        # do not keep an abandoned pool alive. The pool's finalizer then closes them.
        self._on_lost: Callable[[], Callable[[_Connection], None] | None] = (
            weakref.WeakMethod(on_lost) if inspect.ismethod(on_lost) else lambda: on_lost
        )
        self.transport: asyncio.Transport | None = None
        self.fileno = -1
        self.idle_since = 0.0
        # True from when a request takes the connection until its response is released.
        self.in_use = False
        self._buffer = bytearray()
        self._eof = False
        self._lost = False
        self._lost_error: BaseException | None = None
        self._reading_paused = False
        self._writing_paused = False
        self._tls = False
        # The future that a read or a drain waits on: True when something arrives, False
        # when its timer fires.
        self._waiter: asyncio.Future[bool] | None = None

    # asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # noqa: S101 - stream sockets only
        self.transport = transport
        self._tls = transport.get_extra_info("sslcontext") is not None
        sock = transport.get_extra_info("socket")
        if sock is not None:
            self.fileno = sock.fileno()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) > READ_HIGH_WATER and not self._reading_paused:
            assert self.transport is not None  # noqa: S101
            self.transport.pause_reading()
            self._reading_paused = True
        self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        # While a request is in progress, True keeps our side open, so that its body can be
        # written to the end and a response sent before the server closed (413, say) can be
        # read. The pool closes the connection afterwards, because EOF makes it not reusable.
        # An idle connection closes at once. asyncio's TLS transport cannot stay half-open and
        # logs a warning when asked to.
        return self.in_use and not self._tls

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._lost = True
        self._lost_error = exc
        self._wake()
        on_lost = self._on_lost()
        if on_lost is not None:
            on_lost(self)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(True)

    # State

    @property
    def closed(self) -> bool:
        return self._lost or self.transport is None or self.transport.is_closing()

    def is_closed(self) -> bool:
        return self.closed

    def is_idle(self) -> bool:
        return not self.in_use

    def is_reusable(self) -> bool:
        """Return whether an idle connection can carry another request.

        An idle connection has nothing to read, so any buffered byte, EOF or readable socket
        means the server closed it or broke the protocol. The socket is polled directly
        because the event loop may not have run since the server's FIN arrived, for example
        when the caller blocked the loop for longer than the server's keep-alive timeout.
        """
        if self._eof or self._buffer or self.closed:
            return False
        if self.fileno < 0:
            return True
        if _HAS_POLL:
            poller = select.poll()
            poller.register(self.fileno, select.POLLIN)
            return not poller.poll(0)
        # Windows has no poll(); select() works on its sockets.
        readable, _, _ = select.select([self.fileno], [], [], 0)
        return not readable

    def close(self) -> None:
        transport = self.transport
        if transport is None:
            return
        if transport.get_write_buffer_size():
            # close() would keep the socket open until a server that stopped reading takes
            # the unsent bytes, which may be never.
            transport.abort()
        elif not transport.is_closing():
            transport.close()

    def close_socket_now(self) -> None:
        """Close the socket without the event loop, for connections of a closed loop."""
        if self.transport is None:
            return
        sock = self.transport.get_extra_info("socket")
        # asyncio hands out a TransportSocket wrapper, whose close() was removed in Python
        # 3.9, so the socket it wraps is closed instead.
        sock = getattr(sock, "_sock", sock)
        if sock is not None:
            sock.close()

    # Waiting

    async def _wait(self, timeout: float | None, on_timeout: Callable[[], Exception]) -> None:
        waiter: asyncio.Future[bool] = self.loop.create_future()
        self._waiter = waiter
        timer = None if timeout is None else self.loop.call_later(timeout, _expire, waiter)
        try:
            arrived = await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()
        if not arrived:
            raise on_timeout()

    def _disconnected_error(self, message: str) -> httpx.TransportError:
        if self._lost_error is not None:
            return httpx.ReadError(f"{message}: {self._lost_error}")
        return httpx.RemoteProtocolError(f"{message}.")

    def _take(self, count: int) -> bytes:
        data = bytes(self._buffer[:count])
        del self._buffer[:count]
        if self._reading_paused and len(self._buffer) < READ_HIGH_WATER // 4:
            self._reading_paused = False
            if self.transport is not None and not self.transport.is_closing():
                self.transport.resume_reading()
        return data

    # Writing

    async def write(self, data: bytes, timeout: float | None) -> None:
        if self.closed:
            raise httpx.WriteError("The server closed the connection before the request was sent")
        assert self.transport is not None  # noqa: S101
        self.transport.write(data)
        while self._writing_paused and not self._lost:
            await self._wait(timeout, lambda: httpx.WriteTimeout("Timed out sending the request"))
        if self._lost:
            reason = f": {self._lost_error}" if self._lost_error is not None else ""
            raise httpx.WriteError(f"The connection was lost while sending the request{reason}")

    # Reading

    async def read_head(self, timeout: float | None) -> bytes:
        """Return the next response head, without its final blank line."""
        searched = 0
        while True:
            found = _HEAD_END.search(self._buffer, max(0, searched - 3))
            end = -1 if found is None else found.start()
            if end > MAX_HEAD_BYTES or (end < 0 and len(self._buffer) > MAX_HEAD_BYTES):
                raise httpx.RemoteProtocolError(
                    f"The response head is longer than {MAX_HEAD_BYTES} bytes"
                )
            if found is not None:
                return self._take(found.end())[:end]
            searched = len(self._buffer)
            if self._eof:
                if not self._buffer:
                    raise self._disconnected_error("Server disconnected without sending a response")
                raise self._disconnected_error(
                    "Server disconnected in the middle of the response head"
                )
            await self._wait(timeout, _read_timeout)

    async def read_line(self, timeout: float | None) -> bytes:
        """Return the next line of a chunked body, without its CR LF or bare LF."""
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                if end > MAX_LINE_BYTES:
                    raise httpx.RemoteProtocolError(
                        f"A line of the chunked body is longer than {MAX_LINE_BYTES} bytes"
                    )
                line = self._take(end + 1)[:-1]
                return line[:-1] if line.endswith(b"\r") else line
            if len(self._buffer) > MAX_LINE_BYTES:
                raise httpx.RemoteProtocolError(
                    f"A line of the chunked body is longer than {MAX_LINE_BYTES} bytes"
                )
            if self._eof:
                raise self._disconnected_error(
                    "Server disconnected in the middle of a chunked body"
                )
            await self._wait(timeout, _read_timeout)

    async def read_some(self, limit: int, timeout: float | None) -> bytes:
        """Return up to ``limit`` buffered bytes, waiting for some; b"" at end of stream."""
        while not self._buffer:
            if self._eof:
                if self._lost_error is not None:
                    raise httpx.ReadError(str(self._lost_error))
                return b""
            await self._wait(timeout, _read_timeout)
        return self._take(limit)


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


def _read_timeout() -> Exception:
    return httpx.ReadTimeout("Timed out waiting for the response")


# --- Parsing --------------------------------------------------------------------------------


def _parse_head(head: bytes) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]:
    """Split a response head into status code, reason phrase, HTTP version and headers.

    Error messages quote no bytes of the head: a server or proxy may echo a credential into
    it, shortened past what redaction can recognise.
    """
    lines = _LINE_END.split(head)
    parts = lines[0].split(b" ", 2)
    if (
        len(parts) < 2
        or not _VERSION.fullmatch(parts[0])
        or len(parts[1]) != 3
        or not parts[1].isdigit()
        or not _REASON.fullmatch(parts[2] if len(parts) == 3 else b"")
    ):
        raise httpx.RemoteProtocolError(
            "Malformed response status line: expected 'HTTP/1.1', a 3-digit status code "
            f"and a reason phrase, got {len(lines[0])} bytes that are not"
        )
    headers: list[tuple[bytes, bytes]] = []
    for number, line in enumerate(lines[1:], start=2):
        if line[:1] in (b" ", b"\t") and headers:
            # Obsolete line folding continues the previous value; RFC 9112 section 5.2 lets
            # a recipient replace the fold with a space.
            name, value = headers[-1]
            value = (value + b" " + line.strip(b" \t")).strip(b" \t")
        else:
            name, colon, value = line.partition(b":")
            if not colon or not _TOKEN.fullmatch(name):
                raise httpx.RemoteProtocolError(
                    f"Malformed response header on line {number} of the response head"
                )
            value = value.strip(b" \t")
            headers.append((name, value))
        if _FORBIDDEN_IN_VALUES.search(value):
            # The name is not quoted either: a token can spell a credential.
            raise httpx.RemoteProtocolError(
                f"The response header on line {number} contains a CR or NUL byte"
            )
        headers[-1] = (name, value)
    status = int(parts[1])
    if status < 100:
        raise httpx.RemoteProtocolError(f"Invalid response status code {status}")
    return status, parts[2] if len(parts) == 3 else b"", parts[0], headers


def _tokens(headers: list[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    """Return the comma-separated values of every header called ``name``, lowercased."""
    found: list[bytes] = []
    for key, value in headers:
        if key.lower() == name:
            found.extend(item.strip().lower() for item in value.split(b",") if item.strip())
    return found


def _body_framing(
    method: str, status: int, version: bytes, headers: list[tuple[bytes, bytes]]
) -> tuple[int, int, bool]:
    """Return how the body ends, its length when known, and whether the connection stays open.

    Follows RFC 9112 section 6.3 for responses, and rejects transfer codings other than a
    single ``chunked``, as h11 does.
    """
    connection = _tokens(headers, b"connection")
    keep_alive = version != b"HTTP/1.0" and b"close" not in connection
    if method == "HEAD" or status in (204, 304):
        return _EMPTY, 0, keep_alive
    transfer_encoding = _tokens(headers, b"transfer-encoding")
    if transfer_encoding:
        if transfer_encoding != [b"chunked"]:
            raise httpx.RemoteProtocolError(
                "Unsupported Transfer-Encoding in the response; only 'chunked' is supported"
            )
        # A Content-Length next to Transfer-Encoding is ignored, and the connection is not
        # reused, because the two could be a request smuggling attempt.
        keep_alive = keep_alive and not _tokens(headers, b"content-length")
        return _CHUNKED, 0, keep_alive
    lengths = set(_tokens(headers, b"content-length"))
    if not lengths:
        return _UNTIL_CLOSE, 0, False
    if len(lengths) > 1:
        raise httpx.RemoteProtocolError(
            f"The response has {len(lengths)} different Content-Length values"
        )
    (length,) = lengths
    if not length.isdigit() or len(length) > 18:
        raise httpx.RemoteProtocolError("The response's Content-Length is not a whole number")
    size = int(length)
    return (_LENGTH if size else _EMPTY), size, keep_alive


def _chunk_size(line: bytes) -> int:
    # Whitespace may follow the size but not precede it, as in h11.
    size = line.split(b";", 1)[0].rstrip(b" \t")
    if not size or len(size) > 16 or size.strip(b"0123456789abcdefABCDEF"):
        raise httpx.RemoteProtocolError(
            "Invalid chunk size line in the response body: expected a hexadecimal size"
        )
    return int(size, 16)


def _encode_head(method: str, target: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    encoded = method.encode("ascii", "replace")
    if not _TOKEN.fullmatch(encoded):
        raise httpx.LocalProtocolError(f"Invalid request method: {method[:100]!r}")
    parts = [encoded, b" ", target, b" HTTP/1.1\r\n"]
    for name, value in headers:
        if not _TOKEN.fullmatch(name):
            raise httpx.LocalProtocolError(f"Invalid header name: {name[:100]!r}")
        if _FORBIDDEN_IN_VALUES.search(value):
            raise httpx.LocalProtocolError(
                f"The value of header {name.decode('ascii')!r} contains a line break or NUL"
            )
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


# --- The response body ----------------------------------------------------------------------


class _ResponseStream(httpx.AsyncByteStream):
    """A response body read from its connection, which goes back to the pool once read."""

    def __init__(
        self,
        pool: AsyncHTTP11Transport,
        connection: _Connection,
        framing: int,
        length: int,
        keep_alive: bool,
        read_timeout: float | None,
    ) -> None:
        self._pool = pool
        self._connection = connection
        self._framing = framing
        self._length = length
        self._keep_alive = keep_alive
        self._read_timeout = read_timeout
        self._released = False
        self._started = False
        if framing == _EMPTY:
            self._release(reusable=keep_alive)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._started:
            raise httpx.StreamConsumed()
        self._started = True
        if self._released:
            return
        complete = False
        try:
            async for chunk in self._read_body():
                yield chunk
            complete = True
        finally:
            self._release(reusable=complete and self._keep_alive)

    async def _read_body(self) -> AsyncIterator[bytes]:
        connection = self._connection
        timeout = self._read_timeout
        if self._framing == _LENGTH:
            remaining = self._length
            while remaining:
                data = await connection.read_some(min(remaining, READ_CHUNK), timeout)
                if not data:
                    raise httpx.RemoteProtocolError(
                        "Server disconnected before the body was complete: received "
                        f"{self._length - remaining} of {self._length} bytes"
                    )
                remaining -= len(data)
                yield data
        elif self._framing == _CHUNKED:
            while True:
                size = _chunk_size(await connection.read_line(timeout))
                if size == 0:
                    # Trailer fields are read and dropped, as httpcore does.
                    while await connection.read_line(timeout):
                        pass
                    return
                while size:
                    data = await connection.read_some(min(size, READ_CHUNK), timeout)
                    if not data:
                        raise httpx.RemoteProtocolError(
                            "Server disconnected in the middle of a chunk"
                        )
                    size -= len(data)
                    yield data
                if await connection.read_line(timeout) != b"":
                    raise httpx.RemoteProtocolError("A chunk is longer than its size line says")
        else:
            while data := await connection.read_some(READ_CHUNK, timeout):
                yield data

    async def aclose(self) -> None:
        # An unread or partly read body cannot be skipped safely, so its connection closes.
        self._release(reusable=False)

    def _release(self, *, reusable: bool) -> None:
        if not self._released:
            self._released = True
            self._pool._release(self._connection, reusable=reusable)


# --- The pool -------------------------------------------------------------------------------


class AsyncHTTP11Transport(httpx.AsyncBaseTransport):
    """A pool of HTTP/1.1 connections for one event loop.

    Args:
        max_connections: the maximum number of connections open at once, idle ones included.
        keepalive_expiry: seconds an idle connection is kept before it is closed.
        ssl_context: the TLS settings for ``https``; by default httpx's, which honour
            ``SSL_CERT_FILE`` and ``SSL_CERT_DIR``.
    """

    def __init__(
        self,
        *,
        max_connections: int = 100,
        keepalive_expiry: float = 5.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if isinstance(max_connections, bool) or not isinstance(max_connections, int):
            raise TypeError(f"max_connections must be an int, got {max_connections!r}")
        if max_connections < 1:
            raise ValueError(f"max_connections must be 1 or more, got {max_connections}")
        if not keepalive_expiry >= 0:
            raise ValueError(f"keepalive_expiry must be 0 or more seconds, got {keepalive_expiry}")
        self.max_connections = max_connections
        self.keepalive_expiry = float(keepalive_expiry)
        self._ssl_context = ssl_context
        self._loop: asyncio.AbstractEventLoop | None = None
        # Idle connections per origin, the most recently used last.
        self._idle: dict[Origin, list[_Connection]] = {}
        self._idle_count = 0
        self._connections: set[_Connection] = set()
        # Slots taken by requests, whether their connection is open yet or not.
        self._active = 0
        self._waiters: deque[asyncio.Future[bool]] = deque()
        self._closed = False
        self._stock: httpx.AsyncHTTPTransport | None = None
        # The timer that closes idle connections once they expire, armed while any are idle.
        self._sweep: asyncio.TimerHandle | None = None
        # A pool dropped without aclose() closes its connections when it is collected. Only
        # the connection set is captured, because the loop's selector keeps the connections
        # alive and they must not keep the pool alive.
        finalizer = weakref.finalize(self, _close_abandoned, self._connections)
        finalizer.atexit = False

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(max_connections={self.max_connections}, "
            f"open={len(self._connections)}, idle={self._idle_count}, active={self._active})"
        )

    @property
    def connections(self) -> list[_Connection]:
        """The connections open now, idle and in use, as a new list."""
        return list(self._connections)

    @property
    def idle_count(self) -> int:
        """The open connections that wait for a request."""
        return self._idle_count

    @property
    def stock_transport(self) -> httpx.AsyncHTTPTransport | None:
        """The stock httpx transport used while a mock is active, once it has been created."""
        return self._stock

    # Sending

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._check_open()
        if is_mocking_active():
            return await self._get_stock_transport().handle_async_request(request)
        origin = self._origin_of(request.url)
        # httpx builds this list anew on every access.
        request_headers = request.headers.raw
        head = _encode_head(request.method, request.url.raw_path, request_headers)
        try:
            body: bytes | None = request.content
        except httpx.RequestNotRead:
            body = None
        status, reason, version, headers, stream = await self._send(
            origin, request.method, head, request_headers, body, request, _Timeouts.of(request)
        )
        return httpx.Response(
            status,
            headers=headers,
            stream=stream,
            extensions={"http_version": version, "reason_phrase": reason},
        )

    async def request_bytes(
        self,
        method: str,
        url: httpx.URL,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        timeout: httpx.Timeout,
    ) -> RawResponse:
        """Send a request with a bytes body and return the response with its whole body.

        This skips building ``httpx.Request`` and ``httpx.Response`` objects, which costs
        more than the exchange itself on loopback. The caller passes every header except
        Host and Content-Length, which this method adds. A body with a Content-Encoding is
        decoded as httpx would decode it. While a mock is active the request goes through
        the stock httpx transport, as ``handle_async_request`` does.
        """
        self._check_open()
        timeouts = _Timeouts(timeout.connect, timeout.read, timeout.write, timeout.pool)
        if is_mocking_active():
            request = httpx.Request(
                method,
                url,
                headers=headers,
                content=body,
                extensions={"timeout": timeout.as_dict()},
            )
            response = await self._get_stock_transport().handle_async_request(request)
            try:
                content = await response.aread()
            finally:
                await response.aclose()
            return RawResponse(response.status_code, response.headers.raw, content)

        origin = self._origin_of(url)
        request_headers = [
            (b"Host", url.netloc),
            *headers,
            (b"Content-Length", b"%d" % len(body)),
        ]
        head = _encode_head(method, url.raw_path, request_headers)
        status, _, _, response_headers, stream = await self._send(
            origin, method, head, request_headers, body, None, timeouts
        )
        try:
            chunks = [chunk async for chunk in stream]
        finally:
            await stream.aclose()
        content = b"".join(chunks)
        if _tokens(response_headers, b"content-encoding"):
            content = httpx.Response(status, headers=response_headers, content=content).content
        return RawResponse(status, response_headers, content)

    def _origin_of(self, url: httpx.URL) -> Origin:
        scheme = url.scheme
        if scheme not in _DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(
                f"Request URL has an unsupported protocol {scheme + '://'!r}"
            )
        self._check_loop()
        return scheme, url.raw_host.decode("ascii"), url.port or _DEFAULT_PORTS[scheme]

    async def _send(
        self,
        origin: Origin,
        method: str,
        head: bytes,
        request_headers: list[tuple[bytes, bytes]],
        body: bytes | None,
        streamed: httpx.Request | None,
        timeouts: _Timeouts,
    ) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]], _ResponseStream]:
        """Send one request on a pooled connection and return the response before its body.

        The body is ``body``, or else the stream of ``streamed``.
        """
        await self._take_slot(timeouts.pool)
        connection: _Connection | None = None
        try:
            connection = self._pop_idle(origin)
            if connection is None:
                self._make_room()
                connection = await self._connect(origin, timeouts.connect)
            connection.in_use = True
            return await self._exchange(
                connection, method, head, request_headers, body, streamed, timeouts
            )
        except BaseException:
            if connection is None:
                self._release_slot()
            else:
                # A no-op when the response was already released (a body-less response).
                self._release(connection, reusable=False)
            raise

    async def _exchange(
        self,
        connection: _Connection,
        method: str,
        head: bytes,
        request_headers: list[tuple[bytes, bytes]],
        body: bytes | None,
        streamed: httpx.Request | None,
        timeouts: _Timeouts,
    ) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]], _ResponseStream]:
        write_error: httpx.WriteError | None = None
        try:
            if body is not None:
                await connection.write(head + body, timeouts.write)
            else:
                assert streamed is not None  # noqa: S101 - a request without content has a stream
                await connection.write(head, timeouts.write)
                chunked = b"chunked" in _tokens(request_headers, b"transfer-encoding")
                await self._write_streamed_body(connection, streamed, chunked, timeouts.write)
        except httpx.WriteError as error:
            # A server may respond before reading the whole body (413 Payload Too Large, say)
            # and close the connection. Its response is read, as httpcore does, and the write
            # error is raised only when there is none.
            write_error = error

        while True:
            try:
                received = await connection.read_head(timeouts.read)
            except httpx.TransportError:
                if write_error is not None:
                    raise write_error from None
                raise
            status, reason, version, headers = _parse_head(received)
            if status == 101:
                raise httpx.RemoteProtocolError(
                    "The server switched protocols, which is not supported"
                )
            # Informational responses (100 Continue, 103 Early Hints) precede the real one.
            if status >= 200:
                break

        framing, length, keep_alive = _body_framing(method, status, version, headers)
        if write_error is not None or b"close" in _tokens(request_headers, b"connection"):
            keep_alive = False
        stream = _ResponseStream(self, connection, framing, length, keep_alive, timeouts.read)
        return status, reason, version, headers, stream

    @staticmethod
    async def _write_streamed_body(
        connection: _Connection, request: httpx.Request, chunked: bool, timeout: float | None
    ) -> None:
        stream = request.stream
        if not isinstance(stream, httpx.AsyncByteStream):
            raise TypeError("An async transport needs an async request body")
        async for part in stream:
            if not part:
                continue
            if chunked:
                part = b"%x\r\n%b\r\n" % (len(part), part)
            await connection.write(part, timeout)
            # write() returns without yielding while the socket takes the bytes. Yielding here
            # lets the loop read a response that arrives during a long upload, and lets other
            # tasks run.
            await asyncio.sleep(0)
        if chunked:
            await connection.write(b"0\r\n\r\n", timeout)

    # Slots

    async def _take_slot(self, timeout: float | None) -> None:
        if self._active < self.max_connections and not self._waiters:
            self._active += 1
            return
        assert self._loop is not None  # noqa: S101
        waiter: asyncio.Future[bool] = self._loop.create_future()
        self._waiters.append(waiter)
        timer = None if timeout is None else self._loop.call_later(timeout, _expire, waiter)
        try:
            granted = await waiter
        except asyncio.CancelledError:
            # A slot handed over just before the cancellation arrived goes to the next waiter.
            if (
                waiter.done()
                and not waiter.cancelled()
                and waiter.exception() is None
                and waiter.result()
            ):
                self._release_slot()
            else:
                self._discard_waiter(waiter)
            raise
        finally:
            if timer is not None:
                timer.cancel()
        if not granted:
            self._discard_waiter(waiter)
            raise httpx.PoolTimeout(
                f"Timed out waiting for one of {self.max_connections} connections to be free"
            )

    def _discard_waiter(self, waiter: asyncio.Future[bool]) -> None:
        with contextlib.suppress(ValueError):
            self._waiters.remove(waiter)

    def _release_slot(self) -> None:
        """Hand the slot to the first waiter still waiting, or free it."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(True)
                return
        self._active -= 1

    def _release(self, connection: _Connection, *, reusable: bool) -> None:
        """Return a connection whose response is finished, and free its slot. Never awaits."""
        if not connection.in_use:
            return
        connection.in_use = False
        if reusable and not self._closed and connection.is_reusable():
            connection.idle_since = time.monotonic()
            self._idle.setdefault(connection.origin, []).append(connection)
            self._idle_count += 1
            if self._sweep is None:
                self._arm_sweep(self.keepalive_expiry)
        else:
            self._discard(connection)
        self._release_slot()

    # Connections

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("This transport is closed; create a new client to send requests")

    def _check_loop(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError(
                "This transport belongs to another event loop; create one transport per loop"
            )

    def _pop_idle(self, origin: Origin) -> _Connection | None:
        stack = self._idle.get(origin)
        if not stack:
            return None
        self._discard_expired(stack, time.monotonic() - self.keepalive_expiry)
        while stack:
            connection = stack.pop()
            self._idle_count -= 1
            if connection.is_reusable():
                return connection
            self._discard(connection)
        return None

    def _discard_expired(self, stack: list[_Connection], oldest_allowed: float) -> None:
        # The oldest connections sit at the bottom of the stack and expire first.
        while stack and stack[0].idle_since < oldest_allowed:
            self._idle_count -= 1
            self._discard(stack.pop(0))

    def _arm_sweep(self, delay: float) -> None:
        assert self._loop is not None  # noqa: S101 - set by the first request
        self._sweep = self._loop.call_later(delay, _sweep_idle, weakref.ref(self))

    def _close_expired(self) -> None:
        """Close the idle connections older than ``keepalive_expiry``, and re-arm the timer."""
        self._sweep = None
        now = time.monotonic()
        oldest_allowed = now - self.keepalive_expiry
        oldest_left: float | None = None
        for stack in self._idle.values():
            self._discard_expired(stack, oldest_allowed)
            if stack and (oldest_left is None or stack[0].idle_since < oldest_left):
                oldest_left = stack[0].idle_since
        if oldest_left is not None and not self._closed:
            self._arm_sweep(max(oldest_left + self.keepalive_expiry - now, 0.0))

    def _make_room(self) -> None:
        """Close the longest idle connections until a new one fits under the limit."""
        while self._idle_count and self._idle_count + self._active > self.max_connections:
            stacks = [stack for stack in self._idle.values() if stack]
            oldest = min(stacks, key=lambda stack: stack[0].idle_since)
            self._idle_count -= 1
            self._discard(oldest.pop(0))

    def _forget_lost(self, connection: _Connection) -> None:
        """Drop a connection whose socket closed, if it is idle; a busy one is released later."""
        self._connections.discard(connection)
        if connection.in_use:
            return
        stack = self._idle.get(connection.origin)
        if stack and connection in stack:
            stack.remove(connection)
            self._idle_count -= 1

    def _discard(self, connection: _Connection) -> None:
        self._connections.discard(connection)
        connection.close()

    async def _connect(self, origin: Origin, timeout: float | None) -> _Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        context = self._get_ssl_context() if scheme == "https" else None
        opening = loop.create_task(
            loop.create_connection(
                lambda: _Connection(loop, origin, self._forget_lost),
                host,
                port,
                ssl=context,
                server_hostname=host if context is not None else None,
            )
        )
        try:
            done, _ = await asyncio.wait({opening}, timeout=timeout)
        except BaseException:
            _abandon(opening)
            raise
        if not done:
            _abandon(opening)
            raise httpx.ConnectTimeout(f"Timed out connecting to {host}:{port}")
        try:
            _, connection = opening.result()
        except asyncio.TimeoutError as error:
            # The TLS handshake has its own timeout in asyncio (60 s by default).
            raise httpx.ConnectTimeout(f"Timed out connecting to {host}:{port}") from error
        except (OSError, ssl.SSLError) as error:
            raise httpx.ConnectError(str(error) or type(error).__name__) from error
        self._connections.add(connection)
        logger.debug("Opened a connection to %s://%s:%s", scheme, host, port)
        return connection

    def _get_ssl_context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            context = httpx.create_ssl_context(trust_env=True)
            context.set_alpn_protocols(["http/1.1"])
            self._ssl_context = context
        return self._ssl_context

    def _get_stock_transport(self) -> httpx.AsyncHTTPTransport:
        if self._stock is None:
            self._stock = httpx.AsyncHTTPTransport(
                verify=self._get_ssl_context(),
                limits=httpx.Limits(
                    max_connections=self.max_connections,
                    max_keepalive_connections=min(self.max_connections, 20),
                    keepalive_expiry=self.keepalive_expiry,
                ),
            )
        return self._stock

    # Closing

    async def aclose(self) -> None:
        """Close every connection. Requests still waiting for a slot raise RuntimeError."""
        self._closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for connection in list(self._connections):
            self._discard(connection)
        self._idle.clear()
        self._idle_count = 0
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(
                    RuntimeError("The transport was closed while the request waited for a slot")
                )
        if self._stock is not None:
            await self._stock.aclose()

    def close_sockets_of_dead_loop(self) -> None:
        """Close every socket directly, for a transport whose event loop has closed.

        The normal close needs the loop. Closing the sockets releases their file descriptors
        at once rather than at garbage collection.
        """
        self._closed = True
        for connection in list(self._connections):
            try:
                connection.close_socket_now()
            except OSError:
                logger.debug("Could not close a socket left by a closed event loop", exc_info=True)
        self._connections.clear()
        self._idle.clear()
        self._idle_count = 0


def _sweep_idle(pool_ref: weakref.ref[AsyncHTTP11Transport]) -> None:
    pool = pool_ref()
    if pool is not None:
        pool._close_expired()


def _close_abandoned(connections: set[_Connection]) -> None:
    """Close the connections of a pool that was collected without ``aclose()``.

    The collection may run in any thread, so each close is handed to its connection's loop.
    """
    for connection in list(connections):
        loop = connection.loop
        if loop.is_closed():
            with contextlib.suppress(OSError):
                connection.close_socket_now()
            continue
        with contextlib.suppress(RuntimeError):
            # The loop may close between the check and this call.
            loop.call_soon_threadsafe(connection.close)
    connections.clear()


def _abandon(opening: asyncio.Task[Any]) -> None:
    """Cancel a connection attempt, and close its connection if it opens anyway."""
    opening.cancel()
    opening.add_done_callback(_close_if_opened)


def _close_if_opened(opening: asyncio.Task[Any]) -> None:
    if opening.cancelled():
        return
    if opening.exception() is None:
        transport, _ = opening.result()
        transport.close()
