"""LamaticStreamDecoder: from the bytes of executeWorkflowWithStream to typed events."""

from __future__ import annotations

import json
import pickle
from collections.abc import AsyncIterator
from typing import Any

import pytest

import langchain_lamatic.streaming as streaming
from langchain_lamatic.errors import (
    LamaticAuthenticationError,
    LamaticError,
    LamaticExecutionError,
    LamaticNotFoundError,
    LamaticResponseError,
)
from langchain_lamatic.streaming import (
    FlowCompleted,
    LamaticStreamDecoder,
    NodeCompleted,
    StreamError,
    StreamEvent,
    TextDelta,
    aiter_stream_events,
    iter_stream_events,
)

FLOW_ID = "0a1b2c3d-flow"
REQUEST_ID = "req-42"

TOKENS = [
    "Bounded",
    " queues",
    " keep",
    " latency",
    " predictable",
    " — même",
    " sous",
    " charge 🚦",
]
GENERATED_TEXT = "".join(TOKENS)
FLOW_OUTPUT = {"summary": GENERATED_TEXT}
LLM_META = {
    "model_name": "gpt-4o-mini",
    "prompt_tokens": 412,
    "completion_tokens": 9,
    "total_tokens": 421,
    "total_cost": 0.0000672,
}

TRIGGER_CHUNK = {
    "status": "success",
    "nodeId": "triggerNode_1",
    "data": {"url": "https://example.org/posts/why-queues-matter"},
    "isNodeExecutionFinished": True,
}
SCRAPER_CHUNK = {
    "status": "success",
    "nodeId": "scraperNode_120",
    "data": {"content": "Queues absorb bursts.\nBounded ones push back."},
    "isNodeExecutionFinished": True,
}
# The platform repeats the generated text in the streaming node's completion frame.
LLM_DONE_CHUNK = {
    "status": "success",
    "nodeId": "LLMNode_392",
    "data": {"generatedResponse": GENERATED_TEXT + GENERATED_TEXT, "_meta": LLM_META},
    "isNodeExecutionFinished": True,
}
FINAL_CHUNK = {
    "status": "success",
    "nodeId": "",
    "data": FLOW_OUTPUT,
    "isNodeExecutionFinished": True,
    "isFlowExecutionFinished": True,
}


def token_chunk(text: str, node_id: str = "LLMNode_392") -> dict[str, Any]:
    return {"status": "streaming", "nodeId": node_id, "data": {"generatedResponse": text}}


def frame(chunk: Any, line_break: str = "\n") -> bytes:
    envelope = {"data": {"executeWorkflowWithStream": chunk}}
    return f"data: {json.dumps(envelope, ensure_ascii=False)}{line_break}{line_break}".encode()


def raw_frame(data: str) -> bytes:
    return f"data: {data}\n\n".encode()


def realistic_stream() -> bytes:
    """A stream shaped like the platform's: CRLF, a BOM, keep-alives, nulls and [DONE]."""
    parts = [
        b"\xef\xbb\xbf: keep-alive\r\n\r\n",
        frame(None, "\r\n"),
        frame(TRIGGER_CHUNK, "\r\n"),
        frame(SCRAPER_CHUNK, "\r\n"),
        b": keep-alive\r\n\r\n",
    ]
    parts += [frame(token_chunk(token), "\r\n") for token in TOKENS]
    parts += [
        frame(LLM_DONE_CHUNK, "\r\n"),
        frame(FINAL_CHUNK, "\r\n"),
        b"data: [DONE]\r\n\r\n",
    ]
    return b"".join(parts)


def decode(*chunks: bytes, **options: Any) -> list[StreamEvent]:
    decoder = LamaticStreamDecoder(**options)
    events: list[StreamEvent] = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    return events + decoder.close()


def expected_realistic_events() -> list[StreamEvent]:
    return [
        NodeCompleted(
            node_id="triggerNode_1",
            output=TRIGGER_CHUNK["data"],
            metadata={"status": "success", "isNodeExecutionFinished": True},
        ),
        NodeCompleted(
            node_id="scraperNode_120",
            output=SCRAPER_CHUNK["data"],
            metadata={"status": "success", "isNodeExecutionFinished": True},
        ),
        *[TextDelta(text=token, node_id="LLMNode_392") for token in TOKENS],
        NodeCompleted(
            node_id="LLMNode_392",
            output={"generatedResponse": GENERATED_TEXT + GENERATED_TEXT},
            metadata={"status": "success", "isNodeExecutionFinished": True, "_meta": LLM_META},
        ),
        FlowCompleted(
            output=FLOW_OUTPUT,
            text=GENERATED_TEXT,
            text_by_node={"LLMNode_392": GENERATED_TEXT},
            metadata={
                "status": "success",
                "isNodeExecutionFinished": True,
                "isFlowExecutionFinished": True,
            },
        ),
    ]


def single_error(events: list[StreamEvent]) -> StreamError:
    assert len(events) >= 1
    last = events[-1]
    assert isinstance(last, StreamError)
    return last


# --- A whole run ---------------------------------------------------------------------------


def test_realistic_stream_yields_expected_events() -> None:
    assert decode(realistic_stream()) == expected_realistic_events()


def test_text_is_rebuilt_from_deltas() -> None:
    events = decode(realistic_stream())
    deltas = "".join(event.text for event in events if isinstance(event, TextDelta))
    final = events[-1]
    assert isinstance(final, FlowCompleted)
    assert final.text == deltas
    assert final.text == GENERATED_TEXT


def test_completion_frame_repeats_text_only_in_output() -> None:
    llm_done = [
        event
        for event in decode(realistic_stream())
        if isinstance(event, NodeCompleted) and event.node_id == "LLMNode_392"
    ]
    assert len(llm_done) == 1
    assert llm_done[0].output == {"generatedResponse": GENERATED_TEXT * 2}
    assert llm_done[0].metadata["_meta"] == LLM_META


def test_every_two_piece_split_gives_same_events() -> None:
    body = realistic_stream()
    expected = expected_realistic_events()
    for split in range(len(body) + 1):
        assert decode(body[:split], body[split:]) == expected, f"split at byte {split}"


def test_byte_by_byte_feed_gives_same_events() -> None:
    body = realistic_stream()
    assert decode(*(body[i : i + 1] for i in range(len(body)))) == expected_realistic_events()


@pytest.mark.parametrize("line_break", ["\n", "\r\n", "\r"], ids=["lf", "crlf", "cr"])
def test_line_break_style_does_not_change_events(line_break: str) -> None:
    body = realistic_stream().replace(b"\r\n", line_break.encode())
    assert decode(body) == expected_realistic_events()


def test_multi_line_data_field_is_one_frame() -> None:
    envelope = json.dumps({"data": {"executeWorkflowWithStream": FINAL_CHUNK}}, indent=1)
    body = "".join(f"data: {line}\n" for line in envelope.splitlines()) + "\n"
    assert body.count("data: ") > 5
    [final] = decode(body.encode())
    assert isinstance(final, FlowCompleted)
    assert final.output == FLOW_OUTPUT


def test_id_and_retry_fields_are_harmless() -> None:
    body = (
        b"event: next\nid: 1\nretry: 3000\n"
        + frame(token_chunk("Hi"))
        + (b"id: 2\n" + frame(FINAL_CHUNK))
    )
    decoder = LamaticStreamDecoder()
    events = decoder.feed(body) + decoder.close()
    assert [type(event) for event in events] == [TextDelta, FlowCompleted]
    assert decoder.last_event_id == "2"
    assert decoder.retry_ms == 3000


@pytest.mark.parametrize("data", [b"", b' {"id": "op-1"}'], ids=["empty", "with-id"])
def test_graphql_sse_complete_event_is_ignored(data: bytes) -> None:
    body = b"event: next\n" + frame(FINAL_CHUNK) + b"event: complete\ndata:" + data + b"\n\n"
    assert [type(event) for event in decode(body)] == [FlowCompleted]


def test_complete_event_before_finish_is_not_success() -> None:
    body = frame(token_chunk("a")) + b'event: complete\ndata: {"id": "op-1"}\n\n'
    with pytest.raises(LamaticResponseError, match="ended before the flow finished"):
        decode(body)


def test_null_chunks_are_skipped() -> None:
    body = frame(None) + raw_frame('{"data": null}') + frame(FINAL_CHUNK)
    decoder = LamaticStreamDecoder()
    events = decoder.feed(body) + decoder.close()
    assert [type(event) for event in events] == [FlowCompleted]
    assert decoder.frame_count == 3


def test_keep_alive_comments_produce_no_events() -> None:
    decoder = LamaticStreamDecoder()
    assert decoder.feed(b": keep-alive\n\n" * 50) == []
    assert decoder.frame_count == 0


def test_done_marker_before_finish_is_ignored() -> None:
    body = frame(token_chunk("Hi")) + b"data: [DONE]\n\n" + frame(FINAL_CHUNK)
    assert [type(event) for event in decode(body)] == [TextDelta, FlowCompleted]


def test_done_marker_alone_does_not_finish_flow() -> None:
    with pytest.raises(LamaticResponseError, match="ended before the flow finished"):
        decode(frame(token_chunk("Hi")) + b"data: [DONE]\n\n")


def test_frames_after_finish_are_ignored() -> None:
    after = (
        frame(token_chunk("late"))
        + frame({"status": "error", "nodeId": "x", "data": {"errorMsg": "late"}})
        + raw_frame("not json")
        + frame(FINAL_CHUNK)
    )
    events = decode(frame(FINAL_CHUNK) + after)
    assert [type(event) for event in events] == [FlowCompleted]


def test_oversized_line_after_finish_is_ignored() -> None:
    decoder = LamaticStreamDecoder(max_event_bytes=100)
    events = decoder.feed(frame({"isFlowExecutionFinished": True, "data": 1}))
    assert decoder.feed(b"data: " + b"x" * 200) == []
    assert decoder.feed(b"\n\n") == []
    assert [type(event) for event in events + decoder.close()] == [FlowCompleted]


def test_final_frame_without_blank_line_still_completes() -> None:
    body = frame(token_chunk("Hi")) + frame(FINAL_CHUNK)[:-1]
    assert [type(event) for event in decode(body)] == [TextDelta, FlowCompleted]


def test_empty_delta_is_skipped() -> None:
    body = frame(token_chunk("")) + frame(token_chunk("a")) + frame(FINAL_CHUNK)
    assert decode(body)[0] == TextDelta(text="a", node_id="LLMNode_392")


def test_text_by_node_splits_two_streaming_nodes() -> None:
    body = (
        frame(token_chunk("a", "LLMNode_1"))
        + frame(token_chunk("b", "RAGNode_2"))
        + frame(token_chunk("c", "LLMNode_1"))
        + frame(FINAL_CHUNK)
    )
    final = decode(body)[-1]
    assert isinstance(final, FlowCompleted)
    assert final.text == "abc"
    assert final.text_by_node == {"LLMNode_1": "ac", "RAGNode_2": "b"}


def test_final_output_falls_back_to_result() -> None:
    body = frame(
        {
            "status": "success",
            "nodeId": "",
            "isFlowExecutionFinished": True,
            "data": None,
            "result": {"answer": 1},
        }
    )
    final = decode(body)[-1]
    assert final == FlowCompleted(
        output={"answer": 1},
        text="",
        metadata={"status": "success", "isFlowExecutionFinished": True},
    )


def test_unknown_frame_kind_is_skipped() -> None:
    body = frame({"status": "streaming", "nodeId": "n", "data": {"progress": 0.5}}) + frame(
        FINAL_CHUNK
    )
    assert [type(event) for event in decode(body)] == [FlowCompleted]


# --- Failures --------------------------------------------------------------------------------


def test_error_frame_becomes_stream_error_event() -> None:
    chunk = {"status": "error", "nodeId": "LLMNode_392", "data": {"errorMsg": "model overloaded"}}
    decoder = LamaticStreamDecoder(flow_id=FLOW_ID, request_id=REQUEST_ID)
    event = single_error(decoder.feed(frame(token_chunk("Hi")) + frame(chunk)))
    assert (
        event.message == f"Lamatic flow {FLOW_ID!r} failed at node 'LLMNode_392': model overloaded"
    )
    assert event.node_id == "LLMNode_392"
    assert event.raw == chunk
    assert isinstance(event.error, LamaticExecutionError)


def test_error_frame_error_carries_ids() -> None:
    chunk = {"status": "error", "nodeId": "codeNode_7", "data": {"errorMsg": "boom"}}
    error = single_error(
        LamaticStreamDecoder(flow_id=FLOW_ID, request_id=REQUEST_ID).feed(frame(chunk))
    ).error
    assert error.flow_id == FLOW_ID
    assert error.request_id == REQUEST_ID
    assert error.operation == "executeWorkflowWithStream"
    assert error.status_code == 200
    assert error.body_excerpt is not None
    assert "boom" in error.body_excerpt


def test_events_before_error_are_kept() -> None:
    chunk = {"status": "error", "nodeId": "n", "data": {"errorMsg": "boom"}}
    events = LamaticStreamDecoder().feed(
        frame(token_chunk("a")) + frame(token_chunk("b")) + frame(chunk) + frame(FINAL_CHUNK)
    )
    assert [type(event) for event in events] == [TextDelta, TextDelta, StreamError]


def test_feed_after_stream_error_raises_it() -> None:
    decoder = LamaticStreamDecoder()
    event = single_error(
        decoder.feed(frame({"status": "error", "nodeId": "n", "data": {"errorMsg": "boom"}}))
    )
    with pytest.raises(LamaticExecutionError) as caught:
        decoder.feed(frame(FINAL_CHUNK))
    assert caught.value is event.error


def test_close_after_stream_error_raises_it() -> None:
    decoder = LamaticStreamDecoder()
    event = single_error(
        decoder.feed(frame({"status": "error", "nodeId": "n", "data": {"errorMsg": "boom"}}))
    )
    with pytest.raises(LamaticExecutionError) as caught:
        decoder.close()
    assert caught.value is event.error


def test_second_close_raises_error_again() -> None:
    decoder = LamaticStreamDecoder()
    decoder.feed(frame({"status": "error", "nodeId": "n", "data": {"errorMsg": "boom"}}))
    with pytest.raises(LamaticExecutionError):
        decoder.close()
    with pytest.raises(LamaticExecutionError):
        decoder.close()


def test_error_frame_that_finishes_flow_still_raises() -> None:
    chunk = {
        "status": "error",
        "nodeId": "LLMNode_392",
        "data": {"errorMsg": "quota exceeded"},
        "isFlowExecutionFinished": True,
    }
    with pytest.raises(LamaticExecutionError, match="quota exceeded"):
        decode(frame(chunk))


def test_failed_status_counts_as_error() -> None:
    chunk = {"status": "failed", "nodeId": "n", "result": {"errorMsg": "timeout in node"}}
    with pytest.raises(LamaticExecutionError, match="timeout in node"):
        decode(frame(chunk))


def test_error_frame_without_message_says_so() -> None:
    event = single_error(LamaticStreamDecoder().feed(frame({"status": "error", "nodeId": ""})))
    assert event.message == "Lamatic flow failed: the server sent no error message"
    assert event.node_id is None


def test_error_frame_pending_at_close_raises() -> None:
    decoder = LamaticStreamDecoder()
    error_frame = frame({"status": "error", "nodeId": "n", "data": {"errorMsg": "boom"}})
    assert decoder.feed(error_frame[:-1]) == []
    with pytest.raises(LamaticExecutionError, match="boom"):
        decoder.close()


def test_error_frame_code_is_kept() -> None:
    chunk = {"status": "error", "nodeId": "n", "data": {"errorMsg": "slow", "code": "TIMEOUT"}}
    assert single_error(LamaticStreamDecoder().feed(frame(chunk))).code == "TIMEOUT"


def test_error_frame_text_data_is_message() -> None:
    chunk = {"status": "error", "nodeId": "n", "data": "upstream returned 502"}
    event = single_error(LamaticStreamDecoder().feed(frame(chunk)))
    assert event.message == "Lamatic flow failed at node 'n': upstream returned 502"


def test_error_message_is_redacted() -> None:
    chunk = {"status": "error", "nodeId": "n", "data": {"errorMsg": "bad key lt-supersecret99"}}
    decoder = LamaticStreamDecoder(secrets=("hunter2",))
    event = single_error(decoder.feed(frame(chunk) + b"\n"))
    assert "lt-supersecret99" not in str(event.error)
    assert "lt-supersecret99" not in repr(event)


def test_secret_redacted_from_excerpt() -> None:
    decoder = LamaticStreamDecoder(secrets=("hunter2",))
    event = single_error(decoder.feed(raw_frame("<html>token hunter2</html>")))
    assert "hunter2" not in str(event.error)
    assert "hunter2" not in (event.error.body_excerpt or "")
    assert "hunter2" not in event.raw


def test_graphql_errors_in_stream_are_classified() -> None:
    errors = [{"message": "Invalid API key", "extensions": {"code": "UNAUTHENTICATED"}}]
    decoder = LamaticStreamDecoder(flow_id=FLOW_ID, request_id=REQUEST_ID)
    event = single_error(decoder.feed(raw_frame(json.dumps({"errors": errors}))))
    assert isinstance(event.error, LamaticAuthenticationError)
    assert event.code == "UNAUTHENTICATED"
    assert event.raw == errors
    assert event.error.flow_id == FLOW_ID
    assert event.error.request_id == REQUEST_ID


def test_graphql_error_classified_by_message() -> None:
    body = raw_frame(json.dumps({"errors": [{"message": "Flow not found"}]}))
    with pytest.raises(LamaticNotFoundError, match="Flow not found"):
        decode(body)


def test_graphql_errors_win_over_partial_data() -> None:
    envelope = {
        "data": {"executeWorkflowWithStream": FINAL_CHUNK},
        "errors": [{"message": "Flow not found"}],
    }
    with pytest.raises(LamaticNotFoundError):
        decode(raw_frame(json.dumps(envelope)))


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ("not json", "is not valid JSON"),
        ('{"data": {"executeWorkflowWithStream": ', "is not valid JSON"),
        ("[" * 100_000, "is not valid JSON"),
        ("[1, 2]", "is not a JSON object"),
        ('{"data": {"executeWorkflow": {}}}', "has no data.executeWorkflowWithStream field"),
        ('{"data": "text"}', "has no data.executeWorkflowWithStream field"),
        ('{"data": {"executeWorkflowWithStream": "x"}}', "value that is not an object"),
    ],
    ids=["text", "truncated", "deeply-nested", "array", "other-field", "string-data", "string"],
)
def test_malformed_frame_raises_response_error(data: str, problem: str) -> None:
    with pytest.raises(LamaticResponseError, match=problem):
        decode(raw_frame(data), flow_id=FLOW_ID)


def test_invalid_json_error_has_short_excerpt() -> None:
    event = single_error(LamaticStreamDecoder().feed(raw_frame("<html>" + "x" * 5000)))
    assert isinstance(event.raw, str)
    assert event.raw.startswith("<html>")
    assert len(event.raw) < 400
    assert event.error.body_excerpt == event.raw


def test_cut_stream_raises_with_frame_count() -> None:
    body = frame(TRIGGER_CHUNK) + frame(token_chunk("a")) + frame(token_chunk("b"))
    decoder = LamaticStreamDecoder(flow_id=FLOW_ID, request_id=REQUEST_ID)
    assert len(decoder.feed(body)) == 3
    with pytest.raises(LamaticResponseError, match="ended before the flow finished") as caught:
        decoder.close()
    assert "got 3 frames" in caught.value.message
    assert caught.value.flow_id == FLOW_ID
    assert caught.value.request_id == REQUEST_ID


def test_cut_mid_frame_names_unfinished_line() -> None:
    body = realistic_stream()
    cut = body.index(b'"isFlowExecutionFinished"')
    with pytest.raises(LamaticResponseError, match="bytes into an unfinished line"):
        decode(body[:cut])


def test_empty_stream_raises() -> None:
    with pytest.raises(LamaticResponseError, match="got 0 frames"):
        decode(b"")


def test_stream_cut_at_any_byte_raises() -> None:
    body = realistic_stream()
    finished_at = body.index(b"data: [DONE]") - 2
    for cut in range(0, finished_at, 7):
        with pytest.raises(LamaticResponseError):
            decode(body[:cut])


def test_oversized_line_raises_response_error() -> None:
    decoder = LamaticStreamDecoder(flow_id=FLOW_ID, max_event_bytes=1024)
    events = decoder.feed(frame(token_chunk("a")) + b"data: " + b"x" * 2000)
    assert isinstance(events[0], TextDelta)
    error = single_error(events).error
    assert isinstance(error, LamaticResponseError)
    assert "longer than 1024 bytes" in error.message
    assert "max_event_bytes" in error.message


def test_oversized_line_in_small_pieces_raises() -> None:
    decoder = LamaticStreamDecoder(max_event_bytes=4096)
    for _ in range(40):
        assert decoder.feed(b"x" * 100) == []
    error = single_error(decoder.feed(b"x" * 100)).error
    assert isinstance(error, LamaticResponseError)
    assert "longer than 4096 bytes" in error.message


def test_large_frame_in_kilobyte_pieces_decodes() -> None:
    big_text = "0123456789abcdef" * (5 * 1024 * 1024 // 16)
    body = frame(token_chunk(big_text)) + frame(FINAL_CHUNK)
    events = decode(*(body[start : start + 1024] for start in range(0, len(body), 1024)))
    assert events[0] == TextDelta(text=big_text, node_id="LLMNode_392")
    assert isinstance(events[1], FlowCompleted)
    assert events[1].text == big_text


# --- API contract ----------------------------------------------------------------------------


def test_feed_rejects_text() -> None:
    with pytest.raises(TypeError, match="iter_bytes"):
        LamaticStreamDecoder().feed("data: x\n\n")  # type: ignore[arg-type]


def test_feed_accepts_bytearray_and_memoryview() -> None:
    body = frame(FINAL_CHUNK)
    decoder = LamaticStreamDecoder()
    events = decoder.feed(bytearray(body[:10])) + decoder.feed(memoryview(body[10:]))
    assert [type(event) for event in events] == [FlowCompleted]


def test_feed_after_close_raises() -> None:
    decoder = LamaticStreamDecoder()
    decoder.feed(frame(FINAL_CHUNK))
    decoder.close()
    with pytest.raises(RuntimeError, match="after close"):
        decoder.feed(b"")


def test_second_close_after_success_returns_nothing() -> None:
    decoder = LamaticStreamDecoder()
    decoder.feed(frame(FINAL_CHUNK))
    assert decoder.close() == []
    assert decoder.close() == []


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "16"])
def test_invalid_max_event_bytes_raises(value: Any) -> None:
    with pytest.raises(ValueError, match="max_event_bytes must be a positive integer"):
        LamaticStreamDecoder(max_event_bytes=value)


def test_finished_property_tracks_final_frame() -> None:
    decoder = LamaticStreamDecoder()
    decoder.feed(frame(token_chunk("a")))
    assert decoder.finished is False
    decoder.feed(frame(FINAL_CHUNK))
    assert decoder.finished is True


def test_events_pickle() -> None:
    events = expected_realistic_events()
    assert pickle.loads(pickle.dumps(events)) == events  # noqa: S301 (own data)


def test_stream_error_pickles_with_its_error() -> None:
    event = single_error(
        LamaticStreamDecoder(flow_id=FLOW_ID).feed(
            frame({"status": "error", "nodeId": "n", "data": {"errorMsg": "boom"}})
        )
    )
    copy = pickle.loads(pickle.dumps(event))  # noqa: S301 (own data)
    assert copy.message == event.message
    assert isinstance(copy.error, LamaticExecutionError)
    assert copy.error.flow_id == FLOW_ID


def test_decoder_repr_shows_progress() -> None:
    decoder = LamaticStreamDecoder(flow_id=FLOW_ID)
    decoder.feed(frame(token_chunk("a")))
    assert repr(decoder) == (
        f"LamaticStreamDecoder(flow_id={FLOW_ID!r}, frames=1, finished=False, failed=False)"
    )


def test_public_names() -> None:
    assert sorted(streaming.__all__) == [
        "DEFAULT_MAX_EVENT_BYTES",
        "FlowCompleted",
        "LamaticStreamDecoder",
        "NodeCompleted",
        "StreamError",
        "StreamEvent",
        "TextDelta",
        "aiter_stream_events",
        "iter_stream_events",
    ]


# --- Iterators -------------------------------------------------------------------------------


def chunked(body: bytes, size: int) -> list[bytes]:
    return [body[start : start + size] for start in range(0, len(body), size)]


def test_iter_stream_events_yields_events() -> None:
    events = list(iter_stream_events(chunked(realistic_stream(), 37)))
    assert events == expected_realistic_events()


def test_iter_stream_events_raises_execution_error() -> None:
    body = frame(token_chunk("a")) + frame(
        {"status": "error", "nodeId": "n", "data": {"errorMsg": "boom"}}
    )
    events = iter_stream_events([body], LamaticStreamDecoder(flow_id=FLOW_ID))
    assert next(events) == TextDelta(text="a", node_id="LLMNode_392")
    with pytest.raises(LamaticExecutionError, match="boom"):
        next(events)


def test_iter_stream_events_raises_on_cut_stream() -> None:
    with pytest.raises(LamaticResponseError, match="ended before the flow finished"):
        list(iter_stream_events([frame(token_chunk("a"))]))


async def async_chunks(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def test_aiter_stream_events_yields_events() -> None:
    events = [
        event async for event in aiter_stream_events(async_chunks(chunked(realistic_stream(), 53)))
    ]
    assert events == expected_realistic_events()


async def test_aiter_yields_frame_pending_at_close() -> None:
    body = frame(FINAL_CHUNK)[:-1]
    events = [event async for event in aiter_stream_events(async_chunks([body]))]
    assert [type(event) for event in events] == [FlowCompleted]


async def test_aiter_stream_events_raises_graphql_error() -> None:
    body = raw_frame(json.dumps({"errors": [{"message": "Invalid API key"}]}))
    with pytest.raises(LamaticAuthenticationError):
        async for _ in aiter_stream_events(async_chunks([body]), LamaticStreamDecoder()):
            pass


async def test_aiter_stream_events_raises_on_cut_stream() -> None:
    with pytest.raises(LamaticError, match="ended before the flow finished"):
        async for _ in aiter_stream_events(async_chunks([frame(token_chunk("a"))])):
            pass
