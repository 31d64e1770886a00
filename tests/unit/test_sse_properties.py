"""Property tests: chunk boundaries never change the decoded events, and bad input fails cleanly."""

from __future__ import annotations

import itertools
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from langchain_lamatic.errors import LamaticError
from langchain_lamatic.streaming import (
    FlowCompleted,
    LamaticStreamDecoder,
    NodeCompleted,
    StreamError,
    StreamEvent,
    TextDelta,
)

LINE_BREAKS = ["\n", "\r\n", "\r"]

node_ids = st.sampled_from(["triggerNode_1", "codeNode_540", "LLMNode_392", "RAGNode_7", ""])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
# Any text, including line breaks, NUL and characters outside the Basic Multilingual Plane.
tokens = st.text(min_size=1, max_size=12)


@st.composite
def chunks_of_a_run(draw: st.DrawFn) -> list[dict[str, Any] | None]:
    """Draw the chunks of a successful run: node frames, tokens, nulls, then the final frame."""
    chunks: list[dict[str, Any] | None] = []
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["node", "token", "null"]))
        if kind == "node":
            chunks.append(
                {
                    "status": "success",
                    "nodeId": draw(node_ids),
                    "data": draw(json_values),
                    "isNodeExecutionFinished": True,
                }
            )
        elif kind == "token":
            chunks.append(
                {
                    "status": "streaming",
                    "nodeId": draw(node_ids),
                    "data": {"generatedResponse": draw(tokens)},
                }
            )
        else:
            chunks.append(None)
    chunks.append(
        {
            "status": "success",
            "nodeId": "",
            "data": draw(json_values),
            "isFlowExecutionFinished": True,
        }
    )
    return chunks


@st.composite
def valid_streams(draw: st.DrawFn) -> tuple[bytes, list[dict[str, Any] | None]]:
    """Draw the body of a successful run with the framing variations the server may use."""
    chunks = draw(chunks_of_a_run())
    line_break = draw(st.sampled_from(LINE_BREAKS))
    lines: list[str] = []
    if draw(st.booleans()):
        lines += [": keep-alive", ""]
    for chunk in chunks:
        envelope = {"data": {"executeWorkflowWithStream": chunk}}
        if draw(st.booleans()):
            lines += ["event: next", f"id: {len(lines)}"]
        if draw(st.booleans()):
            # Pretty-printed JSON spread over several data lines joins back into one document.
            lines += [f"data: {line}" for line in json.dumps(envelope, indent=1).splitlines()]
        else:
            lines.append("data: " + json.dumps(envelope, ensure_ascii=draw(st.booleans())))
        lines.append("")
        if draw(st.booleans()):
            lines += [": keep-alive", ""]
    if draw(st.booleans()):
        lines += ["data: [DONE]", ""]
    body = (line_break.join(lines) + line_break).encode()
    if draw(st.booleans()):
        body = b"\xef\xbb\xbf" + body
    return body, chunks


@st.composite
def split_points(draw: st.DrawFn, length: int) -> list[int]:
    return sorted(draw(st.lists(st.integers(0, length), max_size=20)))


def split(body: bytes, points: list[int]) -> list[bytes]:
    bounds = [0, *points, len(body)]
    return [body[start:end] for start, end in itertools.pairwise(bounds)]


def outcome(chunks: list[bytes]) -> tuple[list[Any], tuple[type[LamaticError], str] | None]:
    """Decode the chunks and return the events and the raised error, both comparable."""
    decoder = LamaticStreamDecoder(flow_id="f")
    events: list[StreamEvent] = []
    raised: LamaticError | None = None
    try:
        for chunk in chunks:
            events += decoder.feed(chunk)
        events += decoder.close()
    except LamaticError as exc:
        raised = exc
    comparable = [
        (event.message, event.node_id, event.code, type(event.error))
        if isinstance(event, StreamError)
        else event
        for event in events
    ]
    return comparable, None if raised is None else (type(raised), raised.message)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), valid_streams())
def test_any_split_gives_same_events(
    data: st.DataObject, stream: tuple[bytes, list[dict[str, Any] | None]]
) -> None:
    body, _ = stream
    points = data.draw(split_points(len(body)))
    assert outcome(split(body, points)) == outcome([body])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_streams())
def test_valid_stream_decodes_to_its_chunks(
    stream: tuple[bytes, list[dict[str, Any] | None]],
) -> None:
    body, chunks = stream
    events, raised = outcome([body])
    assert raised is None

    expected_deltas = [
        TextDelta(text=chunk["data"]["generatedResponse"], node_id=chunk["nodeId"])
        for chunk in chunks
        if chunk is not None and chunk["status"] == "streaming"
    ]
    assert [event for event in events if isinstance(event, TextDelta)] == expected_deltas

    node_count = sum(
        1 for chunk in chunks if chunk is not None and chunk.get("isNodeExecutionFinished")
    )
    assert sum(1 for event in events if isinstance(event, NodeCompleted)) == node_count

    final = events[-1]
    assert isinstance(final, FlowCompleted)
    assert final.text == "".join(delta.text for delta in expected_deltas)
    assert final.output == chunks[-1]["data"]  # type: ignore[index]


@settings(max_examples=500, deadline=None)
@given(st.data(), st.binary(max_size=400))
def test_arbitrary_bytes_raise_only_lamatic_errors(data: st.DataObject, body: bytes) -> None:
    points = data.draw(split_points(len(body)))
    events, raised = outcome(split(body, points))
    assert outcome([body]) == (events, raised)
    assert not any(isinstance(event, FlowCompleted) for event in events[:-1])


sse_ish_lines = st.one_of(
    st.sampled_from(
        [
            "",
            ": keep-alive",
            "data: [DONE]",
            "data: null",
            'data: {"data": null}',
            'data: {"data": {"executeWorkflowWithStream": null}}',
            'data: {"errors": [{"message": "Flow not found"}]}',
            'data: {"errors": "oops"}',
            'data: {"errors": [null]}',
            'data: {"data": {"executeWorkflowWithStream": {"status": "error"}}}',
            'data: {"data": {"executeWorkflowWithStream": {"status": "error", "data": 3}}}',
            'data: {"data": {"executeWorkflowWithStream": {"status": "error", "result": []}}}',
            'data: {"data": {"executeWorkflowWithStream": {"isFlowExecutionFinished": true}}}',
            'data: {"data": {"executeWorkflowWithStream": {"nodeId": 5, "data": {"_meta": 1}, '
            '"isNodeExecutionFinished": true}}}',
            'data: {"data": {"executeWorkflowWithStream": {"status": "streaming", '
            '"data": {"generatedResponse": 7}}}}',
            "retry: 99999999999999999999999",
            "id: \x00",
            "event: complete",
            "data: [[[[[[[[[[[[[[[[[[[[[[[[[[[[",
            "data: 1e999999",
            "data: NaN",
        ]
    ),
    st.text(max_size=30).map(lambda text: "data: " + text),
    st.text(max_size=30),
)


@settings(max_examples=500, deadline=None)
@given(
    st.data(),
    st.lists(sse_ish_lines, max_size=12),
    st.sampled_from(LINE_BREAKS),
)
def test_malformed_sse_frames_raise_only_lamatic_errors(
    data: st.DataObject, lines: list[str], line_break: str
) -> None:
    body = line_break.join(lines).encode()
    points = data.draw(split_points(len(body)))
    events, raised = outcome(split(body, points))
    assert outcome([body]) == (events, raised)
