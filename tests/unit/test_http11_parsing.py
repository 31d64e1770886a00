"""The parsing, framing and buffering parts of AsyncHTTP11Transport, without sockets.

The helpers under test are private. They are tested here one by one because a mistake in
them (a body framed wrongly, a header line accepted that should not be) only shows over the
network as a hang or a corrupted later response.
"""

from __future__ import annotations

import asyncio
import functools
import math
import sys
from typing import Any
from unittest import mock

import httpcore
import httpx
import pytest
import respx
from hypothesis import given, settings
from hypothesis import strategies as st

from langchain_lamatic._http11 import (
    _CHUNKED,
    _EMPTY,
    _LENGTH,
    _UNTIL_CLOSE,
    MAX_HEAD_BYTES,
    MAX_LINE_BYTES,
    READ_HIGH_WATER,
    AsyncHTTP11Transport,
    _body_framing,
    _chunk_size,
    _Connection,
    _encode_head,
    _parse_head,
    is_mocking_active,
)

Headers = list[tuple[bytes, bytes]]

# --- _parse_head ----------------------------------------------------------------------------


def test_parse_head_splits_all_parts() -> None:
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2"
    )

    parsed = _parse_head(head)

    assert parsed == (
        200,
        b"OK",
        b"HTTP/1.1",
        [
            (b"Content-Type", b"application/json"),
            (b"Set-Cookie", b"a=1"),
            (b"Set-Cookie", b"b=2"),
        ],
    )


def test_parse_head_keeps_spaces_inside_reason() -> None:
    status, reason, version, headers = _parse_head(b"HTTP/1.0 404 Not Found")

    assert status == 404
    assert reason == b"Not Found"
    assert version == b"HTTP/1.0"
    assert headers == []


@pytest.mark.parametrize("status_line", [b"HTTP/1.1 204", b"HTTP/1.1 204 "])
def test_parse_head_accepts_missing_reason(status_line: bytes) -> None:
    status, reason, _, _ = _parse_head(status_line)

    assert status == 204
    assert reason == b""


def test_parse_head_strips_whitespace_around_values() -> None:
    _, _, _, headers = _parse_head(
        b"HTTP/1.1 200 OK\r\nX-Padded: \t value with space \t\r\nX-Empty:"
    )

    assert headers == [(b"X-Padded", b"value with space"), (b"X-Empty", b"")]


@pytest.mark.parametrize(
    "status_line",
    [
        b"",
        b"HTTP/1.1",
        b"HTTP/1.1 20 OK",
        b"HTTP/1.1 2000 OK",
        b"HTTP/1.1 2x0 OK",
        b"HTTP/1.1 +20 OK",
        b"HTTP/1.1  200 OK",
        b"HTTP/2 200 OK",
        b"http/1.1 200 OK",
        b"ICY 200 OK",
        # Superscript digits count as digits for str.isdigit(), not for bytes.isdigit().
        "HTTP/1.1 ²²² OK".encode(),
    ],
)
def test_parse_head_rejects_malformed_status_line(status_line: bytes) -> None:
    with pytest.raises(httpx.RemoteProtocolError) as caught:
        _parse_head(status_line + b"\r\nContent-Length: 0")

    assert str(caught.value) == (
        "Malformed response status line: expected 'HTTP/1.1', a 3-digit status code and a "
        f"reason phrase, got {len(status_line)} bytes that are not"
    )


@pytest.mark.parametrize("reason", [b"O\rK", b"O\x00K", b"O\x7fK"], ids=["CR", "NUL", "DEL"])
def test_parse_head_rejects_control_byte_in_reason(reason: bytes) -> None:
    with pytest.raises(httpx.RemoteProtocolError, match="Malformed response status line"):
        _parse_head(b"HTTP/1.1 200 " + reason + b"\r\nContent-Length: 0")


@pytest.mark.parametrize("status", [b"000", b"099"])
def test_parse_head_rejects_status_below_100(status: bytes) -> None:
    with pytest.raises(httpx.RemoteProtocolError) as caught:
        _parse_head(b"HTTP/1.1 " + status + b" Odd\r\nContent-Length: 0")

    assert str(caught.value) == f"Invalid response status code {int(status)}"


@pytest.mark.parametrize(
    "header_line",
    [
        b"No colon at all",
        b"Bad Name: x",
        b"Trailing-Space : x",
        b": no name",
        b"X\x00Name: x",
        "Ünicode-Name: x".encode(),
    ],
)
def test_parse_head_rejects_malformed_header_line(header_line: bytes) -> None:
    head = b"HTTP/1.1 200 OK\r\nX-First: 1\r\n" + header_line

    with pytest.raises(httpx.RemoteProtocolError) as caught:
        _parse_head(head)

    assert str(caught.value) == "Malformed response header on line 3 of the response head"


@pytest.mark.parametrize("value", [b"a\rb", b"a\x00b", b"a\r"], ids=["CR", "NUL", "trailing-CR"])
def test_parse_head_rejects_cr_nul_in_value(value: bytes) -> None:
    with pytest.raises(httpx.RemoteProtocolError) as caught:
        _parse_head(b"HTTP/1.1 200 OK\r\nX-Value: " + value)

    assert str(caught.value) == "The response header on line 2 contains a CR or NUL byte"


def test_parse_head_splits_value_at_bare_lf() -> None:
    # After a bare LF, "b" is a line of its own, and it has no colon.
    with pytest.raises(httpx.RemoteProtocolError) as caught:
        _parse_head(b"HTTP/1.1 200 OK\r\nX-Value: a\nb")

    assert str(caught.value) == "Malformed response header on line 3 of the response head"


@pytest.mark.parametrize(
    ("first_end", "second_end"),
    [(b"\n", b"\n"), (b"\r\n", b"\n"), (b"\n", b"\r\n")],
    ids=["bare-LF", "CRLF-then-LF", "LF-then-CRLF"],
)
def test_parse_head_accepts_bare_lf_line_ends(first_end: bytes, second_end: bytes) -> None:
    head = b"HTTP/1.1 200 OK" + first_end + b"X-First: 1" + second_end + b"Content-Length: 5"

    status, reason, _, headers = _parse_head(head)

    assert status == 200
    assert reason == b"OK"
    assert headers == [(b"X-First", b"1"), (b"Content-Length", b"5")]


@pytest.mark.parametrize("fold", [b"\r\n ", b"\r\n\t", b"\n  \t", b"\r\n \r\n "])
def test_parse_head_unfolds_obsolete_line_folding(fold: bytes) -> None:
    head = b"HTTP/1.1 200 OK\r\nX-Folded: first" + fold + b"second  \r\nX-After: 1"

    _, _, _, headers = _parse_head(head)

    assert headers == [(b"X-Folded", b"first second"), (b"X-After", b"1")]


def test_parse_head_unfolds_several_continuation_lines() -> None:
    head = b"HTTP/1.1 200 OK\r\nX-Folded:\r\n a\r\n\tb\r\n c"

    _, _, _, headers = _parse_head(head)

    assert headers == [(b"X-Folded", b"a b c")]


@pytest.mark.parametrize("fold", [b" folded: x", b"\tfolded", b" "])
def test_parse_head_rejects_fold_before_first_header(fold: bytes) -> None:
    with pytest.raises(httpx.RemoteProtocolError) as caught:
        _parse_head(b"HTTP/1.1 200 OK\r\n" + fold + b"\r\nContent-Length: 0")

    assert str(caught.value) == "Malformed response header on line 2 of the response head"


@pytest.mark.parametrize("continuation", [b" b\x00c", b" b\rc"], ids=["NUL", "CR"])
def test_parse_head_rejects_cr_nul_in_folded_value(continuation: bytes) -> None:
    with pytest.raises(httpx.RemoteProtocolError, match="contains a CR or NUL byte"):
        _parse_head(b"HTTP/1.1 200 OK\r\nX-Value: a\r\n" + continuation)


# Pieces of real heads, so that generated bytes reach the header checks and not only the
# status line check.
HEAD_PIECES = [
    b"HTTP/1.1 ",
    b"HTTP/1.0 ",
    b"200",
    b" OK",
    b"\r\n",
    b"\n",
    b"\r",
    b":",
    b": ",
    b"X-Name",
    b" ",
    b"\t",
    b"\x00",
    b"\xff",
]
head_like_bytes = st.lists(st.sampled_from(HEAD_PIECES) | st.binary(max_size=4), max_size=30).map(
    b"".join
)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200) | head_like_bytes)
def test_parse_head_raises_only_remote_protocol_error(head: bytes) -> None:
    try:
        status, _, version, headers = _parse_head(head)
    except httpx.RemoteProtocolError:
        return

    assert 100 <= status <= 999
    assert version in (b"HTTP/1.1", b"HTTP/1.0")
    assert all(isinstance(name, bytes) and isinstance(value, bytes) for name, value in headers)


TOKEN_CHARACTERS = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# RFC 9110 field-content: visible ASCII, obs-text, and spaces or tabs between them.
FIELD_BYTES = [*range(0x21, 0x7F), *range(0x80, 0x100)]

header_names = st.text(TOKEN_CHARACTERS, min_size=1, max_size=20).map(str.encode)
field_values = st.lists(
    st.sampled_from(FIELD_BYTES) | st.sampled_from([0x20, 0x09]), max_size=40
).map(lambda values: bytes(values).strip(b" \t"))
optional_whitespace = st.sampled_from([b"", b" ", b"\t", b"  \t"])


@settings(deadline=None)
@given(
    version=st.sampled_from([b"HTTP/1.1", b"HTTP/1.0"]),
    status=st.integers(100, 999),
    reason=st.lists(st.sampled_from([*FIELD_BYTES, 0x20, 0x09]), max_size=30).map(bytes),
    headers=st.lists(
        st.tuples(header_names, field_values, optional_whitespace, optional_whitespace),
        max_size=12,
    ),
)
def test_parse_head_round_trips_valid_head(
    version: bytes, status: int, reason: bytes, headers: list[tuple[bytes, bytes, bytes, bytes]]
) -> None:
    lines = [b"%b %d %b" % (version, status, reason)]
    lines += [name + b":" + before + value + after for name, value, before, after in headers]

    parsed = _parse_head(b"\r\n".join(lines))

    assert parsed == (status, reason, version, [(name, value) for name, value, _, _ in headers])


# A credential that a server might echo into its response. The slash is not a token character,
# so the sentinel can never form a header name, which the CR-or-NUL message quotes.
SENTINEL = "lmt_sk/Q7vR2xN9pK4wZ8mT"


def sentinel_fragments_in(text: str) -> list[str]:
    """Return every 6-character piece of ``SENTINEL`` that occurs in ``text``."""
    pieces = (SENTINEL[start : start + 6] for start in range(len(SENTINEL) - 5))
    return [piece for piece in pieces if piece in text]


def parse_and_frame(head: bytes) -> None:
    """Parse a response head and work out how its body is framed, as for a GET."""
    status, _, version, headers = _parse_head(head)
    _body_framing("GET", status, version, headers)


def head_error(head: bytes) -> httpx.RemoteProtocolError | None:
    """Return the error that ``parse_and_frame`` raises for ``head``, or None."""
    try:
        parse_and_frame(head)
    except httpx.RemoteProtocolError as error:
        return error
    return None


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from([*HEAD_PIECES, SENTINEL.encode()]) | st.binary(max_size=4), max_size=30
    ).map(b"".join)
)
def test_head_errors_quote_no_head_bytes(head: bytes) -> None:
    error = head_error(head)

    # The sentinel contains no line break, so no fragment can span two of the joined texts.
    texts = "" if error is None else f"{error}\n{error!r}"
    assert sentinel_fragments_in(texts) == []


@pytest.mark.parametrize(
    "head",
    [
        pytest.param(f"HTTP/1.1 2x0 {SENTINEL}", id="status-line"),
        pytest.param(f"{SENTINEL} 200 OK", id="status-line-start"),
        pytest.param(f"HTTP/1.1 200 OK\r\n{SENTINEL}", id="header-line"),
        pytest.param(f"HTTP/1.1 200 OK\r\n {SENTINEL}", id="fold-before-first-header"),
        pytest.param(f"HTTP/1.1 200 OK\r\nX-Echo: {SENTINEL}\x00", id="nul-in-value"),
        pytest.param(f"HTTP/1.1 200 OK\r\nContent-Length: {SENTINEL}", id="content-length"),
        pytest.param(
            f"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: {SENTINEL}",
            id="conflicting-content-length",
        ),
        pytest.param(f"HTTP/1.1 200 OK\r\nTransfer-Encoding: {SENTINEL}", id="transfer-coding"),
    ],
)
def test_head_error_omits_echoed_credential(head: str) -> None:
    with pytest.raises(httpx.RemoteProtocolError) as caught:
        parse_and_frame(head.encode())

    assert sentinel_fragments_in(str(caught.value)) == []
    assert sentinel_fragments_in(repr(caught.value)) == []


# --- _body_framing --------------------------------------------------------------------------

FRAMING_CASES = [
    pytest.param(
        "GET", 200, b"HTTP/1.1", [(b"Content-Length", b"5")], (_LENGTH, 5, True), id="length"
    ),
    pytest.param(
        "GET", 200, b"HTTP/1.1", [(b"Content-Length", b"0")], (_EMPTY, 0, True), id="length-zero"
    ),
    pytest.param(
        "GET",
        200,
        b"HTTP/1.1",
        [(b"content-length", b" 7 ")],
        (_LENGTH, 7, True),
        id="lowercase-name-padded-value",
    ),
    pytest.param(
        "GET",
        200,
        b"HTTP/1.1",
        [(b"Content-Length", b"5, 5"), (b"Content-Length", b"5")],
        (_LENGTH, 5, True),
        id="repeated-equal-lengths",
    ),
    pytest.param(
        "HEAD", 200, b"HTTP/1.1", [(b"Content-Length", b"5")], (_EMPTY, 0, True), id="head"
    ),
    pytest.param("GET", 204, b"HTTP/1.1", [], (_EMPTY, 0, True), id="no-content"),
    pytest.param(
        "GET",
        304,
        b"HTTP/1.1",
        [(b"Content-Length", b"10")],
        (_EMPTY, 0, True),
        id="not-modified-with-length",
    ),
    pytest.param(
        "GET",
        200,
        b"HTTP/1.1",
        [(b"Transfer-Encoding", b"chunked")],
        (_CHUNKED, 0, True),
        id="chunked",
    ),
    pytest.param(
        "GET",
        200,
        b"HTTP/1.1",
        [(b"Transfer-Encoding", b" Chunked ")],
        (_CHUNKED, 0, True),
        id="chunked-any-case",
    ),
    pytest.param(
        "GET",
        200,
        b"HTTP/1.0",
        [(b"Transfer-Encoding", b"chunked")],
        (_CHUNKED, 0, False),
        id="http-1.0-chunked-not-reused",
    ),
    pytest.param(
        "GET",
        200,
        b"HTTP/1.1",
        [(b"Transfer-Encoding", b"chunked"), (b"Content-Length", b"10")],
        (_CHUNKED, 0, False),
        id="chunked-with-length-not-reused",
    ),
    pytest.param("GET", 200, b"HTTP/1.1", [], (_UNTIL_CLOSE, 0, False), id="no-length"),
    pytest.param(
        "GET", 200, b"HTTP/1.0", [(b"Content-Length", b"2")], (_LENGTH, 2, False), id="http-1.0"
    ),
    pytest.param(
        "GET",
        200,
        b"HTTP/1.1",
        [(b"Connection", b"keep-alive, Close"), (b"Content-Length", b"2")],
        (_LENGTH, 2, False),
        id="connection-close",
    ),
    pytest.param(
        "GET",
        204,
        b"HTTP/1.1",
        [(b"Connection", b"close")],
        (_EMPTY, 0, False),
        id="no-content-connection-close",
    ),
    pytest.param(
        "GET",
        200,
        b"HTTP/1.1",
        [(b"Content-Length", b"999999999999999999")],
        (_LENGTH, 999_999_999_999_999_999, True),
        id="eighteen-digit-length",
    ),
]


@pytest.mark.parametrize(("method", "status", "version", "headers", "expected"), FRAMING_CASES)
def test_body_framing_follows_rfc_9112(
    method: str, status: int, version: bytes, headers: Headers, expected: tuple[int, int, bool]
) -> None:
    assert _body_framing(method, status, version, headers) == expected


NOT_A_WHOLE_NUMBER = "The response's Content-Length is not a whole number"


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        pytest.param(
            [(b"Content-Length", b"2"), (b"Content-Length", b"3")],
            "The response has 2 different Content-Length values",
            id="conflicting-lengths",
        ),
        pytest.param(
            [(b"Content-Length", b"2, 3")],
            "The response has 2 different Content-Length values",
            id="conflicting-list",
        ),
        pytest.param(
            [(b"Content-Length", b"2, 3"), (b"Content-Length", b"4, 2")],
            "The response has 3 different Content-Length values",
            id="three-different-lengths",
        ),
        pytest.param([(b"Content-Length", b"two")], NOT_A_WHOLE_NUMBER, id="word"),
        pytest.param([(b"Content-Length", b"-1")], NOT_A_WHOLE_NUMBER, id="negative"),
        pytest.param([(b"Content-Length", b"+5")], NOT_A_WHOLE_NUMBER, id="plus-sign"),
        pytest.param([(b"Content-Length", b"0x10")], NOT_A_WHOLE_NUMBER, id="hex"),
        pytest.param([(b"Content-Length", b"1.5")], NOT_A_WHOLE_NUMBER, id="decimal"),
        pytest.param([(b"Content-Length", b"1" * 19)], NOT_A_WHOLE_NUMBER, id="nineteen-digits"),
    ],
)
def test_body_framing_rejects_invalid_length_headers(headers: Headers, message: str) -> None:
    with pytest.raises(httpx.RemoteProtocolError) as caught:
        _body_framing("GET", 200, b"HTTP/1.1", headers)

    assert str(caught.value) == message


@pytest.mark.parametrize("version", [b"HTTP/1.1", b"HTTP/1.0"])
@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([(b"Transfer-Encoding", b"gzip, chunked")], id="gzip-then-chunked"),
        pytest.param([(b"Transfer-Encoding", b"chunked, gzip")], id="chunked-then-gzip"),
        pytest.param([(b"Transfer-Encoding", b"identity")], id="identity"),
        pytest.param([(b"Transfer-Encoding", b"gzip")], id="gzip"),
        pytest.param([(b"Transfer-Encoding", b"chunked, chunked")], id="chunked-twice"),
        pytest.param(
            [(b"Transfer-Encoding", b"chunked"), (b"Transfer-Encoding", b"chunked")],
            id="two-chunked-headers",
        ),
        pytest.param(
            [(b"Transfer-Encoding", b"identity"), (b"Content-Length", b"5")],
            id="identity-with-length",
        ),
    ],
)
def test_body_framing_rejects_transfer_coding_other_than_chunked(
    version: bytes, headers: Headers
) -> None:
    with pytest.raises(httpx.RemoteProtocolError) as caught:
        _body_framing("GET", 200, version, headers)

    assert str(caught.value) == (
        "Unsupported Transfer-Encoding in the response; only 'chunked' is supported"
    )


@settings(deadline=None)
@given(st.integers(1, 10**18 - 1))
def test_body_framing_reads_any_content_length(length: int) -> None:
    framing = _body_framing("GET", 200, b"HTTP/1.1", [(b"Content-Length", b"%d" % length)])

    assert framing == (_LENGTH, length, True)


# --- _chunk_size ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "size"),
    [
        (b"0", 0),
        (b"a", 10),
        (b"FF", 255),
        (b"00000010", 16),
        (b"1a;name=value", 26),
        (b"1a ; name=value", 26),
        (b"1a\t;name=value", 26),
        (b"1a ", 26),
        (b"1a \t", 26),
        (b'1a;name="quoted;value"', 26),
        (b"f" * 16, 16**16 - 1),
    ],
)
def test_chunk_size_reads_hex_size_and_ignores_extensions(line: bytes, size: int) -> None:
    assert _chunk_size(line) == size


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b";name=value",
        b"g",
        b"-1",
        b"+1",
        b"0x10",
        b"1 2",
        b"1_0",
        b"f" * 17,
        b"\xff",
        b" 1a",
        b"\t1a",
        b" 1a;name=value",
        b" ",
    ],
)
def test_chunk_size_rejects_invalid_line(line: bytes) -> None:
    with pytest.raises(httpx.RemoteProtocolError) as caught:
        _chunk_size(line)

    assert str(caught.value) == (
        "Invalid chunk size line in the response body: expected a hexadecimal size"
    )


def test_chunk_size_error_omits_echoed_credential() -> None:
    with pytest.raises(httpx.RemoteProtocolError) as caught:
        _chunk_size(f"{SENTINEL};ext={SENTINEL}".encode())

    assert sentinel_fragments_in(str(caught.value)) == []
    assert sentinel_fragments_in(repr(caught.value)) == []


@settings(deadline=None)
@given(st.integers(0, 16**16 - 1), st.sampled_from([b"", b";x", b";name=value;other"]))
def test_chunk_size_round_trips(size: int, extension: bytes) -> None:
    assert _chunk_size(b"%x%b" % (size, extension)) == size


# --- _encode_head ---------------------------------------------------------------------------


def test_encode_head_keeps_header_order() -> None:
    head = _encode_head(
        "POST",
        b"/graphql?x=1",
        [(b"Host", b"example.test"), (b"X-Api-Key", b"k"), (b"Content-Length", b"2")],
    )

    assert head == (
        b"POST /graphql?x=1 HTTP/1.1\r\n"
        b"Host: example.test\r\n"
        b"X-Api-Key: k\r\n"
        b"Content-Length: 2\r\n"
        b"\r\n"
    )


@pytest.mark.parametrize("character", [b"\r", b"\n", b"\x00"], ids=["CR", "LF", "NUL"])
def test_encode_head_rejects_cr_lf_nul_in_value(character: bytes) -> None:
    with pytest.raises(httpx.LocalProtocolError, match="'X-Injected' contains a line break or NUL"):
        _encode_head("GET", b"/", [(b"X-Injected", b"a" + character + b"Injected: 1")])


@pytest.mark.parametrize("name", [b"Bad Name", b"", b"X:Y", b"X\r\nY", "Ü".encode()])
def test_encode_head_rejects_invalid_header_name(name: bytes) -> None:
    with pytest.raises(httpx.LocalProtocolError, match="Invalid header name"):
        _encode_head("GET", b"/", [(name, b"value")])


def test_encode_head_rejects_method_with_line_break() -> None:
    with pytest.raises(httpx.LocalProtocolError):
        _encode_head("GET / HTTP/1.1\r\nX-Injected: 1\r\n\r\nGET", b"/", [(b"Host", b"a")])


@settings(deadline=None)
@given(st.binary(max_size=30))
def test_encode_head_value_check_is_exact(value: bytes) -> None:
    unsafe = any(character in value for character in b"\r\n\x00")
    try:
        head = _encode_head("GET", b"/", [(b"X-Value", value)])
    except httpx.LocalProtocolError:
        assert unsafe
        return

    assert not unsafe
    assert head == b"GET / HTTP/1.1\r\nX-Value: " + value + b"\r\n\r\n"


# --- is_mocking_active ----------------------------------------------------------------------


def test_mocking_inactive_with_stock_transports() -> None:
    assert not is_mocking_active()


def test_mocking_active_with_replaced_httpx_method(monkeypatch: pytest.MonkeyPatch) -> None:
    async def replacement(self: Any, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200)

    monkeypatch.setattr(httpx.AsyncHTTPTransport, "handle_async_request", replacement)

    assert is_mocking_active()


def test_mocking_active_with_wrapped_httpx_method(monkeypatch: pytest.MonkeyPatch) -> None:
    original = httpx.AsyncHTTPTransport.handle_async_request

    @functools.wraps(original)
    async def wrapper(self: Any, request: httpx.Request) -> httpx.Response:
        return await original(self, request)

    monkeypatch.setattr(httpx.AsyncHTTPTransport, "handle_async_request", wrapper)

    assert wrapper.__module__ == original.__module__
    assert is_mocking_active()


def test_mocking_active_with_mock_object(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(httpx.AsyncHTTPTransport, "handle_async_request", mock.AsyncMock())

    assert is_mocking_active()


def test_mocking_active_with_replaced_httpcore_pool_method(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def replacement(self: Any, request: Any) -> Any:
        return None

    monkeypatch.setattr(httpcore.AsyncConnectionPool, "handle_async_request", replacement)

    assert is_mocking_active()


@pytest.mark.parametrize("method", ["send", "_send_single_request"])
def test_mocking_active_with_replaced_async_client_method(
    monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    async def replacement(self: Any, request: httpx.Request, **options: Any) -> httpx.Response:
        return httpx.Response(200)

    monkeypatch.setattr(httpx.AsyncClient, method, replacement)

    assert is_mocking_active()


@pytest.mark.parametrize(
    ("owner", "method"),
    [
        (httpx.AsyncHTTPTransport, "handle_async_request"),
        (httpx.AsyncClient, "send"),
        (httpx.AsyncClient, "_send_single_request"),
        (httpcore.AsyncConnectionPool, "handle_async_request"),
    ],
)
def test_mocking_active_with_autospec_patch(owner: type, method: str) -> None:
    with mock.patch.object(owner, method, autospec=True):
        # An autospec function has no module name, which must not break the check.
        assert getattr(owner, method).__module__ is None
        inside = is_mocking_active()

    assert inside
    assert not is_mocking_active()


def test_mocking_active_only_inside_respx_mock() -> None:
    with respx.mock:
        inside = is_mocking_active()

    assert inside
    assert not is_mocking_active()


def test_mocking_inactive_when_httpcore_not_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "httpcore")

    assert not is_mocking_active()


# --- Constructor ----------------------------------------------------------------------------


def test_transport_defaults() -> None:
    transport = AsyncHTTP11Transport()

    assert transport.max_connections == 100
    assert transport.keepalive_expiry == 5.0
    assert transport.connections == []
    assert transport.idle_count == 0
    assert transport.stock_transport is None


@pytest.mark.parametrize(
    ("value", "error_type", "shown"),
    [
        (0, ValueError, "got 0"),
        (-1, ValueError, "got -1"),
        (True, TypeError, "got True"),
        (1.5, TypeError, "got 1.5"),
        ("10", TypeError, "got '10'"),
    ],
)
def test_transport_rejects_invalid_max_connections(
    value: Any, error_type: type[Exception], shown: str
) -> None:
    with pytest.raises(error_type) as caught:
        AsyncHTTP11Transport(max_connections=value)

    assert "max_connections" in str(caught.value)
    assert shown in str(caught.value)


@pytest.mark.parametrize(
    ("value", "shown"), [(-1, "got -1"), (-0.5, "got -0.5"), (math.nan, "got nan")]
)
def test_transport_rejects_invalid_keepalive_expiry(value: float, shown: str) -> None:
    with pytest.raises(ValueError, match="keepalive_expiry") as caught:
        AsyncHTTP11Transport(keepalive_expiry=value)

    assert shown in str(caught.value)


def test_transport_repr_shows_pool_state() -> None:
    text = repr(AsyncHTTP11Transport(max_connections=7))

    assert text == "AsyncHTTP11Transport(max_connections=7, open=0, idle=0, active=0)"


# --- _Connection buffering, fed by hand -----------------------------------------------------


class FakeTransport(asyncio.Transport):
    """Records flow-control calls, in place of a socket transport."""

    def __init__(self) -> None:
        super().__init__()
        self.reading = True
        self.closing = False
        self.written = bytearray()

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


def connected() -> tuple[_Connection, FakeTransport]:
    connection = _Connection(
        asyncio.get_running_loop(), ("http", "example.test", 80), on_lost=lambda _: None
    )
    transport = FakeTransport()
    connection.connection_made(transport)
    return connection, transport


async def test_read_head_joins_pieces_and_keeps_body_bytes() -> None:
    connection, _ = connected()
    reading = asyncio.create_task(connection.read_head(timeout=5.0))
    for piece in (b"HTTP/1.1 200 OK\r", b"\nContent-Length: 2\r\n\r", b"\nok"):
        await asyncio.sleep(0)
        connection.data_received(piece)

    head = await reading

    assert head == b"HTTP/1.1 200 OK\r\nContent-Length: 2"
    assert bytes(connection._buffer) == b"ok"


def test_head_and_line_limits_match_httpcore() -> None:
    # httpcore 1.0 allows a response head of up to 100 KiB.
    assert MAX_HEAD_BYTES == 100 * 1024
    assert MAX_LINE_BYTES == 100 * 1024


async def test_read_head_rejects_unterminated_head_over_limit() -> None:
    connection, _ = connected()
    connection.data_received(b"HTTP/1.1 200 OK\r\nX-Pad: " + b"a" * MAX_HEAD_BYTES)

    with pytest.raises(httpx.RemoteProtocolError) as caught:
        await connection.read_head(timeout=5.0)

    assert str(caught.value) == "The response head is longer than 102400 bytes"


@pytest.mark.parametrize("line_end", [b"\r\n", b"\n"], ids=["CRLF", "bare-LF"])
async def test_read_head_rejects_complete_head_over_limit(line_end: bytes) -> None:
    connection, _ = connected()
    connection.data_received(
        b"HTTP/1.1 200 OK" + line_end + b"X-Pad: " + b"a" * MAX_HEAD_BYTES + line_end * 2
    )

    with pytest.raises(httpx.RemoteProtocolError, match="longer than 102400 bytes"):
        await connection.read_head(timeout=5.0)


async def test_read_head_accepts_90_kib_head() -> None:
    connection, _ = connected()
    head = b"HTTP/1.1 200 OK\r\nX-Pad: " + b"a" * (90 * 1024)
    connection.data_received(head + b"\r\n\r\nok")

    received = await connection.read_head(timeout=5.0)

    assert received == head
    assert bytes(connection._buffer) == b"ok"


@pytest.mark.parametrize(
    ("head_end", "expected_head"),
    [
        (b"\n\n", b"HTTP/1.1 200 OK\nContent-Length: 5"),
        (b"\r\n\n", b"HTTP/1.1 200 OK\nContent-Length: 5"),
        (b"\n\r\n", b"HTTP/1.1 200 OK\nContent-Length: 5"),
    ],
    ids=["LF-LF", "CRLF-LF", "LF-CRLF"],
)
async def test_read_head_accepts_bare_lf_head_end(head_end: bytes, expected_head: bytes) -> None:
    connection, _ = connected()
    connection.data_received(b"HTTP/1.1 200 OK\nContent-Length: 5" + head_end + b"hello")

    head = await connection.read_head(timeout=5.0)

    assert head == expected_head
    assert bytes(connection._buffer) == b"hello"


async def test_read_head_finds_bare_lf_end_across_pieces() -> None:
    connection, _ = connected()
    reading = asyncio.create_task(connection.read_head(timeout=5.0))
    for piece in (b"HTTP/1.1 200 OK\nContent-Length: 2\n", b"\nok"):
        await asyncio.sleep(0)
        connection.data_received(piece)

    head = await reading

    assert head == b"HTTP/1.1 200 OK\nContent-Length: 2"
    assert bytes(connection._buffer) == b"ok"


async def test_read_head_times_out_with_read_timeout() -> None:
    connection, _ = connected()
    connection.data_received(b"HTTP/1.1 200 OK\r\n")

    with pytest.raises(httpx.ReadTimeout):
        await connection.read_head(timeout=0.05)


async def test_read_head_at_eof_reports_no_response() -> None:
    connection, _ = connected()
    connection.eof_received()

    with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
        await connection.read_head(timeout=5.0)


@pytest.mark.parametrize("line_end", [b"\r\n", b"\n", b""], ids=["CRLF", "bare-LF", "none"])
async def test_read_line_rejects_line_over_limit(line_end: bytes) -> None:
    connection, _ = connected()
    connection.data_received(b"5;" + b"x" * MAX_LINE_BYTES + line_end)

    with pytest.raises(httpx.RemoteProtocolError) as caught:
        await connection.read_line(timeout=5.0)

    assert str(caught.value) == "A line of the chunked body is longer than 102400 bytes"


async def test_read_line_accepts_90_kib_line() -> None:
    connection, _ = connected()
    line = b"5;" + b"x" * (90 * 1024)
    connection.data_received(line + b"\r\nhello")

    received = await connection.read_line(timeout=5.0)

    assert received == line
    assert bytes(connection._buffer) == b"hello"


async def test_read_line_accepts_bare_lf_and_crlf() -> None:
    connection, _ = connected()
    connection.data_received(b"5\nhello\r\n0;x\r\n\n")

    size_line = await connection.read_line(timeout=5.0)
    data = await connection.read_some(5, timeout=5.0)
    after_data = await connection.read_line(timeout=5.0)
    last_size_line = await connection.read_line(timeout=5.0)
    end = await connection.read_line(timeout=5.0)

    assert size_line == b"5"
    assert data == b"hello"
    assert after_data == b""
    assert last_size_line == b"0;x"
    assert end == b""
    assert bytes(connection._buffer) == b""


async def test_buffer_over_high_water_pauses_reading() -> None:
    connection, transport = connected()

    connection.data_received(bytes(READ_HIGH_WATER + 1))

    assert not transport.reading


async def test_reading_resumes_below_quarter_of_high_water() -> None:
    connection, transport = connected()
    connection.data_received(bytes(READ_HIGH_WATER + 1))

    await connection.read_some(READ_HIGH_WATER // 2, timeout=5.0)
    still_paused = not transport.reading
    await connection.read_some(READ_HIGH_WATER // 2, timeout=5.0)

    assert still_paused
    assert transport.reading


async def test_read_some_returns_empty_bytes_at_clean_eof() -> None:
    connection, _ = connected()
    connection.data_received(b"end")
    connection.eof_received()

    first = await connection.read_some(100, timeout=5.0)
    second = await connection.read_some(100, timeout=5.0)

    assert first == b"end"
    assert second == b""


async def test_read_some_raises_read_error_after_reset() -> None:
    connection, _ = connected()
    connection.connection_lost(ConnectionResetError(104, "Connection reset by peer"))

    with pytest.raises(httpx.ReadError, match="Connection reset by peer"):
        await connection.read_some(100, timeout=5.0)


async def test_write_lost_without_error_has_plain_message() -> None:
    connection, transport = connected()
    connection.pause_writing()
    writing = asyncio.create_task(connection.write(b"POST / HTTP/1.1\r\n\r\n", timeout=5.0))
    await asyncio.sleep(0)

    connection.connection_lost(None)

    with pytest.raises(httpx.WriteError) as caught:
        await writing
    assert str(caught.value) == "The connection was lost while sending the request"
    assert transport.written == b"POST / HTTP/1.1\r\n\r\n"


async def test_write_lost_with_error_names_the_error() -> None:
    connection, _ = connected()
    connection.pause_writing()
    writing = asyncio.create_task(connection.write(b"POST / HTTP/1.1\r\n\r\n", timeout=5.0))
    await asyncio.sleep(0)

    connection.connection_lost(BrokenPipeError(32, "Broken pipe"))

    with pytest.raises(httpx.WriteError) as caught:
        await writing
    assert str(caught.value) == (
        "The connection was lost while sending the request: [Errno 32] Broken pipe"
    )


async def test_eof_keeps_connection_open_only_while_in_use() -> None:
    idle, _ = connected()
    busy, _ = connected()
    busy.in_use = True

    # asyncio closes the transport when eof_received() returns a false value.
    assert idle.eof_received() is False
    assert busy.eof_received() is True


async def test_write_on_closed_connection_raises_write_error() -> None:
    connection, transport = connected()
    transport.close()

    with pytest.raises(httpx.WriteError, match="closed the connection"):
        await connection.write(b"GET / HTTP/1.1\r\n\r\n", timeout=5.0)


async def test_idle_connection_with_buffered_bytes_is_not_reusable() -> None:
    connection, _ = connected()
    connection.data_received(b"HTTP/1.1 200 OK\r\n")

    assert not connection.is_reusable()


async def test_idle_connection_after_eof_is_not_reusable() -> None:
    connection, _ = connected()
    connection.eof_received()

    assert not connection.is_reusable()


def test_parse_head_accepts_later_minor_version() -> None:
    # RFC 9110 section 2.5: a recipient treats a higher minor version as the highest it implements.
    status, _, version, headers = _parse_head(b"HTTP/1.2 200 OK\r\nContent-Length: 2")

    assert status == 200
    assert version == b"HTTP/1.2"
    assert _body_framing("GET", status, version, headers) == (_LENGTH, 2, True)


def test_parse_head_rejects_http_2_status_line() -> None:
    with pytest.raises(httpx.RemoteProtocolError, match="Malformed response status line"):
        _parse_head(b"HTTP/2.0 200 OK")
