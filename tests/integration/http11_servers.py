"""Loopback HTTP/1.1 servers for the transport tests, which respond with exact scripted bytes.

``ScriptedServer`` parses each request and passes it to a handler. The handler returns the
steps of its response: ``bytes`` to send, ``Sleep``, ``WaitFor``, ``CLOSE`` (a FIN), ``RESET``
(an RST) or ``HOLD`` (send nothing more and keep the connection until the client closes it
or the server stops). After the last step the server reads the next request on the same
connection, so keep-alive works unless a step ends the connection.

The server runs one thread per connection and counts accepted, open and in-flight
connections, so a test can check what the client did from the server's side.

``RawServer`` hands each accepted socket to a function instead, for exchanges that do not fit
a parsed request followed by a response.
"""

from __future__ import annotations

import contextlib
import enum
import select
import socket
import ssl
import struct
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

# How long a blocking socket call waits before it checks whether the server is stopping.
_POLL_SECONDS = 0.05
_RECV_SIZE = 64 * 1024
_SEND_SIZE = 256 * 1024
_TLS_HANDSHAKE_TIMEOUT = 5.0
_STOP_JOIN_TIMEOUT = 5.0
# Seconds a RawServer socket call waits before it raises TimeoutError.
RAW_SOCKET_TIMEOUT = 5.0
# Connections used to fill an accept queue, and how long one may take to connect before the
# queue counts as full.
_MAX_BACKLOG_FILLERS = 16
_BACKLOG_PROBE_SECONDS = 0.5


@dataclass(frozen=True)
class ReceivedRequest:
    """A request as the server parsed it.

    ``body`` is the decoded body, and ``raw_body`` the bytes that followed the head on the
    wire (the chunked encoding included). ``connection_id`` counts accepted connections
    from 1, so two requests with the same id came over the same connection.
    """

    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes
    raw_body: bytes
    connection_id: int

    def header(self, name: str) -> str | None:
        """Return the value of the first header called ``name``, or None."""
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


@dataclass(frozen=True)
class Sleep:
    """A step that waits ``seconds`` before the next one."""

    seconds: float


@dataclass(frozen=True)
class WaitFor:
    """A step that waits until the test sets ``event``."""

    event: threading.Event


class Action(enum.Enum):
    """A step that ends the connection, or keeps it open without responding."""

    CLOSE = "close"
    RESET = "reset"
    HOLD = "hold"


CLOSE = Action.CLOSE
RESET = Action.RESET
HOLD = Action.HOLD

Step = bytes | Sleep | WaitFor | Action
Handler = Callable[[ReceivedRequest], Iterable[Step]]


def response(
    status: int = 200,
    body: bytes = b"ok",
    *,
    headers: Iterable[tuple[str, str]] = (),
    reason: str = "OK",
    version: str = "HTTP/1.1",
    content_length: bool = True,
) -> bytes:
    """Build the bytes of a response, with a Content-Length unless ``content_length`` is False."""
    lines = [f"{version} {status} {reason}"]
    lines += [f"{name}: {value}" for name, value in headers]
    if content_length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chunked(*parts: bytes, trailers: Iterable[tuple[str, str]] = ()) -> bytes:
    """Encode ``parts`` as a chunked body, each part one chunk, with optional trailers."""
    encoded = b"".join(b"%x\r\n%b\r\n" % (len(part), part) for part in parts)
    trailer_lines = b"".join(f"{name}: {value}\r\n".encode("latin-1") for name, value in trailers)
    return encoded + b"0\r\n" + trailer_lines + b"\r\n"


def respond_ok(request: ReceivedRequest) -> Iterable[Step]:
    """Respond to every request with ``200 OK`` and the body ``ok``."""
    return [response()]


class _Stopped(Exception):
    """Raised inside a connection thread when the server stops."""


class _ClientClosed(Exception):
    """Raised inside a connection thread when the client closed in the middle of a request."""


class ScriptedServer:
    """A threaded loopback HTTP/1.1 server that responds to each request through ``handler``.

    Args:
        handler: returns the steps of the response to each request, ``200 ok`` by default.
        host: ``127.0.0.1`` or ``::1``.
        ssl_context: a server-side TLS context, to serve ``https``.
    """

    def __init__(
        self,
        handler: Handler = respond_ok,
        *,
        host: str = "127.0.0.1",
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.handler = handler
        self.host = host
        self.port = 0
        self._family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._ssl_context = ssl_context
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._sockets: set[socket.socket] = set()
        self.accepted = 0
        self.open_connections = 0
        self.peak_open_connections = 0
        self.in_flight = 0
        self.peak_in_flight = 0
        self.closed_by_client = 0
        self.requests: list[ReceivedRequest] = []

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "https" if self._ssl_context is not None else "http"
        return f"{scheme}://{host}:{self.port}"

    def start(self) -> ScriptedServer:
        listener = socket.socket(self._family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, 0))
        listener.listen(128)
        listener.settimeout(_POLL_SECONDS)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._spawn(self._accept_loop)
        return self

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            sockets = list(self._sockets)
            threads = list(self._threads)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(_STOP_JOIN_TIMEOUT)
        if self._listener is not None:
            self._listener.close()

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def connection_ids(self) -> list[int]:
        """Return the connection id of every request received so far, in order."""
        with self._lock:
            return [request.connection_id for request in self.requests]

    # Threads

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.accepted += 1
                connection_id = self.accepted
                self.open_connections += 1
                self.peak_open_connections = max(self.peak_open_connections, self.open_connections)
                self._sockets.add(sock)
            self._spawn(self._serve, sock, connection_id)

    def _serve(self, sock: socket.socket, connection_id: int) -> None:
        closed_by_client = False
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock = self._wrap_tls(sock)
            sock.settimeout(_POLL_SECONDS)
            reader = _RequestReader(sock, self._stopping)
            while True:
                request = reader.read_request(connection_id)
                if request is None:
                    closed_by_client = True
                    return
                with self._lock:
                    self.requests.append(request)
                    self.in_flight += 1
                    self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
                try:
                    outcome = self._run_steps(sock, self.handler(request))
                finally:
                    with self._lock:
                        self.in_flight -= 1
                if outcome is not None:
                    closed_by_client = outcome
                    return
        except _ClientClosed:
            closed_by_client = True
        except (_Stopped, OSError):
            pass
        finally:
            with contextlib.suppress(OSError):
                sock.close()
            with self._lock:
                self.open_connections -= 1
                self.closed_by_client += closed_by_client
                self._sockets.discard(sock)

    def _wrap_tls(self, sock: socket.socket) -> socket.socket:
        if self._ssl_context is None:
            return sock
        sock.settimeout(_TLS_HANDSHAKE_TIMEOUT)
        wrapped = self._ssl_context.wrap_socket(sock, server_side=True)
        with self._lock:
            self._sockets.discard(sock)
            self._sockets.add(wrapped)
        return wrapped

    def _run_steps(self, sock: socket.socket, steps: Iterable[Step]) -> bool | None:
        """Run the steps of one response.

        Returns None when the connection can carry the next request, False when a step ended
        it, and True when the client closed it during ``HOLD``.
        """
        for step in steps:
            if isinstance(step, bytes):
                self._send(sock, step)
            elif isinstance(step, Sleep):
                if self._stopping.wait(step.seconds):
                    raise _Stopped
            elif isinstance(step, WaitFor):
                while not step.event.wait(_POLL_SECONDS):
                    if self._stopping.is_set():
                        raise _Stopped
            elif step is CLOSE:
                return False
            elif step is RESET:
                # A zero linger time makes close() send an RST instead of a FIN.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return False
            elif step is HOLD:
                return self._hold(sock)
        return None

    def _send(self, sock: socket.socket, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                sent = sock.send(view[:_SEND_SIZE])
            except TimeoutError:
                if self._stopping.is_set():
                    raise _Stopped from None
                continue
            view = view[sent:]

    def _hold(self, sock: socket.socket) -> bool:
        """Read and drop whatever arrives until the client closes; return True then."""
        while True:
            try:
                if not sock.recv(_RECV_SIZE):
                    return True
            except TimeoutError:
                if self._stopping.is_set():
                    raise _Stopped from None


class _RequestReader:
    """Reads requests from one connection, keeping bytes that arrive early for the next."""

    def __init__(self, sock: socket.socket, stopping: threading.Event) -> None:
        self._sock = sock
        self._stopping = stopping
        self._buffer = bytearray()

    def _fill(self) -> bool:
        """Receive more bytes; return False at end of stream."""
        while True:
            try:
                data = self._sock.recv(_RECV_SIZE)
            except TimeoutError:
                if self._stopping.is_set():
                    raise _Stopped from None
                continue
            if not data:
                return False
            self._buffer += data
            return True

    def _read_until(self, delimiter: bytes) -> bytes:
        while (end := self._buffer.find(delimiter)) < 0:
            if not self._fill():
                raise _ClientClosed
        data = bytes(self._buffer[: end + len(delimiter)])
        del self._buffer[: end + len(delimiter)]
        return data

    def _read_exact(self, count: int) -> bytes:
        while len(self._buffer) < count:
            if not self._fill():
                raise _ClientClosed
        data = bytes(self._buffer[:count])
        del self._buffer[:count]
        return data

    def read_request(self, connection_id: int) -> ReceivedRequest | None:
        """Return the next request, or None when the client closed between requests."""
        while b"\r\n\r\n" not in self._buffer:
            if not self._fill():
                if self._buffer:
                    raise _ClientClosed
                return None
        head = self._read_until(b"\r\n\r\n")[:-4].decode("latin-1")
        request_line, *header_lines = head.split("\r\n")
        method, target, _ = request_line.split(" ", 2)
        headers = []
        for line in header_lines:
            name, _, value = line.partition(":")
            headers.append((name, value.strip()))
        fields = {name.lower(): value for name, value in headers}

        body = b""
        raw_body = b""
        if "chunked" in fields.get("transfer-encoding", "").lower():
            body, raw_body = self._read_chunked()
        elif "content-length" in fields:
            body = raw_body = self._read_exact(int(fields["content-length"]))
        return ReceivedRequest(method, target, headers, body, raw_body, connection_id)

    def _read_chunked(self) -> tuple[bytes, bytes]:
        body = bytearray()
        raw = bytearray()
        while True:
            size_line = self._read_until(b"\r\n")
            raw += size_line
            size = int(size_line[:-2].split(b";")[0], 16)
            if size == 0:
                break
            data = self._read_exact(size + 2)
            raw += data
            body += data[:-2]
        while (trailer := self._read_until(b"\r\n")) != b"\r\n":
            raw += trailer
        raw += b"\r\n"
        return bytes(body), bytes(raw)


class RawServer:
    """A threaded loopback server that hands each accepted socket to ``handler``.

    For exchanges that ``ScriptedServer`` cannot script because it reads each whole request
    before its handler runs: a response sent before the request body is read, or a
    half-close. Each socket has a ``RAW_SOCKET_TIMEOUT`` timeout and is closed after
    ``handler`` returns. An exception in ``handler`` is kept in ``errors``.
    """

    def __init__(self, handler: Callable[[socket.socket], None]) -> None:
        self.handler = handler
        self.port = 0
        self.accepted = 0
        self.errors: list[BaseException] = []
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._sockets: set[socket.socket] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> RawServer:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        listener.settimeout(_POLL_SECONDS)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._spawn(self._accept_loop)
        return self

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            sockets = list(self._sockets)
            threads = list(self._threads)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(_STOP_JOIN_TIMEOUT)
        if self._listener is not None:
            self._listener.close()

    def __enter__(self) -> RawServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.accepted += 1
                self._sockets.add(sock)
            self._spawn(self._serve, sock)

    def _serve(self, sock: socket.socket) -> None:
        try:
            sock.settimeout(RAW_SOCKET_TIMEOUT)
            self.handler(sock)
        except BaseException as error:
            with self._lock:
                self.errors.append(error)
        finally:
            with contextlib.suppress(OSError):
                sock.close()
            with self._lock:
                self._sockets.discard(sock)


def read_request_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """Read a request head, and return it with the body bytes that arrived in the same reads."""
    received = b""
    while b"\r\n\r\n" not in received:
        data = sock.recv(_RECV_SIZE)
        if not data:
            raise ConnectionError("The client closed the connection before its request head")
        received += data
    head, _, rest = received.partition(b"\r\n\r\n")
    return head, rest


def read_until_closed(sock: socket.socket) -> bytes:
    """Read until the client closes; return every byte that arrived."""
    received = bytearray()
    while data := sock.recv(_RECV_SIZE):
        received += data
    return bytes(received)


@contextlib.contextmanager
def unaccepted_listener(
    family: socket.AddressFamily = socket.AF_INET,
) -> Iterator[tuple[str, int]]:
    """Yield the address of a loopback listener that never accepts a connection.

    The kernel still completes the TCP handshake and queues received bytes, so a client can
    connect and send until the socket buffers are full, and then it blocks.
    """
    host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        listener.bind((host, 0))
        listener.listen(8)
        yield host, listener.getsockname()[1]
    finally:
        listener.close()


@contextlib.contextmanager
def listener_with_full_backlog() -> Iterator[tuple[str, int] | None]:
    """Yield the address of a loopback listener whose accept queue is full, or None.

    Linux drops a SYN that arrives while the accept queue of the listener is full, so a new
    connection attempt stays pending (the client retransmits its SYN after 1 s, 3 s...) until
    its own timeout. The queue is filled with connections that are never accepted. Other
    systems may reject or accept the attempt instead; then this yields None.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    fillers: list[socket.socket] = []
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        address = listener.getsockname()
        for _ in range(_MAX_BACKLOG_FILLERS):
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.setblocking(False)
            fillers.append(filler)
            filler.connect_ex(address)
            _, writable, _ = select.select([], [filler], [], _BACKLOG_PROBE_SECONDS)
            if not writable:
                # This attempt is pending: the queue is full, and later attempts wait too.
                yield address
                return
        yield None
    finally:
        for filler in fillers:
            filler.close()
        listener.close()
