"""The SSE decoder on its own: framing rules of the WHATWG event-stream format."""

from __future__ import annotations

import pytest

from langchain_lamatic._sse import (
    DEFAULT_MAX_EVENT_BYTES,
    ServerSentEvent,
    SSEDecoder,
    SSEEventTooLargeError,
)


def decode(*chunks: bytes, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> list[ServerSentEvent]:
    decoder = SSEDecoder(max_event_bytes)
    events: list[ServerSentEvent] = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    return events + decoder.close()


def data_of(events: list[ServerSentEvent]) -> list[str]:
    return [event.data for event in events]


def test_blank_line_dispatches_event() -> None:
    assert decode(b"data: one\n\ndata: two\n\n") == [
        ServerSentEvent(data="one"),
        ServerSentEvent(data="two"),
    ]


def test_event_without_blank_line_waits() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: one\n") == []
    assert decoder.feed(b"\n") == [ServerSentEvent(data="one")]


@pytest.mark.parametrize("line_break", [b"\n", b"\r\n", b"\r"])
def test_line_break_styles_decode_alike(line_break: bytes) -> None:
    body = line_break.join([b"data: a", b"", b": keep-alive", b"data: b", b"data: c", b"", b""])
    assert data_of(decode(body)) == ["a", "b\nc"]


def test_mixed_line_breaks_decode_alike() -> None:
    assert data_of(decode(b"data: a\r\n\rdata: b\n\r\n")) == ["a", "b"]


def test_crlf_split_between_cr_and_lf() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\n\r") == [ServerSentEvent(data="a")]
    assert decoder.feed(b"\ndata: b\r\n\r\n") == [ServerSentEvent(data="b")]


def test_two_carriage_returns_are_two_line_breaks() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\r") == [ServerSentEvent(data="a")]


def test_lf_after_cr_is_skipped_only_once() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\n") == []
    assert decoder.feed(b"\n") == [ServerSentEvent(data="a")]


def test_comment_lines_are_ignored() -> None:
    assert decode(b": keep-alive\n\n:\n\ndata: x\n: inside an event\n\n") == [
        ServerSentEvent(data="x")
    ]


def test_multi_line_data_joins_with_line_feed() -> None:
    assert data_of(decode(b'data: {"a":\ndata:  1}\n\n')) == ['{"a":\n 1}']


def test_only_one_space_after_colon_is_removed() -> None:
    assert data_of(decode(b"data:  two spaces\n\ndata:none\n\n")) == [" two spaces", "none"]


def test_field_without_colon_has_empty_value() -> None:
    assert data_of(decode(b"data\n\n")) == [""]


def test_empty_data_field_still_dispatches() -> None:
    assert decode(b"event: complete\ndata:\n\n") == [ServerSentEvent(data="", event="complete")]


def test_event_without_data_is_not_dispatched() -> None:
    assert decode(b"event: ping\nid: 4\n\ndata: x\n\n") == [
        ServerSentEvent(data="x", event="message", id="4")
    ]


def test_event_type_resets_after_dispatch() -> None:
    events = decode(b"event: next\ndata: a\n\ndata: b\n\n")
    assert [event.event for event in events] == ["next", "message"]


def test_event_id_carries_over_to_later_events() -> None:
    events = decode(b"id: 7\ndata: a\n\ndata: b\n\nid\ndata: c\n\n")
    assert [event.id for event in events] == ["7", "7", ""]


def test_event_id_with_null_character_is_ignored() -> None:
    events = decode(b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n")
    assert [event.id for event in events] == ["1", "1"]


def test_retry_field_sets_reconnection_time() -> None:
    decoder = SSEDecoder()
    events = decoder.feed(b"retry: 2500\ndata: a\n\n")
    assert events == [ServerSentEvent(data="a", retry=2500)]
    assert decoder.retry == 2500


@pytest.mark.parametrize("value", [b"", b"soon", b"-5", b"1.5", b"\xc2\xb2", b"9" * 5000], ids=repr)
def test_invalid_retry_field_is_ignored(value: bytes) -> None:
    decoder = SSEDecoder()
    decoder.feed(b"retry: 10\n\nretry: " + value + b"\ndata: a\n\n")
    assert decoder.retry == 10


def test_unknown_fields_are_ignored() -> None:
    assert decode(b"foo: bar\nDATA: shout\ndata: x\n\n") == [ServerSentEvent(data="x")]


def test_bom_at_start_is_dropped() -> None:
    assert decode(b"\xef\xbb\xbfdata: a\n\n") == [ServerSentEvent(data="a")]


def test_bom_split_across_chunks_is_dropped() -> None:
    assert decode(b"\xef", b"\xbb", b"\xbfdata: a\n\n") == [ServerSentEvent(data="a")]


def test_bom_before_blank_line_is_dropped() -> None:
    assert decode(b"\xef\xbb\xbf\ndata: a\n\n") == [ServerSentEvent(data="a")]


def test_bom_later_in_stream_is_kept() -> None:
    assert data_of(decode(b"data: a\n\n\xef\xbb\xbfdata: b\n\n")) == ["a"]


def test_only_first_bom_is_dropped() -> None:
    # The second mark turns the field name into "\ufeffdata", which is unknown.
    assert decode(b"\xef\xbb\xbf\xef\xbb\xbfdata: a\n\n") == []


def test_multibyte_character_split_across_chunks() -> None:
    body = "data: héllo → 🌍\n\n".encode()
    for split in range(len(body) + 1):
        assert data_of(decode(body[:split], body[split:])) == ["héllo → 🌍"], split


def test_invalid_utf8_becomes_replacement_character() -> None:
    assert data_of(decode(b"data: a\xffb\xe2\x82\n\n")) == ["a\ufffdb\ufffd"]


def test_empty_chunk_changes_nothing() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"") == []
    assert decoder.feed(b"\n\n") == [ServerSentEvent(data="a")]


def test_close_dispatches_event_missing_blank_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n") == []
    assert decoder.close() == [ServerSentEvent(data="a")]
    assert decoder.discarded_bytes == 0


def test_close_discards_unterminated_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b'data: a\n\ndata: {"cut') == [ServerSentEvent(data="a")]
    assert decoder.close() == []
    assert decoder.discarded_bytes == len(b'data: {"cut')


def test_line_longer_than_limit_raises() -> None:
    decoder = SSEDecoder(max_event_bytes=16)
    with pytest.raises(SSEEventTooLargeError, match="longer than 16 bytes"):
        decoder.feed(b"data: " + b"x" * 20)


def test_bytewise_long_line_raises_at_limit() -> None:
    decoder = SSEDecoder(max_event_bytes=16)
    for byte in b"data: " + b"x" * 10:
        decoder.feed(bytes([byte]))
    with pytest.raises(SSEEventTooLargeError):
        decoder.feed(b"x")
    assert len(decoder._line) == 17


def test_terminated_line_longer_than_limit_raises() -> None:
    decoder = SSEDecoder(max_event_bytes=16)
    with pytest.raises(SSEEventTooLargeError):
        decoder.feed(b"data: " + b"x" * 20 + b"\n\n")


def test_line_at_limit_is_accepted() -> None:
    assert data_of(decode(b"data: " + b"x" * 10 + b"\n\n", max_event_bytes=16)) == ["x" * 10]


def test_comment_longer_than_limit_raises() -> None:
    decoder = SSEDecoder(max_event_bytes=16)
    with pytest.raises(SSEEventTooLargeError):
        decoder.feed(b":" + b" keep-alive" * 3 + b"\n")


def test_event_data_lines_share_limit() -> None:
    decoder = SSEDecoder(max_event_bytes=64)
    with pytest.raises(SSEEventTooLargeError, match="the data of one event"):
        decoder.feed(b"data: 0123456789\n" * 10)


def test_oversized_error_keeps_events_completed_before_it() -> None:
    decoder = SSEDecoder(max_event_bytes=32)
    with pytest.raises(SSEEventTooLargeError) as caught:
        decoder.feed(b"data: a\n\ndata: b\n\n" + b"x" * 40)
    assert caught.value.events == [ServerSentEvent(data="a"), ServerSentEvent(data="b")]


def test_large_frame_in_small_pieces_decodes_whole() -> None:
    payload = b"0123456789abcdef" * (5 * 1024 * 1024 // 16)
    body = b"data: " + payload + b"\r\n\r\n"
    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    for start in range(0, len(body), 1024):
        events += decoder.feed(body[start : start + 1024])
    assert len(events) == 1
    assert events[0].data == payload.decode()
