"""Incremental decoder for the ``text/event-stream`` format (Server-Sent Events).

It follows the event-stream parsing rules of the WHATWG HTML standard, section "Server-sent
events". One leading byte order mark is dropped. Lines end in CRLF, LF or a lone CR, and lines
starting with a colon are comments. The ``data`` lines of one event are joined with line feeds,
and a blank line dispatches the event. The text is decoded as UTF-8, and invalid bytes become
U+FFFD.

Bytes go in as the network delivers them, so a chunk may end anywhere: inside a line, inside a
multi-byte UTF-8 character or between the CR and the LF of a CRLF. Each input byte is scanned for
line breaks once and copied a bounded number of times, so decoding is linear in the input size
however finely it is split. The decoder performs no I/O, which lets the sync and async clients
share it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_MAX_EVENT_BYTES = 16 * 1024 * 1024

_LINE_BREAK = re.compile(rb"\r\n|\r|\n")
_BYTE_ORDER_MARK = "\ufeff"


@dataclass(frozen=True)
class ServerSentEvent:
    """One dispatched event.

    Attributes:
        data: The values of the event's ``data`` fields, joined with line feeds.
        event: The event type from the last ``event`` field, or "message" when there was none.
        id: The last event ID at dispatch time. The ``id`` field carries over to later events,
            as the standard requires.
        retry: The reconnection time in milliseconds from the last valid ``retry`` field seen
            so far, or None.
    """

    data: str
    event: str = "message"
    id: str = ""
    retry: int | None = None


class SSEEventTooLargeError(ValueError):
    """A line or the data of one event grew past the decoder's ``max_event_bytes``.

    Attributes:
        events: The events completed in the same ``feed`` call before the limit was hit.
    """

    def __init__(self, message: str, events: list[ServerSentEvent]) -> None:
        super().__init__(message)
        self.events = events


class SSEDecoder:
    """Turn the byte chunks of an event stream into `ServerSentEvent` objects.

    Args:
        max_event_bytes: Maximum size in bytes of one line, and of the ``data`` lines of one
            event taken together. Past it, `feed` raises `SSEEventTooLargeError`, so a server
            that never sends a line break cannot exhaust memory.
    """

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self.max_event_bytes = max_event_bytes
        self.last_event_id = ""
        self.retry: int | None = None
        self.discarded_bytes = 0

        self._line = bytearray()
        self._skip_lf = False
        self._at_stream_start = True
        self._data_lines: list[str] = []
        self._data_bytes = 0
        self._event_type = ""

    @property
    def pending_line(self) -> bytes:
        """The bytes of the line that is still waiting for its line break."""
        return bytes(self._line)

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Decode the next chunk and return the events it completed, oldest first.

        Raises:
            SSEEventTooLargeError: A line or an event's data exceeds ``max_event_bytes``. The
                decoder must not be fed again after it.
        """
        events: list[ServerSentEvent] = []
        if not chunk:
            return events

        start = 0
        if self._skip_lf:
            # The previous chunk ended with a CR, so a leading LF here completes that CRLF.
            self._skip_lf = False
            if chunk[0] == 0x0A:
                start = 1

        for match in _LINE_BREAK.finditer(chunk, start):
            segment = chunk[start : match.start()]
            if self._line:
                self._line += segment
                line = bytes(self._line)
                self._line.clear()
            else:
                line = segment
            start = match.end()
            self._check_size(len(line), "a line", events)
            self._process_line(line, events)

        self._skip_lf = chunk[-1] == 0x0D
        self._line += chunk[start:]
        self._check_size(len(self._line), "an unterminated line", events)
        return events

    def close(self) -> list[ServerSentEvent]:
        """End the input and return the event that was still pending, if any.

        An unterminated last line is discarded, as the standard requires, and its size is kept
        in ``discarded_bytes``. Unlike the standard, an event whose lines all ended but whose
        closing blank line never came is still dispatched. A complete last line is all the data
        a frame needs, and the caller validates the frame's content.
        """
        self.discarded_bytes = len(self._line)
        self._line.clear()
        self._skip_lf = False

        events: list[ServerSentEvent] = []
        self._dispatch(events)
        return events

    def _check_size(self, size: int, description: str, events: list[ServerSentEvent]) -> None:
        if size > self.max_event_bytes:
            raise SSEEventTooLargeError(
                f"{description} is longer than {self.max_event_bytes} bytes", events
            )

    def _process_line(self, raw_line: bytes, events: list[ServerSentEvent]) -> None:
        line = raw_line.decode("utf-8", "replace")
        if self._at_stream_start:
            self._at_stream_start = False
            if line.startswith(_BYTE_ORDER_MARK):
                line = line[1:]

        if not line:
            self._dispatch(events)
            return
        if line.startswith(":"):
            return

        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]

        if name == "data":
            self._data_bytes += len(raw_line)
            self._check_size(self._data_bytes, "the data of one event", events)
            self._data_lines.append(value)
        elif name == "event":
            self._event_type = value
        elif name == "id":
            if "\0" not in value:
                self.last_event_id = value
        elif name == "retry":
            self._set_retry(value)

    def _set_retry(self, value: str) -> None:
        if not (value.isascii() and value.isdigit()):
            return
        try:
            self.retry = int(value)
        except ValueError:
            # Python 3.11 and later reject integer strings of more than 4300 digits by default.
            return

    def _dispatch(self, events: list[ServerSentEvent]) -> None:
        if self._data_lines:
            events.append(
                ServerSentEvent(
                    data="\n".join(self._data_lines),
                    event=self._event_type or "message",
                    id=self.last_event_id,
                    retry=self.retry,
                )
            )
        self._data_lines = []
        self._data_bytes = 0
        self._event_type = ""
